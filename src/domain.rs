//! The pure rules of the partner network. Every function takes its inputs, time included, and
//! returns a value or a typed [`Error`]: it decides, it never performs.

pub mod analytics;
pub mod application;
pub mod catalog;
pub mod client;
pub mod commission;
pub mod config;
pub mod decimal;
pub mod error;
pub mod health;
pub mod ids;
pub mod ledger;
pub mod money;
pub mod notice;
pub mod payment;
pub mod payout;
pub mod permissions;
pub mod quote;
pub mod record;
pub mod reseller;
pub mod rounding;
pub mod tier;
pub mod workflow;

pub use error::{Error, ErrorCode, Result};

//! The JavaScript bindings: values in are checked and converted at the edge, domain errors go out
//! as `AllyError`. No business rule lives here.

// The engine's surface (Ally, resellers, host ports) is left out of a pricing-only build
// (`--no-default-features`), the small module for browsers and edge functions that only price.
#[cfg(feature = "engine")]
mod ally;
#[cfg(feature = "engine")]
mod analytics;
#[cfg(feature = "engine")]
mod applications;
#[cfg(feature = "engine")]
mod attestation;
#[cfg(feature = "engine")]
mod clients;
mod codec;
#[cfg(feature = "engine")]
mod commission;
mod error;
#[cfg(feature = "engine")]
mod events;
#[cfg(feature = "engine")]
mod health;
#[cfg(feature = "engine")]
mod host;
mod input;
#[cfg(feature = "engine")]
mod payments;
#[cfg(feature = "engine")]
mod payouts;
mod pricing;
mod registry;
mod types;
#[cfg(feature = "engine")]
mod wallets;
#[cfg(feature = "engine")]
mod workflows;

//! The JavaScript bindings: values in are checked and converted at the edge, domain errors go out
//! as `AllyError`. No business rule lives here.

mod ally;
mod error;
mod host;
mod input;
mod pricing;
mod types;

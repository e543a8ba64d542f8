//! Ally Engine: the rules of a partner and reseller network (tier pricing, credit wallets,
//! commissions, health scores) as pure Rust, compiled to WebAssembly for Node, browsers and edge
//! runtimes.
//!
//! Layers, each importing only those below it:
//! - [`domain`]: pure decisions and the values that cross the boundary;
//! - [`engine`]: performs decisions through the host ports (storage, mail, clock);
//! - `wasm` (wasm32 only): the JavaScript bindings.
//!
//! No unsafe code, but for the allocator of the wasm module (`heap`), which must implement
//! `GlobalAlloc`.
#![deny(unsafe_code)]

pub mod domain;
pub mod engine;

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
mod heap;

#[cfg(target_arch = "wasm32")]
mod wasm;

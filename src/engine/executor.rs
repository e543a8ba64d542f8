//! A minimal executor for native hosts and tests whose ports complete without suspending (the
//! in-memory storage). In wasm the JavaScript event loop drives the futures instead.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls `future` to completion. Returns `None` if it is still pending after `polls_max` polls,
/// which means a port really suspended and needs a real executor.
pub fn block_on<F: Future>(future: F, polls_max: u32) -> Option<F::Output> {
    let mut future = pin!(future);
    let mut context = Context::from_waker(Waker::noop());
    for _ in 0..polls_max {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return Some(output);
        }
    }
    None
}

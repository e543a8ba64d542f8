//! A minimal executor for native hosts and tests whose ports complete without suspending (the
//! in-memory storage), and the one combinator the engine needs: several storage calls in
//! flight at once. In wasm the JavaScript event loop drives the futures instead.

use std::future::Future;
use std::pin::{pin, Pin};
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

/// The futures of [`join_all`].
pub struct JoinAll<F: Future> {
    pending: Vec<Option<Pin<Box<F>>>>,
    done: Vec<Option<F::Output>>,
}

/// Drives `futures` side by side in one task (every poll polls those not yet finished) and
/// answers their outputs in their order: a batch of storage calls in flight at once.
pub fn join_all<F: Future>(futures: Vec<F>) -> JoinAll<F> {
    let done = futures.iter().map(|_| None).collect();
    JoinAll {
        pending: futures.into_iter().map(|f| Some(Box::pin(f))).collect(),
        done,
    }
}

// The futures are boxed and the outputs are only moved out: nothing in it is pinned in place.
impl<F: Future> Unpin for JoinAll<F> {}

impl<F: Future> Future for JoinAll<F> {
    type Output = Vec<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut finished = true;
        for (slot, out) in this.pending.iter_mut().zip(this.done.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(output) => {
                        *out = Some(output);
                        *slot = None;
                    }
                    Poll::Pending => finished = false,
                }
            }
        }
        if finished {
            Poll::Ready(this.done.drain(..).flatten().collect())
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pending on its first poll, then ready: a call that suspends once.
    struct Once(bool, u32);

    impl Future for Once {
        type Output = u32;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            if self.0 {
                Poll::Ready(self.1)
            } else {
                self.0 = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    #[test]
    fn join_all_answers_every_output_in_order() {
        let futures = vec![Once(false, 3), Once(true, 1), Once(false, 2)];
        assert_eq!(block_on(join_all(futures), 4), Some(vec![3, 1, 2]));
        assert_eq!(block_on(join_all(Vec::<Once>::new()), 1), Some(Vec::new()));
    }
}

//! A single-threaded async lock: operations on one wallet inside one engine instance run one at
//! a time, so they never race each other for the same compare-and-set append (racing writers in
//! other instances or processes are still settled by the storage's compare-and-set).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// First come, first served: a release hands the lock straight to the longest waiter, so a
/// newcomer never overtakes a queue.
#[derive(Debug, Default)]
pub struct Lock {
    held: Cell<bool>,
    /// The waiter a release handed the lock to, until it polls.
    granted: Cell<Option<u64>>,
    next_ticket: Cell<u64>,
    waiting: RefCell<VecDeque<(u64, Waker)>>,
}

/// Held until dropped; dropping hands the lock to the next waiter.
pub struct Guard<'a> {
    lock: &'a Lock,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.lock.release();
    }
}

/// Waiting for the lock. Each poll registers the waker of that poll (the `Future` contract: only
/// the latest waker is woken), and dropping a waiter leaves the queue without losing a hand-off.
pub struct Acquire<'a> {
    lock: &'a Lock,
    ticket: Option<u64>,
}

impl<'a> Future for Acquire<'a> {
    type Output = Guard<'a>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let lock = self.lock;
        match self.ticket {
            Some(ticket) if lock.granted.get() == Some(ticket) => {
                lock.granted.set(None);
                self.ticket = None;
                Poll::Ready(Guard { lock })
            }
            Some(ticket) => {
                let mut waiting = lock.waiting.borrow_mut();
                if let Some(slot) = waiting.iter_mut().find(|(t, _)| *t == ticket) {
                    slot.1.clone_from(cx.waker());
                }
                Poll::Pending
            }
            None if !lock.held.get() => {
                lock.held.set(true);
                Poll::Ready(Guard { lock })
            }
            None => {
                let ticket = lock.next_ticket.get();
                lock.next_ticket.set(ticket.wrapping_add(1));
                lock.waiting
                    .borrow_mut()
                    .push_back((ticket, cx.waker().clone()));
                self.ticket = Some(ticket);
                Poll::Pending
            }
        }
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        let Some(ticket) = self.ticket else { return };
        if self.lock.granted.get() == Some(ticket) {
            // Handed the lock but gone before taking it: pass it on.
            self.lock.granted.set(None);
            self.lock.release();
        } else {
            self.lock.waiting.borrow_mut().retain(|(t, _)| *t != ticket);
        }
    }
}

impl Lock {
    pub fn acquire(&self) -> Acquire<'_> {
        Acquire {
            lock: self,
            ticket: None,
        }
    }

    /// Whether someone holds the lock (an acquirer would wait).
    pub fn is_held(&self) -> bool {
        self.held.get()
    }

    /// Hands the lock to the longest waiter (it stays held), or frees it.
    fn release(&self) {
        let next = self.waiting.borrow_mut().pop_front();
        match next {
            Some((ticket, waker)) => {
                self.granted.set(Some(ticket));
                waker.wake();
            }
            None => self.held.set(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(std::sync::atomic::AtomicU32);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn a_second_acquirer_waits_and_is_woken_on_release() {
        let lock = Lock::default();
        let count = Arc::new(Count(0.into()));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut first = Box::pin(lock.acquire());
        let Poll::Ready(guard) = first.as_mut().poll(&mut cx) else {
            panic!("a free lock is acquired at once");
        };
        let mut second = Box::pin(lock.acquire());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        drop(guard);
        assert_eq!(count.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(second.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn only_the_latest_waker_is_woken_and_a_newcomer_does_not_overtake() {
        let lock = Lock::default();
        let stale = Arc::new(Count(0.into()));
        let latest = Arc::new(Count(0.into()));
        let stale_waker = Waker::from(stale.clone());
        let latest_waker = Waker::from(latest.clone());
        let mut guard = Some(block(lock.acquire()));
        let mut waiter = Box::pin(lock.acquire());
        assert!(waiter
            .as_mut()
            .poll(&mut Context::from_waker(&stale_waker))
            .is_pending());
        assert!(waiter
            .as_mut()
            .poll(&mut Context::from_waker(&latest_waker))
            .is_pending());
        drop(guard.take());
        assert_eq!(stale.0.load(std::sync::atomic::Ordering::SeqCst), 0);
        assert_eq!(latest.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        // The lock was handed to the waiter: a newcomer polling first must wait.
        let mut newcomer = Box::pin(lock.acquire());
        assert!(newcomer
            .as_mut()
            .poll(&mut Context::from_waker(&stale_waker))
            .is_pending());
        let Poll::Ready(held) = waiter
            .as_mut()
            .poll(&mut Context::from_waker(&latest_waker))
        else {
            panic!("the waiter the lock was handed to takes it");
        };
        drop(held);
        assert_eq!(stale.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(newcomer
            .as_mut()
            .poll(&mut Context::from_waker(&stale_waker))
            .is_ready());
    }

    #[test]
    fn a_waiter_dropped_after_the_hand_off_passes_the_lock_on() {
        let lock = Lock::default();
        let count = Arc::new(Count(0.into()));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let guard = block(lock.acquire());
        let mut first = Box::pin(lock.acquire());
        let mut second = Box::pin(lock.acquire());
        assert!(first.as_mut().poll(&mut cx).is_pending());
        assert!(second.as_mut().poll(&mut cx).is_pending());
        drop(guard);
        drop(first);
        assert!(second.as_mut().poll(&mut cx).is_ready());
    }

    fn block<F: Future>(future: F) -> F::Output {
        crate::engine::executor::block_on(future, 1).expect("a free lock is taken at once")
    }
}

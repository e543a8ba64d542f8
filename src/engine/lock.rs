//! A single-threaded async lock: operations on one wallet inside one engine instance run one at
//! a time, so they never race each other for the same compare-and-set append (racing writers in
//! other instances or processes are still settled by the storage's compare-and-set).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Debug, Default)]
pub struct Lock {
    held: Cell<bool>,
    waiting: RefCell<VecDeque<Waker>>,
}

/// Held until dropped; dropping wakes the next waiter.
pub struct Guard<'a> {
    lock: &'a Lock,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.lock.held.set(false);
        let next = self.lock.waiting.borrow_mut().pop_front();
        if let Some(waker) = next {
            waker.wake();
        }
    }
}

pub struct Acquire<'a> {
    lock: &'a Lock,
}

impl<'a> Future for Acquire<'a> {
    type Output = Guard<'a>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.lock.held.get() {
            self.lock.waiting.borrow_mut().push_back(cx.waker().clone());
            Poll::Pending
        } else {
            self.lock.held.set(true);
            Poll::Ready(Guard { lock: self.lock })
        }
    }
}

impl Lock {
    pub fn acquire(&self) -> Acquire<'_> {
        Acquire { lock: self }
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
}

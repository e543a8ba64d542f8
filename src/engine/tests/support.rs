//! What the engine's tests share: a clock they move, and an in-memory storage they can make
//! fail.

use std::cell::Cell;
use std::rc::Rc;

use chrono::{DateTime, TimeZone, Utc};

use super::executor::block_on;
use super::memory::MemoryStorage;
use super::ports::{
    AppendOutcome, Claim, Clock, Guard, Query, Storage, StorageError, StoredRecord, WriteOutcome,
};
use crate::domain::Result;

/// A clock the test moves.
#[derive(Clone)]
pub struct StepClock(pub Rc<Cell<i64>>);

impl StepClock {
    pub fn set(&self, at: DateTime<Utc>) {
        self.0.set(at.timestamp_millis());
    }
}

impl Clock for StepClock {
    fn now(&self) -> Result<DateTime<Utc>, String> {
        DateTime::from_timestamp_millis(self.0.get()).ok_or_else(|| "out of range".to_owned())
    }
}

/// The in-memory storage, shared, that can be told to fail every write after `n` more.
#[derive(Clone)]
pub struct Failing {
    pub inner: Rc<MemoryStorage>,
    pub writes_left: Rc<Cell<Option<u32>>>,
}

impl Failing {
    fn spend(&self) -> Result<(), StorageError> {
        match self.writes_left.get() {
            Some(0) => Err(StorageError {
                reason: "disk full".to_owned(),
            }),
            Some(n) => {
                self.writes_left.set(Some(n - 1));
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Storage for Failing {
    async fn get(&self, c: &str, id: &str) -> Result<Option<StoredRecord>, StorageError> {
        self.inner.get(c, id).await
    }
    async fn find(&self, c: &str, q: Query<'_>) -> Result<Vec<StoredRecord>, StorageError> {
        self.inner.find(c, q).await
    }
    async fn put(
        &self,
        c: &str,
        record: &StoredRecord,
        expected: u64,
        unique: &[&str],
    ) -> Result<WriteOutcome, StorageError> {
        self.spend()?;
        self.inner.put(c, record, expected, unique).await
    }
    async fn append(
        &self,
        s: &str,
        n: u64,
        e: &[String],
        claims: &[Claim<'_>],
        guard: Option<Guard<'_>>,
        held: bool,
    ) -> Result<AppendOutcome, StorageError> {
        self.spend()?;
        self.inner.append(s, n, e, claims, guard, held).await
    }
    async fn read(&self, s: &str, from: u64, limit: u32) -> Result<Vec<String>, StorageError> {
        self.inner.read(s, from, limit).await
    }
    async fn find_claim(&self, s: &str, key: &str) -> Result<Option<u64>, StorageError> {
        self.inner.find_claim(s, key).await
    }
}

/// Runs a future over the in-memory ports, which never suspend.
pub fn run<F: std::future::Future>(future: F) -> F::Output {
    block_on(future, 16).unwrap_or_else(|| panic!("the in-memory port suspended"))
}

/// Noon (UTC) of a day.
pub fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Pending at its first poll, ready at the next.
pub struct YieldOnce(pub bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            std::task::Poll::Ready(())
        } else {
            self.0 = true;
            std::task::Poll::Pending
        }
    }
}

/// Polls every operation in turn until all are done, so that they wait on one another.
pub type Op<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T>> + 'a>>;

pub fn run_all<T>(futures: Vec<Op<'_, T>>) -> Vec<Result<T>> {
    let mut futures: Vec<_> = futures.into_iter().map(Some).collect();
    let mut outputs: Vec<Option<Result<T>>> = futures.iter().map(|_| None).collect();
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..10_000 {
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(f) = future {
                if let std::task::Poll::Ready(out) = f.as_mut().poll(&mut cx) {
                    *output = Some(out);
                    *future = None;
                }
            }
        }
        if futures.iter().all(Option::is_none) {
            return outputs.into_iter().flatten().collect();
        }
    }
    panic!("the operations never finished");
}

/// Provisions of `(cost, key)` on one wallet, all awaited together (see [`run_all`]).
/// An in-memory storage each of whose calls suspends once, so that operations polled together
/// interleave at every storage call.
#[derive(Default)]
pub struct Yielding(pub MemoryStorage);

impl Storage for Yielding {
    async fn get(&self, c: &str, id: &str) -> Result<Option<StoredRecord>, StorageError> {
        YieldOnce(false).await;
        self.0.get(c, id).await
    }
    async fn find(&self, c: &str, q: Query<'_>) -> Result<Vec<StoredRecord>, StorageError> {
        YieldOnce(false).await;
        self.0.find(c, q).await
    }
    async fn put(
        &self,
        c: &str,
        record: &StoredRecord,
        expected: u64,
        unique: &[&str],
    ) -> Result<WriteOutcome, StorageError> {
        YieldOnce(false).await;
        self.0.put(c, record, expected, unique).await
    }
    async fn append(
        &self,
        s: &str,
        n: u64,
        e: &[String],
        claims: &[Claim<'_>],
        guard: Option<Guard<'_>>,
        held: bool,
    ) -> Result<AppendOutcome, StorageError> {
        YieldOnce(false).await;
        self.0.append(s, n, e, claims, guard, held).await
    }
    async fn read(&self, s: &str, from: u64, limit: u32) -> Result<Vec<String>, StorageError> {
        YieldOnce(false).await;
        self.0.read(s, from, limit).await
    }
    async fn find_claim(&self, s: &str, key: &str) -> Result<Option<u64>, StorageError> {
        YieldOnce(false).await;
        self.0.find_claim(s, key).await
    }
}

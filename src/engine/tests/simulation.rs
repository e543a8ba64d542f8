//! Seeded simulation: random reseller and wallet operations against a storage that fails before
//! applying a write, fails after applying it (the reply is lost), reports a conflict that did
//! not happen, or answers late; wallet operations also run two at a time on two engine instances
//! over one store, so their appends really race. Invariants are checked after every step; a
//! failure prints the seed that replays it (`ALLY_SIM_SEED=<seed> cargo test simulation`).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use chrono::{TimeZone, Utc};
use serde_json::Value;

use super::executor::block_on;
use super::memory::MemoryStorage;
use super::ports::{
    Answer, AppendOutcome, Claim, Combined, FixedClock, Guard, NoMailer, Query, Queued, Storage,
    StorageError, StoredRecord, WriteOutcome,
};
use super::{Ally, ResellerFilter};
use crate::domain::config::Config;
use crate::domain::ids::IdSource;
use crate::domain::reseller::{ResellerDraft, UserId};
use crate::domain::Error;

const USERS: u64 = 12;
const STEPS: usize = 400;
const SEEDS: u64 = 64;

/// What the storage does with the next call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    /// Throws before touching anything.
    Before,
    /// Applies a write, then throws: the engine never hears it landed.
    After,
    /// Answers `Stale` to a write without applying it, as if another writer had won.
    Conflict,
    /// Answers, but only after yielding to the executor a few times.
    Delay(u8),
}

/// Yields `n` times before it is ready: a port that answers late.
struct Yield(u8);

impl std::future::Future for Yield {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 == 0 {
            return std::task::Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

struct FaultyStorage {
    inner: Rc<MemoryStorage>,
    dice: std::cell::RefCell<IdSource>,
    faults: Cell<u64>,
    /// The stream locks, shared by every instance's storage (as a database's are); `None`: a
    /// storage without locks.
    locks: Option<Rc<LockTable>>,
}

/// Stream locks as a database holds them: each held stream and the storage (the session)
/// holding it; and, when `combines`, the requests queued for a holder to settle.
#[derive(Default)]
struct LockTable {
    held: std::cell::RefCell<BTreeMap<String, usize>>,
    taken: Cell<u64>,
    combines: bool,
    queue: std::cell::RefCell<Vec<QueuedRequest>>,
    queued: Cell<u64>,
    /// Requests a holder settled for another instance.
    answered: Cell<u64>,
}

/// A request queued by `combine`, as the storage keeps it.
struct QueuedRequest {
    id: u64,
    stream: String,
    request: String,
    taken: bool,
    answer: Option<String>,
}

impl FaultyStorage {
    fn roll(&self, write: bool) -> Fault {
        let roll = self.dice.borrow_mut().next_u64() % 100;
        let fault = match roll {
            0..=7 => Fault::Before,
            8..=13 if write => Fault::After,
            14..=21 if write => Fault::Conflict,
            22..=31 => Fault::Delay(1 + (roll % 3) as u8),
            _ => Fault::None,
        };
        if fault != Fault::None {
            self.faults.set(self.faults.get() + 1);
        }
        fault
    }

    /// Waits until this storage (the session) holds the stream's lock.
    async fn take_lock(&self, locks: &LockTable, stream: &str) {
        let me = std::ptr::from_ref(self) as usize;
        // Take the lock if it is free (the borrow ends with the statement), else wait a turn.
        while locks
            .held
            .borrow_mut()
            .entry(stream.to_owned())
            .or_insert(me)
            != &me
        {
            Yield(1).await;
        }
        locks.taken.set(locks.taken.get() + 1);
    }

    /// What a written append of a lead commits with it: the answers of the requests it took,
    /// and the end of the hold.
    fn answer(
        &self,
        locks: &LockTable,
        stream: &str,
        outcome: &AppendOutcome,
        answers: &[Answer<'_>],
    ) {
        if *outcome != AppendOutcome::Written {
            return;
        }
        for q in locks.queue.borrow_mut().iter_mut() {
            if let Some(a) = answers.iter().find(|a| a.id == q.id && q.taken) {
                q.answer = Some(a.answer.to_owned());
                locks.answered.set(locks.answered.get() + 1);
            }
        }
        self.release_lock(locks, stream);
    }

    fn release_lock(&self, locks: &LockTable, stream: &str) {
        let me = std::ptr::from_ref(self) as usize;
        let mut held = locks.held.borrow_mut();
        if held.get(stream) == Some(&me) {
            held.remove(stream);
        }
    }

    fn injected() -> StorageError {
        StorageError {
            reason: "injected fault".to_owned(),
        }
    }
}

impl Storage for FaultyStorage {
    async fn get(&self, collection: &str, id: &str) -> Result<Option<StoredRecord>, StorageError> {
        match self.roll(false) {
            Fault::Before => Err(Self::injected()),
            Fault::Delay(n) => {
                Yield(n).await;
                self.inner.get(collection, id).await
            }
            _ => self.inner.get(collection, id).await,
        }
    }

    async fn find(
        &self,
        collection: &str,
        query: Query<'_>,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        match self.roll(false) {
            Fault::Before => Err(Self::injected()),
            Fault::Delay(n) => {
                Yield(n).await;
                self.inner.find(collection, query).await
            }
            _ => self.inner.find(collection, query).await,
        }
    }

    async fn put(
        &self,
        collection: &str,
        record: &StoredRecord,
        expected_version: u64,
        unique: &[&str],
    ) -> Result<WriteOutcome, StorageError> {
        match self.roll(true) {
            Fault::Before => Err(Self::injected()),
            Fault::Conflict => Ok(WriteOutcome::Stale),
            Fault::After => {
                self.inner
                    .put(collection, record, expected_version, unique)
                    .await?;
                Err(Self::injected())
            }
            Fault::Delay(n) => {
                Yield(n).await;
                self.inner
                    .put(collection, record, expected_version, unique)
                    .await
            }
            Fault::None => {
                self.inner
                    .put(collection, record, expected_version, unique)
                    .await
            }
        }
    }

    async fn append(
        &self,
        stream: &str,
        expected: u64,
        entries: &[String],
        claims: &[Claim<'_>],
        guard: Option<Guard<'_>>,
        held: bool,
    ) -> Result<AppendOutcome, StorageError> {
        match self.roll(true) {
            Fault::Before => Err(Self::injected()),
            Fault::Conflict => Ok(AppendOutcome::Stale { tail: None }),
            Fault::After => {
                self.inner
                    .append(stream, expected, entries, claims, guard, held)
                    .await?;
                Err(Self::injected())
            }
            Fault::Delay(n) => {
                Yield(n).await;
                self.inner
                    .append(stream, expected, entries, claims, guard, held)
                    .await
            }
            Fault::None => {
                self.inner
                    .append(stream, expected, entries, claims, guard, held)
                    .await
            }
        }
    }

    async fn read(&self, stream: &str, from: u64, limit: u32) -> Result<Vec<String>, StorageError> {
        match self.roll(false) {
            Fault::Before => Err(Self::injected()),
            Fault::Delay(n) => {
                Yield(n).await;
                self.inner.read(stream, from, limit).await
            }
            _ => self.inner.read(stream, from, limit).await,
        }
    }

    async fn lock(&self, stream: &str, from: u64) -> Result<Option<Vec<String>>, StorageError> {
        let Some(locks) = &self.locks else {
            return Ok(None);
        };
        if self.roll(false) == Fault::Before {
            return Err(Self::injected());
        }
        // Wait for the holder: another instance's request, polled by the same executor.
        self.take_lock(locks, stream).await;
        match self.inner.read(stream, from, 500).await {
            Ok(tail) => Ok(Some(tail)),
            Err(e) => {
                locks.held.borrow_mut().remove(stream);
                Err(e)
            }
        }
    }

    async fn unlock(&self, stream: &str) -> Result<(), StorageError> {
        if let Some(locks) = &self.locks {
            // Only the holder's unlock frees a lock (another session's is a no-op); a failed
            // unlock still frees it, as a dropped connection frees a session lock in
            // PostgreSQL, and the engine is told it failed.
            self.release_lock(locks, stream);
            if self.roll(false) == Fault::Before {
                return Err(Self::injected());
            }
        }
        Ok(())
    }

    async fn combine(
        &self,
        stream: &str,
        from: u64,
        request: &str,
    ) -> Result<Option<Combined>, StorageError> {
        let Some(locks) = self.locks.as_ref().filter(|l| l.combines) else {
            return Ok(None);
        };
        match self.roll(true) {
            Fault::Before => return Err(Self::injected()),
            // The lock could not be had: nothing queued, nothing held.
            Fault::Conflict => return Ok(None),
            _ => {}
        }
        let id = locks.queued.get() + 1;
        locks.queued.set(id);
        locks.queue.borrow_mut().push(QueuedRequest {
            id,
            stream: stream.to_owned(),
            request: request.to_owned(),
            taken: false,
            answer: None,
        });
        // The request is committed before the wait, as a round trip of its own: another
        // instance's request may queue meanwhile, and go to whichever takes the lock first.
        Yield(1).await;
        self.take_lock(locks, stream).await;
        // Holding the lock: this request answered (by the holder before), or this one leads
        // the requests no holder has taken.
        let taken = {
            let mut queue = locks.queue.borrow_mut();
            queue.iter().position(|q| q.id == id).map(|mine| {
                let answer = queue.remove(mine).answer;
                let queued: Vec<Queued> = queue
                    .iter_mut()
                    .filter(|q| q.stream == stream && !q.taken && answer.is_none())
                    .take(crate::engine::ports::QUEUED_MAX)
                    .map(|q| {
                        q.taken = true;
                        Queued {
                            id: q.id,
                            request: q.request.clone(),
                        }
                    })
                    .collect();
                (answer, queued)
            })
        };
        let queued = match taken {
            None => {
                self.release_lock(locks, stream);
                return Err(StorageError {
                    reason: "a queued request went missing".to_owned(),
                });
            }
            Some((Some(answer), _)) => {
                self.release_lock(locks, stream);
                return Ok(Some(Combined::Answered(answer)));
            }
            Some((None, queued)) => queued,
        };
        match self.inner.read(stream, from, 500).await {
            Ok(tail) => Ok(Some(Combined::Lead { tail, queued })),
            Err(e) => {
                self.release_lock(locks, stream);
                Err(e)
            }
        }
    }

    async fn append_answering(
        &self,
        stream: &str,
        expected: u64,
        entries: &[String],
        claims: &[Claim<'_>],
        guard: Option<Guard<'_>>,
        answers: &[Answer<'_>],
    ) -> Result<AppendOutcome, StorageError> {
        let Some(locks) = self.locks.as_ref().filter(|l| l.combines) else {
            return Err(Self::injected());
        };
        // As a held append (with its faults); when written, the answers go in its commit, and
        // the commit ends the hold.
        let outcome = match self.roll(true) {
            Fault::Before => return Err(Self::injected()),
            Fault::Conflict => return Ok(AppendOutcome::Stale { tail: None }),
            Fault::Delay(n) => {
                Yield(n).await;
                self.inner
                    .append(stream, expected, entries, claims, guard, true)
                    .await
            }
            Fault::After => {
                let outcome = self
                    .inner
                    .append(stream, expected, entries, claims, guard, true)
                    .await?;
                self.answer(locks, stream, &outcome, answers);
                return Err(Self::injected());
            }
            Fault::None => {
                self.inner
                    .append(stream, expected, entries, claims, guard, true)
                    .await
            }
        }?;
        self.answer(locks, stream, &outcome, answers);
        Ok(outcome)
    }

    async fn find_claim(&self, stream: &str, key: &str) -> Result<Option<u64>, StorageError> {
        match self.roll(false) {
            Fault::Before => Err(Self::injected()),
            Fault::Delay(n) => {
                Yield(n).await;
                self.inner.find_claim(stream, key).await
            }
            _ => self.inner.find_claim(stream, key).await,
        }
    }
}

/// Polls to completion; delayed answers wake themselves, so a bound on polls only catches a
/// future that would never finish.
fn run<F: std::future::Future>(future: F) -> F::Output {
    block_on(future, POLLS_MAX).unwrap_or_else(|| panic!("an operation never finished"))
}

const POLLS_MAX: u32 = 1_000_000;

/// Every stored reseller, straight from the inner store (no faults), by user key.
fn stored(storage: &FaultyStorage) -> BTreeMap<String, Vec<(String, u64, Value)>> {
    let query = Query {
        index: None,
        after: None,
        limit: 10_000,
    };
    let records = run(storage.inner.find("resellers", query)).unwrap_or_default();
    let mut by_user: BTreeMap<String, Vec<(String, u64, Value)>> = BTreeMap::new();
    for record in records {
        let data: Value = serde_json::from_str(&record.data).unwrap_or(Value::Null);
        let user = record
            .indexes
            .iter()
            .find(|(name, _)| name == "userId")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        by_user
            .entry(user)
            .or_default()
            .push((record.id, record.version, data));
    }
    by_user
}

fn simulate(seed: u64) -> Result<u64, String> {
    let storage = Rc::new(FaultyStorage {
        inner: Rc::new(MemoryStorage::new()),
        dice: std::cell::RefCell::new(IdSource::new(seed ^ 0x5EED)),
        faults: Cell::new(0),
        locks: None,
    });
    let at = Utc
        .with_ymd_and_hms(2026, 5, 1, 12, 0, 0)
        .single()
        .unwrap_or_default();
    let ally = Ally::new(
        Config::default(),
        Rc::clone(&storage),
        NoMailer,
        FixedClock(at),
        seed,
    );
    let mut dice = IdSource::new(seed);
    // What each user's stored metadata counter may be: a failed write may or may not have landed.
    let mut counters: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for step in 0..STEPS {
        let user = UserId::Number(1 + dice.next_u64() % USERS);
        let key = user.key();
        let fail = |what: String| format!("seed {seed}, step {step}: {what}");
        match dice.next_u64() % 4 {
            0 => {
                let draft = ResellerDraft {
                    user_id: Some(user.clone()),
                    company_name: Some(format!("Company {key}")),
                    ..ResellerDraft::default()
                };
                match run(ally.create_reseller(draft)) {
                    Ok(created) => {
                        let found = run(storage.inner.get("resellers", &created.value.id))
                            .ok()
                            .flatten();
                        if found.map(|r| r.version) != Some(1) {
                            return Err(fail(format!(
                                "created {} is not stored at version 1",
                                created.value.id
                            )));
                        }
                        counters.insert(key.clone(), vec![0]);
                    }
                    Err(Error::AlreadyExists { .. }) => {
                        if !stored(&storage).contains_key(&key) {
                            return Err(fail(format!(
                                "ALREADY_EXISTS for user {key} with no reseller stored"
                            )));
                        }
                    }
                    Err(Error::StorageFailed { .. } | Error::Conflict { .. }) => {
                        counters.entry(key.clone()).or_insert_with(|| vec![0]);
                    }
                    Err(other) => return Err(fail(format!("create: unexpected {other}"))),
                }
            }
            1 => {
                let Some(list) = stored(&storage).get(&key).cloned() else {
                    continue;
                };
                let id = list[0].0.clone();
                let next = counters
                    .get(&key)
                    .and_then(|c| c.iter().max().copied())
                    .unwrap_or(0)
                    + 1;
                match run(ally.update_reseller_metadata(&id, "n", Some(Value::from(next)))) {
                    Ok(updated) => {
                        let stored_now = run(storage.inner.get("resellers", &id)).ok().flatten();
                        if stored_now.map(|r| r.version) != Some(updated.version) {
                            return Err(fail(format!(
                                "update of {id} reported version {} but storage differs",
                                updated.version
                            )));
                        }
                        counters.insert(key.clone(), vec![next]);
                    }
                    Err(Error::StorageFailed { .. } | Error::Conflict { .. }) => {
                        counters.entry(key.clone()).or_default().push(next);
                    }
                    Err(other) => return Err(fail(format!("update: unexpected {other}"))),
                }
            }
            2 => match run(ally.find_reseller_by_user(&user)) {
                Ok(found) => {
                    let expected = stored(&storage).get(&key).map(|list| list[0].0.clone());
                    if found.map(|f| f.value.id) != expected {
                        return Err(fail(format!("findByUser({key}) disagrees with storage")));
                    }
                }
                Err(Error::StorageFailed { .. }) => {}
                Err(other) => return Err(fail(format!("find: unexpected {other}"))),
            },
            _ => match run(ally.list_resellers(&ResellerFilter::default())) {
                Ok(all) => {
                    let count: usize = stored(&storage).values().map(Vec::len).sum();
                    if all.len() != count {
                        return Err(fail(format!("list gave {} of {count}", all.len())));
                    }
                }
                Err(Error::StorageFailed { .. }) => {}
                Err(other) => return Err(fail(format!("list: unexpected {other}"))),
            },
        }
        // Invariants over the whole store after every step.
        for (user, list) in stored(&storage) {
            if list.len() != 1 {
                return Err(fail(format!("user {user} has {} resellers", list.len())));
            }
            let (id, version, data) = &list[0];
            let n = data["metadata"]["n"].as_i64().unwrap_or(0);
            let allowed = counters.get(&user).cloned().unwrap_or_default();
            if !allowed.contains(&n) && n != 0 {
                return Err(fail(format!(
                    "{id} holds n = {n}, never written (allowed {allowed:?})"
                )));
            }
            if *version < 1 {
                return Err(fail(format!("{id} has version {version}")));
            }
        }
    }
    Ok(storage.faults.get())
}

#[test]
fn reseller_operations_survive_faulty_storage() {
    let seeds: Vec<u64> = match std::env::var("ALLY_SIM_SEED") {
        Ok(seed) => vec![seed.parse().unwrap_or(0)],
        Err(_) => (1..=SEEDS).collect(),
    };
    let mut faults = 0;
    for seed in seeds {
        match simulate(seed) {
            Ok(n) => faults += n,
            Err(failure) => panic!("{failure}\nreplay: ALLY_SIM_SEED={seed} cargo test simulation"),
        }
    }
    assert!(
        faults > 100,
        "the simulation must actually inject faults (got {faults})"
    );
}

/// Polls two operations in turn until both are done, so that their storage calls interleave.
fn run_both<A: std::future::Future, B: std::future::Future>(a: A, b: B) -> (A::Output, B::Output) {
    use std::task::{Context, Poll, Waker};
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    let (mut done_a, mut done_b) = (None, None);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..POLLS_MAX {
        if done_a.is_none() {
            if let Poll::Ready(out) = a.as_mut().poll(&mut cx) {
                done_a = Some(out);
            }
        }
        if done_b.is_none() {
            if let Poll::Ready(out) = b.as_mut().poll(&mut cx) {
                done_b = Some(out);
            }
        }
        if let (Some(_), Some(_)) = (&done_a, &done_b) {
            break;
        }
    }
    match (done_a, done_b) {
        (Some(a), Some(b)) => (a, b),
        _ => panic!("two operations never finished"),
    }
}

/// A wallet operation, always with an idempotency key so that a failed attempt can be retried
/// until its outcome is known.
#[derive(Clone, Debug)]
enum WalletOp {
    TopUp(u64),
    Provision(u64),
    Bulk(Vec<u64>),
}

impl WalletOp {
    /// The balance change it makes when accepted.
    fn delta(&self) -> i128 {
        match self {
            Self::TopUp(n) => i128::from(*n),
            Self::Provision(n) => -i128::from(*n),
            Self::Bulk(items) => -items.iter().map(|&n| i128::from(n)).sum::<i128>(),
        }
    }
}

/// How many attempts a retried operation gets; each has a fair chance, so running out means a
/// retry does not converge.
const ATTEMPTS_MAX: usize = 60;

/// Performs `op`, retrying `STORAGE_FAILED` and `CONFLICT` with the same key.
async fn settle<S: Storage>(
    ally: &Ally<S, NoMailer, FixedClock>,
    wallet: &str,
    op: &WalletOp,
    key: &str,
) -> Result<super::Applied, Error> {
    use crate::domain::ledger::Movement;
    use crate::domain::money::Credits;
    let credits = |n: u64| Credits::new(n).unwrap_or_default();
    let mut last = None;
    for _ in 0..ATTEMPTS_MAX {
        let key = Some(key.to_owned());
        let outcome = match op {
            WalletOp::TopUp(n) => ally.add_credits(wallet, credits(*n), None, key).await,
            WalletOp::Provision(n) => ally.provision(wallet, credits(*n), None, key).await,
            WalletOp::Bulk(items) => {
                let items = items
                    .iter()
                    .map(|&n| Movement {
                        amount: credits(n),
                        memo: Some(format!("item of {n}")),
                    })
                    .collect();
                ally.provision_bulk(wallet, items, key).await
            }
        };
        match outcome {
            Err(e @ (Error::StorageFailed { .. } | Error::Conflict { .. })) => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or(Error::Conflict {
        entity: "simulation",
        key: key.to_owned(),
        attempts: 0,
    }))
}

/// What the model knows of one wallet: the balance accepted operations add up to, and their
/// keys with the number of entries each wrote.
#[derive(Default)]
struct WalletModel {
    balance: i128,
    accepted: BTreeMap<String, usize>,
    refused: Vec<String>,
}

fn check_wallet(inner: &MemoryStorage, wallet: &str, model: &WalletModel) -> Result<(), String> {
    use crate::domain::ledger::{audit, Entry};
    let texts = run(inner.read(&format!("ledger:{wallet}"), 0, u32::MAX)).unwrap_or_default();
    let mut entries = Vec::with_capacity(texts.len());
    for text in &texts {
        let json: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let (entry, flaws) = Entry::from_json(json, "entry").map_err(|e| e.to_string())?;
        if !flaws.is_empty() {
            return Err(format!("{wallet} holds a flawed entry: {flaws:?}"));
        }
        entries.push(entry);
    }
    let mut keys: BTreeMap<String, usize> = BTreeMap::new();
    let mut current = None;
    for entry in &entries {
        if let Some(key) = &entry.idempotency_key {
            current = Some(key.clone());
            *keys.entry(key.clone()).or_default() += 1;
        } else if let (Some(key), Some(_)) = (&current, entry.batch) {
            *keys.entry(key.clone()).or_default() += 1;
        }
    }
    let report = audit(
        entries.into_iter().map(|e| (e, Default::default())),
        Some(wallet.to_owned()),
        0,
    );
    if !report.ok {
        return Err(format!(
            "{wallet} does not validate: {:?}",
            report.violations
        ));
    }
    if report.balance != model.balance {
        return Err(format!(
            "{wallet} holds {} credits, the accepted operations add up to {}",
            report.balance, model.balance
        ));
    }
    if keys != model.accepted {
        return Err(format!(
            "{wallet} holds operations {keys:?}, accepted were {:?}",
            model.accepted
        ));
    }
    if let Some(key) = model.refused.iter().find(|k| keys.contains_key(*k)) {
        return Err(format!("{wallet} holds refused operation {key}"));
    }
    check_claims(inner, wallet, &texts)?;
    check_checkpoint(inner, wallet, &texts)
}

/// Every key an entry holds is claimed at that entry's position, and nothing else is claimed.
fn check_claims(inner: &MemoryStorage, wallet: &str, texts: &[String]) -> Result<(), String> {
    let stream = format!("ledger:{wallet}");
    for (position, text) in texts.iter().enumerate() {
        let json: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if let Some(key) = json.get("idempotencyKey").and_then(Value::as_str) {
            let claimed = run(inner.find_claim(&stream, key)).map_err(|e| e.reason)?;
            if claimed != Some(position as u64) {
                return Err(format!(
                    "{wallet}: key {key} sits at {position}, is claimed at {claimed:?}"
                ));
            }
        }
    }
    Ok(())
}

/// The stored checkpoint, when there is one, is exactly the replay of the entries it covers.
fn check_checkpoint(inner: &MemoryStorage, wallet: &str, texts: &[String]) -> Result<(), String> {
    use crate::domain::analytics::DayVolumes;
    use crate::domain::ledger::checkpoint::Checkpoint;
    use crate::domain::ledger::{Entry, EntryKind, Wallet};
    let Some(record) = run(inner.get("wallets", wallet)).map_err(|e| e.reason)? else {
        return Ok(());
    };
    let data: Value = serde_json::from_str(&record.data).map_err(|e| e.to_string())?;
    let Some(stored) = data.get("checkpoint").filter(|c| !c.is_null()) else {
        return Ok(());
    };
    let checkpoint = Checkpoint::from_json(stored, "checkpoint").map_err(|e| e.to_string())?;
    let covered = usize::try_from(checkpoint.length).unwrap_or(usize::MAX);
    if covered > texts.len() {
        return Err(format!(
            "{wallet}: the checkpoint covers {covered} entries, the stream holds {}",
            texts.len()
        ));
    }
    let threshold = Config::default().low_credit_threshold;
    let mut replay = Wallet::new(Some(wallet.to_owned()), 0, threshold);
    let mut volumes = DayVolumes::default();
    for text in &texts[..covered] {
        let (entry, flaws) = Entry::from_json_text(text, "entry").map_err(|e| e.to_string())?;
        replay.apply(&entry, &flaws);
        volumes.add(entry.at_ms, entry.kind == EntryKind::Credit, entry.amount);
    }
    let expected = replay.checkpoint(&volumes);
    if expected.as_ref() != Some(&checkpoint) {
        return Err(format!(
            "{wallet}: the checkpoint at {covered} is {checkpoint:?}, the replay gives {expected:?}"
        ));
    }
    Ok(())
}

/// Answers the faults injected, how many wallets ended with a checkpoint, and how many queued
/// requests a lock holder settled for the other instance.
fn simulate_wallets(seed: u64) -> Result<(u64, u64, u64), String> {
    use crate::domain::ledger::EntryKind;
    let inner = Rc::new(MemoryStorage::new());
    let at = Utc
        .with_ymd_and_hms(2026, 5, 1, 12, 0, 0)
        .single()
        .unwrap_or_default();
    // Even seeds run on a storage with stream locks, odd ones on one without; every other
    // storage with locks also combines requests.
    let locks = (seed % 2 == 0).then(|| {
        Rc::new(LockTable {
            combines: seed % 4 == 0,
            ..LockTable::default()
        })
    });
    let faulty = |salt: u64| {
        Rc::new(FaultyStorage {
            inner: Rc::clone(&inner),
            dice: std::cell::RefCell::new(IdSource::new(seed ^ salt)),
            faults: Cell::new(0),
            locks: locks.clone(),
        })
    };
    let (storage_a, storage_b) = (faulty(0xA), faulty(0xB));
    let config = Config::default();
    let a = Ally::new(
        config.clone(),
        Rc::clone(&storage_a),
        NoMailer,
        FixedClock(at),
        seed,
    );
    let b = Ally::new(
        config,
        Rc::clone(&storage_b),
        NoMailer,
        FixedClock(at),
        !seed,
    );
    // Resellers are made on the clean store: the simulation is about their wallets.
    let clean = Ally::new(
        Config::default(),
        Rc::clone(&inner),
        NoMailer,
        FixedClock(at),
        seed ^ 0xC1EA,
    );
    let mut wallets = Vec::new();
    for user in 1..=3u64 {
        let draft = ResellerDraft {
            user_id: Some(UserId::Number(user)),
            company_name: Some(format!("Wallet {user}")),
            ..ResellerDraft::default()
        };
        let id = run(clean.create_reseller(draft))
            .map_err(|e| e.to_string())?
            .value
            .id;
        wallets.push(id);
    }
    let mut models: Vec<WalletModel> = wallets.iter().map(|_| WalletModel::default()).collect();
    let mut dice = IdSource::new(seed);
    let mut next_key = 0u64;
    for step in 0..WALLET_STEPS {
        let fail = |what: String| format!("seed {seed}, step {step}: {what}");
        let mut pick = || {
            let w = (dice.next_u64() % 3) as usize;
            let op = match dice.next_u64() % 5 {
                0 | 1 => WalletOp::TopUp(1 + dice.next_u64() % 400),
                2 | 3 => WalletOp::Provision(1 + dice.next_u64() % 250),
                _ => {
                    let n = 1 + dice.next_u64() % 4;
                    WalletOp::Bulk((0..n).map(|_| 1 + dice.next_u64() % 120).collect())
                }
            };
            next_key += 1;
            (w, op, format!("op-{next_key}"))
        };
        let (first, second) = (pick(), pick());
        // Usually two instances race; sometimes both operations go through one instance, and
        // sometimes one goes through a fresh instance that resumes from the checkpoint.
        let same_instance = dice.next_u64() % 4 == 0;
        let restarted = dice.next_u64() % 5 == 0;
        let fresh = Ally::new(
            Config::default(),
            faulty(0xF00 ^ step as u64),
            NoMailer,
            FixedClock(at),
            seed ^ 0xF00 ^ step as u64,
        );
        let (out_1, out_2) = if restarted {
            run_both(
                settle(&fresh, &wallets[first.0], &first.1, &first.2),
                settle(&b, &wallets[second.0], &second.1, &second.2),
            )
        } else if same_instance {
            run_both(
                settle(&a, &wallets[first.0], &first.1, &first.2),
                settle(&a, &wallets[second.0], &second.1, &second.2),
            )
        } else {
            run_both(
                settle(&a, &wallets[first.0], &first.1, &first.2),
                settle(&b, &wallets[second.0], &second.1, &second.2),
            )
        };
        for ((w, op, key), outcome) in [(first, out_1), (second, out_2)] {
            let model = &mut models[w];
            match outcome {
                Ok(applied) => {
                    let size = match &op {
                        WalletOp::Bulk(items) => items.len(),
                        _ => 1,
                    };
                    let kind = match op {
                        WalletOp::TopUp(_) => EntryKind::Credit,
                        _ => EntryKind::Debit,
                    };
                    if applied.entries.len() != size
                        || applied.entries.iter().any(|e| e.kind != kind)
                    {
                        return Err(fail(format!("{key} answered {:?}", applied.entries)));
                    }
                    model.balance += op.delta();
                    model.accepted.insert(key, size);
                }
                Err(Error::InsufficientCredits { .. }) if !matches!(op, WalletOp::TopUp(_)) => {
                    model.refused.push(key);
                }
                Err(other) => return Err(fail(format!("{key} ({op:?}): unexpected {other}"))),
            }
        }
        for (wallet, model) in wallets.iter().zip(&models) {
            check_wallet(&inner, wallet, model).map_err(&fail)?;
        }
        // A read through a faulty instance agrees with the model whenever it answers; now and
        // then the reader is a fresh instance (a restarted process), which resumes from the
        // checkpoint and replays only the entries after it.
        let w = (dice.next_u64() % 3) as usize;
        let cold = Ally::new(
            Config::default(),
            faulty(step as u64),
            NoMailer,
            FixedClock(at),
            seed ^ step as u64,
        );
        let reader = match dice.next_u64() % 4 {
            0 => &a,
            1 => &b,
            _ => &cold,
        };
        if let Ok(balance) = run(reader.balance(&wallets[w])) {
            if i128::from(balance.get()) != models[w].balance {
                return Err(fail(format!(
                    "balance of {} read {balance}, expected {}",
                    wallets[w], models[w].balance
                )));
            }
        }
    }
    let refused: usize = models.iter().map(|m| m.refused.len()).sum();
    if refused == 0 {
        return Err(format!("seed {seed}: no operation was ever refused"));
    }
    if let Some(table) = &locks {
        let held = table.held.borrow();
        if !held.is_empty() {
            return Err(format!(
                "seed {seed}: locks still held at the end: {held:?}"
            ));
        }
        if table.taken.get() == 0 {
            return Err(format!("seed {seed}: no request ever took a stream lock"));
        }
        // Every queued request was settled and is out of the queue: none left behind, taken
        // or not.
        let left = table.queue.borrow().len();
        if left != 0 {
            return Err(format!("seed {seed}: {left} queued requests left behind"));
        }
    }
    let checkpointed = wallets
        .iter()
        .filter(|w| {
            run(inner.get("wallets", w))
                .ok()
                .flatten()
                .is_some_and(|r| r.data.contains("\"checkpoint\":{"))
        })
        .count() as u64;
    Ok((
        storage_a.faults.get() + storage_b.faults.get(),
        checkpointed,
        locks.map_or(0, |table| table.answered.get()),
    ))
}

const WALLET_STEPS: usize = 150;
const WALLET_SEEDS: u64 = 24;

#[test]
fn wallet_operations_survive_faulty_storage_and_racing_instances() {
    let seeds: Vec<u64> = match std::env::var("ALLY_SIM_SEED") {
        Ok(seed) => vec![seed.parse().unwrap_or(0)],
        Err(_) => (1..=WALLET_SEEDS).collect(),
    };
    let (mut faults, mut checkpointed, mut combined) = (0, 0, 0);
    let all = seeds.len() > 1;
    for seed in seeds {
        match simulate_wallets(seed) {
            Ok((n, c, a)) => {
                faults += n;
                checkpointed += c;
                combined += a;
            }
            Err(failure) => panic!("{failure}\nreplay: ALLY_SIM_SEED={seed} cargo test simulation"),
        }
    }
    assert!(
        faults > 1_000,
        "the simulation must actually inject faults (got {faults})"
    );
    assert!(
        checkpointed > 0,
        "the simulation must run wallets past their checkpoints"
    );
    assert!(
        combined > 0 || !all,
        "the simulation must have a lock holder settle another instance's requests"
    );
}

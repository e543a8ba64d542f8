//! Seeded simulation: random reseller operations against a storage that fails before applying a
//! write, fails after applying it (the reply is lost), or reports a conflict that did not
//! happen. Invariants are checked after every step; a failure prints the seed that replays it
//! (`ALLY_SIM_SEED=<seed> cargo test simulation`).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use chrono::{TimeZone, Utc};
use serde_json::Value;

use super::executor::block_on;
use super::memory::MemoryStorage;
use super::ports::{
    FixedClock, NoMailer, Query, Storage, StorageError, StoredRecord, WriteOutcome,
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
    /// Answers `Stale` to a put without applying it, as if another writer had won.
    Conflict,
}

struct FaultyStorage {
    inner: MemoryStorage,
    dice: std::cell::RefCell<IdSource>,
    faults: Cell<u64>,
}

impl FaultyStorage {
    fn roll(&self, write: bool) -> Fault {
        let roll = self.dice.borrow_mut().next_u64() % 100;
        let fault = match roll {
            0..=7 => Fault::Before,
            8..=13 if write => Fault::After,
            14..=21 if write => Fault::Conflict,
            _ => Fault::None,
        };
        if fault != Fault::None {
            self.faults.set(self.faults.get() + 1);
        }
        fault
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
    ) -> Result<WriteOutcome, StorageError> {
        self.inner.append(stream, expected, entries).await
    }

    async fn read(&self, stream: &str, from: u64, limit: u32) -> Result<Vec<String>, StorageError> {
        self.inner.read(stream, from, limit).await
    }
}

fn run<F: std::future::Future>(future: F) -> F::Output {
    block_on(future, 64).unwrap_or_else(|| panic!("the simulated storage suspended"))
}

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
        inner: MemoryStorage::new(),
        dice: std::cell::RefCell::new(IdSource::new(seed ^ 0x5EED)),
        faults: Cell::new(0),
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

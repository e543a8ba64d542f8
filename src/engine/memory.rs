//! The in-memory storage: the default, and the reference the conformance suite holds every other
//! adapter to.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::ports::{
    Answer, AppendOutcome, Claim, Combined, Guard, Query, Storage, StorageError, StoredRecord,
    WriteOutcome, TAIL_LEN_MAX,
};

#[derive(Debug, Default)]
struct Collection {
    records: BTreeMap<String, StoredRecord>,
    /// Index name → value → the ids of the records holding it, in id order: a lookup hashes
    /// the name and the value, then walks only that value's ids.
    index: HashMap<String, HashMap<String, BTreeSet<String>>>,
    /// (index, value) → id, for the fields a write declared unique.
    unique: HashMap<(String, String), String>,
}

/// One append-only stream: its entries and the keys claimed with them.
#[derive(Debug, Default)]
struct Stream {
    entries: Vec<String>,
    claims: HashMap<String, u64>,
}

#[derive(Debug, Default)]
struct State {
    collections: HashMap<String, Collection>,
    streams: HashMap<String, Stream>,
}

/// Records and streams in a `RefCell`: every method completes without suspending, so no borrow
/// is ever held across an `await`.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    state: RefCell<State>,
}

impl MemoryStorage {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How many records a collection holds (for tests and diagnostics).
    #[must_use]
    pub fn count(&self, collection: &str) -> usize {
        self.state
            .borrow()
            .collections
            .get(collection)
            .map_or(0, |c| c.records.len())
    }

    fn get_now(&self, collection: &str, id: &str) -> Option<StoredRecord> {
        self.state
            .borrow()
            .collections
            .get(collection)
            .and_then(|c| c.records.get(id).cloned())
    }

    fn find_now(&self, collection: &str, query: Query<'_>) -> Vec<StoredRecord> {
        let state = self.state.borrow();
        let Some(c) = state.collections.get(collection) else {
            return Vec::new();
        };
        let limit = query.limit as usize;
        match query.index {
            None => {
                let start = query.after.map_or(std::ops::Bound::Unbounded, |after| {
                    std::ops::Bound::Excluded(after.to_owned())
                });
                c.records
                    .range((start, std::ops::Bound::Unbounded))
                    .take(limit)
                    .map(|(_, record)| record.clone())
                    .collect()
            }
            Some((name, value)) => {
                let Some(ids) = c.index.get(name).and_then(|values| values.get(value)) else {
                    return Vec::new();
                };
                let start = query
                    .after
                    .map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
                ids.range::<str, _>((start, std::ops::Bound::Unbounded))
                    .take(limit)
                    .filter_map(|id| c.records.get(id).cloned())
                    .collect()
            }
        }
    }

    fn put_now(
        &self,
        collection: &str,
        record: &StoredRecord,
        expected_version: u64,
        unique: &[&str],
    ) -> Result<WriteOutcome, StorageError> {
        if record.version != expected_version.wrapping_add(1) {
            return Err(StorageError {
                reason: format!(
                    "record version {} does not follow expected version {expected_version}",
                    record.version
                ),
            });
        }
        let mut state = self.state.borrow_mut();
        let c = state.collections.entry(collection.to_owned()).or_default();
        let current = c.records.get(&record.id);
        if current.map_or(0, |r| r.version) != expected_version {
            return Ok(WriteOutcome::Stale);
        }
        for &name in unique {
            let Some((_, value)) = record.indexes.iter().find(|(n, _)| n == name) else {
                return Err(StorageError {
                    reason: format!("unique index \"{name}\" is not among the record's indexes"),
                });
            };
            if let Some(holder) = c.unique.get(&(name.to_owned(), value.clone())) {
                if holder != &record.id {
                    return Ok(WriteOutcome::Duplicate {
                        index: name.to_owned(),
                    });
                }
            }
        }
        // Checks passed: replace the record and its index entries in one step.
        if let Some(old) = c.records.remove(&record.id) {
            for (name, value) in old.indexes {
                if let Some(values) = c.index.get_mut(&name) {
                    if let Some(ids) = values.get_mut(&value) {
                        ids.remove(&old.id);
                        if ids.is_empty() {
                            values.remove(&value);
                        }
                    }
                }
                if c.unique.get(&(name.clone(), value.clone())) == Some(&old.id) {
                    c.unique.remove(&(name, value));
                }
            }
        }
        for (name, value) in &record.indexes {
            c.index
                .entry(name.clone())
                .or_default()
                .entry(value.clone())
                .or_default()
                .insert(record.id.clone());
            if unique.contains(&name.as_str()) {
                c.unique
                    .insert((name.clone(), value.clone()), record.id.clone());
            }
        }
        c.records.insert(record.id.clone(), record.clone());
        Ok(WriteOutcome::Written)
    }

    fn append_now(
        &self,
        stream: &str,
        expected_length: u64,
        entries: &[String],
        claims: &[Claim<'_>],
        guard: Option<Guard<'_>>,
    ) -> AppendOutcome {
        let mut state = self.state.borrow_mut();
        let guarded = guard.is_none_or(|g| {
            state
                .collections
                .get(g.collection)
                .and_then(|c| c.records.get(g.id))
                .is_some_and(|r| r.version == g.version)
        });
        let log = state.streams.entry(stream.to_owned()).or_default();
        if log.entries.len() as u64 != expected_length {
            let from = usize::try_from(expected_length)
                .unwrap_or(usize::MAX)
                .min(log.entries.len());
            let tail = log.entries[from..].iter().take(TAIL_LEN_MAX).cloned();
            return AppendOutcome::Stale {
                tail: Some(tail.collect()),
            };
        }
        if !guarded {
            return AppendOutcome::Changed;
        }
        for (i, claim) in claims.iter().enumerate() {
            let repeated = claims[..i].iter().any(|c| c.key == claim.key);
            if repeated || log.claims.contains_key(claim.key) {
                return AppendOutcome::Claimed {
                    key: claim.key.to_owned(),
                };
            }
        }
        log.entries.extend_from_slice(entries);
        for claim in claims {
            log.claims.insert(claim.key.to_owned(), claim.position);
        }
        AppendOutcome::Written
    }

    fn read_now(&self, stream: &str, from: u64, limit: u32) -> Vec<String> {
        let state = self.state.borrow();
        let Some(log) = state.streams.get(stream) else {
            return Vec::new();
        };
        let from = usize::try_from(from)
            .unwrap_or(usize::MAX)
            .min(log.entries.len());
        log.entries[from..]
            .iter()
            .take(limit as usize)
            .cloned()
            .collect()
    }

    fn find_claim_now(&self, stream: &str, key: &str) -> Option<u64> {
        let state = self.state.borrow();
        state.streams.get(stream)?.claims.get(key).copied()
    }
}

impl Storage for MemoryStorage {
    async fn get(&self, collection: &str, id: &str) -> Result<Option<StoredRecord>, StorageError> {
        Ok(self.get_now(collection, id))
    }

    async fn find(
        &self,
        collection: &str,
        query: Query<'_>,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        Ok(self.find_now(collection, query))
    }

    async fn put(
        &self,
        collection: &str,
        record: &StoredRecord,
        expected_version: u64,
        unique: &[&str],
    ) -> Result<WriteOutcome, StorageError> {
        self.put_now(collection, record, expected_version, unique)
    }

    async fn append(
        &self,
        stream: &str,
        expected_length: u64,
        entries: &[String],
        claims: &[Claim<'_>],
        guard: Option<Guard<'_>>,
        _held: bool,
    ) -> Result<AppendOutcome, StorageError> {
        // One process, no stream locks: the slot lock orders an instance's requests.
        Ok(self.append_now(stream, expected_length, entries, claims, guard))
    }

    async fn read(&self, stream: &str, from: u64, limit: u32) -> Result<Vec<String>, StorageError> {
        Ok(self.read_now(stream, from, limit))
    }

    async fn find_claim(&self, stream: &str, key: &str) -> Result<Option<u64>, StorageError> {
        Ok(self.find_claim_now(stream, key))
    }
}

/// Shared storage: several engines (or a test and an engine) may hold the same store.
impl<S: Storage> Storage for std::rc::Rc<S> {
    async fn get(&self, collection: &str, id: &str) -> Result<Option<StoredRecord>, StorageError> {
        (**self).get(collection, id).await
    }

    async fn find(
        &self,
        collection: &str,
        query: Query<'_>,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        (**self).find(collection, query).await
    }

    async fn put(
        &self,
        collection: &str,
        record: &StoredRecord,
        expected_version: u64,
        unique: &[&str],
    ) -> Result<WriteOutcome, StorageError> {
        (**self)
            .put(collection, record, expected_version, unique)
            .await
    }

    async fn append(
        &self,
        stream: &str,
        expected_length: u64,
        entries: &[String],
        claims: &[Claim<'_>],
        guard: Option<Guard<'_>>,
        held: bool,
    ) -> Result<AppendOutcome, StorageError> {
        (**self)
            .append(stream, expected_length, entries, claims, guard, held)
            .await
    }

    async fn read(&self, stream: &str, from: u64, limit: u32) -> Result<Vec<String>, StorageError> {
        (**self).read(stream, from, limit).await
    }

    async fn find_claim(&self, stream: &str, key: &str) -> Result<Option<u64>, StorageError> {
        (**self).find_claim(stream, key).await
    }

    async fn lock(&self, stream: &str, from: u64) -> Result<Option<Vec<String>>, StorageError> {
        (**self).lock(stream, from).await
    }

    async fn unlock(&self, stream: &str) -> Result<(), StorageError> {
        (**self).unlock(stream).await
    }

    async fn combine(
        &self,
        stream: &str,
        from: u64,
        request: &str,
    ) -> Result<Option<Combined>, StorageError> {
        (**self).combine(stream, from, request).await
    }

    async fn append_answering(
        &self,
        stream: &str,
        expected_length: u64,
        entries: &[String],
        claims: &[Claim<'_>],
        guard: Option<Guard<'_>>,
        answers: &[Answer<'_>],
    ) -> Result<AppendOutcome, StorageError> {
        (**self)
            .append_answering(stream, expected_length, entries, claims, guard, answers)
            .await
    }
}

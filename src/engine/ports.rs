//! The host ports: the engine's only ways to persist, to send mail and to read the time.
//!
//! The traits use `async fn` without `Send` bounds on purpose: the engine runs on one thread (a
//! wasm instance, or a native test), and a host's storage may answer synchronously or with a
//! Promise. Implementations: [`super::memory::MemoryStorage`] here, the JS host objects in the
//! bindings, and the PostgreSQL adapter shipped with the package.

use chrono::{DateTime, Utc};

/// One stored record: opaque JSON text plus the fields it is indexed under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub id: String,
    /// 1 for a new record, +1 on every write.
    pub version: u64,
    /// The record as JSON text; storage keeps it as given.
    pub data: String,
    /// Indexed fields: `(name, value)`; a name appears at most once.
    pub indexes: Vec<(String, String)>,
}

/// Which records a [`Storage::find`] reads: one collection, optionally one index value, in id
/// order, after a cursor, at most `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Query<'a> {
    pub index: Option<(&'a str, &'a str)>,
    pub after: Option<&'a str>,
    pub limit: u32,
}

/// How a conditional write ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Applied.
    Written,
    /// The stored version (or stream length) was not the expected one: nothing was written.
    Stale,
    /// Another record holds this value of a unique index: nothing was written.
    Duplicate { index: String },
}

/// How an append ended. Nothing was written unless it is `Written`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendOutcome {
    Written,
    /// The stream does not hold the expected number of entries. `tail`, when the storage gives
    /// it, is what the stream holds from the expected length on (at most [`TAIL_LEN_MAX`]
    /// entries): the caller catches up without a read of its own.
    Stale {
        tail: Option<Vec<String>>,
    },
    /// The guard's record is missing or at another version.
    Changed,
    /// A claim names a key the stream has claimed already (or twice).
    Claimed {
        key: String,
    },
}

/// The most entries a stale append hands back.
pub const TAIL_LEN_MAX: usize = 500;

/// A record an append depends on: it goes ahead only while `id` of `collection` is at
/// `version`. A provision names its reseller this way, so that a warm instance need not read
/// the reseller before every append and still never spends for a reseller suspended since.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guard<'a> {
    pub collection: &'a str,
    pub id: &'a str,
    pub version: u64,
}

/// An idempotency key claimed atomically with an append: unique within its stream, it names the
/// position (0-based) of the entry that holds it, so the key is answered later by one lookup
/// instead of a replay of the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim<'a> {
    pub key: &'a str,
    pub position: u64,
}

/// A request queued by [`Storage::combine`] for the stream's lock holder: its id in the queue
/// and its text, as the engine that queued it wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queued {
    pub id: u64,
    pub request: String,
}

/// How [`Storage::combine`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Combined {
    /// A holder of the stream's lock settled the request: the answer it wrote.
    Answered(String),
    /// The caller holds the stream's lock, as [`Storage::lock`] gives it: the stream's entries
    /// from `from` on (at most [`TAIL_LEN_MAX`]), and the requests other callers queued that no
    /// holder has answered (at most [`QUEUED_MAX`]; the caller's own is not among them). It
    /// settles them with its own, and answers each with [`Storage::append_answering`].
    Lead {
        tail: Vec<String>,
        queued: Vec<Queued>,
    },
}

/// The most queued requests one [`Combined::Lead`] hands over.
pub const QUEUED_MAX: usize = 64;

/// The answer a lock holder gives a queued request, written with its append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer<'a> {
    pub id: u64,
    pub answer: &'a str,
}

/// A storage call that threw, rejected or answered outside the contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageError {
    pub reason: String,
}

/// Persistence. Every method may fail; a failure must leave nothing half-written.
///
/// Contract:
/// - `get` reads one record by id, or `None`.
/// - `find` reads records of a collection in ascending id order, filtered by one index value when
///   `query.index` is set, starting after `query.after`, at most `query.limit` of them.
/// - `put` is compare-and-set: it writes `record` only if the stored version equals
///   `expected_version` (0: the record must not exist), and only if no other record of the
///   collection holds the same value of any index named in `unique`. `record.version` is
///   `expected_version + 1`.
/// - `append` adds `entries` to the end of a stream atomically (all or none), with `claims`, only
///   if the stream holds exactly `expected_length` entries (else `Stale`, with the tail when the
///   storage can give it), the `guard` record is at its version (else `Changed`), and the stream
///   claims no key of `claims` yet (else `Claimed`, naming one such key; a key twice in `claims`
///   is claimed too), checked in that order. `held`: the caller holds the stream's lock (from
///   `lock`), so the storage may end the hold with this append, whatever its answer (the caller
///   still calls `unlock`, and a lost hold costs only the wait of its next request).
/// - `read` returns up to `limit` entries of a stream from position `from` (0-based).
/// - `find_claim` answers the position a key was claimed at in a stream, or `None`.
/// - `lock`, `unlock`, `combine` and `append_answering` are optional (see each).
#[allow(async_fn_in_trait)] // single-threaded by design: no `Send` bound is wanted
pub trait Storage {
    async fn get(&self, collection: &str, id: &str) -> Result<Option<StoredRecord>, StorageError>;
    async fn find(
        &self,
        collection: &str,
        query: Query<'_>,
    ) -> Result<Vec<StoredRecord>, StorageError>;
    async fn put(
        &self,
        collection: &str,
        record: &StoredRecord,
        expected_version: u64,
        unique: &[&str],
    ) -> Result<WriteOutcome, StorageError>;
    async fn append(
        &self,
        stream: &str,
        expected_length: u64,
        entries: &[String],
        claims: &[Claim<'_>],
        guard: Option<Guard<'_>>,
        held: bool,
    ) -> Result<AppendOutcome, StorageError>;
    async fn read(&self, stream: &str, from: u64, limit: u32) -> Result<Vec<String>, StorageError>;
    async fn find_claim(&self, stream: &str, key: &str) -> Result<Option<u64>, StorageError>;

    /// Optional: a lock on a stream across processes. Waits until this caller holds it, then
    /// answers the stream's entries from `from` on (at most [`TAIL_LEN_MAX`]), as `read` would
    /// once the previous holder's append is visible. `None`: the storage has no locks, and
    /// concurrent appenders are settled by the conditional append alone (still correct, with
    /// more retries under contention).
    async fn lock(&self, _stream: &str, _from: u64) -> Result<Option<Vec<String>>, StorageError> {
        Ok(None)
    }

    /// Releases a lock `lock` gave.
    async fn unlock(&self, _stream: &str) -> Result<(), StorageError> {
        Ok(())
    }

    /// Optional, with `lock` and `append_answering`: queues `request` for whoever holds the
    /// stream's lock, then waits for the lock. Answers [`Combined::Answered`] when a holder
    /// settled the request meanwhile (the lock is not held then), or [`Combined::Lead`] when the
    /// caller holds the lock and the request was not settled (it is out of the queue: no other
    /// holder will see it). `None`: the storage does not combine requests, or the lock could not
    /// be had and the request was taken out of the queue unsettled; nothing is held.
    ///
    /// A queued request is settled at most once: a holder that hands it over with a lead has
    /// taken it, and it is answered only in the commit of that holder's written append. A taken
    /// request whose holder ended without a written append goes to the next lead.
    async fn combine(
        &self,
        _stream: &str,
        _from: u64,
        _request: &str,
    ) -> Result<Option<Combined>, StorageError> {
        Ok(None)
    }

    /// A held `append` (its contract, `held` true) that, when written, also writes `answers`
    /// for the queued requests of the caller's lead, in the same commit, and may end the hold;
    /// otherwise it writes nothing of either and keeps the hold (the requests stay taken by this
    /// caller, who decides them again). Every queued request of the lead is answered, and a
    /// written append whose answers cannot all be written (a requester gave up) fails as a
    /// whole. Only a storage that combines requests is asked.
    async fn append_answering(
        &self,
        _stream: &str,
        _expected_length: u64,
        _entries: &[String],
        _claims: &[Claim<'_>],
        _guard: Option<Guard<'_>>,
        _answers: &[Answer<'_>],
    ) -> Result<AppendOutcome, StorageError> {
        Err(StorageError {
            reason: "this storage does not combine requests".to_owned(),
        })
    }
}

pub use crate::domain::notice::MailMessage;

/// A mail send that threw or rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailError {
    pub reason: String,
}

/// Outgoing mail. A failed send never undoes the operation that caused it.
#[allow(async_fn_in_trait)] // single-threaded by design: no `Send` bound is wanted
pub trait Mailer {
    async fn send(&self, message: &MailMessage) -> Result<(), MailError>;
}

/// The time. Hosts may inject a fixed one in tests.
pub trait Clock {
    /// The current instant, or why it could not be read.
    fn now(&self) -> Result<DateTime<Utc>, String>;
}

/// A mailer that accepts every message and keeps none: the default when a host gives no mailer.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoMailer;

impl Mailer for NoMailer {
    async fn send(&self, _message: &MailMessage) -> Result<(), MailError> {
        Ok(())
    }
}

/// A clock that always answers the same instant.
#[derive(Clone, Copy, Debug)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> Result<DateTime<Utc>, String> {
        Ok(self.0)
    }
}

/// The operating system's clock (native hosts and tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Result<DateTime<Utc>, String> {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?;
        let millis = i64::try_from(since_epoch.as_millis()).map_err(|e| e.to_string())?;
        DateTime::from_timestamp_millis(millis).ok_or_else(|| "clock out of range".to_owned())
    }
}

//! The engine performs what the domain decides: it loads state through the ports, asks the
//! domain, and writes with optimistic concurrency (bounded retries on a version conflict).

mod analytics;
#[cfg(test)]
#[path = "engine/tests/analytics.rs"]
mod analytics_tests;
mod applications;
mod clients;
#[cfg(test)]
#[path = "engine/tests/commissions.rs"]
mod commission_tests;
mod commissions;
pub mod events;
pub mod executor;
mod health;
#[cfg(test)]
#[path = "engine/tests/health.rs"]
mod health_tests;
mod lock;
pub mod memory;
mod payments;
#[cfg(test)]
#[path = "engine/tests/periods.rs"]
mod period_tests;
mod periods;
pub mod ports;
mod resellers;
// The seeded simulations: test code, kept under `tests/`.
#[cfg(test)]
#[path = "engine/tests/simulation.rs"]
mod simulation;
// What the tests above share.
#[cfg(test)]
#[path = "engine/tests/support.rs"]
mod test_support;
#[cfg(test)]
#[path = "engine/tests/wallets.rs"]
mod wallet_tests;
mod wallets;
mod workflows;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use chrono::{DateTime, Datelike, Utc};

use crate::domain::config::Config;
use crate::domain::ids::IdSource;
use crate::domain::{Error, Result};
use ports::{Clock, Mailer, Query, Storage, StorageError, StoredRecord};

pub use analytics::{ResellerStats, Segmentation, TopReseller, TOP_LIMIT_MAX};
pub use commissions::{
    check_description, CommissionBalance, LineFilter, ProcessSummary, Progress, DESCRIPTION_LEN_MAX,
};
pub use health::{check_note, HealthAlertEvent, Recorded, ACCOUNT_MANAGER_KEY, NOTE_LEN_MAX};
pub use payments::{ChildAccountsRevenue, ClientRevenue, PaymentInput};
pub use resellers::{ResellerFilter, Versioned};
pub use wallets::{
    Applied, CreditCheck, LowCreditEvent, TransactionsPage, WalletAudit, APPEND_ATTEMPTS_MAX,
    CHECKPOINT_INTERVAL, HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX,
};
pub use workflows::LIFECYCLE_HISTORY_MAX;

/// How many times a write retries after losing a compare-and-set race before `CONFLICT`.
pub const RETRY_COUNT_MAX: u32 = 8;
/// How many fresh identifiers a create tries before giving up (a collision is already unlikely).
pub const ID_ATTEMPTS_MAX: u32 = 4;
/// The most records one storage read may return.
pub const PAGE_SIZE_MAX: u32 = 500;
/// The most resellers `list` returns.
pub const LIST_SIZE_MAX: usize = 10_000;
/// How many parsed reseller records an instance keeps for reuse before it starts afresh.
const PARSED_RESELLERS_MAX: usize = 100_000;

/// Parsed resellers by id, with the version and text they were parsed from.
type ParsedResellers = HashMap<String, (u64, String, Rc<crate::domain::reseller::Reseller>)>;

/// One engine instance: configuration, ports and an identifier source.
pub struct Ally<S, M, C> {
    config: Config,
    storage: S,
    mailer: M,
    clock: C,
    ids: RefCell<IdSource>,
    wallets: wallets::Wallets,
    parsed: RefCell<ParsedResellers>,
    observer: Option<events::Observer>,
    /// Whether every stored client is known to carry today's indexes.
    client_indexes_done: std::cell::Cell<bool>,
    /// One backfill of the client indexes at a time in this instance.
    client_indexes_lock: lock::Lock,
}

impl<S: Storage, M: Mailer, C: Clock> Ally<S, M, C> {
    /// `id_seed` seeds identifier generation: from a cryptographic source in production, fixed in
    /// tests so that runs replay.
    pub fn new(config: Config, storage: S, mailer: M, clock: C, id_seed: u64) -> Self {
        Self {
            config,
            storage,
            mailer,
            clock,
            ids: RefCell::new(IdSource::new(id_seed)),
            wallets: wallets::Wallets::default(),
            parsed: RefCell::default(),
            observer: None,
            client_indexes_done: std::cell::Cell::new(false),
            client_indexes_lock: lock::Lock::default(),
        }
    }

    /// Reports the engine's events to `observer` (see [`events::Event`]).
    #[must_use]
    pub fn with_observer(mut self, observer: events::Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Reports an event, when anyone listens.
    fn observe(&self, event: events::Event<'_>) {
        if let Some(observer) = &self.observer {
            observer(&event);
        }
    }

    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    #[must_use]
    pub fn storage(&self) -> &S {
        &self.storage
    }

    #[must_use]
    pub fn mailer(&self) -> &M {
        &self.mailer
    }

    /// One page of `find` over a collection (optionally one index value), after `after`, and
    /// the cursor of the next page: `None` when this page was the last.
    async fn find_page(
        &self,
        collection: &str,
        index: Option<(&str, &str)>,
        after: Option<&str>,
    ) -> Result<(Vec<StoredRecord>, Option<String>)> {
        let query = Query {
            index,
            after,
            limit: PAGE_SIZE_MAX,
        };
        let page = self
            .storage
            .find(collection, query)
            .await
            .map_err(storage_failed("find"))?;
        // Every page moves on: a storage that answered records at or before the cursor, or out
        // of order, would have a paging loop read the same page for ever.
        let ordered = page.windows(2).all(|w| w[0].id < w[1].id)
            && after.is_none_or(|after| page.first().is_none_or(|r| r.id.as_str() > after));
        if !ordered {
            return Err(Error::StorageFailed {
                operation: "find",
                reason: "find answered records out of id order, or not after its cursor".to_owned(),
            });
        }
        let next = if page.len() < PAGE_SIZE_MAX as usize {
            None
        } else {
            page.last().map(|r| r.id.clone())
        };
        Ok((page, next))
    }

    /// Every record of a collection (or of one index value), through all pages, each read by
    /// `read`.
    async fn find_all<T>(
        &self,
        collection: &str,
        index: Option<(&str, &str)>,
        read: impl Fn(StoredRecord) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (page, next) = self.find_page(collection, index, after.as_deref()).await?;
            for record in page {
                out.push(read(record)?);
            }
            match next {
                Some(cursor) => after = Some(cursor),
                None => return Ok(out),
            }
        }
    }

    /// Brings every record of `collection` to the indexes of `version`, once per storage: the
    /// state record `state`/`indexes` says, under `field`, which version is done. Until it says
    /// `version`, each record is handed to `reindex` (which writes it again, compare-and-set, if
    /// it lacks any), page by page, and then the state record is written (lost to another
    /// instance finishing the same work: nothing is left to do).
    async fn backfill_indexes(
        &self,
        state: &str,
        field: &str,
        version: u64,
        collection: &str,
        reindex: impl AsyncFn(StoredRecord) -> Result<()>,
    ) -> Result<()> {
        const KEY: &str = "indexes";
        let stored = self
            .storage
            .get(state, KEY)
            .await
            .map_err(storage_failed("get"))?;
        let done = stored
            .as_ref()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s.data).ok())
            .and_then(|v| v.get(field).and_then(serde_json::Value::as_u64))
            .unwrap_or(0);
        if done >= version {
            return Ok(());
        }
        let mut after: Option<String> = None;
        loop {
            let (page, next) = self.find_page(collection, None, after.as_deref()).await?;
            for record in page {
                reindex(record).await?;
            }
            match next {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        let at = stored.as_ref().map_or(0, |s| s.version);
        let marker = StoredRecord {
            id: KEY.to_owned(),
            version: at + 1,
            data: serde_json::json!({ field: version }).to_string(),
            indexes: Vec::new(),
        };
        self.put_at(state, &marker, at, &[]).await.map(|_| ())
    }

    /// Writes a record read at version `expected`, compare-and-set: `true` when written,
    /// `false` when another writer got there first (read again and retry). A duplicate of a
    /// unique index the write kept from the record it read is a storage fault.
    async fn put_at(
        &self,
        collection: &str,
        record: &StoredRecord,
        expected: u64,
        unique: &[&str],
    ) -> Result<bool> {
        let outcome = self
            .storage
            .put(collection, record, expected, unique)
            .await
            .map_err(storage_failed("put"))?;
        match outcome {
            ports::WriteOutcome::Written => Ok(true),
            ports::WriteOutcome::Stale => Ok(false),
            ports::WriteOutcome::Duplicate { index } => Err(Error::StorageFailed {
                operation: "put",
                reason: format!("unchanged unique index {index} reported as duplicate"),
            }),
        }
    }

    /// The clock's time, refused unless it lies in years 0000 to 9999: every record stores its
    /// times as ISO-8601 text, which holds no other year, so a time outside would be written and
    /// then fail every later read of the record.
    fn now(&self) -> Result<DateTime<Utc>> {
        let at = self.clock.now().map_err(|reason| Error::InvalidConfig {
            key: "clock".to_owned(),
            reason: format!("the clock could not be read: {reason}"),
        })?;
        if !(0..=9999).contains(&at.year()) {
            return Err(Error::InvalidConfig {
                key: "clock".to_owned(),
                reason: format!(
                    "the clock answered {}, outside years 0000 to 9999",
                    at.timestamp_millis()
                ),
            });
        }
        Ok(at)
    }
}

/// Maps a port failure to `STORAGE_FAILED`, naming the operation.
fn storage_failed(operation: &'static str) -> impl Fn(StorageError) -> Error {
    move |e| Error::StorageFailed {
        operation,
        reason: e.reason,
    }
}

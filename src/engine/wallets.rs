//! Credit wallets through the storage port: top-ups, provisions, bulk provisions, idempotency,
//! history, and the low-credit notification through the outbox.
//!
//! A wallet's entries live in one storage stream, `ledger:<reseller id>`; the wallet record in
//! `wallets` holds its checkpoint: the replayed state after some of them (see
//! [`ledger::checkpoint`]). An instance that meets a wallet for the first time resumes from the
//! checkpoint and replays only the entries after it, checking that they chain from its hash; it
//! then keeps the state and decides on it. The append names the length it expects, so a
//! decision made on a stale state is refused by the storage (which tells the instance it is
//! behind, with no read of its own) and made again after catching up. Idempotency keys are
//! claimed in the storage atomically with the append, so a key from any time is answered by one
//! lookup, and no instance keeps a set of keys or entry ids. Every [`CHECKPOINT_INTERVAL`]
//! entries, the instance that appended advances the checkpoint by compare-and-set.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use chrono::{DateTime, Datelike, Utc};
use serde_json::{json, Value};

use super::events::Event;
use super::lock::Lock;
use super::ports::{
    Answer, AppendOutcome, Claim, Clock, Combined, Guard, MailMessage, Mailer, Queued, Storage,
    StoredRecord, WriteOutcome,
};
use super::{storage_failed, Ally, PAGE_SIZE_MAX};
use crate::domain::analytics::DayVolumes;
use crate::domain::ledger::attestation::{self, Attestation, AttestationKey};
use crate::domain::ledger::checkpoint::Checkpoint;
use crate::domain::ledger::{
    self, Audit, Context, Decision, Entry, EntryFlaws, LowCredit, Movement, Wallet,
};
use crate::domain::money::Credits;
use crate::domain::notice::{self, LOW_CREDIT};
use crate::domain::reseller::{iso_time, Reseller};
use crate::domain::{Error, Result};

const WALLETS: &str = "wallets";
const OUTBOX: &str = "outbox";
const INDEX_STATUS: &str = "status";
const STATUS_PENDING: &str = "pending";
const STATUS_SENT: &str = "sent";
const STATUS_UNDELIVERABLE: &str = "undeliverable";

/// How many times an append retries after another writer got there first. Each round has a
/// winner, so the wallet always moves on; but one request can lose many rounds in a row to other
/// instances that each have a queue of their own requests (the concurrency test saw a run of
/// more than 64 with 4 processes × 250 queued provisions). The bound only stops a request that
/// keeps losing to a stream of others, so it sits well above any queue a test or host builds.
pub const APPEND_ATTEMPTS_MAX: u32 = 1_024;
/// The most entries `transactions` returns at once.
pub const HISTORY_LIMIT_MAX: u32 = 500;
/// The default of `transactions`: the dashboard's last ten.
pub const HISTORY_LIMIT_DEFAULT: u32 = 10;
/// How many entries past its checkpoint a wallet may run before the instance that appended
/// writes a new one: a cold start replays at most this many (plus one append's worth).
pub const CHECKPOINT_INTERVAL: u64 = 64;

fn stream(wallet_id: &str) -> String {
    format!("ledger:{wallet_id}")
}

/// An instance's view of one wallet.
#[derive(Debug)]
pub struct Slot {
    lock: Lock,
    /// How many more requests take the storage's lock on the stream before they decide: set
    /// when an append found that another process had appended first.
    contended: Cell<u32>,
    /// The wallet record as this instance last read or wrote it; `None` until the wallet is
    /// loaded (and again after a history that did not validate, so that it is read afresh).
    record: RefCell<Option<RecordState>>,
    state: RefCell<Wallet>,
    /// The replayed entries as totals per day, for the credit trends.
    volumes: RefCell<DayVolumes>,
    /// This instance's requests waiting for `lock`, first come first: the holder settles them
    /// with its own, in its append.
    waiting: RefCell<Vec<Rc<Waiting>>>,
}

/// A request of this instance waiting for its wallet's lock. The holder decides it after its
/// own, each on the state the previous leaves, with its own time and key, and writes them all
/// in one append (like the transfers of one batch); each requester then answers for itself.
#[derive(Debug)]
struct Waiting {
    request: Request,
    at: DateTime<Utc>,
    /// Whether a holder may settle it: a large bulk waits its own turn, and no later request
    /// is settled before it (first come, first served).
    batchable: bool,
    answer: RefCell<Option<WaitingAnswer>>,
}

/// A waiting request's place in its slot's list, left when dropped (answered, or given up).
struct InLine<'a> {
    slot: &'a Slot,
    waiting: Rc<Waiting>,
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        let mut waiting = self.slot.waiting.borrow_mut();
        if let Some(i) = waiting.iter().position(|w| Rc::ptr_eq(w, &self.waiting)) {
            waiting.remove(i);
        }
    }
}

/// What a holder did with a waiting request.
#[derive(Debug)]
enum WaitingAnswer {
    /// Its entries were written, under the guard of this reseller record (whose address the
    /// crossing's mail goes to).
    Written(Decision, Rc<Reseller>),
    /// Not written: refused, or its key claimed before; its requester settles it itself (and
    /// so names its own refusal, or answers it as a repeat).
    Unsettled,
    /// The append that held it failed: whether it was written is not known, so its requester
    /// fails as the holder did (a retry with its key is then answered either way).
    Failed(Error),
}

/// The most waiting requests, and items, one holder writes with its own.
const WAITING_MAX: usize = 64;
const WAITING_ITEMS_MAX: usize = 1_000;
/// How many appends a holder spends on waiting requests whose keys were claimed before, one
/// each, before it hands back every keyed one.
const CLAIMED_ROUNDS_MAX: u32 = 4;

/// What an instance knows of a wallet record.
#[derive(Clone, Debug)]
struct RecordState {
    version: u64,
    created_at: String,
    /// The length of the checkpoint it holds.
    checkpoint_length: u64,
}

/// How many wallets an instance keeps loaded before it forgets those not in use.
const WALLET_SLOTS_MAX: usize = 10_000;

/// How many requests after a lost append race take the storage's stream lock first.
const CONTENDED_RUN: u32 = 256;

/// What one request carries through its attempts.
struct Settling {
    reseller: Rc<Reseller>,
    /// The reseller record's version, the append's guard.
    version: u64,
    /// Whether this request holds the storage's lock on the stream.
    held: bool,
    /// Requests other instances queued for this one to settle with its own (its lead, from
    /// [`Storage::combine`]): decided again after an append that was not written (the hold goes
    /// on), until one is.
    queued: Vec<Queued>,
    /// Queued requests to answer unsettled: their key was claimed before.
    unsettled: Vec<u64>,
}

/// The most items a request may have to be queued for another instance to settle; a larger
/// bulk takes the stream's lock itself.
const QUEUED_ITEMS_MAX: usize = 100;

/// What one append writes: the entries of the requests it settles, as entries and as text, and
/// the keys they claim with the positions of their first entries.
#[derive(Default)]
struct Batch {
    entries: Vec<Entry>,
    texts: Vec<String>,
    claims: Vec<(String, u64)>,
}

impl Batch {
    fn add(&mut self, entries: &[Entry], key: Option<&str>, position: u64) {
        if let Some(key) = key {
            self.claims.push((key.to_owned(), position));
        }
        self.entries.extend_from_slice(entries);
        self.texts.extend(entries.iter().map(Entry::to_json_text));
    }
}

/// How a request settled.
enum Settled {
    /// Entries written for it.
    Written(Decision),
    /// Answered without a write: a repeated idempotency key.
    Answered(Box<Applied>),
}

/// How [`Ally::load`] found a wallet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loaded {
    /// Loaded before: the state may be behind other instances' appends.
    Warm,
    /// Resumed from its checkpoint just now and caught up with the stream.
    Fresh,
    /// There is no wallet (and none was to be created).
    Missing,
}

/// Which entries `transactions` answers: at most `limit`, newest first, with a sequence below
/// `before` and a time in `[since_ms, until_ms)`, each bound when given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransactionsPage {
    pub limit: u32,
    pub before: Option<u64>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

/// The wallets an instance has replayed.
#[derive(Debug, Default)]
pub struct Wallets {
    slots: RefCell<HashMap<String, Rc<Slot>>>,
}

/// What a provision or top-up ended with.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The entries written (or, for a repeated idempotency key, written the first time).
    pub entries: Vec<Entry>,
    /// True when an earlier request with the same idempotency key is being answered again.
    pub replayed: bool,
    /// The crossing this operation caused, to raise as a `lowCredit` event.
    pub low_credit: Option<LowCreditEvent>,
}

/// A `lowCredit` event: the reseller, the balance after the crossing, the threshold, the time.
#[derive(Clone, Debug, PartialEq)]
pub struct LowCreditEvent {
    pub reseller: Reseller,
    pub crossing: LowCredit,
    /// How the notification went: `sent`, `pending` (will be retried), `undeliverable`.
    pub notification: &'static str,
}

/// What [`Ally::audit_wallet`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletAudit {
    /// The replay of the whole stream.
    pub audit: Audit,
    /// The length of the stored checkpoint, when the wallet record holds one.
    pub checkpoint_length: Option<u64>,
    /// Whether the checkpoint equals the replay of the entries it covers (false as well when
    /// the stream is shorter than the checkpoint says).
    pub checkpoint_matches: bool,
}

impl WalletAudit {
    /// Sound end to end: the history validates and the checkpoint stands for it.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.audit.ok && self.checkpoint_matches
    }
}

/// What `checkCredits` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreditCheck {
    /// Wallets looked at.
    pub checked: u64,
    /// Crossings notified for the first time.
    pub notified: u64,
    /// Earlier notifications delivered on a retry.
    pub retried: u64,
    /// Notifications that failed again (they stay in the outbox).
    pub failed: u64,
}

/// A request to move credits: the entries the caller wants, with its idempotency key.
#[derive(Debug)]
struct Request {
    kind: RequestKind,
    items: Vec<Movement>,
    key: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RequestKind {
    TopUp,
    Provision,
    Bulk,
}

/// How a lock holder answers a queued request it did not settle: its requester settles it.
const UNSETTLED: &str = "unsettled";
/// How a lock holder's answer to a queued request it settled begins: then come its entries, as
/// stored, one per line (an entry's JSON text holds no line break).
const WRITTEN: &str = "written";

impl Request {
    /// The request as queued for another instance to settle ([`Request::from_queued`] reads it).
    fn queued_text(&self, at: DateTime<Utc>) -> String {
        let kind = match self.kind {
            RequestKind::TopUp => "topUp",
            RequestKind::Provision => "provision",
            RequestKind::Bulk => "bulk",
        };
        let items: Vec<Value> = self
            .items
            .iter()
            .map(|m| json!({ "amount": m.amount.get(), "memo": m.memo }))
            .collect();
        json!({ "kind": kind, "items": items, "key": self.key, "at": at.timestamp_millis() })
            .to_string()
    }

    /// A request another instance queued, and its time; `None` for a text this engine does not
    /// read as one (another version's, or a damaged one): it is answered unsettled.
    fn from_queued(text: &str) -> Option<(Self, DateTime<Utc>)> {
        let value: Value = serde_json::from_str(text).ok()?;
        let kind = match value.get("kind")?.as_str()? {
            "topUp" => RequestKind::TopUp,
            "provision" => RequestKind::Provision,
            "bulk" => RequestKind::Bulk,
            _ => return None,
        };
        let list = value.get("items")?.as_array()?;
        if list.is_empty() || list.len() > QUEUED_ITEMS_MAX {
            return None;
        }
        if kind != RequestKind::Bulk && list.len() != 1 {
            return None;
        }
        let mut items = Vec::with_capacity(list.len());
        for item in list {
            let amount = Credits::new(item.get("amount")?.as_u64()?).filter(|a| a.get() > 0)?;
            let memo = match item.get("memo")? {
                Value::Null => None,
                Value::String(memo) => Some(ledger::text(memo, "memo").ok()?),
                _ => return None,
            };
            items.push(Movement { amount, memo });
        }
        let key = match value.get("key")? {
            Value::Null => None,
            Value::String(key) => Some(ledger::text(key, "idempotencyKey").ok()?),
            _ => return None,
        };
        let at = DateTime::from_timestamp_millis(value.get("at")?.as_i64()?)
            .filter(|at| (0..=9999).contains(&at.year()))?;
        Some((Self { kind, items, key }, at))
    }

    /// Whether `entries` (read back for the same key) were written for this very request.
    fn matches(&self, entries: &[Entry]) -> std::result::Result<(), String> {
        let kind = match self.kind {
            RequestKind::TopUp => ledger::EntryKind::Credit,
            _ => ledger::EntryKind::Debit,
        };
        if entries.len() != self.items.len() {
            return Err(format!(
                "it was used for {} item(s), this request has {}",
                entries.len(),
                self.items.len()
            ));
        }
        let bulk = self.kind == RequestKind::Bulk;
        for (i, (entry, item)) in entries.iter().zip(&self.items).enumerate() {
            if entry.kind != kind || entry.batch.is_some() != bulk {
                return Err(format!(
                    "it was used for a {} of another kind",
                    entry.kind.as_str()
                ));
            }
            if entry.amount != item.amount.get() as i64 {
                return Err(format!(
                    "item {i} was {} credits, this request says {}",
                    entry.amount, item.amount
                ));
            }
            if entry.memo != item.memo {
                return Err(format!("item {i} had another memo"));
            }
        }
        Ok(())
    }
}

fn decode(text: &str, stream: &str, position: u64) -> Result<(Entry, EntryFlaws)> {
    Entry::from_json_text(text, "entry").map_err(|e| Error::StorageFailed {
        operation: "read",
        reason: format!("entry {position} of {stream} is not readable: {e}"),
    })
}

impl<S: Storage, M: Mailer, C: Clock> Ally<S, M, C> {
    fn slot(&self, wallet_id: &str) -> Rc<Slot> {
        let threshold = self.config.low_credit_threshold;
        let mut slots = self.wallets.slots.borrow_mut();
        if slots.len() >= WALLET_SLOTS_MAX && !slots.contains_key(wallet_id) {
            // Forget the wallets no request is using: they load again from their checkpoints.
            slots.retain(|_, slot| Rc::strong_count(slot) > 1);
        }
        slots
            .entry(wallet_id.to_owned())
            .or_insert_with(|| {
                let empty = Checkpoint::empty();
                Rc::new(Slot {
                    lock: Lock::default(),
                    contended: Cell::new(0),
                    record: RefCell::new(None),
                    state: RefCell::new(Wallet::resume(wallet_id.to_owned(), threshold, &empty)),
                    volumes: RefCell::new(DayVolumes::default()),
                    waiting: RefCell::new(Vec::new()),
                })
            })
            .clone()
    }

    /// Loads the reseller's wallet into its slot when this instance has not yet: resumes from
    /// the checkpoint in the wallet record and catches up with the entries after it. Creates
    /// the wallet when `create` and `autoProvisionWallet` are on; `NOT_FOUND` when it may not.
    async fn load(&self, slot: &Slot, reseller: &Reseller, create: bool) -> Result<Loaded> {
        if slot.record.borrow().is_some() {
            return Ok(Loaded::Warm);
        }
        let mut found = self
            .storage
            .get(WALLETS, &reseller.id)
            .await
            .map_err(storage_failed("get"))?;
        if found.is_none() {
            if !self.config.auto_provision_wallet {
                return Err(Error::NotFound {
                    entity: "wallet",
                    key: reseller.id.clone(),
                });
            }
            if !create {
                return Ok(Loaded::Missing);
            }
            found = Some(self.create_wallet_record(reseller).await?);
        }
        let Some(record) = found else {
            return Ok(Loaded::Missing);
        };
        self.resume_from(slot, &reseller.id, &record)?;
        self.check_anchor(slot, &reseller.id).await?;
        // A wallet far past its checkpoint (one written before checkpoints, or whose appender
        // could not write one) gets one now, so the next cold start does not replay it again.
        if self.catch_up(slot, &reseller.id).await? >= CHECKPOINT_INTERVAL {
            self.write_checkpoint(slot, &reseller.id).await;
        }
        Ok(Loaded::Fresh)
    }

    /// Checks that the stream holds the last entry of the state this instance resumed or
    /// replayed, with its hash, sequence and balance (one entry read): a checkpoint is only
    /// trusted while the history it stands for is there. A stream that holds fewer entries (a
    /// restore that lost some) is refused, never papered over: an operator audits the wallet.
    async fn check_anchor(&self, slot: &Slot, wallet_id: &str) -> Result<()> {
        let (length, head, balance) = {
            let state = slot.state.borrow();
            (state.length, state.head, state.balance)
        };
        if length == 0 {
            return Ok(());
        }
        let last = self.read_entries(wallet_id, length - 1, 1).await;
        // The entry's own hash, sequence and balance: a checkpoint whose balance was edited is
        // caught here, not spent (the entry's hash covers its recorded balance).
        let anchored = matches!(&last, Ok(found) if found.len() == 1
            && found[0].hash == head
            && found[0].sequence == length
            && i128::from(found[0].balance_after) == balance);
        if anchored {
            if let Ok(found) = &last {
                slot.state.borrow_mut().saw_time(found[0].at_ms);
            }
            return Ok(());
        }
        self.forget(slot);
        last?;
        Err(Error::StorageFailed {
            operation: "read",
            reason: format!(
                "the ledger of wallet \"{wallet_id}\" does not hold entry {length} as its checkpoint or an earlier read names it: audit the wallet"
            ),
        })
    }

    /// Sets the slot to the checkpoint a wallet record holds (an empty wallet when none).
    fn resume_from(&self, slot: &Slot, wallet_id: &str, record: &StoredRecord) -> Result<()> {
        let unreadable = |reason: String| Error::StorageFailed {
            operation: "get",
            reason: format!("wallet record \"{wallet_id}\" is not readable: {reason}"),
        };
        let data: Value =
            serde_json::from_str(&record.data).map_err(|e| unreadable(e.to_string()))?;
        let checkpoint = match data.get("checkpoint") {
            None | Some(Value::Null) => Checkpoint::empty(),
            Some(value) => {
                Checkpoint::from_json(value, "checkpoint").map_err(|e| unreadable(e.to_string()))?
            }
        };
        let created_at = data
            .get("createdAt")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let threshold = self.config.low_credit_threshold;
        *slot.state.borrow_mut() = Wallet::resume(wallet_id.to_owned(), threshold, &checkpoint);
        *slot.volumes.borrow_mut() = checkpoint.volumes;
        *slot.record.borrow_mut() = Some(RecordState {
            version: record.version,
            created_at,
            checkpoint_length: checkpoint.length,
        });
        Ok(())
    }

    /// Writes the wallet record of a new wallet and answers the record now stored: this one, or
    /// the one a second writer got in first.
    pub(super) async fn create_wallet_record(&self, reseller: &Reseller) -> Result<StoredRecord> {
        let at = self.now()?;
        let record = wallet_record(&reseller.id, 1, &iso_time::format(at), None);
        let outcome = self
            .storage
            .put(WALLETS, &record, 0, &[])
            .await
            .map_err(storage_failed("put"))?;
        if outcome == WriteOutcome::Written {
            return Ok(record);
        }
        self.storage
            .get(WALLETS, &reseller.id)
            .await
            .map_err(storage_failed("get"))?
            .ok_or_else(|| Error::StorageFailed {
                operation: "put",
                reason: format!(
                    "the wallet record of \"{}\" was refused as stale, then not found",
                    reseller.id
                ),
            })
    }

    /// Opens the wallet of a reseller explicitly (needed when `autoProvisionWallet` is off).
    pub async fn open_wallet(&self, reseller_id: &str) -> Result<()> {
        let reseller = self.require_reseller_shared(reseller_id).await?;
        self.create_wallet_record(&reseller).await?;
        Ok(())
    }

    /// Replays the entries other writers appended since this instance last looked, and answers
    /// how many there were. A history that does not validate is refused: the engine does not
    /// spend from a broken ledger.
    async fn catch_up(&self, slot: &Slot, wallet_id: &str) -> Result<u64> {
        let stream = stream(wallet_id);
        let mut read = 0u64;
        loop {
            let from = slot.state.borrow().length;
            let page = self
                .storage
                .read(&stream, from, PAGE_SIZE_MAX)
                .await
                .map_err(storage_failed("read"))?;
            let count = page.len();
            if count > PAGE_SIZE_MAX as usize {
                return Err(Error::StorageFailed {
                    operation: "read",
                    reason: format!("read answered {count} entries for a limit of {PAGE_SIZE_MAX}"),
                });
            }
            self.replay_page(slot, wallet_id, from, &page)?;
            read += count as u64;
            if count < PAGE_SIZE_MAX as usize {
                return Ok(read);
            }
        }
    }

    /// Replays entries read from position `from` into the slot, checking each. The first that
    /// does not read or validate makes the instance forget the wallet and is reported.
    fn replay_page(&self, slot: &Slot, wallet_id: &str, from: u64, page: &[String]) -> Result<()> {
        let stream = stream(wallet_id);
        let mut state = slot.state.borrow_mut();
        debug_assert_eq!(state.length, from, "entries replay at the end of the state");
        let mut volumes = slot.volumes.borrow_mut();
        for (i, text) in page.iter().enumerate() {
            let position = from + i as u64;
            let failure = match decode(text, &stream, position) {
                Err(e) => Some(e),
                Ok((entry, flaws)) => {
                    state.apply(&entry, &flaws);
                    let credit = entry.kind == ledger::EntryKind::Credit;
                    volumes.add(entry.at_ms, credit, entry.amount);
                    state.violations.first().map(|v| Error::StorageFailed {
                        operation: "read",
                        reason: format!(
                            "the ledger of wallet \"{wallet_id}\" does not validate: {} ({})",
                            v.message,
                            v.code.as_str()
                        ),
                    })
                }
            };
            if let Some(e) = failure {
                drop((state, volumes));
                self.forget(slot);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Drops what this instance replayed of a wallet: the next operation loads it afresh.
    fn forget(&self, slot: &Slot) {
        *slot.record.borrow_mut() = None;
    }

    async fn read_entries(&self, wallet_id: &str, from: u64, count: u32) -> Result<Vec<Entry>> {
        let stream = stream(wallet_id);
        let page = self
            .storage
            .read(&stream, from, count)
            .await
            .map_err(storage_failed("read"))?;
        page.iter()
            .enumerate()
            .map(|(i, text)| decode(text, &stream, from + i as u64).map(|(e, _)| e))
            .collect()
    }

    /// Credits a reseller's wallet: the admin action.
    pub async fn add_credits(
        &self,
        reseller_id: &str,
        amount: Credits,
        memo: Option<String>,
        idempotency_key: Option<String>,
    ) -> Result<Applied> {
        let request = Request {
            kind: RequestKind::TopUp,
            items: vec![Movement { amount, memo }],
            key: idempotency_key,
        };
        self.perform(reseller_id, request).await
    }

    /// Debits a reseller's wallet for one service.
    pub async fn provision(
        &self,
        reseller_id: &str,
        cost: Credits,
        memo: Option<String>,
        idempotency_key: Option<String>,
    ) -> Result<Applied> {
        let request = Request {
            kind: RequestKind::Provision,
            items: vec![Movement { amount: cost, memo }],
            key: idempotency_key,
        };
        self.perform(reseller_id, request).await
    }

    /// Debits a reseller's wallet for several services: all or nothing.
    pub async fn provision_bulk(
        &self,
        reseller_id: &str,
        items: Vec<Movement>,
        idempotency_key: Option<String>,
    ) -> Result<Applied> {
        let request = Request {
            kind: RequestKind::Bulk,
            items,
            key: idempotency_key,
        };
        self.perform(reseller_id, request).await
    }

    async fn perform(&self, reseller_id: &str, request: Request) -> Result<Applied> {
        if request.items.is_empty() || request.items.len() > ledger::BULK_LEN_MAX {
            return Err(Error::invalid(
                "items",
                format!(
                    "expected 1 to {} items, got {}",
                    ledger::BULK_LEN_MAX,
                    request.items.len()
                ),
            ));
        }
        let at = self.now()?;
        // The reseller as last read: the append names its version as a guard, so a warm
        // instance reads it only when it has changed.
        let (version, reseller) = match self.cached_reseller(reseller_id) {
            Some(cached) => cached,
            None => self.require_reseller_versioned(reseller_id).await?,
        };
        let slot = self.slot(&reseller.id);
        // Another request of this instance holds the wallet: wait beside it, to be settled in
        // its append (a large bulk waits its own turn).
        let waiting = Rc::new(Waiting {
            batchable: request.items.len() <= QUEUED_ITEMS_MAX,
            request,
            at,
            answer: RefCell::new(None),
        });
        let in_line = slot.lock.is_held().then(|| {
            slot.waiting.borrow_mut().push(waiting.clone());
            InLine {
                slot: &slot,
                waiting: waiting.clone(),
            }
        });
        let guard = slot.lock.acquire().await;
        drop(in_line);
        let answer = waiting.answer.borrow_mut().take();
        match answer {
            Some(WaitingAnswer::Written(decision, reseller)) => {
                drop(guard);
                return Ok(self.written(&reseller, decision).await);
            }
            Some(WaitingAnswer::Failed(error)) => return Err(error),
            Some(WaitingAnswer::Unsettled) | None => {}
        }
        let request = &waiting.request;
        let mut run = Settling {
            reseller,
            version,
            held: false,
            queued: Vec::new(),
            unsettled: Vec::new(),
        };
        let settled = self.settle(&slot, request, at, &mut run).await;
        if run.held {
            self.release_stream(&run.reseller.id).await;
        }
        drop(guard);
        match settled? {
            Settled::Answered(applied) => Ok(*applied),
            Settled::Written(decision) => Ok(self.written(&run.reseller, decision).await),
        }
    }

    /// A written request's answer: its entries, and the crossing they make, notified.
    async fn written(&self, reseller: &Reseller, decision: Decision) -> Applied {
        let low_credit = match decision.low_credit {
            Some(crossing) => Some(self.notify(reseller, crossing).await),
            None => None,
        };
        Applied {
            entries: decision.entries,
            replayed: false,
            low_credit,
        }
    }

    /// Decides and appends until the storage takes the entries, or answers the request
    /// otherwise (a refusal, a repeated key). Runs under the slot's lock. Holding the stream's
    /// lock as the lead of a combine, the first append also settles the requests other
    /// instances queued (each its own decision, entries and key, like the transfers of one
    /// batch), and answers them in its commit.
    async fn settle(
        &self,
        slot: &Slot,
        request: &Request,
        at: DateTime<Utc>,
        run: &mut Settling,
    ) -> Result<Settled> {
        let wallet_id = run.reseller.id.clone();
        // A warm state may be behind other instances: it decides at once, and the append's
        // answer says whether it was current. Only a refusal is confirmed by a read first.
        let mut current = self.load(slot, &run.reseller, true).await? == Loaded::Fresh;
        let mut reseller_current = false;
        if slot.contended.get() > 0 {
            slot.contended.set(slot.contended.get() - 1);
            if let Some(settled) = self.join_stream(slot, &wallet_id, request, at, run).await? {
                return Ok(settled);
            }
            current |= run.held;
        }
        let mut claimed_rounds = 0;
        for _ in 0..APPEND_ATTEMPTS_MAX {
            // (The state's borrow ends with this statement: the arms below await.)
            let decided = self.decide(&slot.state.borrow(), &run.reseller, request, at);
            let own = match decided {
                Ok(decision) => Ok(decision),
                Err(_) if !current || !reseller_current => {
                    if !current {
                        self.catch_up(slot, &wallet_id).await?;
                        current = true;
                    }
                    (run.version, run.reseller) =
                        self.require_reseller_versioned(&wallet_id).await?;
                    reseller_current = true;
                    continue;
                }
                // Refused: the requests waiting behind are settled by the next holder.
                Err(refusal) if run.queued.is_empty() => {
                    return self.refused(&wallet_id, request, refusal).await;
                }
                // Refused, but the requests other instances queued for this lead are settled.
                Err(refusal) => Err(refusal),
            };
            let expected = slot.state.borrow().length;
            let mut batch = Batch::default();
            if let Ok(decision) = &own {
                batch.add(&decision.entries, request.key.as_deref(), expected);
            }
            let (waiting, answers) = self.decide_others(slot, run, request, &mut batch);
            let claims: Vec<Claim<'_>> = batch
                .claims
                .iter()
                .map(|(key, position)| Claim {
                    key,
                    position: *position,
                })
                .collect();
            let reseller_guard = Guard {
                collection: super::resellers::COLLECTION,
                id: &wallet_id,
                version: run.version,
            };
            let stream = stream(&wallet_id);
            let outcome = if run.queued.is_empty() {
                let texts = &batch.texts;
                self.storage
                    .append(
                        &stream,
                        expected,
                        texts,
                        &claims,
                        Some(reseller_guard),
                        run.held,
                    )
                    .await
            } else {
                let answers: Vec<Answer<'_>> = answers
                    .iter()
                    .map(|(id, answer)| Answer { id: *id, answer })
                    .collect();
                self.storage
                    .append_answering(
                        &stream,
                        expected,
                        &batch.texts,
                        &claims,
                        Some(reseller_guard),
                        &answers,
                    )
                    .await
            };
            let outcome = match outcome.map_err(storage_failed("append")) {
                Ok(outcome) => outcome,
                Err(error) => {
                    // Whether the append was written is not known: the requests it held fail
                    // with it, rather than be settled again (a retry with its key is safe).
                    for (w, decision) in &waiting {
                        *w.answer.borrow_mut() = Some(match decision {
                            Some(_) => WaitingAnswer::Failed(error.clone()),
                            None => WaitingAnswer::Unsettled,
                        });
                    }
                    return Err(error);
                }
            };
            match outcome {
                AppendOutcome::Written => {
                    run.queued.clear();
                    for (w, decision) in waiting {
                        let answer = match decision {
                            Some(decision) => {
                                WaitingAnswer::Written(decision, run.reseller.clone())
                            }
                            None => WaitingAnswer::Unsettled,
                        };
                        *w.answer.borrow_mut() = Some(answer);
                    }
                    self.applied(slot, &batch.entries);
                    let appended = batch.entries.len() as u64;
                    self.advance_checkpoint(slot, &wallet_id, appended).await;
                    return match own {
                        Ok(decision) => Ok(Settled::Written(decision)),
                        Err(refusal) => self.refused(&wallet_id, request, refusal).await,
                    };
                }
                AppendOutcome::Stale { tail } => {
                    self.observe(Event::Retried {
                        reseller: &wallet_id,
                        reason: "stale",
                    });
                    let read = match tail {
                        Some(tail) => self.behind(slot, &wallet_id, expected, tail).await?,
                        None => self.catch_up(slot, &wallet_id).await?,
                    };
                    if read == 0 {
                        // Nothing new to read: the stream holds exactly what this instance
                        // replayed (a spurious refusal: try again), or fewer entries.
                        self.check_anchor(slot, &wallet_id).await?;
                    }
                    current = true;
                    // Other processes append to this wallet too: join them (where the
                    // storage has a lock) for this and the next few requests, so that they
                    // wait their turn, or are settled by the holder, instead of deciding
                    // again and again on a state that is stale by the time it is appended.
                    if !run.held {
                        slot.contended.set(CONTENDED_RUN);
                        if let Some(settled) =
                            self.join_stream(slot, &wallet_id, request, at, run).await?
                        {
                            return Ok(settled);
                        }
                    }
                }
                AppendOutcome::Changed => {
                    self.observe(Event::Retried {
                        reseller: &wallet_id,
                        reason: "changed",
                    });
                    self.forget_reseller(&wallet_id);
                    (run.version, run.reseller) =
                        self.require_reseller_versioned(&wallet_id).await?;
                    reseller_current = true;
                }
                // A key of a waiting or queued request, claimed before: the batch was not
                // written (the hold goes on), and that request is answered unsettled (its
                // requester answers it as a repeat); the batch is decided again without it.
                AppendOutcome::Claimed { key } if request.key.as_deref() != Some(key.as_str()) => {
                    self.observe(Event::Retried {
                        reseller: &wallet_id,
                        reason: "claimed",
                    });
                    // The storage names one claimed key per append: past a few, every keyed
                    // waiting request of the batch goes back to its requester, so that repeats
                    // do not cost this holder an append each.
                    claimed_rounds += 1;
                    let mut repeated = false;
                    for (w, _) in &waiting {
                        if let Some(k) = w.request.key.as_deref() {
                            repeated |= k == key;
                            if k == key || claimed_rounds >= CLAIMED_ROUNDS_MAX {
                                *w.answer.borrow_mut() = Some(WaitingAnswer::Unsettled);
                            }
                        }
                    }
                    let repeats: Vec<u64> = run
                        .queued
                        .iter()
                        .filter(|q| {
                            Request::from_queued(&q.request)
                                .is_some_and(|(r, _)| r.key.as_deref() == Some(key.as_str()))
                        })
                        .map(|q| q.id)
                        .collect();
                    if repeats.is_empty() && !repeated {
                        return Err(Error::StorageFailed {
                            operation: "append",
                            reason: format!(
                                "append answered the idempotency key \"{key}\" as claimed, which it was not given"
                            ),
                        });
                    }
                    run.unsettled.extend(repeats);
                }
                AppendOutcome::Claimed { key } => {
                    let done = self.replay(&wallet_id, request).await?;
                    return done
                        .map(|d| Settled::Answered(Box::new(d)))
                        .ok_or_else(|| Error::StorageFailed {
                        operation: "append",
                        reason: format!(
                            "idempotency key \"{key}\" was answered as claimed, but no claim was found"
                        ),
                    });
                }
            }
        }
        Err(Error::Conflict {
            entity: "wallet",
            key: wallet_id,
            attempts: APPEND_ATTEMPTS_MAX,
        })
    }

    /// A request the wallet refuses: answered as the first time when it repeats an earlier
    /// request's key (even where it would be refused now: the credits spent, the reseller
    /// suspended), else the refusal.
    async fn refused(&self, wallet_id: &str, request: &Request, refusal: Error) -> Result<Settled> {
        match self.replay(wallet_id, request).await? {
            Some(done) => Ok(Settled::Answered(Box::new(done))),
            None => Err(refusal),
        }
    }

    /// Decides the requests this holder settles with its own, after the entries already in
    /// `batch`, each on the state the previous leaves, with its own time and key: first this
    /// instance's waiting requests (not yet answered, at most [`WAITING_MAX`]), then those other
    /// instances queued for it as their lead. Adds those it can write to the batch. Answers the
    /// waiting ones with their decisions (`None`: unsettled), and every queued one: its entries,
    /// or unsettled (a refusal, a key this batch claims already, a text this engine does not
    /// read), which its requester then settles itself.
    #[allow(clippy::type_complexity)]
    fn decide_others(
        &self,
        slot: &Slot,
        run: &Settling,
        own: &Request,
        batch: &mut Batch,
    ) -> (Vec<(Rc<Waiting>, Option<Decision>)>, Vec<(u64, String)>) {
        let mut items = 0;
        let waiting: Vec<Rc<Waiting>> = slot
            .waiting
            .borrow()
            .iter()
            .filter(|w| w.answer.borrow().is_none())
            .take_while(|w| {
                items += w.request.items.len();
                w.batchable && items <= WAITING_ITEMS_MAX
            })
            .take(WAITING_MAX)
            .cloned()
            .collect();
        if waiting.is_empty() && run.queued.is_empty() {
            return (Vec::new(), Vec::new());
        }
        let mut state = slot.state.borrow().clone();
        batch.entries.iter().for_each(|e| state.apply_trusted(e));
        let mut keys: Vec<String> = own.key.iter().cloned().collect();
        let mut decide = |request: &Request, at: DateTime<Utc>, batch: &mut Batch| {
            let repeated = request.key.as_ref().is_some_and(|k| keys.contains(k));
            if repeated {
                return None;
            }
            let decision = self.decide(&state, &run.reseller, request, at).ok()?;
            keys.extend(request.key.iter().cloned());
            decision.entries.iter().for_each(|e| state.apply_trusted(e));
            let position = state.length - decision.entries.len() as u64;
            batch.add(&decision.entries, request.key.as_deref(), position);
            Some(decision)
        };
        let decided: Vec<(Rc<Waiting>, Option<Decision>)> = waiting
            .into_iter()
            .map(|w| {
                let decision = decide(&w.request, w.at, batch);
                (w, decision)
            })
            .collect();
        let mut answers = Vec::with_capacity(run.queued.len());
        for q in &run.queued {
            let first = batch.texts.len();
            let decision = Request::from_queued(&q.request)
                .filter(|_| !run.unsettled.contains(&q.id))
                .and_then(|(request, at)| decide(&request, at, batch));
            if decision.is_none() {
                answers.push((q.id, UNSETTLED.to_owned()));
                continue;
            }
            let mut answer = WRITTEN.to_owned();
            for text in &batch.texts[first..] {
                answer.push('\n');
                answer.push_str(text);
            }
            answers.push((q.id, answer));
        }
        (decided, answers)
    }

    /// Joins the other instances spending from this wallet. Where the storage combines
    /// requests, the request is queued for the stream's lock holder, and answered when the
    /// holder settled it; else this instance waits for the lock itself: `run.held` says whether
    /// it holds it now (with the requests it leads in `run.queued`), and the state is current
    /// when it does.
    async fn join_stream(
        &self,
        slot: &Slot,
        wallet_id: &str,
        request: &Request,
        at: DateTime<Utc>,
        run: &mut Settling,
    ) -> Result<Option<Settled>> {
        if request.items.len() <= QUEUED_ITEMS_MAX {
            let from = slot.state.borrow().length;
            let text = request.queued_text(at);
            let combined = match self.storage.combine(&stream(wallet_id), from, &text).await {
                Ok(combined) => combined,
                Err(e) => {
                    // As for `lock`: a lock taken before the answer failed is not left held.
                    self.release_stream(wallet_id).await;
                    return Err(storage_failed("combine")(e));
                }
            };
            match combined {
                Some(Combined::Answered(answer)) => {
                    if let Some(decision) = self.answered(wallet_id, request, &answer)? {
                        return Ok(Some(Settled::Written(decision)));
                    }
                    // Left unsettled by the holder: settled here, holding the lock.
                }
                Some(Combined::Lead { tail, queued }) => {
                    run.held = true;
                    if queued.len() > super::ports::QUEUED_MAX {
                        return Err(Error::StorageFailed {
                            operation: "combine",
                            reason: format!(
                                "the storage handed over {} queued requests, beyond {}",
                                queued.len(),
                                super::ports::QUEUED_MAX
                            ),
                        });
                    }
                    run.queued = queued;
                    self.behind(slot, wallet_id, from, tail).await?;
                    return Ok(None);
                }
                None => {}
            }
        }
        self.hold_stream(slot, wallet_id, run).await?;
        Ok(None)
    }

    /// What a lock holder wrote for this instance's queued request: its entries, checked
    /// against the request, and the crossing they make; `None` when it left it unsettled.
    fn answered(
        &self,
        wallet_id: &str,
        request: &Request,
        answer: &str,
    ) -> Result<Option<Decision>> {
        let failed = |reason: String| Error::StorageFailed {
            operation: "combine",
            reason: format!("the answer to a queued request on wallet \"{wallet_id}\" {reason}"),
        };
        if answer == UNSETTLED {
            return Ok(None);
        }
        let mut lines = answer.split('\n');
        if lines.next() != Some(WRITTEN) {
            return Err(failed(
                "is neither written entries nor unsettled".to_owned(),
            ));
        }
        let mut entries = Vec::with_capacity(request.items.len());
        for (i, text) in lines.enumerate() {
            if i >= request.items.len() {
                return Err(failed(format!(
                    "holds more entries than the request's {} items",
                    request.items.len()
                )));
            }
            match Entry::from_json_text(text, "entry") {
                Ok((entry, flaws)) if flaws.is_empty() => entries.push(entry),
                Ok(_) => return Err(failed(format!("holds entry {i} with flaws"))),
                Err(e) => return Err(failed(format!("holds an unreadable entry {i}: {e}"))),
            }
        }
        request
            .matches(&entries)
            .map_err(|reason| failed(format!("is not this request's: {reason}")))?;
        let ours = entries.iter().enumerate().all(|(i, e)| {
            e.wallet_id == wallet_id
                && e.idempotency_key.as_deref() == request.key.as_deref().filter(|_| i == 0)
        });
        if !ours {
            return Err(failed("names another wallet or key".to_owned()));
        }
        let low_credit = ledger::low_credit_crossing(&entries, self.config.low_credit_threshold);
        Ok(Some(Decision {
            entries,
            low_credit,
        }))
    }

    /// Takes the storage's lock on the wallet's stream, when the storage has locks: waits for
    /// the other holders, then replays what they appended (the lock's answer). `true` when the
    /// state is now current.
    async fn hold_stream(&self, slot: &Slot, wallet_id: &str, run: &mut Settling) -> Result<bool> {
        let from = slot.state.borrow().length;
        let tail = match self.storage.lock(&stream(wallet_id), from).await {
            Ok(tail) => tail,
            Err(e) => {
                // The lock may have been taken before the answer failed (one out of contract):
                // release it, so that it is not left held for the connection's lifetime.
                self.release_stream(wallet_id).await;
                return Err(storage_failed("lock")(e));
            }
        };
        let Some(tail) = tail else {
            return Ok(false);
        };
        run.held = true;
        self.behind(slot, wallet_id, from, tail).await?;
        Ok(true)
    }

    /// Releases the storage's lock on the wallet's stream. A failure is not the request's: the
    /// storage drops a lock whose holder it lost (a PostgreSQL session lock goes with its
    /// connection), so it is not reported.
    async fn release_stream(&self, wallet_id: &str) {
        let _ = self.storage.unlock(&stream(wallet_id)).await;
    }

    /// Replays the tail a stale append handed back (the entries from `from` on), then reads on
    /// when the tail was a full page; answers how many entries were replayed.
    async fn behind(
        &self,
        slot: &Slot,
        wallet_id: &str,
        from: u64,
        tail: Vec<String>,
    ) -> Result<u64> {
        if tail.len() > super::ports::TAIL_LEN_MAX {
            return Err(Error::StorageFailed {
                operation: "append",
                reason: format!(
                    "the storage handed back {} entries, beyond {}",
                    tail.len(),
                    super::ports::TAIL_LEN_MAX
                ),
            });
        }
        let full = tail.len() == super::ports::TAIL_LEN_MAX;
        let count = tail.len() as u64;
        self.replay_page(slot, wallet_id, from, &tail)?;
        if full {
            return Ok(count + self.catch_up(slot, wallet_id).await?);
        }
        Ok(count)
    }

    /// Replays this instance's own appended entries into the slot.
    fn applied(&self, slot: &Slot, entries: &[Entry]) {
        let mut state = slot.state.borrow_mut();
        let mut volumes = slot.volumes.borrow_mut();
        for entry in entries {
            state.apply_trusted(entry);
            let credit = entry.kind == ledger::EntryKind::Credit;
            volumes.add(entry.at_ms, credit, entry.amount);
        }
        debug_assert!(state.is_valid(), "{:?}", state.violations);
    }

    /// Writes the slot's state as the wallet's checkpoint after an append of `appended`
    /// entries that took the wallet across a multiple of [`CHECKPOINT_INTERVAL`]: one appender
    /// does, not every instance that sees the wallet grow (under contention they would all race
    /// for the same record). An instance whose known checkpoint is several intervals behind
    /// writes one too, so a checkpoint lost to a failure is made up. Compare-and-set on the
    /// wallet record, so a checkpoint only ever moves forward: an instance that loses the race
    /// learns the winner's record. A failure costs nothing but a longer replay for the next cold
    /// start, so it is not reported.
    async fn advance_checkpoint(&self, slot: &Slot, wallet_id: &str, appended: u64) {
        let due = {
            let Some(known) = slot.record.borrow().clone() else {
                return;
            };
            let state = slot.state.borrow();
            let before = state.length - appended;
            let crossed = before / CHECKPOINT_INTERVAL != state.length / CHECKPOINT_INTERVAL;
            let far_behind = state.length >= known.checkpoint_length + 16 * CHECKPOINT_INTERVAL;
            state.length >= known.checkpoint_length + CHECKPOINT_INTERVAL && (crossed || far_behind)
        };
        if due {
            self.write_checkpoint(slot, wallet_id).await;
        }
    }

    /// Writes the slot's state as the wallet's checkpoint (see [`Self::advance_checkpoint`]).
    async fn write_checkpoint(&self, slot: &Slot, wallet_id: &str) {
        let Some(known) = slot.record.borrow().clone() else {
            return;
        };
        let checkpoint = slot.state.borrow().checkpoint(&slot.volumes.borrow());
        let Some(checkpoint) = checkpoint.filter(|c| c.length > known.checkpoint_length) else {
            return;
        };
        let record = wallet_record(
            wallet_id,
            known.version + 1,
            &known.created_at,
            Some(&checkpoint),
        );
        let outcome = self.storage.put(WALLETS, &record, known.version, &[]).await;
        let learned = match outcome {
            Ok(WriteOutcome::Written) => Some((record.version, checkpoint.length)),
            Ok(WriteOutcome::Stale) => match self.storage.get(WALLETS, wallet_id).await {
                Ok(Some(stored)) => Some((stored.version, stored_checkpoint_length(&stored))),
                _ => None,
            },
            _ => None,
        };
        if let (Some((version, length)), Some(state)) = (learned, slot.record.borrow_mut().as_mut())
        {
            state.version = version;
            state.checkpoint_length = length;
        }
    }

    /// The first answer to a request with the same idempotency key (found by its claim, not by
    /// a replay), `IDEMPOTENCY_MISMATCH` when the key was used for another request, `None` when
    /// the key is new or the request has none.
    async fn replay(&self, wallet_id: &str, request: &Request) -> Result<Option<Applied>> {
        let Some(key) = &request.key else {
            return Ok(None);
        };
        let position = self
            .storage
            .find_claim(&stream(wallet_id), key)
            .await
            .map_err(storage_failed("findClaim"))?;
        let Some(position) = position else {
            return Ok(None);
        };
        // The request says how many entries its key's first answer holds; a different count is
        // a mismatch, found by reading at most that many (never a size the storage names).
        let count = u32::try_from(request.items.len()).unwrap_or(u32::MAX);
        let entries = self.read_entries(wallet_id, position, count).await?;
        if entries.first().and_then(|e| e.idempotency_key.as_deref()) != Some(key.as_str()) {
            return Err(Error::StorageFailed {
                operation: "findClaim",
                reason: format!(
                    "idempotency key \"{key}\" is claimed at entry {position} of wallet \"{wallet_id}\", which does not hold it"
                ),
            });
        }
        let first_size = entries.first().and_then(|e| e.batch).map_or(1, |b| b.size);
        if first_size as usize != request.items.len() {
            return Err(Error::IdempotencyMismatch {
                key: key.clone(),
                reason: format!(
                    "it was used for {first_size} item(s), this request has {}",
                    request.items.len()
                ),
            });
        }
        request
            .matches(&entries)
            .map_err(|reason| Error::IdempotencyMismatch {
                key: key.clone(),
                reason,
            })?;
        self.observe(Event::Replayed {
            reseller: wallet_id,
            key,
            entries: entries.len(),
        });
        Ok(Some(Applied {
            entries,
            replayed: true,
            low_credit: None,
        }))
    }

    fn decide(
        &self,
        state: &Wallet,
        reseller: &Reseller,
        request: &Request,
        at: DateTime<Utc>,
    ) -> Result<Decision> {
        let held = request.kind != RequestKind::TopUp
            && reseller.metadata.get("hold_provisioning") == Some(&Value::Bool(true));
        if request.kind != RequestKind::TopUp {
            reseller.check_may_spend()?;
        }
        let ctx = Context {
            wallet_id: &reseller.id,
            reseller_id: &reseller.id,
            at_ms: at.timestamp_millis(),
            threshold: self.config.low_credit_threshold,
            idempotency_key: request.key.clone(),
        };
        let mut ids = self.ids.borrow_mut();
        let mut entry_ids = (0..request.items.len()).map(|_| ids.entry_id());
        match request.kind {
            RequestKind::TopUp => {
                let movement = request.items[0].clone();
                let id = entry_ids.next().unwrap_or_default();
                ledger::decide_top_up(state, ctx, movement, id)
            }
            RequestKind::Provision => {
                let movement = request.items[0].clone();
                let id = entry_ids.next().unwrap_or_default();
                ledger::decide_provision(state, ctx, movement, id, held)
            }
            RequestKind::Bulk => {
                let ids: Vec<String> = entry_ids.collect();
                ledger::decide_bulk(state, ctx, request.items.clone(), ids, held)
            }
        }
    }

    /// Queues the low-credit mail in the outbox, then tries to deliver it. Never fails: what
    /// could not be done now is done by `checkCredits`.
    async fn notify(&self, reseller: &Reseller, crossing: LowCredit) -> LowCreditEvent {
        let at = DateTime::from_timestamp_millis(crossing.at_ms).unwrap_or_default();
        let message = notice::low_credit_mail(reseller, &crossing, &self.config.dashboard_url);
        let notification = self
            .notify_mail(&crossing.key(), LOW_CREDIT, &reseller.id, message, at)
            .await;
        LowCreditEvent {
            reseller: reseller.clone(),
            crossing,
            notification,
        }
    }

    /// Puts the crossing's mail in the outbox. `Ok(None)`: nothing to deliver (no email, or
    /// another writer queued it first and will deliver it).
    async fn queue_low_credit(
        &self,
        reseller: &Reseller,
        crossing: &LowCredit,
        at: DateTime<Utc>,
    ) -> Result<Option<StoredRecord>> {
        let message = notice::low_credit_mail(reseller, crossing, &self.config.dashboard_url);
        self.queue_mail(&crossing.key(), LOW_CREDIT, &reseller.id, message, at)
            .await
    }

    /// Puts a mail in the outbox under `id` (`undeliverable` when there is no message: no
    /// address to send it to). `Ok(None)`: nothing to deliver now (no message, or another writer
    /// queued it first and will deliver it).
    pub(super) async fn queue_mail(
        &self,
        id: &str,
        kind: &str,
        reseller_id: &str,
        message: Option<MailMessage>,
        at: DateTime<Utc>,
    ) -> Result<Option<StoredRecord>> {
        let status = if message.is_some() {
            STATUS_PENDING
        } else {
            STATUS_UNDELIVERABLE
        };
        let data = json!({
            "id": id,
            "kind": kind,
            "resellerId": reseller_id,
            "message": message.as_ref().map(message_json),
            "status": status,
            "attempts": 0,
            "lastError": null,
            "createdAt": iso_time::format(at),
            "sentAt": null,
        });
        let record = StoredRecord {
            id: id.to_owned(),
            version: 1,
            data: data.to_string(),
            indexes: vec![(INDEX_STATUS.to_owned(), status.to_owned())],
        };
        let outcome = self
            .storage
            .put(OUTBOX, &record, 0, &[])
            .await
            .map_err(storage_failed("put"))?;
        Ok((outcome == WriteOutcome::Written && message.is_some()).then_some(record))
    }

    /// Queues a mail and tries to send it at once: `sent`, `pending` (retried by the daily
    /// `checkCredits`), or `undeliverable` (no address). Never fails.
    pub(super) async fn notify_mail(
        &self,
        id: &str,
        kind: &str,
        reseller_id: &str,
        message: Option<MailMessage>,
        at: DateTime<Utc>,
    ) -> &'static str {
        match self.queue_mail(id, kind, reseller_id, message, at).await {
            Ok(Some(record)) => match self.deliver(record, at).await {
                Ok(true) => STATUS_SENT,
                Ok(false) | Err(_) => STATUS_PENDING,
            },
            Ok(None) => STATUS_UNDELIVERABLE,
            Err(_) => STATUS_PENDING,
        }
    }

    /// Claims a pending outbox record (a compare-and-set on its version, so two instances never
    /// both send it), sends it, and marks it sent. `Ok(false)`: the send failed and the record
    /// stays pending; `Err`: storage failed or another instance holds the claim.
    async fn deliver(&self, record: StoredRecord, at: DateTime<Utc>) -> Result<bool> {
        let mut data: Value =
            serde_json::from_str(&record.data).map_err(|e| Error::StorageFailed {
                operation: "get",
                reason: format!("outbox record \"{}\" is not readable: {e}", record.id),
            })?;
        let message = data
            .get("message")
            .and_then(message_from_json)
            .ok_or_else(|| Error::StorageFailed {
                operation: "get",
                reason: format!("outbox record \"{}\" holds no readable message", record.id),
            })?;
        let attempts = data.get("attempts").and_then(Value::as_u64).unwrap_or(0) + 1;
        data["attempts"] = attempts.into();
        let claimed = self.rewrite(&record, &data, STATUS_PENDING).await?;
        let Some(claimed) = claimed else {
            return Err(Error::Conflict {
                entity: "outbox",
                key: record.id.clone(),
                attempts: 1,
            });
        };
        let sent = self.mailer.send(&message).await;
        self.observe(Event::OutboxAttempt {
            id: &record.id,
            kind: &message.kind,
            attempt: attempts,
            failed: sent.as_ref().err().map(|e| e.reason.as_str()),
        });
        match sent {
            Ok(()) => {
                data["status"] = STATUS_SENT.into();
                data["lastError"] = Value::Null;
                data["sentAt"] = iso_time::format(at).into();
                self.rewrite(&claimed, &data, STATUS_SENT).await?;
                Ok(true)
            }
            Err(e) => {
                data["lastError"] = e.reason.into();
                self.rewrite(&claimed, &data, STATUS_PENDING).await?;
                Ok(false)
            }
        }
    }

    /// Writes `data` over `record` (compare-and-set); `None` when another writer got there first.
    async fn rewrite(
        &self,
        record: &StoredRecord,
        data: &Value,
        status: &str,
    ) -> Result<Option<StoredRecord>> {
        let next = StoredRecord {
            id: record.id.clone(),
            version: record.version + 1,
            data: data.to_string(),
            indexes: vec![(INDEX_STATUS.to_owned(), status.to_owned())],
        };
        let outcome = self
            .storage
            .put(OUTBOX, &next, record.version, &[])
            .await
            .map_err(storage_failed("put"))?;
        Ok((outcome == WriteOutcome::Written).then_some(next))
    }

    /// Reads a reseller's replayed wallet after catching up with its stream: `None` when it has no
    /// wallet yet. What the analytics read instead of the entries.
    pub(super) async fn with_wallet<T>(
        &self,
        reseller: &Reseller,
        read: impl FnOnce(&Wallet, &DayVolumes) -> T,
    ) -> Result<Option<T>> {
        let slot = self.slot(&reseller.id);
        let _guard = slot.lock.acquire().await;
        match self.load(&slot, reseller, false).await? {
            Loaded::Missing => return Ok(None),
            Loaded::Fresh => {}
            Loaded::Warm => {
                self.catch_up(&slot, &reseller.id).await?;
            }
        }
        let state = slot.state.borrow();
        let volumes = slot.volumes.borrow();
        Ok(Some(read(&state, &volumes)))
    }

    /// A reseller's balance in whole credits.
    pub async fn balance(&self, reseller_id: &str) -> Result<Credits> {
        let reseller = self.require_reseller_shared(reseller_id).await?;
        let balance = self
            .with_wallet(&reseller, |wallet, _| wallet.credits())
            .await?;
        Ok(balance.unwrap_or(Credits::ZERO))
    }

    /// Entries newest first: at most `limit` of those with a sequence below `page.before` and a
    /// time in `[page.since, page.until)`, each bound when given. A time bound is found by
    /// bisection over the entries' times, which never go backwards in a wallet (see
    /// [`Wallet::entry_time`]): a page reads about log2 of the history's length single entries,
    /// then the page itself.
    pub async fn transactions(
        &self,
        reseller_id: &str,
        page: TransactionsPage,
    ) -> Result<Vec<Entry>> {
        let reseller = self.require_reseller_shared(reseller_id).await?;
        let Some(length) = self
            .with_wallet(&reseller, |wallet, _| wallet.length)
            .await?
        else {
            return Ok(Vec::new());
        };
        // Sequence s sits at position s − 1; "before s" ends at position s − 2.
        let mut end = page
            .before
            .map_or(length, |b| b.saturating_sub(1).min(length));
        if let Some(until) = page.until_ms {
            end = self.first_at_or_after(&reseller.id, end, until).await?;
        }
        let from = end.saturating_sub(u64::from(page.limit));
        let count = u32::try_from(end - from).unwrap_or(page.limit);
        let mut entries = self.read_entries(&reseller.id, from, count).await?;
        if let Some(since) = page.since_ms {
            entries.retain(|e| e.at_ms >= since);
        }
        entries.reverse();
        Ok(entries)
    }

    /// The first position below `end` whose entry is at or after `at_ms` (`end` when none is).
    async fn first_at_or_after(&self, wallet_id: &str, end: u64, at_ms: i64) -> Result<u64> {
        let (mut low, mut high) = (0u64, end);
        while low < high {
            let middle = low + (high - low) / 2;
            let found = self.read_entries(wallet_id, middle, 1).await?;
            let Some(entry) = found.first() else {
                return Err(Error::StorageFailed {
                    operation: "read",
                    reason: format!("the ledger of wallet \"{wallet_id}\" holds no entry {middle}"),
                });
            };
            if entry.at_ms >= at_ms {
                high = middle;
            } else {
                low = middle + 1;
            }
        }
        Ok(low)
    }

    /// The entries an idempotency key wrote in a reseller's wallet (one entry, or a bulk's), or
    /// none: what a host answers a retried request with, without sending it again. One claim
    /// lookup and one read of at most a bulk's entries, whatever the history.
    pub async fn find_by_idempotency_key(
        &self,
        reseller_id: &str,
        key: &str,
    ) -> Result<Vec<Entry>> {
        let reseller = self.require_reseller_shared(reseller_id).await?;
        let Some(position) = self
            .storage
            .find_claim(&stream(&reseller.id), key)
            .await
            .map_err(storage_failed("findClaim"))?
        else {
            return Ok(Vec::new());
        };
        let first = self.read_entries(&reseller.id, position, 1).await?;
        let Some(head) = first.first() else {
            return Err(Error::StorageFailed {
                operation: "findClaim",
                reason: format!(
                    "idempotency key \"{key}\" is claimed at entry {position}, which is not stored"
                ),
            });
        };
        if head.idempotency_key.as_deref() != Some(key) {
            return Err(Error::StorageFailed {
                operation: "findClaim",
                reason: format!("idempotency key \"{key}\" is claimed at entry {position}, which does not hold it"),
            });
        }
        // A bulk's first entry says how many it wrote; no more than a bulk can hold is read.
        let size = head
            .batch
            .map_or(1, |b| b.size as usize)
            .min(ledger::BULK_LEN_MAX);
        if size <= 1 {
            return Ok(first);
        }
        let count = u32::try_from(size).unwrap_or(u32::MAX);
        self.read_entries(&reseller.id, position, count).await
    }

    /// A reseller's whole history, oldest first (for audits and exports).
    pub async fn ledger(&self, reseller_id: &str) -> Result<Vec<Entry>> {
        let reseller = self.require_reseller_shared(reseller_id).await?;
        let mut out = Vec::new();
        loop {
            let page = self
                .read_entries(&reseller.id, out.len() as u64, PAGE_SIZE_MAX)
                .await?;
            let full = page.len() >= PAGE_SIZE_MAX as usize;
            out.extend(page);
            if !full {
                return Ok(out);
            }
        }
    }

    /// The wallet's current state (after catching up with the stream) signed with the host's
    /// key: what an edge function checks with [`attestation::verify`] instead of the history.
    /// `RESELLER_INACTIVE` for a reseller that may not spend.
    pub async fn attest_wallet(
        &self,
        reseller_id: &str,
        key: &AttestationKey,
    ) -> Result<Attestation> {
        let reseller = self.require_reseller_shared(reseller_id).await?;
        // An edge function that trusts the attestation lets the reseller spend: a suspended or
        // inactive one gets none.
        reseller.check_may_spend()?;
        let at = self.now()?;
        let state = self
            .with_wallet(&reseller, |w, _| (w.length, w.credits(), w.head))
            .await?;
        let (length, balance, head) = state.unwrap_or((0, Credits::ZERO, ledger::GENESIS));
        Ok(attestation::sign(
            &reseller.id,
            length,
            balance,
            head,
            at.timestamp_millis(),
            key,
        ))
    }

    /// The operator's audit of a stored wallet, end to end: replays the whole stream as
    /// `validateLedger` does (hash chain, balances, sequence, ids, keys, batches) and checks
    /// that the stored checkpoint is exactly the replay of the entries it covers. The one
    /// operation whose cost grows with the history: it reads every entry.
    pub async fn audit_wallet(&self, reseller_id: &str) -> Result<WalletAudit> {
        let reseller = self.require_reseller_shared(reseller_id).await?;
        let record = self
            .storage
            .get(WALLETS, &reseller.id)
            .await
            .map_err(storage_failed("get"))?;
        let checkpoint = match &record {
            None => None,
            Some(record) => {
                let data: Value =
                    serde_json::from_str(&record.data).map_err(|e| Error::StorageFailed {
                        operation: "get",
                        reason: format!("wallet record \"{}\" is not readable: {e}", record.id),
                    })?;
                match data.get("checkpoint") {
                    None | Some(Value::Null) => None,
                    Some(value) => {
                        Some(Checkpoint::from_json(value, "checkpoint").map_err(|e| {
                            Error::StorageFailed {
                                operation: "get",
                                reason: format!("wallet record \"{}\": {e}", record.id),
                            }
                        })?)
                    }
                }
            }
        };
        let stream = stream(&reseller.id);
        let threshold = self.config.low_credit_threshold;
        let mut wallet = Wallet::new(Some(reseller.id.clone()), 0, threshold);
        let mut volumes = DayVolumes::default();
        let mut checkpoint_matches = checkpoint
            .as_ref()
            .map(|c| c.length == 0 && *c == Checkpoint::empty());
        loop {
            let from = wallet.length;
            let page = self
                .storage
                .read(&stream, from, PAGE_SIZE_MAX)
                .await
                .map_err(storage_failed("read"))?;
            for (i, text) in page.iter().enumerate() {
                let (entry, flaws) = decode(text, &stream, from + i as u64)?;
                wallet.apply(&entry, &flaws);
                volumes.add(
                    entry.at_ms,
                    entry.kind == ledger::EntryKind::Credit,
                    entry.amount,
                );
                if let Some(c) = checkpoint.as_ref().filter(|c| c.length == wallet.length) {
                    checkpoint_matches = Some(wallet.checkpoint(&volumes).as_ref() == Some(c));
                }
            }
            if page.len() < PAGE_SIZE_MAX as usize {
                break;
            }
        }
        Ok(WalletAudit {
            audit: Audit::of(wallet),
            checkpoint_length: checkpoint.map(|c| c.length),
            checkpoint_matches: checkpoint_matches.unwrap_or(true),
        })
    }

    /// The daily job: notifies every wallet below the threshold whose crossing has no
    /// notification yet, and retries the outbox.
    /// `at` is the time the job records (default: the clock's).
    pub async fn check_credits(&self, at: Option<DateTime<Utc>>) -> Result<CreditCheck> {
        let at = match at {
            Some(at) => at,
            None => self.now()?,
        };
        let mut report = CreditCheck::default();
        let mut after: Option<String> = None;
        loop {
            let (page, next) = self.find_page(WALLETS, None, after.as_deref()).await?;
            for record in &page {
                report.checked += 1;
                let Some(reseller) = self.find_reseller(&record.id).await? else {
                    continue;
                };
                let reseller = reseller.value;
                let threshold = self.config.low_credit_threshold;
                let crossing = self
                    .with_wallet(&reseller, |state, _| {
                        state.low_since.map(|sequence| LowCredit {
                            wallet_id: reseller.id.clone(),
                            sequence,
                            balance: state.credits(),
                            threshold,
                            at_ms: at.timestamp_millis(),
                        })
                    })
                    .await?
                    .flatten();
                let Some(crossing) = crossing else { continue };
                let queued = self
                    .storage
                    .get(OUTBOX, &crossing.key())
                    .await
                    .map_err(storage_failed("get"))?;
                if queued.is_some() {
                    continue; // notified, or pending: the retry pass below handles it
                }
                if let Some(record) = self.queue_low_credit(&reseller, &crossing, at).await? {
                    match self.deliver(record, at).await {
                        Ok(true) => report.notified += 1,
                        Ok(false) | Err(_) => report.failed += 1,
                    }
                }
            }
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        self.retry_outbox(&mut report, at).await?;
        Ok(report)
    }

    async fn retry_outbox(&self, report: &mut CreditCheck, at: DateTime<Utc>) -> Result<()> {
        let pending = Some((INDEX_STATUS, STATUS_PENDING));
        let mut after: Option<String> = None;
        loop {
            let (page, next) = self.find_page(OUTBOX, pending, after.as_deref()).await?;
            for record in &page {
                match self.deliver(record.clone(), at).await {
                    Ok(true) => report.retried += 1,
                    Ok(false) => report.failed += 1,
                    Err(Error::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            match next {
                Some(next) => after = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// The outbox records, for hosts that show or audit notifications.
    pub async fn outbox(&self) -> Result<Vec<Value>> {
        self.find_all(OUTBOX, None, |record| {
            serde_json::from_str(&record.data).map_err(|e| Error::StorageFailed {
                operation: "find",
                reason: format!("outbox record \"{}\" is not readable: {e}", record.id),
            })
        })
        .await
    }
}

/// A wallet record: the wallet exists, since when, and its checkpoint (none for a new wallet).
fn wallet_record(
    wallet_id: &str,
    version: u64,
    created_at: &str,
    checkpoint: Option<&Checkpoint>,
) -> StoredRecord {
    let data = json!({
        "id": wallet_id,
        "resellerId": wallet_id,
        "createdAt": created_at,
        "checkpoint": checkpoint.map(Checkpoint::to_json),
    });
    StoredRecord {
        id: wallet_id.to_owned(),
        version,
        data: data.to_string(),
        indexes: vec![("resellerId".to_owned(), wallet_id.to_owned())],
    }
}

/// The length of the checkpoint a stored wallet record holds (0 when it holds none or cannot
/// be read: the caller only uses it to decide when to write the next one).
fn stored_checkpoint_length(record: &StoredRecord) -> u64 {
    serde_json::from_str::<Value>(&record.data)
        .ok()
        .and_then(|data| data.get("checkpoint")?.get("length")?.as_u64())
        .unwrap_or(0)
}

fn message_json(m: &MailMessage) -> Value {
    json!({
        "to": m.to,
        "subject": m.subject,
        "text": m.text,
        "html": m.html,
        "kind": m.kind,
        "idempotencyKey": m.idempotency_key,
    })
}

fn message_from_json(v: &Value) -> Option<MailMessage> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(MailMessage {
        to: text("to")?,
        subject: text("subject")?,
        text: text("text")?,
        html: text("html")?,
        kind: text("kind")?,
        idempotency_key: text("idempotencyKey")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::config::Config;
    use crate::domain::ledger::audit;
    use crate::domain::reseller::{ResellerDraft, UserId};
    use crate::engine::executor::block_on;
    use crate::engine::memory::MemoryStorage;
    use crate::engine::ports::{FixedClock, MailError, Query};
    use chrono::TimeZone;
    use std::cell::Cell;

    /// Records what it is given; fails the first `failures` sends.
    #[derive(Default)]
    struct Outbox {
        sent: RefCell<Vec<MailMessage>>,
        failures: Cell<u32>,
    }

    impl Mailer for Rc<Outbox> {
        async fn send(&self, message: &MailMessage) -> std::result::Result<(), MailError> {
            if self.failures.get() > 0 {
                self.failures.set(self.failures.get() - 1);
                return Err(MailError {
                    reason: "relay refused".into(),
                });
            }
            self.sent.borrow_mut().push(message.clone());
            Ok(())
        }
    }

    type Engine = Ally<Rc<MemoryStorage>, Rc<Outbox>, FixedClock>;

    fn engine(storage: &Rc<MemoryStorage>, mail: &Rc<Outbox>) -> Engine {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 1, 9, 0, 0)
            .single()
            .unwrap_or_default();
        Ally::new(
            Config::default(),
            Rc::clone(storage),
            Rc::clone(mail),
            FixedClock(at),
            11,
        )
    }

    fn run<F: std::future::Future>(future: F) -> F::Output {
        block_on(future, 64).unwrap_or_else(|| panic!("the in-memory port suspended"))
    }

    fn c(n: u64) -> Credits {
        Credits::new(n).unwrap_or_default()
    }

    fn reseller(ally: &Engine, user: u64) -> String {
        let draft = ResellerDraft {
            user_id: Some(UserId::Number(user)),
            company_name: Some("Elite <Global>".into()),
            email: Some("ops@elite.example".into()),
            ..ResellerDraft::default()
        };
        run(ally.create_reseller(draft))
            .unwrap_or_else(|e| panic!("{e}"))
            .value
            .id
    }

    fn code<T>(result: Result<T>) -> Option<&'static str> {
        result.err().map(|e| e.code().as_str())
    }

    fn history(storage: &MemoryStorage, id: &str) -> Vec<Entry> {
        let texts = run(storage.read(&stream(id), 0, 100_000)).unwrap_or_default();
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| decode(t, id, i as u64).map(|(e, _)| e))
            .collect::<Result<Vec<_>>>()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn top_up_provision_and_history() {
        let (storage, mail) = (Rc::default(), Rc::default());
        let ally = engine(&storage, &mail);
        let id = reseller(&ally, 1);
        assert_eq!(run(ally.balance(&id)).map(Credits::get), Ok(0));
        let top = run(ally.add_credits(&id, c(50_000), Some("Wire".into()), None))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(top.entries[0].balance_after, 50_000);
        let debit = run(ally.provision(&id, c(200), Some("Issue Pro License".into()), None))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (debit.entries[0].sequence, debit.entries[0].balance_after),
            (2, 49_800)
        );
        assert_eq!(run(ally.balance(&id)).map(Credits::get), Ok(49_800));
        assert_eq!(
            code(run(ally.provision(&id, c(49_801), None, None))),
            Some("INSUFFICIENT_CREDITS")
        );
        assert_eq!(history(&storage, &id).len(), 2, "a refusal writes nothing");
        let page = |limit, before| TransactionsPage {
            limit,
            before,
            since_ms: None,
            until_ms: None,
        };
        let newest = run(ally.transactions(&id, page(10, None))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            newest.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            vec![2, 1]
        );
        let older =
            run(ally.transactions(&id, page(10, Some(2)))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            older.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            vec![1]
        );
        let report = audit(
            history(&storage, &id)
                .into_iter()
                .map(|e| (e, EntryFlaws::default())),
            Some(id.clone()),
            0,
        );
        assert!(report.ok, "{:?}", report.violations);
        assert_eq!(report.balance, 49_800);
    }

    #[test]
    fn bulk_is_all_or_nothing_with_a_code_per_item() {
        let (storage, mail) = (Rc::default(), Rc::default());
        let ally = engine(&storage, &mail);
        let id = reseller(&ally, 1);
        run(ally.add_credits(&id, c(1_000), None, None)).unwrap_or_else(|e| panic!("{e}"));
        let items = |costs: &[u64]| {
            costs
                .iter()
                .map(|&n| Movement {
                    amount: c(n),
                    memo: None,
                })
                .collect::<Vec<_>>()
        };
        let refused = run(ally.provision_bulk(&id, items(&[400, 500, 200, 50]), None));
        match refused {
            Err(Error::InsufficientCredits {
                items, requested, ..
            }) => {
                assert_eq!(requested, 1_150);
                assert_eq!(
                    items,
                    vec![
                        "LINKED_ITEM_FAILED",
                        "LINKED_ITEM_FAILED",
                        "INSUFFICIENT_CREDITS",
                        "LINKED_ITEM_FAILED"
                    ]
                );
            }
            other => panic!("expected INSUFFICIENT_CREDITS, got {other:?}"),
        }
        assert_eq!(history(&storage, &id).len(), 1);
        let done = run(ally.provision_bulk(&id, items(&[400, 500]), Some("b1".into())))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(done.entries.len(), 2);
        assert_eq!(done.entries[1].balance_after, 100);
        let again = run(ally.provision_bulk(&id, items(&[400, 500]), Some("b1".into())))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(again.replayed);
        assert_eq!(again.entries, done.entries);
        assert_eq!(
            code(run(ally.provision_bulk(
                &id,
                items(&[400, 501]),
                Some("b1".into())
            ))),
            Some("IDEMPOTENCY_MISMATCH")
        );
        assert_eq!(
            code(run(ally.provision(&id, c(400), None, Some("b1".into())))),
            Some("IDEMPOTENCY_MISMATCH")
        );
        assert_eq!(history(&storage, &id).len(), 3);
    }

    #[test]
    fn idempotent_provision_and_hold() {
        let (storage, mail) = (Rc::default(), Rc::default());
        let ally = engine(&storage, &mail);
        let id = reseller(&ally, 1);
        run(ally.add_credits(&id, c(1_000), None, Some("t1".into())))
            .unwrap_or_else(|e| panic!("{e}"));
        let again = run(ally.add_credits(&id, c(1_000), None, Some("t1".into())))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(again.replayed);
        assert_eq!(run(ally.balance(&id)).map(Credits::get), Ok(1_000));
        let first = run(ally.provision(&id, c(10), Some("m".into()), Some("p1".into())))
            .unwrap_or_else(|e| panic!("{e}"));
        // A second engine on the same storage answers the same key the same way.
        let other = engine(&storage, &mail);
        let replay = run(other.provision(&id, c(10), Some("m".into()), Some("p1".into())))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(replay.entries, first.entries);
        assert_eq!(
            code(run(other.provision(
                &id,
                c(10),
                Some("x".into()),
                Some("p1".into())
            ))),
            Some("IDEMPOTENCY_MISMATCH")
        );
        run(ally.update_reseller_metadata(&id, "hold_provisioning", Some(Value::Bool(true))))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            code(run(ally.provision(&id, c(10), None, None))),
            Some("PROVISIONING_HELD")
        );
        assert_eq!(run(ally.balance(&id)).map(Credits::get), Ok(990));
        assert_eq!(
            code(run(ally.provision("rs_none", c(1), None, None))),
            Some("NOT_FOUND")
        );
    }

    #[test]
    fn low_credit_is_raised_once_per_crossing_and_mailed() {
        let (storage, mail) = (Rc::<MemoryStorage>::default(), Rc::<Outbox>::default());
        let ally = engine(&storage, &mail);
        let id = reseller(&ally, 1);
        run(ally.add_credits(&id, c(700), None, None)).unwrap_or_else(|e| panic!("{e}"));
        let above = run(ally.provision(&id, c(200), None, None)).unwrap_or_else(|e| panic!("{e}"));
        assert!(above.low_credit.is_none(), "500 is not below 500");
        let crossed = run(ally.provision(&id, c(1), None, None)).unwrap_or_else(|e| panic!("{e}"));
        let event = crossed.low_credit.unwrap_or_else(|| panic!("no event"));
        assert_eq!(
            (event.crossing.balance.get(), event.notification),
            (499, "sent")
        );
        let again = run(ally.provision(&id, c(1), None, None)).unwrap_or_else(|e| panic!("{e}"));
        assert!(again.low_credit.is_none(), "once per crossing");
        assert_eq!(mail.sent.borrow().len(), 1);
        let message = mail.sent.borrow()[0].clone();
        assert_eq!(message.to, "ops@elite.example");
        assert!(message.subject.contains("Elite <Global>"));
        assert!(message.html.contains("Elite &lt;Global&gt;"));
        assert!(message.text.contains("498") || message.text.contains("499"));
        assert!(message.text.contains("partner/dashboard"));
        // A top-up over the threshold re-arms it; the next crossing mails again, and a failed
        // send is retried by the daily check.
        run(ally.add_credits(&id, c(100), None, None)).unwrap_or_else(|e| panic!("{e}"));
        mail.failures.set(2);
        let second = run(ally.provision(&id, c(100), None, None)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(second.low_credit.map(|e| e.notification), Some("pending"));
        let check = run(ally.check_credits(None)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (check.checked, check.notified, check.retried, check.failed),
            (1, 0, 0, 1)
        );
        let check = run(ally.check_credits(None)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((check.retried, check.failed), (1, 0));
        assert_eq!(mail.sent.borrow().len(), 2);
        let check = run(ally.check_credits(None)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            check,
            CreditCheck {
                checked: 1,
                ..CreditCheck::default()
            }
        );
        let keys: Vec<String> = mail
            .sent
            .borrow()
            .iter()
            .map(|m| m.idempotency_key.clone())
            .collect();
        assert_ne!(keys[0], keys[1]);
    }

    #[test]
    fn the_daily_check_notifies_a_crossing_whose_mail_was_never_queued() {
        let (storage, mail) = (Rc::<MemoryStorage>::default(), Rc::<Outbox>::default());
        let ally = engine(&storage, &mail);
        let id = reseller(&ally, 1);
        run(ally.add_credits(&id, c(600), None, None)).unwrap_or_else(|e| panic!("{e}"));
        run(ally.provision(&id, c(200), None, None)).unwrap_or_else(|e| panic!("{e}"));
        // Lose the outbox record, as if the process had stopped right after the append.
        let key = format!("lowCredit:{id}:2");
        let record = run(storage.get(OUTBOX, &key)).ok().flatten();
        assert!(record.is_some());
        let fresh = Rc::<MemoryStorage>::default();
        let entries = run(storage.read(&stream(&id), 0, 100)).unwrap_or_default();
        run(fresh.append(&stream(&id), 0, &entries, &[], None, false))
            .unwrap_or_else(|e| panic!("{e:?}"));
        for collection in ["resellers", WALLETS] {
            let query = Query {
                index: None,
                after: None,
                limit: 10,
            };
            for r in run(storage.find(collection, query)).unwrap_or_default() {
                let unique: &[&str] = if collection == "resellers" {
                    &["userId", "refid"]
                } else {
                    &[]
                };
                run(fresh.put(collection, &r, r.version - 1, unique))
                    .unwrap_or_else(|e| panic!("{e:?}"));
            }
        }
        let mail2 = Rc::<Outbox>::default();
        let other = engine(&fresh, &mail2);
        let check = run(other.check_credits(None)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((check.checked, check.notified), (1, 1));
        assert_eq!(mail2.sent.borrow()[0].idempotency_key, key);
    }

    #[test]
    fn a_tampered_history_is_refused() {
        let (storage, mail) = (Rc::<MemoryStorage>::default(), Rc::<Outbox>::default());
        let ally = engine(&storage, &mail);
        let id = reseller(&ally, 1);
        run(ally.add_credits(&id, c(600), None, None)).unwrap_or_else(|e| panic!("{e}"));
        let mut forged = history(&storage, &id)[0].clone();
        forged.sequence = 2;
        forged.id = "le_forged".into();
        forged.balance_after = 1_200;
        let text = forged.to_json_text();
        run(storage.append(&stream(&id), 1, &[text], &[], None, false))
            .unwrap_or_else(|e| panic!("{e:?}"));
        let other = engine(&storage, &mail);
        let refused = run(other.provision(&id, c(1), None, None));
        match refused {
            Err(Error::StorageFailed { reason, .. }) => {
                assert!(reason.contains("HASH_MISMATCH"), "{reason}")
            }
            other => panic!("expected STORAGE_FAILED, got {other:?}"),
        }
    }
}

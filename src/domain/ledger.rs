//! Credit wallets as append-only ledgers: the entries, their hash chain, the decisions for
//! top-ups and provisions, and the audit that replays a history.
//!
//! A wallet is the sequence of its entries; its balance is never stored apart from them. Each
//! entry carries the balance after it and a SHA-256 hash over its own fields and the previous
//! entry's hash, so an edited, dropped or reordered entry breaks the chain from that point on.
//! Every decision here takes the wallet's state and returns the entries to append (and the
//! low-credit crossing to raise), or a typed error; the engine performs the append.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::catalog::hex;
use super::error::{Error, Result};
use super::money::Credits;
use super::record::{describe, Fields};
use super::reseller::iso_time;

pub mod attestation;
pub mod checkpoint;

/// The longest memo or idempotency key, in bytes.
pub const TEXT_LEN_MAX: usize = 512;
/// The most items one bulk provision may hold.
pub const BULK_LEN_MAX: usize = 10_000;
/// The hash an empty wallet's chain starts from.
pub const GENESIS: [u8; 32] = [0; 32];
/// The version of the byte layout the hash covers and [`encode_ledger`] writes.
pub const ENCODING_VERSION: u8 = 2;
/// The first bytes of a binary ledger: `ALLYLDG` and the encoding version.
pub const LEDGER_MAGIC: [u8; 8] = *b"ALLYLDG\x02";

/// Which way an entry moves credits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// Credits in: a top-up.
    Credit,
    /// Credits out: a provision.
    Debit,
}

impl EntryKind {
    pub const ALL: [Self; 2] = [Self::Credit, Self::Debit];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Credit => "credit",
            Self::Debit => "debit",
        }
    }

    const fn tag(self) -> u8 {
        match self {
            Self::Credit => 1,
            Self::Debit => 2,
        }
    }
}

/// Appends `text` as a JSON string.
fn push_json_str(out: &mut String, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        // Escaping a string cannot fail.
        out.push_str(&serde_json::to_string(text).unwrap_or_default());
    }
}

fn push_json_opt_str(out: &mut String, text: Option<&str>) {
    match text {
        Some(text) => push_json_str(out, text),
        None => out.push_str("null"),
    }
}

fn push_hex(out: &mut String, bytes: &[u8; 32]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 64];
    for (pair, &b) in text.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
    // Hex digits are ASCII.
    out.push_str(std::str::from_utf8(&text).unwrap_or_default());
}

/// Where an entry sits in a bulk provision: item `index` of `size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BatchPosition {
    pub index: u32,
    pub size: u32,
}

/// An entry's JSON form, borrowed from it: [`Entry::view`].
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryView<'a> {
    pub id: &'a str,
    pub wallet_id: &'a str,
    pub sequence: u64,
    pub kind: &'static str,
    pub amount: i64,
    pub balance_after: i64,
    pub memo: Option<&'a str>,
    pub idempotency_key: Option<&'a str>,
    pub batch: Option<BatchPosition>,
    pub at: String,
    pub hash: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed: Option<bool>,
}

/// One ledger entry. Amounts are signed here so that an audit can hold a tampered history; the
/// decisions below only ever produce positive amounts and non-negative balances.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    pub wallet_id: String,
    /// 1 for a wallet's first entry, +1 for each next one.
    pub sequence: u64,
    pub kind: EntryKind,
    pub amount: i64,
    pub balance_after: i64,
    pub memo: Option<String>,
    /// The caller's key; for a bulk provision it sits on the first item only.
    pub idempotency_key: Option<String>,
    pub batch: Option<BatchPosition>,
    /// Milliseconds since the Unix epoch (UTC).
    pub at_ms: i64,
    pub hash: [u8; 32],
}

impl Entry {
    /// The chain hash of this entry's fields after `previous`: SHA-256 of `previous` followed by
    /// the entry's [`Entry::write_body`] encoding.
    #[must_use]
    pub fn chain_hash(&self, previous: &[u8; 32]) -> [u8; 32] {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(previous);
        self.write_body(&mut buf);
        Sha256::digest(&buf).into()
    }

    /// The fields the hash covers, in a fixed binary layout (little-endian; strings as a `u32`
    /// byte length then UTF-8; optional values behind a 0/1 byte):
    /// version (`ENCODING_VERSION`), sequence u64, kind u8 (1 credit, 2 debit), amount i64,
    /// balanceAfter i64, at i64 (ms since the epoch), id, walletId, memo?, idempotencyKey?,
    /// batch? (index u32, size u32). An entry without memo or batch with the engine's ids fits,
    /// with the previous hash, in two SHA-256 blocks.
    pub fn write_body(&self, buf: &mut Vec<u8>) {
        buf.push(ENCODING_VERSION);
        buf.extend_from_slice(&self.sequence.to_le_bytes());
        buf.push(self.kind.tag());
        buf.extend_from_slice(&self.amount.to_le_bytes());
        buf.extend_from_slice(&self.balance_after.to_le_bytes());
        buf.extend_from_slice(&self.at_ms.to_le_bytes());
        put_str(buf, &self.id);
        put_str(buf, &self.wallet_id);
        put_opt_str(buf, self.memo.as_deref());
        put_opt_str(buf, self.idempotency_key.as_deref());
        match self.batch {
            None => buf.push(0),
            Some(b) => {
                buf.push(1);
                buf.extend_from_slice(&b.index.to_le_bytes());
                buf.extend_from_slice(&b.size.to_le_bytes());
            }
        }
    }

    /// The time as an ISO-8601 string in UTC.
    #[must_use]
    pub fn at_text(&self) -> String {
        Self::at_ms_text(self.at_ms)
    }

    /// Milliseconds since the epoch as an ISO-8601 string in UTC.
    #[must_use]
    pub fn at_ms_text(at_ms: i64) -> String {
        iso_time::format_millis(at_ms)
    }

    /// The entry as the plain JSON object stored and handed to hosts.
    #[must_use]
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.view(None)).unwrap_or(Value::Null)
    }

    /// The entry as its JSON form serialises (the hosts' and the callers' shape), with
    /// `replayed` when the entry is the answer to a call (true when an earlier call wrote it).
    #[must_use]
    pub fn view(&self, replayed: Option<bool>) -> EntryView<'_> {
        EntryView {
            id: &self.id,
            wallet_id: &self.wallet_id,
            sequence: self.sequence,
            kind: self.kind.as_str(),
            amount: self.amount,
            balance_after: self.balance_after,
            memo: self.memo.as_deref(),
            idempotency_key: self.idempotency_key.as_deref(),
            batch: self.batch,
            at: self.at_text(),
            hash: hex(&self.hash),
            replayed,
        }
    }

    /// The entry's JSON text, the same object as [`Entry::to_json`], written directly: the
    /// provision path writes one per call, and a map built first would cost more than the rest
    /// of the call.
    #[must_use]
    pub fn to_json_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(320);
        out.push_str("{\"id\":");
        push_json_str(&mut out, &self.id);
        out.push_str(",\"walletId\":");
        push_json_str(&mut out, &self.wallet_id);
        // Writing into a String cannot fail.
        let _ = write!(
            out,
            ",\"sequence\":{},\"kind\":\"{}\",\"amount\":{},\"balanceAfter\":{},\"memo\":",
            self.sequence,
            self.kind.as_str(),
            self.amount,
            self.balance_after
        );
        push_json_opt_str(&mut out, self.memo.as_deref());
        out.push_str(",\"idempotencyKey\":");
        push_json_opt_str(&mut out, self.idempotency_key.as_deref());
        match self.batch {
            None => out.push_str(",\"batch\":null"),
            Some(b) => {
                let _ = write!(
                    out,
                    ",\"batch\":{{\"index\":{},\"size\":{}}}",
                    b.index, b.size
                );
            }
        }
        out.push_str(",\"at\":");
        push_json_str(&mut out, &self.at_text());
        out.push_str(",\"hash\":\"");
        push_hex(&mut out, &self.hash);
        out.push_str("\"}");
        out
    }

    /// Reads an entry back from its JSON form. Wrong types are `INVALID_INPUT` naming the field;
    /// wrong values (a negative amount, a hash that is not 64 hex digits) are kept for the audit to
    /// report, so that a tampered history reads and fails validation instead of failing to read.
    pub fn from_json(value: Value, path: &str) -> Result<(Self, EntryFlaws)> {
        let mut r = Fields::new(value, path)?;
        let mut flaws = EntryFlaws::default();
        let kind_text = r.string("kind")?;
        let kind = EntryKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind_text)
            .ok_or_else(|| {
                Error::invalid(
                    r.path("kind"),
                    "expected \"credit\" or \"debit\"".to_owned(),
                )
            })?;
        let amount = match integer(r.take("amount"), &r.path("amount"))? {
            Some(v) if v >= 1 && v <= Credits::MAX.get() as i64 => v,
            Some(v) => {
                flaws.amount = Some(format!("amount {v} is not between 1 and 2^53 - 1"));
                0
            }
            None => {
                flaws.amount = Some("amount is not a whole number".to_owned());
                0
            }
        };
        let balance_after = integer(r.take("balanceAfter"), &r.path("balanceAfter"))?
            .ok_or_else(|| Error::invalid(r.path("balanceAfter"), "expected a whole number"))?;
        let sequence = integer(r.take("sequence"), &r.path("sequence"))?
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| Error::invalid(r.path("sequence"), "expected a whole number ≥ 0"))?;
        let hash_text = r.string("hash")?;
        let hash = parse_hash(&hash_text).unwrap_or_else(|| {
            flaws.hash = Some(format!(
                "hash \"{}\" is not 64 lowercase hexadecimal digits",
                super::decimal::printable(&hash_text)
            ));
            GENESIS
        });
        let at_text = r.string("at")?;
        let at_ms = DateTime::parse_from_rfc3339(&at_text)
            .map(|at| at.with_timezone(&Utc).timestamp_millis())
            .map_err(|e| Error::invalid(r.path("at"), format!("not an ISO-8601 time: {e}")))?;
        let batch = match r.opt_object("batch")? {
            None => None,
            Some(mut b) => {
                let index = small(b.take("index"), &b.path("index"))?;
                let size = small(b.take("size"), &b.path("size"))?;
                b.finish(&["index", "size"])?;
                Some(BatchPosition { index, size })
            }
        };
        let entry = Self {
            id: r.string("id")?,
            wallet_id: r.string("walletId")?,
            sequence,
            kind,
            amount,
            balance_after,
            memo: r.opt_string("memo")?,
            idempotency_key: r.opt_string("idempotencyKey")?,
            batch,
            at_ms,
            hash,
        };
        // What an operation answered with (`replayed`) is no part of the entry.
        r.opt_bool("replayed")?;
        r.finish(&[
            "replayed",
            "id",
            "walletId",
            "sequence",
            "kind",
            "amount",
            "balanceAfter",
            "memo",
            "idempotencyKey",
            "batch",
            "at",
            "hash",
        ])?;
        Ok((entry, flaws))
    }
}

/// A stored entry as its JSON text lays it out, strings borrowed where they need no unescaping:
/// the fast way to read a history back (no map per entry).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StoredEntry<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    wallet_id: std::borrow::Cow<'a, str>,
    sequence: u64,
    #[serde(borrow)]
    kind: std::borrow::Cow<'a, str>,
    amount: i64,
    balance_after: i64,
    #[serde(borrow)]
    memo: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    idempotency_key: Option<std::borrow::Cow<'a, str>>,
    batch: Option<StoredBatch>,
    #[serde(borrow)]
    at: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    hash: std::borrow::Cow<'a, str>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredBatch {
    index: u32,
    size: u32,
}

impl Entry {
    /// Reads an entry from its stored JSON text. A well-formed entry takes the fast path; any
    /// other text is read by [`Entry::from_json`], which names what is wrong or keeps the flaw
    /// for the audit, so both paths read the same entries the same way.
    pub fn from_json_text(text: &str, path: &str) -> Result<(Self, EntryFlaws)> {
        if let Some(entry) = Self::from_stored(text) {
            return Ok((entry, EntryFlaws::default()));
        }
        let json: Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid(path, format!("not JSON: {e}")))?;
        Self::from_json(json, path)
    }

    /// The fast path: `None` for anything but a well-formed entry with valid values.
    fn from_stored(text: &str) -> Option<Self> {
        let s: StoredEntry<'_> = serde_json::from_str(text).ok()?;
        let kind = EntryKind::ALL.into_iter().find(|k| k.as_str() == s.kind)?;
        if s.amount < 1 || s.amount > Credits::MAX.get() as i64 {
            return None;
        }
        let hash = parse_hash(&s.hash)?;
        let at_ms = DateTime::parse_from_rfc3339(&s.at)
            .ok()?
            .with_timezone(&Utc)
            .timestamp_millis();
        Some(Self {
            id: s.id.into_owned(),
            wallet_id: s.wallet_id.into_owned(),
            sequence: s.sequence,
            kind,
            amount: s.amount,
            balance_after: s.balance_after,
            memo: s.memo.map(std::borrow::Cow::into_owned),
            idempotency_key: s.idempotency_key.map(std::borrow::Cow::into_owned),
            batch: s.batch.map(|b| BatchPosition {
                index: b.index,
                size: b.size,
            }),
            at_ms,
            hash,
        })
    }
}

/// What [`Entry::from_json`] read but could not hold as given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntryFlaws {
    pub amount: Option<String>,
    pub hash: Option<String>,
}

impl EntryFlaws {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.amount.is_none() && self.hash.is_none()
    }
}

fn integer(value: Option<Value>, path: &str) -> Result<Option<i64>> {
    match value {
        Some(Value::Number(n)) => Ok(n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|v| v.fract() == 0.0 && v.abs() < 9.2e18)
                .map(|v| v as i64)
        })),
        Some(other) => Err(Error::invalid(
            path,
            format!("expected a number, got {}", describe(&other)),
        )),
        None => Err(Error::invalid(path, "is required")),
    }
}

fn small(value: Option<Value>, path: &str) -> Result<u32> {
    integer(value, path)?
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| Error::invalid(path, "expected a whole number ≥ 0"))
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn put_str(buf: &mut Vec<u8>, text: &str) {
    // Texts past 4 GiB cannot be held by a wasm32 host; the length saturates rather than wraps.
    let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(text.as_bytes());
}

fn put_opt_str(buf: &mut Vec<u8>, text: Option<&str>) {
    match text {
        None => buf.push(0),
        Some(text) => {
            buf.push(1);
            put_str(buf, text);
        }
    }
}

/// A memo or idempotency key: printable, at most [`TEXT_LEN_MAX`] bytes, not blank.
pub fn text(value: &str, field: &str) -> Result<String> {
    if value.trim().is_empty() {
        return Err(Error::invalid(field, "must not be blank"));
    }
    if value.len() > TEXT_LEN_MAX {
        return Err(Error::invalid(
            field,
            format!("must be at most {TEXT_LEN_MAX} bytes, got {}", value.len()),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not hold control characters"));
    }
    Ok(value.to_owned())
}

/// Fast, non-cryptographic hashing for the audit's set of entry ids (made by the engine, not
/// chosen by callers; idempotency keys, which are, go in an ordered map).
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
}

type FastSet<T> = HashSet<T, BuildHasherDefault<FxHasher>>;
type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// The entry ids a replay has seen, kept in one growing buffer: a million ids cost a few
/// allocations, not a million.
#[derive(Clone, Debug, Default)]
struct IdSet {
    text: String,
    /// An id's hash → where the first id with that hash sits in `text`.
    first: FastMap<u64, (usize, usize)>,
    /// Ids whose hash an earlier, different id already holds.
    spill: FastSet<Box<str>>,
}

impl IdSet {
    /// False when `id` is already in the set.
    fn insert(&mut self, id: &str) -> bool {
        let mut hasher = FxHasher::default();
        hasher.write(id.as_bytes());
        match self.first.entry(hasher.finish()) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert((self.text.len(), id.len()));
                self.text.push_str(id);
                true
            }
            std::collections::hash_map::Entry::Occupied(slot) => {
                let (start, len) = *slot.get();
                if self.text.get(start..start + len) == Some(id) {
                    false
                } else {
                    self.spill.insert(id.into())
                }
            }
        }
    }

    fn reserve(&mut self, entries: usize) {
        self.first.reserve(entries);
        self.text.reserve(entries * 20);
    }
}

/// How one entry breaks the ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ViolationCode {
    /// `balanceAfter` is not the previous balance plus or minus the amount.
    BalanceMismatch,
    /// The balance went below zero.
    NegativeBalance,
    /// The sequence number is not the previous one plus one.
    SequenceGap,
    /// Another entry has the same id.
    DuplicateId,
    /// Another entry has the same idempotency key.
    DuplicateIdempotencyKey,
    /// The hash does not follow from the entry and the previous hash.
    HashMismatch,
    /// The amount is not a whole number of credits between 1 and 2^53 − 1.
    InvalidAmount,
    /// The entry belongs to another wallet.
    WalletMismatch,
    /// A bulk provision's items are not all there, in order.
    IncompleteBatch,
    /// The balance went past 2^53 − 1, beyond what a wallet may hold.
    BalanceOutOfRange,
}

impl ViolationCode {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::BalanceMismatch => "BALANCE_MISMATCH",
            Self::NegativeBalance => "NEGATIVE_BALANCE",
            Self::SequenceGap => "SEQUENCE_GAP",
            Self::DuplicateId => "DUPLICATE_ID",
            Self::DuplicateIdempotencyKey => "DUPLICATE_IDEMPOTENCY_KEY",
            Self::HashMismatch => "HASH_MISMATCH",
            Self::InvalidAmount => "INVALID_AMOUNT",
            Self::WalletMismatch => "WALLET_MISMATCH",
            Self::IncompleteBatch => "INCOMPLETE_BATCH",
            Self::BalanceOutOfRange => "BALANCE_OUT_OF_RANGE",
        }
    }
}

/// One finding of an audit: which entry (0-based position in the history), what, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub index: u64,
    pub code: ViolationCode,
    pub message: String,
}

/// Replays a wallet's history one entry at a time, and keeps what the engine needs to decide
/// the next operation: balance, length, chain head, idempotency keys and the low-credit state.
///
/// The engine folds a stored stream through it (and refuses to work on a wallet whose history
/// does not validate); `validateLedger` folds a history a host hands over.
#[derive(Clone, Debug)]
pub struct Wallet {
    pub id: Option<String>,
    /// How many entries have been replayed.
    pub length: u64,
    /// The balance after the last entry, replayed from the amounts.
    pub balance: i128,
    /// `balanceAfter` of the last entry as recorded (to localise a mismatch to one entry).
    recorded: i128,
    pub head: [u8; 32],
    last_sequence: u64,
    ids: IdSet,
    /// Idempotency key → position of the entry that holds it (0-based). An ordered map: keys are
    /// chosen by callers (on reseller routes), so a hash map with a fixed hasher could be flooded
    /// with colliding ones; this one answers in O(log n) whatever they are.
    pub keys: BTreeMap<Box<str>, u64>,
    /// Whether `ids` and `keys` are kept: by an audit, not by a live wallet resumed from a
    /// checkpoint (whose memory must not grow with its history).
    track_sets: bool,
    /// Where the current bulk provision is: (next index expected, size).
    open_batch: Option<(u32, u32)>,
    /// The low-credit threshold the crossing state is kept for.
    threshold: i128,
    /// Sequence of the debit that took the balance below the threshold, while it stays below.
    pub low_since: Option<u64>,
    /// The latest time of the entries replayed (`None` until one is).
    pub last_at_ms: Option<i64>,
    pub violations: Vec<Violation>,
    violation_total: u64,
}

/// The most entries `validateLedger` takes as an array (a longer history goes as the binary
/// buffer of `exportLedger`): the bound is checked before anything is read or reserved.
pub const AUDIT_ENTRIES_MAX: u32 = 10_000_000;

/// The most violations an audit lists; past it, it still counts them.
pub const VIOLATIONS_LISTED_MAX: usize = 1_000;

impl Wallet {
    /// An empty wallet. `id`, when given, is checked against every entry's `walletId`.
    #[must_use]
    pub fn new(id: Option<String>, opening_balance: u64, threshold: Credits) -> Self {
        Self {
            id,
            length: 0,
            balance: i128::from(opening_balance),
            recorded: i128::from(opening_balance),
            head: GENESIS,
            last_sequence: 0,
            ids: IdSet::default(),
            keys: BTreeMap::new(),
            track_sets: true,
            open_batch: None,
            threshold: i128::from(threshold.get()),
            low_since: None,
            last_at_ms: None,
            violations: Vec::new(),
            violation_total: 0,
        }
    }

    /// The time a new entry carries: now, or the latest entry's time when the clock is behind
    /// it (another instance's clock, a clock set back), so that a wallet's entry times never go
    /// backwards and a page by time can be found by bisection.
    #[must_use]
    pub fn entry_time(&self, now_ms: i64) -> i64 {
        self.last_at_ms.map_or(now_ms, |last| now_ms.max(last))
    }

    /// Records that an entry of `at_ms` is in the history (one read at a cold start).
    pub fn saw_time(&mut self, at_ms: i64) {
        self.last_at_ms = Some(self.entry_time(at_ms));
    }

    /// How many violations were found (the list stops at [`VIOLATIONS_LISTED_MAX`]).
    #[must_use]
    pub fn violation_count(&self) -> u64 {
        self.violation_total
    }

    fn violate(&mut self, code: ViolationCode, message: String) {
        self.violation_total += 1;
        if self.violations.len() < VIOLATIONS_LISTED_MAX {
            self.violations.push(Violation {
                index: self.length,
                code,
                message,
            });
        }
    }

    /// The balance as whole credits. Only a history with violations (a negative balance, one
    /// past 2^53 − 1) holds another: then zero, and nothing decides on it (the engine refuses a
    /// wallet whose history does not validate).
    #[must_use]
    pub fn credits(&self) -> Credits {
        u64::try_from(self.balance)
            .ok()
            .and_then(Credits::new)
            .unwrap_or(Credits::ZERO)
    }

    /// Replays one entry, recording what it breaks.
    pub fn apply(&mut self, entry: &Entry, flaws: &EntryFlaws) {
        let hash = entry.chain_hash(&self.head);
        self.replay(entry, flaws, hash);
    }

    /// Replays an entry this wallet's own decision produced and sealed: everything is checked
    /// but the hash, which [`seal`] computed from this very state.
    pub fn apply_trusted(&mut self, entry: &Entry) {
        self.replay(entry, &EntryFlaws::default(), entry.hash);
    }

    /// Replays an entry whose chain hash after the current head is `hash`.
    fn replay(&mut self, entry: &Entry, flaws: &EntryFlaws, hash: [u8; 32]) {
        let position = self.length;
        self.saw_time(entry.at_ms);
        if let Some(id) = &self.id {
            if &entry.wallet_id != id {
                let message = format!(
                    "entry {position} belongs to wallet \"{}\", not \"{id}\"",
                    entry.wallet_id
                );
                self.violate(ViolationCode::WalletMismatch, message);
            }
        } else if position == 0 {
            self.id = Some(entry.wallet_id.clone());
        }
        if entry.sequence != self.last_sequence + 1 {
            let message = format!(
                "entry {position} has sequence {}, expected {}",
                entry.sequence,
                self.last_sequence + 1
            );
            self.violate(ViolationCode::SequenceGap, message);
        }
        self.last_sequence = entry.sequence;
        if self.track_sets {
            self.check_unique(entry, position);
        }
        self.check_batch(entry.batch, position);
        if let Some(reason) = &flaws.amount {
            self.violate(
                ViolationCode::InvalidAmount,
                format!("entry {position}: {reason}"),
            );
        }
        let signed = match entry.kind {
            EntryKind::Credit => i128::from(entry.amount),
            EntryKind::Debit => -i128::from(entry.amount),
        };
        let before = self.balance;
        self.balance += signed;
        let expected = self.recorded + signed;
        if i128::from(entry.balance_after) != expected {
            let message = format!(
                "entry {position} records balance {} after {} {}, expected {expected}",
                entry.balance_after,
                entry.kind.as_str(),
                entry.amount
            );
            self.violate(ViolationCode::BalanceMismatch, message);
        }
        if self.balance < 0 || entry.balance_after < 0 {
            let message = format!(
                "entry {position} takes the balance to {}",
                self.balance.min(i128::from(entry.balance_after))
            );
            self.violate(ViolationCode::NegativeBalance, message);
        }
        let most = i128::from(Credits::MAX.get());
        if self.balance > most || i128::from(entry.balance_after) > most {
            let message = format!(
                "entry {position} takes the balance to {}, past 2^53 - 1",
                self.balance.max(i128::from(entry.balance_after))
            );
            self.violate(ViolationCode::BalanceOutOfRange, message);
        }
        self.recorded = i128::from(entry.balance_after);
        if let Some(reason) = &flaws.hash {
            self.violate(
                ViolationCode::HashMismatch,
                format!("entry {position}: {reason}"),
            );
        } else if hash != entry.hash {
            let message = format!(
                "entry {position} has hash {}, its fields and the previous hash give {}",
                hex(&entry.hash),
                hex(&hash)
            );
            self.violate(ViolationCode::HashMismatch, message);
        }
        // Continue the chain from the recorded hash, so one edit is reported once.
        self.head = if flaws.hash.is_some() {
            hash
        } else {
            entry.hash
        };
        self.track_low_credit(entry, before);
        self.length += 1;
    }

    fn check_unique(&mut self, entry: &Entry, position: u64) {
        if !self.ids.insert(&entry.id) {
            let message = format!("entry {position} repeats id \"{}\"", entry.id);
            self.violate(ViolationCode::DuplicateId, message);
        }
        if let Some(key) = &entry.idempotency_key {
            if self.keys.contains_key(key.as_str()) {
                let message = format!("entry {position} repeats idempotency key \"{key}\"");
                self.violate(ViolationCode::DuplicateIdempotencyKey, message);
            } else {
                self.keys.insert(key.as_str().into(), position);
            }
        }
    }

    fn check_batch(&mut self, batch: Option<BatchPosition>, position: u64) {
        match (self.open_batch, batch) {
            (None, None) => {}
            (None, Some(b)) if b.index == 0 && b.size >= 1 => {
                self.open_batch = (b.size > 1).then_some((1, b.size));
            }
            (Some((next, size)), Some(b)) if b.index == next && b.size == size => {
                self.open_batch = (next + 1 < size).then_some((next + 1, size));
            }
            (open, got) => {
                let expected = open.map_or_else(
                    || "no batch or the first item of one".to_owned(),
                    |(next, size)| format!("item {next} of {size}"),
                );
                let found = got.map_or_else(
                    || "an entry outside any batch".to_owned(),
                    |b| format!("item {} of {}", b.index, b.size),
                );
                let message = format!("entry {position} is {found}; expected {expected}");
                self.violate(ViolationCode::IncompleteBatch, message);
                self.open_batch = got
                    .filter(|b| b.index + 1 < b.size)
                    .map(|b| (b.index + 1, b.size));
            }
        }
    }

    /// Call after the last entry: a batch still open is incomplete.
    pub fn finish(&mut self) {
        if let Some((next, size)) = self.open_batch.take() {
            let message = format!(
                "the history ends after item {} of a {size}-item batch",
                next - 1
            );
            self.violate(ViolationCode::IncompleteBatch, message);
        }
    }

    fn track_low_credit(&mut self, entry: &Entry, before: i128) {
        if self.balance >= self.threshold {
            self.low_since = None;
        } else if entry.kind == EntryKind::Debit && before >= self.threshold {
            self.low_since = Some(entry.sequence);
        }
    }

    /// Whether the history replayed so far is sound.
    #[must_use]
    pub fn is_valid(&self) -> bool {
        self.violation_total == 0
    }
}

/// A low-credit crossing: a debit took the balance from at or above the threshold to below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LowCredit {
    pub wallet_id: String,
    /// Sequence of the debit that crossed: together with the wallet, it names the crossing.
    pub sequence: u64,
    pub balance: Credits,
    pub threshold: Credits,
    pub at_ms: i64,
}

impl LowCredit {
    /// The key of the crossing's notification: one mail per crossing.
    #[must_use]
    pub fn key(&self) -> String {
        format!("lowCredit:{}:{}", self.wallet_id, self.sequence)
    }
}

/// What a caller asks to append: the parts of an entry the wallet does not decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Movement {
    pub amount: Credits,
    pub memo: Option<String>,
}

/// The entries to append and the crossing to raise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub entries: Vec<Entry>,
    pub low_credit: Option<LowCredit>,
}

/// The fixed inputs of a decision.
pub struct Context<'a> {
    pub wallet_id: &'a str,
    pub reseller_id: &'a str,
    pub at_ms: i64,
    pub threshold: Credits,
    pub idempotency_key: Option<String>,
}

fn seal(wallet: &Wallet, mut entries: Vec<Entry>) -> Vec<Entry> {
    let mut head = wallet.head;
    for entry in &mut entries {
        entry.hash = entry.chain_hash(&head);
        head = entry.hash;
    }
    entries
}

/// A top-up: one credit entry. The balance may not pass 2^53 − 1.
pub fn decide_top_up(
    wallet: &Wallet,
    ctx: Context<'_>,
    movement: Movement,
    entry_id: String,
) -> Result<Decision> {
    let after = wallet
        .credits()
        .checked_add(movement.amount)
        .ok_or_else(|| {
            Error::invalid(
                "amount",
                format!(
                    "a top-up of {} would take the balance of {} past 2^53 - 1",
                    movement.amount,
                    wallet.credits()
                ),
            )
        })?;
    let entry = Entry {
        id: entry_id,
        wallet_id: ctx.wallet_id.to_owned(),
        sequence: wallet.length + 1,
        kind: EntryKind::Credit,
        amount: movement.amount.get() as i64,
        balance_after: after.get() as i64,
        memo: movement.memo,
        idempotency_key: ctx.idempotency_key,
        batch: None,
        at_ms: wallet.entry_time(ctx.at_ms),
        hash: GENESIS,
    };
    Ok(Decision {
        entries: seal(wallet, vec![entry]),
        low_credit: None,
    })
}

/// Result codes of a refused bulk provision, per item.
pub mod item_code {
    /// This item is the one the balance could not cover.
    pub const INSUFFICIENT_CREDITS: &str = "INSUFFICIENT_CREDITS";
    /// This item was affordable, but the bulk failed as a whole.
    pub const LINKED_ITEM_FAILED: &str = "LINKED_ITEM_FAILED";
}

/// One provision: a single debit.
pub fn decide_provision(
    wallet: &Wallet,
    ctx: Context<'_>,
    movement: Movement,
    entry_id: String,
    held: bool,
) -> Result<Decision> {
    decide_debits(wallet, ctx, vec![movement], vec![entry_id], held, false)
}

/// A bulk provision: affordable as a whole or refused as a whole. The entries carry their batch
/// position; a refusal lists one code per item, the way linked transfers report: the item the
/// balance could not cover is `INSUFFICIENT_CREDITS`, every other one `LINKED_ITEM_FAILED`.
pub fn decide_bulk(
    wallet: &Wallet,
    ctx: Context<'_>,
    items: Vec<Movement>,
    entry_ids: Vec<String>,
    held: bool,
) -> Result<Decision> {
    decide_debits(wallet, ctx, items, entry_ids, held, true)
}

fn decide_debits(
    wallet: &Wallet,
    ctx: Context<'_>,
    items: Vec<Movement>,
    entry_ids: Vec<String>,
    held: bool,
    bulk: bool,
) -> Result<Decision> {
    if held {
        return Err(Error::ProvisioningHeld {
            reseller: ctx.reseller_id.to_owned(),
        });
    }
    if items.is_empty() || items.len() > BULK_LEN_MAX || entry_ids.len() != items.len() {
        return Err(Error::invalid(
            "items",
            format!("expected 1 to {BULK_LEN_MAX} items, got {}", items.len()),
        ));
    }
    let balance = wallet.credits();
    // The total in u128 cannot overflow: at most 10 000 items of at most 2^53 − 1 each.
    let requested: u128 = items.iter().map(|m| u128::from(m.amount.get())).sum();
    if requested > u128::from(balance.get()) {
        let mut codes = Vec::new();
        if bulk {
            let mut left = u128::from(balance.get());
            let mut failed = false;
            for m in &items {
                let cost = u128::from(m.amount.get());
                if !failed && cost > left {
                    failed = true;
                    codes.push(item_code::INSUFFICIENT_CREDITS);
                } else {
                    // Before the failing item cost ≤ left; after it nothing is taken.
                    if !failed {
                        left -= cost;
                    }
                    codes.push(item_code::LINKED_ITEM_FAILED);
                }
            }
        }
        return Err(Error::InsufficientCredits {
            reseller: ctx.reseller_id.to_owned(),
            balance: balance.get(),
            requested: u64::try_from(requested).map_err(|_| Error::overflow("items"))?,
            items: codes,
        });
    }
    let size = u32::try_from(items.len()).unwrap_or(u32::MAX);
    let mut running = balance.get();
    let mut key = ctx.idempotency_key;
    let entries: Vec<Entry> = items
        .into_iter()
        .zip(entry_ids)
        .enumerate()
        .map(|(i, (m, id))| {
            running -= m.amount.get();
            Entry {
                id,
                wallet_id: ctx.wallet_id.to_owned(),
                sequence: wallet.length + 1 + i as u64,
                kind: EntryKind::Debit,
                amount: m.amount.get() as i64,
                balance_after: running as i64,
                memo: m.memo,
                idempotency_key: key.take(),
                batch: bulk.then_some(BatchPosition {
                    index: i as u32,
                    size,
                }),
                at_ms: wallet.entry_time(ctx.at_ms),
                hash: GENESIS,
            }
        })
        .collect();
    let low_credit = low_credit_crossing(&entries, ctx.threshold);
    let entries = seal(wallet, entries);
    debug_assert!(low_credit.as_ref().is_none_or(|c| {
        let mut replay = wallet.clone();
        entries.iter().for_each(|e| replay.apply_trusted(e));
        replay.low_since == Some(c.sequence)
    }));
    Ok(Decision {
        entries,
        low_credit,
    })
}

/// The low-credit crossing a run of debits made, if it made one: the first of them that took
/// the balance from at or above `threshold` to below it. It is named by that debit, as a replay
/// of the entries names it (`Wallet::track_low_credit`): in a bulk provision that is not always
/// the last item, and a second name would mean a second mail. The entries say it all (the
/// balance before the first is its balance after plus its amount), so an instance that did not
/// decide them names the same crossing.
#[must_use]
pub fn low_credit_crossing(entries: &[Entry], threshold: Credits) -> Option<LowCredit> {
    let first = entries.first()?;
    let last = entries.last()?;
    if entries.iter().any(|e| e.kind != EntryKind::Debit) {
        return None;
    }
    let before = i128::from(first.balance_after) + i128::from(first.amount);
    let below = i128::from(threshold.get());
    if before < below {
        return None;
    }
    let crossed = entries
        .iter()
        .find(|e| i128::from(e.balance_after) < below)?;
    Some(LowCredit {
        wallet_id: first.wallet_id.clone(),
        sequence: crossed.sequence,
        balance: u64::try_from(last.balance_after)
            .ok()
            .and_then(Credits::new)
            .unwrap_or(Credits::ZERO),
        threshold,
        at_ms: first.at_ms,
    })
}

/// The report of [`audit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audit {
    pub ok: bool,
    pub balance: i128,
    pub length: u64,
    pub violations: Vec<Violation>,
    pub violation_count: u64,
}

/// Replays a whole history (`validateLedger`).
pub fn audit<I>(entries: I, wallet_id: Option<String>, opening_balance: u64) -> Audit
where
    I: IntoIterator<Item = (Entry, EntryFlaws)>,
{
    let mut wallet = Wallet::new(wallet_id, opening_balance, Credits::ZERO);
    for (entry, flaws) in entries {
        wallet.apply(&entry, &flaws);
    }
    Audit::of(wallet)
}

impl Audit {
    /// The report of a replay that has seen its last entry.
    #[must_use]
    pub fn of(mut wallet: Wallet) -> Self {
        wallet.finish();
        Self {
            ok: wallet.is_valid(),
            balance: wallet.balance,
            length: wallet.length,
            violation_count: wallet.violation_total,
            violations: wallet.violations,
        }
    }
}

/// A wallet's history as one binary buffer: [`LEDGER_MAGIC`], then each entry's
/// [`Entry::write_body`] followed by its 32-byte hash. It carries everything the JSON entries
/// do, in about a third of the bytes, and [`audit_bytes`] checks it without building objects.
#[must_use]
pub fn encode_ledger(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(LEDGER_MAGIC.len() + entries.len() * 128);
    out.extend_from_slice(&LEDGER_MAGIC);
    for entry in entries {
        entry.write_body(&mut out);
        out.extend_from_slice(&entry.hash);
    }
    out
}

/// Reads a binary ledger, one entry at a time, into a reused [`Entry`].
struct LedgerReader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> LedgerReader<'a> {
    fn new(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() < LEDGER_MAGIC.len() || bytes[..7] != LEDGER_MAGIC[..7] {
            return Err(Error::invalid(
                "ledger",
                "not a binary ledger: it does not start with \"ALLYLDG\"",
            ));
        }
        if bytes[7] != ENCODING_VERSION {
            return Err(Error::invalid(
                "ledger",
                format!(
                    "binary ledger encoding version {} is not supported (expected {ENCODING_VERSION})",
                    bytes[7]
                ),
            ));
        }
        Ok(Self {
            bytes,
            at: LEDGER_MAGIC.len(),
        })
    }

    fn malformed(&self, what: &str) -> Error {
        Error::invalid("ledger", format!("byte {}: {what}", self.at))
    }

    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .at
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| self.malformed(&format!("the buffer ends inside {what}")))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let slice = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn byte(&mut self, what: &str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    fn flag(&mut self, what: &str) -> Result<bool> {
        match self.byte(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.malformed(&format!("{what} flag is {other}, expected 0 or 1"))),
        }
    }

    fn text_into(&mut self, out: &mut String, what: &str) -> Result<()> {
        let len = u32::from_le_bytes(self.array(what)?) as usize;
        let bytes = self.take(len, what)?;
        let text = std::str::from_utf8(bytes)
            .map_err(|_| self.malformed(&format!("{what} is not UTF-8")))?;
        out.clear();
        out.push_str(text);
        Ok(())
    }

    fn opt_text_into(&mut self, out: &mut Option<String>, what: &str) -> Result<()> {
        if self.flag(what)? {
            let mut text = out.take().unwrap_or_default();
            self.text_into(&mut text, what)?;
            *out = Some(text);
        } else {
            *out = None;
        }
        Ok(())
    }

    /// The next entry into `entry`, and the bytes its hash covers.
    fn next_into(&mut self, entry: &mut Entry) -> Result<(EntryFlaws, &'a [u8])> {
        let start = self.at;
        let version = self.byte("version")?;
        if version != ENCODING_VERSION {
            self.at = start;
            return Err(self.malformed(&format!(
                "entry encoding version {version}, expected {ENCODING_VERSION}"
            )));
        }
        entry.sequence = u64::from_le_bytes(self.array("sequence")?);
        entry.kind = match self.byte("kind")? {
            1 => EntryKind::Credit,
            2 => EntryKind::Debit,
            other => return Err(self.malformed(&format!("kind {other}, expected 1 or 2"))),
        };
        entry.amount = i64::from_le_bytes(self.array("amount")?);
        entry.balance_after = i64::from_le_bytes(self.array("balanceAfter")?);
        entry.at_ms = i64::from_le_bytes(self.array("at")?);
        self.text_into(&mut entry.id, "id")?;
        self.text_into(&mut entry.wallet_id, "walletId")?;
        self.opt_text_into(&mut entry.memo, "memo")?;
        self.opt_text_into(&mut entry.idempotency_key, "idempotencyKey")?;
        entry.batch = if self.flag("batch")? {
            let index = u32::from_le_bytes(self.array("batch index")?);
            let size = u32::from_le_bytes(self.array("batch size")?);
            Some(BatchPosition { index, size })
        } else {
            None
        };
        let body = &self.bytes[start..self.at];
        entry.hash = self.array("hash")?;
        let mut flaws = EntryFlaws::default();
        if entry.amount < 1 || entry.amount > Credits::MAX.get() as i64 {
            flaws.amount = Some(format!(
                "amount {} is not between 1 and 2^53 - 1",
                entry.amount
            ));
        }
        Ok((flaws, body))
    }
}

/// [`audit`] over a binary ledger from [`encode_ledger`]. A buffer that cannot be read is
/// `INVALID_INPUT` naming the byte; a buffer that reads but does not add up is a report with
/// violations, as for JSON entries.
pub fn audit_bytes(bytes: &[u8], wallet_id: Option<String>, opening_balance: u64) -> Result<Audit> {
    let mut reader = LedgerReader::new(bytes)?;
    let mut wallet = Wallet::new(wallet_id, opening_balance, Credits::ZERO);
    let mut entry = Entry {
        id: String::new(),
        wallet_id: String::new(),
        sequence: 0,
        kind: EntryKind::Credit,
        amount: 0,
        balance_after: 0,
        memo: None,
        idempotency_key: None,
        batch: None,
        at_ms: 0,
        hash: GENESIS,
    };
    // Engine entries take about 120 bytes each.
    wallet.ids.reserve(bytes.len() / 120);
    while reader.at < bytes.len() {
        let (flaws, body) = reader.next_into(&mut entry)?;
        let hash: [u8; 32] = Sha256::new()
            .chain_update(wallet.head)
            .chain_update(body)
            .finalize()
            .into();
        wallet.replay(&entry, &flaws, hash);
    }
    Ok(Audit::of(wallet))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WALLET: &str = "rs_0000000000000001";

    fn credits(n: u64) -> Credits {
        Credits::new(n).expect("a valid amount")
    }

    fn ctx(key: Option<&str>) -> Context<'static> {
        Context {
            wallet_id: WALLET,
            reseller_id: WALLET,
            at_ms: 1_767_225_600_000,
            threshold: credits(100),
            idempotency_key: key.map(str::to_owned),
        }
    }

    fn movement(amount: u64, memo: Option<&str>) -> Movement {
        Movement {
            amount: credits(amount),
            memo: memo.map(str::to_owned),
        }
    }

    #[test]
    fn stored_text_reads_back_the_same_by_either_path() {
        let (_, entries) = history();
        for entry in &entries {
            let text = entry.to_json_text();
            let fast = Entry::from_stored(&text);
            assert_eq!(fast.as_ref(), Some(entry), "the fast path reads {text}");
            let json: Value = serde_json::from_str(&text).expect("JSON");
            let slow = Entry::from_json(json, "entry").expect("the slow path");
            assert_eq!(&slow.0, entry);
            assert_eq!(slow.1, EntryFlaws::default());
        }
        // A tampered amount is not for the fast path: the slow one keeps the flaw for the audit.
        let tampered = entries[1]
            .to_json_text()
            .replace("\"amount\":150", "\"amount\":-150");
        assert!(Entry::from_stored(&tampered).is_none());
        let (entry, flaws) = Entry::from_json_text(&tampered, "entry").expect("readable");
        assert_eq!(entry.amount, 0);
        assert!(flaws.amount.is_some());
        // An unknown key or a wrong type is named by the slow path.
        let extra = entries[0]
            .to_json_text()
            .replace("{\"id\"", "{\"colour\":1,\"id\"");
        let err = Entry::from_json_text(&extra, "entry")
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("colour")));
        assert!(Entry::from_json_text("not json", "entry").is_err());
    }

    /// A wallet history built by the decisions, each applied as the engine applies it.
    fn history() -> (Wallet, Vec<Entry>) {
        let mut wallet = Wallet::new(Some(WALLET.to_owned()), 0, credits(100));
        let mut entries = Vec::new();
        let mut push = |wallet: &mut Wallet, decision: Decision| {
            for entry in decision.entries {
                wallet.apply_trusted(&entry);
                entries.push(entry);
            }
        };
        let d = decide_top_up(
            &wallet,
            ctx(Some("top-1")),
            movement(500, None),
            "le_1".into(),
        );
        push(&mut wallet, d.expect("a top-up"));
        let d = decide_provision(
            &wallet,
            ctx(None),
            movement(150, Some("site \"a\"\n")),
            "le_2".into(),
            false,
        );
        push(&mut wallet, d.expect("a provision"));
        let items = vec![movement(100, None), movement(50, Some("ünï"))];
        let d = decide_bulk(
            &wallet,
            ctx(Some("bulk-1")),
            items,
            vec!["le_3".into(), "le_4".into()],
            false,
        );
        push(&mut wallet, d.expect("a bulk"));
        (wallet, entries)
    }

    #[test]
    fn decisions_chain_balances_and_hashes() {
        let (wallet, entries) = history();
        assert_eq!(wallet.credits(), credits(200));
        let balances: Vec<i64> = entries.iter().map(|e| e.balance_after).collect();
        assert_eq!(balances, [500, 350, 250, 200]);
        let sequences: Vec<u64> = entries.iter().map(|e| e.sequence).collect();
        assert_eq!(sequences, [1, 2, 3, 4]);
        assert_eq!(entries[2].batch, Some(BatchPosition { index: 0, size: 2 }));
        assert_eq!(entries[2].idempotency_key.as_deref(), Some("bulk-1"));
        assert_eq!(entries[3].idempotency_key, None);
        let report = audit(
            entries.into_iter().map(|e| (e, EntryFlaws::default())),
            None,
            0,
        );
        assert!(report.ok, "{:?}", report.violations);
        assert_eq!((report.balance, report.length), (200, 4));
    }

    #[test]
    fn the_json_text_is_the_json_object() {
        let (_, entries) = history();
        for entry in &entries {
            let text = entry.to_json_text();
            let parsed: Value = serde_json::from_str(&text).expect("valid JSON");
            assert_eq!(parsed, entry.to_json(), "{text}");
            let (back, flaws) = Entry::from_json(parsed, "entry").expect("reads back");
            assert!(flaws.is_empty());
            assert_eq!(&back, entry);
        }
    }

    #[test]
    fn a_refused_bulk_names_the_item_that_could_not_be_covered() {
        let (wallet, _) = history();
        let items = vec![movement(150, None), movement(100, None), movement(10, None)];
        let ids = vec!["a".into(), "b".into(), "c".into()];
        let refused = decide_bulk(&wallet, ctx(None), items, ids, false);
        match refused {
            Err(Error::InsufficientCredits {
                balance,
                requested,
                items,
                ..
            }) => {
                assert_eq!((balance, requested), (200, 260));
                assert_eq!(
                    items,
                    [
                        item_code::LINKED_ITEM_FAILED,
                        item_code::INSUFFICIENT_CREDITS,
                        item_code::LINKED_ITEM_FAILED
                    ]
                );
            }
            other => panic!("expected INSUFFICIENT_CREDITS, got {other:?}"),
        }
        let held = decide_provision(&wallet, ctx(None), movement(1, None), "x".into(), true);
        assert!(matches!(held, Err(Error::ProvisioningHeld { .. })));
    }

    #[test]
    fn a_provision_below_the_threshold_crosses_once() {
        let (wallet, _) = history();
        let d = decide_provision(&wallet, ctx(None), movement(101, None), "x".into(), false)
            .expect("affordable");
        let crossing = d.low_credit.expect("200 → 99 crosses 100");
        assert_eq!((crossing.balance, crossing.sequence), (credits(99), 5));
        let d = decide_provision(&wallet, ctx(None), movement(100, None), "x".into(), false)
            .expect("affordable");
        assert_eq!(d.low_credit, None, "200 → 100 stays at the threshold");
    }

    /// Every tampering the audit names, one at a time, as a table.
    #[test]
    fn the_audit_names_each_kind_of_tampering() {
        type Tamper = fn(&mut Vec<Entry>);
        let cases: [(&str, Tamper, ViolationCode, u64); 8] = [
            (
                "edited amount",
                |e| e[1].amount = 149,
                ViolationCode::HashMismatch,
                1,
            ),
            (
                "edited balance",
                |e| e[1].balance_after = 9_999,
                ViolationCode::BalanceMismatch,
                1,
            ),
            (
                "dropped entry",
                |e| drop(e.remove(1)),
                ViolationCode::SequenceGap,
                1,
            ),
            (
                "repeated id",
                |e| e[3].id = "le_1".into(),
                ViolationCode::DuplicateId,
                3,
            ),
            (
                "repeated key",
                |e| e[1].idempotency_key = Some("top-1".into()),
                ViolationCode::DuplicateIdempotencyKey,
                1,
            ),
            (
                "other wallet",
                |e| e[2].wallet_id = "rs_other".into(),
                ViolationCode::WalletMismatch,
                2,
            ),
            (
                "half a bulk",
                |e| drop(e.pop()),
                ViolationCode::IncompleteBatch,
                3,
            ),
            (
                "overdrawn",
                |e| {
                    e[1].amount = 600;
                    e[1].balance_after = -100;
                },
                ViolationCode::NegativeBalance,
                1,
            ),
        ];
        for (name, tamper, code, index) in cases {
            let (_, mut entries) = history();
            tamper(&mut entries);
            let report = audit(
                entries.into_iter().map(|e| (e, EntryFlaws::default())),
                Some(WALLET.to_owned()),
                0,
            );
            assert!(!report.ok, "{name}: must not validate");
            assert!(
                report
                    .violations
                    .iter()
                    .any(|v| v.code == code && v.index == index),
                "{name}: expected {code:?} at {index}, got {:?}",
                report.violations
            );
        }
    }

    #[test]
    fn a_binary_ledger_audits_as_its_entries_do() {
        let (_, entries) = history();
        let bytes = encode_ledger(&entries);
        assert_eq!(&bytes[..8], b"ALLYLDG\x02");
        let from_bytes = audit_bytes(&bytes, Some(WALLET.to_owned()), 0).expect("reads");
        let from_entries = audit(
            entries.iter().cloned().map(|e| (e, EntryFlaws::default())),
            Some(WALLET.to_owned()),
            0,
        );
        assert!(from_bytes.ok);
        assert_eq!(from_bytes, from_entries);

        let mut tampered = entries.clone();
        tampered[1].amount = 149;
        let report = audit_bytes(&encode_ledger(&tampered), None, 0).expect("reads");
        assert!(!report.ok);
        assert!(report
            .violations
            .iter()
            .any(|v| v.code == ViolationCode::HashMismatch && v.index == 1));
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let report = audit_bytes(&flipped, None, 0).expect("reads");
        assert_eq!(report.violations[0].code, ViolationCode::HashMismatch);
        assert_eq!(report.violations[0].index, 3);
    }

    #[test]
    fn an_unreadable_binary_ledger_is_invalid_input_naming_the_byte() {
        let (_, entries) = history();
        let bytes = encode_ledger(&entries);
        let cases: [(&[u8], &str); 5] = [
            (b"", "does not start"),
            (b"ALLYLDG\x01", "version 1 is not supported"),
            (&bytes[..bytes.len() - 1], "ends inside hash"),
            (&bytes[..20], "ends inside"),
            (
                &[&bytes[..], &[9u8][..]].concat(),
                "entry encoding version 9",
            ),
        ];
        for (input, expected) in cases {
            match audit_bytes(input, None, 0) {
                Err(error @ Error::InvalidInput { .. }) => {
                    assert!(error.to_string().contains(expected), "{error}");
                }
                other => panic!("expected INVALID_INPUT ({expected}), got {other:?}"),
            }
        }
        assert_eq!(
            audit_bytes(&LEDGER_MAGIC, None, 7).expect("empty").balance,
            7
        );
    }
}

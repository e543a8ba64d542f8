//! The host's ports as seen from Rust: a JavaScript storage object, the built-in memory storage,
//! the clock and the mailer. Every call into the host is caught, and every answer goes through
//! `Promise.resolve`, so hosts may answer synchronously or with a Promise.

use std::rc::Rc;

use chrono::{DateTime, Utc};
use js_sys::{Array, Function, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use super::error::{describe, OrThrow};
use super::events::EventSink;
use super::input::{self, instant, type_name, ArrayRead};
use super::registry::Registry;
use crate::domain::Error;
use crate::engine::executor::block_on;
use crate::engine::memory::MemoryStorage as MemoryStore;
use crate::engine::ports::{
    Answer, AppendOutcome, Claim, Clock, Combined, Guard, MailError, MailMessage, Mailer, Query,
    Queued, Storage, StorageError, StoredRecord, WriteOutcome, QUEUED_MAX, TAIL_LEN_MAX,
};

#[wasm_bindgen(typescript_custom_section)]
const HOST_TS: &str = r#"
/** A value, or a Promise of it: every host callback may answer either way. */
export type MaybePromise<T> = T | PromiseLike<T>;

/** Any JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** One stored record. `data` is JSON text; a storage gives back the same JSON value (a database may keep it as `jsonb`, which can change its spacing and key order). */
export interface StoredRecord {
  id: string;
  /** 1 for a new record, +1 on every write. */
  version: number;
  data: string;
  /** Indexed fields and their values. */
  indexes: Record<string, string>;
}

/** Records of one collection in ascending `id` order: all of them, or those whose index `index` holds `value`. */
export interface StorageQuery {
  index?: string;
  value?: string;
  /** Only ids greater than this. */
  after?: string;
  limit: number;
}

/** How a conditional write ended. Nothing is written unless it is `"written"`. */
export type WriteOutcome = "written" | "stale" | { duplicate: string };

/**
 * How an append ended. Nothing is written unless it is `"written"`. A stale append may hand
 * back the stream's entries from `expectedLength` on (at most 500) as `{ stale: entries }`, so
 * the engine catches up without a read of its own; plain `"stale"` is fine too.
 */
export type AppendOutcome = "written" | "stale" | { stale: string[] } | "changed" | { claimed: string };

/** A record an append depends on: it goes ahead only while record `id` of `collection` is at `version`. */
export interface AppendGuard {
  collection: string;
  id: string;
  version: number;
}

/** An idempotency key claimed with an append: unique in its stream, at the position (0-based) of the entry that holds it. */
export interface StreamClaim {
  key: string;
  position: number;
}

/**
 * The storage contract. The engine persists only through these six calls; each may answer
 * synchronously or with a Promise. A throw or rejection becomes `STORAGE_FAILED`.
 *
 * - `get`: the record with this id, or null.
 * - `find`: records by collection (and optionally one index value), ascending id, after a cursor.
 * - `put`: compare-and-set. Write only if the stored version equals `expectedVersion` (0: the
 *   record must not exist), and only if no other record of the collection holds the same value of
 *   an index named in `unique`; otherwise answer `"stale"` or `{ duplicate: indexName }` and write
 *   nothing. `record.version` is `expectedVersion + 1`.
 * - `append`: add all `entries` to the end of a stream, with the idempotency keys of `claims`,
 *   or nothing, checking in this order: the stream holds exactly `expectedLength` entries (else
 *   `"stale"` or `{ stale: tail }`); the `guard` record, when given, is at its version (else
 *   `"changed"`); none of the keys is claimed in this stream yet and none is repeated in
 *   `claims` (else `{ claimed: key }`, naming one). `held` is true when the caller holds the
 *   stream's `lock`: the storage may then end the hold with a written append. `answers`, from a
 *   holder that leads a `combine`, are written in the same commit, and only when written.
 * - `read`: up to `limit` entries of a stream from position `from`.
 * - `findClaim`: the position a key was claimed at in a stream, or null.
 */
export interface AllyStorage {
  get(collection: string, id: string): MaybePromise<StoredRecord | null | undefined>;
  find(collection: string, query: StorageQuery): MaybePromise<StoredRecord[]>;
  put(collection: string, record: StoredRecord, expectedVersion: number, unique: string[]): MaybePromise<WriteOutcome>;
  append(stream: string, expectedLength: number, entries: string[], claims: StreamClaim[], guard?: AppendGuard | null, held?: boolean, answers?: QueuedAnswer[]): MaybePromise<AppendOutcome>;
  read(stream: string, from: number, limit: number): MaybePromise<string[]>;
  findClaim(stream: string, key: string): MaybePromise<number | null | undefined>;
  /**
   * Optional, with `unlock`: a lock on a stream across processes. Resolves once this caller
   * holds it, to the stream's entries from `from` on (at most 500) as they stand once the
   * previous holder's append is visible; or to null when no lock can be had (nothing is held).
   * The engine takes it only while other processes keep appending to the same wallet, so that
   * they wait their turn instead of retrying.
   */
  lock?(stream: string, from: number): MaybePromise<string[] | null>;
  /** Releases the lock `lock` gave. */
  unlock?(stream: string): MaybePromise<unknown>;
  /**
   * Optional, with `lock`: queues `request` (the engine's text) for whoever holds the stream's
   * lock, then waits for the lock. Resolves to `{ answered }`, the answer a holder wrote for the
   * request (nothing is held then); to `{ tail, queued }` when this caller holds the lock and
   * the request was not settled: the entries from `from` on (at most 500) and the requests other
   * callers queued that no holder has taken (at most 64, each `{ id, request }`), now taken by
   * this caller, who answers them with its next `append` (its seventh argument,
   * `[{ id, answer }]`, written in the same commit as the entries, and only when written; an append that is not written keeps the hold and writes no answer); or
   * to null when no lock can be had (the request is out of the queue, nothing is held). A
   * taken request whose holder ended without a written append goes to the next lead.
   */
  combine?(stream: string, from: number, request: string): MaybePromise<CombineOutcome | null>;
}

/** How `combine` ended: answered by a lock holder, or this caller leads. */
export type CombineOutcome =
  | { answered: string }
  | { tail: string[]; queued: { id: number; request: string }[] };

/** A lock holder's answer to a queued request, written with its append. */
export interface QueuedAnswer {
  id: number;
  answer: string;
}

/** A message for the host's mailer. */
export interface MailMessage {
  to: string;
  subject: string;
  text: string;
  html: string;
  /** What the mail is about, e.g. `"lowCredit"`. */
  kind: string;
  /** Stable per logical message: drop a second delivery with the same key. */
  idempotencyKey: string;
}

/** The mail port. A failed send never undoes the operation that caused it. */
export interface AllyMailer {
  send(message: MailMessage): MaybePromise<unknown>;
}

/** The clock port: a function, or an object with `now()`, answering a Date, epoch milliseconds or an ISO-8601 string. */
export type AllyClock = (() => Date | number | string) | { now(): Date | number | string };

/** Options of `new Ally()`; every one optional. */
export interface AllyOptions {
  config?: AllyConfig;
  /** Default: a fresh `memoryStorage()`. */
  storage?: AllyStorage | MemoryStorage;
  mail?: AllyMailer;
  clock?: AllyClock;
  /**
   * Called with each event of the engine's work, shaped like an OpenTelemetry span: every call
   * to a host's storage (timed), replays, retries and outbox deliveries. Synchronous; a throw is
   * dropped.
   */
  onEvent?: (event: AllyEvent) => void;
}
"#;

thread_local! {
    static MEMORY_STORES: Registry<MemoryStore> = Registry::new();
}

const STORAGE_HANDLE: &str = "__allyStorageHandle";

/// The in-memory storage, the default. It implements the `AllyStorage` contract itself, and an
/// `Ally` given one uses it directly, without crossing into JavaScript.
#[wasm_bindgen]
pub struct MemoryStorage {
    handle: u32,
    store: Rc<MemoryStore>,
}

impl Drop for MemoryStorage {
    fn drop(&mut self) {
        MEMORY_STORES.with(|r| r.remove(self.handle));
    }
}

/// A new, empty in-memory storage.
#[wasm_bindgen(js_name = memoryStorage)]
#[must_use]
pub fn memory_storage() -> MemoryStorage {
    let store = Rc::new(MemoryStore::new());
    let handle = MEMORY_STORES.with(|r| r.insert(&store));
    MemoryStorage { handle, store }
}

/// The answer of a memory storage operation, which completes without suspending (an
/// `AllyError` if one ever did, never a bare thrown string).
fn ready<T>(future: impl std::future::Future<Output = T>) -> Result<T, JsValue> {
    block_on(future, 1).ok_or_else(|| {
        super::error::to_js(&Error::StorageFailed {
            operation: "memory",
            reason: "the in-memory storage suspended, which it never should".to_owned(),
        })
    })
}

/// Reads a string argument of a `MemoryStorage` method.
fn text_arg(value: &JsValue, field: &str) -> Result<String, Error> {
    super::input::string(value, field)
}

/// Reads an array-of-strings argument of a `MemoryStorage` method.
fn strings_arg(value: &JsValue, field: &str) -> Result<Vec<String>, Error> {
    arg_items(value, field, "an array of strings")?
        .iter()
        .enumerate()
        .map(|(i, item)| text_arg(item, &format!("{field}[{i}]")))
        .collect()
}

/// Reads the claims argument of `MemoryStorage.append`: `{ key, position }` objects. Omitted
/// (`undefined`) is no claims.
fn claims_arg(value: &JsValue) -> Result<Vec<(String, u64)>, Error> {
    if value.is_undefined() {
        return Ok(Vec::new());
    }
    arg_items(value, "claims", "an array of { key, position }")?
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("claims[{i}]");
            let mut claim = super::input::record(item, &path)?;
            let key = claim.string("key")?;
            let position = claim.count("position")?;
            claim.finish(&["key", "position"])?;
            Ok((key, position))
        })
        .collect()
}

/// Reads the guard argument of `MemoryStorage.append`: `{ collection, id, version }`, or none.
fn guard_arg(value: &JsValue) -> Result<Option<(String, String, u64)>, Error> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    let mut guard = super::input::record(value, "guard")?;
    let collection = guard.string("collection")?;
    let id = guard.string("id")?;
    let version = guard.count("version")?;
    guard.finish(&["collection", "id", "version"])?;
    Ok(Some((collection, id, version)))
}

/// A page size for `find` and `read`: 1 to 10 000.
fn limit_arg(limit: u64, field: &str) -> Result<u32, Error> {
    const LIMIT_MAX: u64 = 10_000;
    if limit == 0 || limit > LIMIT_MAX {
        return Err(Error::invalid(
            field,
            format!("a limit is 1 to {LIMIT_MAX}, got {limit}"),
        ));
    }
    Ok(limit as u32)
}

#[wasm_bindgen]
impl MemoryStorage {
    #[wasm_bindgen(js_name = __allyStorageHandle, skip_typescript)]
    #[must_use]
    pub fn storage_handle(&self) -> u32 {
        self.handle
    }

    /// The record with this id, or `null` (the storage contract's `get`).
    #[wasm_bindgen(unchecked_return_type = "StoredRecord | null")]
    pub fn get(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] collection: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue,
    ) -> Result<JsValue, JsValue> {
        let collection = text_arg(&collection, "collection").or_throw()?;
        let id = text_arg(&id, "id").or_throw()?;
        let found = ready(self.store.get(&collection, &id))?.map_err(storage_error_js)?;
        Ok(found.map_or(JsValue::NULL, |r| record_to_js(&r)))
    }

    /// Records in id order, optionally by one index value (the storage contract's `find`).
    #[wasm_bindgen(unchecked_return_type = "StoredRecord[]")]
    pub fn find(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] collection: JsValue,
        #[wasm_bindgen(unchecked_param_type = "StorageQuery")] query: JsValue,
    ) -> Result<JsValue, JsValue> {
        let collection = text_arg(&collection, "collection").or_throw()?;
        let (index, value, after, limit) = (|| {
            let mut q = super::input::record(&query, "query")?;
            let index = q.opt_string("index")?;
            let value = q.opt_string("value")?;
            let after = q.opt_string("after")?;
            let limit = limit_arg(q.count("limit")?, "query.limit")?;
            q.finish(&["index", "value", "after", "limit"])?;
            if index.is_some() != value.is_some() {
                return Err(Error::invalid("query", "index and value go together"));
            }
            Ok((index, value, after, limit))
        })()
        .or_throw()?;
        let query = Query {
            index: index.as_deref().zip(value.as_deref()),
            after: after.as_deref(),
            limit,
        };
        let found = ready(self.store.find(&collection, query))?.map_err(storage_error_js)?;
        Ok(found.iter().map(record_to_js).collect::<Array>().into())
    }

    /// Compare-and-set write (the storage contract's `put`).
    #[wasm_bindgen(unchecked_return_type = "WriteOutcome")]
    pub fn put(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] collection: JsValue,
        #[wasm_bindgen(unchecked_param_type = "StoredRecord")] record: JsValue,
        #[wasm_bindgen(js_name = expectedVersion, unchecked_param_type = "number")]
        expected_version: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string[]")] unique: JsValue,
    ) -> Result<JsValue, JsValue> {
        let collection = text_arg(&collection, "collection").or_throw()?;
        let record = record_from_js(&record)
            .ok()
            .flatten()
            .ok_or_else(|| {
                Error::invalid(
                    "record",
                    "expected a StoredRecord { id, version, data, indexes }",
                )
            })
            .or_throw()?;
        let expected_version = super::input::credits(&expected_version, "expectedVersion")
            .or_throw()?
            .get();
        let unique = strings_arg(&unique, "unique").or_throw()?;
        let unique: Vec<&str> = unique.iter().map(String::as_str).collect();
        let outcome = ready(
            self.store
                .put(&collection, &record, expected_version, &unique),
        )?
        .map_err(storage_error_js)?;
        Ok(outcome_to_js(&outcome))
    }

    /// All-or-none append guarded by the expected length and the guard record, with its
    /// idempotency claims (the storage contract's `append`).
    #[wasm_bindgen(unchecked_return_type = "AppendOutcome")]
    pub fn append(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] stream: JsValue,
        #[wasm_bindgen(js_name = expectedLength, unchecked_param_type = "number")]
        expected_length: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string[]")] entries: JsValue,
        #[wasm_bindgen(unchecked_param_type = "StreamClaim[]")] claims: JsValue,
        #[wasm_bindgen(unchecked_param_type = "AppendGuard | null | undefined")] guard: JsValue,
    ) -> Result<JsValue, JsValue> {
        let stream = text_arg(&stream, "stream").or_throw()?;
        let expected_length = super::input::credits(&expected_length, "expectedLength")
            .or_throw()?
            .get();
        let entries = strings_arg(&entries, "entries").or_throw()?;
        let claims = claims_arg(&claims).or_throw()?;
        let claims: Vec<Claim<'_>> = claims
            .iter()
            .map(|(key, position)| Claim {
                key,
                position: *position,
            })
            .collect();
        let guard = guard_arg(&guard).or_throw()?;
        let guard = guard.as_ref().map(|(collection, id, version)| Guard {
            collection,
            id,
            version: *version,
        });
        let outcome =
            ready(
                self.store
                    .append(&stream, expected_length, &entries, &claims, guard, false),
            )?
            .map_err(storage_error_js)?;
        Ok(append_outcome_to_js(&outcome))
    }

    /// The position a key was claimed at in a stream, or `null` (the storage contract's
    /// `findClaim`).
    #[wasm_bindgen(js_name = findClaim, unchecked_return_type = "number | null")]
    pub fn find_claim(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] stream: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue,
    ) -> Result<JsValue, JsValue> {
        let stream = text_arg(&stream, "stream").or_throw()?;
        let key = text_arg(&key, "key").or_throw()?;
        let found = ready(self.store.find_claim(&stream, &key))?.map_err(storage_error_js)?;
        Ok(found.map_or(JsValue::NULL, |p| JsValue::from_f64(p as f64)))
    }

    /// Up to `limit` entries of a stream from position `from` (the storage contract's `read`).
    #[wasm_bindgen(unchecked_return_type = "string[]")]
    pub fn read(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] stream: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] from: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number")] limit: JsValue,
    ) -> Result<JsValue, JsValue> {
        let stream = text_arg(&stream, "stream").or_throw()?;
        let from = super::input::credits(&from, "from").or_throw()?.get();
        let limit = super::input::credits(&limit, "limit")
            .and_then(|l| limit_arg(l.get(), "limit"))
            .or_throw()?;
        let entries = ready(self.store.read(&stream, from, limit))?.map_err(storage_error_js)?;
        Ok(entries
            .iter()
            .map(|s| JsValue::from_str(s))
            .collect::<Array>()
            .into())
    }
}

fn storage_error_js(e: StorageError) -> JsValue {
    super::error::to_js(&Error::StorageFailed {
        operation: "memory",
        reason: e.reason,
    })
}

fn record_to_js(record: &StoredRecord) -> JsValue {
    let object = Object::new();
    let indexes = Object::new();
    for (name, value) in &record.indexes {
        let _ = Reflect::set(&indexes, &name.into(), &value.into());
    }
    let _ = Reflect::set(&object, &"id".into(), &record.id.as_str().into());
    let _ = Reflect::set(&object, &"version".into(), &(record.version as f64).into());
    let _ = Reflect::set(&object, &"data".into(), &record.data.as_str().into());
    let _ = Reflect::set(&object, &"indexes".into(), &indexes);
    object.into()
}

fn outcome_to_js(outcome: &WriteOutcome) -> JsValue {
    match outcome {
        WriteOutcome::Written => "written".into(),
        WriteOutcome::Stale => "stale".into(),
        WriteOutcome::Duplicate { index } => tagged("duplicate", &index.into()),
    }
}

fn append_outcome_to_js(outcome: &AppendOutcome) -> JsValue {
    match outcome {
        AppendOutcome::Written => "written".into(),
        AppendOutcome::Stale { tail: None } => "stale".into(),
        AppendOutcome::Stale { tail: Some(tail) } => {
            let entries: Array = tail.iter().map(|e| JsValue::from_str(e)).collect();
            tagged("stale", &entries)
        }
        AppendOutcome::Changed => "changed".into(),
        AppendOutcome::Claimed { key } => tagged("claimed", &key.into()),
    }
}

/// `{ [tag]: value }`.
fn tagged(tag: &str, value: &JsValue) -> JsValue {
    let object = Object::new();
    let _ = Reflect::set(&object, &tag.into(), value);
    object.into()
}

/// The elements of an array a host answered, at most `limit` of them, read through catching
/// bindings: a throw (a Proxy trap, a getter) is a storage error, never carried through the
/// module.
fn host_items(
    answer: &JsValue,
    limit: usize,
    not_array: impl FnOnce() -> StorageError,
    too_long: impl FnOnce(u64) -> StorageError,
) -> Result<Vec<JsValue>, StorageError> {
    input::array_items(answer, limit).map_err(|e| match e {
        ArrayRead::NotArray => not_array(),
        ArrayRead::TooLong(length) => too_long(length),
        ArrayRead::Threw(thrown) => StorageError {
            reason: format!("reading its answer threw: {}", describe(&thrown)),
        },
    })
}

/// The most items an array argument of a `MemoryStorage` method holds (entries, claims,
/// unique names): a page's worth and more, far below what would exhaust memory.
const ARG_ITEMS_MAX: usize = 100_000;

/// The elements of an array argument of a `MemoryStorage` method, read through catching
/// bindings.
fn arg_items(value: &JsValue, field: &str, expected: &str) -> Result<Vec<JsValue>, Error> {
    input::array_items(value, ARG_ITEMS_MAX).map_err(|e| match e {
        ArrayRead::TooLong(length) => Error::invalid(
            field,
            format!("at most {ARG_ITEMS_MAX} items, got {length}"),
        ),
        ArrayRead::Threw(thrown) => {
            Error::invalid(field, format!("reading it threw: {}", describe(&thrown)))
        }
        _ => Error::invalid(
            field,
            format!("expected {expected}, got {}", type_name(value)),
        ),
    })
}

fn out_of_contract(what: &str, got: &JsValue) -> StorageError {
    StorageError {
        reason: format!("answered out of contract: {what}, got {}", type_name(got)),
    }
}

/// Reads a record a host answered; `null` / `undefined` are "no record".
fn record_from_js(value: &JsValue) -> Result<Option<StoredRecord>, StorageError> {
    if value.is_null() || value.is_undefined() {
        return Ok(None);
    }
    if !value.is_object() {
        return Err(out_of_contract(
            "a record should be an object or null",
            value,
        ));
    }
    let field = |name: &str| input::host_property(value, name).unwrap_or(JsValue::UNDEFINED);
    let id = field("id");
    let id = id
        .as_string()
        .ok_or_else(|| out_of_contract("record.id should be a string", &id))?;
    let version = field("version");
    let version = version
        .as_f64()
        .filter(|v| v.fract() == 0.0 && *v >= 1.0 && *v <= 9_007_199_254_740_991.0)
        .ok_or_else(|| out_of_contract("record.version should be a whole number >= 1", &version))?
        as u64;
    let data = field("data");
    let data = data
        .as_string()
        .ok_or_else(|| out_of_contract("record.data should be a string", &data))?;
    let indexes_value = field("indexes");
    let mut indexes = Vec::new();
    if !indexes_value.is_undefined() && !indexes_value.is_null() {
        // Any object, whatever its prototype (`Object.create(null)`) or realm: not `instanceof`.
        let Some(object) = indexes_value
            .is_object()
            .then(|| indexes_value.unchecked_ref::<Object>())
        else {
            return Err(out_of_contract(
                "record.indexes should be an object",
                &indexes_value,
            ));
        };
        let entries = input::own_entries(object)
            .map_err(|_| out_of_contract("record.indexes could not be read", &indexes_value))?;
        for entry in entries.iter() {
            let pair = Array::from(&entry);
            match (pair.get(0).as_string(), pair.get(1).as_string()) {
                (Some(name), Some(value)) => indexes.push((name, value)),
                _ => {
                    return Err(out_of_contract(
                        "record.indexes values should be strings",
                        &pair.get(1),
                    ))
                }
            }
        }
    }
    Ok(Some(StoredRecord {
        id,
        version,
        data,
        indexes,
    }))
}

/// Reads the answer of `put`: `"written"`, `"stale"` or `{ duplicate: index }`.
fn outcome_from_js(value: &JsValue) -> Result<WriteOutcome, StorageError> {
    match value.as_string().as_deref() {
        Some("written") => return Ok(WriteOutcome::Written),
        Some("stale") => return Ok(WriteOutcome::Stale),
        _ => {}
    }
    match tag_of(value, "duplicate").and_then(|v| v.as_string()) {
        Some(index) => Ok(WriteOutcome::Duplicate { index }),
        None => Err(out_of_contract(
            "expected \"written\", \"stale\" or { duplicate: index }",
            value,
        )),
    }
}

/// Reads the answer of `append`: `"written"`, `"stale"`, `{ stale: entries }`, `"changed"` or
/// `{ claimed: key }`.
fn append_outcome_from_js(value: &JsValue) -> Result<AppendOutcome, StorageError> {
    match value.as_string().as_deref() {
        Some("written") => return Ok(AppendOutcome::Written),
        Some("stale") => return Ok(AppendOutcome::Stale { tail: None }),
        Some("changed") => return Ok(AppendOutcome::Changed),
        _ => {}
    }
    if let Some(key) = tag_of(value, "claimed").and_then(|v| v.as_string()) {
        return Ok(AppendOutcome::Claimed { key });
    }
    if let Some(tail) = tag_of(value, "stale") {
        let items = host_items(
            &tail,
            TAIL_LEN_MAX,
            || out_of_contract("{ stale } should hold an array of entries", &tail),
            |length| StorageError {
                reason: format!("a stale append answered {length} entries, beyond {TAIL_LEN_MAX}"),
            },
        )?;
        let entries = items
            .iter()
            .map(|item| {
                item.as_string()
                    .ok_or_else(|| out_of_contract("{ stale } entries should be strings", item))
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(AppendOutcome::Stale {
            tail: Some(entries),
        });
    }
    Err(out_of_contract(
        "expected \"written\", \"stale\", { stale: entries }, \"changed\" or { claimed: key }",
        value,
    ))
}

/// The own property `tag` of an answer object: one inherited from a polluted prototype is not
/// an answer.
fn tag_of(value: &JsValue, tag: &str) -> Option<JsValue> {
    if !value.is_object() {
        return None;
    }
    input::own_property(value, tag)
        .ok()
        .filter(|v| !v.is_undefined())
}

/// Two optional methods that go together: both functions, or neither present.
fn optional_pair(
    object: &JsValue,
    a: &str,
    b: &str,
) -> Result<Option<(Function, Function)>, Error> {
    let present = |name: &str| input::host_property(object, name).is_ok_and(|f| !f.is_undefined());
    match (present(a), present(b)) {
        (false, false) => Ok(None),
        (true, true) => Ok(Some((
            method(object, "storage", a)?,
            method(object, "storage", b)?,
        ))),
        (has_a, _) => Err(Error::InvalidConfig {
            key: format!("storage.{}", if has_a { b } else { a }),
            reason: format!("storage.{a} and storage.{b} go together"),
        }),
    }
}

/// Reads entries a host answered: an array of strings, at most `limit`.
fn entries_from_js(
    answer: &JsValue,
    what: &str,
    limit: usize,
) -> Result<Vec<String>, StorageError> {
    host_items(
        answer,
        limit,
        || out_of_contract(&format!("{what} should answer an array of strings"), answer),
        |length| StorageError {
            reason: format!("{what} answered {length} entries for a limit of {limit}"),
        },
    )?
    .iter()
    .map(|item| {
        item.as_string()
            .ok_or_else(|| out_of_contract(&format!("{what} entries should be strings"), item))
    })
    .collect()
}

/// Whether the claims handed to an append name `key`.
fn args_claim(claims: &JsValue, key: &str) -> bool {
    input::array_items(claims, ARG_ITEMS_MAX).is_ok_and(|claims| {
        claims.iter().any(|claim| {
            Reflect::get(claim, &"key".into())
                .ok()
                .and_then(|k| k.as_string())
                .is_some_and(|k| k == key)
        })
    })
}

/// A JavaScript object implementing `AllyStorage`.
pub struct JsStorage {
    this: JsValue,
    get: Function,
    find: Function,
    put: Function,
    append: Function,
    read: Function,
    find_claim: Function,
    /// `lock` and `unlock`, when the host offers a stream lock.
    locks: Option<(Function, Function)>,
    /// `combine`, when the host combines requests (it needs the lock).
    combine: Option<Function>,
    /// The `onEvent` listener each call is reported to, timed.
    events: Option<Rc<EventSink>>,
    /// What the last failed call threw or rejected with, for the event that reports it.
    thrown: std::cell::RefCell<Option<JsValue>>,
}

/// Looks up `name` on a host object (its own or its class's, never `Object.prototype`'s) and
/// checks it is a function (`INVALID_CONFIG` otherwise).
pub fn method(object: &JsValue, owner: &str, name: &str) -> Result<Function, Error> {
    input::host_property(object, name)
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
        .ok_or_else(|| Error::InvalidConfig {
            key: format!("{owner}.{name}"),
            reason: "expected a function".to_owned(),
        })
}

/// A method a host object may leave out: `None` when it is undefined.
fn optional_method(object: &JsValue, name: &str) -> Result<Option<Function>, Error> {
    let present = input::host_property(object, name).is_ok_and(|f| !f.is_undefined());
    present.then(|| method(object, "storage", name)).transpose()
}

/// Reads what `combine` answered: `{ answered }`, `{ tail, queued }`, or null.
fn combined_from_js(answer: &JsValue) -> Result<Option<Combined>, StorageError> {
    if answer.is_null() || answer.is_undefined() {
        return Ok(None);
    }
    let shape = "combine should answer { answered }, { tail, queued } or null";
    if !answer.is_object() {
        return Err(out_of_contract(shape, answer));
    }
    let field = |name: &str| input::host_property(answer, name).unwrap_or_default();
    let answered = field("answered");
    if !answered.is_undefined() {
        return answered
            .as_string()
            .map(|a| Some(Combined::Answered(a)))
            .ok_or_else(|| out_of_contract("combine's answered should be a string", &answered));
    }
    let tail = entries_from_js(&field("tail"), "combine", TAIL_LEN_MAX)?;
    let list = field("queued");
    let list = host_items(
        &list,
        QUEUED_MAX,
        || out_of_contract(shape, answer),
        |length| StorageError {
            reason: format!("combine handed over {length} queued requests, beyond {QUEUED_MAX}"),
        },
    )?;
    let queued = list
        .iter()
        .map(|item| {
            let get = |name: &str| input::host_property(item, name).ok();
            let id = get("id")
                .and_then(|id| id.as_f64())
                .filter(|id| id.fract() == 0.0 && *id >= 0.0 && *id <= 9_007_199_254_740_991.0);
            let request = get("request").and_then(|r| r.as_string());
            match (id, request) {
                (Some(id), Some(request)) => Ok(Queued {
                    id: id as u64,
                    request,
                }),
                _ => Err(out_of_contract(
                    "combine's queued requests should be { id: a whole number, request: a string }",
                    item,
                )),
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(Combined::Lead { tail, queued }))
}

impl JsStorage {
    pub fn new(object: JsValue, events: Option<Rc<EventSink>>) -> Result<Self, Error> {
        Ok(Self {
            events,
            thrown: std::cell::RefCell::new(None),
            get: method(&object, "storage", "get")?,
            find: method(&object, "storage", "find")?,
            put: method(&object, "storage", "put")?,
            append: method(&object, "storage", "append")?,
            read: method(&object, "storage", "read")?,
            find_claim: method(&object, "storage", "findClaim")?,
            locks: optional_pair(&object, "lock", "unlock")?,
            combine: optional_method(&object, "combine")?,
            this: object,
        })
    }

    /// `append`, with the answers of a lead when there are any.
    #[allow(clippy::too_many_arguments)] // the contract's own arguments, as the host takes them
    async fn append_with(
        &self,
        stream: &str,
        expected_length: u64,
        entries: &[String],
        claims: &[Claim<'_>],
        guard: Option<Guard<'_>>,
        held: bool,
        answers: Option<&[Answer<'_>]>,
    ) -> Result<AppendOutcome, StorageError> {
        let entries: Array = entries.iter().map(|s| JsValue::from_str(s)).collect();
        let claims: Array = claims
            .iter()
            .map(|claim| {
                let object = Object::new();
                let _ = Reflect::set(&object, &"key".into(), &claim.key.into());
                let _ = Reflect::set(&object, &"position".into(), &(claim.position as f64).into());
                JsValue::from(object)
            })
            .collect();
        let guard = guard.map_or(JsValue::NULL, |g| {
            let object = Object::new();
            let _ = Reflect::set(&object, &"collection".into(), &g.collection.into());
            let _ = Reflect::set(&object, &"id".into(), &g.id.into());
            let _ = Reflect::set(&object, &"version".into(), &(g.version as f64).into());
            object.into()
        });
        let mut args = vec![
            stream.into(),
            (expected_length as f64).into(),
            entries.into(),
            claims.into(),
            guard,
            held.into(),
        ];
        if let Some(answers) = answers {
            let list: Array = answers
                .iter()
                .map(|a| {
                    let object = Object::new();
                    let _ = Reflect::set(&object, &"id".into(), &(a.id as f64).into());
                    let _ = Reflect::set(&object, &"answer".into(), &a.answer.into());
                    JsValue::from(object)
                })
                .collect();
            args.push(list.into());
        }
        let answer = self.call(&self.append, &args).await?;
        let outcome = append_outcome_from_js(&answer)?;
        if let AppendOutcome::Claimed { key } = &outcome {
            if !args_claim(&args[3], key) {
                return Err(out_of_contract(
                    "append answered a key it was not given",
                    &answer,
                ));
            }
        }
        Ok(outcome)
    }

    /// Runs one storage call, timed and reported when a host listens for events.
    async fn observed<T>(
        &self,
        operation: &str,
        on: (&str, &str),
        work: impl std::future::Future<Output = Result<T, StorageError>>,
        outcome: impl FnOnce(&T) -> &'static str,
    ) -> Result<T, StorageError> {
        match &self.events {
            Some(sink) => {
                let thrown = || self.thrown.borrow_mut().take();
                sink.storage_call(operation, on, work, outcome, thrown)
                    .await
            }
            None => work.await,
        }
    }

    /// Calls a host method and awaits its answer, sync or async; a throw or rejection is an error.
    async fn call(&self, function: &Function, args: &[JsValue]) -> Result<JsValue, StorageError> {
        let args: Array = args.iter().collect();
        // What was thrown is kept for the event that reports the failure (taken as soon as the
        // call's future ends, before anything else runs), when anyone listens.
        let keep = |thrown: JsValue| {
            let reason = describe(&thrown);
            if self.events.is_some() {
                *self.thrown.borrow_mut() = Some(thrown);
            }
            StorageError { reason }
        };
        let answer = function.apply(&self.this, &args).map_err(keep)?;
        if !input::is_thenable(&answer) {
            return Ok(answer);
        }
        JsFuture::from(input::settle(&answer)).await.map_err(keep)
    }
}

impl Storage for JsStorage {
    async fn get(&self, collection: &str, id: &str) -> Result<Option<StoredRecord>, StorageError> {
        let answer = self
            .call(&self.get, &[collection.into(), id.into()])
            .await?;
        record_from_js(&answer)
    }

    async fn find(
        &self,
        collection: &str,
        query: Query<'_>,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        let q = Object::new();
        if let Some((index, value)) = query.index {
            let _ = Reflect::set(&q, &"index".into(), &index.into());
            let _ = Reflect::set(&q, &"value".into(), &value.into());
        }
        if let Some(after) = query.after {
            let _ = Reflect::set(&q, &"after".into(), &after.into());
        }
        let _ = Reflect::set(&q, &"limit".into(), &query.limit.into());
        let answer = self
            .call(&self.find, &[collection.into(), q.into()])
            .await?;
        host_items(
            &answer,
            query.limit as usize,
            || out_of_contract("find should answer an array", &answer),
            |length| StorageError {
                reason: format!(
                    "find answered {length} records for a limit of {}",
                    query.limit
                ),
            },
        )?
        .iter()
        .map(|item| {
            record_from_js(item)?
                .ok_or_else(|| out_of_contract("find answered a null record", item))
        })
        .collect()
    }

    async fn put(
        &self,
        collection: &str,
        record: &StoredRecord,
        expected_version: u64,
        unique: &[&str],
    ) -> Result<WriteOutcome, StorageError> {
        let unique: Array = unique.iter().map(|s| JsValue::from_str(s)).collect();
        let args = [
            collection.into(),
            record_to_js(record),
            (expected_version as f64).into(),
            unique.into(),
        ];
        let answer = self.call(&self.put, &args).await?;
        outcome_from_js(&answer)
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
        self.append_with(stream, expected_length, entries, claims, guard, held, None)
            .await
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
        self.append_with(
            stream,
            expected_length,
            entries,
            claims,
            guard,
            true,
            Some(answers),
        )
        .await
    }

    async fn combine(
        &self,
        stream: &str,
        from: u64,
        request: &str,
    ) -> Result<Option<Combined>, StorageError> {
        let (Some(combine), Some(_)) = (&self.combine, &self.locks) else {
            return Ok(None);
        };
        let answer = self
            .call(
                combine,
                &[stream.into(), (from as f64).into(), request.into()],
            )
            .await?;
        combined_from_js(&answer)
    }

    async fn find_claim(&self, stream: &str, key: &str) -> Result<Option<u64>, StorageError> {
        let answer = self
            .call(&self.find_claim, &[stream.into(), key.into()])
            .await?;
        if answer.is_null() || answer.is_undefined() {
            return Ok(None);
        }
        answer
            .as_f64()
            .filter(|p| p.fract() == 0.0 && *p >= 0.0 && *p <= 9_007_199_254_740_991.0)
            .map(|p| Some(p as u64))
            .ok_or_else(|| {
                out_of_contract(
                    "findClaim should answer a position (a whole number) or null",
                    &answer,
                )
            })
    }

    async fn lock(&self, stream: &str, from: u64) -> Result<Option<Vec<String>>, StorageError> {
        let Some((lock, _)) = &self.locks else {
            return Ok(None);
        };
        let answer = self
            .call(lock, &[stream.into(), (from as f64).into()])
            .await?;
        if answer.is_null() || answer.is_undefined() {
            return Ok(None);
        }
        entries_from_js(&answer, "lock", TAIL_LEN_MAX).map(Some)
    }

    async fn unlock(&self, stream: &str) -> Result<(), StorageError> {
        if let Some((_, unlock)) = &self.locks {
            self.call(unlock, &[stream.into()]).await?;
        }
        Ok(())
    }

    async fn read(&self, stream: &str, from: u64, limit: u32) -> Result<Vec<String>, StorageError> {
        let args = [stream.into(), (from as f64).into(), limit.into()];
        let answer = self.call(&self.read, &args).await?;
        entries_from_js(&answer, "read", limit as usize)
    }
}

const COLLECTION: &str = "ally.storage.collection";
const STREAM: &str = "ally.storage.stream";

fn write_outcome(outcome: &WriteOutcome) -> &'static str {
    match outcome {
        WriteOutcome::Written => "written",
        WriteOutcome::Stale => "stale",
        WriteOutcome::Duplicate { .. } => "duplicate",
    }
}

fn append_outcome(outcome: &AppendOutcome) -> &'static str {
    match outcome {
        AppendOutcome::Written => "written",
        AppendOutcome::Stale { .. } => "stale",
        AppendOutcome::Changed => "changed",
        AppendOutcome::Claimed { .. } => "claimed",
    }
}

/// The storage an `Ally` uses: the built-in memory store directly, or a host object.
pub enum HostStorage {
    Memory(Rc<MemoryStore>),
    Js(JsStorage),
}

impl HostStorage {
    /// `undefined` gives a fresh memory store; a `MemoryStorage` handle is used natively. A
    /// host's storage reports each call to `events`, when given.
    pub fn from_js(value: &JsValue, events: Option<Rc<EventSink>>) -> Result<Self, Error> {
        if value.is_undefined() {
            return Ok(Self::Memory(Rc::new(MemoryStore::new())));
        }
        if let Some(store) = MEMORY_STORES.with(|r| r.lookup(value, STORAGE_HANDLE)) {
            return Ok(Self::Memory(store));
        }
        if !value.is_object() {
            return Err(Error::InvalidConfig {
                key: "storage".to_owned(),
                reason: format!("expected a storage object, got {}", type_name(value)),
            });
        }
        JsStorage::new(value.clone(), events).map(Self::Js)
    }
}

impl Storage for HostStorage {
    async fn get(&self, collection: &str, id: &str) -> Result<Option<StoredRecord>, StorageError> {
        match self {
            Self::Memory(m) => m.get(collection, id).await,
            Self::Js(j) => {
                let on = (COLLECTION, collection);
                j.observed("get", on, j.get(collection, id), |found| {
                    if found.is_some() {
                        "found"
                    } else {
                        "missing"
                    }
                })
                .await
            }
        }
    }

    async fn find(
        &self,
        collection: &str,
        query: Query<'_>,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        match self {
            Self::Memory(m) => m.find(collection, query).await,
            Self::Js(j) => {
                let on = (COLLECTION, collection);
                j.observed("find", on, j.find(collection, query), |_| "ok")
                    .await
            }
        }
    }

    async fn put(
        &self,
        collection: &str,
        record: &StoredRecord,
        expected_version: u64,
        unique: &[&str],
    ) -> Result<WriteOutcome, StorageError> {
        match self {
            Self::Memory(m) => m.put(collection, record, expected_version, unique).await,
            Self::Js(j) => {
                let on = (COLLECTION, collection);
                let work = j.put(collection, record, expected_version, unique);
                j.observed("put", on, work, write_outcome).await
            }
        }
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
        match self {
            Self::Memory(m) => {
                m.append(stream, expected_length, entries, claims, guard, held)
                    .await
            }
            Self::Js(j) => {
                let work = j.append(stream, expected_length, entries, claims, guard, held);
                j.observed("append", (STREAM, stream), work, append_outcome)
                    .await
            }
        }
    }

    async fn read(&self, stream: &str, from: u64, limit: u32) -> Result<Vec<String>, StorageError> {
        match self {
            Self::Memory(m) => m.read(stream, from, limit).await,
            Self::Js(j) => {
                let work = j.read(stream, from, limit);
                j.observed("read", (STREAM, stream), work, |_| "ok").await
            }
        }
    }

    async fn find_claim(&self, stream: &str, key: &str) -> Result<Option<u64>, StorageError> {
        match self {
            Self::Memory(m) => m.find_claim(stream, key).await,
            Self::Js(j) => {
                let work = j.find_claim(stream, key);
                j.observed("findClaim", (STREAM, stream), work, |found| {
                    if found.is_some() {
                        "found"
                    } else {
                        "missing"
                    }
                })
                .await
            }
        }
    }

    async fn lock(&self, stream: &str, from: u64) -> Result<Option<Vec<String>>, StorageError> {
        match self {
            Self::Memory(m) => m.lock(stream, from).await,
            Self::Js(j) => {
                let work = j.lock(stream, from);
                j.observed("lock", (STREAM, stream), work, |held| {
                    if held.is_some() {
                        "held"
                    } else {
                        "none"
                    }
                })
                .await
            }
        }
    }

    async fn unlock(&self, stream: &str) -> Result<(), StorageError> {
        match self {
            Self::Memory(m) => m.unlock(stream).await,
            Self::Js(j) => {
                let work = j.unlock(stream);
                j.observed("unlock", (STREAM, stream), work, |()| "ok")
                    .await
            }
        }
    }

    async fn combine(
        &self,
        stream: &str,
        from: u64,
        request: &str,
    ) -> Result<Option<Combined>, StorageError> {
        match self {
            Self::Memory(m) => m.combine(stream, from, request).await,
            Self::Js(j) => {
                let work = j.combine(stream, from, request);
                j.observed(
                    "combine",
                    (STREAM, stream),
                    work,
                    |combined| match combined {
                        Some(Combined::Answered(_)) => "answered",
                        Some(Combined::Lead { .. }) => "lead",
                        None => "none",
                    },
                )
                .await
            }
        }
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
        match self {
            Self::Memory(m) => {
                m.append_answering(stream, expected_length, entries, claims, guard, answers)
                    .await
            }
            Self::Js(j) => {
                let work =
                    j.append_answering(stream, expected_length, entries, claims, guard, answers);
                j.observed("append", (STREAM, stream), work, append_outcome)
                    .await
            }
        }
    }
}

/// The host's mailer, or none.
pub struct HostMailer {
    this: JsValue,
    send: Option<Function>,
}

impl HostMailer {
    pub fn from_js(value: &JsValue) -> Result<Self, Error> {
        if value.is_undefined() {
            return Ok(Self {
                this: JsValue::UNDEFINED,
                send: None,
            });
        }
        let send = method(value, "mail", "send")?;
        Ok(Self {
            this: value.clone(),
            send: Some(send),
        })
    }
}

impl Mailer for HostMailer {
    async fn send(&self, message: &MailMessage) -> Result<(), MailError> {
        let Some(send) = &self.send else {
            return Ok(());
        };
        let m = Object::new();
        for (key, value) in [
            ("to", &message.to),
            ("subject", &message.subject),
            ("text", &message.text),
            ("html", &message.html),
            ("kind", &message.kind),
            ("idempotencyKey", &message.idempotency_key),
        ] {
            let _ = Reflect::set(&m, &key.into(), &value.into());
        }
        let answer = send.call1(&self.this, &m).map_err(|thrown| MailError {
            reason: describe(&thrown),
        })?;
        if !input::is_thenable(&answer) {
            return Ok(());
        }
        JsFuture::from(input::settle(&answer))
            .await
            .map(|_| ())
            .map_err(|rejected| MailError {
                reason: describe(&rejected),
            })
    }
}

/// The host's clock, or the runtime's.
pub enum HostClock {
    Runtime,
    Js { this: JsValue, now: Function },
}

impl HostClock {
    pub fn from_js(value: &JsValue) -> Result<Self, Error> {
        if value.is_undefined() {
            return Ok(Self::Runtime);
        }
        if let Some(function) = value.dyn_ref::<Function>() {
            return Ok(Self::Js {
                this: JsValue::UNDEFINED,
                now: function.clone(),
            });
        }
        let now = method(value, "clock", "now")?;
        Ok(Self::Js {
            this: value.clone(),
            now,
        })
    }
}

impl Clock for HostClock {
    fn now(&self) -> Result<DateTime<Utc>, String> {
        match self {
            Self::Runtime => instant(&JsValue::from_f64(js_sys::Date::now())),
            Self::Js { this, now } => {
                let answer = now
                    .call0(this)
                    .map_err(|thrown| format!("clock threw: {}", describe(&thrown)))?;
                instant(&answer)
            }
        }
    }
}

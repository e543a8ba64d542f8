//! Credit wallets on `Ally`: top-ups, provisions, history, events, the daily check, reseller-scoped
//! handles, and `validateLedger`.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Object, Promise, Reflect, Uint8Array};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use super::ally::{promise, rejected, reseller_id, reseller_output, Ally, Engine, JsResult};
use super::error::{describe, to_js, OrThrow};
use super::input::instant;
use super::input::{self, credits, type_name};
use super::types::optional::{
    self, AddCreditsOptionsArg, InstantArg, MemoArg, ProvisionOptionsArg, TransactionsOptionsArg,
    ValidateLedgerOptionsArg,
};
use crate::domain::ledger::{self, Entry, Movement};
use crate::domain::money::Credits;
use crate::domain::record::Fields;
use crate::domain::{Error, Result};
use crate::engine::{
    Applied, LowCreditEvent, TransactionsPage, HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX,
};

#[wasm_bindgen(typescript_custom_section)]
const WALLET_TS: &str = r#"
/** One ledger entry, as stored and as returned. */
export interface LedgerEntry {
  id: string;
  /** The wallet: the reseller's id. */
  walletId: string;
  /** 1 for the wallet's first entry, +1 for each next one. */
  sequence: number;
  kind: "credit" | "debit";
  /** Whole credits, at least 1. */
  amount: number;
  balanceAfter: number;
  memo: string | null;
  /** The caller's key; a bulk provision's key sits on its first item. */
  idempotencyKey: string | null;
  /** Item `index` of a `size`-item bulk provision, or `null`. */
  batch: { index: number; size: number } | null;
  /** ISO-8601 in UTC. */
  at: string;
  /** SHA-256 over the entry's fields and the previous entry's hash, hexadecimal. */
  hash: string;
}

export interface AddCreditsOptions {
  /** The same key with the same request answers the first result again; with another request it is `IDEMPOTENCY_MISMATCH`. */
  idempotencyKey?: string;
  memo?: string;
}

export interface ProvisionOptions {
  idempotencyKey?: string;
}

export interface ProvisionItem {
  cost: number | bigint;
  memo?: string;
}

export interface TransactionsOptions {
  /** At most this many entries, 1 to 500; default 10. */
  limit?: number;
  /** Only entries with a smaller sequence number (to page back). */
  before?: number;
  /** Only entries at or after this time (a Date, epoch milliseconds, ISO-8601). */
  since?: Date | string | number;
  /** Only entries before this time. Entry times never go backwards in a wallet, so a page by
   * time is found by bisection: about log2 of the history's length single-entry reads. */
  until?: Date | string | number;
}

/** Raised once when a provision takes the balance from at or above the threshold to below it. */
export interface LowCreditEvent {
  reseller: Reseller;
  balance: number;
  threshold: number;
  /** The sequence number of the debit that crossed. */
  sequence: number;
  at: string;
  /** The built-in mail: `sent`, `pending` (kept in the outbox and retried by `checkCredits`) or `undeliverable` (no email). */
  notification: "sent" | "pending" | "undeliverable";
}

/** A listener that threw or rejected; the operation that raised the event stands. */
export interface ListenerErrorEvent {
  event: "lowCredit" | "healthAlert";
  error: unknown;
}

export interface AllyEvents {
  lowCredit: LowCreditEvent;
  healthAlert: HealthAlertEvent;
  listenerError: ListenerErrorEvent;
}

export interface Ally {
  /** Subscribes to an event; listeners may be async. Returns a function that unsubscribes. */
  on<K extends keyof AllyEvents>(event: K, listener: (event: AllyEvents[K]) => void | Promise<void>): () => void;
  /** Removes a listener added with `on`. */
  off<K extends keyof AllyEvents>(event: K, listener: (event: AllyEvents[K]) => void | Promise<void>): void;
}

export interface CreditCheckReport {
  /** Wallets looked at. */
  checked: number;
  /** Crossings notified for the first time. */
  notified: number;
  /** Earlier notifications delivered on this retry. */
  retried: number;
  /** Notifications that failed again; they stay in the outbox. */
  failed: number;
}

export interface OutboxRecord {
  id: string;
  kind: "lowCredit" | "healthAlert";
  resellerId: string;
  message: MailMessage | null;
  status: "pending" | "sent" | "undeliverable";
  attempts: number;
  lastError: string | null;
  createdAt: string;
  sentAt: string | null;
}

export type LedgerViolationCode =
  | "BALANCE_MISMATCH" | "NEGATIVE_BALANCE" | "SEQUENCE_GAP" | "DUPLICATE_ID"
  | "DUPLICATE_IDEMPOTENCY_KEY" | "HASH_MISMATCH" | "INVALID_AMOUNT" | "WALLET_MISMATCH"
  | "INCOMPLETE_BATCH" | "BALANCE_OUT_OF_RANGE";

export interface LedgerViolation {
  /** 0-based position of the entry in the history. */
  index: number;
  code: LedgerViolationCode;
  message: string;
}

export interface LedgerValidation {
  ok: boolean;
  /** The balance replayed from the amounts (opening balance included). */
  balance: number;
  /** Entries replayed. */
  entries: number;
  /** The first 1 000 violations, in history order. */
  violations: LedgerViolation[];
  /** All violations, also past the listed ones. */
  violationCount: number;
}

/** What `ally.auditWallet` found: the whole stored history replayed, and the checkpoint checked against it. */
export interface WalletAudit extends LedgerValidation {
  /** The stored checkpoint, or null when the wallet has none yet. */
  checkpoint: {
    /** How many entries it stands for. */
    length: number;
    /** Whether it equals the replay of those entries (false too when the stream is shorter). */
    matches: boolean;
  } | null;
}

export interface ValidateLedgerOptions {
  /** Every entry must belong to this wallet. */
  walletId?: string;
  /** The balance before the first entry (default 0). */
  openingBalance?: number | bigint;
}
"#;

/// Event listeners of one `Ally`: (event name, function), in subscription order.
#[derive(Default)]
pub struct Listeners {
    list: RefCell<Vec<(String, Function)>>,
}

const EVENTS: [&str; 3] = ["lowCredit", "healthAlert", "listenerError"];

impl Listeners {
    fn of(&self, event: &str) -> Vec<Function> {
        self.list
            .borrow()
            .iter()
            .filter(|(name, _)| name == event)
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// Calls every listener of `event` and waits for the async ones. A listener that throws or
    /// rejects is reported to the `listenerError` listeners (or the console when there are none).
    pub(super) async fn emit(&self, event: &str, payload: &JsValue) {
        for listener in self.of(event) {
            let outcome = match listener.call1(&JsValue::UNDEFINED, payload) {
                Ok(answer) if !input::is_thenable(&answer) => Ok(()),
                Ok(answer) => JsFuture::from(input::settle(&answer)).await.map(|_| ()),
                Err(thrown) => Err(thrown),
            };
            if let Err(error) = outcome {
                self.report(event, &error);
            }
        }
    }

    fn report(&self, event: &str, error: &JsValue) {
        let handlers = self.of("listenerError");
        if handlers.is_empty() || event == "listenerError" {
            console_error(&format!(
                "ally-engine: a \"{event}\" listener failed: {}",
                describe(error)
            ));
            return;
        }
        let payload = Object::new();
        let _ = Reflect::set(&payload, &"event".into(), &event.into());
        let _ = Reflect::set(&payload, &"error".into(), error);
        for handler in handlers {
            if let Err(thrown) = handler.call1(&JsValue::UNDEFINED, &payload) {
                console_error(&format!(
                    "ally-engine: a \"listenerError\" listener failed: {}",
                    describe(&thrown)
                ));
            }
        }
    }
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str);
}

fn event_name(value: &JsValue) -> Result<String> {
    let name = input::string(value, "event")?;
    if EVENTS.contains(&name.as_str()) {
        Ok(name)
    } else {
        Err(Error::invalid(
            "event",
            format!("expected \"lowCredit\", \"healthAlert\" or \"listenerError\", got \"{name}\""),
        ))
    }
}

fn listener(value: &JsValue) -> Result<Function> {
    value.dyn_ref::<Function>().cloned().ok_or_else(|| {
        Error::invalid(
            "listener",
            format!("expected a function, got {}", type_name(value)),
        )
    })
}

/// An entry an operation answers with, as JSON text: the entry and `replayed`, true when an
/// earlier request with the same idempotency key is answered again (nothing new was written).
fn written_text(entry: &Entry, replayed: bool) -> String {
    let mut text = entry.to_json_text();
    // The entry's JSON is one object: `replayed` goes in before its closing brace.
    if text.ends_with('}') {
        text.pop();
        text.push_str(if replayed {
            ",\"replayed\":true}"
        } else {
            ",\"replayed\":false}"
        });
    }
    text
}

fn entries_js(entries: &[Entry]) -> JsValue {
    let mut list = String::with_capacity(entries.len() * 320 + 2);
    list.push('[');
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            list.push(',');
        }
        list.push_str(&entry.to_json_text());
    }
    list.push(']');
    js_sys::JSON::parse(&list).unwrap_or(JsValue::NULL)
}

/// The reseller of an event, without the record's version (not meaningful inside an event).
pub(super) fn event_reseller(
    reseller: &crate::domain::reseller::Reseller,
) -> std::result::Result<JsValue, JsValue> {
    let plain = super::codec::to_plain(&reseller_output(&crate::engine::Versioned {
        value: reseller.clone(),
        version: 0,
    }))?;
    Reflect::delete_property(plain.unchecked_ref::<Object>(), &"version".into())?;
    Ok(plain)
}

fn low_credit_js(event: &LowCreditEvent) -> std::result::Result<JsValue, JsValue> {
    let reseller = event_reseller(&event.reseller)?;
    let c = &event.crossing;
    let rest = json!({
        "balance": c.balance.get(),
        "threshold": c.threshold.get(),
        "sequence": c.sequence,
        "at": Entry::at_ms_text(c.at_ms),
        "notification": event.notification,
    });
    let payload = super::codec::to_plain(&rest)?;
    let _ = Reflect::set(&payload, &"reseller".into(), &reseller);
    Ok(payload)
}

/// An optional memo or key: `undefined`/`null` or a printable string.
fn opt_text(value: &JsValue, field: &str) -> Result<Option<String>> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    let text = input::string(value, field)?;
    ledger::text(&text, field).map(Some)
}

fn opt_text_field(fields: &mut Fields, key: &str) -> Result<Option<String>> {
    let path = fields.path(key);
    fields
        .opt_string(key)?
        .map(|text| ledger::text(&text, &path))
        .transpose()
}

fn movement_items(value: &JsValue) -> Result<Vec<Movement>> {
    let length = match input::array_length(value, ledger::BULK_LEN_MAX) {
        Ok(length) => length as usize,
        Err(input::ArrayRead::NotArray) => {
            return Err(Error::invalid(
                "items",
                format!(
                    "expected an array of {{ cost, memo }}, got {}",
                    type_name(value)
                ),
            ))
        }
        Err(input::ArrayRead::TooLong(length)) => {
            return Err(Error::invalid(
                "items",
                format!("expected 1 to {} items, got {length}", ledger::BULK_LEN_MAX),
            ))
        }
        Err(input::ArrayRead::Threw(thrown)) => {
            return Err(Error::invalid(
                "items",
                format!("reading it threw: {}", super::error::describe(&thrown)),
            ))
        }
    };
    if length == 0 {
        return Err(Error::invalid(
            "items",
            format!("expected 1 to {} items, got {length}", ledger::BULK_LEN_MAX),
        ));
    }
    let json = input::to_json(value, "items")?;
    let Value::Array(items) = json else {
        return Err(Error::invalid("items", "expected an array"));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let mut fields = Fields::new(item, &format!("items[{i}]"))?;
            let amount = fields.credits("cost")?;
            if amount.get() == 0 {
                return Err(Error::invalid(
                    fields.path("cost"),
                    "must be at least 1 credit",
                ));
            }
            let memo = opt_text_field(&mut fields, "memo")?;
            fields.finish(&["cost", "memo"])?;
            Ok(Movement { amount, memo })
        })
        .collect()
}

fn positive_credits(value: &JsValue, field: &str) -> Result<crate::domain::money::Credits> {
    let amount = credits(value, field)?;
    if amount.get() == 0 {
        return Err(Error::invalid(field, "must be at least 1 credit"));
    }
    Ok(amount)
}

/// What an `Ally` or a reseller handle does for the wallet methods.
#[derive(Clone)]
struct Wallets {
    engine: Rc<Engine>,
    listeners: Rc<Listeners>,
    /// The reseller a scoped handle is limited to.
    scope: Option<String>,
}

impl Wallets {
    /// The reseller the caller named (a record or an id), or through a reseller's handle
    /// nothing (`undefined` or `null`): the handle's own. [`Self::target`] resolves it.
    fn named(&self, value: &JsValue) -> Result<Option<String>> {
        if self.scope.is_some() && (value.is_undefined() || value.is_null()) {
            return Ok(None);
        }
        reseller_id(value, "reseller").map(Some)
    }

    /// The reseller a call is for, as the handle's scope allows it (see
    /// `Engine::scoped_reseller`): no storage read when it is the handle's own id.
    async fn target(&self, named: Option<String>) -> Result<String> {
        self.engine
            .scoped_reseller(self.scope.as_deref(), named.as_deref())
            .await
    }

    /// The entry (or entries), after the `lowCredit` listeners ran.
    async fn finish(listeners: &Listeners, outcome: Applied, many: bool) -> JsResult {
        if let Some(event) = &outcome.low_credit {
            let payload = low_credit_js(event)?;
            listeners.emit("lowCredit", &payload).await;
        }
        let written = |entry: &Entry| written_text(entry, outcome.replayed);
        let text = if many {
            let mut list = String::with_capacity(outcome.entries.len() * 340 + 2);
            list.push('[');
            for (i, entry) in outcome.entries.iter().enumerate() {
                if i > 0 {
                    list.push(',');
                }
                list.push_str(&written(entry));
            }
            list.push(']');
            list
        } else {
            match outcome.entries.first() {
                Some(entry) => written(entry),
                None => return Ok(JsValue::NULL),
            }
        };
        js_sys::JSON::parse(&text)
    }

    fn provision(
        &self,
        reseller: &JsValue,
        cost: &JsValue,
        memo: &JsValue,
        options: &JsValue,
    ) -> Promise {
        let parsed = (|| {
            let id = self.named(reseller)?;
            let cost = positive_credits(cost, "cost")?;
            let memo = opt_text(memo, "memo")?;
            let mut options = input::record(options, "options")?;
            let key = opt_text_field(&mut options, "idempotencyKey")?;
            options.finish(&["idempotencyKey"])?;
            Ok((id, cost, memo, key))
        })();
        let (id, cost, memo, key) = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(&e),
        };
        let this = self.clone();
        promise(async move {
            let id = this.target(id).await.or_throw()?;
            let outcome = this
                .engine
                .provision(&id, cost, memo, key)
                .await
                .or_throw()?;
            Self::finish(&this.listeners, outcome, false).await
        })
    }

    fn provision_bulk(&self, reseller: &JsValue, items: &JsValue, options: &JsValue) -> Promise {
        let parsed = (|| {
            let id = self.named(reseller)?;
            let items = movement_items(items)?;
            let mut options = input::record(options, "options")?;
            let key = opt_text_field(&mut options, "idempotencyKey")?;
            options.finish(&["idempotencyKey"])?;
            Ok((id, items, key))
        })();
        let (id, items, key) = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(&e),
        };
        let this = self.clone();
        promise(async move {
            let id = this.target(id).await.or_throw()?;
            let outcome = this
                .engine
                .provision_bulk(&id, items, key)
                .await
                .or_throw()?;
            Self::finish(&this.listeners, outcome, true).await
        })
    }

    fn balance(&self, reseller: &JsValue) -> Promise {
        let id = match self.named(reseller) {
            Ok(id) => id,
            Err(e) => return rejected(&e),
        };
        let this = self.clone();
        promise(async move {
            let id = this.target(id).await.or_throw()?;
            let balance = this.engine.balance(&id).await.or_throw()?;
            Ok(JsValue::from_f64(balance.as_f64()))
        })
    }

    fn transactions(&self, reseller: &JsValue, options: &JsValue) -> Promise {
        let parsed = (|| {
            let id = self.named(reseller)?;
            // Times may be given as Dates.
            let mut options = match options.is_undefined() || options.is_null() {
                true => input::record(options, "options")?,
                false => Fields::new(input::to_json_dated(options, "options")?, "options")?,
            };
            let limit = match options.opt_count("limit")? {
                None => HISTORY_LIMIT_DEFAULT,
                Some(n) if (1..=u64::from(HISTORY_LIMIT_MAX)).contains(&n) => n as u32,
                Some(n) => {
                    return Err(Error::invalid(
                        "options.limit",
                        format!("expected 1 to {HISTORY_LIMIT_MAX}, got {n}"),
                    ))
                }
            };
            let before = options.opt_count("before")?;
            let mut time = |key: &str| {
                let path = options.path(key);
                options
                    .take(key)
                    .map(|value| input::time_value_ms(&value, &path))
                    .transpose()
            };
            let since_ms = time("since")?;
            let until_ms = time("until")?;
            options.finish(&["limit", "before", "since", "until"])?;
            let page = TransactionsPage {
                limit,
                before,
                since_ms,
                until_ms,
            };
            Ok((id, page))
        })();
        let (id, page) = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(&e),
        };
        let this = self.clone();
        promise(async move {
            let id = this.target(id).await.or_throw()?;
            let entries = this.engine.transactions(&id, page).await.or_throw()?;
            Ok(entries_js(&entries))
        })
    }

    fn find_by_idempotency_key(&self, reseller: &JsValue, key: &JsValue) -> Promise {
        let parsed = (|| {
            let named = self.named(reseller)?;
            let key = ledger::text(&input::string(key, "key")?, "key")?;
            Ok((named, key))
        })();
        let (named, key) = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(&e),
        };
        let this = self.clone();
        promise(async move {
            let id = this.target(named).await.or_throw()?;
            let entries = this
                .engine
                .find_by_idempotency_key(&id, &key)
                .await
                .or_throw()?;
            Ok(entries_js(&entries))
        })
    }

    fn ledger(&self, reseller: &JsValue) -> Promise {
        let id = match self.named(reseller) {
            Ok(id) => id,
            Err(e) => return rejected(&e),
        };
        let this = self.clone();
        promise(async move {
            let id = this.target(id).await.or_throw()?;
            let entries = this.engine.ledger(&id).await.or_throw()?;
            Ok(entries_js(&entries))
        })
    }

    fn export_ledger(&self, reseller: &JsValue) -> Promise {
        let id = match self.named(reseller) {
            Ok(id) => id,
            Err(e) => return rejected(&e),
        };
        let this = self.clone();
        promise(async move {
            let id = this.target(id).await.or_throw()?;
            let entries = this.engine.ledger(&id).await.or_throw()?;
            Ok(Uint8Array::from(ledger::encode_ledger(&entries).as_slice()).into())
        })
    }
}

impl Ally {
    fn wallets(&self) -> Wallets {
        Wallets {
            engine: Rc::clone(&self.engine),
            listeners: Rc::clone(&self.listeners),
            scope: None,
        }
    }
}

#[wasm_bindgen]
impl Ally {
    /// Credits a reseller's wallet (the admin action). Resolves to the credit entry.
    #[wasm_bindgen(js_name = addCredits, unchecked_return_type = "Promise<WrittenEntry>")]
    pub fn add_credits(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number | bigint")] amount: JsValue,
        options: Option<AddCreditsOptionsArg>,
    ) -> Promise {
        let options: JsValue = optional::value(options);
        let parsed = (|| {
            let id = reseller_id(&reseller, "reseller")?;
            let amount = positive_credits(&amount, "amount")?;
            let mut options = input::record(&options, "options")?;
            let key = opt_text_field(&mut options, "idempotencyKey")?;
            let memo = opt_text_field(&mut options, "memo")?;
            options.finish(&["idempotencyKey", "memo"])?;
            Ok((id, amount, memo, key))
        })();
        let (id, amount, memo, key) = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(&e),
        };
        let wallets = self.wallets();
        promise(async move {
            let outcome = wallets
                .engine
                .add_credits(&id, amount, memo, key)
                .await
                .or_throw()?;
            Wallets::finish(&wallets.listeners, outcome, false).await
        })
    }

    /// Debits `cost` credits for one service. Rejects `INSUFFICIENT_CREDITS` (nothing written),
    /// `PROVISIONING_HELD` (metadata `hold_provisioning: true`) or `NOT_FOUND`.
    #[wasm_bindgen(unchecked_return_type = "Promise<WrittenEntry>")]
    pub fn provision(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        #[wasm_bindgen(unchecked_param_type = "number | bigint")] cost: JsValue,
        memo: Option<MemoArg>,
        options: Option<ProvisionOptionsArg>,
    ) -> Promise {
        let memo: JsValue = optional::value(memo);
        let options: JsValue = optional::value(options);
        self.wallets().provision(&reseller, &cost, &memo, &options)
    }

    /// Debits several items as a whole: all entries are written, or none. A refusal is
    /// `INSUFFICIENT_CREDITS` with `details.items`, one code per item.
    #[wasm_bindgen(js_name = provisionBulk, unchecked_return_type = "Promise<WrittenEntry[]>")]
    pub fn provision_bulk(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        #[wasm_bindgen(unchecked_param_type = "ProvisionItem[]")] items: JsValue,
        options: Option<ProvisionOptionsArg>,
    ) -> Promise {
        let options: JsValue = optional::value(options);
        self.wallets().provision_bulk(&reseller, &items, &options)
    }

    /// The reseller's balance in whole credits.
    #[wasm_bindgen(unchecked_return_type = "Promise<number>")]
    pub fn balance(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
    ) -> Promise {
        self.wallets().balance(&reseller)
    }

    /// Ledger entries, newest first (default the last 10).
    #[wasm_bindgen(unchecked_return_type = "Promise<LedgerEntry[]>")]
    pub fn transactions(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        options: Option<TransactionsOptionsArg>,
    ) -> Promise {
        let options: JsValue = optional::value(options);
        self.wallets().transactions(&reseller, &options)
    }

    /// The reseller's whole ledger, oldest first: what `validateLedger` audits.
    #[wasm_bindgen(unchecked_return_type = "Promise<LedgerEntry[]>")]
    pub fn ledger(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
    ) -> Promise {
        self.wallets().ledger(&reseller)
    }

    /// The entries an idempotency key wrote in the reseller's wallet (one, or a bulk's), oldest
    /// first; empty when the key was never used there. One lookup, whatever the history.
    #[wasm_bindgen(js_name = findByIdempotencyKey, unchecked_return_type = "Promise<LedgerEntry[]>")]
    pub fn find_by_idempotency_key(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue,
    ) -> Promise {
        self.wallets().find_by_idempotency_key(&reseller, &key)
    }

    /// The reseller's whole ledger as one binary buffer (the layout the hash chain covers, about
    /// a third of the JSON's size): what `validateLedger` checks fastest, and what an auditor
    /// or an edge function can be handed instead of an array.
    #[wasm_bindgen(js_name = exportLedger, unchecked_return_type = "Promise<Uint8Array>")]
    pub fn export_ledger(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
    ) -> Promise {
        self.wallets().export_ledger(&reseller)
    }

    /// The wallet's current balance, length and chain head signed with the host's key
    /// (HMAC-SHA256): hand it to an edge function, which checks it with `verifyAttestation`
    /// instead of the history. The key is a string or bytes, 32 to 1 024 of them.
    #[wasm_bindgen(js_name = attestWallet, unchecked_return_type = "Promise<WalletAttestation>")]
    pub fn attest_wallet(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        #[wasm_bindgen(unchecked_param_type = "AttestationKeyInput")] key: JsValue,
    ) -> Promise {
        let args = reseller_id(&reseller, "reseller")
            .and_then(|id| super::attestation::key_arg(&key).map(|key| (id, key)));
        super::ally::call(&self.engine, args, |engine, (id, key)| async move {
            let attestation = engine.attest_wallet(&id, &key).await.or_throw()?;
            super::codec::to_plain(&attestation.to_json())
        })
    }

    /// The operator's end-to-end audit of a stored wallet: replays the whole stream (hash chain,
    /// balances, sequence, ids, keys, batches) and checks the stored checkpoint against it.
    /// The one wallet call whose cost grows with the history: run it from an admin job, not a
    /// request path. `ok` is true only when both the history and the checkpoint are sound.
    #[wasm_bindgen(js_name = auditWallet, unchecked_return_type = "Promise<WalletAudit>")]
    pub fn audit_wallet(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
    ) -> Promise {
        super::ally::call(
            &self.engine,
            reseller_id(&reseller, "reseller"),
            |engine, id| async move {
                let found = engine.audit_wallet(&id).await.or_throw()?;
                let mut out = audit_json(&found.audit);
                out["ok"] = found.ok().into();
                out["checkpoint"] = found.checkpoint_length.map_or(
                    Value::Null,
                    |length| json!({ "length": length, "matches": found.checkpoint_matches }),
                );
                super::codec::to_plain(&out)
            },
        )
    }

    /// Opens the reseller's wallet; needed only when `autoProvisionWallet` is off.
    #[wasm_bindgen(js_name = openWallet, unchecked_return_type = "Promise<void>")]
    pub fn open_wallet(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
    ) -> Promise {
        let id = match reseller_id(&reseller, "reseller") {
            Ok(id) => id,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(async move {
            engine.open_wallet(&id).await.or_throw()?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The daily job: notifies every reseller below the threshold not yet notified for its
    /// current crossing, and retries the outbox.
    #[wasm_bindgen(js_name = checkCredits, unchecked_return_type = "Promise<CreditCheckReport>")]
    pub fn check_credits(&self, now: Option<InstantArg>) -> Promise {
        let now = optional::value(now);
        let at = if now.is_undefined() {
            None
        } else {
            match instant(&now) {
                Ok(at) => Some(at),
                Err(reason) => return rejected(&Error::invalid("now", reason)),
            }
        };
        let engine = Rc::clone(&self.engine);
        promise(async move {
            let report = engine.check_credits(at).await.or_throw()?;
            let json = json!({
                "checked": report.checked,
                "notified": report.notified,
                "retried": report.retried,
                "failed": report.failed,
            });
            super::codec::to_plain(&json)
        })
    }

    /// The notifications queued so far, with their delivery status.
    #[wasm_bindgen(unchecked_return_type = "Promise<OutboxRecord[]>")]
    pub fn outbox(&self) -> Promise {
        let engine = Rc::clone(&self.engine);
        promise(async move {
            let records = engine.outbox().await.or_throw()?;
            super::codec::to_plain(&Value::Array(records))
        })
    }

    /// Subscribes to an event; returns a function that unsubscribes. (Typed in the custom
    /// section, generically over the event name.)
    #[wasm_bindgen(skip_typescript)]
    pub fn on(
        &self,
        event: JsValue,
        listener_fn: JsValue,
    ) -> std::result::Result<JsValue, JsValue> {
        let name = event_name(&event).or_throw()?;
        let function = listener(&listener_fn).or_throw()?;
        self.listeners
            .list
            .borrow_mut()
            .push((name.clone(), function.clone()));
        let listeners = Rc::clone(&self.listeners);
        let off = Closure::once_into_js(move || remove(&listeners, &name, &function));
        Ok(off)
    }

    /// Removes a listener added with `on`.
    #[wasm_bindgen(skip_typescript)]
    pub fn off(&self, event: JsValue, listener_fn: JsValue) -> std::result::Result<(), JsValue> {
        let name = event_name(&event).or_throw()?;
        let function = listener(&listener_fn).or_throw()?;
        remove(&self.listeners, &name, &function);
        Ok(())
    }

    /// A handle limited to one reseller: provisioning and reads of its own data only, no
    /// `addCredits`. Passing another reseller to it is `FORBIDDEN`.
    #[wasm_bindgen(js_name = asReseller)]
    pub fn as_reseller(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
    ) -> std::result::Result<ResellerScope, JsValue> {
        let id = reseller_id(&reseller, "reseller").or_throw()?;
        let mut wallets = self.wallets();
        wallets.scope = Some(id);
        Ok(ResellerScope { wallets })
    }
}

fn remove(listeners: &Listeners, name: &str, function: &Function) {
    let mut list = listeners.list.borrow_mut();
    if let Some(at) = list
        .iter()
        .position(|(n, f)| n == name && JsValue::from(f) == JsValue::from(function))
    {
        list.remove(at);
    }
}

/// One reseller's view of the engine (from `ally.asReseller(id)`): what a public reseller route
/// may do. Each method is for the handle's reseller: named by its id or refid, or left out.
/// Another reseller answers exactly as a missing one does (`NOT_FOUND`).
#[wasm_bindgen]
pub struct ResellerScope {
    wallets: Wallets,
}

/// A scoped call given more arguments than its short form takes.
fn too_many(form: &str) -> Error {
    Error::invalid("arguments", format!("{form} takes no further argument"))
}

#[wasm_bindgen(typescript_custom_section)]
const RESELLER_SCOPE_TS: &str = r#"
/** An entry an operation wrote, or wrote the first time a request with its idempotency key came. */
export interface WrittenEntry extends LedgerEntry {
  /** True when an earlier request with the same idempotency key is answered again: nothing new was written. */
  readonly replayed: boolean;
}

export interface ResellerScope {
  /** Debits `cost` credits from this reseller's wallet. */
  provision(cost: number | bigint, memo?: string | null, options?: ProvisionOptions | null): Promise<WrittenEntry>;
  provision(reseller: Reseller | string, cost: number | bigint, memo?: string | null, options?: ProvisionOptions | null): Promise<WrittenEntry>;
  /** Debits several items as a whole: all entries are written, or none. */
  provisionBulk(items: ProvisionItem[], options?: ProvisionOptions | null): Promise<WrittenEntry[]>;
  provisionBulk(reseller: Reseller | string, items: ProvisionItem[], options?: ProvisionOptions | null): Promise<WrittenEntry[]>;
  /** This reseller's balance in whole credits. */
  balance(reseller?: Reseller | string | null): Promise<number>;
  /** This reseller's entries, newest first. */
  transactions(options?: TransactionsOptions | null): Promise<LedgerEntry[]>;
  transactions(reseller: Reseller | string | null | undefined, options?: TransactionsOptions | null): Promise<LedgerEntry[]>;
  /** This reseller's whole ledger, oldest first. */
  ledger(reseller?: Reseller | string | null): Promise<LedgerEntry[]>;
  /** The entries an idempotency key wrote in this reseller's wallet; empty when it never did. */
  findByIdempotencyKey(key: string): Promise<LedgerEntry[]>;
  findByIdempotencyKey(reseller: Reseller | string, key: string): Promise<LedgerEntry[]>;
  /**
   * This reseller's whole ledger as one binary buffer (the layout the hash chain covers, about a
   * third of the JSON's size): what `validateLedger` checks fastest.
   */
  exportLedger(reseller?: Reseller | string | null): Promise<Uint8Array>;
}
"#;

impl ResellerScope {
    pub(super) fn engine(&self) -> Rc<super::ally::Engine> {
        Rc::clone(&self.wallets.engine)
    }
}

#[wasm_bindgen]
impl ResellerScope {
    /// This reseller's clients: its own only (another reseller's client answers as a missing
    /// one; another reseller named is `FORBIDDEN`).
    #[wasm_bindgen(getter)]
    pub fn clients(&self) -> super::clients::Clients {
        super::clients::Clients::new(Rc::clone(&self.wallets.engine), self.wallets.scope.clone())
    }

    /// The reseller this handle is limited to.
    #[wasm_bindgen(getter, js_name = resellerId)]
    pub fn reseller_id(&self) -> String {
        self.wallets.scope.clone().unwrap_or_default()
    }

    // The methods below name the reseller first, as `Ally`'s do, or leave it out: a handle's
    // calls are for its own reseller. Their overloads are declared in `RESELLER_SCOPE_TS`.

    #[wasm_bindgen(skip_typescript)]
    pub fn provision(&self, a: JsValue, b: JsValue, c: JsValue, d: JsValue) -> Promise {
        // `provision(cost, memo?, options?)`: the cost is a number or a bigint, never a
        // reseller.
        if a.as_f64().is_some() || a.is_bigint() {
            if !d.is_undefined() {
                return rejected(&too_many("provision(cost, memo?, options?)"));
            }
            return self.wallets.provision(&JsValue::UNDEFINED, &a, &b, &c);
        }
        self.wallets.provision(&a, &b, &c, &d)
    }

    #[wasm_bindgen(skip_typescript, js_name = provisionBulk)]
    pub fn provision_bulk(&self, a: JsValue, b: JsValue, c: JsValue) -> Promise {
        // `provisionBulk(items, options?)`: the items are an array, never a reseller.
        if input::is_array(&a) {
            if !c.is_undefined() {
                return rejected(&too_many("provisionBulk(items, options?)"));
            }
            return self.wallets.provision_bulk(&JsValue::UNDEFINED, &a, &b);
        }
        self.wallets.provision_bulk(&a, &b, &c)
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn balance(&self, reseller: JsValue) -> Promise {
        self.wallets.balance(&reseller)
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn transactions(&self, a: JsValue, b: JsValue) -> Promise {
        // `transactions(options?)`: options are an object without an `id` (a reseller record
        // has one).
        let reseller_named = a.is_string()
            || a.is_undefined()
            || a.is_null()
            || input::own_property(&a, "id").is_ok_and(|id| id.is_string());
        if !reseller_named {
            if !b.is_undefined() {
                return rejected(&too_many("transactions(options?)"));
            }
            return self.wallets.transactions(&JsValue::UNDEFINED, &a);
        }
        self.wallets.transactions(&a, &b)
    }

    #[wasm_bindgen(skip_typescript)]
    pub fn ledger(&self, reseller: JsValue) -> Promise {
        self.wallets.ledger(&reseller)
    }

    #[wasm_bindgen(skip_typescript, js_name = findByIdempotencyKey)]
    pub fn find_by_idempotency_key(&self, a: JsValue, b: JsValue) -> Promise {
        // `findByIdempotencyKey(key)`: one argument is the key.
        if b.is_undefined() {
            return self
                .wallets
                .find_by_idempotency_key(&JsValue::UNDEFINED, &a);
        }
        self.wallets.find_by_idempotency_key(&a, &b)
    }

    #[wasm_bindgen(skip_typescript, js_name = exportLedger)]
    pub fn export_ledger(&self, reseller: JsValue) -> Promise {
        self.wallets.export_ledger(&reseller)
    }

    /// The reseller's own record (`NOT_FOUND` when the handle's reseller does not exist).
    #[wasm_bindgen(unchecked_return_type = "Promise<Reseller>")]
    pub fn reseller(&self) -> Promise {
        let id = self.reseller_id();
        let engine = Rc::clone(&self.wallets.engine);
        promise(async move {
            let found = engine.require_reseller(&id).await.or_throw()?;
            super::codec::to_plain(&reseller_output(&found))
        })
    }
}

/// Replays a wallet's history and reports what breaks it: a balance that does not follow, a
/// negative balance, a sequence gap, a duplicate id or idempotency key, a broken hash chain, an
/// invalid amount, an entry of another wallet, a bulk provision cut short. Takes the entries, or
/// the binary buffer of `exportLedger` (much faster for long histories). Pure: no engine needed.
#[wasm_bindgen(js_name = validateLedger, unchecked_return_type = "LedgerValidation")]
pub fn validate_ledger(
    #[wasm_bindgen(unchecked_param_type = "readonly LedgerEntry[] | Uint8Array")] entries: JsValue,
    options: Option<ValidateLedgerOptionsArg>,
) -> std::result::Result<JsValue, JsValue> {
    let options: JsValue = optional::value(options);
    let mut opts = input::record(&options, "options").or_throw()?;
    let wallet_id = opts.opt_string("walletId").or_throw()?;
    let opening = opts
        .opt_credits("openingBalance")
        .or_throw()?
        .map_or(0, |c| c.get());
    opts.finish(&["walletId", "openingBalance"]).or_throw()?;
    // A Proxy is no typed array, and is read only through catching bindings.
    let bytes = input::typed::<Uint8Array>(&entries);
    let length = match input::array_length(&entries, ledger::AUDIT_ENTRIES_MAX as usize) {
        Ok(length) => Some(length),
        Err(input::ArrayRead::NotArray) => None,
        Err(input::ArrayRead::TooLong(length)) => {
            return Err(to_js(&Error::invalid(
                "entries",
                format!(
                "at most {} entries as an array, got {length}: pass the Uint8Array of exportLedger",
                ledger::AUDIT_ENTRIES_MAX,
            ),
            )))
        }
        Err(input::ArrayRead::Threw(thrown)) => {
            return Err(to_js(&Error::invalid(
                "entries",
                format!("reading it threw: {}", super::error::describe(&thrown)),
            )))
        }
    };
    let report = if let Some(bytes) = bytes {
        ledger::audit_bytes(&bytes.to_vec(), wallet_id, opening).or_throw()?
    } else if let Some(length) = length {
        // Replayed as read: nothing is reserved from the array's claimed length.
        let mut wallet = ledger::Wallet::new(wallet_id, opening, Credits::ZERO);
        for i in 0..length {
            let path = format!("entries[{i}]");
            let item = input::array_item(&entries, i).map_err(|thrown| {
                to_js(&Error::invalid(
                    &path,
                    format!("reading it threw: {}", super::error::describe(&thrown)),
                ))
            })?;
            let json = input::to_json(&item, &path).or_throw()?;
            let (entry, flaws) = Entry::from_json(json, &path).or_throw()?;
            wallet.apply(&entry, &flaws);
        }
        ledger::Audit::of(wallet)
    } else {
        return Err(to_js(&Error::invalid(
            "entries",
            format!(
                "expected an array of ledger entries or a Uint8Array from exportLedger, got {}",
                type_name(&entries)
            ),
        )));
    };
    super::codec::to_plain(&audit_json(&report))
}

/// An audit report as `LedgerValidation`. A replayed balance past the range of a JavaScript
/// number (only a forged history has one) is given as the nearest end of that range.
fn audit_json(report: &ledger::Audit) -> Value {
    let violations: Vec<Value> = report
        .violations
        .iter()
        .map(|v| json!({ "index": v.index, "code": v.code.as_str(), "message": v.message }))
        .collect();
    let max = i128::from(Credits::MAX.get());
    json!({
        "ok": report.ok,
        "balance": report.balance.clamp(-max, max) as i64,
        "entries": report.length,
        "violations": violations,
        "violationCount": report.violation_count,
    })
}

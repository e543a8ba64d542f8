//! The fuzzing harness: every parser at the edge that native code reaches, fed mutated inputs on
//! a stable toolchain. A panic is a finding: the harness prints the target, the seed and the
//! input, and exits with status 1 (keep the input as a regression test).
//!
//! ```text
//! cargo run --profile fuzz --example fuzz -- [executions, default 1 000 000] [seed]
//! ```
//!
//! The corpus is real: an engine over the in-memory storage makes resellers, clients, payments,
//! wallets, commission lines, payouts and an attestation, and the harness takes the records and
//! ledger entries it stored. Each execution picks a target and a corpus input and mutates it:
//! bit flips, cuts, repeats, splices of other inputs, tokens that break parsers (huge and
//! negative numbers, exponents, `-0`, NaN, `__proto__`, control and multi-byte characters), and
//! for JSON a structured change of one field (replaced, removed, duplicated, nested). Integer
//! overflow panics in this profile (`overflow-checks`), so unchecked arithmetic is found too.
//!
//! Targets: decimals (every scale), rates, money, credits-like integers in records, tier names,
//! pricing models, statuses, stored times; stored resellers, clients, payments, commission lines,
//! commission payments, payout batches, applications, wallet checkpoints and attestations; ledger
//! entries as stored JSON and the binary ledger (`audit_bytes`); attestation keys; and the
//! engine reading each kind of record back from a storage that holds the mutated text.

use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Instant;

use ally_engine::domain::application::Application;
use ally_engine::domain::catalog::PricingModel;
use ally_engine::domain::client::{Client, ClientDraft};
use ally_engine::domain::commission::{PaymentKind, PaymentStatus, Plan};
use ally_engine::domain::config::Config;
use ally_engine::domain::decimal;
use ally_engine::domain::ids::IdSource;
use ally_engine::domain::ledger::attestation::{Attestation, AttestationKey};
use ally_engine::domain::ledger::checkpoint::Checkpoint;
use ally_engine::domain::ledger::{self, Entry};
use ally_engine::domain::money::{Credits, Currency, Money, Rate};
use ally_engine::domain::payment::PaymentRecord;
use ally_engine::domain::payout::{CommissionLine, CommissionPayment, PayoutBatch};
use ally_engine::domain::reseller::{iso_time, Reseller, ResellerDraft, ResellerStatus, UserId};
use ally_engine::domain::rounding::Rounding;
use ally_engine::domain::tier::TierName;
use ally_engine::engine::executor::block_on;
use ally_engine::engine::memory::MemoryStorage;
use ally_engine::engine::ports::{FixedClock, NoMailer, Query, Storage, StoredRecord};
use ally_engine::engine::{Ally, LineFilter, PaymentInput};
use chrono::{TimeZone, Utc};
use serde_json::Value;

type Engine = Ally<Rc<MemoryStorage>, NoMailer, FixedClock>;

/// The corpus run must succeed: a failure there is a harness fault, not a finding.
trait Must<T> {
    fn must(self, what: &str) -> T;
}

impl<T> Must<T> for ally_engine::domain::Result<T> {
    fn must(self, what: &str) -> T {
        self.unwrap_or_else(|e| panic!("{what}: {e}"))
    }
}

fn run<F: std::future::Future>(future: F) -> F::Output {
    block_on(future, 1_000_000).unwrap_or_else(|| panic!("the memory storage suspended"))
}

/// Stored records by collection, and ledger entries, from an engine that did a bit of
/// everything.
struct Corpus {
    records: Vec<(String, StoredRecord)>,
    entries: Vec<String>,
    ledger: Vec<Entry>,
    attestation: String,
}

fn corpus() -> Corpus {
    let storage = Rc::new(MemoryStorage::new());
    let jan = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let feb = Utc
        .with_ymd_and_hms(2026, 2, 2, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let config = Config {
        commission_plan: Plan {
            hold_days: 0,
            ..Plan::reference()
        },
        ..Config::default()
    };
    let ally: Engine = Ally::new(
        config.clone(),
        Rc::clone(&storage),
        NoMailer,
        FixedClock(jan),
        1,
    );
    let mut resellers = Vec::new();
    for i in 0..3u64 {
        let r = run(ally.create_reseller(ResellerDraft {
            user_id: Some(UserId::Number(i + 1)),
            company_name: Some(format!("Reseller {i} «ü»")),
            commission_rate: Some(Rate::from_units(1000 + 250 * i as u16).unwrap_or(Rate::ZERO)),
            ..ResellerDraft::default()
        }))
        .must("reseller")
        .value
        .id;
        resellers.push(r);
    }
    run(ally.set_parent(&resellers[1], Some(&resellers[0]))).must("parent");
    let client = run(ally.create_client(ClientDraft {
        name: Some("Client".to_owned()),
        email: Some("client@example.com".to_owned()),
        reseller_id: Some(resellers[1].clone()),
        metadata: None,
    }))
    .must("client")
    .value
    .id;
    for (i, kind) in [
        PaymentKind::Payment,
        PaymentKind::Payment,
        PaymentKind::Refund,
    ]
    .into_iter()
    .enumerate()
    {
        run(ally.record_payment(PaymentInput {
            id: Some(format!("p{i}")),
            client_id: client.clone(),
            amount: 12_345,
            at: jan + chrono::Duration::days(i as i64 + 1),
            status: PaymentStatus::Completed,
            kind,
            reverses: (kind == PaymentKind::Refund).then(|| "p0".to_owned()),
            description: Some("monthly".to_owned()),
        }))
        .must("payment");
    }
    run(ally.add_credits(
        &resellers[1],
        Credits::new(10_000).unwrap_or(Credits::ZERO),
        Some("top-up".to_owned()),
        None,
    ))
    .must("top-up");
    for n in 0..70u64 {
        run(ally.provision(
            &resellers[1],
            Credits::new(n + 1).unwrap_or(Credits::ZERO),
            None,
            Some(format!("key-{n}")),
        ))
        .must("provision");
    }
    let later: Engine = Ally::new(config, Rc::clone(&storage), NoMailer, FixedClock(feb), 2);
    run(later.process_commissions(jan, jan + chrono::Duration::days(31), &mut |_| Ok(())))
        .must("process");
    run(later.pay_commission(&resellers[1], 100, Some("advance".to_owned()))).must("advance");
    let _ = run(later.create_payout_batch(Some("January".to_owned())));
    let key = AttestationKey::new(&[7u8; 32], "key").must("key");
    let attestation = run(later.attest_wallet(&resellers[1], &key))
        .must("attestation")
        .to_json()
        .to_string();
    let ledger = run(later.ledger(&resellers[1])).must("ledger");
    let _ = run(later.commission_lines(&LineFilter::default()));

    let mut records = Vec::new();
    for collection in [
        "resellers",
        "clients",
        "payments",
        "commissions",
        "commission_payments",
        "payout_batches",
        "applications",
        "wallets",
        "commission_state",
        "hierarchy",
    ] {
        let found = run(storage.find(
            collection,
            Query {
                index: None,
                after: None,
                limit: 500,
            },
        ))
        .unwrap_or_default();
        records.extend(found.into_iter().map(|r| (collection.to_owned(), r)));
    }
    let entries = ledger.iter().map(Entry::to_json_text).collect();
    Corpus {
        records,
        entries,
        ledger,
        attestation,
    }
}

/// Tokens that break parsers.
const TOKENS: &[&str] = &[
    "0",
    "-0",
    "-1",
    "1e5",
    "1E-5",
    "NaN",
    "Infinity",
    "-Infinity",
    "9007199254740993",
    "18446744073709551616",
    "-9223372036854775809",
    "99999999999999999999999999999999",
    "0.000000000000000000000000000001",
    "1.",
    ".5",
    "+1",
    "0x10",
    "1_000",
    " 1",
    "1 ",
    "00.1",
    "null",
    "true",
    "[]",
    "{}",
    "\"\"",
    "\"__proto__\"",
    "__proto__",
    "constructor",
    "\\u0000",
    "\u{0}",
    "\u{7f}",
    "\u{feff}",
    "é",
    "😀",
    "\\ud800",
    "9999-12-31T23:59:59.999Z",
    "0000-01-01T00:00:00.000Z",
    "10000-01-01T00:00:00.000Z",
    "2026-02-30T00:00:00.000Z",
    "2026-01-01T00:00:00Z",
    "2026-01-01T24:00:00.000Z",
    "1.0000",
    "0.00005",
    "1000000.00",
];

struct Mutator {
    dice: IdSource,
}

impl Mutator {
    fn below(&mut self, n: usize) -> usize {
        (self.dice.next_u64() % n.max(1) as u64) as usize
    }

    fn token(&mut self) -> &'static str {
        TOKENS[self.below(TOKENS.len())]
    }

    /// A byte-level mutation of `input`, one to four edits deep.
    fn bytes(&mut self, input: &[u8], other: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..1 + self.below(4) {
            let at = self.below(out.len() + 1);
            match self.below(7) {
                0 if !out.is_empty() => {
                    let i = self.below(out.len());
                    out[i] ^= 1 << self.below(8);
                }
                1 if !out.is_empty() => {
                    let end = (at + 1 + self.below(8)).min(out.len());
                    out.drain(at.min(end)..end);
                }
                2 => {
                    let token = self.token().as_bytes().to_vec();
                    out.splice(at..at, token);
                }
                3 if !other.is_empty() => {
                    let from = self.below(other.len());
                    let len = self.below(other.len() - from + 1);
                    out.splice(at..at, other[from..from + len].iter().copied());
                }
                4 if !out.is_empty() => {
                    let from = self.below(out.len());
                    let len = self.below((out.len() - from).min(16) + 1);
                    let piece: Vec<u8> = out[from..from + len].to_vec();
                    out.splice(at..at, piece);
                }
                5 => out.truncate(at),
                _ => {
                    let i = self.below(out.len() + 1);
                    out.insert(
                        i.min(out.len()),
                        b"\"{}[],:-.0123456789eE\\"[self.below(22)],
                    );
                }
            }
        }
        out
    }

    /// A value to put in place of a JSON field.
    fn value(&mut self, depth: u32) -> Value {
        match self.below(if depth > 2 { 6 } else { 8 }) {
            0 => Value::Null,
            1 => Value::Bool(self.below(2) == 0),
            2 => serde_json::from_str(self.token()).unwrap_or(Value::Null),
            3 => Value::String(self.token().to_owned()),
            4 => Value::from(self.dice.next_u64() as i64),
            5 => Value::from((self.dice.next_u64() as f64) / 7.0 - 1e15),
            6 => Value::Array((0..self.below(3)).map(|_| self.value(depth + 1)).collect()),
            _ => {
                let mut map = serde_json::Map::new();
                for _ in 0..self.below(3) {
                    map.insert(self.token().to_owned(), self.value(depth + 1));
                }
                Value::Object(map)
            }
        }
    }

    /// A structured mutation: one field of the object (or of an object inside it) replaced,
    /// removed, or one added.
    fn json(&mut self, value: &Value) -> Value {
        let mut out = value.clone();
        for _ in 0..1 + self.below(2) {
            self.change(&mut out, 0);
        }
        out
    }

    fn change(&mut self, value: &mut Value, depth: u32) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                let keys: Vec<String> = map.keys().cloned().collect();
                let key = keys[self.below(keys.len())].clone();
                match self.below(5) {
                    0 => {
                        map.remove(&key);
                    }
                    1 => {
                        let token = self.token().to_owned();
                        map.insert(token, self.value(0));
                    }
                    2 if depth < 3 => {
                        if let Some(inner) = map.get_mut(&key) {
                            self.change(inner, depth + 1);
                        }
                    }
                    _ => {
                        let replacement = self.value(0);
                        map.insert(key, replacement);
                    }
                }
            }
            Value::Array(items) if !items.is_empty() => {
                let i = self.below(items.len());
                if self.below(2) == 0 {
                    self.change(&mut items[i], depth + 1);
                } else {
                    items[i] = self.value(0);
                }
            }
            other => *other = self.value(0),
        }
    }
}

/// The pure parsers of one text.
fn parse_text(text: &str, selector: usize) {
    let currency = Currency::usd();
    match selector % 9 {
        0 => {
            for scale in [0, 2, 4, 6, 28, 30] {
                let _ = decimal::parse(text, scale);
            }
        }
        1 => {
            let _ = Rate::parse(text, "rate");
        }
        2 => {
            let _ = Money::parse(text, &currency, "amount");
            if let Ok(yen) = Currency::new("JPY", None, "currency") {
                let _ = Money::parse(text, &yen, "amount");
            }
        }
        3 => {
            let _ = TierName::parse(text, "tier");
        }
        4 => {
            let _ = PricingModel::parse(text, "model");
            let _ = Rounding::parse(text);
            let _ = ResellerStatus::parse(text, "status");
        }
        5 => {
            let _ = iso_time::parse_millis(text);
        }
        6 => {
            let _ = Entry::from_json_text(text, "entry");
        }
        7 => {
            let _ = AttestationKey::new(text.as_bytes(), "key");
            let _ = Currency::new(text, None, "currency");
            let _ = Currency::new(text, Some(text.len() as u32), "currency");
        }
        _ => {
            if let Ok(value) = serde_json::from_str::<Value>(text) {
                parse_record(&value, selector / 9);
            }
        }
    }
}

/// The stored-record readers of one JSON value.
fn parse_record(value: &Value, selector: usize) {
    match selector % 10 {
        0 => drop(Reseller::from_json(value.clone(), "reseller")),
        1 => drop(Client::from_json(value.clone(), "client")),
        2 => drop(PaymentRecord::from_json(value.clone(), "payment")),
        3 => drop(CommissionLine::from_json(value.clone(), "line")),
        4 => drop(CommissionPayment::from_json(
            value.clone(),
            "commissionPayment",
        )),
        5 => drop(PayoutBatch::from_json(value.clone(), "batch")),
        6 => drop(Application::from_json(value.clone(), "application")),
        7 => drop(Checkpoint::from_json(value, "checkpoint")),
        8 => drop(Attestation::from_json(value.clone(), "attestation")),
        _ => drop(Entry::from_json(value.clone(), "entry")),
    }
}

/// The engine reading a record back from a storage that holds `record` in place of its own.
fn engine_reads(collection: &str, record: &StoredRecord, base: &[(String, StoredRecord)]) {
    let storage = Rc::new(MemoryStorage::new());
    for (c, r) in base {
        let r = if c == collection && r.id == record.id {
            record
        } else {
            r
        };
        let _ = run(storage.put(
            c,
            &StoredRecord {
                version: 1,
                ..r.clone()
            },
            0,
            &[],
        ));
    }
    let at = Utc
        .with_ymd_and_hms(2026, 3, 1, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let ally: Engine = Ally::new(Config::default(), storage, NoMailer, FixedClock(at), 3);
    let id = record.id.as_str();
    match collection {
        "resellers" => {
            let _ = run(ally.find_reseller(id));
            let _ = run(ally.balance(id));
        }
        "clients" => drop(run(ally.find_client(id))),
        "payments" | "commissions" | "commission_state" => {
            let jan = Utc
                .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                .single()
                .unwrap_or_default();
            let _ = run(ally.reconcile(jan, jan + chrono::Duration::days(31)));
            let _ = run(ally.commission_lines(&LineFilter::default()));
        }
        _ => drop(run(ally.payout_batches())),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let executions: u64 = args
        .next()
        .and_then(|a| a.replace('_', "").parse().ok())
        .unwrap_or(1_000_000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let corpus = corpus();
    // From here a panic is a finding: the hook keeps where it happened for the report.
    panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        println!("panicked at {place}: {message}");
    }));
    let texts: Vec<Vec<u8>> = corpus
        .records
        .iter()
        .map(|(_, r)| r.data.clone().into_bytes())
        .chain(corpus.entries.iter().map(|e| e.clone().into_bytes()))
        .chain([corpus.attestation.clone().into_bytes()])
        .chain(TOKENS.iter().map(|t| t.as_bytes().to_vec()))
        .collect();
    // Each JSON object with the reader of its kind (see `parse_record`), so that most
    // structured mutations reach past the first field.
    let kind_of = |collection: &str| match collection {
        "resellers" => 0,
        "clients" => 1,
        "payments" => 2,
        "commissions" => 3,
        "commission_payments" => 4,
        "payout_batches" => 5,
        "applications" => 6,
        "wallets" => 7,
        _ => 9,
    };
    let values: Vec<(Value, usize)> = corpus
        .records
        .iter()
        .filter_map(|(c, r)| Some((serde_json::from_str::<Value>(&r.data).ok()?, kind_of(c))))
        .chain(
            corpus
                .entries
                .iter()
                .filter_map(|e| Some((serde_json::from_str::<Value>(e).ok()?, 9))),
        )
        .chain(
            serde_json::from_str::<Value>(&corpus.attestation)
                .ok()
                .map(|v| (v, 8)),
        )
        .filter(|(v, _)| v.is_object())
        .collect();
    let binary = ledger::encode_ledger(&corpus.ledger);
    println!(
        "corpus: {} stored records, {} ledger entries ({} bytes binary), {} JSON objects",
        corpus.records.len(),
        corpus.entries.len(),
        binary.len(),
        values.len()
    );
    let mut m = Mutator {
        dice: IdSource::new(seed),
    };
    let began = Instant::now();
    let mut counts = [0u64; 4];
    for n in 0..executions {
        let target = m.below(100);
        let outcome = if target < 45 {
            let input = &texts[m.below(texts.len())];
            let other = &texts[m.below(texts.len())];
            let mutated = m.bytes(input, other);
            let text = String::from_utf8_lossy(&mutated).into_owned();
            let selector = m.below(90);
            counts[0] += 1;
            let shown = text.clone();
            panic::catch_unwind(move || parse_text(&text, selector)).map_err(|_| ("text", shown))
        } else if target < 90 {
            let (picked, kind) = &values[m.below(values.len())];
            let value = m.json(picked);
            // Mostly the reader of its kind; now and then another, which must refuse it.
            let selector = if m.below(4) == 0 { m.below(10) } else { *kind };
            counts[1] += 1;
            let shown = value.to_string();
            panic::catch_unwind(move || parse_record(&value, selector))
                .map_err(|_| ("record", shown))
        } else if target < 99 {
            let mutated = m.bytes(&binary, &binary);
            counts[2] += 1;
            let shown = format!("{mutated:?}");
            panic::catch_unwind(move || drop(ledger::audit_bytes(&mutated, None, 0)))
                .map_err(|_| ("binary ledger", shown))
        } else {
            let (collection, record) = &corpus.records[m.below(corpus.records.len())];
            let data = if m.below(2) == 0 {
                serde_json::from_str::<Value>(&record.data)
                    .map(|v| m.json(&v).to_string())
                    .unwrap_or_default()
            } else {
                String::from_utf8_lossy(&m.bytes(record.data.as_bytes(), &texts[0])).into_owned()
            };
            let changed = StoredRecord {
                data,
                ..record.clone()
            };
            counts[3] += 1;
            let shown = changed.data.clone();
            let base = &corpus.records;
            panic::catch_unwind(AssertUnwindSafe(|| {
                engine_reads(collection, &changed, base)
            }))
            .map_err(|_| ("engine read", shown))
        };
        if let Err((target, input)) = outcome {
            println!("FOUND a panic in {target} at execution {n} (seed {seed}):\n{input}");
            std::process::exit(1);
        }
    }
    println!(
        "{executions} executions in {:.1} s, no panic: {} texts, {} records, {} binary ledgers, {} engine reads (seed {seed})",
        began.elapsed().as_secs_f64(),
        counts[0],
        counts[1],
        counts[2],
        counts[3]
    );
}

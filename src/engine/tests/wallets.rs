//! Wallets whose cost follows the work: cold starts from checkpoints, idempotency keys answered
//! by their claims, the operator's audit, and the money-path refusals.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use chrono::{DateTime, Utc};

use super::memory::MemoryStorage;
use super::ports::{
    AppendOutcome, Claim, FixedClock, Guard, MailError, MailMessage, Mailer, Query, Storage,
    StorageError, StoredRecord, WriteOutcome,
};
use super::test_support::{at, run, run_all, Op, YieldOnce};
use super::{Ally, TransactionsPage, CHECKPOINT_INTERVAL};
use crate::domain::config::Config;
use crate::domain::ledger::Movement;
use crate::domain::money::Credits;
use crate::domain::reseller::{ResellerDraft, StatusChange, UserId};
use crate::domain::{Error, Result};

/// The in-memory storage, counting what is read and appended. Its appends may each suspend once
/// (as a host's do), and one may be made to fail after it wrote (an answer lost on the way back).
#[derive(Default)]
struct Counting {
    inner: MemoryStorage,
    entries_read: Cell<u64>,
    reads: Cell<u64>,
    claim_lookups: Cell<u64>,
    gets: Cell<u64>,
    suspending: bool,
    appends: Cell<u32>,
    /// How many entries each written append of a wallet's stream held.
    written: RefCell<Vec<usize>>,
    lose_answer_of: Cell<Option<u32>>,
}

/// A counting storage whose appends suspend.
fn suspending() -> Rc<Counting> {
    Rc::new(Counting {
        suspending: true,
        ..Counting::default()
    })
}

impl Counting {
    fn reset(&self) {
        self.entries_read.set(0);
        self.reads.set(0);
        self.claim_lookups.set(0);
        self.gets.set(0);
    }
}

impl Storage for Counting {
    async fn get(
        &self,
        c: &str,
        id: &str,
    ) -> std::result::Result<Option<StoredRecord>, StorageError> {
        self.gets.set(self.gets.get() + 1);
        self.inner.get(c, id).await
    }
    async fn find(
        &self,
        c: &str,
        q: Query<'_>,
    ) -> std::result::Result<Vec<StoredRecord>, StorageError> {
        self.inner.find(c, q).await
    }
    async fn put(
        &self,
        c: &str,
        r: &StoredRecord,
        v: u64,
        u: &[&str],
    ) -> std::result::Result<WriteOutcome, StorageError> {
        self.inner.put(c, r, v, u).await
    }
    async fn append(
        &self,
        s: &str,
        n: u64,
        e: &[String],
        claims: &[Claim<'_>],
        guard: Option<Guard<'_>>,
        held: bool,
    ) -> std::result::Result<AppendOutcome, StorageError> {
        if self.suspending {
            YieldOnce(false).await;
        }
        let count = self.appends.get() + 1;
        self.appends.set(count);
        let outcome = self.inner.append(s, n, e, claims, guard, held).await?;
        if outcome == AppendOutcome::Written && s.starts_with("ledger:") {
            self.written.borrow_mut().push(e.len());
        }
        if self.lose_answer_of.get() == Some(count) {
            return Err(StorageError {
                reason: "the connection closed before the answer".to_owned(),
            });
        }
        Ok(outcome)
    }
    async fn read(
        &self,
        s: &str,
        from: u64,
        limit: u32,
    ) -> std::result::Result<Vec<String>, StorageError> {
        let page = self.inner.read(s, from, limit).await?;
        self.reads.set(self.reads.get() + 1);
        self.entries_read
            .set(self.entries_read.get() + page.len() as u64);
        Ok(page)
    }
    async fn find_claim(
        &self,
        s: &str,
        key: &str,
    ) -> std::result::Result<Option<u64>, StorageError> {
        self.claim_lookups.set(self.claim_lookups.get() + 1);
        self.inner.find_claim(s, key).await
    }
}

/// Keeps every message it is given.
#[derive(Default)]
struct Sent(RefCell<Vec<MailMessage>>);

impl Mailer for Rc<Sent> {
    async fn send(&self, message: &MailMessage) -> std::result::Result<(), MailError> {
        self.0.borrow_mut().push(message.clone());
        Ok(())
    }
}

type Engine<S> = Ally<Rc<S>, Rc<Sent>, FixedClock>;

fn engine_at<S: Storage>(
    storage: &Rc<S>,
    mail: &Rc<Sent>,
    now: DateTime<Utc>,
    seed: u64,
) -> Engine<S> {
    Ally::new(
        Config::default(),
        Rc::clone(storage),
        Rc::clone(mail),
        FixedClock(now),
        seed,
    )
}

fn engine<S: Storage>(storage: &Rc<S>, seed: u64) -> Engine<S> {
    engine_at(storage, &Rc::default(), at(2026, 3, 1), seed)
}

fn c(n: u64) -> Credits {
    Credits::new(n).unwrap_or_default()
}

fn ok<T>(result: Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{e}"))
}

fn code<T>(result: Result<T>) -> Option<&'static str> {
    result.err().map(|e| e.code().as_str())
}

fn reseller<S: Storage>(ally: &Engine<S>, user: u64) -> String {
    let draft = ResellerDraft {
        user_id: Some(UserId::Number(user)),
        company_name: Some(format!("Reseller {user}")),
        email: Some(format!("ops{user}@example.test")),
        ..ResellerDraft::default()
    };
    ok(run(ally.create_reseller(draft))).value.id
}

/// A wallet of `top_ups` top-ups followed by `provisions` single provisions, each keyed.
fn history<S: Storage>(ally: &Engine<S>, id: &str, provisions: u64) {
    ok(run(ally.add_credits(
        id,
        c(1_000_000_000),
        None,
        Some("opening".into()),
    )));
    for i in 0..provisions {
        ok(run(ally.provision(id, c(1), None, Some(format!("p-{i}")))));
    }
}

#[test]
fn a_fresh_instance_reads_the_checkpoint_and_the_tail_only() {
    for provisions in [200u64, 2_000] {
        let storage = Rc::new(Counting::default());
        let writer = engine(&storage, 1);
        let id = reseller(&writer, 1);
        history(&writer, &id, provisions);
        storage.reset();
        let cold = engine(&storage, 2);
        let done = ok(run(cold.provision(&id, c(5), None, None)));
        assert_eq!(done.entries[0].sequence, provisions + 2);
        assert_eq!(
            done.entries[0].balance_after,
            1_000_000_000 - provisions as i64 - 5
        );
        // The checkpoint's last entry, then at most an interval of entries after it.
        let read = storage.entries_read.get();
        assert!(
            (1..=CHECKPOINT_INTERVAL + 1).contains(&read),
            "{provisions} entries: a cold provision read {read} entries"
        );
        assert!(storage.reads.get() <= 3, "{} reads", storage.reads.get());
        // A second operation on the now warm instance reads nothing before it appends.
        storage.reset();
        ok(run(cold.provision(&id, c(5), None, None)));
        assert_eq!((storage.reads.get(), storage.entries_read.get()), (0, 0));
        assert_eq!(
            ok(run(engine(&storage, 3).balance(&id))).get(),
            1_000_000_000 - provisions - 10
        );
    }
}

#[test]
fn an_idempotency_key_from_any_time_is_answered_by_its_claim() {
    let storage = Rc::new(Counting::default());
    let writer = engine(&storage, 1);
    let id = reseller(&writer, 1);
    history(&writer, &id, 1_000);
    storage.reset();
    // A fresh instance, a key used 1 000 entries ago: answered as the first time.
    let cold = engine(&storage, 2);
    let again = ok(run(cold.provision(&id, c(1), None, Some("p-3".into()))));
    assert!(again.replayed);
    assert_eq!(again.entries[0].sequence, 5);
    assert_eq!(storage.claim_lookups.get(), 1);
    assert!(storage.entries_read.get() <= CHECKPOINT_INTERVAL + 2);
    assert_eq!(
        code(run(cold.provision(&id, c(2), None, Some("p-3".into())))),
        Some("IDEMPOTENCY_MISMATCH")
    );
    // A key is still answered where the request would now be refused.
    let spent = ok(run(cold.balance(&id))).get();
    ok(run(cold.provision(&id, c(spent), None, Some("all".into()))));
    let replay = ok(run(cold.provision(&id, c(spent), None, Some("all".into()))));
    assert!(replay.replayed);
    assert_eq!(ok(run(cold.balance(&id))).get(), 0);
}

#[test]
fn entry_times_never_go_backwards_and_a_page_by_time_is_bisected() {
    let storage = Rc::new(Counting::default());
    let mail = Rc::default();
    let id = reseller(&engine(&storage, 1), 1);
    ok(run(engine(&storage, 2).add_credits(
        &id,
        c(1_000),
        None,
        None,
    )));
    // One entry a day, each by a fresh instance (a cold start), from 2026-03-02 to 03-21.
    for day in 2..=21 {
        ok(run(engine_at(
            &storage,
            &mail,
            at(2026, 3, day),
            u64::from(day) + 10,
        )
        .provision(&id, c(1), None, None)));
    }
    // An instance whose clock is behind writes at the latest entry's time, not before it.
    let behind = engine_at(&storage, &mail, at(2026, 3, 5), 99);
    let late = ok(run(behind.provision(&id, c(1), None, None)));
    assert_eq!(late.entries[0].at_ms, at(2026, 3, 21).timestamp_millis());
    let day = |d| at(2026, 3, d).timestamp_millis();
    let cold = engine(&storage, 100);
    let page = TransactionsPage {
        limit: 100,
        before: None,
        since_ms: Some(day(5)),
        until_ms: Some(day(8)),
    };
    storage.reset();
    let found = ok(run(cold.transactions(&id, page)));
    let days: Vec<i64> = found.iter().map(|e| e.at_ms).collect();
    assert_eq!(
        days,
        [day(7), day(6), day(5)],
        "newest first, in [since, until)"
    );
    // The bisection reads single entries, about log2(22) of them, and then the page.
    assert!(storage.reads.get() <= 8, "{} reads", storage.reads.get());
    let newest = TransactionsPage {
        limit: 2,
        before: None,
        since_ms: None,
        until_ms: None,
    };
    let last_two = ok(run(cold.transactions(&id, newest)));
    assert_eq!(
        last_two.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [22, 21]
    );
    let before_until = TransactionsPage {
        limit: 2,
        until_ms: Some(day(3)),
        ..newest
    };
    let oldest = ok(run(cold.transactions(&id, before_until)));
    assert_eq!(
        oldest.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [2, 1]
    );
}

#[test]
fn a_key_is_looked_up_by_its_claim_whatever_the_history() {
    let storage = Rc::new(Counting::default());
    let writer = engine(&storage, 1);
    let id = reseller(&writer, 1);
    history(&writer, &id, 1_000);
    let items = vec![
        Movement {
            amount: c(2),
            memo: Some("a".into()),
        },
        Movement {
            amount: c(3),
            memo: None,
        },
    ];
    let bulk = ok(run(writer.provision_bulk(
        &id,
        items,
        Some("bulk-9".into()),
    )));
    storage.reset();
    let cold = engine(&storage, 2);
    let single = ok(run(cold.find_by_idempotency_key(&id, "p-3")));
    assert_eq!(single.iter().map(|e| e.sequence).collect::<Vec<_>>(), [5]);
    let found = ok(run(cold.find_by_idempotency_key(&id, "bulk-9")));
    assert_eq!(found, bulk.entries, "a bulk's entries, all of them");
    assert!(ok(run(cold.find_by_idempotency_key(&id, "never"))).is_empty());
    // Three lookups: claims and at most a bulk's entries, not the 1 000 before them.
    assert_eq!(storage.claim_lookups.get(), 3);
    assert!(storage.entries_read.get() <= 1 + 1 + 2);
    assert_eq!(
        code(run(cold.find_by_idempotency_key("rs_missing", "p-3"))),
        Some("NOT_FOUND")
    );
}

#[test]
fn a_bulk_crossing_is_mailed_once_even_after_the_daily_check() {
    let storage = Rc::new(MemoryStorage::default());
    let mail = Rc::new(Sent::default());
    let ally = engine_at(&storage, &mail, at(2026, 3, 1), 1);
    let id = reseller(&ally, 1);
    ok(run(ally.add_credits(&id, c(600), None, None)));
    let items = [50, 60, 200]
        .into_iter()
        .map(|n| Movement {
            amount: c(n),
            memo: None,
        })
        .collect();
    // 600 → 550 → 490 (below 500: the crossing, entry 3) → 290.
    let bulk = ok(run(ally.provision_bulk(&id, items, None)));
    let crossing = bulk.low_credit.unwrap_or_else(|| panic!("no crossing"));
    assert_eq!(crossing.crossing.sequence, 3);
    assert_eq!(mail.0.borrow().len(), 1);
    for checker in [&ally, &engine_at(&storage, &mail, at(2026, 3, 2), 2)] {
        let check = ok(run(checker.check_credits(None)));
        assert_eq!((check.notified, check.failed), (0, 0));
    }
    assert_eq!(mail.0.borrow().len(), 1, "one crossing, one mail");
}

#[test]
fn a_clock_outside_years_0000_to_9999_writes_nothing() {
    let storage = Rc::new(MemoryStorage::default());
    let id = reseller(&engine(&storage, 1), 1);
    let far = DateTime::from_timestamp_millis(253_402_300_800_000).unwrap_or_default();
    let ally = engine_at(&storage, &Rc::default(), far, 2);
    assert_eq!(
        code(run(ally.add_credits(&id, c(10), None, None))),
        Some("INVALID_CONFIG")
    );
    assert_eq!(
        run(storage.read(&format!("ledger:{id}"), 0, 10)).map(|e| e.len()),
        Ok(0)
    );
    // The wallet still reads, and a sane clock still writes.
    let sane = engine(&storage, 3);
    ok(run(sane.add_credits(&id, c(10), None, None)));
    assert_eq!(ok(run(sane.balance(&id))).get(), 10);
}

#[test]
fn a_suspended_or_inactive_reseller_cannot_spend() {
    let storage = Rc::new(MemoryStorage::default());
    let ally = engine(&storage, 1);
    let id = reseller(&ally, 1);
    ok(run(ally.add_credits(&id, c(1_000), None, None)));
    ok(run(ally.provision(&id, c(10), None, Some("before".into()))));
    let suspend = || StatusChange::Suspend {
        reason: Some("chargeback under review".into()),
    };
    let suspended = ok(run(ally.set_reseller_status(&id, suspend())));
    assert_eq!(suspended.value.status.as_str(), "suspended");
    let again = ok(run(ally.set_reseller_status(&id, suspend())));
    assert_eq!(again.version, suspended.version, "a repeat writes nothing");
    match run(ally.provision(&id, c(10), None, None)) {
        Err(Error::ResellerInactive { status, reason, .. }) => {
            assert_eq!(status, "suspended");
            assert_eq!(reason.as_deref(), Some("chargeback under review"));
        }
        other => panic!("expected RESELLER_INACTIVE, got {other:?}"),
    }
    let bulk = vec![Movement {
        amount: c(1),
        memo: None,
    }];
    assert_eq!(
        code(run(ally.provision_bulk(&id, bulk, None))),
        Some("RESELLER_INACTIVE")
    );
    // What was done before is still answered; top-ups still land.
    assert!(ok(run(ally.provision(&id, c(10), None, Some("before".into())))).replayed);
    ok(run(ally.add_credits(&id, c(5), None, None)));
    assert_eq!(ok(run(ally.balance(&id))).get(), 995);
    ok(run(ally.set_reseller_status(&id, StatusChange::Reactivate)));
    ok(run(ally.provision(&id, c(5), None, None)));
    ok(run(ally.set_reseller_status(
        &id,
        StatusChange::Deactivate { reason: None },
    )));
    assert_eq!(
        code(run(ally.provision(&id, c(5), None, None))),
        Some("RESELLER_INACTIVE")
    );
    assert_eq!(
        code(run(ally.set_reseller_status(&id, suspend()))),
        Some("STATUS_TRANSITION_DENIED")
    );
    assert_eq!(ok(run(ally.balance(&id))).get(), 990);
    assert_eq!(
        code(run(
            ally.set_reseller_status("rs_none", StatusChange::Reactivate)
        )),
        Some("NOT_FOUND")
    );
}

/// A copy of `from` with the wallet record of `id` and only its first `keep` entries.
fn lose_entries(from: &MemoryStorage, id: &str, keep: u32) -> Rc<MemoryStorage> {
    let fresh = Rc::new(MemoryStorage::default());
    let stream = format!("ledger:{id}");
    let entries = ok(
        run(from.read(&stream, 0, keep)).map_err(|e| Error::StorageFailed {
            operation: "read",
            reason: e.reason,
        }),
    );
    assert_eq!(
        run(fresh.append(&stream, 0, &entries, &[], None, false)),
        Ok(AppendOutcome::Written)
    );
    for collection in ["resellers", "wallets"] {
        let query = Query {
            index: None,
            after: None,
            limit: 100,
        };
        for r in run(from.find(collection, query)).unwrap_or_default() {
            let unique: &[&str] = if collection == "resellers" {
                &["userId", "refid"]
            } else {
                &[]
            };
            let copy = StoredRecord { version: 1, ..r };
            assert_eq!(
                run(fresh.put(collection, &copy, 0, unique)),
                Ok(WriteOutcome::Written)
            );
        }
    }
    fresh
}

#[test]
fn a_checkpoint_whose_entries_were_lost_is_refused_and_audited() {
    let storage = Rc::new(MemoryStorage::default());
    let ally = engine(&storage, 1);
    let id = reseller(&ally, 1);
    history(&ally, &id, 150);
    let sound = ok(run(ally.audit_wallet(&id)));
    assert!(sound.ok(), "{sound:?}");
    assert_eq!(sound.audit.length, 151);
    let covered = sound.checkpoint_length.unwrap_or(0);
    assert!(covered >= CHECKPOINT_INTERVAL, "checkpoint at {covered}");
    // A restore that lost the last entries the checkpoint covers.
    let restored = lose_entries(&storage, &id, (covered - 3) as u32);
    let cold = engine(&restored, 2);
    for refused in [
        code(run(cold.provision(&id, c(1), None, None))),
        code(run(cold.balance(&id)).map(|_| ())),
    ] {
        assert_eq!(refused, Some("STORAGE_FAILED"));
    }
    let stream = format!("ledger:{id}");
    assert_eq!(
        run(restored.read(&stream, 0, 1_000)).map(|e| e.len() as u64),
        Ok(covered - 3),
        "nothing was appended"
    );
    let audit = ok(run(cold.audit_wallet(&id)));
    assert!(audit.audit.ok, "the entries left still validate");
    assert!(!audit.checkpoint_matches && !audit.ok());
    // Behind it is fine: a checkpoint with more entries after it than the interval.
    let behind = lose_entries(&storage, &id, 151);
    assert_eq!(
        ok(run(engine(&behind, 3).balance(&id))).get(),
        1_000_000_000 - 150
    );
}

#[test]
fn two_instances_advance_the_checkpoint_forward_only() {
    let storage = Rc::new(MemoryStorage::default());
    let a = engine(&storage, 1);
    let b = engine(&storage, 2);
    let id = reseller(&a, 1);
    ok(run(a.add_credits(&id, c(1_000_000), None, None)));
    let mut lengths = Vec::new();
    for i in 0..400u64 {
        let ally = if (i / 7) % 2 == 0 { &a } else { &b };
        ok(run(ally.provision(&id, c(1), None, None)));
        let audit = ok(run(a.audit_wallet(&id)));
        assert!(audit.ok(), "step {i}: {audit:?}");
        lengths.push(audit.checkpoint_length.unwrap_or(0));
    }
    assert!(lengths.windows(2).all(|w| w[0] <= w[1]), "{lengths:?}");
    let last = lengths.last().copied().unwrap_or(0);
    assert!(
        401 - last <= CHECKPOINT_INTERVAL + 1,
        "checkpoint at {last} of 401"
    );
}

#[test]
fn a_warm_provision_is_one_append_and_still_sees_a_suspension() {
    let storage = Rc::new(Counting::default());
    let admin = engine(&storage, 1);
    let shop = engine(&storage, 2);
    let id = reseller(&admin, 1);
    ok(run(admin.add_credits(&id, c(1_000), None, None)));
    ok(run(shop.provision(&id, c(1), None, None)));
    storage.reset();
    for _ in 0..10 {
        ok(run(shop.provision(&id, c(1), None, None)));
    }
    assert_eq!(
        (storage.gets.get(), storage.reads.get()),
        (0, 0),
        "a warm provision reads neither the reseller nor the stream"
    );
    // Another instance suspends the reseller: the guard on the append refuses the stale view.
    let reason = Some("fraud review".to_owned());
    ok(run(admin.set_reseller_status(
        &id,
        StatusChange::Suspend { reason },
    )));
    assert_eq!(
        code(run(shop.provision(&id, c(1), None, None))),
        Some("RESELLER_INACTIVE")
    );
    ok(run(admin.set_reseller_status(&id, StatusChange::Reactivate)));
    ok(run(shop.provision(&id, c(1), None, None)));
    // A top-up by the other instance is caught up from the stale append's tail.
    ok(run(admin.add_credits(&id, c(500), None, None)));
    storage.reset();
    let done = ok(run(shop.provision(&id, c(7), None, None)));
    assert_eq!(done.entries[0].balance_after, 1_000 + 500 - 12 - 7);
    assert_eq!(
        storage.reads.get(),
        0,
        "the tail came with the stale answer"
    );
    // A refusal on a warm view is confirmed against the stream before it is given.
    ok(run(admin.add_credits(&id, c(100), None, None)));
    let all = ok(run(shop.provision(&id, c(1_581), None, None)));
    assert_eq!(all.entries[0].balance_after, 0);
}

#[test]
fn an_attestation_signs_the_current_state_and_verifies_without_the_history() {
    use crate::domain::ledger::attestation::{self, AttestationKey, Check, Refusal};
    let storage = Rc::new(MemoryStorage::default());
    let origin = engine(&storage, 1);
    let id = reseller(&origin, 1);
    ok(run(origin.add_credits(&id, c(900), None, None)));
    let key = ok(AttestationKey::new(&[9; 32], "key"));
    // Another instance appends; the attestation is of what the stream holds now.
    ok(run(engine(&storage, 2).provision(&id, c(150), None, None)));
    let signed = ok(run(origin.attest_wallet(&id, &key)));
    assert_eq!((signed.length, signed.balance.get()), (2, 750));
    let ledger = ok(run(origin.ledger(&id)));
    assert_eq!(Some(signed.head), ledger.last().map(|e| e.hash));
    let check = Check {
        now_ms: signed.issued_at_ms + 1_000,
        max_age_ms: 60_000,
        wallet_id: &id,
    };
    assert_eq!(attestation::verify(&signed, &key, check), Ok(()));
    let other = ok(AttestationKey::new(&[8; 32], "key"));
    assert_eq!(
        attestation::verify(&signed, &other, check),
        Err(Refusal::SignatureMismatch)
    );
    assert_eq!(
        code(run(origin.attest_wallet("rs_none", &key))),
        Some("NOT_FOUND")
    );
}

#[test]
fn a_checkpoint_whose_balance_was_edited_is_refused_not_spent() {
    let storage = Rc::new(MemoryStorage::default());
    let ally = engine(&storage, 1);
    let id = reseller(&ally, 1);
    ok(run(ally.add_credits(&id, c(1_000), None, None)));
    for _ in 0..127 {
        ok(run(ally.provision(&id, c(1), None, None)));
    }
    let record = ok(
        run(storage.get("wallets", &id)).map_err(|e| Error::StorageFailed {
            operation: "get",
            reason: e.reason,
        }),
    )
    .unwrap_or_else(|| panic!("no wallet record"));
    let mut data: serde_json::Value =
        serde_json::from_str(&record.data).unwrap_or(serde_json::Value::Null);
    assert_eq!(
        data["checkpoint"]["length"], 128,
        "the checkpoint sits at the head"
    );
    data["checkpoint"]["balance"] = serde_json::json!(5_000_000_000u64);
    let forged = StoredRecord {
        version: record.version + 1,
        data: data.to_string(),
        ..record.clone()
    };
    assert_eq!(
        run(storage.put("wallets", &forged, record.version, &[])),
        Ok(WriteOutcome::Written)
    );
    let cold = engine(&storage, 2);
    assert_eq!(code(run(cold.balance(&id))), Some("STORAGE_FAILED"));
    assert_eq!(
        code(run(cold.provision(&id, c(4_000_000_000), None, None))),
        Some("STORAGE_FAILED")
    );
    let audit = ok(run(cold.audit_wallet(&id)));
    assert!(audit.audit.ok && !audit.checkpoint_matches);
}

fn provide_all<S: Storage>(
    ally: &Engine<S>,
    id: &str,
    requests: &[(u64, &str)],
) -> Vec<Result<super::Applied>> {
    let futures = requests
        .iter()
        .map(|(cost, key)| {
            Box::pin(ally.provision(id, c(*cost), None, Some((*key).to_owned()))) as Op<'_, _>
        })
        .collect();
    run_all(futures)
}

#[test]
fn requests_waiting_in_one_instance_are_written_in_the_holders_append() {
    let storage = suspending();
    let ally = engine(&storage, 7);
    let id = reseller(&ally, 1);
    ok(run(ally.add_credits(&id, c(5), None, None)));
    let before = storage.appends.get();
    // p0 takes the wallet alone; the rest wait for it, and the next holder settles them: the big
    // one and those beyond the balance refused, k0 repeated (claimed before), each with its own
    // answer.
    let requests: Vec<(u64, &str)> = vec![
        (1, "k0"),
        (1, "k1"),
        (100, "big"),
        (1, "k2"),
        (1, "k3"),
        (1, "k0"),
        (1, "k4"),
        (1, "k5"),
        (1, "k6"),
    ];
    let outcomes = provide_all(&ally, &id, &requests);
    let mut codes = Vec::new();
    for ((cost, key), outcome) in requests.iter().zip(&outcomes) {
        match outcome {
            Ok(applied) => {
                assert_eq!(applied.entries.len(), 1, "{key}");
                let entry = &applied.entries[0];
                assert_eq!(entry.idempotency_key.as_deref(), Some(*key));
                assert_eq!(entry.amount, *cost as i64);
                codes.push(if applied.replayed {
                    "replayed"
                } else {
                    "written"
                });
            }
            Err(e) => codes.push(e.code().as_str()),
        }
    }
    assert_eq!(
        codes,
        [
            "written",
            "written",
            "INSUFFICIENT_CREDITS",
            "written",
            "written",
            "replayed",
            "written",
            "INSUFFICIENT_CREDITS",
            "INSUFFICIENT_CREDITS",
        ]
    );
    // The repeat's answer is the first one's own entry.
    let first = outcomes[0].as_ref().map(|a| a.entries[0].id.clone()).ok();
    let repeat = outcomes[5].as_ref().map(|a| a.entries[0].id.clone()).ok();
    assert_eq!(first, repeat);
    // k0 alone, then one batch of k1-k4 (after one attempt refused for the claimed k0).
    assert_eq!(*storage.written.borrow(), [1, 1, 4]);
    assert_eq!(storage.appends.get() - before, 3);
    assert_eq!(ok(run(ally.balance(&id))).get(), 0);
    assert!(ok(run(ally.audit_wallet(&id))).ok());
}

#[test]
fn a_waiting_request_whose_batch_lost_its_answer_fails_and_is_not_written_twice() {
    let storage = suspending();
    let ally = engine(&storage, 8);
    let id = reseller(&ally, 1);
    ok(run(ally.add_credits(&id, c(10), None, None)));
    // The first provision's append goes alone; the second append holds the two waiting ones
    // and is written, but its answer is lost.
    // The refused one was not in that append: it answers its own refusal.
    storage.lose_answer_of.set(Some(storage.appends.get() + 2));
    let requests = [(1, "a"), (1, "b"), (1_000, "big"), (1, "c")];
    let outcomes = provide_all(&ally, &id, &requests);
    let codes: Vec<_> = outcomes
        .iter()
        .map(|o| o.as_ref().err().map(|e| e.code().as_str()))
        .collect();
    let failed = Some("STORAGE_FAILED");
    assert_eq!(codes, [None, failed, Some("INSUFFICIENT_CREDITS"), failed]);
    assert_eq!(*storage.written.borrow(), [1, 1, 2]);
    // Retried with their keys, they are answered as written, once.
    for key in ["b", "c"] {
        let again = run_all(vec![Box::pin(ally.provision(
            &id,
            c(1),
            None,
            Some(key.to_owned()),
        ))]);
        assert!(again.into_iter().all(|a| ok(a).replayed), "{key}");
    }
    let balance = run_all(vec![Box::pin(ally.balance(&id))]);
    assert_eq!(balance.into_iter().map(|b| ok(b).get()).sum::<u64>(), 7);
}

#[test]
fn a_large_bulk_waiting_in_line_is_not_overtaken_by_the_requests_behind_it() {
    let storage = suspending();
    let ally = engine(&storage, 9);
    let id = reseller(&ally, 1);
    ok(run(ally.add_credits(&id, c(150), None, None)));
    let bulk: Vec<Movement> = (0..101)
        .map(|_| Movement {
            amount: c(1),
            memo: None,
        })
        .collect();
    // The first holds the wallet alone; the second holds it next, with the rest in line.
    let futures: Vec<Op<'_, super::Applied>> = vec![
        Box::pin(ally.provision(&id, c(1), None, None)),
        Box::pin(ally.provision(&id, c(1), None, None)),
        Box::pin(ally.provision_bulk(&id, bulk, None)),
        Box::pin(ally.provision(&id, c(60), None, None)),
    ];
    let codes: Vec<_> = run_all(futures)
        .iter()
        .map(|o| o.as_ref().err().map(|e| e.code().as_str()))
        .collect();
    // First come, first served: the bulk is written before the provision behind it.
    assert_eq!(codes, [None, None, None, Some("INSUFFICIENT_CREDITS")]);
    assert_eq!(*storage.written.borrow(), [1, 1, 1, 101]);
    assert_eq!(ok(run(ally.balance(&id))).get(), 47);
}

#[test]
fn a_waiting_request_given_up_leaves_the_line_and_is_not_written() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    let storage = suspending();
    let ally = engine(&storage, 10);
    let id = reseller(&ally, 1);
    ok(run(ally.add_credits(&id, c(10), None, None)));
    let mut cx = Context::from_waker(Waker::noop());
    let mut holder = Box::pin(ally.provision(&id, c(1), None, None));
    assert!(
        holder.as_mut().poll(&mut cx).is_pending(),
        "its append suspends"
    );
    let mut waiter = Box::pin(ally.provision(&id, c(2), None, None));
    assert!(
        waiter.as_mut().poll(&mut cx).is_pending(),
        "it waits in line"
    );
    drop(waiter);
    let written = loop {
        if let Poll::Ready(out) = holder.as_mut().poll(&mut cx) {
            break ok(out);
        }
    };
    assert_eq!(written.entries.len(), 1);
    // The next holder finds no one in line.
    let next = run_all(vec![Box::pin(ally.provision(&id, c(1), None, None))]);
    assert!(next.iter().all(Result::is_ok));
    assert_eq!(*storage.written.borrow(), [1, 1, 1]);
    assert_eq!(ok(run(ally.balance(&id))).get(), 8);
}

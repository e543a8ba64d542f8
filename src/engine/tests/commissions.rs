//! The engine form of commissions over the in-memory storage: a run, its repeat, holds,
//! reversals, payout batches with minimums, advances and negative balances, an interrupted
//! batch, and reconciliation against tampered records.

use std::cell::Cell;
use std::rc::Rc;

use chrono::{DateTime, Utc};

use super::memory::MemoryStorage;
use super::ports::{NoMailer, Storage, StoredRecord};
use super::test_support::{at, run, Failing, StepClock};
use super::{Ally, LineFilter};
use crate::domain::client::ClientDraft;
use crate::domain::commission::{PaymentKind, PaymentStatus, Plan};
use crate::domain::config::Config;
use crate::domain::money::Rate;
use crate::domain::payout::{
    AdjustmentReason, BatchStatus, CommissionStatus, DiscrepancyKind, HoldReason,
};
use crate::domain::reseller::{ResellerDraft, UserId};
use crate::engine::PaymentInput;

fn err<T>(result: crate::domain::Result<T>) -> Option<&'static str> {
    result.err().map(|e| e.code().as_str())
}

fn rate(units: u16) -> Rate {
    Rate::from_units(units).unwrap_or(Rate::ZERO)
}

struct Fixture {
    ally: Ally<Failing, NoMailer, StepClock>,
    clock: StepClock,
    storage: Failing,
    top: String,
    sub: String,
    client: String,
}

/// A top reseller (10 %) over a sub-reseller (15 %) with one client; the plan holds lines 30
/// days, pays at least 50.00, and gives the parent 5 %.
fn fixture() -> Fixture {
    fixture_with(Plan {
        hold_days: 30,
        minimum_payout: 5_000,
        ..Plan::reference()
    })
}

/// The same network under another plan.
fn fixture_with(plan: Plan) -> Fixture {
    let clock = StepClock(Rc::new(Cell::new(at(2026, 1, 1).timestamp_millis())));
    let storage = Failing {
        inner: Rc::new(MemoryStorage::new()),
        writes_left: Rc::new(Cell::new(None)),
    };
    let config = Config {
        commission_plan: plan,
        ..Config::default()
    };
    let ally = Ally::new(config, storage.clone(), NoMailer, clock.clone(), 5);
    let make = |user: u64, name: &str, units: u16| {
        let draft = ResellerDraft {
            user_id: Some(UserId::Number(user)),
            company_name: Some(name.to_owned()),
            commission_rate: Some(rate(units)),
            ..ResellerDraft::default()
        };
        run(ally.create_reseller(draft))
            .unwrap_or_else(|e| panic!("{e}"))
            .value
            .id
    };
    let top = make(1, "Top", 1000);
    let sub = make(2, "Sub", 1500);
    run(ally.set_parent(&sub, Some(&top))).unwrap_or_else(|e| panic!("{e}"));
    let client = run(ally.create_client(ClientDraft {
        name: Some("Client".to_owned()),
        email: None,
        reseller_id: Some(sub.clone()),
        metadata: None,
    }))
    .unwrap_or_else(|e| panic!("{e}"))
    .value
    .id;
    Fixture {
        ally,
        clock,
        storage,
        top,
        sub,
        client,
    }
}

impl Fixture {
    fn pay(
        &self,
        id: &str,
        amount: i64,
        when: DateTime<Utc>,
        kind: PaymentKind,
        reverses: Option<&str>,
    ) {
        run(self.ally.record_payment(PaymentInput {
            id: Some(id.to_owned()),
            client_id: self.client.clone(),
            amount,
            at: when,
            status: PaymentStatus::Completed,
            kind,
            reverses: reverses.map(str::to_owned),
            description: None,
        }))
        .unwrap_or_else(|e| panic!("{e}"));
    }

    fn process(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> super::ProcessSummary {
        run(self.ally.process_commissions(start, end, &mut |_| Ok(())))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn status_of(&self, id: &str) -> CommissionStatus {
        run(self.ally.find_line(id))
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|l| l.value.status)
            .unwrap_or_else(|| panic!("no line {id}"))
    }
}

#[test]
fn a_run_records_holds_reverses_and_repeats_safely() {
    let f = fixture();
    f.pay("p1", 100_000, at(2026, 1, 10), PaymentKind::Payment, None);
    f.pay("p2", 20_000, at(2026, 1, 20), PaymentKind::Payment, None);
    f.pay(
        "r2",
        20_000,
        at(2026, 1, 25),
        PaymentKind::Refund,
        Some("p2"),
    );
    f.pay("p3", 50_000, at(2026, 2, 5), PaymentKind::Payment, None);
    f.clock.set(at(2026, 2, 1));
    let mut phases = Vec::new();
    let summary = run(f
        .ally
        .process_commissions(at(2026, 1, 1), at(2026, 2, 1), &mut |p| {
            phases.push(p.phase);
            Ok(())
        }))
    .unwrap_or_else(|e| panic!("{e}"));
    // The period is read in pages (one per month it touches here), then recorded.
    let mut order = phases.clone();
    order.dedup();
    assert_eq!(order, ["load", "record", "approve"], "{phases:?}");
    assert_eq!(
        (
            summary.payments,
            summary.lines,
            summary.recorded,
            summary.reversed,
            summary.approved
        ),
        (3, 6, 6, 4, 0)
    );
    // 15 % and 5 % of 1000.00 and of 200.00, and the refund claws the 200.00 back.
    assert_eq!(summary.total, 15_000 + 5_000);
    assert_eq!(f.status_of("cm_p1_0_percentage"), CommissionStatus::Pending);
    assert_eq!(f.status_of("cm_p1_1_override"), CommissionStatus::Pending);
    for id in [
        "cm_p2_0_percentage",
        "cm_p2_1_override",
        "cm_r2_0_percentage",
        "cm_r2_1_override",
    ] {
        assert_eq!(f.status_of(id), CommissionStatus::Reversed, "{id}");
    }
    let sub = run(f.ally.commission_balance(&f.sub)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((sub.pending, sub.approved, sub.payable), (15_000, 0, 0));
    assert_eq!(sub.withheld, Some(HoldReason::NothingPayable));

    let again = f.process(at(2026, 1, 1), at(2026, 2, 1));
    assert_eq!((again.lines, again.recorded, again.reversed), (6, 0, 0));
    assert_eq!(f.storage.inner.count("commissions"), 6);

    // After the hold, the next run approves January's lines with February's.
    f.clock.set(at(2026, 3, 1));
    let feb = f.process(at(2026, 2, 1), at(2026, 3, 1));
    assert_eq!((feb.lines, feb.recorded, feb.approved), (2, 2, 2));
    assert_eq!(
        f.status_of("cm_p1_0_percentage"),
        CommissionStatus::Approved
    );
    assert_eq!(f.status_of("cm_p3_0_percentage"), CommissionStatus::Pending);
}

#[test]
fn batches_pay_above_the_minimum_net_advances_and_withhold_negative_balances() {
    let f = fixture();
    f.pay("p1", 100_000, at(2026, 1, 10), PaymentKind::Payment, None);
    f.clock.set(at(2026, 2, 1));
    f.process(at(2026, 1, 1), at(2026, 2, 1));
    // Still in the hold: nothing to pay.
    let early = run(f.ally.create_payout_batch(None)).unwrap_or_else(|e| panic!("{e}"));
    assert!(early.payouts.is_empty());
    assert_eq!(early.status, BatchStatus::Paid);

    f.clock.set(at(2026, 2, 10));
    let batch = run(f
        .ally
        .create_payout_batch(Some("February payout".to_owned())))
    .unwrap_or_else(|e| panic!("{e}"));
    let paid: Vec<(&str, i64)> = batch
        .payouts
        .iter()
        .map(|p| (p.reseller_id.as_str(), p.amount))
        .collect();
    let mut want = vec![(f.sub.as_str(), 15_000), (f.top.as_str(), 5_000)];
    want.sort();
    assert_eq!(paid, want);
    assert_eq!(batch.total().ok(), Some(20_000));
    assert_eq!(f.status_of("cm_p1_0_percentage"), CommissionStatus::Paid);
    let by_batch = run(f.ally.commission_lines(&LineFilter {
        batch: Some(batch.id.clone()),
        ..LineFilter::default()
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(by_batch.len(), 2);
    // Nothing is paid twice.
    let next = run(f.ally.create_payout_batch(None)).unwrap_or_else(|e| panic!("{e}"));
    assert!(next.payouts.is_empty() && next.withheld.is_empty());

    // 100.00 paid by hand, then a refund of half of p1 claws back 75.00 from sub.
    run(f
        .ally
        .pay_commission(&f.sub, 10_000, Some("Advance".to_owned())))
    .unwrap_or_else(|e| panic!("{e}"));
    f.pay(
        "r1",
        50_000,
        at(2026, 2, 12),
        PaymentKind::Refund,
        Some("p1"),
    );
    f.clock.set(at(2026, 3, 1));
    f.process(at(2026, 2, 1), at(2026, 3, 1));
    let sub = run(f.ally.commission_balance(&f.sub)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (sub.approved, sub.advances, sub.payable),
        (-7_500, 10_000, -17_500)
    );
    assert_eq!(sub.withheld, Some(HoldReason::NegativeBalance));
    let blocked = run(f.ally.create_payout_batch(None)).unwrap_or_else(|e| panic!("{e}"));
    assert!(blocked.payouts.is_empty());
    let reasons: Vec<(&str, i64, HoldReason)> = blocked
        .withheld
        .iter()
        .map(|w| (w.reseller_id.as_str(), w.payable, w.reason))
        .collect();
    let mut want = vec![
        (f.sub.as_str(), -17_500, HoldReason::NegativeBalance),
        (f.top.as_str(), -2_500, HoldReason::NegativeBalance),
    ];
    want.sort_by_key(|w| w.0);
    assert_eq!(reasons, want);

    // 2000.00 more in March: sub earns 300.00, nets 125.00; top earns 100.00, nets 75.00.
    f.pay("p4", 200_000, at(2026, 3, 2), PaymentKind::Payment, None);
    f.clock.set(at(2026, 4, 10));
    f.process(at(2026, 3, 1), at(2026, 4, 1));
    let april = run(f.ally.create_payout_batch(None)).unwrap_or_else(|e| panic!("{e}"));
    let paid: Vec<(&str, i64, i64, i64, i64)> = april
        .payouts
        .iter()
        .map(|p| {
            (
                p.reseller_id.as_str(),
                p.earned,
                p.clawbacks,
                p.advances,
                p.amount,
            )
        })
        .collect();
    let mut want = vec![
        (f.sub.as_str(), 30_000, -7_500, 10_000, 12_500),
        (f.top.as_str(), 10_000, -2_500, 0, 7_500),
    ];
    want.sort();
    assert_eq!(paid, want);
    let sub = run(f.ally.commission_balance(&f.sub)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((sub.approved, sub.advances, sub.payable), (0, 0, 0));
    // Paid in all: 150.00 (February) + 100.00 (by hand) + 125.00 (April).
    assert_eq!(sub.paid, 37_500);
}

#[test]
fn below_the_minimum_waits_for_the_next_batch() {
    let f = fixture();
    f.pay("p1", 20_000, at(2026, 1, 10), PaymentKind::Payment, None);
    f.clock.set(at(2026, 2, 15));
    f.process(at(2026, 1, 1), at(2026, 2, 1));
    let batch = run(f.ally.create_payout_batch(None)).unwrap_or_else(|e| panic!("{e}"));
    assert!(batch.payouts.is_empty());
    assert!(batch
        .withheld
        .iter()
        .all(|w| w.reason == HoldReason::BelowMinimum));
    assert_eq!(
        f.status_of("cm_p1_0_percentage"),
        CommissionStatus::Approved
    );
}

#[test]
fn an_interrupted_batch_is_finished_by_the_next_and_pays_once() {
    let f = fixture();
    f.pay("p1", 100_000, at(2026, 1, 10), PaymentKind::Payment, None);
    f.pay("p2", 100_000, at(2026, 1, 11), PaymentKind::Payment, None);
    f.clock.set(at(2026, 3, 1));
    f.process(at(2026, 1, 1), at(2026, 2, 1));
    // State, batch, one line claimed: then the storage fails.
    f.storage.writes_left.set(Some(3));
    let failed = run(f.ally.create_payout_batch(None));
    assert_eq!(
        failed.err().map(|e| e.code().as_str()),
        Some("STORAGE_FAILED")
    );
    f.storage.writes_left.set(None);
    let finished = run(f.ally.create_payout_batch(None)).unwrap_or_else(|e| panic!("{e}"));
    // The interrupted batch was finished first; this one found nothing left.
    assert!(finished.payouts.is_empty());
    let batches = run(f.ally.payout_batches()).unwrap_or_else(|e| panic!("{e}"));
    let mut totals: Vec<(BatchStatus, i64)> = batches
        .iter()
        .map(|b| (b.status, b.total().unwrap_or(-1)))
        .collect();
    totals.sort_by_key(|t| t.1);
    assert_eq!(
        totals,
        vec![(BatchStatus::Paid, 0), (BatchStatus::Paid, 40_000)]
    );
    let sub = run(f.ally.commission_payments(&f.sub)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        sub.iter().map(|p| p.amount).collect::<Vec<_>>(),
        vec![30_000]
    );
}

#[test]
fn reconciliation_lists_missing_unexpected_and_changed_lines() {
    let f = fixture();
    f.pay("p1", 100_000, at(2026, 1, 10), PaymentKind::Payment, None);
    f.pay("p2", 30_000, at(2026, 1, 12), PaymentKind::Payment, None);
    f.clock.set(at(2026, 2, 1));
    f.process(at(2026, 1, 1), at(2026, 2, 1));
    let clean =
        run(f.ally.reconcile(at(2026, 1, 1), at(2026, 2, 1))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((clean.matched, clean.discrepancies.len()), (4, 0));
    assert_eq!(clean.expected_total, clean.recorded_total);

    // A payment recorded after the run, and a line altered in storage.
    f.pay("p3", 10_000, at(2026, 1, 20), PaymentKind::Payment, None);
    let stored = run(f.storage.inner.get("commissions", "cm_p1_0_percentage"))
        .unwrap_or_else(|e| panic!("{}", e.reason))
        .unwrap_or_else(|| panic!("line missing"));
    let altered = StoredRecord {
        version: stored.version + 1,
        data: stored
            .data
            .replace("\"amountMinor\":15000", "\"amountMinor\":16000"),
        ..stored.clone()
    };
    run(f
        .storage
        .inner
        .put("commissions", &altered, stored.version, &[]))
    .unwrap_or_else(|e| panic!("{}", e.reason));
    let report =
        run(f.ally.reconcile(at(2026, 1, 1), at(2026, 2, 1))).unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<(&str, DiscrepancyKind, Vec<&str>)> = report
        .discrepancies
        .iter()
        .map(|d| (d.line_id.as_str(), d.kind, d.fields.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (
                "cm_p1_0_percentage",
                DiscrepancyKind::Changed,
                vec!["amount"]
            ),
            ("cm_p3_0_percentage", DiscrepancyKind::Missing, vec![]),
            ("cm_p3_1_override", DiscrepancyKind::Missing, vec![]),
        ]
    );
    assert_eq!(
        report.recorded_total - report.expected_total,
        1_000 - 1_500 - 500
    );

    // The reseller's rate changed: every line of its payments now differs, and the next run
    // of the period adjusts each (the altered one included) and records what is missing.
    run(f.ally.set_commission_rate(&f.sub, Some(rate(2000)))).unwrap_or_else(|e| panic!("{e}"));
    let report =
        run(f.ally.reconcile(at(2026, 1, 1), at(2026, 2, 1))).unwrap_or_else(|e| panic!("{e}"));
    let changed: Vec<&str> = report
        .discrepancies
        .iter()
        .filter(|d| d.kind == DiscrepancyKind::Changed)
        .map(|d| d.line_id.as_str())
        .collect();
    assert_eq!(changed, vec!["cm_p1_0_percentage", "cm_p2_0_percentage"]);
    let rerun = f.process(at(2026, 1, 1), at(2026, 2, 1));
    assert_eq!((rerun.recorded, rerun.adjusted), (2, 2));
    let adjustment = run(f.ally.find_line("cm_p1_0_percentage_adj1"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no adjustment"))
        .value;
    assert_eq!(
        (
            adjustment.adjusts.as_deref(),
            adjustment.reason,
            adjustment.amount,
            adjustment.base,
            adjustment.rate
        ),
        (
            Some("cm_p1_0_percentage"),
            Some(AdjustmentReason::Rate),
            20_000 - 16_000,
            0,
            rate(2000)
        )
    );
    let report =
        run(f.ally.reconcile(at(2026, 1, 1), at(2026, 2, 1))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.discrepancies.len(), 0, "{:?}", report.discrepancies);
    assert_eq!(report.recorded_total, report.expected_total);
}

/// The cents each reseller has recorded for payments in `[start, end)`, adjustments included.
fn recorded_by_reseller(
    f: &Fixture,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> std::collections::BTreeMap<String, i64> {
    let mut out = std::collections::BTreeMap::new();
    for l in run(f.ally.commission_lines(&LineFilter::default())).unwrap_or_else(|e| panic!("{e}"))
    {
        if l.payment_at >= start && l.payment_at < end {
            *out.entry(l.reseller_id).or_default() += l.amount;
        }
    }
    out
}

#[test]
fn a_late_payment_in_a_capped_period_adjusts_the_recorded_lines_to_the_cap() {
    // The issue's case: 50 %, a cap of 1 000.00, two payments of 1 000.00, a late third.
    let f = fixture_with(Plan {
        cap_per_period: Some(100_000),
        overrides: Vec::new(),
        ..Plan::reference()
    });
    run(f.ally.set_commission_rate(&f.sub, Some(rate(5000)))).unwrap_or_else(|e| panic!("{e}"));
    f.pay("p1", 100_000, at(2026, 1, 10), PaymentKind::Payment, None);
    f.pay("p2", 100_000, at(2026, 1, 11), PaymentKind::Payment, None);
    f.clock.set(at(2026, 2, 1));
    let first = f.process(at(2026, 1, 1), at(2026, 2, 1));
    assert_eq!(
        (first.recorded, first.adjusted, first.total),
        (2, 0, 100_000)
    );

    f.pay("p3", 100_000, at(2026, 1, 12), PaymentKind::Payment, None);
    let again = f.process(at(2026, 1, 1), at(2026, 2, 1));
    assert_eq!(
        (again.recorded, again.adjusted, again.total),
        (1, 2, 100_000)
    );
    let sums = recorded_by_reseller(&f, at(2026, 1, 1), at(2026, 2, 1));
    assert_eq!(sums.get(&f.sub), Some(&100_000), "{sums:?}");
    let lines =
        run(f.ally.commission_lines(&LineFilter::default())).unwrap_or_else(|e| panic!("{e}"));
    let mut shown: Vec<(&str, i64, Option<&str>)> = lines
        .iter()
        .map(|l| {
            (
                l.id.as_str(),
                l.amount,
                l.reason.map(AdjustmentReason::as_str),
            )
        })
        .collect();
    shown.sort_unstable();
    // 1 000.00 over three equal payments: the odd cent to the last by the largest remainder.
    assert_eq!(
        shown,
        vec![
            ("cm_p1_0_percentage", 50_000, None),
            ("cm_p1_0_percentage_adj1", -16_667, Some("allocation")),
            ("cm_p2_0_percentage", 50_000, None),
            ("cm_p2_0_percentage_adj1", -16_667, Some("allocation")),
            ("cm_p3_0_percentage", 33_334, None),
        ]
    );
    let report =
        run(f.ally.reconcile(at(2026, 1, 1), at(2026, 2, 1))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.discrepancies.len(), 0, "{:?}", report.discrepancies);

    // Run again: nothing more to record.
    let third = f.process(at(2026, 1, 1), at(2026, 2, 1));
    assert_eq!((third.recorded, third.adjusted), (0, 0));
    assert_eq!(f.storage.inner.count("commissions"), 5);
}

#[test]
fn a_late_payment_in_graduated_bands_is_paid_at_the_band_it_reaches() {
    use crate::domain::commission::{BandMode, BaseRule, RevenueBand};
    // 10 % up to 1 000.00, then 20 %: 800.00, then a late 700.00. The period's commission is
    // 100.00 + 100.00.
    let f = fixture_with(Plan {
        base: BaseRule::Revenue {
            mode: BandMode::Graduated,
            bands: vec![
                RevenueBand {
                    up_to: Some(100_000),
                    rate: rate(1000),
                    flat_fee: 0,
                },
                RevenueBand {
                    up_to: None,
                    rate: rate(2000),
                    flat_fee: 0,
                },
            ],
        },
        overrides: Vec::new(),
        ..Plan::reference()
    });
    f.pay("p1", 80_000, at(2026, 1, 10), PaymentKind::Payment, None);
    f.clock.set(at(2026, 2, 1));
    assert_eq!(f.process(at(2026, 1, 1), at(2026, 2, 1)).total, 8_000);
    f.pay("p2", 70_000, at(2026, 1, 20), PaymentKind::Payment, None);
    let again = f.process(at(2026, 1, 1), at(2026, 2, 1));
    assert_eq!((again.total, again.recorded), (20_000, 1));
    let sums = recorded_by_reseller(&f, at(2026, 1, 1), at(2026, 2, 1));
    assert_eq!(sums.get(&f.sub), Some(&20_000), "{sums:?}");
    let report =
        run(f.ally.reconcile(at(2026, 1, 1), at(2026, 2, 1))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.discrepancies.len(), 0, "{:?}", report.discrepancies);
}

#[test]
fn a_paid_line_is_adjusted_by_a_new_line_the_next_batch_nets_out() {
    let f = fixture_with(Plan {
        cap_per_period: Some(10_000),
        overrides: Vec::new(),
        ..Plan::reference()
    });
    f.pay("p1", 100_000, at(2026, 1, 10), PaymentKind::Payment, None);
    f.clock.set(at(2026, 2, 1));
    f.process(at(2026, 1, 1), at(2026, 2, 1));
    let batch = run(f.ally.create_payout_batch(None)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(batch.total().ok(), Some(10_000));
    assert_eq!(f.status_of("cm_p1_0_percentage"), CommissionStatus::Paid);

    // The sub-reseller moves under no one and the top one loses nothing (no override);
    // the rate drops: the paid line stays paid, and its adjustment is approved at once.
    run(f.ally.set_commission_rate(&f.sub, Some(rate(500)))).unwrap_or_else(|e| panic!("{e}"));
    let again = f.process(at(2026, 1, 1), at(2026, 2, 1));
    assert_eq!(again.adjusted, 1);
    assert_eq!(f.status_of("cm_p1_0_percentage"), CommissionStatus::Paid);
    assert_eq!(
        f.status_of("cm_p1_0_percentage_adj1"),
        CommissionStatus::Approved
    );
    let balance = run(f.ally.commission_balance(&f.sub)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((balance.approved, balance.payable), (-5_000, -5_000));
    assert_eq!(balance.withheld, Some(HoldReason::NegativeBalance));
}

#[test]
fn a_line_the_period_no_longer_gives_is_adjusted_to_nothing() {
    let f = fixture();
    f.pay("p1", 100_000, at(2026, 1, 10), PaymentKind::Payment, None);
    f.clock.set(at(2026, 2, 1));
    assert_eq!(f.process(at(2026, 1, 1), at(2026, 2, 1)).recorded, 2);
    // The sub-reseller leaves its parent: the override is no longer earned.
    run(f.ally.set_parent(&f.sub, None)).unwrap_or_else(|e| panic!("{e}"));
    let again = f.process(at(2026, 1, 1), at(2026, 2, 1));
    assert_eq!(
        (again.recorded, again.adjusted, again.total),
        (0, 1, 15_000)
    );
    let adjustment = run(f.ally.find_line("cm_p1_1_override_adj1"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no adjustment"))
        .value;
    assert_eq!(
        (
            adjustment.reseller_id.as_str(),
            adjustment.amount,
            adjustment.reason
        ),
        (f.top.as_str(), -5_000, Some(AdjustmentReason::Removed))
    );
    let sums = recorded_by_reseller(&f, at(2026, 1, 1), at(2026, 2, 1));
    assert_eq!(sums.get(&f.top), Some(&0));
    let report =
        run(f.ally.reconcile(at(2026, 1, 1), at(2026, 2, 1))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.discrepancies.len(), 0, "{:?}", report.discrepancies);
    assert_eq!(f.process(at(2026, 1, 1), at(2026, 2, 1)).adjusted, 0);
}

#[test]
fn bad_arguments_are_refused_before_anything_is_written() {
    let f = fixture();
    let before = f.storage.inner.count("commission_payments");
    assert_eq!(
        err(run(f.ally.pay_commission(&f.sub, 0, None))),
        Some("INVALID_INPUT")
    );
    assert_eq!(
        err(run(f.ally.pay_commission(
            &f.sub,
            1,
            Some("x".repeat(1_001))
        ))),
        Some("INVALID_INPUT")
    );
    assert_eq!(
        err(run(f.ally.pay_commission("rs_none", 1, None))),
        Some("NOT_FOUND")
    );
    assert_eq!(
        err(run(f.ally.process_commissions(
            at(2026, 2, 1),
            at(2026, 1, 1),
            &mut |_| Ok(())
        ))),
        Some("INVALID_INPUT")
    );
    assert_eq!(f.storage.inner.count("commission_payments"), before);
    // A progress callback that fails stops the run; running again finishes it.
    f.pay("p1", 100_000, at(2026, 1, 10), PaymentKind::Payment, None);
    let stopped = run(f
        .ally
        .process_commissions(at(2026, 1, 1), at(2026, 2, 1), &mut |p| {
            if p.phase == "record" {
                Err(crate::domain::Error::invalid("onProgress", "stop"))
            } else {
                Ok(())
            }
        }));
    assert_eq!(err(stopped), Some("INVALID_INPUT"));
    assert_eq!(f.storage.inner.count("commissions"), 0);
    let done = f.process(at(2026, 1, 1), at(2026, 2, 1));
    assert_eq!(done.recorded, 2);
}

/// Random months of payments, refunds, runs, advances and batches, some batches cut short by a
/// failing storage. After every step, from the records: each reseller's paid lines less the
/// advances its batches settled equal what its batches paid; no line is in two batches; every
/// cent recorded is pending, approved, paid or reversed in a cancelling pair; and a
/// reconciliation of everything run so far finds nothing.
fn payout_simulation(seed: u64) -> Result<[u32; 4], String> {
    use crate::domain::ids::IdSource;
    use std::collections::HashMap;

    // Even seeds cap each reseller's direct commission per month, so that a late payment moves
    // the allocation of lines already recorded.
    let f = fixture_with(Plan {
        hold_days: 30,
        minimum_payout: 5_000,
        cap_per_period: (seed % 2 == 0).then_some(40_000),
        ..Plan::reference()
    });
    let mut dice = IdSource::new(seed);
    let mut paid_ids: Vec<String> = Vec::new();
    let mut month = 1u32;
    // Batches that paid someone, batches cut short, lines reversed, adjustments: the simulation
    // must reach each.
    let mut seen = [0u32; 4];
    for step in 0..80 {
        let fail = |what: String| format!("seed {seed}, step {step}: {what}");
        let roll = dice.next_u64() % 12;
        let day = 1 + (dice.next_u64() % 27) as u32;
        let when = at(2026, month, day);
        match roll {
            0..=3 => {
                let id = format!("p{step}");
                f.pay(
                    &id,
                    1 + (dice.next_u64() % 500_000) as i64,
                    when,
                    PaymentKind::Payment,
                    None,
                );
                paid_ids.push(id);
            }
            4 => {
                if let Some(original) =
                    paid_ids.get((dice.next_u64() as usize) % paid_ids.len().max(1))
                {
                    let full = dice.next_u64() % 2 == 0;
                    let amount = run(f.storage.inner.get("payments", original))
                        .ok()
                        .flatten()
                        .and_then(|r| {
                            serde_json::from_str::<serde_json::Value>(&r.data)
                                .ok()?
                                .get("amountMinor")?
                                .as_i64()
                        })
                        .unwrap_or(1);
                    let part = if full { amount } else { 1 + amount / 3 };
                    let id = format!("r{step}");
                    // A second refund of the same payment may exceed it: that is refused.
                    let _ = run(f.ally.record_payment(PaymentInput {
                        id: Some(id),
                        client_id: f.client.clone(),
                        amount: part,
                        at: when,
                        status: PaymentStatus::Completed,
                        kind: PaymentKind::Refund,
                        reverses: Some(original.clone()),
                        description: None,
                    }));
                }
            }
            5 | 6 => {
                // The month closes: run it, then move a month on.
                f.clock.set(at(2026, month + 1, 1));
                run(f.ally.process_commissions(
                    at(2026, month, 1),
                    at(2026, month + 1, 1),
                    &mut |_| Ok(()),
                ))
                .map_err(|e| fail(format!("process: {e}")))?;
                month = (month + 1).min(11);
            }
            10 | 11 if month > 1 => {
                // A payment arrives late, dated in a month already run; that month runs again.
                let late = 1 + (dice.next_u64() % u64::from(month - 1)) as u32;
                let id = format!("late{step}");
                f.pay(
                    &id,
                    1 + (dice.next_u64() % 300_000) as i64,
                    at(2026, late, day),
                    PaymentKind::Payment,
                    None,
                );
                paid_ids.push(id);
                let summary = run(f.ally.process_commissions(
                    at(2026, late, 1),
                    at(2026, late + 1, 1),
                    &mut |_| Ok(()),
                ))
                .map_err(|e| fail(format!("process again: {e}")))?;
                seen[3] += summary.adjusted;
            }
            7 => {
                let who = if dice.next_u64() % 2 == 0 {
                    &f.sub
                } else {
                    &f.top
                };
                run(f
                    .ally
                    .pay_commission(who, 1 + (dice.next_u64() % 10_000) as i64, None))
                .map_err(|e| fail(format!("payCommission: {e}")))?;
            }
            _ => {
                let cut = dice.next_u64() % 3 == 0;
                if cut {
                    f.storage
                        .writes_left
                        .set(Some((dice.next_u64() % 6) as u32));
                }
                let outcome = run(f.ally.create_payout_batch(None));
                f.storage.writes_left.set(None);
                match outcome {
                    Ok(batch) => seen[0] += u32::from(!batch.payouts.is_empty()),
                    Err(e) if cut && e.code().as_str() == "STORAGE_FAILED" => seen[1] += 1,
                    Err(e) => return Err(fail(format!("batch: {e}"))),
                }
            }
        }
        // The invariants, from the records.
        let lines = run(f.ally.commission_lines(&LineFilter::default()))
            .map_err(|e| fail(e.to_string()))?;
        let batches = run(f.ally.payout_batches()).map_err(|e| fail(e.to_string()))?;
        for reseller in [&f.sub, &f.top] {
            let payments =
                run(f.ally.commission_payments(reseller)).map_err(|e| fail(e.to_string()))?;
            for batch in batches.iter().filter(|b| b.status == BatchStatus::Paid) {
                let lines_paid: i64 = lines
                    .iter()
                    .filter(|l| {
                        &l.reseller_id == reseller && l.batch_id.as_deref() == Some(&batch.id)
                    })
                    .map(|l| l.amount)
                    .sum();
                let settled: i64 = payments
                    .iter()
                    .filter(|p| p.settled_by.as_deref() == Some(&batch.id))
                    .map(|p| p.amount)
                    .sum();
                let paid: i64 = payments
                    .iter()
                    .filter(|p| p.batch_id.as_deref() == Some(&batch.id))
                    .map(|p| p.amount)
                    .sum();
                if lines_paid - settled != paid || paid < 0 {
                    return Err(fail(format!(
                        "batch {}: lines {lines_paid} − advances {settled} ≠ paid {paid}",
                        batch.id
                    )));
                }
            }
        }
        let mut reversed: HashMap<&str, i64> = HashMap::new();
        for l in &lines {
            if l.status == CommissionStatus::Reversed {
                let key = l.reverses.as_deref().unwrap_or(&l.id);
                *reversed.entry(key).or_default() += l.amount;
            }
            if (l.status == CommissionStatus::Paid) != l.batch_id.is_some() {
                return Err(fail(format!(
                    "line {} is {:?} with batch {:?}",
                    l.id, l.status, l.batch_id
                )));
            }
        }
        if let Some((key, sum)) = reversed.iter().find(|(_, sum)| **sum != 0) {
            return Err(fail(format!("reversed lines of {key} sum to {sum}, not 0")));
        }
        seen[2] = seen[2].max(u32::try_from(reversed.len()).unwrap_or(u32::MAX));
        if month == 1 {
            continue;
        }
        // After a run, every month run so far, as it was run (a cap is per period): the
        // recorded lines are the plan's, and their total is one pure run's.
        if !matches!(roll, 5 | 6 | 10 | 11) {
            continue;
        }
        for m in 1..month {
            let (start, end) = (at(2026, m, 1), at(2026, m + 1, 1));
            let pure = run(f.ally.reconcile(start, end)).map_err(|e| fail(e.to_string()))?;
            if !pure.discrepancies.is_empty() {
                return Err(fail(format!("reconcile {m}: {:?}", pure.discrepancies[0])));
            }
            let recorded: i64 = recorded_by_reseller(&f, start, end).values().sum();
            if recorded != pure.expected_total {
                return Err(fail(format!(
                    "month {m}: recorded {recorded}, the plan gives {}",
                    pure.expected_total
                )));
            }
        }
    }
    Ok(seen)
}

#[test]
fn payout_simulation_keeps_every_cent_accounted_for() {
    let seeds: Vec<u64> = match std::env::var("ALLY_SIM_SEED") {
        Ok(seed) => vec![seed.parse().unwrap_or(0)],
        Err(_) => (1..=12).collect(),
    };
    let mut seen = [0u32; 4];
    for seed in seeds {
        match payout_simulation(seed) {
            Ok(s) => (0..4).for_each(|i| seen[i] += s[i]),
            Err(failure) => {
                panic!("{failure}\nreplay: ALLY_SIM_SEED={seed} cargo test payout_simulation")
            }
        }
    }
    // Paying batches, interrupted batches, reversed pairs, adjustments.
    assert!(
        seen.iter().all(|&n| n > 0),
        "the simulation must reach every case: {seen:?}"
    );
}

#[test]
fn an_override_earned_by_another_parent_moves_to_it() {
    let f = fixture();
    f.pay("p1", 100_000, at(2026, 1, 10), PaymentKind::Payment, None);
    f.clock.set(at(2026, 2, 1));
    f.process(at(2026, 1, 1), at(2026, 2, 1));
    let other = run(f.ally.create_reseller(ResellerDraft {
        user_id: Some(UserId::Number(3)),
        company_name: Some("Other".to_owned()),
        ..ResellerDraft::default()
    }))
    .unwrap_or_else(|e| panic!("{e}"))
    .value
    .id;
    run(f.ally.set_parent(&f.sub, Some(&other))).unwrap_or_else(|e| panic!("{e}"));
    let again = f.process(at(2026, 1, 1), at(2026, 2, 1));
    assert_eq!((again.recorded, again.adjusted), (0, 2));
    let moved: Vec<(String, i64, Option<AdjustmentReason>)> =
        run(f.ally.commission_lines(&LineFilter {
            payment: Some("p1".to_owned()),
            ..LineFilter::default()
        }))
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .filter(|l| l.adjusts.is_some())
        .map(|l| (l.reseller_id, l.amount, l.reason))
        .collect();
    assert_eq!(
        moved,
        vec![
            (f.top.clone(), -5_000, Some(AdjustmentReason::Reseller)),
            (other.clone(), 5_000, Some(AdjustmentReason::Reseller)),
        ]
    );
    let sums = recorded_by_reseller(&f, at(2026, 1, 1), at(2026, 2, 1));
    assert_eq!(
        (sums.get(&f.top), sums.get(&other), sums.get(&f.sub)),
        (Some(&0), Some(&5_000), Some(&15_000))
    );
    let report =
        run(f.ally.reconcile(at(2026, 1, 1), at(2026, 2, 1))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.discrepancies.len(), 0, "{:?}", report.discrepancies);
}

#[test]
fn one_run_at_a_time_holds_the_lease_and_a_dead_runs_lease_expires() {
    use super::test_support::{run_all, Op, Yielding};
    let f = fixture();
    f.pay("p1", 100_000, at(2026, 1, 10), PaymentKind::Payment, None);
    f.clock.set(at(2026, 2, 1));
    // A run that died holding the lease: the next one is refused until the lease expires.
    let dead = StoredRecord {
        id: "run".to_owned(),
        version: 1,
        data: format!(
            r#"{{"holder":"run_dead","until":{}}}"#,
            at(2026, 2, 1).timestamp_millis() + 60_000
        ),
        indexes: Vec::new(),
    };
    run(f.storage.inner.put("commission_state", &dead, 0, &[]))
        .unwrap_or_else(|e| panic!("{}", e.reason));
    let refused = run(f
        .ally
        .process_commissions(at(2026, 1, 1), at(2026, 2, 1), &mut |_| Ok(())));
    assert_eq!(err(refused), Some("CONFLICT"));
    assert_eq!(
        f.storage.inner.count("commissions"),
        0,
        "nothing was recorded"
    );
    f.clock.set(at(2026, 2, 2));
    assert_eq!(f.process(at(2026, 1, 1), at(2026, 2, 1)).recorded, 2);

    // Two runs at once over a storage whose every call suspends: one holds the lease, the
    // other is refused; the lease is let go after, so the next run goes ahead.
    let storage = Rc::new(Yielding::default());
    let clock = StepClock(Rc::new(Cell::new(at(2026, 2, 1).timestamp_millis())));
    let ally = Ally::new(Config::default(), Rc::clone(&storage), NoMailer, clock, 9);
    let done =
        |r: Option<crate::domain::Result<String>>| r.and_then(Result::ok).unwrap_or_default();
    let reseller = done(crate::engine::executor::block_on(
        async {
            ally.create_reseller(ResellerDraft {
                user_id: Some(UserId::Number(1)),
                company_name: Some("R".to_owned()),
                commission_rate: Some(rate(1000)),
                ..ResellerDraft::default()
            })
            .await
            .map(|r| r.value.id)
        },
        1_000,
    ));
    let client = done(crate::engine::executor::block_on(
        async {
            ally.create_client(ClientDraft {
                name: Some("C".to_owned()),
                email: None,
                reseller_id: Some(reseller.clone()),
                metadata: None,
            })
            .await
            .map(|c| c.value.id)
        },
        1_000,
    ));
    let paid = crate::engine::executor::block_on(
        ally.record_payment(PaymentInput {
            id: Some("q1".to_owned()),
            client_id: client,
            amount: 100_000,
            at: at(2026, 1, 10),
            status: PaymentStatus::Completed,
            kind: PaymentKind::Payment,
            reverses: None,
            description: None,
        }),
        1_000,
    );
    assert!(paid.is_some_and(|p| p.is_ok()));
    let (mut quiet_a, mut quiet_b) = (|_| Ok(()), |_| Ok(()));
    let runs: Vec<Op<'_, super::ProcessSummary>> = vec![
        Box::pin(ally.process_commissions(at(2026, 1, 1), at(2026, 2, 1), &mut quiet_a)),
        Box::pin(ally.process_commissions(at(2026, 1, 1), at(2026, 2, 1), &mut quiet_b)),
    ];
    let codes: Vec<Option<&str>> = run_all(runs).into_iter().map(err).collect();
    assert_eq!(codes, vec![None, Some("CONFLICT")]);
    let next = crate::engine::executor::block_on(
        ally.process_commissions(at(2026, 1, 1), at(2026, 2, 1), &mut |_| Ok(())),
        1_000,
    );
    assert_eq!(next.and_then(Result::ok).map(|s| s.recorded), Some(0));
}

#[test]
fn a_report_rounds_each_payment_as_the_run_records_it() {
    // 15 % under a parent earning 5 %: 1.03 is split once, 0.21 over both levels by largest
    // remainder (0.16 and 0.05); alone, the reseller's 15 % of 1.03 would round to 0.15.
    let f = fixture();
    f.pay("p1", 103, at(2026, 1, 10), PaymentKind::Payment, None);
    f.clock.set(at(2026, 2, 1));
    f.process(at(2026, 1, 1), at(2026, 2, 1));
    let recorded = recorded_by_reseller(&f, at(2026, 1, 1), at(2026, 2, 1));
    assert_eq!(recorded.get(&f.sub), Some(&16));
    let report = run(f
        .ally
        .child_accounts_revenue(&f.sub, at(2026, 1, 1), at(2026, 2, 1)))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.commission, 16);
    let top = run(f
        .ally
        .child_accounts_revenue(&f.top, at(2026, 1, 1), at(2026, 2, 1)))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((top.commission, recorded.get(&f.top)), (5, Some(&5)));
}

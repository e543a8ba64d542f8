//! Analytics over the in-memory storage: credit trends that follow writes made by another
//! instance, the tier snapshot, top resellers, credits outstanding, reseller stats and the
//! client figures.

use std::cell::Cell;
use std::rc::Rc;

use super::memory::MemoryStorage;
use super::ports::NoMailer;
use super::test_support::{at, run, StepClock};
use super::Ally;
use crate::domain::analytics::{day_of, Days, Interval};
use crate::domain::client::{ClientAction, ClientDraft};
use crate::domain::config::Config;
use crate::domain::money::Credits;
use crate::domain::reseller::{ResellerDraft, UserId};

type Engine = Ally<Rc<MemoryStorage>, NoMailer, StepClock>;

fn days(from: (i32, u32, u32), to: (i32, u32, u32)) -> Days {
    let day = |(y, m, d)| day_of(at(y, m, d).timestamp_millis());
    Days::new(day(from), day(to)).unwrap_or(Days::ALL)
}

fn c(n: u64) -> Credits {
    Credits::new(n).unwrap_or(Credits::ZERO)
}

fn code<T>(result: crate::domain::Result<T>) -> Option<&'static str> {
    result.err().map(|e| e.code().as_str())
}

struct Network {
    one: Engine,
    two: Engine,
    clock: StepClock,
    gold: String,
    standard: String,
}

/// Two instances over one storage; a gold and a standard reseller registered on 5 January 2026.
fn network() -> Network {
    let storage = Rc::new(MemoryStorage::new());
    let clock = StepClock(Rc::new(Cell::new(at(2026, 1, 5).timestamp_millis())));
    let one = Ally::new(
        Config::default(),
        Rc::clone(&storage),
        NoMailer,
        clock.clone(),
        1,
    );
    let two = Ally::new(Config::default(), storage, NoMailer, clock.clone(), 2);
    let make = |user: u64, name: &str, tier: &str| {
        let draft = ResellerDraft {
            user_id: Some(UserId::Number(user)),
            company_name: Some(name.to_owned()),
            tier: Some(tier.to_owned()),
            ..ResellerDraft::default()
        };
        run(one.create_reseller(draft))
            .unwrap_or_else(|e| panic!("{e}"))
            .value
            .id
    };
    let gold = make(1, "Gold Co", "gold");
    let standard = make(2, "Standard Co", "standard");
    Network {
        one,
        two,
        clock,
        gold,
        standard,
    }
}

impl Network {
    fn on(&self, y: i32, m: u32, d: u32) {
        self.clock.0.set(at(y, m, d).timestamp_millis());
    }

    fn client(&self, name: &str, reseller: Option<&str>) -> String {
        run(self.two.create_client(ClientDraft {
            name: Some(name.to_owned()),
            email: None,
            reseller_id: reseller.map(str::to_owned),
            metadata: None,
        }))
        .unwrap_or_else(|e| panic!("{e}"))
        .value
        .id
    }
}

#[test]
fn credit_trends_follow_every_instance_and_keep_empty_buckets() {
    let n = network();
    n.on(2026, 1, 10);
    run(n.one.add_credits(&n.gold, c(50_000), None, None)).unwrap_or_else(|e| panic!("{e}"));
    run(n.one.provision(&n.gold, c(2_000), None, None)).unwrap_or_else(|e| panic!("{e}"));
    let first_half = days((2026, 1, 1), (2026, 6, 30));
    let trends = run(n.one.credit_trends(None, first_half, Interval::Monthly))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(trends.len(), 6);
    assert_eq!(trends[0], ("2026-01".to_owned(), 50_000));
    // The other instance tops up in March; the first one's next answer includes it.
    n.on(2026, 3, 31);
    run(n.two.add_credits(&n.gold, c(7_000), None, None)).unwrap_or_else(|e| panic!("{e}"));
    run(n.two.add_credits(&n.standard, c(1_000), None, None)).unwrap_or_else(|e| panic!("{e}"));
    let trends = run(n.one.credit_trends(None, first_half, Interval::Monthly))
        .unwrap_or_else(|e| panic!("{e}"));
    let values: Vec<i128> = trends.iter().map(|(_, v)| *v).collect();
    assert_eq!(values, vec![50_000, 0, 8_000, 0, 0, 0]);
    let gold_only = run(n
        .one
        .credit_trends(Some(&n.gold), first_half, Interval::Monthly))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gold_only[2], ("2026-03".to_owned(), 7_000));
    let daily = run(n.one.credit_trends(
        Some(&n.gold),
        days((2026, 3, 30), (2026, 4, 1)),
        Interval::Daily,
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        daily,
        vec![
            ("2026-03-30".to_owned(), 0),
            ("2026-03-31".to_owned(), 7_000),
            ("2026-04-01".to_owned(), 0),
        ]
    );
    let yearly =
        run(n
            .one
            .credit_trends(None, days((2025, 1, 1), (2026, 12, 31)), Interval::Yearly))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        yearly,
        vec![("2025".to_owned(), 0), ("2026".to_owned(), 58_000)]
    );
    assert_eq!(
        code(run(n.one.credit_trends(
            Some("rs_missing"),
            first_half,
            Interval::Daily
        ))),
        Some("NOT_FOUND")
    );
    assert_eq!(
        code(run(n.one.credit_trends(
            None,
            days((1000, 1, 1), (2026, 1, 1)),
            Interval::Daily
        ))),
        Some("INVALID_INPUT")
    );
    // Outstanding credits: 50 000 − 2 000 + 7 000 + 1 000.
    assert_eq!(
        run(n.one.total_credits_distributed(None)).ok(),
        Some(56_000)
    );
    assert_eq!(
        run(n.one.total_credits_distributed(Some(&n.standard))).ok(),
        Some(1_000)
    );
}

#[test]
fn snapshot_top_resellers_and_stats() {
    let n = network();
    n.on(2026, 2, 1);
    let late = run(n.one.create_reseller(ResellerDraft {
        user_id: Some(UserId::Number(3)),
        company_name: Some("Late Platinum".to_owned()),
        tier: Some("platinum".to_owned()),
        ..ResellerDraft::default()
    }))
    .unwrap_or_else(|e| panic!("{e}"))
    .value
    .id;
    let all = run(n.one.tier_snapshot(None, Days::ALL)).unwrap_or_else(|e| panic!("{e}"));
    let count = |snapshot: &[(String, u64)], tier: &str| {
        snapshot.iter().find(|(t, _)| t == tier).map(|(_, c)| *c)
    };
    assert_eq!(count(&all, "gold"), Some(1));
    assert_eq!(count(&all, "standard"), Some(1));
    assert_eq!(count(&all, "platinum"), Some(1));
    let january = run(n.one.tier_snapshot(None, days((2026, 1, 1), (2026, 1, 31))))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count(&january, "platinum"), Some(0));

    n.on(2026, 2, 10);
    run(n.one.add_credits(&n.standard, c(9_000), None, None)).unwrap_or_else(|e| panic!("{e}"));
    run(n.one.add_credits(&late, c(9_000), None, None)).unwrap_or_else(|e| panic!("{e}"));
    run(n.one.add_credits(&n.gold, c(1_000), None, None)).unwrap_or_else(|e| panic!("{e}"));
    run(n.one.provision(&n.gold, c(400), None, None)).unwrap_or_else(|e| panic!("{e}"));
    n.client("A", Some(&n.standard));
    n.client("B", Some(&n.standard));
    n.client("C", Some(&n.gold));
    n.client("Direct", None);
    let february = days((2026, 2, 1), (2026, 2, 28));
    let top = run(n.one.top_resellers(None, 2, february)).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<(&str, i128, u64)> = top
        .iter()
        .map(|r| {
            (
                r.reseller.company_name.as_str(),
                r.credit_volume,
                r.acquisitions,
            )
        })
        .collect();
    // Equal volume: more acquisitions first.
    assert_eq!(
        names,
        vec![("Standard Co", 9_000, 2), ("Late Platinum", 9_000, 0)]
    );
    let march = run(n
        .one
        .top_resellers(None, 10, days((2026, 3, 1), (2026, 3, 31))))
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(march
        .iter()
        .all(|r| r.credit_volume == 0 && r.acquisitions == 0));
    assert_eq!(march.len(), 3);
    assert_eq!(
        code(run(n.one.top_resellers(None, 0, february))),
        Some("INVALID_INPUT")
    );

    let stats = run(n.one.reseller_stats(&n.gold)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stats.balance, c(600));
    assert_eq!(stats.volume.credited, 1_000);
    assert_eq!(stats.volume.debited, 400);
    assert_eq!(stats.volume.entries, 2);
    assert_eq!(stats.clients, [1, 0, 0, 0]);
    assert_eq!(stats.discount.units(), 1_500);
    assert_eq!(
        code(run(n.one.reseller_stats("rs_missing"))),
        Some("NOT_FOUND")
    );
}

#[test]
fn client_figures_by_status_segment_and_signup() {
    let n = network();
    n.on(2026, 1, 10);
    let a = n.client("A", Some(&n.gold));
    for name in ["B", "C"] {
        n.client(name, Some(&n.standard));
    }
    n.on(2026, 3, 2);
    n.client("D", None);
    run(n.one.transition_client(&a, ClientAction::Activate)).unwrap_or_else(|e| panic!("{e}"));
    let breakdown = run(n.one.client_status_breakdown(None, Days::ALL)).ok();
    assert_eq!(breakdown, Some([3, 1, 0, 0]));
    let gold = run(n.one.client_status_breakdown(Some(&n.gold), Days::ALL)).ok();
    assert_eq!(gold, Some([0, 1, 0, 0]));
    assert_eq!(
        run(n.one.client_growth(None, days((2026, 3, 1), (2026, 3, 31)))).ok(),
        Some(1)
    );
    let segments =
        run(n.one.client_segmentation(None, Days::ALL)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((segments.standalone, segments.resold), (1, 3));
    assert_eq!(
        (segments.standalone_share, segments.resold_share),
        (2_500, 7_500)
    );
    let trends =
        run(n
            .one
            .signup_trends(None, days((2026, 1, 1), (2026, 3, 31)), Interval::Monthly))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        trends,
        vec![
            ("2026-01".to_owned(), 3),
            ("2026-02".to_owned(), 0),
            ("2026-03".to_owned(), 1)
        ]
    );
    let none = run(n
        .one
        .client_segmentation(None, days((2027, 1, 1), (2027, 1, 1))))
    .ok();
    assert_eq!(
        none.map(|s| (s.standalone_share, s.resold_share)),
        Some((0, 0))
    );
}

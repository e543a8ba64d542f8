//! A commission run reads one reseller's part of the period at a time. These tests hold it to
//! the run over the whole stored network (as the engine computed it before, kept here as the
//! oracle): on seeded networks with hierarchies, suspended resellers, clients a host moved,
//! refunds across periods and every kind of plan, the recorded lines, the reconciliation and
//! the reports all equal the whole-network run. And its reads follow the period, not the
//! history.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use chrono::{DateTime, Utc};

use super::memory::MemoryStorage;
use super::ports::{NoMailer, Query, Storage, StorageError, StoredRecord, WriteOutcome};
use super::test_support::{at, run, StepClock};
use super::{clients, payments, resellers, Ally, LineFilter};
use crate::domain::client::ClientDraft;
use crate::domain::commission::{
    self, BandMode, BaseRule, CapAttribution, CustomerNode, Hierarchy, PaymentKind, PaymentStatus,
    Period, Plan, ResellerNode, RevenueBand, Step,
};
use crate::domain::config::Config;
use crate::domain::ids::IdSource;
use crate::domain::money::Rate;
use crate::domain::payment::PaymentRecord;
use crate::domain::payout::{self, CommissionLine, CommissionStatus};
use crate::domain::reseller::{ResellerDraft, ResellerStatus, StatusChange, UserId};
use crate::engine::PaymentInput;

fn rate(units: u16) -> Rate {
    Rate::from_units(units).unwrap_or(Rate::ZERO)
}

/// A storage that counts the records its reads hand back, per collection.
#[derive(Clone, Default)]
struct Counting {
    inner: Rc<MemoryStorage>,
    read: Rc<RefCell<HashMap<String, u64>>>,
    counting: Rc<Cell<bool>>,
    /// Every write: collection and id.
    written: Rc<RefCell<Vec<(String, String)>>>,
}

impl Counting {
    fn count(&self, collection: &str, n: usize) {
        if self.counting.get() {
            *self
                .read
                .borrow_mut()
                .entry(collection.to_owned())
                .or_default() += n as u64;
        }
    }

    fn read_of(&self, collection: &str) -> u64 {
        self.read.borrow().get(collection).copied().unwrap_or(0)
    }
}

impl Storage for Counting {
    async fn get(&self, c: &str, id: &str) -> Result<Option<StoredRecord>, StorageError> {
        let found = self.inner.get(c, id).await?;
        self.count(c, usize::from(found.is_some()));
        Ok(found)
    }
    async fn find(&self, c: &str, q: Query<'_>) -> Result<Vec<StoredRecord>, StorageError> {
        let found = self.inner.find(c, q).await?;
        self.count(c, found.len());
        Ok(found)
    }
    async fn put(
        &self,
        c: &str,
        record: &StoredRecord,
        expected: u64,
        unique: &[&str],
    ) -> Result<WriteOutcome, StorageError> {
        self.written
            .borrow_mut()
            .push((c.to_owned(), record.id.clone()));
        self.inner.put(c, record, expected, unique).await
    }
    async fn append(
        &self,
        stream: &str,
        expected: u64,
        entries: &[String],
        claims: &[super::ports::Claim<'_>],
        guard: Option<super::ports::Guard<'_>>,
        held: bool,
    ) -> Result<super::ports::AppendOutcome, StorageError> {
        self.inner
            .append(stream, expected, entries, claims, guard, held)
            .await
    }
    async fn read(&self, stream: &str, from: u64, limit: u32) -> Result<Vec<String>, StorageError> {
        self.inner.read(stream, from, limit).await
    }
    async fn find_claim(&self, stream: &str, key: &str) -> Result<Option<u64>, StorageError> {
        self.inner.find_claim(stream, key).await
    }
}

type Engine = Ally<Counting, NoMailer, StepClock>;

fn engine(plan: Plan) -> (Engine, Counting, StepClock) {
    let storage = Counting::default();
    let clock = StepClock(Rc::new(std::cell::Cell::new(
        at(2026, 1, 1).timestamp_millis(),
    )));
    let config = Config {
        commission_plan: plan,
        ..Config::default()
    };
    let ally = Ally::new(config, storage.clone(), NoMailer, clock.clone(), 11);
    (ally, storage, clock)
}

/// The oracle: the run over every stored reseller, client and payment, as one pure run (the
/// way the engine ran before it read a period by reseller). A reseller's customer count is its
/// clients of today.
fn whole_network_lines(
    ally: &Engine,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Vec<CommissionLine> {
    let all =
        |collection| run(ally.find_all(collection, None, Ok)).unwrap_or_else(|e| panic!("{e}"));
    let resellers: Vec<_> = all(resellers::COLLECTION)
        .into_iter()
        .map(|r| {
            resellers::from_record(r)
                .unwrap_or_else(|e| panic!("{e}"))
                .value
        })
        .collect();
    let clients: Vec<_> = all(clients::COLLECTION)
        .into_iter()
        .map(|r| {
            clients::from_record(r)
                .unwrap_or_else(|e| panic!("{e}"))
                .value
        })
        .collect();
    let records: Vec<PaymentRecord> = all(payments::COLLECTION)
        .iter()
        .map(|r| payments::from_record(r).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let index: HashMap<&str, u32> = resellers
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i as u32))
        .collect();
    let nodes = resellers
        .iter()
        .map(|r| ResellerNode {
            id: r.id.clone(),
            parent: r.parent_id.as_deref().and_then(|p| index.get(p).copied()),
            rate: r.commission_rate.unwrap_or(Rate::ZERO),
            approved: r.status == ResellerStatus::Active,
        })
        .collect();
    let since: HashMap<&str, i64> = clients
        .iter()
        .map(|c| (c.id.as_str(), c.created_at.timestamp_millis()))
        .collect();
    let mut customers = Vec::new();
    let mut client_ids = Vec::new();
    let mut node_of: HashMap<(String, u32), u32> = HashMap::new();
    let mut today = vec![0u32; resellers.len()];
    for c in &clients {
        if let Some(&r) = c.reseller_id.as_deref().and_then(|id| index.get(id)) {
            node_of.insert((c.id.clone(), r), customers.len() as u32);
            customers.push(CustomerNode {
                reseller: r,
                since_ms: c.created_at.timestamp_millis(),
            });
            client_ids.push(c.id.clone());
            today[r as usize] += 1;
        }
    }
    let kept: Vec<(&PaymentRecord, u32)> = records
        .iter()
        .filter_map(|p| Some((p, *index.get(p.reseller_id.as_deref()?)?)))
        .collect();
    let positions: HashMap<&str, u32> = kept
        .iter()
        .enumerate()
        .map(|(i, (p, _))| (p.id.as_str(), i as u32))
        .collect();
    let mut list = Vec::new();
    for (p, r) in &kept {
        let key = (p.client_id.clone(), *r);
        let customer = match node_of.get(&key) {
            Some(&c) => c,
            None => {
                let c = customers.len() as u32;
                node_of.insert(key, c);
                customers.push(CustomerNode {
                    reseller: *r,
                    since_ms: since
                        .get(p.client_id.as_str())
                        .copied()
                        .unwrap_or_else(|| p.at.timestamp_millis()),
                });
                client_ids.push(p.client_id.clone());
                c
            }
        };
        list.push(p.to_payment(customer, &positions));
    }
    let mut hierarchy = Hierarchy::new(nodes, customers, 5).unwrap_or_else(|e| panic!("{e}"));
    for (r, &n) in today.iter().enumerate() {
        hierarchy = hierarchy.with_child_count(r as u32, n);
    }
    let period = Period {
        start_ms: start.timestamp_millis(),
        end_ms: end.timestamp_millis(),
        as_of_ms: now.timestamp_millis(),
    };
    let result = commission::commission(&ally.config().commission_plan, &list, &hierarchy, period)
        .unwrap_or_else(|e| panic!("{e}"));
    result
        .lines
        .iter()
        .map(|l| {
            let (p, _) = kept[l.payment as usize];
            let payment = &list[l.payment as usize];
            let payable_at = DateTime::from_timestamp_millis(l.payable_at_ms).unwrap_or_default();
            CommissionLine {
                id: CommissionLine::line_id(&p.id, l.level, l.rule),
                payment_id: p.id.clone(),
                client_id: client_ids[payment.customer as usize].clone(),
                reseller_id: resellers[l.reseller as usize].id.clone(),
                level: l.level,
                rule: l.rule,
                rate: l.rate,
                base: l.base,
                amount: l.amount,
                payment_at: p.at,
                payable_at,
                status: if payable_at > now {
                    CommissionStatus::Pending
                } else {
                    CommissionStatus::Approved
                },
                reverses: match (payment.kind, payment.reverses) {
                    (PaymentKind::Payment, _) | (_, None) => None,
                    (_, Some(o)) => Some(CommissionLine::line_id(
                        &kept[o as usize].0.id,
                        l.level,
                        l.rule,
                    )),
                },
                batch_id: None,
                adjusts: None,
                reason: None,
                recorded_at: now,
                updated_at: now,
            }
        })
        .collect()
}

/// The plans the seeded networks run under: every rule, and rules together.
fn plan(choice: u64) -> Plan {
    let base = Plan {
        overrides: vec![rate(500), rate(200)],
        hold_days: 20,
        ..Plan::reference()
    };
    let bands = |mode| BaseRule::Revenue {
        mode,
        bands: vec![
            RevenueBand {
                up_to: Some(300_000),
                rate: rate(1000),
                flat_fee: 1_000,
            },
            RevenueBand {
                up_to: None,
                rate: rate(2000),
                flat_fee: 5_000,
            },
        ],
    };
    let child_rows = vec![(4, rate(1500)), (2, rate(1200)), (0, rate(1000))];
    match choice % 10 {
        0 => base,
        1 => Plan {
            cap_per_period: Some(30_000),
            ..base
        },
        2 => Plan {
            cap_per_period: Some(25_000),
            cap_attribution: CapAttribution::Chronological,
            flat_fee: 300,
            ..base
        },
        3 => Plan {
            base: bands(BandMode::Graduated),
            ..base
        },
        4 => Plan {
            base: bands(BandMode::Volume),
            cap_per_period: Some(40_000),
            ..base
        },
        5 => Plan {
            base: BaseRule::ChildCount(child_rows),
            ..base
        },
        6 => Plan {
            base: BaseRule::ChildCount(child_rows),
            child_count_mode: BandMode::Graduated,
            ..base
        },
        7 => Plan {
            step_down: vec![
                Step {
                    months: Some(1),
                    rate: rate(3000),
                },
                Step {
                    months: None,
                    rate: rate(1000),
                },
            ],
            ..base
        },
        8 => Plan {
            recurring_payments: Some(2),
            per_payment_minimum: Some(500),
            per_payment_maximum: Some(9_000),
            ..base
        },
        _ => Plan {
            recurring_months: Some(2),
            flat_fee: 150,
            ..base
        },
    }
}

/// Moves a client to another reseller, as a host may by writing its record.
fn move_client(ally: &Engine, storage: &Counting, client: &str, to: &str) {
    let found = run(ally.find_client(client))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no client {client}"));
    let mut moved = found.value;
    moved.reseller_id = Some(to.to_owned());
    let record = clients::to_record(&moved, found.version + 1).unwrap_or_else(|e| panic!("{e}"));
    let written = run(storage
        .inner
        .put(clients::COLLECTION, &record, found.version, &[]))
    .unwrap_or_else(|e| panic!("{}", e.reason));
    assert_eq!(written, WriteOutcome::Written);
}

/// A seeded network, paid into for three months with refunds across them, each month run
/// (some twice, some with a late payment in between): after every run, every month run so far
/// is recorded as the whole-network run gives it, reconciles with nothing found, and its
/// reports agree. Answers how many lines the seed recorded.
fn bounded_equals_whole(seed: u64) -> Result<usize, String> {
    let plan = plan(seed);
    let moves = !matches!(
        (&plan.base, plan.child_count_mode),
        (BaseRule::ChildCount(_), BandMode::Graduated)
    );
    let (ally, storage, clock) = engine(plan);
    let mut dice = IdSource::new(seed.wrapping_mul(7919) + 1);
    let mut roll = |n: u64| dice.next_u64() % n;
    let fail = |what: String| format!("seed {seed}: {what}");
    // Six resellers: a top, two below it, three further down, some suspended.
    let mut resellers: Vec<String> = Vec::new();
    for i in 0..6u64 {
        let draft = ResellerDraft {
            user_id: Some(UserId::Number(100 + i)),
            company_name: Some(format!("Reseller {i}")),
            commission_rate: Some(rate(500 + 250 * u16::try_from(roll(5)).unwrap_or(0))),
            ..ResellerDraft::default()
        };
        let id = run(ally.create_reseller(draft))
            .map_err(|e| fail(e.to_string()))?
            .value
            .id;
        if i > 0 {
            let parent = resellers[((i - 1) / 2) as usize].clone();
            run(ally.set_parent(&id, Some(&parent))).map_err(|e| fail(e.to_string()))?;
        }
        resellers.push(id);
    }
    let mut clients: Vec<String> = Vec::new();
    for i in 0..12u64 {
        clock.set(at(2026, 1, 1) + chrono::Duration::days(i64::try_from(roll(60)).unwrap_or(0)));
        let owner = &resellers[roll(resellers.len() as u64) as usize];
        let id = run(ally.create_client(ClientDraft {
            name: Some(format!("Client {i}")),
            email: None,
            reseller_id: Some(owner.clone()),
            metadata: None,
        }))
        .map_err(|e| fail(e.to_string()))?
        .value
        .id;
        clients.push(id);
    }
    for r in resellers.iter().filter(|_| roll(4) == 0) {
        run(ally.set_reseller_status(r, StatusChange::Suspend { reason: None }))
            .map_err(|e| fail(e.to_string()))?;
    }
    let mut paid: Vec<(String, i64)> = Vec::new();
    let mut step = 0u32;
    for month in 1..=3u32 {
        for _ in 0..(6 + roll(10)) {
            step += 1;
            let day = 1 + u32::try_from(roll(27)).unwrap_or(0);
            let client = &clients[roll(clients.len() as u64) as usize];
            let refund = roll(6) == 0 && !paid.is_empty();
            let (kind, reverses, amount) = if refund {
                let (original, amount) = paid[roll(paid.len() as u64) as usize].clone();
                let part = if roll(2) == 0 { amount } else { 1 + amount / 4 };
                (PaymentKind::Refund, Some(original), part)
            } else {
                (
                    PaymentKind::Payment,
                    None,
                    1_000 + i64::try_from(roll(200_000)).unwrap_or(0),
                )
            };
            let client = match &reverses {
                Some(original) => run(storage.inner.get(payments::COLLECTION, original))
                    .ok()
                    .flatten()
                    .and_then(|r| payments::from_record(&r).ok())
                    .map_or_else(|| client.clone(), |p| p.client_id),
                None => client.clone(),
            };
            let id = format!("pay{step:03}");
            let status = if roll(10) == 0 {
                PaymentStatus::Failed
            } else {
                PaymentStatus::Completed
            };
            let recorded = run(ally.record_payment(PaymentInput {
                id: Some(id.clone()),
                client_id: client,
                amount,
                at: at(2026, month, day),
                status,
                kind,
                reverses,
                description: None,
            }));
            // A second refund of a payment may reach past it: that one is refused.
            if recorded.is_ok() && kind == PaymentKind::Payment {
                paid.push((id, amount));
            }
            if moves && roll(8) == 0 {
                let client = &clients[roll(clients.len() as u64) as usize];
                let to = &resellers[roll(resellers.len() as u64) as usize];
                move_client(&ally, &storage, client, to);
            }
        }
        // The month closes and runs; now and then a late payment reopens an earlier one.
        clock.set(at(2026, month + 1, 1));
        let late = (month > 1 && roll(2) == 0)
            .then(|| 1 + u32::try_from(roll(u64::from(month - 1))).unwrap_or(0));
        for m in std::iter::once(month).chain(late) {
            if m != month {
                step += 1;
                let id = format!("late{step:03}");
                run(ally.record_payment(PaymentInput {
                    id: Some(id.clone()),
                    client_id: clients[roll(clients.len() as u64) as usize].clone(),
                    amount: 1_000 + i64::try_from(roll(100_000)).unwrap_or(0),
                    at: at(2026, m, 28),
                    status: PaymentStatus::Completed,
                    kind: PaymentKind::Payment,
                    reverses: None,
                    description: None,
                }))
                .map_err(|e| fail(e.to_string()))?;
            }
            run(ally.process_commissions(at(2026, m, 1), at(2026, m + 1, 1), &mut |_| Ok(())))
                .map_err(|e| fail(format!("process {m}: {e}")))?;
            // The month just run, against the network as it stands (a client moved later
            // moves what a later run gives, and that run adjusts).
            let now = at(2026, month + 1, 1);
            let (start, end) = (at(2026, m, 1), at(2026, m + 1, 1));
            // Month starts at noon on the 1st in these fixtures: the period is [start, end).
            let whole = whole_network_lines(&ally, start, end, now);
            let recorded: Vec<CommissionLine> = run(ally.commission_lines(&LineFilter::default()))
                .map_err(|e| fail(e.to_string()))?
                .into_iter()
                .filter(|l| l.payment_at >= start && l.payment_at < end)
                .collect();
            let against = payout::reconcile(&whole, &recorded).map_err(|e| fail(e.to_string()))?;
            // A run records lines as of its own time: a hold that passed since is no
            // discrepancy of amounts.
            let changed: Vec<_> = against
                .discrepancies
                .iter()
                .filter(|d| d.fields.iter().any(|f| *f != "payableAt"))
                .collect();
            if let Some(d) = changed.first() {
                return Err(fail(format!("month {m}: recorded {d:?}")));
            }
            if against.recorded_total != against.expected_total {
                return Err(fail(format!(
                    "month {m}: recorded {} against the whole run's {}",
                    against.recorded_total, against.expected_total
                )));
            }
            let bounded = run(ally.reconcile(start, end)).map_err(|e| fail(e.to_string()))?;
            if !bounded.discrepancies.is_empty() || bounded.expected_total != against.expected_total
            {
                return Err(fail(format!(
                    "month {m}: reconcile found {:?}, expected {} against {}",
                    bounded.discrepancies.first(),
                    bounded.expected_total,
                    against.expected_total
                )));
            }
            // The reports: each reseller's commission is what the whole run gives it.
            let mut by_reseller: BTreeMap<&str, i64> = BTreeMap::new();
            for l in &whole {
                *by_reseller.entry(l.reseller_id.as_str()).or_default() += l.amount;
            }
            for r in &resellers {
                let report = run(ally.child_accounts_revenue(r, start, end))
                    .map_err(|e| fail(e.to_string()))?;
                let want = by_reseller.get(r.as_str()).copied().unwrap_or(0);
                if report.commission != want {
                    return Err(fail(format!(
                        "month {m}: the report gives {r} {}, the whole run {want}",
                        report.commission
                    )));
                }
            }
        }
    }
    let lines =
        run(ally.commission_lines(&LineFilter::default())).map_err(|e| fail(e.to_string()))?;
    Ok(lines.len())
}

#[test]
fn a_run_by_reseller_records_what_the_whole_network_run_gives() {
    let seeds: Vec<u64> = match std::env::var("ALLY_SIM_SEED") {
        Ok(seed) => vec![seed.parse().unwrap_or(0)],
        Err(_) => (0..40).collect(),
    };
    let mut lines = 0;
    for seed in seeds {
        match bounded_equals_whole(seed) {
            Ok(n) => lines += n,
            Err(failure) => panic!(
                "{failure}\nreplay: ALLY_SIM_SEED={seed} cargo test a_run_by_reseller_records"
            ),
        }
    }
    assert!(lines > 400, "the seeds recorded only {lines} lines");
}

/// A top reseller over a sub-reseller with three clients, and `months` months of payments
/// from January (at most 11), each month run as it closes.
fn a_year_of_history(months: u32, per_month: u32) -> (Engine, Counting, StepClock, String, String) {
    let (ally, storage, clock) = engine(Plan {
        hold_days: 10,
        ..Plan::reference()
    });
    let make = |user: u64, units: u16| {
        run(ally.create_reseller(ResellerDraft {
            user_id: Some(UserId::Number(user)),
            company_name: Some(format!("Reseller {user}")),
            commission_rate: Some(rate(units)),
            ..ResellerDraft::default()
        }))
        .unwrap_or_else(|e| panic!("{e}"))
        .value
        .id
    };
    let top = make(1, 1000);
    let sub = make(2, 1500);
    run(ally.set_parent(&sub, Some(&top))).unwrap_or_else(|e| panic!("{e}"));
    let clients: Vec<String> = (0..3)
        .map(|i| {
            run(ally.create_client(ClientDraft {
                name: Some(format!("Client {i}")),
                email: None,
                reseller_id: Some(sub.clone()),
                metadata: None,
            }))
            .unwrap_or_else(|e| panic!("{e}"))
            .value
            .id
        })
        .collect();
    for month in 1..=months {
        for n in 0..per_month {
            run(ally.record_payment(PaymentInput {
                id: Some(format!("p{month:02}_{n:03}")),
                client_id: clients[n as usize % clients.len()].clone(),
                amount: 10_000 + i64::from(n),
                at: at(2026, month, 1 + n % 27),
                status: PaymentStatus::Completed,
                kind: PaymentKind::Payment,
                reverses: None,
                description: None,
            }))
            .unwrap_or_else(|e| panic!("{e}"));
        }
        clock.set(at(2026, month + 1, 1));
        run(ally.process_commissions(at(2026, month, 1), at(2026, month + 1, 1), &mut |_| Ok(())))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    (ally, storage, clock, top, sub)
}

#[test]
fn a_run_reads_its_period_not_the_history() {
    let per_month = 40;
    let (ally, storage, clock, top, _) = a_year_of_history(11, per_month);
    // A late payment in the last month, and that month run again.
    run(ally.record_payment(PaymentInput {
        id: Some("late".to_owned()),
        client_id: run(ally.find_line("cm_p11_000_0_percentage"))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no line"))
            .value
            .client_id,
        amount: 5_000,
        at: at(2026, 11, 20),
        status: PaymentStatus::Completed,
        kind: PaymentKind::Refund,
        reverses: Some("p11_000".to_owned()),
        description: None,
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    clock.set(at(2026, 12, 2));
    storage.counting.set(true);
    let summary = run(ally.process_commissions(at(2026, 11, 1), at(2026, 12, 1), &mut |_| Ok(())))
        .unwrap_or_else(|e| panic!("{e}"));
    storage.counting.set(false);
    // 40 payments and the refund, two lines each.
    assert_eq!(
        (summary.payments, summary.lines),
        (per_month + 1, 2 * (per_month + 1))
    );
    assert_eq!(summary.recorded, 2);
    // The period is read twice (its pages, then the reseller's part): 41 payments each, not
    // the 441 stored.
    let payments_read = storage.read_of(payments::COLLECTION);
    assert!(
        payments_read <= 2 * u64::from(per_month + 1) + 1,
        "{payments_read}"
    );
    // The period's lines (each payment's, once), and the lines still in their hold.
    let lines_read = storage.read_of("commissions");
    assert!(lines_read <= 4 * u64::from(per_month + 2), "{lines_read}");
    assert!(storage.read_of(clients::COLLECTION) <= 3);
    assert!(storage.read_of(resellers::COLLECTION) <= 2);

    // A report reads the period of the reseller and of those below it, not the history.
    storage.read.borrow_mut().clear();
    storage.counting.set(true);
    let report = run(ally.child_accounts_revenue(&top, at(2026, 11, 1), at(2026, 12, 1)))
        .unwrap_or_else(|e| panic!("{e}"));
    storage.counting.set(false);
    assert!(report.commission > 0);
    let payments_read = storage.read_of(payments::COLLECTION);
    assert!(payments_read <= u64::from(per_month + 2), "{payments_read}");
}

#[test]
fn payments_stored_before_the_month_indexes_are_indexed_once() {
    let (ally, storage, clock, top, sub) = a_year_of_history(2, 5);
    let february = |ally: &Engine| {
        run(ally.child_accounts_revenue(&sub, at(2026, 2, 1), at(2026, 3, 1)))
            .unwrap_or_else(|e| panic!("{e}"))
            .commission
    };
    let reported = february(&ally);
    assert!(reported > 0);
    // Strip the month indexes from every stored payment, as a store written before them holds
    // them, and forget that they were added.
    let stored =
        run(ally.find_all(payments::COLLECTION, None, Ok)).unwrap_or_else(|e| panic!("{e}"));
    for record in &stored {
        let old = StoredRecord {
            version: record.version + 1,
            indexes: record
                .indexes
                .iter()
                .filter(|(name, _)| name == "clientId" || name == "resellerId")
                .cloned()
                .collect(),
            ..record.clone()
        };
        let written = run(storage
            .inner
            .put(payments::COLLECTION, &old, record.version, &[]));
        assert_eq!(written.ok(), Some(WriteOutcome::Written));
    }
    let marker = run(storage.inner.get("commission_state", "indexes"))
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no index marker"));
    let cleared = StoredRecord {
        version: marker.version + 1,
        data: "{}".to_owned(),
        ..marker.clone()
    };
    let written = run(storage
        .inner
        .put("commission_state", &cleared, marker.version, &[]));
    assert_eq!(written.ok(), Some(WriteOutcome::Written));
    // A refund stored the way reversals were before they took their payment's reseller: under
    // the reseller its client had moved to.
    let original = run(storage.inner.get(payments::COLLECTION, "p02_001"))
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no payment"));
    let mut refund = payments::from_record(&original).unwrap_or_else(|e| panic!("{e}"));
    refund.id = "moved_refund".to_owned();
    refund.kind = PaymentKind::Refund;
    refund.reverses = Some("p02_001".to_owned());
    refund.reseller_id = Some(top.clone());
    let stored_refund = StoredRecord {
        id: refund.id.clone(),
        version: 1,
        data: refund.to_json(),
        indexes: vec![
            ("clientId".to_owned(), refund.client_id.clone()),
            ("resellerId".to_owned(), top.clone()),
        ],
    };
    let written = run(storage
        .inner
        .put(payments::COLLECTION, &stored_refund, 0, &[]));
    assert_eq!(written.ok(), Some(WriteOutcome::Written));
    let before = run(ally.commission_balance(&sub)).unwrap_or_else(|e| panic!("{e}"));
    // A report indexes them first: it finds February as it was, and the refund under the
    // reseller whose lines it claws back.
    let refunded = 10_001 * 15 / 100;
    assert_eq!(february(&ally), reported - refunded);

    // A run finds February's payments by month, the refund among them.
    clock.set(at(2026, 3, 2));
    let summary = run(ally.process_commissions(at(2026, 2, 1), at(2026, 3, 1), &mut |_| Ok(())))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (summary.payments, summary.recorded, summary.adjusted),
        (6, 2, 0)
    );
    let clawback = run(ally.find_line("cm_moved_refund_0_percentage"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no clawback"))
        .value;
    assert_eq!(
        (clawback.reseller_id.as_str(), clawback.amount),
        (sub.as_str(), -refunded)
    );
    let stored =
        run(ally.find_all(payments::COLLECTION, None, Ok)).unwrap_or_else(|e| panic!("{e}"));
    assert!(stored
        .iter()
        .all(|r| r.indexes.iter().any(|(name, _)| name == "month")));
    let after = run(ally.commission_balance(&sub)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        before.pending + before.approved - refunded,
        after.pending + after.approved
    );
    // Once: the next run rewrites nothing.
    let versions: Vec<u64> = stored.iter().map(|r| r.version).collect();
    run(ally.process_commissions(at(2026, 1, 1), at(2026, 2, 1), &mut |_| Ok(())))
        .unwrap_or_else(|e| panic!("{e}"));
    let again: Vec<u64> = run(ally.find_all(payments::COLLECTION, None, Ok))
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|r| r.version)
        .collect();
    assert_eq!(versions, again);
}

#[test]
fn a_refund_after_its_client_moved_claws_back_the_reseller_that_earned() {
    let (ally, storage, clock, top, sub) = a_year_of_history(1, 3);
    let line = run(ally.find_line("cm_p01_000_0_percentage"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no line"))
        .value;
    assert_eq!(
        (line.reseller_id.as_str(), line.amount),
        (sub.as_str(), 1_500)
    );
    // The host moves the client to the top reseller; then the January payment is refunded.
    move_client(&ally, &storage, &line.client_id, &top);
    let refund = run(ally.record_payment(PaymentInput {
        id: Some("r1".to_owned()),
        client_id: line.client_id.clone(),
        amount: 10_000,
        at: at(2026, 2, 3),
        status: PaymentStatus::Completed,
        kind: PaymentKind::Refund,
        reverses: Some("p01_000".to_owned()),
        description: None,
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(refund.reseller_id.as_deref(), Some(sub.as_str()));
    clock.set(at(2026, 3, 1));
    run(ally.process_commissions(at(2026, 2, 1), at(2026, 3, 1), &mut |_| Ok(())))
        .unwrap_or_else(|e| panic!("{e}"));
    let clawback = run(ally.find_line("cm_r1_0_percentage"))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no clawback"))
        .value;
    assert_eq!(
        (clawback.reseller_id.as_str(), clawback.amount),
        (sub.as_str(), -1_500)
    );
    assert_eq!(
        clawback.reverses.as_deref(),
        Some("cm_p01_000_0_percentage")
    );
}

/// A clock a minute later at every reading.
#[derive(Clone)]
struct Ticking(Rc<Cell<i64>>);

impl super::ports::Clock for Ticking {
    fn now(&self) -> Result<DateTime<Utc>, String> {
        let at = self.0.get() + 60_000;
        self.0.set(at);
        DateTime::from_timestamp_millis(at).ok_or_else(|| "out of range".to_owned())
    }
}

#[test]
fn a_long_part_of_one_reseller_keeps_the_run_lease() {
    let (ally, storage, _, _, _) = a_year_of_history(1, 300);
    // The same storage, under a clock that moves a minute at every reading: a run of 300
    // payments of one reseller reads it about once per batch of 32, so it lives past its
    // 10-minute lease unless it renews the lease as it goes.
    let ticking = Ticking(Rc::new(Cell::new(at(2026, 2, 2).timestamp_millis())));
    let later = Ally::new(
        ally.config().clone(),
        storage.clone(),
        NoMailer,
        ticking,
        12,
    );
    storage.written.borrow_mut().clear();
    run(later.process_commissions(at(2026, 1, 1), at(2026, 2, 1), &mut |_| Ok(())))
        .unwrap_or_else(|e| panic!("{e}"));
    let lease_writes = storage
        .written
        .borrow()
        .iter()
        .filter(|(c, id)| c == "commission_state" && id == "run")
        .count();
    // Taken, renewed at least twice (every 2.5 minutes of a run of more than 10), let go.
    assert!(lease_writes >= 4, "{lease_writes} writes of the lease");
}

#[test]
fn a_parent_that_is_not_stored_ends_the_chain_and_counts_no_level() {
    // Three levels allowed: top, middle, sub. The top's parent names no stored reseller.
    let (ally, storage, clock, top, sub) = a_year_of_history(1, 2);
    let middle = run(ally.create_reseller(ResellerDraft {
        user_id: Some(UserId::Number(9)),
        company_name: Some("Middle".to_owned()),
        commission_rate: Some(rate(1200)),
        ..ResellerDraft::default()
    }))
    .unwrap_or_else(|e| panic!("{e}"))
    .value
    .id;
    run(ally.set_parent(&middle, Some(&top))).unwrap_or_else(|e| panic!("{e}"));
    run(ally.set_parent(&sub, Some(&middle))).unwrap_or_else(|e| panic!("{e}"));
    let found = run(ally.find_reseller(&top))
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("no top"));
    let mut orphan = found.value;
    orphan.parent_id = Some("rs_gone".to_owned());
    let record = resellers::to_record(&orphan, found.version + 1).unwrap_or_else(|e| panic!("{e}"));
    let written = run(storage
        .inner
        .put(resellers::COLLECTION, &record, found.version, &[]));
    assert_eq!(written.ok(), Some(WriteOutcome::Written));
    // A fourth level written by the host under the sub-reseller: the run reads three levels
    // above it, as many as it allows, and the missing one above the top is no level.
    let deep = run(ally.create_reseller(ResellerDraft {
        user_id: Some(UserId::Number(10)),
        company_name: Some("Deep".to_owned()),
        commission_rate: Some(rate(1000)),
        ..ResellerDraft::default()
    }))
    .unwrap_or_else(|e| panic!("{e}"))
    .value;
    let mut under = deep.clone();
    under.parent_id = Some(sub.clone());
    let record = resellers::to_record(&under, 2).unwrap_or_else(|e| panic!("{e}"));
    let written = run(storage.inner.put(resellers::COLLECTION, &record, 1, &[]));
    assert_eq!(written.ok(), Some(WriteOutcome::Written));
    let client = run(ally.create_client(ClientDraft {
        name: Some("Deep client".to_owned()),
        email: None,
        reseller_id: Some(deep.id.clone()),
        metadata: None,
    }))
    .unwrap_or_else(|e| panic!("{e}"))
    .value
    .id;
    run(ally.record_payment(PaymentInput {
        id: Some("deep1".to_owned()),
        client_id: client,
        amount: 10_000,
        at: at(2026, 1, 15),
        status: PaymentStatus::Completed,
        kind: PaymentKind::Payment,
        reverses: None,
        description: None,
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    clock.set(at(2026, 2, 2));
    let summary = run(ally.process_commissions(at(2026, 1, 1), at(2026, 2, 1), &mut |_| Ok(())))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.payments, 3);
    let lines = run(ally.commission_lines(&LineFilter {
        payment: Some("deep1".to_owned()),
        ..LineFilter::default()
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lines.len(), 2, "its own line and its parent's override");
}

#[test]
fn a_clawback_before_its_line_in_id_order_still_reverses_both() {
    let (ally, _, clock, _, sub) = a_year_of_history(0, 0);
    let client = run(ally.clients_of_reseller(&sub)).unwrap_or_else(|e| panic!("{e}"))[0]
        .value
        .id
        .clone();
    let pay = |id: &str, amount: i64, kind, reverses: Option<&str>| {
        run(ally.record_payment(PaymentInput {
            id: Some(id.to_owned()),
            client_id: client.clone(),
            amount,
            at: at(2026, 1, 10),
            status: PaymentStatus::Completed,
            kind,
            reverses: reverses.map(str::to_owned),
            description: None,
        }))
        .unwrap_or_else(|e| panic!("{e}"));
    };
    // Forty payments, then a full refund of the last whose id comes first: they are recorded
    // in different batches, the refund's first.
    for n in 0..40 {
        pay(&format!("z{n:02}"), 10_000, PaymentKind::Payment, None);
    }
    pay("a_refund", 10_000, PaymentKind::Refund, Some("z39"));
    clock.set(at(2026, 2, 2));
    let summary = run(ally.process_commissions(at(2026, 1, 1), at(2026, 2, 1), &mut |_| Ok(())))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.reversed, 4);
    for id in ["cm_z39_0_percentage", "cm_a_refund_1_override"] {
        let line = run(ally.find_line(id))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no line {id}"));
        assert_eq!(line.value.status, CommissionStatus::Reversed, "{id}");
    }
}

//! Native side of the benchmark (`npm run bench` runs it next to the wasm package and the
//! decimal.js peer): the same workloads through the domain API, printed as one JSON line.

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use ally_engine::domain::analytics::{Days, Interval};
use ally_engine::domain::catalog::{Band, Catalog, PricingModel, ProductSpec};
use ally_engine::domain::config::Config;
use ally_engine::domain::health::{score_only, HealthOptions, Metrics};
use ally_engine::domain::ledger::{audit, audit_bytes, encode_ledger, Entry, EntryFlaws, Movement};
use ally_engine::domain::money::Credits;
use ally_engine::domain::quote::{price, LineRequest, PricingContext, QuoteRequest};
use ally_engine::domain::reseller::{ResellerDraft, UserId};
use ally_engine::domain::rounding::Rounding;
use ally_engine::domain::tier::{tier_cost, TierTable};
use ally_engine::domain::Error;
use ally_engine::engine::executor::block_on;
use ally_engine::engine::memory::MemoryStorage;
use ally_engine::engine::ports::{Clock, NoMailer, SystemClock};
use ally_engine::engine::Ally;

const TIERS: [&str; 3] = ["standard", "gold", "platinum"];

/// Median of `runs` timings of `body`, in seconds.
fn median(runs: usize, mut body: impl FnMut()) -> f64 {
    let mut seconds: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            body();
            start.elapsed().as_secs_f64()
        })
        .collect();
    seconds.sort_by(f64::total_cmp);
    seconds[runs / 2]
}

/// Median of `runs` timings of `body`, as operations per second.
fn rate(runs: usize, ops: usize, mut body: impl FnMut()) -> f64 {
    let mut seconds: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            body();
            start.elapsed().as_secs_f64()
        })
        .collect();
    seconds.sort_by(f64::total_cmp);
    ops as f64 / seconds[runs / 2]
}

fn credits(value: u64) -> Credits {
    Credits::new(value).unwrap_or_default()
}

/// The benchmark's 40 products, as `bench/run.mjs` builds them: by `i % 5`, per-unit, volume
/// with a flat fee on its middle band, graduated, graduated with a flat fee per band, and
/// packages of 10 (every other one with 5 free units).
fn catalog() -> Result<Catalog, Error> {
    let mut specs = Vec::new();
    for i in 0..40u64 {
        let fees: [u64; 3] = match i % 5 {
            1 => [0, 500, 0],
            3 => [1_000, 500, 250],
            _ => [0; 3],
        };
        let bands = [(Some(10), 100 + i), (Some(50), 90 + i), (None, 80 + i)]
            .into_iter()
            .zip(fees)
            .map(|((up_to, price), fee)| Band {
                up_to,
                unit_price: credits(price),
                flat_fee: credits(fee),
            })
            .collect();
        let mut spec = ProductSpec {
            sku: format!("sku-{i:03}"),
            name: format!("Product {i}"),
            base_price: None,
            pricing: PricingModel::PerUnit,
            bands: None,
            package_size: None,
            package_price: None,
            free_units: None,
            tiers: None,
        };
        match i % 5 {
            0 => spec.base_price = Some(credits(1000 + i * 7)),
            4 => {
                spec.pricing = PricingModel::Package;
                spec.package_size = Some(10);
                spec.package_price = Some(credits(900 + i));
                spec.free_units = (i % 2 == 0).then_some(5);
            }
            model => {
                spec.pricing = if model == 1 {
                    PricingModel::Volume
                } else {
                    PricingModel::Graduated
                };
                spec.bands = Some(bands);
            }
        }
        specs.push(spec);
    }
    Catalog::new(specs, "catalog")
}

fn main() -> Result<(), Error> {
    let table = TierTable::reference();

    // tierCost: one call per price, the tier looked up by name as the JS entry does.
    let n_single = 2_000_000usize;
    let tier_cost_rate = rate(5, n_single, || {
        let mut sum = 0u64;
        for i in 0..n_single {
            let name = TIERS[i % 3];
            if let Ok((_, tier)) = table.get(black_box(name)) {
                let base = Credits::from_f64(black_box((i % 100_003) as f64), "basePrice")
                    .unwrap_or_default();
                sum = sum.wrapping_add(tier_cost(base, tier.discount, Rounding::HalfUp).get());
            }
        }
        black_box(sum);
    });

    // tierCostBatch: a million prices, checked and discounted into a new buffer.
    let prices: Vec<f64> = (0..1_000_000u64)
        .map(|i| ((i * 7919) % 100_003) as f64)
        .collect();
    let discount = table.get("gold")?.1.discount;
    let batch_rate = rate(7, prices.len(), || {
        let mut out = vec![0.0; prices.len()];
        for (price, cost) in prices.iter().zip(out.iter_mut()) {
            let base = Credits::from_f64(*price, "basePrices").unwrap_or_default();
            *cost = tier_cost(base, discount, Rounding::HalfUp).as_f64();
        }
        black_box(out);
    });

    // quote: a 20-line cart over a 40-product catalog, including building the request.
    let catalog = catalog()?;
    let context = PricingContext::default();
    // The same 30 prepared carts the JS side cycles through; cloning one stands in for reading
    // the request at the boundary.
    let requests: Vec<QuoteRequest> = (0..30u64)
        .map(|q| QuoteRequest {
            tier: TIERS[(q % 3) as usize].to_owned(),
            lines: (0..20u64)
                .map(|l| LineRequest {
                    sku: format!("sku-{:03}", (l * 2 + q) % 40),
                    quantity: (l * 7 + q) % 61,
                })
                .collect(),
            rounding: Rounding::HalfUp,
        })
        .collect();
    let n_quotes = 50_000usize;
    let quote_rate = rate(5, n_quotes, || {
        let mut sum = 0u64;
        for q in 0..n_quotes {
            let request = requests[q % requests.len()].clone();
            sum += price(request, &catalog, &context).map_or(0, |quote| quote.total.get());
        }
        black_box(sum);
    });

    let Provisions {
        rate: provision_rate,
        ledger,
        cold_1k_seconds,
        cold_1m_seconds,
    } = provisions()?;
    // validateLedger over the binary export of a million entries (as the wasm side measures it),
    // and over already-parsed entries (the array form).
    let bytes = encode_ledger(&ledger);
    let validate_seconds = median(3, || {
        let report = audit_bytes(&bytes, None, 0);
        assert!(
            report.is_ok_and(|r| r.ok && r.length == 1_000_000),
            "the benchmark ledger must validate"
        );
    });
    let validate_array_seconds = median(3, || {
        let report = audit(
            ledger.iter().map(|e| (e.clone(), EntryFlaws::default())),
            None,
            0,
        );
        assert!(report.ok, "the benchmark ledger must validate");
    });

    let (commission_seconds, commission_lines) = commissions();

    // Partner health: 100 000 partners as the wasm side builds them (the same metrics, in the
    // components' units), scored one by one.
    let options = HealthOptions::default();
    let partners: Vec<Metrics> = (0..100_000i64)
        .map(|i| {
            let gap = i % 10 == 0;
            [
                Some((i * 7919) % 2_000_000),
                Some(i % 15),
                Some((i * 31) % 10_001),
                Some((i * 17) % 4_001 - 2_000),
                (!gap).then_some(i % 31),
                Some((i * 13) % 10_001),
                (!gap).then_some((i * 7) % 1_001),
            ]
        })
        .collect();
    let health_seconds = median(5, || {
        let mut out = vec![0u16; partners.len()];
        for (m, score) in partners.iter().zip(out.iter_mut()) {
            *score = score_only(m, &options).map_or(0, |(s, _)| s as u16);
        }
        black_box(out);
    });

    let (trends_cold_seconds, trends_warm_seconds) = trends()?;

    println!(
        "{{\"tierCost\":{tier_cost_rate:.0},\"tierCostBatch\":{batch_rate:.0},\"quote\":{quote_rate:.0},\"provision\":{provision_rate:.0},\"validateLedgerSeconds\":{validate_seconds:.4},\"validateLedgerArraySeconds\":{validate_array_seconds:.4},\"validateLedgerEntries\":{},\"commissionSeconds\":{commission_seconds:.4},\"commissionLines\":{commission_lines},\"healthSeconds\":{health_seconds:.5},\"trendsColdSeconds\":{trends_cold_seconds:.5},\"trendsWarmSeconds\":{trends_warm_seconds:.6},\"coldProvision1kSeconds\":{cold_1k_seconds:.6},\"coldProvision1MSeconds\":{cold_1m_seconds:.6}}}",
        ledger.len()
    );
    Ok(())
}

/// What `provisions` measured.
struct Provisions {
    rate: f64,
    ledger: Vec<Entry>,
    /// The first provision of a fresh instance on a wallet of 1 000 entries, median seconds.
    cold_1k_seconds: f64,
    /// The same on the wallet of 1 000 000 entries.
    cold_1m_seconds: f64,
}

/// `provision` through the engine with the in-memory storage, one at a time; then the
/// million-entry ledger for `validateLedger`, made by the same engine; then the first provision
/// of fresh instances (a restarted process) on that wallet and on one of 1 000 entries.
fn provisions() -> Result<Provisions, Error> {
    let storage = Rc::new(MemoryStorage::new());
    let engine = |seed| {
        Ally::new(
            Config::default(),
            Rc::clone(&storage),
            NoMailer,
            SystemClock,
            seed,
        )
    };
    let ally = engine(42);
    let suspended = || Error::invalid("bench", "the in-memory storage suspended");
    let open = |user: u64| -> Result<String, Error> {
        let draft = ResellerDraft {
            user_id: Some(UserId::Number(user)),
            company_name: Some(format!("Bench {user}")),
            ..ResellerDraft::default()
        };
        let id = block_on(ally.create_reseller(draft), 64)
            .ok_or_else(suspended)??
            .value
            .id;
        block_on(ally.add_credits(&id, credits(1 << 52), None, None), 64)
            .ok_or_else(suspended)??;
        Ok(id)
    };
    let id = open(1)?;
    let n = 200_000usize;
    let provision_rate = rate(3, n, || {
        for _ in 0..n {
            let done = block_on(ally.provision(&id, credits(1), None, None), 64);
            black_box(done);
        }
    });
    // Grow the history to a million entries for validateLedger.
    for _ in 0..(1_000_000 - 1 - 3 * n) {
        block_on(ally.provision(&id, credits(1), None, None), 64);
    }
    let ledger = block_on(ally.ledger(&id), 64).ok_or_else(suspended)??;
    let small = open(2)?;
    for _ in 0..999 {
        block_on(ally.provision(&small, credits(1), None, None), 64);
    }
    let mut seed = 1_000;
    let mut cold = |wallet: &str| {
        median(5, || {
            seed += 1;
            let fresh = engine(seed);
            let done = block_on(fresh.provision(wallet, credits(1), None, None), 64);
            assert!(matches!(done, Some(Ok(_))), "a cold provision must succeed");
        })
    };
    let cold_1k_seconds = cold(&small);
    let cold_1m_seconds = cold(&id);
    Ok(Provisions {
        rate: provision_rate,
        ledger,
        cold_1k_seconds,
        cold_1m_seconds,
    })
}

/// The monthly commission run: 1 000 000 payments by 200 000 customers of 10 000 resellers in a
/// three-level hierarchy (100 at the top, 900 under them, 9 000 under those), the reference plan
/// with a second override level.
fn commissions() -> (f64, usize) {
    use ally_engine::domain::commission::{
        commission, CustomerNode, Hierarchy, Payment, PaymentKind, PaymentStatus, Period, Plan,
        ResellerNode,
    };
    use ally_engine::domain::money::Rate;
    const JAN: i64 = 1_767_225_600_000;
    const MONTH: i64 = 31 * 86_400_000;
    let resellers: Vec<ResellerNode> = (0..10_000u32)
        .map(|i| ResellerNode {
            id: format!("rs_{i:05}"),
            parent: match i {
                0..=99 => None,
                100..=999 => Some(i % 100),
                _ => Some(100 + i % 900),
            },
            rate: Rate::from_units(1000 + (i % 6) as u16 * 100).unwrap_or(Rate::ZERO),
            approved: i % 50 != 7,
        })
        .collect();
    let customers: Vec<CustomerNode> = (0..200_000u32)
        .map(|c| CustomerNode {
            reseller: (c * 7919) % 10_000,
            since_ms: JAN - i64::from(c % 24) * MONTH,
        })
        .collect();
    let hierarchy = Hierarchy::new(resellers, customers, 3).unwrap_or_else(|e| panic!("{e}"));
    let payments: Vec<Payment> = (0..1_000_000u32)
        .map(|i| {
            let refund = i % 97 == 3 && i > 0;
            Payment {
                customer: (i * 31) % 200_000,
                amount: 1_000 + i64::from(i % 50_000),
                at_ms: JAN + i64::from(i) * 2_000,
                status: if i % 41 == 0 {
                    PaymentStatus::Pending
                } else {
                    PaymentStatus::Completed
                },
                kind: if refund {
                    PaymentKind::Refund
                } else {
                    PaymentKind::Payment
                },
                reverses: None,
            }
        })
        .collect();
    let plan = Plan {
        overrides: vec![
            Rate::from_units(500).unwrap_or(Rate::ZERO),
            Rate::from_units(200).unwrap_or(Rate::ZERO),
        ],
        hold_days: 14,
        ..Plan::reference()
    };
    let period = Period {
        start_ms: JAN,
        end_ms: JAN + MONTH,
        as_of_ms: JAN + MONTH,
    };
    let mut lines = 0;
    let seconds = median(3, || {
        let run =
            commission(&plan, &payments, &hierarchy, period).unwrap_or_else(|e| panic!("{e}"));
        lines = run.lines.len();
        black_box(run);
    });
    (seconds, lines)
}

/// A clock the workload moves.
#[derive(Clone)]
struct StepClock(Rc<Cell<i64>>);

impl Clock for StepClock {
    fn now(&self) -> Result<DateTime<Utc>, String> {
        DateTime::from_timestamp_millis(self.0.get()).ok_or_else(|| "out of range".to_owned())
    }
}

/// creditTrends, monthly over 2026, as the wasm side measures it: 100 resellers with 10 000
/// entries each (1 000 top-ups, 9 bulk provisions of 1 000). Cold: a fresh instance over the same
/// storage, which resumes each wallet from its checkpoint; warm: the next call (median of 5).
fn trends() -> Result<(f64, f64), Error> {
    let suspended = || Error::invalid("bench", "the in-memory storage suspended");
    let storage = Rc::new(MemoryStorage::new());
    let noon = |day: i64| {
        NaiveDate::from_ymd_opt(2026, 1, 1).map_or(0, |d| {
            d.and_time(NaiveTime::MIN).and_utc().timestamp_millis() + day * 86_400_000 + 43_200_000
        })
    };
    let clock = StepClock(Rc::new(Cell::new(noon(0))));
    let writer = Ally::new(
        Config::default(),
        Rc::clone(&storage),
        NoMailer,
        clock.clone(),
        7,
    );
    for r in 0..100u64 {
        let draft = ResellerDraft {
            user_id: Some(UserId::Number(10_000 + r)),
            company_name: Some(format!("Trend {r}")),
            ..ResellerDraft::default()
        };
        let id = block_on(writer.create_reseller(draft), 64)
            .ok_or_else(suspended)??
            .value
            .id;
        for k in 0..1_000u64 {
            clock.0.set(noon((k * 365 / 1_000) as i64));
            let amount = credits(10_000 + (r * 7 + k) % 100);
            block_on(writer.add_credits(&id, amount, None, None), 64).ok_or_else(suspended)??;
            if k % 111 == 110 {
                let items = (0..1_000)
                    .map(|_| Movement {
                        amount: credits(1),
                        memo: None,
                    })
                    .collect();
                block_on(writer.provision_bulk(&id, items, None), 64).ok_or_else(suspended)??;
            }
        }
    }
    let first = noon(0) / 86_400_000;
    let year = Days::new(first, first + 364)?;
    let reader = Ally::new(
        Config::default(),
        Rc::clone(&storage),
        NoMailer,
        SystemClock,
        8,
    );
    let start = Instant::now();
    let cold = block_on(reader.credit_trends(None, year, Interval::Monthly), 64)
        .ok_or_else(suspended)??;
    let cold_seconds = start.elapsed().as_secs_f64();
    assert_eq!(cold.len(), 12, "twelve months");
    let warm_seconds = median(5, || {
        let warm = block_on(reader.credit_trends(None, year, Interval::Monthly), 64);
        assert!(
            matches!(warm, Some(Ok(ref w)) if *w == cold),
            "the warm answer must equal the cold one"
        );
    });
    Ok((cold_seconds, warm_seconds))
}

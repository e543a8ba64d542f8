//! Commissions: what resellers earn on what their customers pay, with overrides up the reseller
//! hierarchy, clawbacks for refunds and chargebacks, caps per period, a hold before a commission
//! is payable, and a minimum payout.
//!
//! Amounts are whole minor units of the currency (cents for USD) in `i64`; rates are
//! ten-thousandths ([`Rate`]). Every product of an amount and a rate is exact in `i128` and
//! rounded once, under the plan's [`Rounding`]. Where one amount is split (the levels of one
//! payment, a graduated commission over its payments, a cap over the lines it cuts, a partial
//! refund over the lines it claws back) the remainder is allocated by largest fractional part,
//! so the parts always sum to the whole.
//!
//! Payments, customers and resellers are addressed by index: a run over a million payments
//! reads flat arrays, and the host's ids are looked up once, at the boundary.

use super::error::{Error, Result};
use super::money::Rate;
use super::reseller::iso_time;
use super::rounding::Rounding;

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;
/// The deepest hierarchy a plan may pay overrides through.
pub const LEVELS_MAX: usize = 8;
/// Ten-thousandths in a whole: the denominator of every rate.
const RATE_ONE: i128 = Rate::ONE_UNITS as i128;

/// What a payment record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentKind {
    /// Money in from a customer: earns commission.
    Payment,
    /// Money given back: claws commission back.
    Refund,
    /// Money taken back by the card network: claws commission back.
    Chargeback,
}

impl PaymentKind {
    pub const ALL: [Self; 3] = [Self::Payment, Self::Refund, Self::Chargeback];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Payment => "payment",
            Self::Refund => "refund",
            Self::Chargeback => "chargeback",
        }
    }
}

/// Where a payment stands; only completed ones count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    Completed,
    Pending,
    Failed,
}

impl PaymentStatus {
    pub const ALL: [Self; 3] = [Self::Completed, Self::Pending, Self::Failed];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Pending => "pending",
            Self::Failed => "failed",
        }
    }
}

/// One payment, refund or chargeback by a customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payment {
    /// Index into [`Hierarchy::customers`].
    pub customer: u32,
    /// Minor units, at least 1; a refund's amount is what was given back.
    pub amount: i64,
    pub at_ms: i64,
    pub status: PaymentStatus,
    pub kind: PaymentKind,
    /// For a refund or chargeback: the index of the payment it reverses, when known.
    pub reverses: Option<u32>,
}

/// A reseller as commissions see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResellerNode {
    pub id: String,
    /// Index of the parent reseller.
    pub parent: Option<u32>,
    /// Its own commission rate (the reference's `commission_rate`).
    pub rate: Rate,
    /// Only approved resellers earn; an unapproved one is skipped and its parent still earns.
    pub approved: bool,
}

/// A customer (child account) of one reseller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CustomerNode {
    /// Index of its reseller.
    pub reseller: u32,
    /// When it became a customer: recurring limits count months from here.
    pub since_ms: i64,
}

/// Resellers with their parents, and customers with their resellers, checked: every index is in
/// range, no reseller is its own ancestor, and no chain is deeper than the bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    resellers: Vec<ResellerNode>,
    customers: Vec<CustomerNode>,
    /// Customers per reseller.
    child_counts: Vec<u32>,
}

impl Hierarchy {
    /// `depth_max`: how many ancestors a reseller may have (1 allows parent only).
    pub fn new(
        resellers: Vec<ResellerNode>,
        customers: Vec<CustomerNode>,
        depth_max: usize,
    ) -> Result<Self> {
        let n = resellers.len();
        for (i, r) in resellers.iter().enumerate() {
            if let Some(p) = r.parent {
                if p as usize >= n {
                    return Err(Error::invalid(
                        format!("hierarchy.resellers[{i}].parentId"),
                        "names no reseller of the hierarchy",
                    ));
                }
            }
        }
        // Each reseller walks up at most `depth_max + 1` steps; only a walk that goes further
        // is followed to the end, to tell a cycle from a chain that is too deep.
        for start in 0..n {
            let mut steps = 0usize;
            let mut at = start;
            while let Some(parent) = resellers[at].parent {
                steps += 1;
                at = parent as usize;
                if steps > depth_max {
                    let mut seen = vec![false; n];
                    seen[start] = true;
                    let mut walk = start;
                    let mut cycle = false;
                    while let Some(p) = resellers[walk].parent {
                        walk = p as usize;
                        if seen[walk] {
                            cycle = true;
                            break;
                        }
                        seen[walk] = true;
                    }
                    let id = &resellers[start].id;
                    let reason = if cycle {
                        format!("reseller \"{id}\" is in a cycle of parents")
                    } else {
                        format!("reseller \"{id}\" has more than {depth_max} levels above it")
                    };
                    return Err(Error::invalid(
                        format!("hierarchy.resellers[{start}].parentId"),
                        reason,
                    ));
                }
            }
        }
        let mut child_counts = vec![0u32; n];
        for (i, c) in customers.iter().enumerate() {
            let slot = child_counts.get_mut(c.reseller as usize).ok_or_else(|| {
                Error::invalid(
                    format!("hierarchy.customers[{i}].resellerId"),
                    "names no reseller of the hierarchy",
                )
            })?;
            *slot += 1;
        }
        Ok(Self {
            resellers,
            customers,
            child_counts,
        })
    }

    #[must_use]
    pub fn resellers(&self) -> &[ResellerNode] {
        &self.resellers
    }

    #[must_use]
    pub fn customers(&self) -> &[CustomerNode] {
        &self.customers
    }

    /// The same hierarchy with `reseller`'s customer count set to `count`: a caller that hands
    /// over only the customers that paid, or that counts only the reseller's customers of
    /// today, still rates the reseller by that count. A reseller out of range is left alone.
    #[must_use]
    pub fn with_child_count(mut self, reseller: u32, count: u32) -> Self {
        if let Some(slot) = self.child_counts.get_mut(reseller as usize) {
            *slot = count;
        }
        self
    }

    /// How many customers a reseller has.
    #[must_use]
    pub fn child_count(&self, reseller: u32) -> u32 {
        self.child_counts
            .get(reseller as usize)
            .copied()
            .unwrap_or(0)
    }
}

/// How revenue bands set a reseller's rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BandMode {
    /// The band the period's revenue reaches sets the rate for all of it.
    Volume,
    /// Each band's part of the revenue earns that band's rate.
    Graduated,
}

impl BandMode {
    pub const ALL: [Self; 2] = [Self::Volume, Self::Graduated];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Volume => "volume",
            Self::Graduated => "graduated",
        }
    }
}

/// A revenue band: up to `up_to` minor units (inclusive; `None` for the last, open band).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevenueBand {
    pub up_to: Option<i64>,
    pub rate: Rate,
    /// Minor units paid once per period when the band is reached (Lago's graduated
    /// percentage: 1 % + 200.00): in graduated mode every band the revenue enters, in volume
    /// mode the band it ends in. Shared over the period's payments as `bandFee` lines.
    pub flat_fee: i64,
}

/// One step of a step-down rate: `rate` for `months` months of a customer (from its `since`),
/// `None` for every month after the steps before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub months: Option<u32>,
    pub rate: Rate,
}

/// How a cap over a reseller's direct lines is shared out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CapAttribution {
    /// Every line is cut in proportion to its amount (the remainder by largest fraction).
    #[default]
    Proportional,
    /// Lines in payment order keep their amount until the cap is reached; the one that crosses
    /// it gets what is left, the later ones nothing (Affonso).
    Chronological,
}

impl CapAttribution {
    pub const ALL: [Self; 2] = [Self::Proportional, Self::Chronological];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Proportional => "proportional",
            Self::Chronological => "chronological",
        }
    }
}

/// The rate a reseller earns on its own customers' payments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseRule {
    /// The reseller's own `commissionRate`.
    OwnRate,
    /// By number of customers: the first row whose minimum the count reaches, rows by
    /// descending minimum.
    ChildCount(Vec<(u32, Rate)>),
    /// By the period's revenue from its customers.
    Revenue {
        mode: BandMode,
        bands: Vec<RevenueBand>,
    },
}

/// The reference's tiers by number of child accounts: 50 or more 20 %, 25 or more 15 %, 10 or
/// more 12 %, otherwise 10 %.
#[must_use]
pub fn child_count_reference() -> Vec<(u32, Rate)> {
    let rate = |units| Rate::from_units(units).unwrap_or(Rate::ZERO);
    vec![
        (50, rate(2000)),
        (25, rate(1500)),
        (10, rate(1200)),
        (0, rate(1000)),
    ]
}

/// A commission plan. Built with [`Plan::reference`] and adjusted; checked by [`Plan::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub base: BaseRule,
    /// Minor units paid on each payment, beside the percentage.
    pub flat_fee: i64,
    /// Commission only in a customer's first N months (`None`: for its lifetime).
    pub recurring_months: Option<u32>,
    /// The most direct commission (percentage and flat fee) one reseller earns per period.
    pub cap_per_period: Option<i64>,
    /// Days after the payment before a commission is payable (pending until then).
    pub hold_days: u32,
    /// The smallest payout; below it the balance waits for the next one.
    pub minimum_payout: i64,
    /// The override each level above the direct reseller earns on the payment: `[parent,
    /// grandparent, …]`.
    pub overrides: Vec<Rate>,
    pub rounding: Rounding,
    /// The direct rate by a customer's month since it became one (FirstPromoter's "first 3
    /// months 40 %, then 20 %"); empty for none. It replaces the reseller's own rate.
    pub step_down: Vec<Step>,
    /// Commission on a customer's first N completed payments only (Tapfiliate).
    pub recurring_payments: Option<u32>,
    /// Bounds on one payment's direct commission (the percentage and any flat or band fee),
    /// in minor units (Lago's per-transaction minimum and maximum).
    pub per_payment_minimum: Option<i64>,
    pub per_payment_maximum: Option<i64>,
    /// For child-count tiers: `Volume` rates every customer at the tier the count reaches;
    /// `Graduated` rates customers 1 to 10 at the first tier, the next at the next (Refvenue).
    pub child_count_mode: BandMode,
    pub cap_attribution: CapAttribution,
}

impl Plan {
    /// The reference plan: the reseller's own rate, and its parent earns a 5 % override.
    #[must_use]
    pub fn reference() -> Self {
        Self {
            base: BaseRule::OwnRate,
            flat_fee: 0,
            recurring_months: None,
            cap_per_period: None,
            hold_days: 0,
            minimum_payout: 0,
            overrides: vec![Rate::from_units(500).unwrap_or(Rate::ZERO)],
            rounding: Rounding::HalfUp,
            step_down: Vec::new(),
            recurring_payments: None,
            per_payment_minimum: None,
            per_payment_maximum: None,
            child_count_mode: BandMode::Volume,
            cap_attribution: CapAttribution::Proportional,
        }
    }

    /// Refuses a plan that cannot be applied: bands out of order, empty tables, negative
    /// amounts, more override levels than [`LEVELS_MAX`].
    pub fn check(&self) -> Result<()> {
        match &self.base {
            BaseRule::OwnRate => {}
            BaseRule::ChildCount(rows) => {
                if rows.is_empty() || rows.last().map(|r| r.0) != Some(0) {
                    return Err(Error::invalid(
                        "plan.childCountTiers",
                        "needs rows by descending minimum, the last with minimum 0",
                    ));
                }
                if rows.windows(2).any(|w| w[0].0 <= w[1].0) {
                    return Err(Error::invalid(
                        "plan.childCountTiers",
                        "minimums must strictly descend",
                    ));
                }
            }
            BaseRule::Revenue { bands, .. } => {
                let open = bands.last().is_some_and(|b| b.up_to.is_none());
                let limits: Vec<i64> = bands.iter().filter_map(|b| b.up_to).collect();
                if !open || limits.len() + 1 != bands.len() {
                    return Err(Error::invalid(
                        "plan.revenueBands",
                        "needs bands with ascending upTo, the last open (upTo null)",
                    ));
                }
                if limits.first().is_some_and(|&l| l <= 0)
                    || limits.windows(2).any(|w| w[0] >= w[1])
                {
                    return Err(Error::invalid(
                        "plan.revenueBands",
                        "upTo limits must be positive and strictly ascend",
                    ));
                }
            }
        }
        if let BaseRule::Revenue { bands, .. } = &self.base {
            if bands.iter().any(|b| b.flat_fee < 0) {
                return Err(Error::invalid(
                    "plan.revenueBands",
                    "a flatFee must not be negative",
                ));
            }
        }
        if !self.step_down.is_empty() {
            if self.base != BaseRule::OwnRate {
                return Err(Error::invalid(
                    "plan.stepDown",
                    "sets the direct rate itself: use it with base \"ownRate\"",
                ));
            }
            let last = self.step_down.len() - 1;
            for (i, step) in self.step_down.iter().enumerate() {
                match (i == last, step.months) {
                    (false, None) | (_, Some(0)) => {
                        return Err(Error::invalid(
                            format!("plan.stepDown[{i}].months"),
                            "every step but the last lasts at least one month",
                        ))
                    }
                    (true, Some(_)) => {
                        return Err(Error::invalid(
                            format!("plan.stepDown[{i}].months"),
                            "the last step is open: months null",
                        ))
                    }
                    _ => {}
                }
            }
        }
        if self.recurring_payments == Some(0) {
            return Err(Error::invalid(
                "plan.recurringPayments",
                "must be at least 1 (null for every payment)",
            ));
        }
        if let (Some(low), Some(high)) = (self.per_payment_minimum, self.per_payment_maximum) {
            if low > high {
                return Err(Error::invalid(
                    "plan.perPaymentMinimum",
                    "must not exceed perPaymentMaximum",
                ));
            }
        }
        for (field, value) in [
            ("plan.flatFee", Some(self.flat_fee)),
            ("plan.capPerPeriod", self.cap_per_period),
            ("plan.minimumPayout", Some(self.minimum_payout)),
            ("plan.perPaymentMinimum", self.per_payment_minimum),
            ("plan.perPaymentMaximum", self.per_payment_maximum),
        ] {
            if value.is_some_and(|v| v < 0) {
                return Err(Error::invalid(field, "must not be negative"));
            }
        }
        if self.overrides.len() > LEVELS_MAX {
            return Err(Error::invalid(
                "plan.overrides",
                format!("at most {LEVELS_MAX} levels"),
            ));
        }
        let most = match &self.base {
            BaseRule::OwnRate => self
                .step_down
                .iter()
                .map(|s| s.rate)
                .max()
                .unwrap_or(Rate::ZERO),
            BaseRule::ChildCount(rows) => rows.iter().map(|r| r.1).max().unwrap_or(Rate::ZERO),
            BaseRule::Revenue { bands, .. } => {
                bands.iter().map(|b| b.rate).max().unwrap_or(Rate::ZERO)
            }
        };
        self.check_pays_at_most_the_payment(most, "plan")?;
        Ok(())
    }

    /// The rule a reseller's direct rate comes from.
    #[must_use]
    pub const fn base_rule(&self) -> Rule {
        match &self.base {
            BaseRule::OwnRate => Rule::Percentage,
            BaseRule::ChildCount(_) => Rule::ChildCountTier,
            BaseRule::Revenue {
                mode: BandMode::Volume,
                ..
            } => Rule::RevenueVolume,
            BaseRule::Revenue {
                mode: BandMode::Graduated,
                ..
            } => Rule::RevenueGraduated,
        }
    }

    /// The overrides of the first `levels` levels above the direct reseller, in
    /// ten-thousandths.
    fn overrides_units(&self, levels: usize) -> u32 {
        self.overrides
            .iter()
            .take(levels)
            .map(|r| u32::from(r.units()))
            .sum()
    }

    /// Refuses a direct rate that, with the overrides of every level above it (the longest
    /// path a payment's commission can climb), would pay more than the payment.
    pub fn check_pays_at_most_the_payment(&self, direct: Rate, field: &str) -> Result<()> {
        self.check_path(direct, LEVELS_MAX, field)
    }

    /// [`Plan::check_pays_at_most_the_payment`] for a reseller with `levels` resellers above it.
    fn check_path(&self, direct: Rate, levels: usize, field: &str) -> Result<()> {
        let overrides = self.overrides_units(levels);
        let total = u32::from(direct.units()) + overrides;
        if total > u32::from(Rate::ONE_UNITS) {
            return Err(Error::invalid(
                field,
                format!(
                    "a direct rate of {} and overrides of {} on the levels above would pay {} of a payment: at most 1",
                    direct.to_decimal(),
                    rust_decimal::Decimal::new(i64::from(overrides), 4),
                    rust_decimal::Decimal::new(i64::from(total), 4),
                ),
            ));
        }
        Ok(())
    }
}

/// Which rule produced a commission line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The reseller's own rate.
    Percentage,
    /// The child-count tier's rate.
    ChildCountTier,
    /// The revenue band reached (volume mode).
    RevenueVolume,
    /// Banded revenue, each band at its rate (graduated mode); the line's rate is the effective one.
    RevenueGraduated,
    /// The flat fee per payment.
    FlatFee,
    /// A level above the direct reseller.
    Override,
    /// The step-down rate of the customer's month.
    StepDown,
    /// The payment's share of the flat fees of the revenue bands reached in the period.
    BandFee,
}

impl Rule {
    pub const ALL: [Self; 8] = [
        Self::Percentage,
        Self::ChildCountTier,
        Self::RevenueVolume,
        Self::RevenueGraduated,
        Self::FlatFee,
        Self::Override,
        Self::StepDown,
        Self::BandFee,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Percentage => "percentage",
            Self::ChildCountTier => "childCountTier",
            Self::RevenueVolume => "revenueVolume",
            Self::RevenueGraduated => "revenueGraduated",
            Self::FlatFee => "flatFee",
            Self::Override => "override",
            Self::StepDown => "stepDown",
            Self::BandFee => "bandFee",
        }
    }
}

/// One commission line: who earns what on which payment, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line {
    /// Index of the payment (or refund) it comes from.
    pub payment: u32,
    pub reseller: u32,
    /// 0 for the direct reseller, 1 for its parent, …
    pub level: u8,
    pub rule: Rule,
    pub rate: Rate,
    /// The amount the rate applied to (minor units; negative for a clawback).
    pub base: i64,
    /// Minor units; negative for a clawback.
    pub amount: i64,
    /// When it becomes payable: the payment's time plus the hold.
    pub payable_at_ms: i64,
}

impl Line {
    #[must_use]
    pub const fn is_clawback(&self) -> bool {
        self.amount < 0
    }
}

/// The run's window: payments with `start ≤ at < end` count; lines payable by `as_of` are
/// approved, the others pending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub start_ms: i64,
    pub end_ms: i64,
    pub as_of_ms: i64,
}

/// One reseller's figures for the period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResellerTotal {
    /// Completed payments of its own customers in the period (before refunds).
    pub revenue: i64,
    /// How many completed payments made that revenue.
    pub payments: u32,
    /// Its customers.
    pub child_count: u32,
    /// The direct rate it earned at (the effective rate in graduated mode).
    pub rate: Rate,
    /// Percentage and flat-fee commission on its own customers, after any cap.
    pub direct: i64,
    /// Overrides earned on customers further down.
    pub overrides: i64,
    /// Commission clawed back for refunds and chargebacks (≤ 0).
    pub clawbacks: i64,
    /// Direct commission the cap removed.
    pub capped: i64,
    /// `direct + overrides + clawbacks`.
    pub total: i64,
    /// Of `total`: payable by `as_of`.
    pub approved: i64,
    /// Of `total`: still in the hold period.
    pub pending: i64,
}

/// What a run produced: every line, and per reseller (by index) its totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Run {
    pub lines: Vec<Line>,
    pub totals: Vec<ResellerTotal>,
}

fn narrow(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

/// Splits `total` over parts in proportion to `weights` (all of one sign as `total`, or zero):
/// each part gets the floor of its share and the remainder goes, one unit each, to the parts
/// with the largest fractional shares (earlier parts first on a tie). The parts sum to `total`.
pub fn allocate(total: i64, weights: &[i128]) -> Vec<i64> {
    let mut parts = vec![0; weights.len()];
    allocate_into(total, weights, &mut parts);
    parts
}

/// [`allocate`] into `parts` (as long as `weights`), without allocating when there are few
/// parts: the remainder is at most one unit per part, handed out by repeated maximum.
pub fn allocate_into(total: i64, weights: &[i128], parts: &mut [i64]) {
    if weights.is_empty() {
        return;
    }
    if weights.len() <= 16 && allocate_small(total, weights, parts) {
        return;
    }
    allocate_wide(total, weights, parts);
}

/// [`allocate_into`] in 128-bit arithmetic.
fn allocate_wide(total: i64, weights: &[i128], parts: &mut [i64]) {
    let sum: i128 = weights.iter().map(|w| w.abs()).sum();
    let magnitude = i128::from(total).abs();
    let sign: i128 = if total < 0 { -1 } else { 1 };
    if sum == 0 {
        parts.fill(0);
        parts[0] = total;
        return;
    }
    let mut given: i128 = 0;
    for (part, w) in parts.iter_mut().zip(weights) {
        let share = magnitude * w.abs() / sum;
        given += share;
        *part = narrow(share);
    }
    let mut left = magnitude - given;
    if left > 0 {
        let remainder = |i: usize| magnitude * weights[i].abs() % sum;
        if weights.len() <= 16 {
            // Few parts: pick the largest remainder not yet served, earlier first on a tie.
            let mut served = [false; 16];
            while left > 0 {
                let mut best: Option<usize> = None;
                for (i, done) in served.iter().enumerate().take(weights.len()) {
                    if !done && best.is_none_or(|b| remainder(i) > remainder(b)) {
                        best = Some(i);
                    }
                }
                let Some(i) = best else { break };
                served[i] = true;
                parts[i] += 1;
                left -= 1;
            }
        } else {
            let mut order: Vec<usize> = (0..weights.len()).collect();
            order.sort_by(|&a, &b| remainder(b).cmp(&remainder(a)).then(a.cmp(&b)));
            for &i in order.iter().take(usize::try_from(left).unwrap_or(0)) {
                parts[i] += 1;
            }
        }
    }
    if sign < 0 {
        for part in parts.iter_mut() {
            *part = -*part;
        }
    }
}

/// `a + b` for reseller `r`'s `what`, or `Overflow` naming them.
fn add_money(a: i64, b: i64, what: &str, r: usize) -> Result<i64> {
    a.checked_add(b)
        .ok_or_else(|| Error::overflow(format!("the {what} of hierarchy.resellers[{r}]")))
}

/// [`allocate_into`] for a few parts in 64-bit arithmetic (a 128-bit division is a library
/// call in wasm, and a payment's split runs a million times a run); false, with nothing
/// written, when the products would not fit.
fn allocate_small(total: i64, weights: &[i128], parts: &mut [i64]) -> bool {
    let mut w = [0u64; 16];
    let mut sum: u64 = 0;
    for (slot, weight) in w.iter_mut().zip(weights) {
        let Ok(weight) = u64::try_from(weight.unsigned_abs()) else {
            return false;
        };
        *slot = weight;
        let Some(next) = sum.checked_add(weight) else {
            return false;
        };
        sum = next;
    }
    let magnitude = total.unsigned_abs();
    let most = w.iter().copied().max().unwrap_or(0);
    if total == i64::MIN || magnitude.checked_mul(most.max(1)).is_none() {
        return false;
    }
    let n = weights.len();
    if sum == 0 {
        parts.fill(0);
        parts[0] = total;
        return true;
    }
    let mut remainders = [0u64; 16];
    let mut given: u64 = 0;
    for i in 0..n {
        let product = magnitude * w[i];
        let share = product / sum;
        remainders[i] = product % sum;
        given += share;
        parts[i] = i64::try_from(share).unwrap_or(i64::MAX);
    }
    // At most one unit per part is left: to the largest remainders, earlier first on a tie.
    let mut left = magnitude - given;
    let mut served = [false; 16];
    while left > 0 {
        let mut best: Option<usize> = None;
        for i in 0..n {
            if !served[i] && best.is_none_or(|b| remainders[i] > remainders[b]) {
                best = Some(i);
            }
        }
        let Some(i) = best else { break };
        served[i] = true;
        parts[i] += 1;
        left -= 1;
    }
    if total < 0 {
        for part in parts.iter_mut().take(n) {
            *part = -*part;
        }
    }
    true
}

/// Whole calendar months from `since` to `at` (UTC), for recurring limits.
fn months_between(since_ms: i64, at_ms: i64) -> i64 {
    let month = |ms: i64| {
        let (y, m, day) = iso_time::civil_from_days(ms.div_euclid(DAY_MS));
        (y * 12 + m - 1, day, ms.rem_euclid(DAY_MS))
    };
    let (a, a_day, a_time) = month(since_ms);
    let (b, b_day, b_time) = month(at_ms);
    let mut months = b - a;
    if (b_day, b_time) < (a_day, a_time) {
        months -= 1;
    }
    months
}

/// The direct rate each reseller earns at, and for graduated bands the commission on its whole
/// revenue (allocated over its payments later).
fn direct_terms(
    plan: &Plan,
    hierarchy: &Hierarchy,
    totals: &[ResellerTotal],
) -> Vec<(Rule, Rate, Option<i64>)> {
    hierarchy
        .resellers
        .iter()
        .enumerate()
        .map(|(i, r)| match &plan.base {
            BaseRule::OwnRate => (Rule::Percentage, r.rate, None),
            BaseRule::ChildCount(rows) => {
                let count = hierarchy.child_count(i as u32);
                let rate = rows
                    .iter()
                    .find(|(min, _)| count >= *min)
                    .map_or(Rate::ZERO, |row| row.1);
                (Rule::ChildCountTier, rate, None)
            }
            BaseRule::Revenue { mode, bands } => {
                let revenue = totals[i].revenue;
                match mode {
                    BandMode::Volume => {
                        let rate = bands
                            .iter()
                            .find(|b| b.up_to.is_none_or(|limit| revenue <= limit))
                            .map_or(Rate::ZERO, |b| b.rate);
                        (Rule::RevenueVolume, rate, None)
                    }
                    BandMode::Graduated => {
                        let mut exact: i128 = 0;
                        let mut floor = 0i64;
                        for band in bands {
                            let top = band.up_to.unwrap_or(i64::MAX).min(revenue);
                            if top > floor {
                                exact += i128::from(top - floor) * i128::from(band.rate.units());
                            }
                            floor = band.up_to.unwrap_or(i64::MAX);
                            if floor >= revenue {
                                break;
                            }
                        }
                        let total = narrow(plan.rounding.divide(exact, RATE_ONE).unwrap_or(0));
                        let effective = if revenue > 0 {
                            let units = Rounding::HalfUp
                                .divide(exact, i128::from(revenue))
                                .unwrap_or(0);
                            Rate::from_units(u16::try_from(units).unwrap_or(0))
                                .unwrap_or(Rate::ZERO)
                        } else {
                            Rate::ZERO
                        };
                        (Rule::RevenueGraduated, effective, Some(total))
                    }
                }
            }
        })
        .collect()
}

/// Checks the payments against the hierarchy; the first bad one is `INVALID_INPUT` naming it.
fn check_payments(payments: &[Payment], hierarchy: &Hierarchy) -> Result<()> {
    let customers = hierarchy.customers.len();
    for (i, p) in payments.iter().enumerate() {
        if p.customer as usize >= customers {
            return Err(Error::invalid(
                format!("payments[{i}].customerId"),
                "names no customer of the hierarchy",
            ));
        }
        if p.amount < 1 {
            return Err(Error::invalid(
                format!("payments[{i}].amount"),
                "must be a positive amount",
            ));
        }
        match (p.kind, p.reverses) {
            (PaymentKind::Payment, Some(_)) => {
                return Err(Error::invalid(
                    format!("payments[{i}].reverses"),
                    "only a refund or chargeback reverses a payment",
                ))
            }
            (_, Some(original)) => {
                let Some(o) = payments.get(original as usize) else {
                    return Err(Error::invalid(
                        format!("payments[{i}].reverses"),
                        "names no payment of the batch",
                    ));
                };
                if o.kind != PaymentKind::Payment || o.customer != p.customer {
                    return Err(Error::invalid(
                        format!("payments[{i}].reverses"),
                        "must name a payment of the same customer",
                    ));
                }
                if p.amount > o.amount {
                    return Err(Error::invalid(
                        format!("payments[{i}].amount"),
                        "reverses more than the payment it names",
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// What the direct reseller earns on one payment: the rule and rate of its percentage, in
/// graduated revenue mode the share already allocated to the payment, and its share of the
/// period's band fees.
#[derive(Clone, Copy, Debug)]
struct DirectTerm {
    rule: Rule,
    rate: Rate,
    graduated: Option<i64>,
    band_fee: i64,
}

/// The commission lines of one payment of `amount` (positive, or negative for a reversal) by a
/// customer of `direct`, appended to `out`.
#[allow(clippy::too_many_arguments)] // the hot path of a run: plain arguments, no struct to build
fn payment_lines(
    plan: &Plan,
    hierarchy: &Hierarchy,
    term: DirectTerm,
    payment: u32,
    direct: u32,
    amount: i64,
    payable_at_ms: i64,
    out: &mut Vec<Line>,
) {
    let resellers = &hierarchy.resellers;
    let first = out.len();
    // The earners: the direct reseller (when approved), then approved ancestors per override,
    // each with its level; on the stack, as this runs once per payment.
    let mut levels: [(u32, Rule, Rate, u8); LEVELS_MAX + 1] =
        [(0, Rule::Override, Rate::ZERO, 0); LEVELS_MAX + 1];
    let mut count = 0usize;
    let direct_earns = resellers[direct as usize].approved;
    if direct_earns && term.graduated.is_none() {
        levels[count] = (direct, term.rule, term.rate, 0);
        count += 1;
    }
    let mut at = resellers[direct as usize].parent;
    for (level, &override_rate) in (1u8..).zip(&plan.overrides) {
        let Some(up) = at else { break };
        if resellers[up as usize].approved {
            levels[count] = (up, Rule::Override, override_rate, level);
            count += 1;
        }
        at = resellers[up as usize].parent;
    }
    if let (true, Some(share)) = (direct_earns, term.graduated) {
        out.push(Line {
            payment,
            reseller: direct,
            level: 0,
            rule: term.rule,
            rate: term.rate,
            base: amount,
            amount: share,
            payable_at_ms,
        });
    }
    let earners = &levels[..count];
    if !earners.is_empty() {
        // One rounding for the payment's whole split, then the parts by largest remainder.
        let mut weights = [0i128; LEVELS_MAX + 1];
        for (w, e) in weights.iter_mut().zip(earners) {
            *w = i128::from(e.2.units());
        }
        let weights = &weights[..count];
        let rate_sum: i128 = weights.iter().sum();
        let total = narrow(
            plan.rounding
                .divide(i128::from(amount) * rate_sum, RATE_ONE)
                .unwrap_or(0),
        );
        let mut parts = [0i64; LEVELS_MAX + 1];
        allocate_into(total, weights, &mut parts[..count]);
        for (&(reseller, rule, rate, level), &part) in earners.iter().zip(&parts[..count]) {
            out.push(Line {
                payment,
                reseller,
                level,
                rule,
                rate,
                base: amount,
                amount: part,
                payable_at_ms,
            });
        }
    }
    if !direct_earns {
        return;
    }
    let sign = if amount < 0 { -1 } else { 1 };
    for (rule, fee) in [
        (Rule::FlatFee, plan.flat_fee),
        (Rule::BandFee, term.band_fee),
    ] {
        if fee > 0 {
            out.push(Line {
                payment,
                reseller: direct,
                level: 0,
                rule,
                rate: Rate::ZERO,
                base: amount,
                amount: sign * fee,
                payable_at_ms,
            });
        }
    }
    if plan.per_payment_minimum.is_some() || plan.per_payment_maximum.is_some() {
        bound_direct(plan, &mut out[first..], amount);
    }
}

/// Brings the direct part of one payment's lines (its percentage and fees) within the plan's
/// per-payment minimum and maximum. A minimum never raises it past what the payment leaves
/// after its overrides. A raise goes to the percentage line; a cut takes from the percentage
/// line first, then the fees.
fn bound_direct(plan: &Plan, lines: &mut [Line], amount: i64) {
    let direct: i64 = lines
        .iter()
        .filter(|l| l.level == 0)
        .map(|l| l.amount.abs())
        .sum();
    let overrides: i64 = lines
        .iter()
        .filter(|l| l.level > 0)
        .map(|l| l.amount.abs())
        .sum();
    let mut target = direct;
    if let Some(low) = plan.per_payment_minimum {
        let room = amount
            .unsigned_abs()
            .saturating_sub(overrides.unsigned_abs());
        let room = i64::try_from(room).unwrap_or(i64::MAX);
        target = target.max(low.min(room.max(direct)));
    }
    if let Some(high) = plan.per_payment_maximum {
        target = target.min(high);
    }
    let sign = if amount < 0 { -1 } else { 1 };
    if target > direct {
        if let Some(line) = lines
            .iter_mut()
            .find(|l| l.level == 0 && !matches!(l.rule, Rule::FlatFee | Rule::BandFee))
        {
            line.amount += sign * (target - direct);
        }
    } else if target < direct {
        let mut cut = direct - target;
        let mut order: Vec<&mut Line> = lines.iter_mut().filter(|l| l.level == 0).collect();
        order.sort_by_key(|l| matches!(l.rule, Rule::FlatFee | Rule::BandFee));
        for line in order {
            let take = cut.min(line.amount.abs());
            line.amount -= sign * take;
            cut -= take;
        }
    }
}

/// The step-down rate of a customer's `month` (0 for its first; a payment before `since` is in
/// the first).
fn step_rate(steps: &[Step], month: i64) -> Rate {
    let mut end = 0i64;
    for step in steps {
        match step.months {
            None => return step.rate,
            Some(m) => {
                end += i64::from(m);
                if month < end {
                    return step.rate;
                }
            }
        }
    }
    steps.last().map_or(Rate::ZERO, |s| s.rate)
}

/// The commission run over `payments` for `period` (the pure form: nothing is stored).
pub fn commission(
    plan: &Plan,
    payments: &[Payment],
    hierarchy: &Hierarchy,
    period: Period,
) -> Result<Run> {
    plan.check()?;
    if plan.base == BaseRule::OwnRate && plan.step_down.is_empty() {
        // Each reseller's own path: its rate and the overrides of the levels above it.
        for (i, r) in hierarchy.resellers.iter().enumerate() {
            let mut levels = 0;
            let mut at = r.parent;
            while let (Some(up), true) = (at, levels < plan.overrides.len()) {
                levels += 1;
                at = hierarchy.resellers[up as usize].parent;
            }
            plan.check_path(r.rate, levels, &format!("hierarchy.resellers[{i}].rate"))?;
        }
    }
    check_payments(payments, hierarchy)?;
    if period.end_ms <= period.start_ms {
        return Err(Error::invalid("period", "end must be after start"));
    }
    let in_period = |p: &Payment| {
        p.status == PaymentStatus::Completed
            && p.at_ms >= period.start_ms
            && p.at_ms < period.end_ms
    };
    let customers = &hierarchy.customers;
    let mut totals = vec![ResellerTotal::default(); hierarchy.resellers.len()];
    for (i, t) in totals.iter_mut().enumerate() {
        t.child_count = hierarchy.child_count(i as u32);
    }
    for p in payments
        .iter()
        .filter(|p| in_period(p) && p.kind == PaymentKind::Payment)
    {
        let r = customers[p.customer as usize].reseller as usize;
        let t = &mut totals[r];
        t.revenue = add_money(t.revenue, p.amount, "revenue", r)?;
        t.payments += 1;
    }
    let terms = direct_terms(plan, hierarchy, &totals);
    for (t, term) in totals.iter_mut().zip(&terms) {
        t.rate = term.1;
    }
    // Recurring payments: each completed payment's place among its customer's (0 for the
    // first), by time.
    let payment_rank: Vec<u32> = match plan.recurring_payments {
        None => Vec::new(),
        Some(_) => {
            let mut order: Vec<u32> = (0..payments.len() as u32)
                .filter(|&i| {
                    let p = &payments[i as usize];
                    p.status == PaymentStatus::Completed && p.kind == PaymentKind::Payment
                })
                .collect();
            order.sort_unstable_by_key(|&i| {
                let p = &payments[i as usize];
                (p.customer, p.at_ms, i)
            });
            let mut rank = vec![u32::MAX; payments.len()];
            let mut previous: Option<u32> = None;
            let mut n = 0u32;
            for i in order {
                let customer = payments[i as usize].customer;
                n = if previous == Some(customer) { n + 1 } else { 0 };
                previous = Some(customer);
                rank[i as usize] = n;
            }
            rank
        }
    };
    // Graduated child-count tiers: each customer's place among its reseller's (1 for the
    // first), by when it became one.
    let customer_rank: Vec<u32> = match (&plan.base, plan.child_count_mode) {
        (BaseRule::ChildCount(_), BandMode::Graduated) => {
            let mut order: Vec<u32> = (0..customers.len() as u32).collect();
            order.sort_unstable_by_key(|&c| {
                let node = &customers[c as usize];
                (node.reseller, node.since_ms, c)
            });
            let mut rank = vec![0u32; customers.len()];
            let mut previous: Option<u32> = None;
            let mut n = 0u32;
            for c in order {
                let reseller = customers[c as usize].reseller;
                n = if previous == Some(reseller) { n + 1 } else { 1 };
                previous = Some(reseller);
                rank[c as usize] = n;
            }
            rank
        }
        _ => Vec::new(),
    };
    let eligible = |i: usize| {
        let p = &payments[i];
        let months = plan.recurring_months.is_none_or(|months| {
            let since = customers[p.customer as usize].since_ms;
            months_between(since, p.at_ms) < i64::from(months)
        });
        let counted = plan
            .recurring_payments
            .is_none_or(|n| payment_rank.get(i).is_some_and(|&rank| rank < n));
        months && counted
    };
    // Per reseller, its payments in the period: graduated shares and band fees are spread
    // over them in proportion to their amounts.
    let graduated = matches!(
        plan.base,
        BaseRule::Revenue {
            mode: BandMode::Graduated,
            ..
        }
    );
    let band_fees: Vec<i64> = match &plan.base {
        BaseRule::Revenue { mode, bands } if bands.iter().any(|b| b.flat_fee > 0) => totals
            .iter()
            .map(|t| band_fee(*mode, bands, t.revenue))
            .collect::<Result<_>>()?,
        _ => Vec::new(),
    };
    let mut graduated_share: Vec<Option<i64>> = Vec::new();
    let mut band_fee_share: Vec<i64> = Vec::new();
    if graduated || !band_fees.is_empty() {
        if graduated {
            graduated_share = vec![None; payments.len()];
        }
        if !band_fees.is_empty() {
            band_fee_share = vec![0; payments.len()];
        }
        let mut by_reseller: Vec<Vec<u32>> = vec![Vec::new(); hierarchy.resellers.len()];
        for (i, p) in payments.iter().enumerate() {
            // Every payment of the period takes its share; one not eligible (past a recurring
            // limit) earns nothing of it.
            if in_period(p) && p.kind == PaymentKind::Payment {
                by_reseller[customers[p.customer as usize].reseller as usize].push(i as u32);
            }
        }
        for (r, indexes) in by_reseller.iter().enumerate() {
            let weights: Vec<i128> = indexes
                .iter()
                .map(|&i| i128::from(payments[i as usize].amount))
                .collect();
            if graduated {
                let total = terms[r].2.unwrap_or(0);
                for (&i, share) in indexes.iter().zip(allocate(total, &weights)) {
                    graduated_share[i as usize] = Some(share);
                }
            }
            if let Some(&fee) = band_fees.get(r) {
                // The fee is the reseller's whole: shared over the payments that earn (one past
                // a recurring limit takes none of it, or the fee would be paid short).
                let earning: Vec<u32> = indexes
                    .iter()
                    .copied()
                    .filter(|&i| eligible(i as usize))
                    .collect();
                let weights: Vec<i128> = earning
                    .iter()
                    .map(|&i| i128::from(payments[i as usize].amount))
                    .collect();
                for (&i, share) in earning.iter().zip(allocate(fee, &weights)) {
                    band_fee_share[i as usize] = share;
                }
            }
        }
    }
    let term_of = |i: usize| {
        let p = &payments[i];
        let customer = &customers[p.customer as usize];
        let (rule, rate) = if !plan.step_down.is_empty() {
            let month = months_between(customer.since_ms, p.at_ms);
            (Rule::StepDown, step_rate(&plan.step_down, month))
        } else if let (BaseRule::ChildCount(rows), false) = (&plan.base, customer_rank.is_empty()) {
            let rank = customer_rank[p.customer as usize];
            let rate = rows
                .iter()
                .find(|(min, _)| rank > *min)
                .map_or(Rate::ZERO, |row| row.1);
            (Rule::ChildCountTier, rate)
        } else {
            let term = terms[customer.reseller as usize];
            (term.0, term.1)
        };
        DirectTerm {
            rule,
            rate,
            graduated: graduated_share.get(i).copied().flatten(),
            band_fee: band_fee_share.get(i).copied().unwrap_or(0),
        }
    };
    let hold_ms = i64::from(plan.hold_days) * DAY_MS;
    let mut lines = Vec::with_capacity(payments.len() * (1 + plan.overrides.len()));
    // Lines of payments outside the period that a reversal in the period mirrors.
    let mut mirrored: Vec<Line> = Vec::new();
    // Where each payment's lines are in `lines`, and the reversals of payments of this period:
    // those claw back the original's lines as the cap leaves them, so they wait for the cap.
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    let mut after_cap: Vec<usize> = Vec::new();
    for (i, p) in payments.iter().enumerate() {
        if !in_period(p) {
            continue;
        }
        let direct = customers[p.customer as usize].reseller;
        match p.kind {
            PaymentKind::Payment => {
                if !eligible(i) {
                    continue;
                }
                let start = lines.len();
                payment_lines(
                    plan,
                    hierarchy,
                    term_of(i),
                    i as u32,
                    direct,
                    p.amount,
                    p.at_ms.saturating_add(hold_ms),
                    &mut lines,
                );
                if ranges.is_empty() {
                    ranges = vec![(0, 0); payments.len()];
                }
                ranges[i] = (start as u32, lines.len() as u32);
            }
            PaymentKind::Refund | PaymentKind::Chargeback => {
                // The original's lines (recomputed when it is not in this run), scaled by the
                // share reversed, claw back; without an original, the reversal is priced as a
                // negative payment at today's terms.
                let original = p.reverses.map(|o| (o, payments[o as usize]));
                mirrored.clear();
                match original {
                    Some((o, op)) if eligible(o as usize) && in_period(&op) => {
                        after_cap.push(i);
                        continue;
                    }
                    Some((o, op)) if eligible(o as usize) => payment_lines(
                        plan,
                        hierarchy,
                        term_of(o as usize),
                        o,
                        direct,
                        op.amount,
                        0,
                        &mut mirrored,
                    ),
                    Some(_) => {}
                    None => payment_lines(
                        plan,
                        hierarchy,
                        DirectTerm {
                            band_fee: 0,
                            ..term_of(i)
                        },
                        i as u32,
                        direct,
                        p.amount,
                        0,
                        &mut mirrored,
                    ),
                }
                let original_amount = original.map_or(p.amount, |(_, op)| op.amount);
                claw_back(plan, i as u32, p, original_amount, &mirrored, &mut lines)?;
            }
        }
    }
    // Rates that vary by payment (step-down, graduated child-count tiers): the reseller's
    // rate is the effective one, its percentage lines over its revenue.
    if !plan.step_down.is_empty() || !customer_rank.is_empty() {
        let mut earned = vec![0i64; totals.len()];
        for l in lines.iter().filter(|l| {
            l.level == 0 && l.amount > 0 && matches!(l.rule, Rule::StepDown | Rule::ChildCountTier)
        }) {
            let r = l.reseller as usize;
            earned[r] = add_money(earned[r], l.amount, "direct commission", r)?;
        }
        for (t, e) in totals.iter_mut().zip(earned) {
            t.rate = if t.revenue > 0 {
                let units = Rounding::HalfUp
                    .divide(i128::from(e) * RATE_ONE, i128::from(t.revenue))
                    .unwrap_or(0);
                Rate::from_units(u16::try_from(units).unwrap_or(0)).unwrap_or(Rate::ZERO)
            } else {
                Rate::ZERO
            };
        }
    }
    // Caps: a reseller's positive direct commission above the cap is cut, over its lines.
    if let Some(cap) = plan.cap_per_period {
        let mut direct_sum = vec![0i64; totals.len()];
        for l in lines.iter().filter(|l| l.level == 0 && l.amount > 0) {
            let r = l.reseller as usize;
            direct_sum[r] = add_money(direct_sum[r], l.amount, "direct commission", r)?;
        }
        // The capped resellers' lines, gathered in one pass over the lines.
        let mut capped_lines: Vec<Vec<usize>> = vec![Vec::new(); totals.len()];
        for (k, l) in lines.iter().enumerate() {
            let r = l.reseller as usize;
            if l.level == 0 && l.amount > 0 && direct_sum[r] > cap {
                capped_lines[r].push(k);
            }
        }
        for (r, indexes) in capped_lines.iter_mut().enumerate() {
            if indexes.is_empty() {
                continue;
            }
            let cut = direct_sum[r] - cap;
            match plan.cap_attribution {
                CapAttribution::Proportional => {
                    let weights: Vec<i128> = indexes
                        .iter()
                        .map(|&k| i128::from(lines[k].amount))
                        .collect();
                    for (&k, part) in indexes.iter().zip(allocate(cut, &weights)) {
                        lines[k].amount -= part;
                    }
                }
                CapAttribution::Chronological => {
                    indexes.sort_by_key(|&k| {
                        let payment = lines[k].payment;
                        (payments[payment as usize].at_ms, payment, k)
                    });
                    let mut left = cap;
                    for &k in indexes.iter() {
                        let keep = lines[k].amount.min(left);
                        lines[k].amount = keep;
                        left -= keep;
                    }
                }
            }
            totals[r].capped = cut;
        }
    }
    for &i in &after_cap {
        let p = &payments[i];
        let Some(o) = p.reverses else { continue };
        let (start, end) = ranges.get(o as usize).copied().unwrap_or((0, 0));
        mirrored.clear();
        mirrored.extend_from_slice(&lines[start as usize..end as usize]);
        let original_amount = payments[o as usize].amount;
        claw_back(plan, i as u32, p, original_amount, &mirrored, &mut lines)?;
    }
    for l in &lines {
        let r = l.reseller as usize;
        let t = &mut totals[r];
        if l.amount < 0 {
            t.clawbacks = add_money(t.clawbacks, l.amount, "clawbacks", r)?;
        } else if l.level == 0 {
            t.direct = add_money(t.direct, l.amount, "direct commission", r)?;
        } else {
            t.overrides = add_money(t.overrides, l.amount, "overrides", r)?;
        }
        if l.payable_at_ms <= period.as_of_ms {
            t.approved = add_money(t.approved, l.amount, "approved commission", r)?;
        } else {
            t.pending = add_money(t.pending, l.amount, "pending commission", r)?;
        }
    }
    for (r, t) in totals.iter_mut().enumerate() {
        t.total = add_money(t.direct, t.overrides, "commission", r)
            .and_then(|sum| add_money(sum, t.clawbacks, "commission", r))?;
    }
    Ok(Run { lines, totals })
}

/// The clawback lines of reversal `payment` (`p`) of a payment of `original_amount` whose lines
/// were `source`: the share reversed of what each line earned, rounded once for the whole and
/// split by largest remainder, payable at once.
fn claw_back(
    plan: &Plan,
    payment: u32,
    p: &Payment,
    original_amount: i64,
    source: &[Line],
    out: &mut Vec<Line>,
) -> Result<()> {
    let mut earned = 0i64;
    for l in source {
        earned = earned
            .checked_add(l.amount)
            .ok_or_else(|| Error::overflow(format!("the clawback of payments[{payment}]")))?;
    }
    let clawed = narrow(
        plan.rounding
            .divide(
                i128::from(earned) * i128::from(p.amount),
                i128::from(original_amount),
            )
            .unwrap_or(0),
    );
    let weights: Vec<i128> = source.iter().map(|l| i128::from(l.amount)).collect();
    for (line, part) in source.iter().zip(allocate(-clawed, &weights)) {
        out.push(Line {
            payment,
            base: -p.amount,
            amount: part,
            payable_at_ms: p.at_ms,
            ..*line
        });
    }
    Ok(())
}

/// The flat fees of the revenue bands a reseller's period `revenue` reaches: in volume mode
/// the band it ends in, in graduated mode every band it enters. No revenue reaches no band.
fn band_fee(mode: BandMode, bands: &[RevenueBand], revenue: i64) -> Result<i64> {
    if revenue <= 0 {
        return Ok(0);
    }
    match mode {
        BandMode::Volume => Ok(bands
            .iter()
            .find(|b| b.up_to.is_none_or(|limit| revenue <= limit))
            .map_or(0, |b| b.flat_fee)),
        BandMode::Graduated => {
            let mut floor = 0i64;
            let mut fees = 0i64;
            for band in bands {
                if revenue <= floor {
                    break;
                }
                fees = fees
                    .checked_add(band.flat_fee)
                    .ok_or_else(|| Error::overflow("the band fees of a reseller"))?;
                floor = band.up_to.unwrap_or(i64::MAX);
            }
            Ok(fees)
        }
    }
}

#[cfg(test)]
// Amounts are written in cents with the cents apart: `100_00` is 100.00.
#[allow(clippy::inconsistent_digit_grouping)]
mod tests {
    use super::*;

    const DAY: i64 = DAY_MS;
    /// 2026-01-01T00:00:00Z.
    const JAN: i64 = 1_767_225_600_000;
    const FEB: i64 = JAN + 31 * DAY;

    fn rate(units: u16) -> Rate {
        Rate::from_units(units).expect("a rate")
    }

    fn reseller(id: &str, parent: Option<u32>, units: u16) -> ResellerNode {
        ResellerNode {
            id: id.to_owned(),
            parent,
            rate: rate(units),
            approved: true,
        }
    }

    /// super (0) ← sub (1) ← leaf (2); customers 0..10 of leaf, 10 of sub, 11 of super.
    fn three_levels() -> Hierarchy {
        let resellers = vec![
            reseller("super", None, 1000),
            reseller("sub", Some(0), 1200),
            reseller("leaf", Some(1), 1500),
        ];
        let mut customers: Vec<CustomerNode> = (0..10)
            .map(|_| CustomerNode {
                reseller: 2,
                since_ms: JAN,
            })
            .collect();
        customers.push(CustomerNode {
            reseller: 1,
            since_ms: JAN,
        });
        customers.push(CustomerNode {
            reseller: 0,
            since_ms: JAN,
        });
        Hierarchy::new(resellers, customers, 3).expect("a valid hierarchy")
    }

    fn pay(customer: u32, amount: i64, at_ms: i64) -> Payment {
        Payment {
            customer,
            amount,
            at_ms,
            status: PaymentStatus::Completed,
            kind: PaymentKind::Payment,
            reverses: None,
        }
    }

    fn january() -> Period {
        Period {
            start_ms: JAN,
            end_ms: FEB,
            as_of_ms: FEB,
        }
    }

    fn no_overrides() -> Plan {
        Plan {
            overrides: Vec::new(),
            ..Plan::reference()
        }
    }

    #[test]
    fn the_reference_example_5000_over_25_payments_at_15_percent_is_750() {
        let h = three_levels();
        let payments: Vec<Payment> = (0..25)
            .map(|i| pay(i % 10, 200_00, JAN + i64::from(i) * DAY))
            .collect();
        let run = commission(&no_overrides(), &payments, &h, january()).expect("runs");
        let leaf = run.totals[2];
        assert_eq!(
            (
                leaf.revenue,
                leaf.payments,
                leaf.rate,
                leaf.direct,
                leaf.child_count
            ),
            (5000_00, 25, rate(1500), 750_00, 10)
        );
        assert_eq!(run.lines.len(), 25);
        assert!(run
            .lines
            .iter()
            .all(|l| l.rule == Rule::Percentage && l.amount == 30_00));
    }

    #[test]
    fn overrides_go_up_the_hierarchy_and_levels_sum_to_the_split() {
        let h = three_levels();
        let plan = Plan {
            overrides: vec![rate(500), rate(200)],
            ..Plan::reference()
        };
        // 33.33 at 15 % + 5 % + 2 % = 22 % → 7.3326 → 7.33 split 4.9995 / 1.6665 / 0.6666.
        let run = commission(&plan, &[pay(0, 33_33, JAN)], &h, january()).expect("runs");
        let got: Vec<(u32, u8, Rule, i64)> = run
            .lines
            .iter()
            .map(|l| (l.reseller, l.level, l.rule, l.amount))
            .collect();
        assert_eq!(
            got,
            [
                (2, 0, Rule::Percentage, 5_00),
                (1, 1, Rule::Override, 1_66),
                (0, 2, Rule::Override, 67),
            ]
        );
        assert_eq!(got.iter().map(|g| g.3).sum::<i64>(), 7_33);
        // The reference default: the grandparent level earns 5 % of the payment.
        let run =
            commission(&Plan::reference(), &[pay(10, 100_00, JAN)], &h, january()).expect("runs");
        assert_eq!(run.totals[0].overrides, 5_00);
        assert_eq!(run.totals[1].direct, 12_00);
    }

    #[test]
    fn an_unapproved_reseller_earns_nothing_and_its_parent_still_earns() {
        let mut resellers = vec![reseller("top", None, 1000), reseller("mid", Some(0), 1500)];
        resellers[1].approved = false;
        let customers = vec![CustomerNode {
            reseller: 1,
            since_ms: JAN,
        }];
        let h = Hierarchy::new(resellers, customers, 2).expect("valid");
        let run =
            commission(&Plan::reference(), &[pay(0, 100_00, JAN)], &h, january()).expect("runs");
        assert_eq!((run.totals[1].total, run.totals[0].overrides), (0, 5_00));
    }

    #[test]
    fn child_count_tiers_follow_the_reference_table() {
        let table = [
            (0u32, 1000u16),
            (9, 1000),
            (10, 1200),
            (24, 1200),
            (25, 1500),
            (49, 1500),
            (50, 2000),
            (400, 2000),
        ];
        for (children, units) in table {
            let resellers = vec![reseller("r", None, 0)];
            let customers = vec![
                CustomerNode {
                    reseller: 0,
                    since_ms: JAN
                };
                children.max(1) as usize
            ];
            let h = Hierarchy::new(resellers, customers, 1).expect("valid");
            let plan = Plan {
                base: BaseRule::ChildCount(child_count_reference()),
                ..no_overrides()
            };
            let expected_count = children.max(1);
            let run = commission(&plan, &[pay(0, 100_00, JAN)], &h, january()).expect("runs");
            let expected = if expected_count == children {
                units
            } else {
                1000
            };
            assert_eq!(run.totals[0].rate, rate(expected), "{children} children");
            assert_eq!(run.lines[0].rule, Rule::ChildCountTier);
        }
    }

    fn banded(mode: BandMode) -> Plan {
        Plan {
            base: BaseRule::Revenue {
                mode,
                bands: vec![
                    RevenueBand {
                        up_to: Some(1000_00),
                        rate: rate(500),
                        flat_fee: 0,
                    },
                    RevenueBand {
                        up_to: Some(5000_00),
                        rate: rate(1000),
                        flat_fee: 0,
                    },
                    RevenueBand {
                        up_to: None,
                        rate: rate(1500),
                        flat_fee: 0,
                    },
                ],
            },
            ..no_overrides()
        }
    }

    #[test]
    fn revenue_bands_in_volume_and_graduated_mode() {
        let h = three_levels();
        // Revenue 6000.00 in three payments of 2000.00.
        let payments = [
            pay(0, 2000_00, JAN),
            pay(1, 2000_00, JAN + DAY),
            pay(2, 2000_00, JAN + 2 * DAY),
        ];
        let volume = commission(&banded(BandMode::Volume), &payments, &h, january()).expect("runs");
        assert_eq!(
            (volume.totals[2].rate, volume.totals[2].direct),
            (rate(1500), 900_00)
        );
        // Graduated: 1000 × 5 % + 4000 × 10 % + 1000 × 15 % = 50 + 400 + 150 = 600.00.
        let graduated =
            commission(&banded(BandMode::Graduated), &payments, &h, january()).expect("runs");
        assert_eq!(
            (graduated.totals[2].rate, graduated.totals[2].direct),
            (rate(1000), 600_00)
        );
        assert_eq!(
            graduated.lines.iter().map(|l| l.amount).collect::<Vec<_>>(),
            [200_00; 3]
        );
        // A revenue exactly at a limit stays in that band.
        let at_limit = commission(
            &banded(BandMode::Volume),
            &[pay(0, 1000_00, JAN)],
            &h,
            january(),
        )
        .expect("runs");
        assert_eq!(at_limit.totals[2].rate, rate(500));
    }

    #[test]
    fn recurring_limits_caps_holds_and_flat_fees() {
        let h = three_levels();
        let plan = Plan {
            recurring_months: Some(1),
            ..no_overrides()
        };
        let period = Period {
            start_ms: JAN,
            end_ms: JAN + 90 * DAY,
            as_of_ms: JAN + 90 * DAY,
        };
        let payments = [pay(0, 100_00, JAN + 5 * DAY), pay(0, 100_00, FEB + 5 * DAY)];
        let run = commission(&plan, &payments, &h, period).expect("runs");
        assert_eq!(run.lines.len(), 1, "only the first month earns");

        let plan = Plan {
            cap_per_period: Some(40_00),
            flat_fee: 1_00,
            hold_days: 30,
            ..no_overrides()
        };
        let payments = [
            pay(0, 100_00, JAN),
            pay(1, 100_00, JAN + 20 * DAY),
            pay(2, 100_00, JAN + 25 * DAY),
        ];
        let as_of = Period {
            as_of_ms: JAN + 35 * DAY,
            ..january()
        };
        let run = commission(&plan, &payments, &h, as_of).expect("runs");
        let leaf = run.totals[2];
        // 3 × (15.00 + 1.00) = 48.00, capped at 40.00.
        assert_eq!((leaf.direct, leaf.capped, leaf.total), (40_00, 8_00, 40_00));
        // Only the first payment's lines are past their 30-day hold on day 35.
        let first: i64 = run
            .lines
            .iter()
            .filter(|l| l.payment == 0)
            .map(|l| l.amount)
            .sum();
        assert_eq!((leaf.approved, leaf.pending), (first, 40_00 - first));
        assert!(run.lines.iter().any(|l| l.rule == Rule::FlatFee));
    }

    #[test]
    fn refunds_claw_back_in_proportion_and_a_full_refund_nets_to_zero() {
        let h = three_levels();
        let plan = Plan {
            overrides: vec![rate(500), rate(200)],
            flat_fee: 50,
            ..Plan::reference()
        };
        let mut refund = pay(0, 100_00, JAN + DAY);
        refund.kind = PaymentKind::Refund;
        refund.reverses = Some(0);
        let run = commission(&plan, &[pay(0, 100_00, JAN), refund], &h, january()).expect("runs");
        for t in &run.totals {
            assert_eq!(t.total, 0, "{t:?}");
        }
        assert!(run
            .lines
            .iter()
            .filter(|l| l.payment == 1)
            .all(Line::is_clawback));
        let mut partial = refund;
        partial.amount = 25_00;
        partial.kind = PaymentKind::Chargeback;
        let run = commission(&plan, &[pay(0, 100_00, JAN), partial], &h, january()).expect("runs");
        let clawed: i64 = run
            .lines
            .iter()
            .filter(|l| l.payment == 1)
            .map(|l| l.amount)
            .sum();
        // Earned 15 + 5 + 2 + 0.50 = 22.50; a quarter back is 5.63 (half up).
        assert_eq!(clawed, -5_63);
        // A refund of a payment from an earlier period claws back in this one.
        let feb = Period {
            start_ms: FEB,
            end_ms: FEB + 28 * DAY,
            as_of_ms: FEB + 28 * DAY,
        };
        let mut late = refund;
        late.at_ms = FEB + DAY;
        let run = commission(&plan, &[pay(0, 100_00, JAN), late], &h, feb).expect("runs");
        assert_eq!(run.totals[2].clawbacks, -15_50);
        assert_eq!(
            run.totals[2].total, -15_50,
            "a payable balance may go negative"
        );
    }

    #[test]
    fn only_completed_payments_in_the_half_open_period_count() {
        let h = three_levels();
        let mut pending = pay(0, 100_00, JAN);
        pending.status = PaymentStatus::Pending;
        let mut failed = pay(0, 100_00, JAN);
        failed.status = PaymentStatus::Failed;
        let payments = [
            pending,
            failed,
            pay(0, 100_00, JAN - 1),
            pay(0, 100_00, FEB),
            pay(0, 100_00, FEB - 1),
        ];
        let run = commission(&no_overrides(), &payments, &h, january()).expect("runs");
        assert_eq!((run.totals[2].payments, run.totals[2].revenue), (1, 100_00));
    }

    #[test]
    fn bad_hierarchies_plans_and_payments_are_invalid_input() {
        let cycle = vec![reseller("a", Some(1), 0), reseller("b", Some(0), 0)];
        let e = Hierarchy::new(cycle, Vec::new(), 8).expect_err("a cycle");
        assert!(e.to_string().contains("cycle"), "{e}");
        let deep = vec![
            reseller("a", None, 0),
            reseller("b", Some(0), 0),
            reseller("c", Some(1), 0),
        ];
        let e = Hierarchy::new(deep.clone(), Vec::new(), 1).expect_err("too deep");
        assert!(e.to_string().contains("more than 1 levels"), "{e}");
        assert!(Hierarchy::new(deep, Vec::new(), 2).is_ok());
        let dangling = vec![reseller("a", Some(7), 0)];
        assert!(Hierarchy::new(dangling, Vec::new(), 2).is_err());
        let orphan = vec![CustomerNode {
            reseller: 3,
            since_ms: 0,
        }];
        assert!(Hierarchy::new(vec![reseller("a", None, 0)], orphan, 2).is_err());

        let h = three_levels();
        let bad_plans = [
            Plan {
                base: BaseRule::ChildCount(vec![(10, rate(1))]),
                ..Plan::reference()
            },
            Plan {
                base: BaseRule::ChildCount(vec![(0, rate(1)), (10, rate(1))]),
                ..Plan::reference()
            },
            Plan {
                base: BaseRule::Revenue {
                    mode: BandMode::Volume,
                    bands: vec![RevenueBand {
                        up_to: Some(5),
                        rate: rate(1),
                        flat_fee: 0,
                    }],
                },
                ..Plan::reference()
            },
            Plan {
                flat_fee: -1,
                ..Plan::reference()
            },
            Plan {
                overrides: vec![rate(1); LEVELS_MAX + 1],
                ..Plan::reference()
            },
        ];
        for plan in bad_plans {
            assert!(commission(&plan, &[], &h, january()).is_err(), "{plan:?}");
        }
        let mut refund = pay(0, 200_00, JAN);
        refund.kind = PaymentKind::Refund;
        refund.reverses = Some(0);
        let bad_payments = [
            vec![pay(99, 1, JAN)],
            vec![pay(0, 0, JAN)],
            vec![pay(0, 100_00, JAN), refund],
            vec![Payment {
                reverses: Some(0),
                ..pay(0, 1, JAN)
            }],
        ];
        for payments in bad_payments {
            assert!(matches!(
                commission(&Plan::reference(), &payments, &h, january()),
                Err(Error::InvalidInput { .. })
            ));
        }
        assert!(commission(
            &Plan::reference(),
            &[],
            &h,
            Period {
                end_ms: JAN,
                ..january()
            }
        )
        .is_err());
    }

    #[test]
    fn allocation_keeps_the_whole() {
        assert_eq!(allocate(10, &[1, 1, 1]), [4, 3, 3]);
        assert_eq!(allocate(-10, &[1, 1, 1]), [-4, -3, -3]);
        assert_eq!(allocate(7, &[0, 0]), [7, 0]);
        assert_eq!(allocate(5, &[3, 1]), [4, 1]);
    }

    /// One reseller (own rate `units`) with `n` customers, all customers since `since_ms`.
    fn one_reseller(units: u16, n: u32, since_ms: i64) -> Hierarchy {
        let customers = (0..n)
            .map(|_| CustomerNode {
                reseller: 0,
                since_ms,
            })
            .collect();
        Hierarchy::new(vec![reseller("r", None, units)], customers, 3).expect("valid")
    }

    fn amounts(run: &Run) -> Vec<(u32, Rule, i64)> {
        run.lines
            .iter()
            .map(|l| (l.payment, l.rule, l.amount))
            .collect()
    }

    fn year() -> Period {
        Period {
            start_ms: JAN,
            end_ms: JAN + 365 * DAY,
            as_of_ms: JAN + 365 * DAY,
        }
    }

    #[test]
    fn step_down_pays_the_rate_of_the_customers_month() {
        // FirstPromoter: the first 3 months at 40 %, then 20 %.
        let plan = Plan {
            step_down: vec![
                Step {
                    months: Some(3),
                    rate: rate(4000),
                },
                Step {
                    months: None,
                    rate: rate(2000),
                },
            ],
            ..no_overrides()
        };
        let h = one_reseller(0, 1, JAN);
        let march_31 = JAN + 89 * DAY;
        let april_1 = JAN + 90 * DAY;
        let payments = [
            pay(0, 100_00, JAN + 14 * DAY),
            pay(0, 100_00, march_31),
            pay(0, 100_00, april_1),
            pay(0, 100_00, JAN + 340 * DAY),
        ];
        let run = commission(&plan, &payments, &h, year()).expect("runs");
        assert_eq!(
            amounts(&run),
            vec![
                (0, Rule::StepDown, 40_00),
                (1, Rule::StepDown, 40_00),
                (2, Rule::StepDown, 20_00),
                (3, Rule::StepDown, 20_00)
            ]
        );
        assert_eq!(run.totals[0].rate, rate(3000), "the effective rate");
        // The steps set the direct rate: with another base, or steps out of shape, refused.
        let code = |p: Plan| p.check().err().map(|e| e.code().as_str());
        let childcount = Plan {
            base: BaseRule::ChildCount(child_count_reference()),
            ..plan.clone()
        };
        assert_eq!(code(childcount), Some("INVALID_INPUT"));
        let closed = Plan {
            step_down: vec![Step {
                months: Some(3),
                rate: rate(4000),
            }],
            ..plan.clone()
        };
        assert_eq!(code(closed), Some("INVALID_INPUT"));
        let overpaid = Plan {
            overrides: vec![rate(6001)],
            ..plan
        };
        assert_eq!(code(overpaid), Some("INVALID_INPUT"));
    }

    #[test]
    fn recurring_payments_pay_on_a_customers_first_payments_only() {
        // Tapfiliate: commission on the first 2 payments of each customer, wherever they fall.
        let plan = Plan {
            recurring_payments: Some(2),
            ..no_overrides()
        };
        let h = one_reseller(1000, 2, JAN - 60 * DAY);
        let payments = [
            pay(0, 100_00, JAN - 10 * DAY), // before the period: the first of customer 0
            pay(0, 100_00, JAN + DAY),
            pay(0, 100_00, JAN + 2 * DAY),
            pay(1, 50_00, JAN + 3 * DAY),
            pay(1, 50_00, JAN + 4 * DAY),
            pay(1, 50_00, JAN + 5 * DAY),
        ];
        let run = commission(&plan, &payments, &h, january()).expect("runs");
        assert_eq!(
            amounts(&run),
            vec![
                (1, Rule::Percentage, 10_00),
                (3, Rule::Percentage, 5_00),
                (4, Rule::Percentage, 5_00)
            ]
        );
        // A refund of a payment past the limit claws nothing back.
        let mut refund = pay(0, 100_00, JAN + 6 * DAY);
        refund.kind = PaymentKind::Refund;
        refund.reverses = Some(2);
        let mut with_refund = payments.to_vec();
        with_refund.push(refund);
        let run = commission(&plan, &with_refund, &h, january()).expect("runs");
        assert_eq!(run.totals[0].clawbacks, 0);
    }

    #[test]
    fn per_payment_bounds_hold_the_direct_commission_of_each_payment() {
        // Lago: 1 % with a 0.50 flat fee, at least 1.00 and at most 5.00 a transaction.
        let plan = Plan {
            flat_fee: 50,
            per_payment_minimum: Some(1_00),
            per_payment_maximum: Some(5_00),
            ..no_overrides()
        };
        let h = one_reseller(100, 1, JAN);
        let payments = [
            pay(0, 20_00, JAN + DAY),     // 0.20 + 0.50 = 0.70 → 1.00
            pay(0, 300_00, JAN + DAY),    // 3.00 + 0.50 = 3.50
            pay(0, 1_000_00, JAN + DAY),  // 10.00 + 0.50 = 10.50 → 5.00
            pay(0, 10_000_00, JAN + DAY), // 100.00 + 0.50 → 5.00
        ];
        let run = commission(&plan, &payments, &h, january()).expect("runs");
        let by_payment: Vec<i64> = (0..4)
            .map(|i| {
                run.lines
                    .iter()
                    .filter(|l| l.payment == i)
                    .map(|l| l.amount)
                    .sum()
            })
            .collect();
        assert_eq!(by_payment, vec![1_00, 3_50, 5_00, 5_00]);
        assert_eq!(
            amounts(&run)[..2],
            [(0, Rule::Percentage, 50), (0, Rule::FlatFee, 50)]
        );
        // A minimum never raises past the payment: 1.00 on a payment of 0.40 pays 0.40.
        let no_fee = Plan {
            flat_fee: 0,
            ..plan.clone()
        };
        let small = commission(&no_fee, &[pay(0, 40, JAN + DAY)], &h, january()).expect("runs");
        assert_eq!(small.totals[0].direct, 40);
        // A full refund claws back exactly what was paid.
        let mut refund = pay(0, 1_000_00, JAN + 2 * DAY);
        refund.kind = PaymentKind::Refund;
        refund.reverses = Some(2);
        let mut with_refund = payments.to_vec();
        with_refund.push(refund);
        let run = commission(&plan, &with_refund, &h, january()).expect("runs");
        assert_eq!(run.totals[0].clawbacks, -5_00);
        let code = |p: Plan| p.check().err().map(|e| e.code().as_str());
        let crossed = Plan {
            per_payment_minimum: Some(6_00),
            ..plan
        };
        assert_eq!(code(crossed), Some("INVALID_INPUT"));
    }

    #[test]
    fn graduated_child_count_rates_each_customer_by_its_place() {
        // Refvenue: customers 1 to 10 at the first tier, the next ones at the next. The
        // reference tiers with 13 customers paying 100.00 each: 10 × 10.00 + 3 × 12.00.
        let plan = Plan {
            base: BaseRule::ChildCount(child_count_reference()),
            child_count_mode: BandMode::Graduated,
            ..no_overrides()
        };
        let customers = (0..13)
            .map(|i| CustomerNode {
                reseller: 0,
                since_ms: JAN - 100 * DAY + i64::from(i) * DAY,
            })
            .collect();
        let h = Hierarchy::new(vec![reseller("r", None, 0)], customers, 3).expect("valid");
        let payments: Vec<Payment> = (0..13).map(|c| pay(c, 100_00, JAN + DAY)).collect();
        let run = commission(&plan, &payments, &h, january()).expect("runs");
        assert_eq!(run.totals[0].direct, 136_00);
        assert_eq!(
            run.totals[0].rate,
            rate(1046),
            "the effective rate: 136.00 of 1 300.00"
        );
        assert_eq!(run.lines[9].rate, rate(1000));
        assert_eq!(run.lines[10].rate, rate(1200));
        let volume = Plan {
            child_count_mode: BandMode::Volume,
            ..plan
        };
        let run = commission(&volume, &payments, &h, january()).expect("runs");
        assert_eq!(run.totals[0].direct, 156_00);
    }

    #[test]
    fn a_refund_of_a_capped_payment_claws_back_what_it_earned() {
        // 50 %, a cap of 1 000.00: a payment of 3 000.00 earns 1 000.00, and its full refund
        // in the same period takes back those 1 000.00, not 1 500.00.
        for attribution in [CapAttribution::Proportional, CapAttribution::Chronological] {
            let plan = Plan {
                cap_per_period: Some(1_000_00),
                cap_attribution: attribution,
                ..no_overrides()
            };
            let h = one_reseller(5000, 1, JAN);
            let mut refund = pay(0, 3_000_00, JAN + 2 * DAY);
            refund.kind = PaymentKind::Refund;
            refund.reverses = Some(0);
            let run = commission(&plan, &[pay(0, 3_000_00, JAN + DAY), refund], &h, january())
                .expect("runs");
            assert_eq!(
                (
                    run.totals[0].direct,
                    run.totals[0].clawbacks,
                    run.totals[0].total
                ),
                (1_000_00, -1_000_00, 0),
                "{attribution:?}"
            );
        }
    }

    #[test]
    fn a_chronological_cap_pays_lines_in_order_until_it_is_reached() {
        // Affonso: 50 % and a cap of 1 000.00; payments of 800.00 pay 400.00, 400.00, then the
        // crossing one the 200.00 left, and the last nothing.
        let plan = Plan {
            cap_per_period: Some(1_000_00),
            cap_attribution: CapAttribution::Chronological,
            ..no_overrides()
        };
        let h = one_reseller(5000, 1, JAN);
        // Out of time order on purpose: the order is the payments' time.
        let payments = [
            pay(0, 800_00, JAN + 3 * DAY),
            pay(0, 800_00, JAN + DAY),
            pay(0, 800_00, JAN + 2 * DAY),
            pay(0, 800_00, JAN + 4 * DAY),
        ];
        let run = commission(&plan, &payments, &h, january()).expect("runs");
        assert_eq!(
            amounts(&run),
            vec![
                (0, Rule::Percentage, 200_00),
                (1, Rule::Percentage, 400_00),
                (2, Rule::Percentage, 400_00),
                (3, Rule::Percentage, 0)
            ]
        );
        assert_eq!(
            (run.totals[0].direct, run.totals[0].capped),
            (1_000_00, 600_00)
        );
        let proportional = Plan {
            cap_attribution: CapAttribution::Proportional,
            ..plan
        };
        let run = commission(&proportional, &payments, &h, january()).expect("runs");
        assert!(run.lines.iter().all(|l| l.amount == 250_00));
    }

    #[test]
    fn revenue_bands_carry_flat_fees() {
        // Lago's graduated percentage: up to 1 000.00 at 1 % + 200.00, beyond at 0.5 % + 300.00.
        let bands = vec![
            RevenueBand {
                up_to: Some(1_000_00),
                rate: rate(100),
                flat_fee: 200_00,
            },
            RevenueBand {
                up_to: None,
                rate: rate(50),
                flat_fee: 300_00,
            },
        ];
        let plan = |mode| Plan {
            base: BaseRule::Revenue {
                mode,
                bands: bands.clone(),
            },
            ..no_overrides()
        };
        let h = one_reseller(0, 1, JAN);
        let payments = [pay(0, 500_00, JAN + DAY), pay(0, 1_000_00, JAN + 2 * DAY)];
        // 1 500.00: 10.00 + 2.50, and both fees.
        let run = commission(&plan(BandMode::Graduated), &payments, &h, january()).expect("runs");
        assert_eq!(run.totals[0].direct, 12_50 + 500_00);
        let fees: Vec<(u32, i64)> = run
            .lines
            .iter()
            .filter(|l| l.rule == Rule::BandFee)
            .map(|l| (l.payment, l.amount))
            .collect();
        assert_eq!(fees, vec![(0, 166_67), (1, 333_33)], "shared by amount");
        // Volume: 1 500.00 ends in the second band, 0.5 % of all of it and its fee.
        let run = commission(&plan(BandMode::Volume), &payments, &h, january()).expect("runs");
        assert_eq!(run.totals[0].direct, 7_50 + 300_00);
        // A full refund of the second payment claws back its share of the fee with it.
        let mut refund = pay(0, 1_000_00, JAN + 3 * DAY);
        refund.kind = PaymentKind::Refund;
        refund.reverses = Some(1);
        let run = commission(
            &plan(BandMode::Volume),
            &[payments[0], payments[1], refund],
            &h,
            january(),
        )
        .expect("runs");
        assert_eq!(run.totals[0].clawbacks, -(5_00 + 200_00));
        // No revenue reaches no band.
        let run = commission(&plan(BandMode::Graduated), &[], &h, january()).expect("runs");
        assert_eq!(run.totals[0].direct, 0);
        // Under a recurring limit of one payment, the second earns nothing: the first takes
        // all of the fee, which is paid in full.
        let limited = Plan {
            recurring_payments: Some(1),
            ..plan(BandMode::Volume)
        };
        let run = commission(&limited, &payments, &h, january()).expect("runs");
        let fees: Vec<(u32, i64)> = run
            .lines
            .iter()
            .filter(|l| l.rule == Rule::BandFee)
            .map(|l| (l.payment, l.amount))
            .collect();
        assert_eq!(fees, vec![(0, 300_00)]);
    }

    #[test]
    fn a_plan_that_can_pay_more_than_the_payment_is_refused() {
        let code = |r: Result<()>| r.err().map(|e| e.code().as_str());
        let overrides = vec![rate(500), rate(300)];
        let tiers = Plan {
            base: BaseRule::ChildCount(vec![(10, rate(9300)), (0, rate(1000))]),
            overrides: overrides.clone(),
            ..Plan::reference()
        };
        assert_eq!(
            code(tiers.check()),
            Some("INVALID_INPUT"),
            "93 % + 5 % + 3 %"
        );
        let at_most = Plan {
            base: BaseRule::ChildCount(vec![(10, rate(9200)), (0, rate(1000))]),
            overrides,
            ..Plan::reference()
        };
        assert_eq!(code(at_most.check()), None, "exactly all of it");
        let banded = Plan {
            overrides: vec![rate(2000)],
            ..banded(BandMode::Graduated)
        };
        assert_eq!(code(banded.check()), None);
        // The reseller's own rate: 96 % with the reference's 5 % override.
        let h = Hierarchy::new(
            vec![reseller("a", None, 0), reseller("b", Some(0), 9600)],
            vec![CustomerNode {
                reseller: 1,
                since_ms: JAN,
            }],
            3,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // At the top, no override is paid above it: all of the payment is its to earn.
        let top = Hierarchy::new(
            vec![reseller("a", None, 10_000)],
            vec![CustomerNode {
                reseller: 0,
                since_ms: JAN,
            }],
            3,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let all = commission(&Plan::reference(), &[pay(0, 100_00, JAN)], &top, january());
        assert_eq!(all.map(|r| r.totals[0].direct).ok(), Some(100_00));
        let refused = commission(&Plan::reference(), &[pay(0, 100_00, JAN)], &h, january());
        assert_eq!(
            refused.err().map(|e| e.to_string()),
            Some("hierarchy.resellers[1].rate: a direct rate of 0.9600 and overrides of 0.0500 on the levels above would pay 1.0100 of a payment: at most 1".to_owned())
        );
    }

    proptest::proptest! {
        #[test]
        fn allocation_sums_to_the_whole_and_each_part_is_within_one_unit_of_its_share(
            total in -1_000_000_000i64..1_000_000_000,
            weights in proptest::collection::vec(0i128..100_000, 1..40),
        ) {
            let parts = allocate(total, &weights);
            proptest::prop_assert_eq!(parts.iter().sum::<i64>(), total);
            let sum: i128 = weights.iter().sum();
            if sum > 0 {
                for (part, w) in parts.iter().zip(&weights) {
                    let exact = i128::from(total) * w;
                    let low = exact.div_euclid(sum);
                    proptest::prop_assert!(i128::from(*part) >= low.min(low + 1) - 1 && i128::from(*part) <= low + 1);
                }
            }
        }

        #[test]
        fn the_64_bit_allocation_gives_the_128_bit_one(
            total in proptest::prop_oneof![-1_000_000_000i64..1_000_000_000, proptest::num::i64::ANY],
            weights in proptest::collection::vec(proptest::prop_oneof![0i128..10_001, 0i128..i128::from(u64::MAX)], 1..=16),
        ) {
            let mut fast = vec![0i64; weights.len()];
            let mut wide = vec![0i64; weights.len()];
            allocate_wide(total, &weights, &mut wide);
            if allocate_small(total, &weights, &mut fast) {
                proptest::prop_assert_eq!(fast, wide);
            }
        }

        #[test]
        fn levels_sum_to_the_split_and_a_full_refund_nets_to_zero(
            amount in 1i64..10_000_000_00,
            own in 0u16..=6_000,
            o1 in 0u16..=2_000,
            o2 in 0u16..=2_000,
            fee in 0i64..500,
        ) {
            let resellers = vec![reseller("a", None, 0), reseller("b", Some(0), 0), reseller("c", Some(1), own)];
            let h = Hierarchy::new(resellers, vec![CustomerNode { reseller: 2, since_ms: JAN }], 3).expect("valid");
            let plan = Plan { overrides: vec![rate(o1), rate(o2)], flat_fee: fee, ..Plan::reference() };
            let mut refund = pay(0, amount, JAN + DAY);
            refund.kind = PaymentKind::Refund;
            refund.reverses = Some(0);
            let run = commission(&plan, &[pay(0, amount, JAN), refund], &h, january()).expect("runs");
            let split: i64 = run.lines.iter().filter(|l| l.payment == 0 && l.rule != Rule::FlatFee).map(|l| l.amount).sum();
            let exact = i128::from(amount) * i128::from(own + o1 + o2);
            proptest::prop_assert_eq!(i128::from(split), Rounding::HalfUp.divide(exact, RATE_ONE).unwrap_or(-1));
            for t in &run.totals {
                proptest::prop_assert_eq!(t.total, 0);
            }
        }
    }
}

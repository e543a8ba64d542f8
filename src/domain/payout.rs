//! Recorded commission: the lines a commission run persists, their statuses (pending, approved
//! after the hold, paid, reversed), commission payments to resellers, payout batches, and the
//! reconciliation of recorded lines against a fresh run. Pure: the engine performs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::commission::Rule;
use super::error::{Error, Result};
use super::money::Rate;
use super::record::Fields;
use super::reseller::iso_time;

/// Where a recorded commission line stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommissionStatus {
    /// In the hold period.
    Pending,
    /// Payable: the hold has passed (clawbacks are payable at once).
    Approved,
    /// Settled by a payout batch.
    Paid,
    /// Cancelled before it was paid: a full refund or chargeback of its payment, and that
    /// clawback line with it.
    Reversed,
}

impl CommissionStatus {
    pub const ALL: [Self; 4] = [Self::Pending, Self::Approved, Self::Paid, Self::Reversed];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Paid => "paid",
            Self::Reversed => "reversed",
        }
    }

    /// Still to be paid (or netted): pending or approved.
    #[must_use]
    pub const fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Approved)
    }
}

/// One recorded commission line: a [`super::commission::Line`] with names instead of indexes,
/// times, and a status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommissionLine {
    /// `cm_<payment>_<level>_<rule>`: a run that meets the same payment again finds it.
    pub id: String,
    pub payment_id: String,
    pub client_id: String,
    pub reseller_id: String,
    pub level: u8,
    pub rule: Rule,
    pub rate: Rate,
    /// Minor units the rate applied to (negative for a clawback).
    pub base: i64,
    /// Minor units (negative for a clawback).
    pub amount: i64,
    /// When the payment (or refund) was made.
    pub payment_at: DateTime<Utc>,
    /// When the line becomes payable: the payment's time plus the hold.
    pub payable_at: DateTime<Utc>,
    pub status: CommissionStatus,
    /// For a clawback: the line it claws back.
    pub reverses: Option<String>,
    /// The payout batch that paid it.
    pub batch_id: Option<String>,
    /// For an adjustment: the line it adjusts (`cm_<payment>_<level>_<rule>`).
    pub adjusts: Option<String>,
    /// For an adjustment: why the line it adjusts no longer holds.
    pub reason: Option<AdjustmentReason>,
    pub recorded_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Why a run recorded an adjustment: what moved between the recorded line and the one the same
/// period gives now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdjustmentReason {
    /// Another reseller now earns the line (the hierarchy above the payment changed): the one
    /// that held it is adjusted to nothing and the one that earns it gets it.
    Reseller,
    /// The rate moved: a child-count tier, a revenue band, or the reseller's own rate.
    Rate,
    /// The amount the rate applies to moved (a graduated allocation, a partial refund).
    Base,
    /// Same rate, same base, another amount: a cap or a remainder spread over the period's
    /// lines moved (a late payment in a capped period).
    Allocation,
    /// The run no longer gives the line (the payment is no longer completed, the level has no
    /// reseller, the plan no longer has the rule).
    Removed,
}

impl AdjustmentReason {
    pub const ALL: [Self; 5] = [
        Self::Reseller,
        Self::Rate,
        Self::Base,
        Self::Allocation,
        Self::Removed,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Reseller => "reseller",
            Self::Rate => "rate",
            Self::Base => "base",
            Self::Allocation => "allocation",
            Self::Removed => "removed",
        }
    }
}

fn stored_time(f: &mut Fields, key: &str) -> Result<DateTime<Utc>> {
    let text = f.string(key)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| Error::invalid(f.path(key), e.to_string()))
}

fn stored_minor(f: &mut Fields, key: &str) -> Result<i64> {
    f.take(key)
        .and_then(|v| v.as_i64())
        .ok_or_else(|| Error::invalid(f.path(key), "expected a whole number of minor units"))
}

impl CommissionLine {
    /// The id a line of `payment` at `level` by `rule` is recorded under.
    #[must_use]
    pub fn line_id(payment_id: &str, level: u8, rule: Rule) -> String {
        format!("cm_{payment_id}_{level}_{}", rule.as_str())
    }

    /// The id of the `n`th adjustment (from 1) of the line `line_id`. It cannot name a line: a
    /// line's id ends in its rule.
    #[must_use]
    pub fn adjustment_id(line_id: &str, n: u32) -> String {
        format!("{line_id}_adj{n}")
    }

    /// The line this one is a part of: its own id, or for an adjustment the line it adjusts.
    #[must_use]
    pub fn line_of(&self) -> &str {
        self.adjusts.as_deref().unwrap_or(&self.id)
    }

    /// Which adjustment of its line this is: 0 for the line itself.
    fn adjustment_number(&self) -> u32 {
        self.adjusts
            .as_deref()
            .and_then(|line| self.id.strip_prefix(line))
            .and_then(|rest| rest.strip_prefix("_adj"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    fn moved(&self, to: CommissionStatus, action: &'static str, at: DateTime<Utc>) -> Result<Self> {
        let allowed = match to {
            CommissionStatus::Approved => self.status == CommissionStatus::Pending,
            CommissionStatus::Paid => self.status == CommissionStatus::Approved,
            CommissionStatus::Reversed => self.status.is_open(),
            CommissionStatus::Pending => false,
        };
        if !allowed {
            return Err(Error::StatusTransitionDenied {
                entity: "commission",
                key: self.id.clone(),
                from: self.status.as_str().into(),
                action: action.into(),
            });
        }
        Ok(Self {
            status: to,
            updated_at: at,
            ..self.clone()
        })
    }

    /// Pending → approved, once the hold has passed by `as_of`.
    pub fn approve(&self, as_of: DateTime<Utc>) -> Result<Self> {
        if self.payable_at > as_of {
            return Err(Error::invalid(
                "asOf",
                format!(
                    "commission \"{}\" is held until {}",
                    self.id,
                    iso_time::format(self.payable_at)
                ),
            ));
        }
        self.moved(CommissionStatus::Approved, "approved", as_of)
    }

    /// Approved → paid by `batch`.
    pub fn pay(&self, batch: &str, at: DateTime<Utc>) -> Result<Self> {
        let mut paid = self.moved(CommissionStatus::Paid, "paid", at)?;
        paid.batch_id = Some(batch.to_owned());
        Ok(paid)
    }

    /// Pending or approved → reversed.
    pub fn reverse(&self, at: DateTime<Utc>) -> Result<Self> {
        self.moved(CommissionStatus::Reversed, "reversed", at)
    }

    #[must_use]
    pub fn to_json(&self) -> String {
        json!({
            "id": self.id,
            "paymentId": self.payment_id,
            "clientId": self.client_id,
            "resellerId": self.reseller_id,
            "level": self.level,
            "rule": self.rule.as_str(),
            "rate": self.rate.to_decimal().to_string(),
            "baseMinor": self.base,
            "amountMinor": self.amount,
            "paymentAt": iso_time::format(self.payment_at),
            "payableAt": iso_time::format(self.payable_at),
            "status": self.status.as_str(),
            "reverses": self.reverses,
            "batchId": self.batch_id,
            "adjusts": self.adjusts,
            "reason": self.reason.map(AdjustmentReason::as_str),
            "recordedAt": iso_time::format(self.recorded_at),
            "updatedAt": iso_time::format(self.updated_at),
        })
        .to_string()
    }

    pub fn from_json(value: Value, path: &str) -> Result<Self> {
        let mut f = Fields::new(value, path)?;
        let rate_text = f.string("rate")?;
        let level = f
            .take("level")
            .and_then(|v| v.as_u64())
            .and_then(|l| u8::try_from(l).ok())
            .ok_or_else(|| Error::invalid(f.path("level"), "expected a level"))?;
        let line = Self {
            id: f.string("id")?,
            payment_id: f.string("paymentId")?,
            client_id: f.string("clientId")?,
            reseller_id: f.string("resellerId")?,
            level,
            rule: f
                .opt_choice("rule", &Rule::ALL, Rule::as_str)?
                .ok_or_else(|| Error::invalid(f.path("rule"), "is required"))?,
            rate: Rate::parse(&rate_text, &f.path("rate"))?,
            base: stored_minor(&mut f, "baseMinor")?,
            amount: stored_minor(&mut f, "amountMinor")?,
            payment_at: stored_time(&mut f, "paymentAt")?,
            payable_at: stored_time(&mut f, "payableAt")?,
            status: f
                .opt_choice("status", &CommissionStatus::ALL, CommissionStatus::as_str)?
                .ok_or_else(|| Error::invalid(f.path("status"), "is required"))?,
            reverses: f.opt_string("reverses")?,
            batch_id: f.opt_string("batchId")?,
            adjusts: f.opt_string("adjusts")?,
            reason: f.opt_choice("reason", &AdjustmentReason::ALL, AdjustmentReason::as_str)?,
            recorded_at: stored_time(&mut f, "recordedAt")?,
            updated_at: stored_time(&mut f, "updatedAt")?,
        };
        f.finish(&[])?;
        Ok(line)
    }
}

/// A payment of commission to a reseller: made by a payout batch, or recorded by hand
/// (`payCommission`), in which case it is an advance the next batch nets out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommissionPayment {
    pub id: String,
    pub reseller_id: String,
    /// Minor units, at least 1.
    pub amount: i64,
    pub description: Option<String>,
    pub at: DateTime<Utc>,
    /// The batch that made it; `None` for a payment recorded by hand.
    pub batch_id: Option<String>,
    /// For a payment recorded by hand: the batch that netted it out of a payout.
    pub settled_by: Option<String>,
}

impl CommissionPayment {
    /// An advance not yet netted out by a batch.
    #[must_use]
    pub const fn is_open_advance(&self) -> bool {
        self.batch_id.is_none() && self.settled_by.is_none()
    }

    /// The advance, netted out by `batch`.
    pub fn settle(&self, batch: &str) -> Result<Self> {
        if !self.is_open_advance() {
            return Err(Error::StatusTransitionDenied {
                entity: "commissionPayment",
                key: self.id.clone(),
                from: "settled".into(),
                action: "settled".into(),
            });
        }
        Ok(Self {
            settled_by: Some(batch.to_owned()),
            ..self.clone()
        })
    }

    #[must_use]
    pub fn to_json(&self) -> String {
        json!({
            "id": self.id,
            "resellerId": self.reseller_id,
            "amountMinor": self.amount,
            "description": self.description,
            "at": iso_time::format(self.at),
            "batchId": self.batch_id,
            "settledBy": self.settled_by,
        })
        .to_string()
    }

    pub fn from_json(value: Value, path: &str) -> Result<Self> {
        let mut f = Fields::new(value, path)?;
        let payment = Self {
            id: f.string("id")?,
            reseller_id: f.string("resellerId")?,
            amount: stored_minor(&mut f, "amountMinor")?,
            description: f.opt_string("description")?,
            at: stored_time(&mut f, "at")?,
            batch_id: f.opt_string("batchId")?,
            settled_by: f.opt_string("settledBy")?,
        };
        f.finish(&[])?;
        Ok(payment)
    }
}

/// One reseller's part of a payout batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payout {
    pub reseller_id: String,
    /// The approved lines it pays, clawbacks included.
    pub line_ids: Vec<String>,
    /// The advances it nets out.
    pub advance_ids: Vec<String>,
    /// Sum of the positive lines.
    pub earned: i64,
    /// Sum of the clawback lines (≤ 0).
    pub clawbacks: i64,
    /// Sum of the advances netted out (≥ 0).
    pub advances: i64,
    /// What is paid: `earned + clawbacks − advances`.
    pub amount: i64,
    /// The commission payment that paid it, once the batch has paid.
    pub payment_id: Option<String>,
}

/// Why a reseller with open commission is not in a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldReason {
    /// Clawbacks and advances exceed what it earned: it waits until the balance is positive.
    NegativeBalance,
    /// Its lines and advances net to zero.
    NothingPayable,
    /// Positive, below the plan's minimum payout.
    BelowMinimum,
}

impl HoldReason {
    pub const ALL: [Self; 3] = [
        Self::NegativeBalance,
        Self::NothingPayable,
        Self::BelowMinimum,
    ];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NegativeBalance => "negativeBalance",
            Self::NothingPayable => "nothingPayable",
            Self::BelowMinimum => "belowMinimum",
        }
    }
}

/// A reseller left out of a batch, with its payable balance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withheld {
    pub reseller_id: String,
    pub payable: i64,
    pub reason: HoldReason,
}

/// `a + b` in minor units, or the overflow of the figure `what` names (built only on overflow):
/// money sums are checked, never saturated.
pub fn add_minor(a: i64, b: i64, what: impl FnOnce() -> String) -> Result<i64> {
    a.checked_add(b).ok_or_else(|| Error::overflow(what()))
}

/// The sum of `values` in minor units, or the overflow of `what`.
pub fn sum_minor(values: impl IntoIterator<Item = i64>, what: &str) -> Result<i64> {
    values
        .into_iter()
        .try_fold(0i64, |sum, value| add_minor(sum, value, || what.to_owned()))
}

/// A payout's net: earned plus clawbacks (negative) less advances, checked.
pub fn net_minor(earned: i64, clawbacks: i64, advances: i64, reseller: &str) -> Result<i64> {
    let what = || format!("the payout of reseller \"{reseller}\"");
    earned
        .checked_add(clawbacks)
        .and_then(|n| n.checked_sub(advances))
        .ok_or_else(|| Error::overflow(what()))
}

/// The pure payout decision: approved lines and open advances per reseller; a reseller whose
/// net is positive and reaches `minimum` is paid its net, the others are withheld. Resellers in
/// id order. A sum beyond the range of minor units is `Overflow`.
pub fn plan_payouts(
    approved: &[CommissionLine],
    advances: &[CommissionPayment],
    minimum: i64,
) -> Result<(Vec<Payout>, Vec<Withheld>)> {
    let mut by_reseller: BTreeMap<&str, Payout> = BTreeMap::new();
    for line in approved
        .iter()
        .filter(|l| l.status == CommissionStatus::Approved)
    {
        let p = by_reseller
            .entry(line.reseller_id.as_str())
            .or_insert_with(|| Payout::empty(&line.reseller_id));
        p.line_ids.push(line.id.clone());
        let what = || format!("the commission of reseller \"{}\"", line.reseller_id);
        if line.amount >= 0 {
            p.earned = add_minor(p.earned, line.amount, what)?;
        } else {
            p.clawbacks = add_minor(p.clawbacks, line.amount, what)?;
        }
    }
    for advance in advances.iter().filter(|a| a.is_open_advance()) {
        let p = by_reseller
            .entry(advance.reseller_id.as_str())
            .or_insert_with(|| Payout::empty(&advance.reseller_id));
        p.advance_ids.push(advance.id.clone());
        p.advances = add_minor(p.advances, advance.amount, || {
            format!("the advances of reseller \"{}\"", advance.reseller_id)
        })?;
    }
    let mut paid = Vec::new();
    let mut withheld = Vec::new();
    for (_, mut p) in by_reseller {
        p.amount = net_minor(p.earned, p.clawbacks, p.advances, &p.reseller_id)?;
        if p.amount > 0 && p.amount >= minimum {
            paid.push(p);
        } else {
            withheld.push(Withheld {
                reason: match p.amount {
                    a if a < 0 => HoldReason::NegativeBalance,
                    0 => HoldReason::NothingPayable,
                    _ => HoldReason::BelowMinimum,
                },
                reseller_id: p.reseller_id,
                payable: p.amount,
            });
        }
    }
    Ok((paid, withheld))
}

impl Payout {
    fn empty(reseller_id: &str) -> Self {
        Self {
            reseller_id: reseller_id.to_owned(),
            line_ids: Vec::new(),
            advance_ids: Vec::new(),
            earned: 0,
            clawbacks: 0,
            advances: 0,
            amount: 0,
            payment_id: None,
        }
    }
}

/// Whether a payout batch has paid everything it claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchStatus {
    /// Claiming lines and recording payments; the next batch finishes it first.
    Open,
    Paid,
}

impl BatchStatus {
    pub const ALL: [Self; 2] = [Self::Open, Self::Paid];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Paid => "paid",
        }
    }
}

/// A payout batch: one payment per reseller above the minimum, and who was withheld.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayoutBatch {
    pub id: String,
    pub description: Option<String>,
    pub status: BatchStatus,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub payouts: Vec<Payout>,
    pub withheld: Vec<Withheld>,
}

impl PayoutBatch {
    /// The id of the commission payment a batch makes to a reseller.
    #[must_use]
    pub fn payment_id(batch: &str, reseller: &str) -> String {
        format!("cp_{batch}_{reseller}")
    }

    /// What the batch pays in all.
    pub fn total(&self) -> Result<i64> {
        sum_minor(
            self.payouts.iter().map(|p| p.amount),
            &format!("the total of payout batch \"{}\"", self.id),
        )
    }

    #[must_use]
    pub fn to_json(&self) -> String {
        let payouts: Vec<Value> = self
            .payouts
            .iter()
            .map(|p| {
                json!({
                    "resellerId": p.reseller_id,
                    "lineIds": p.line_ids,
                    "advanceIds": p.advance_ids,
                    "earnedMinor": p.earned,
                    "clawbacksMinor": p.clawbacks,
                    "advancesMinor": p.advances,
                    "amountMinor": p.amount,
                    "paymentId": p.payment_id,
                })
            })
            .collect();
        let withheld: Vec<Value> = self
            .withheld
            .iter()
            .map(|w| {
                json!({
                    "resellerId": w.reseller_id,
                    "payableMinor": w.payable,
                    "reason": w.reason.as_str(),
                })
            })
            .collect();
        json!({
            "id": self.id,
            "description": self.description,
            "status": self.status.as_str(),
            "createdAt": iso_time::format(self.created_at),
            "completedAt": self.completed_at.map(iso_time::format),
            "payouts": payouts,
            "withheld": withheld,
        })
        .to_string()
    }

    pub fn from_json(value: Value, path: &str) -> Result<Self> {
        let mut f = Fields::new(value, path)?;
        let mut payouts = Vec::new();
        for (item_path, item) in f.array("payouts")? {
            let mut p = Fields::new(item, &item_path)?;
            let ids = |p: &mut Fields, key: &str| -> Result<Vec<String>> {
                p.array(key)?
                    .into_iter()
                    .map(|(path, v)| match v {
                        Value::String(id) => Ok(id),
                        _ => Err(Error::invalid(path, "expected an id")),
                    })
                    .collect()
            };
            payouts.push(Payout {
                reseller_id: p.string("resellerId")?,
                line_ids: ids(&mut p, "lineIds")?,
                advance_ids: ids(&mut p, "advanceIds")?,
                earned: stored_minor(&mut p, "earnedMinor")?,
                clawbacks: stored_minor(&mut p, "clawbacksMinor")?,
                advances: stored_minor(&mut p, "advancesMinor")?,
                amount: stored_minor(&mut p, "amountMinor")?,
                payment_id: p.opt_string("paymentId")?,
            });
            p.finish(&[])?;
        }
        let mut withheld = Vec::new();
        for (item_path, item) in f.array("withheld")? {
            let mut w = Fields::new(item, &item_path)?;
            withheld.push(Withheld {
                reseller_id: w.string("resellerId")?,
                payable: stored_minor(&mut w, "payableMinor")?,
                reason: w
                    .opt_choice("reason", &HoldReason::ALL, HoldReason::as_str)?
                    .ok_or_else(|| Error::invalid(w.path("reason"), "is required"))?,
            });
            w.finish(&[])?;
        }
        let completed_at = match f.take("completedAt") {
            None => None,
            Some(v) => {
                let mut holder = Fields::new(json!({ "completedAt": v }), path)?;
                Some(stored_time(&mut holder, "completedAt")?)
            }
        };
        let batch = Self {
            id: f.string("id")?,
            description: f.opt_string("description")?,
            status: f
                .opt_choice("status", &BatchStatus::ALL, BatchStatus::as_str)?
                .ok_or_else(|| Error::invalid(f.path("status"), "is required"))?,
            created_at: stored_time(&mut f, "createdAt")?,
            completed_at,
            payouts,
            withheld,
        };
        f.finish(&[])?;
        Ok(batch)
    }
}

/// How a recorded line differs from the one a fresh run gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscrepancyKind {
    /// The run gives a line that was never recorded.
    Missing,
    /// A line is recorded that the run does not give.
    Unexpected,
    /// Both exist and differ in the fields named.
    Changed,
}

impl DiscrepancyKind {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Unexpected => "unexpected",
            Self::Changed => "changed",
        }
    }
}

/// One difference between the recorded commission and a fresh run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discrepancy {
    pub kind: DiscrepancyKind,
    pub line_id: String,
    pub payment_id: String,
    pub expected: Option<CommissionLine>,
    pub recorded: Option<CommissionLine>,
    /// For `Changed`: which fields differ (`resellerId`, `amount`, `rate`, `base`, `payableAt`).
    pub fields: Vec<&'static str>,
}

/// Recorded against expected, line by line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciliation {
    pub expected_lines: u32,
    pub recorded_lines: u32,
    pub matched: u32,
    pub expected_total: i64,
    pub recorded_total: i64,
    /// In line id order.
    pub discrepancies: Vec<Discrepancy>,
}

/// What one reseller holds of a recorded line: the line and its adjustments summed.
#[derive(Clone, Debug)]
struct Held<'a> {
    /// Its first part (the line, or the first adjustment naming this reseller).
    first: &'a CommissionLine,
    /// Its latest part: the rate it carries is the line's rate now.
    latest: &'a CommissionLine,
    amount: i64,
    base: i64,
}

impl Held<'_> {
    /// The line as recorded with its adjustments: the first part's fields, the summed amount
    /// and base, the latest rate.
    fn as_line(&self) -> CommissionLine {
        CommissionLine {
            id: self.first.line_of().to_owned(),
            rate: self.latest.rate,
            base: self.base,
            amount: self.amount,
            adjusts: None,
            reason: None,
            ..self.first.clone()
        }
    }
}

/// One recorded line with its adjustments, by reseller (in id order), and the number of its
/// last adjustment.
fn held_by_reseller<'a>(parts: &[&'a CommissionLine]) -> Result<(BTreeMap<String, Held<'a>>, u32)> {
    let mut sorted: Vec<&CommissionLine> = parts.to_vec();
    sorted.sort_by_key(|l| l.adjustment_number());
    let mut last = 0;
    let mut held: BTreeMap<String, Held<'a>> = BTreeMap::new();
    for part in sorted {
        last = last.max(part.adjustment_number());
        let what = || format!("commission line \"{}\"", part.line_of());
        match held.get_mut(&part.reseller_id) {
            Some(h) => {
                h.amount = add_minor(h.amount, part.amount, what)?;
                h.base = add_minor(h.base, part.base, what)?;
                h.latest = part;
            }
            None => {
                held.insert(
                    part.reseller_id.clone(),
                    Held {
                        first: part,
                        latest: part,
                        amount: part.amount,
                        base: part.base,
                    },
                );
            }
        }
    }
    Ok((held, last))
}

fn sub_minor(a: i64, b: i64, line: &str) -> Result<i64> {
    a.checked_sub(b)
        .ok_or_else(|| Error::overflow(format!("the adjustment of commission line \"{line}\"")))
}

/// The adjustments that bring one recorded line (`parts`: the line and the adjustments recorded
/// for it, of any reseller) to `expected`, the line the same period gives now (`None`: it gives
/// none). Each names the line and why; an adjustment is payable when the line is (a line whose
/// hold has passed, or that was paid, is adjusted at once, as a clawback of it would be).
/// Nothing, when the recorded line already equals `expected` in reseller, amount, base and
/// rate. The parts never change: a paid line stays paid and its adjustment is paid, or netted
/// out, by the next batch.
pub fn adjustments(
    line_id: &str,
    expected: Option<&CommissionLine>,
    parts: &[&CommissionLine],
    now: DateTime<Utc>,
) -> Result<Vec<CommissionLine>> {
    let (held, mut last) = held_by_reseller(parts)?;
    let mut out = Vec::new();
    let mut push = |template: &CommissionLine,
                    rate: Rate,
                    base: i64,
                    amount: i64,
                    reason: AdjustmentReason|
     -> Result<()> {
        last = last.checked_add(1).ok_or_else(|| {
            Error::overflow(format!("the adjustments of commission line \"{line_id}\""))
        })?;
        out.push(CommissionLine {
            id: CommissionLine::adjustment_id(line_id, last),
            rate,
            base,
            amount,
            status: if template.payable_at > now {
                CommissionStatus::Pending
            } else {
                CommissionStatus::Approved
            },
            batch_id: None,
            adjusts: Some(line_id.to_owned()),
            reason: Some(reason),
            recorded_at: now,
            updated_at: now,
            ..template.clone()
        });
        Ok(())
    };
    // Resellers that hold a part of the line and no longer earn it go back to nothing.
    for (reseller, h) in &held {
        if expected.is_some_and(|e| &e.reseller_id == reseller) || (h.amount == 0 && h.base == 0) {
            continue;
        }
        let reason = if expected.is_some() {
            AdjustmentReason::Reseller
        } else {
            AdjustmentReason::Removed
        };
        let template = h.as_line();
        push(
            &template,
            h.latest.rate,
            sub_minor(0, h.base, line_id)?,
            sub_minor(0, h.amount, line_id)?,
            reason,
        )?;
    }
    if let Some(e) = expected {
        let (amount, base, reason) = match held.get(&e.reseller_id) {
            None => (e.amount, e.base, AdjustmentReason::Reseller),
            Some(h) => {
                let reason = if h.latest.rate != e.rate {
                    AdjustmentReason::Rate
                } else if h.base != e.base {
                    AdjustmentReason::Base
                } else {
                    AdjustmentReason::Allocation
                };
                let amount = sub_minor(e.amount, h.amount, line_id)?;
                let base = sub_minor(e.base, h.base, line_id)?;
                if amount == 0 && base == 0 && h.latest.rate == e.rate {
                    return Ok(out);
                }
                (amount, base, reason)
            }
        };
        push(e, e.rate, base, amount, reason)?;
    }
    Ok(out)
}

/// Compares the lines a fresh run gives with the lines recorded for the same payments, each
/// recorded line with its adjustments (their sum by reseller, at the latest rate). Status,
/// batch and times of recording are not compared: they are the lines' history, not their
/// amounts. A recorded line the run no longer gives is unexpected only while it holds something
/// (adjusted to nothing, it is in balance).
pub fn reconcile(
    expected: &[CommissionLine],
    recorded: &[CommissionLine],
) -> Result<Reconciliation> {
    let mut groups: BTreeMap<&str, Vec<&CommissionLine>> = BTreeMap::new();
    let mut out = Reconciliation {
        expected_lines: u32::try_from(expected.len()).unwrap_or(u32::MAX),
        recorded_lines: u32::try_from(recorded.len()).unwrap_or(u32::MAX),
        ..Reconciliation::default()
    };
    for r in recorded {
        out.recorded_total = add_minor(out.recorded_total, r.amount, || {
            "the recorded total".to_owned()
        })?;
        groups.entry(r.line_of()).or_default().push(r);
    }
    let mut seen: BTreeMap<&str, ()> = BTreeMap::new();
    for e in expected {
        out.expected_total = add_minor(out.expected_total, e.amount, || {
            "the expected total".to_owned()
        })?;
        seen.insert(e.id.as_str(), ());
        let Some(parts) = groups.get(e.id.as_str()) else {
            out.discrepancies.push(Discrepancy {
                kind: DiscrepancyKind::Missing,
                line_id: e.id.clone(),
                payment_id: e.payment_id.clone(),
                expected: Some(e.clone()),
                recorded: None,
                fields: Vec::new(),
            });
            continue;
        };
        let (held, _) = held_by_reseller(parts)?;
        let mut fields = Vec::new();
        let others_hold = held
            .iter()
            .any(|(r, h)| r != &e.reseller_id && (h.amount != 0 || h.base != 0));
        let mine = held.get(&e.reseller_id);
        if others_hold || mine.is_none() {
            fields.push("resellerId");
        }
        let shown = mine.or_else(|| held.values().next()).map(Held::as_line);
        if let Some(r) = &shown {
            if r.amount != e.amount {
                fields.push("amount");
            }
            if r.rate != e.rate {
                fields.push("rate");
            }
            if r.base != e.base {
                fields.push("base");
            }
            if r.payable_at != e.payable_at {
                fields.push("payableAt");
            }
        }
        if fields.is_empty() {
            out.matched += 1;
        } else {
            out.discrepancies.push(Discrepancy {
                kind: DiscrepancyKind::Changed,
                line_id: e.id.clone(),
                payment_id: e.payment_id.clone(),
                expected: Some(e.clone()),
                recorded: shown,
                fields,
            });
        }
    }
    for (line_id, parts) in &groups {
        if seen.contains_key(line_id) {
            continue;
        }
        let (held, _) = held_by_reseller(parts)?;
        if let Some(h) = held.values().find(|h| h.amount != 0 || h.base != 0) {
            let shown = h.as_line();
            out.discrepancies.push(Discrepancy {
                kind: DiscrepancyKind::Unexpected,
                line_id: (*line_id).to_owned(),
                payment_id: shown.payment_id.clone(),
                expected: None,
                recorded: Some(shown),
                fields: Vec::new(),
            });
        }
    }
    out.discrepancies.sort_by(|a, b| a.line_id.cmp(&b.line_id));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, day, 0, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn line(id: &str, reseller: &str, amount: i64, status: CommissionStatus) -> CommissionLine {
        CommissionLine {
            id: id.to_owned(),
            payment_id: "p".to_owned(),
            client_id: "c".to_owned(),
            reseller_id: reseller.to_owned(),
            level: 0,
            rule: Rule::Percentage,
            rate: Rate::from_units(1500).unwrap_or(Rate::ZERO),
            base: amount.saturating_mul(100) / 15,
            amount,
            payment_at: at(1),
            payable_at: at(10),
            status,
            reverses: None,
            batch_id: None,
            adjusts: None,
            reason: None,
            recorded_at: at(1),
            updated_at: at(1),
        }
    }

    fn advance(id: &str, reseller: &str, amount: i64) -> CommissionPayment {
        CommissionPayment {
            id: id.to_owned(),
            reseller_id: reseller.to_owned(),
            amount,
            description: None,
            at: at(2),
            batch_id: None,
            settled_by: None,
        }
    }

    #[test]
    fn statuses_move_only_along_the_table() {
        use CommissionStatus::{Approved, Paid, Pending, Reversed};
        let pending = line("a", "r", 100, Pending);
        assert_eq!(
            pending.approve(at(9)).err().map(|e| e.code().as_str()),
            Some("INVALID_INPUT")
        );
        let approved = pending.approve(at(10)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(approved.status, Approved);
        let paid = approved
            .pay("pb_1", at(11))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (paid.status, paid.batch_id.as_deref()),
            (Paid, Some("pb_1"))
        );
        // Every other move is denied, naming where the line stood.
        for (from, step) in [
            (Pending, "pay"),
            (Approved, "approve"),
            (Paid, "approve"),
            (Paid, "pay"),
            (Paid, "reverse"),
            (Reversed, "approve"),
            (Reversed, "pay"),
            (Reversed, "reverse"),
        ] {
            let l = line("a", "r", 100, from);
            let result = match step {
                "approve" => l.approve(at(20)),
                "pay" => l.pay("pb_1", at(20)),
                _ => l.reverse(at(20)),
            };
            assert_eq!(
                result.err().map(|e| e.code().as_str()),
                Some("STATUS_TRANSITION_DENIED"),
                "{from:?} {step}"
            );
        }
        assert_eq!(
            line("a", "r", 1, Pending)
                .reverse(at(2))
                .map(|l| l.status)
                .ok(),
            Some(Reversed)
        );
        assert_eq!(
            line("a", "r", 1, Approved)
                .reverse(at(2))
                .map(|l| l.status)
                .ok(),
            Some(Reversed)
        );
    }

    #[test]
    fn records_read_back_as_written() {
        let mut l = line("cm_p_0_percentage", "rs_1", -1_234, CommissionStatus::Paid);
        l.reverses = Some("cm_o_0_percentage".to_owned());
        l.batch_id = Some("pb_1".to_owned());
        let json: Value = serde_json::from_str(&l.to_json()).unwrap_or_default();
        assert_eq!(CommissionLine::from_json(json, "line").ok(), Some(l));

        let p = CommissionPayment {
            description: Some("Commission for January 2026".to_owned()),
            settled_by: Some("pb_2".to_owned()),
            ..advance("cp_1", "rs_1", 75_000)
        };
        let json: Value = serde_json::from_str(&p.to_json()).unwrap_or_default();
        assert_eq!(CommissionPayment::from_json(json, "payment").ok(), Some(p));

        let (payouts, withheld) = plan_payouts(
            &[
                line("a", "rs_1", 9_000, CommissionStatus::Approved),
                line("b", "rs_2", -100, CommissionStatus::Approved),
            ],
            &[],
            0,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let batch = PayoutBatch {
            id: "pb_1".to_owned(),
            description: None,
            status: BatchStatus::Open,
            created_at: at(3),
            completed_at: Some(at(4)),
            payouts,
            withheld,
        };
        let json: Value = serde_json::from_str(&batch.to_json()).unwrap_or_default();
        assert_eq!(PayoutBatch::from_json(json, "batch").ok(), Some(batch));
    }

    #[test]
    fn payouts_net_clawbacks_and_advances_per_reseller() {
        use CommissionStatus::{Approved, Paid, Pending};
        let lines = [
            line("a1", "a", 10_000, Approved),
            line("a2", "a", -2_000, Approved),
            line("a3", "a", 50_000, Pending),
            line("a4", "a", 70_000, Paid),
            line("b1", "b", 3_000, Approved),
            line("c1", "c", 4_000, Approved),
            line("c2", "c", -4_000, Approved),
            line("d1", "d", 6_000, Approved),
        ];
        let advances = [
            advance("x", "a", 1_000),
            advance("y", "d", 7_000),
            CommissionPayment {
                batch_id: Some("pb".to_owned()),
                ..advance("z", "a", 99_999)
            },
        ];
        let (paid, withheld) =
            plan_payouts(&lines, &advances, 5_000).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(paid.len(), 1);
        let a = &paid[0];
        assert_eq!(
            (
                a.reseller_id.as_str(),
                a.earned,
                a.clawbacks,
                a.advances,
                a.amount
            ),
            ("a", 10_000, -2_000, 1_000, 7_000)
        );
        assert_eq!(a.line_ids, vec!["a1", "a2"]);
        assert_eq!(a.advance_ids, vec!["x"]);
        let reasons: Vec<(&str, i64, HoldReason)> = withheld
            .iter()
            .map(|w| (w.reseller_id.as_str(), w.payable, w.reason))
            .collect();
        assert_eq!(
            reasons,
            vec![
                ("b", 3_000, HoldReason::BelowMinimum),
                ("c", 0, HoldReason::NothingPayable),
                ("d", -1_000, HoldReason::NegativeBalance),
            ]
        );
    }

    #[test]
    fn reconciliation_pairs_lines_by_id() {
        use CommissionStatus::Approved;
        let expected = [line("a", "r", 100, Approved), line("b", "r", 200, Approved)];
        let mut moved = line("b", "s", 250, CommissionStatus::Paid);
        moved.recorded_at = at(5);
        moved.base = expected[1].base;
        let recorded = [moved, line("c", "r", 5, Approved)];
        let report = reconcile(&expected, &recorded).unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<(&str, DiscrepancyKind, Vec<&str>)> = report
            .discrepancies
            .iter()
            .map(|d| (d.line_id.as_str(), d.kind, d.fields.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", DiscrepancyKind::Missing, vec![]),
                ("b", DiscrepancyKind::Changed, vec!["resellerId", "amount"]),
                ("c", DiscrepancyKind::Unexpected, vec![]),
            ]
        );
        assert_eq!(
            (report.expected_total, report.recorded_total, report.matched),
            (300, 255, 0)
        );
        let same = reconcile(&expected, &expected).unwrap_or_else(|e| panic!("{e}"));
        assert!(same.discrepancies.is_empty());
        assert_eq!(same.matched, 2);
    }

    /// Money sums are checked: a batch or a reconciliation beyond the range of minor units is
    /// an `Overflow` naming the figure, never a saturated total.
    #[test]
    fn sums_beyond_the_range_are_refused() {
        let huge = [
            line("a", "rs_1", i64::MAX, CommissionStatus::Approved),
            line("b", "rs_1", 1, CommissionStatus::Approved),
        ];
        let refused = plan_payouts(&huge, &[], 0).err().map(|e| e.to_string());
        assert_eq!(
            refused.as_deref(),
            Some("the commission of reseller \"rs_1\": the result is beyond the range amounts are held in exactly")
        );
        let owed = [line("a", "rs_1", -2, CommissionStatus::Approved)];
        let advance = [advance("cp", "rs_1", i64::MAX)];
        assert_eq!(
            plan_payouts(&owed, &advance, 0)
                .err()
                .map(|e| e.code().as_str()),
            Some("INVALID_INPUT")
        );
        assert!(reconcile(&huge, &[]).is_err());
        let (payouts, _) = plan_payouts(
            &[
                line("a", "rs_1", i64::MAX, CommissionStatus::Approved),
                line("b", "rs_2", 1, CommissionStatus::Approved),
            ],
            &[],
            0,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let batch = PayoutBatch {
            id: "pb".to_owned(),
            description: None,
            status: BatchStatus::Open,
            created_at: at(1),
            completed_at: None,
            payouts,
            withheld: Vec::new(),
        };
        assert!(batch.total().is_err());
    }
}

//! Client payments through the storage port, and the commission reports over them (the
//! reference's `calculateChildAccountsRevenue`, `generateCommissionReport`,
//! `getAllResellersCommission`).

use std::collections::HashSet;

use chrono::{DateTime, Datelike, Utc};
use serde_json::Value;

use super::periods::{KnownResellers, ResellerRun};
use super::ports::{Clock, Mailer, Storage, StoredRecord, WriteOutcome};
use super::{storage_failed, Ally};
use crate::domain::client::Client;
use crate::domain::commission::{PaymentKind, PaymentStatus, Period, ResellerTotal, Rule};
use crate::domain::money::Rate;
use crate::domain::payment::PaymentRecord;
use crate::domain::reseller::Reseller;
use crate::domain::{Error, Result};

pub(super) const COLLECTION: &str = "payments";
const INDEX_RESELLER: &str = "resellerId";
pub(super) const INDEX_CLIENT: &str = "clientId";
/// Payments by the month of their time, `YYYY-MM` (UTC): a run reads its period by this.
pub(super) const INDEX_MONTH: &str = "month";
/// Payments by month and reseller, `YYYY-MM/<reseller id>`: a run reads one reseller's period
/// by this.
pub(super) const INDEX_RESELLER_MONTH: &str = "resellerMonth";

/// The month of a time, `YYYY-MM` (UTC), as the month indexes name it.
pub(super) fn month_of(at: DateTime<Utc>) -> String {
    month_name(month_index(at))
}

/// Months since year 0 (`year × 12 + month − 1`): consecutive months are consecutive numbers.
pub(super) fn month_index(at: DateTime<Utc>) -> i64 {
    i64::from(at.year()) * 12 + i64::from(at.month0())
}

/// The `YYYY-MM` name of a [`month_index`], the one form every month index is written in.
pub(super) fn month_name(index: i64) -> String {
    format!(
        "{:04}-{:02}",
        index.div_euclid(12),
        index.rem_euclid(12) + 1
    )
}

/// The value of [`INDEX_RESELLER_MONTH`]: the month first, so that no reseller id can make two
/// pairs read the same (a month holds no `/`).
pub(super) fn reseller_month(month: &str, reseller_id: &str) -> String {
    format!("{month}/{reseller_id}")
}

/// The indexes a stored payment is found by.
pub(super) fn payment_indexes(p: &PaymentRecord) -> Vec<(String, String)> {
    let month = month_of(p.at);
    let mut indexes = vec![(INDEX_CLIENT.to_owned(), p.client_id.clone())];
    if let Some(reseller) = &p.reseller_id {
        indexes.push((INDEX_RESELLER.to_owned(), reseller.clone()));
        indexes.push((
            INDEX_RESELLER_MONTH.to_owned(),
            reseller_month(&month, reseller),
        ));
    }
    indexes.push((INDEX_MONTH.to_owned(), month));
    indexes
}

/// What a host records: the client, the amount in minor units, when, and how it stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentInput {
    pub id: Option<String>,
    pub client_id: String,
    pub amount: i64,
    pub at: DateTime<Utc>,
    pub status: PaymentStatus,
    pub kind: PaymentKind,
    pub reverses: Option<String>,
    pub description: Option<String>,
}

/// One client's part of a reseller's revenue report.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientRevenue {
    pub client: Client,
    pub revenue: i64,
    pub payments: u32,
    pub commission: i64,
}

/// The reference's `calculateChildAccountsRevenue`: a reseller's clients' completed payments
/// in `[start, end)` and the commission the configured plan earns it in the period (refunds
/// net, overrides included).
#[derive(Clone, Debug, PartialEq)]
pub struct ChildAccountsRevenue {
    pub reseller: Reseller,
    pub total_revenue: i64,
    pub total_payments: u32,
    /// All it earns in the period: `totals.total`.
    pub commission: i64,
    /// The direct rate it earned at (the effective one in graduated mode).
    pub commission_rate: Rate,
    /// The rule the direct rate came from.
    pub rule: Rule,
    pub child_count: u32,
    /// The run's figures for the reseller: direct, overrides, clawbacks, capped.
    pub totals: ResellerTotal,
    /// Its commission by rule, level and rate.
    pub rules: Vec<RuleFigure>,
    pub breakdown: Vec<ClientRevenue>,
}

/// The lines of one rule, level and rate, summed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleFigure {
    pub rule: Rule,
    pub level: u8,
    pub rate: Rate,
    pub base: i64,
    pub amount: i64,
    pub lines: u32,
}

fn checked(sum: Option<i64>) -> Result<i64> {
    sum.ok_or_else(|| Error::overflow("a commission report figure"))
}

pub(super) fn from_record(record: &StoredRecord) -> Result<PaymentRecord> {
    let json: Value = serde_json::from_str(&record.data).map_err(|e| Error::StorageFailed {
        operation: "get",
        reason: format!("stored payment \"{}\" is not readable: {e}", record.id),
    })?;
    PaymentRecord::from_json(json, "payment").map_err(|e| Error::StorageFailed {
        operation: "get",
        reason: format!("stored payment \"{}\" is not readable: {e}", record.id),
    })
}

impl<S: Storage, M: Mailer, C: Clock> Ally<S, M, C> {
    /// Records a payment of a known client; the reseller is the client's now (a refund's or
    /// chargeback's: that of the payment it reverses). A given `id`
    /// that exists already is `ALREADY_EXISTS`; a reversal must name a payment of the same
    /// client and not exceed it.
    pub async fn record_payment(&self, input: PaymentInput) -> Result<PaymentRecord> {
        if input.amount < 1 {
            return Err(Error::invalid("payment.amount", "must be positive"));
        }
        let client = self
            .find_client(&input.client_id)
            .await?
            .ok_or_else(|| Error::NotFound {
                entity: "client",
                key: input.client_id.clone(),
            })?
            .value;
        // A reversal belongs to the reseller of the payment it reverses (the client may have
        // moved since): it claws back that reseller's lines.
        let mut reseller_id = client.reseller_id.clone();
        match (&input.kind, &input.reverses) {
            (PaymentKind::Payment, Some(_)) => {
                return Err(Error::invalid(
                    "payment.reverses",
                    "only a refund or chargeback reverses a payment",
                ))
            }
            (_, Some(original)) => {
                let found = self
                    .storage
                    .get(COLLECTION, original)
                    .await
                    .map_err(storage_failed("get"))?
                    .ok_or_else(|| Error::NotFound {
                        entity: "payment",
                        key: original.clone(),
                    })?;
                let original = from_record(&found)?;
                if original.client_id != client.id || original.kind != PaymentKind::Payment {
                    return Err(Error::invalid(
                        "payment.reverses",
                        "must name a payment of the same client",
                    ));
                }
                if input.amount > original.amount {
                    return Err(Error::invalid(
                        "payment.amount",
                        "reverses more than the payment it names",
                    ));
                }
                reseller_id = original.reseller_id;
            }
            _ => {}
        }
        let id = match input.id {
            Some(id) => id,
            None => self.ids.borrow_mut().payment_id(),
        };
        let record = PaymentRecord {
            id,
            client_id: client.id.clone(),
            reseller_id,
            amount: input.amount,
            at: input.at,
            status: input.status,
            kind: input.kind,
            reverses: input.reverses,
            description: input.description,
        };
        let stored = StoredRecord {
            id: record.id.clone(),
            version: 1,
            data: record.to_json(),
            indexes: payment_indexes(&record),
        };
        match self
            .storage
            .put(COLLECTION, &stored, 0, &[])
            .await
            .map_err(storage_failed("put"))?
        {
            WriteOutcome::Written => Ok(record),
            _ => Err(Error::AlreadyExists {
                entity: "payment",
                field: "id",
                value: record.id,
            }),
        }
    }

    /// The reference's `calculateChildAccountsRevenue` over `[start, end)`, under the
    /// configured plan: what the period earns the reseller, as a commission run records it
    /// (its tier, band, cap and flat fees on its own clients' payments, and the overrides it
    /// earns on the resellers below it), with each figure's rule and rate.
    ///
    /// It reads the reseller's part of the period and that of each reseller below it down to
    /// the plan's last override level, each as a run reads it: what the reseller earns depends
    /// on nothing else.
    pub async fn child_accounts_revenue(
        &self,
        reseller_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<ChildAccountsRevenue> {
        if end <= start {
            return Err(Error::invalid("end", "must be after start"));
        }
        let plan = &self.config.commission_plan;
        let reseller = self.require_reseller(reseller_id).await?.value;
        self.ensure_payment_indexes().await?;
        let mut known = KnownResellers::new();
        let not_found = || Error::NotFound {
            entity: "reseller",
            key: reseller_id.to_owned(),
        };
        let own = self
            .reseller_run(reseller_id, start, end, end, &mut known, true)
            .await?
            .ok_or_else(not_found)?;
        // The resellers below it that its overrides reach: their runs hold its overrides.
        let depth = plan.overrides.len().min(self.config.hierarchy_levels_max);
        let mut below: Vec<ResellerRun> = Vec::new();
        let mut seen: HashSet<String> = HashSet::from([reseller_id.to_owned()]);
        let mut level = vec![reseller_id.to_owned()];
        for _ in 0..depth {
            let mut next = Vec::new();
            for id in &level {
                for child in self.children(id).await? {
                    if seen.insert(child.value.id.clone()) {
                        next.push(child.value.id);
                    }
                }
            }
            for id in &next {
                if let Some(run) = self
                    .reseller_run(id, start, end, end, &mut known, false)
                    .await?
                {
                    below.push(run);
                }
            }
            if next.is_empty() {
                break;
            }
            level = next;
        }
        let period = Period {
            start_ms: start.timestamp_millis(),
            end_ms: end.timestamp_millis(),
            as_of_ms: end.timestamp_millis(),
        };
        let mut total = own.run.totals.first().copied().unwrap_or_default();
        let mut earned: Vec<(&ResellerRun, u32)> = vec![(&own, 0)];
        for run in &below {
            let Some(at) = run.reseller_ids.iter().position(|id| id == reseller_id) else {
                continue;
            };
            let at = u32::try_from(at).unwrap_or(u32::MAX);
            let t = run.run.totals.get(at as usize).copied().unwrap_or_default();
            total.overrides = checked(total.overrides.checked_add(t.overrides))?;
            total.clawbacks = checked(total.clawbacks.checked_add(t.clawbacks))?;
            total.approved = checked(total.approved.checked_add(t.approved))?;
            total.pending = checked(total.pending.checked_add(t.pending))?;
            total.total = checked(total.total.checked_add(t.total))?;
            earned.push((run, at));
        }
        let mut breakdown: Vec<ClientRevenue> = own
            .clients
            .iter()
            .map(|client| ClientRevenue {
                client: client.clone(),
                revenue: 0,
                payments: 0,
                commission: 0,
            })
            .collect();
        for p in own.payments.iter().filter(|p| {
            p.status == PaymentStatus::Completed
                && p.kind == PaymentKind::Payment
                && p.at_ms >= period.start_ms
                && p.at_ms < period.end_ms
        }) {
            if let Some(row) = breakdown.get_mut(p.customer as usize) {
                row.revenue = checked(row.revenue.checked_add(p.amount))?;
                row.payments += 1;
            }
        }
        let mut rules: Vec<RuleFigure> = Vec::new();
        for (run, at) in earned {
            for line in run.run.lines.iter().filter(|l| l.reseller == at) {
                if at == 0 && line.level == 0 {
                    let customer = run.payments[line.payment as usize].customer as usize;
                    if let Some(row) = breakdown.get_mut(customer) {
                        row.commission = checked(row.commission.checked_add(line.amount))?;
                    }
                }
                match rules
                    .iter_mut()
                    .find(|f| (f.rule, f.level, f.rate) == (line.rule, line.level, line.rate))
                {
                    Some(f) => {
                        f.base = checked(f.base.checked_add(line.base))?;
                        f.amount = checked(f.amount.checked_add(line.amount))?;
                        f.lines += 1;
                    }
                    None => rules.push(RuleFigure {
                        rule: line.rule,
                        level: line.level,
                        rate: line.rate,
                        base: line.base,
                        amount: line.amount,
                        lines: 1,
                    }),
                }
            }
        }
        rules.sort_by_key(|f| (f.level, f.rule.as_str(), f.rate));
        // Oldest client first, as the reseller's clients are listed.
        breakdown.sort_by(|a, b| {
            (a.client.created_at, &a.client.id).cmp(&(b.client.created_at, &b.client.id))
        });
        Ok(ChildAccountsRevenue {
            reseller,
            total_revenue: total.revenue,
            total_payments: total.payments,
            commission: total.total,
            commission_rate: total.rate,
            rule: plan.base_rule(),
            child_count: total.child_count,
            totals: total,
            rules,
            breakdown,
        })
    }
}

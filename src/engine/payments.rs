//! Client payments through the storage port, and the commission reports over them (the
//! reference's `calculateChildAccountsRevenue`, `generateCommissionReport`,
//! `getAllResellersCommission`).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::ports::{Clock, Mailer, Storage, StoredRecord, WriteOutcome};
use super::{storage_failed, Ally};
use crate::domain::client::Client;
use crate::domain::commission::{
    self, CustomerNode, Hierarchy, PaymentKind, PaymentStatus, Period, ResellerNode, ResellerTotal,
    Rule,
};
use crate::domain::money::Rate;
use crate::domain::payment::PaymentRecord;
use crate::domain::reseller::{Reseller, ResellerStatus};
use crate::domain::{Error, Result};

pub(super) const COLLECTION: &str = "payments";
const INDEX_RESELLER: &str = "resellerId";
const INDEX_CLIENT: &str = "clientId";

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
    /// Records a payment of a known client; the reseller is the client's now. A given `id`
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
            reseller_id: client.reseller_id.clone(),
            amount: input.amount,
            at: input.at,
            status: input.status,
            kind: input.kind,
            reverses: input.reverses,
            description: input.description,
        };
        let mut indexes = vec![(INDEX_CLIENT.to_owned(), record.client_id.clone())];
        if let Some(reseller) = &record.reseller_id {
            indexes.push((INDEX_RESELLER.to_owned(), reseller.clone()));
        }
        let stored = StoredRecord {
            id: record.id.clone(),
            version: 1,
            data: record.to_json(),
            indexes,
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

    /// Every payment made by a reseller's clients (all times; the report filters).
    async fn payments_of_reseller(&self, reseller_id: &str) -> Result<Vec<PaymentRecord>> {
        self.find_all(COLLECTION, Some((INDEX_RESELLER, reseller_id)), |r| {
            from_record(&r)
        })
        .await
    }

    /// The reference's `calculateChildAccountsRevenue` over `[start, end)`, under the
    /// configured plan: what the period earns the reseller, as a commission run over the same
    /// payments records it (its tier, band, cap and flat fees on its own clients' payments, and
    /// the overrides it earns on the resellers below it), with each figure's rule and rate.
    ///
    /// It reads the reseller, the resellers below it down to the plan's last override level,
    /// and their clients and payments: what the reseller earns depends on nothing else.
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
        // The reseller first, then the levels below it that its overrides reach.
        let depth = plan.overrides.len().min(self.config.hierarchy_levels_max);
        let mut nodes: Vec<(Reseller, Option<u32>)> = vec![(reseller.clone(), None)];
        let mut level = vec![0u32];
        for _ in 0..depth {
            let mut next = Vec::new();
            for &parent in &level {
                let id = nodes[parent as usize].0.id.clone();
                for child in self.children(&id).await? {
                    next.push(u32::try_from(nodes.len()).unwrap_or(u32::MAX));
                    nodes.push((child.value, Some(parent)));
                }
            }
            if next.is_empty() {
                break;
            }
            level = next;
        }
        let mut customers = Vec::new();
        // Per customer node: its client (as stored, when it is still there) and its id.
        let mut customer_clients: Vec<(Option<Client>, String)> = Vec::new();
        let mut records: Vec<PaymentRecord> = Vec::new();
        let mut payment_customers: Vec<u32> = Vec::new();
        for (index, (node, _)) in nodes.iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            // As a run counts them: the clients it has now, and each client that paid while it
            // was this reseller's and has moved since.
            let mut by_client: std::collections::HashMap<String, u32> =
                std::collections::HashMap::new();
            for c in self.clients_of_reseller(&node.id).await? {
                by_client.insert(c.value.id.clone(), customers.len() as u32);
                customers.push(CustomerNode {
                    reseller: index,
                    since_ms: c.value.created_at.timestamp_millis(),
                });
                customer_clients.push((Some(c.value.clone()), c.value.id));
            }
            for p in self.payments_of_reseller(&node.id).await? {
                let customer = match by_client.get(&p.client_id) {
                    Some(&c) => c,
                    None => {
                        let moved = self.find_client(&p.client_id).await?.map(|c| c.value);
                        let c = customers.len() as u32;
                        customers.push(CustomerNode {
                            reseller: index,
                            since_ms: moved.as_ref().map_or_else(
                                || p.at.timestamp_millis(),
                                |m| m.created_at.timestamp_millis(),
                            ),
                        });
                        by_client.insert(p.client_id.clone(), c);
                        customer_clients.push((None, p.client_id.clone()));
                        c
                    }
                };
                payment_customers.push(customer);
                records.push(p);
            }
        }
        let payment_index: std::collections::HashMap<&str, u32> = records
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.as_str(), i as u32))
            .collect();
        let payments: Vec<_> = records
            .iter()
            .zip(&payment_customers)
            .map(|(p, &c)| p.to_payment(c, &payment_index))
            .collect();
        // The resellers above it, as far as the overrides reach: a payment's split over its
        // levels is rounded once for all of them, so the reseller's part is the one a run
        // records only with them in place. Their own clients and payments are not read.
        let mut below = 0u32;
        let mut above = reseller.parent_id.clone();
        for _ in 0..plan.overrides.len() {
            let Some(id) = above else { break };
            let Some(up) = self.find_reseller(&id).await? else {
                break;
            };
            let index = u32::try_from(nodes.len()).unwrap_or(u32::MAX);
            nodes[below as usize].1 = Some(index);
            above = up.value.parent_id.clone();
            nodes.push((up.value, None));
            below = index;
        }
        let hierarchy = Hierarchy::new(
            nodes
                .iter()
                .map(|(r, parent)| ResellerNode {
                    id: r.id.clone(),
                    parent: *parent,
                    rate: r.commission_rate.unwrap_or(Rate::ZERO),
                    approved: r.status == ResellerStatus::Active,
                })
                .collect(),
            customers,
            self.config.hierarchy_levels_max,
        )
        .map_err(|e| Error::StorageFailed {
            operation: "find",
            reason: format!("the stored reseller hierarchy is not valid: {e}"),
        })?;
        let period = Period {
            start_ms: start.timestamp_millis(),
            end_ms: end.timestamp_millis(),
            as_of_ms: end.timestamp_millis(),
        };
        let run = commission::commission(plan, &payments, &hierarchy, period)?;
        let own = hierarchy
            .customers()
            .iter()
            .filter(|c| c.reseller == 0)
            .count();
        let mut breakdown: Vec<ClientRevenue> = customer_clients
            .iter()
            .take(own)
            .filter_map(|(client, _)| client.clone())
            .map(|client| ClientRevenue {
                client,
                revenue: 0,
                payments: 0,
                commission: 0,
            })
            .collect();
        for p in payments.iter().filter(|p| {
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
        for line in run.lines.iter().filter(|l| l.reseller == 0) {
            let customer = payments[line.payment as usize].customer as usize;
            if line.level == 0 {
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
        rules.sort_by_key(|f| (f.level, f.rule.as_str(), f.rate));
        let total = run.totals.first().copied().unwrap_or_default();
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

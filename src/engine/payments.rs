//! Client payments through the storage port, and the commission reports over them (the
//! reference's `calculateChildAccountsRevenue`, `generateCommissionReport`,
//! `getAllResellersCommission`).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::ports::{Clock, Mailer, Storage, StoredRecord, WriteOutcome};
use super::{storage_failed, Ally, Versioned};
use crate::domain::client::Client;
use crate::domain::commission::{
    self, CustomerNode, Hierarchy, PaymentKind, PaymentStatus, Period, Plan, ResellerNode,
};
use crate::domain::money::Rate;
use crate::domain::payment::PaymentRecord;
use crate::domain::reseller::Reseller;
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
/// in `[start, end)` and the commission its own rate earns on them (refunds net).
#[derive(Clone, Debug, PartialEq)]
pub struct ChildAccountsRevenue {
    pub reseller: Reseller,
    pub total_revenue: i64,
    pub total_payments: u32,
    pub commission: i64,
    pub commission_rate: Rate,
    pub child_count: u32,
    pub breakdown: Vec<ClientRevenue>,
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

    /// The reference's `calculateChildAccountsRevenue` over `[start, end)`.
    pub async fn child_accounts_revenue(
        &self,
        reseller_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<ChildAccountsRevenue> {
        if end <= start {
            return Err(Error::invalid("end", "must be after start"));
        }
        let reseller = self.require_reseller(reseller_id).await?.value;
        let clients: Vec<Versioned<Client>> = self.clients_of_reseller(&reseller.id).await?;
        let records = self.payments_of_reseller(&reseller.id).await?;
        let rate = reseller.commission_rate.unwrap_or(Rate::ZERO);
        let hierarchy = Hierarchy::new(
            vec![ResellerNode {
                id: reseller.id.clone(),
                parent: None,
                rate,
                approved: true,
            }],
            clients
                .iter()
                .map(|c| CustomerNode {
                    reseller: 0,
                    since_ms: c.value.created_at.timestamp_millis(),
                })
                .collect(),
            1,
        )?;
        let client_index: std::collections::HashMap<&str, u32> = clients
            .iter()
            .enumerate()
            .map(|(i, c)| (c.value.id.as_str(), i as u32))
            .collect();
        let payment_index: std::collections::HashMap<&str, u32> = records
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.as_str(), i as u32))
            .collect();
        // A payment whose client has moved to another reseller stays with this one: it is
        // kept under a placeholder customer of this reseller.
        let mut payments = Vec::with_capacity(records.len());
        let mut extra_customers = Vec::new();
        for p in &records {
            let customer = match client_index.get(p.client_id.as_str()) {
                Some(&i) => i,
                None => {
                    extra_customers.push(p.client_id.clone());
                    (clients.len() + extra_customers.len() - 1) as u32
                }
            };
            payments.push(p.to_payment(customer, &payment_index));
        }
        let hierarchy = if extra_customers.is_empty() {
            hierarchy
        } else {
            let mut customers = hierarchy.customers().to_vec();
            customers.extend(extra_customers.iter().map(|_| CustomerNode {
                reseller: 0,
                since_ms: 0,
            }));
            Hierarchy::new(hierarchy.resellers().to_vec(), customers, 1)?
        };
        let plan = Plan {
            overrides: Vec::new(),
            ..Plan::reference()
        };
        let period = Period {
            start_ms: start.timestamp_millis(),
            end_ms: end.timestamp_millis(),
            as_of_ms: end.timestamp_millis(),
        };
        let run = commission::commission(&plan, &payments, &hierarchy, period)?;
        let mut breakdown: Vec<ClientRevenue> = clients
            .iter()
            .map(|c| ClientRevenue {
                client: c.value.clone(),
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
                row.revenue += p.amount;
                row.payments += 1;
            }
        }
        for line in &run.lines {
            let customer = payments[line.payment as usize].customer as usize;
            if let Some(row) = breakdown.get_mut(customer) {
                row.commission += line.amount;
            }
        }
        let total = run.totals[0];
        Ok(ChildAccountsRevenue {
            reseller,
            total_revenue: total.revenue,
            total_payments: total.payments,
            commission: total.total,
            commission_rate: rate,
            child_count: clients.len() as u32,
            breakdown,
        })
    }
}

//! A commission period as a run reads it: the period's payments in pages by month, the
//! resellers with activity in it, and then one reseller at a time, the pure run over that
//! reseller's payments of the period (with the payments they reverse and, under a recurring
//! limit, its customers' earlier payments), its customers, and the resellers above it as far as
//! the overrides reach.
//!
//! What a payment earns depends on its own reseller's period (revenue, customers, cap, band
//! fees) and on the chain above that reseller, never on another reseller's payments. So the run
//! over one reseller's part of the network gives exactly the lines the run over the whole
//! network gives its payments, and a run holds one reseller's period at a time and, of the
//! others, their ids.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::rc::Rc;

use chrono::{DateTime, Utc};

use super::commissions::{Progress, STATE};
use super::ports::{Clock, Mailer, Storage, StoredRecord};
use super::{payments, storage_failed, Ally, RETRY_COUNT_MAX};
use crate::domain::client::Client;
use crate::domain::commission::{
    self, BaseRule, CustomerNode, Hierarchy, Payment, PaymentStatus, Period, ResellerNode, Run,
};
use crate::domain::money::Rate;
use crate::domain::payment::PaymentRecord;
use crate::domain::reseller::{Reseller, ResellerStatus};
use crate::domain::{Error, Result};

/// The longest period a run, a reconciliation or a report covers, in months.
pub const PERIOD_MONTHS_MAX: usize = 1_200;
/// The version of the payment indexes that [`payments::payment_indexes`] gives.
const PAYMENT_INDEXES: u64 = 1;

/// The months `[start, end)` touches, oldest first, as [`payments::month_of`] names them.
pub(super) fn months(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Vec<String>> {
    if end <= start {
        return Err(Error::invalid("end", "must be after start"));
    }
    let last = end - chrono::Duration::milliseconds(1);
    let (first, last) = (
        payments::month_index(start),
        payments::month_index(last.max(start)),
    );
    let count = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
    if count > PERIOD_MONTHS_MAX {
        return Err(Error::invalid(
            "end",
            format!("a period spans at most {PERIOD_MONTHS_MAX} months"),
        ));
    }
    Ok((first..=last).map(payments::month_name).collect())
}

/// One reseller's part of a period: the pure run over it, and what the run's indexes name.
pub(super) struct ResellerRun {
    /// Per reseller node: index 0 is the reseller, then the resellers above it, as far as the
    /// overrides reach.
    pub reseller_ids: Vec<String>,
    /// Per customer node: its client's id.
    pub client_ids: Vec<String>,
    /// The reseller's clients of today, in id order (only when asked for): the first customer
    /// nodes.
    pub clients: Vec<Client>,
    /// Per payment of the run, in id order: its record.
    pub records: Vec<PaymentRecord>,
    pub payments: Vec<Payment>,
    /// The reseller's payments in the period, of any status: the run answers for their lines.
    pub in_period: Vec<u32>,
    pub run: Run,
}

impl ResellerRun {
    /// Completed payments, refunds and chargebacks in the period.
    pub fn completed(&self) -> u32 {
        let n = self
            .in_period
            .iter()
            .filter(|&&i| self.payments[i as usize].status == PaymentStatus::Completed)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// Resellers read once per run (each of them may be above many others).
pub(super) type KnownResellers = HashMap<String, Option<Rc<Reseller>>>;

fn tree_invalid(reason: String) -> Error {
    Error::StorageFailed {
        operation: "find",
        reason: format!("the stored reseller hierarchy is not valid: {reason}"),
    }
}

impl<S: Storage, M: Mailer, C: Clock> Ally<S, M, C> {
    /// Makes sure every stored payment carries the month indexes a run reads by: payments
    /// stored before those indexes existed are written again with them, once per storage (a
    /// state record says it is done). Each rewrite is compare-and-set at the version read.
    pub(super) async fn ensure_payment_indexes(&self) -> Result<()> {
        let reindex = async |record| self.reindex_payment(record).await;
        self.backfill_indexes(
            STATE,
            "payments",
            PAYMENT_INDEXES,
            payments::COLLECTION,
            reindex,
        )
        .await
    }

    /// Writes one stored payment again with the indexes it should carry, if it lacks any. A
    /// reversal stored under another reseller than the payment it reverses (its client had
    /// moved, and reversals then took the client's reseller) moves to that payment's reseller,
    /// whose lines it claws back.
    async fn reindex_payment(&self, mut record: StoredRecord) -> Result<()> {
        for _ in 0..RETRY_COUNT_MAX {
            let mut payment = payments::from_record(&record)?;
            let mut data = None;
            if let Some(original) = &payment.reverses {
                let owner = match self
                    .storage
                    .get(payments::COLLECTION, original)
                    .await
                    .map_err(storage_failed("get"))?
                {
                    Some(found) => payments::from_record(&found)?.reseller_id,
                    None => payment.reseller_id.clone(),
                };
                if owner != payment.reseller_id {
                    payment.reseller_id = owner;
                    data = Some(payment.to_json());
                }
            }
            let wanted = payments::payment_indexes(&payment);
            let carried = wanted.len() == record.indexes.len()
                && wanted.iter().all(|w| record.indexes.contains(w));
            if carried && data.is_none() {
                return Ok(());
            }
            let next = StoredRecord {
                id: record.id.clone(),
                version: record.version + 1,
                data: data.unwrap_or_else(|| record.data.clone()),
                indexes: wanted,
            };
            if self
                .put_at(payments::COLLECTION, &next, record.version, &[])
                .await?
            {
                return Ok(());
            }
            match self
                .storage
                .get(payments::COLLECTION, &record.id)
                .await
                .map_err(storage_failed("get"))?
            {
                Some(again) => record = again,
                None => return Ok(()),
            }
        }
        Err(Error::Conflict {
            entity: "payment",
            key: record.id,
            attempts: RETRY_COUNT_MAX,
        })
    }

    /// The resellers with payments in `[start, end)` (of any status), each with how many: the
    /// period read in pages by month, each page reported to `progress` (phase `load`). A
    /// payment without a reseller earns nothing and is not counted.
    pub(super) async fn period_activity(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        progress: &mut dyn FnMut(Progress) -> Result<()>,
    ) -> Result<BTreeMap<String, u64>> {
        let mut active: BTreeMap<String, u64> = BTreeMap::new();
        let mut seen = 0u64;
        for month in months(start, end)? {
            let mut after: Option<String> = None;
            loop {
                let (page, next) = self
                    .find_page(
                        payments::COLLECTION,
                        Some((payments::INDEX_MONTH, &month)),
                        after.as_deref(),
                    )
                    .await?;
                for record in &page {
                    let p = payments::from_record(record)?;
                    if p.at < start || p.at >= end {
                        continue;
                    }
                    if let Some(reseller) = p.reseller_id {
                        *active.entry(reseller).or_default() += 1;
                        seen += 1;
                    }
                }
                progress(Progress {
                    phase: "load",
                    done: seen,
                    total: seen,
                })?;
                match next {
                    Some(cursor) => after = Some(cursor),
                    None => break,
                }
            }
        }
        Ok(active)
    }

    async fn known_reseller(
        &self,
        id: &str,
        known: &mut KnownResellers,
    ) -> Result<Option<Rc<Reseller>>> {
        if let Some(found) = known.get(id) {
            return Ok(found.clone());
        }
        let found = self.find_reseller(id).await?.map(|r| Rc::new(r.value));
        known.insert(id.to_owned(), found.clone());
        Ok(found)
    }

    /// The pure run over one reseller's part of `[start, end)`, as of `as_of`; `None` when no
    /// such reseller is stored. `with_clients`: the run also reads the reseller's clients of
    /// today (a customer-count plan rates it by them, a report lists them); without it, only
    /// the clients that paid are read.
    ///
    /// The chain above the reseller is checked as the whole tree would be: a cycle, or more
    /// levels than the configured bound, is a storage fault.
    pub(super) async fn reseller_run(
        &self,
        reseller_id: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        as_of: DateTime<Utc>,
        known: &mut KnownResellers,
        with_clients: bool,
    ) -> Result<Option<ResellerRun>> {
        let plan = &self.config.commission_plan;
        let levels_max = self.config.hierarchy_levels_max;
        let with_clients = with_clients || matches!(plan.base, BaseRule::ChildCount(_));
        let Some(reseller) = self.known_reseller(reseller_id, known).await? else {
            return Ok(None);
        };
        let mut chain: Vec<Rc<Reseller>> = vec![Rc::clone(&reseller)];
        let mut seen: HashSet<String> = HashSet::from([reseller_id.to_owned()]);
        let mut above = reseller.parent_id.clone();
        let mut steps = 0usize;
        while let Some(id) = above {
            if !seen.insert(id.clone()) {
                return Err(tree_invalid(format!(
                    "reseller \"{reseller_id}\" is in a cycle of parents"
                )));
            }
            // A parent that is not stored ends the chain, as the whole tree reads it.
            let Some(up) = self.known_reseller(&id, known).await? else {
                break;
            };
            steps += 1;
            if steps > levels_max {
                return Err(tree_invalid(format!(
                    "reseller \"{reseller_id}\" has more than {levels_max} levels above it"
                )));
            }
            above = up.parent_id.clone();
            if steps <= plan.overrides.len() {
                chain.push(up);
            }
        }

        // The reseller's payments of the period, then what they depend on.
        let mut found: BTreeMap<String, PaymentRecord> = BTreeMap::new();
        let ours = |p: &PaymentRecord| p.reseller_id.as_deref() == Some(reseller_id);
        for month in months(start, end)? {
            let key = payments::reseller_month(&month, reseller_id);
            let page = self
                .find_all(
                    payments::COLLECTION,
                    Some((payments::INDEX_RESELLER_MONTH, &key)),
                    |r| payments::from_record(&r),
                )
                .await?;
            for p in page {
                if ours(&p) && p.at >= start && p.at < end {
                    found.insert(p.id.clone(), p);
                }
            }
        }
        let in_period_ids: Vec<String> = found.keys().cloned().collect();
        // The payments the period's reversals name, when they are this reseller's (a reversal
        // of another reseller's payment is priced without it, as a negative payment).
        let originals: BTreeSet<String> = found
            .values()
            .filter_map(|p| p.reverses.clone())
            .filter(|o| !found.contains_key(o))
            .collect();
        for id in originals {
            if let Some(record) = self
                .storage
                .get(payments::COLLECTION, &id)
                .await
                .map_err(storage_failed("get"))?
            {
                let p = payments::from_record(&record)?;
                if ours(&p) {
                    found.insert(p.id.clone(), p);
                }
            }
        }
        // A recurring limit counts each customer's payments from its first: its earlier ones.
        if plan.recurring_payments.is_some() {
            let payers: BTreeSet<String> = found.values().map(|p| p.client_id.clone()).collect();
            for client in payers {
                let page = self
                    .find_all(
                        payments::COLLECTION,
                        Some((payments::INDEX_CLIENT, &client)),
                        |r| payments::from_record(&r),
                    )
                    .await?;
                for p in page.into_iter().filter(|p| ours(p)) {
                    found.entry(p.id.clone()).or_insert(p);
                }
            }
        }

        // Customers: the reseller's clients of today (when asked), then each other client that
        // paid it, since the client's creation (or its first payment, when it is gone).
        let mut customers: Vec<CustomerNode> = Vec::new();
        let mut client_ids: Vec<String> = Vec::new();
        let mut node_of: HashMap<String, u32> = HashMap::new();
        let mut clients: Vec<Client> = Vec::new();
        if with_clients {
            let mut own = self.clients_of_reseller(reseller_id).await?;
            own.sort_by(|a, b| a.value.id.cmp(&b.value.id));
            for c in own {
                node_of.insert(c.value.id.clone(), customers.len() as u32);
                customers.push(CustomerNode {
                    reseller: 0,
                    since_ms: c.value.created_at.timestamp_millis(),
                });
                client_ids.push(c.value.id.clone());
                clients.push(c.value);
            }
        }
        let today = u32::try_from(customers.len()).unwrap_or(u32::MAX);
        for p in found.values() {
            if node_of.contains_key(&p.client_id) {
                continue;
            }
            let since = self
                .find_client(&p.client_id)
                .await?
                .map_or(p.at, |c| c.value.created_at);
            node_of.insert(p.client_id.clone(), customers.len() as u32);
            customers.push(CustomerNode {
                reseller: 0,
                since_ms: since.timestamp_millis(),
            });
            client_ids.push(p.client_id.clone());
        }

        let nodes: Vec<ResellerNode> = chain
            .iter()
            .enumerate()
            .map(|(i, r)| ResellerNode {
                id: r.id.clone(),
                parent: (i + 1 < chain.len()).then(|| u32::try_from(i + 1).unwrap_or(u32::MAX)),
                rate: r.commission_rate.unwrap_or(Rate::ZERO),
                approved: r.status == ResellerStatus::Active,
            })
            .collect();
        let mut hierarchy = Hierarchy::new(nodes, customers, levels_max)
            .map_err(|e| tree_invalid(e.to_string()))?;
        if with_clients {
            hierarchy = hierarchy.with_child_count(0, today);
        }
        let records: Vec<PaymentRecord> = found.into_values().collect();
        let positions: HashMap<&str, u32> = records
            .iter()
            .enumerate()
            .map(|(i, p)| (p.id.as_str(), i as u32))
            .collect();
        let payments: Vec<Payment> = records
            .iter()
            // Every payer has its node (above).
            .map(|p| p.to_payment(node_of.get(&p.client_id).copied().unwrap_or(0), &positions))
            .collect();
        let in_period: Vec<u32> = in_period_ids
            .iter()
            .filter_map(|id| positions.get(id.as_str()).copied())
            .collect();
        let period = Period {
            start_ms: start.timestamp_millis(),
            end_ms: end.timestamp_millis(),
            as_of_ms: as_of.timestamp_millis(),
        };
        let run = commission::commission(plan, &payments, &hierarchy, period)?;
        Ok(Some(ResellerRun {
            reseller_ids: chain.iter().map(|r| r.id.clone()).collect(),
            client_ids,
            clients,
            records,
            payments,
            in_period,
            run,
        }))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 0, 0, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn a_period_names_the_months_it_touches() {
        let months_of = |a, b| months(a, b).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(months_of(at(2026, 1, 1), at(2026, 2, 1)), ["2026-01"]);
        assert_eq!(
            months_of(at(2025, 12, 31), at(2026, 2, 2)),
            ["2025-12", "2026-01", "2026-02"]
        );
        assert_eq!(months_of(at(2026, 3, 5), at(2026, 3, 6)), ["2026-03"]);
        assert!(months(at(2026, 1, 1), at(2026, 1, 1)).is_err());
        assert!(months(at(1900, 1, 1), at(2001, 1, 2)).is_err());
        assert_eq!(
            months(at(1926, 1, 1), at(2026, 1, 1)).map(|m| m.len()).ok(),
            Some(PERIOD_MONTHS_MAX)
        );
    }
}

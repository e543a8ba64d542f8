//! The engine form of commissions: a run over the stored network records its lines (once per
//! payment, level and rule, so a run repeats safely), lines move pending → approved → paid (or
//! reversed), payments of commission are recorded, payout batches pay each reseller's approved
//! balance, and reconciliation compares the recorded lines with a fresh run.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::executor::join_all;
use super::periods::{KnownResellers, ResellerRun};
use super::ports::{Clock, Mailer, Storage, StoredRecord, WriteOutcome};
use super::{storage_failed, Ally, Versioned, RETRY_COUNT_MAX};
use crate::domain::commission::{self, PaymentKind};
use crate::domain::payout::{
    self, BatchStatus, CommissionLine, CommissionPayment, CommissionStatus, HoldReason,
    PayoutBatch, Reconciliation,
};
use crate::domain::{Error, Result};

const LINES: &str = "commissions";
const COMMISSION_PAYMENTS: &str = "commission_payments";
const BATCHES: &str = "payout_batches";
pub(super) const STATE: &str = "commission_state";
/// The state record naming the batch in progress, if any.
const STATE_PAYOUTS: &str = "payouts";
/// The state record of the commission run in progress, if any: its holder and until when.
const STATE_RUN: &str = "run";
/// How long a run holds the lease without renewing it (it renews after a quarter of it, see
/// `keep_lease`): a run that died is taken over after this.
const RUN_LEASE_MS: i64 = 10 * 60 * 1000;
const INDEX_RESELLER: &str = "resellerId";
const INDEX_STATUS: &str = "status";
const INDEX_BATCH: &str = "batchId";
const INDEX_PAYMENT: &str = "paymentId";
/// How many lines a run approves between two progress reports.
const PROGRESS_EVERY: u64 = 1_000;
/// How many payments' lines a run reads or writes at once.
const WRITES_IN_FLIGHT: usize = 32;
/// The longest description of a commission payment or batch, in bytes.
pub const DESCRIPTION_LEN_MAX: usize = 1_000;

/// Where a long run stands: `phase` is `load`, `compute`, `record` or `approve`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub phase: &'static str,
    pub done: u64,
    pub total: u64,
}

/// What a commission run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSummary {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub as_of: DateTime<Utc>,
    /// Completed payments, refunds and chargebacks in the period.
    pub payments: u32,
    /// Lines the run gives.
    pub lines: u32,
    /// Of those, recorded now; the others were recorded by an earlier run.
    pub recorded: u32,
    /// Adjustments recorded now: lines recorded by an earlier run that the period no longer
    /// gives as they are (a late payment moved a cap, a band or a tier).
    pub adjusted: u32,
    /// Lines moved to reversed (an unpaid line and the clawback that cancels it).
    pub reversed: u32,
    /// Pending lines (of any period) approved because their hold has passed.
    pub approved: u32,
    /// Sum of the run's lines.
    pub total: i64,
}

/// The run lease this run holds: the version of the state record, and when it was taken.
struct RunLease {
    version: u64,
    renewed: DateTime<Utc>,
}

/// Which recorded lines to read: any combination narrows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineFilter {
    pub reseller: Option<String>,
    pub status: Option<CommissionStatus>,
    pub batch: Option<String>,
    pub payment: Option<String>,
}

/// A reseller's commission account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommissionBalance {
    pub reseller_id: String,
    /// Lines still in their hold.
    pub pending: i64,
    /// Approved lines not yet paid, clawbacks included.
    pub approved: i64,
    /// Commission paid by hand and not yet netted out by a batch.
    pub advances: i64,
    /// `approved − advances`: what the next batch would pay.
    pub payable: i64,
    /// Lines paid by batches, and commission paid by hand, in all.
    pub paid: i64,
    /// Why the next batch would leave it out, if it would.
    pub withheld: Option<HoldReason>,
}

fn unreadable(entity: &str, id: &str, reason: impl std::fmt::Display) -> Error {
    Error::StorageFailed {
        operation: "get",
        reason: format!("stored {entity} \"{id}\" is not readable: {reason}"),
    }
}

fn parse<T>(
    record: &StoredRecord,
    entity: &str,
    from_json: fn(Value, &str) -> Result<T>,
) -> Result<Versioned<T>> {
    let json: Value =
        serde_json::from_str(&record.data).map_err(|e| unreadable(entity, &record.id, e))?;
    let value = from_json(json, entity).map_err(|e| unreadable(entity, &record.id, e))?;
    Ok(Versioned {
        value,
        version: record.version,
    })
}

fn line_record(line: &CommissionLine, version: u64) -> StoredRecord {
    let mut indexes = vec![
        (INDEX_RESELLER.to_owned(), line.reseller_id.clone()),
        (INDEX_STATUS.to_owned(), line.status.as_str().to_owned()),
        (INDEX_PAYMENT.to_owned(), line.payment_id.clone()),
    ];
    if let Some(batch) = &line.batch_id {
        indexes.push((INDEX_BATCH.to_owned(), batch.clone()));
    }
    StoredRecord {
        id: line.id.clone(),
        version,
        data: line.to_json(),
        indexes,
    }
}

fn read_line(record: StoredRecord) -> Result<Versioned<CommissionLine>> {
    parse(&record, "commission", CommissionLine::from_json)
}

/// `open` (an advance not yet netted out), `settled`, or `batch` (paid by a batch).
fn payment_state(p: &CommissionPayment) -> &'static str {
    match (&p.batch_id, &p.settled_by) {
        (Some(_), _) => "batch",
        (None, Some(_)) => "settled",
        (None, None) => "open",
    }
}

fn payment_record(p: &CommissionPayment, version: u64) -> StoredRecord {
    StoredRecord {
        id: p.id.clone(),
        version,
        data: p.to_json(),
        indexes: vec![
            (INDEX_RESELLER.to_owned(), p.reseller_id.clone()),
            (INDEX_STATUS.to_owned(), payment_state(p).to_owned()),
        ],
    }
}

fn read_payment(record: StoredRecord) -> Result<Versioned<CommissionPayment>> {
    parse(&record, "commissionPayment", CommissionPayment::from_json)
}

fn batch_record(batch: &PayoutBatch, version: u64) -> StoredRecord {
    StoredRecord {
        id: batch.id.clone(),
        version,
        data: batch.to_json(),
        indexes: vec![(INDEX_STATUS.to_owned(), batch.status.as_str().to_owned())],
    }
}

fn read_batch(record: StoredRecord) -> Result<Versioned<PayoutBatch>> {
    parse(&record, "payoutBatch", PayoutBatch::from_json)
}

/// Checks a free-text description: at most [`DESCRIPTION_LEN_MAX`] bytes, no control
/// characters other than line breaks.
pub fn check_description(text: &str, field: &str) -> Result<()> {
    if text.len() > DESCRIPTION_LEN_MAX {
        return Err(Error::invalid(
            field,
            format!("at most {DESCRIPTION_LEN_MAX} bytes"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err(Error::invalid(field, "must not hold control characters"));
    }
    Ok(())
}

impl<S: Storage, M: Mailer, C: Clock> Ally<S, M, C> {
    /// Read, change, write at the read version; a stale write reads again, at most
    /// [`RETRY_COUNT_MAX`] times. `change` returns `None` when there is nothing to write.
    pub(super) async fn update_record<T: Clone>(
        &self,
        collection: &str,
        id: &str,
        entity: &'static str,
        read: fn(StoredRecord) -> Result<Versioned<T>>,
        write: fn(&T, u64) -> StoredRecord,
        mut change: impl FnMut(&T) -> Result<Option<T>>,
    ) -> Result<Versioned<T>> {
        for _ in 0..RETRY_COUNT_MAX {
            let current = self
                .storage
                .get(collection, id)
                .await
                .map_err(storage_failed("get"))?
                .ok_or_else(|| Error::NotFound {
                    entity,
                    key: id.to_owned(),
                })
                .and_then(read)?;
            let Some(next) = change(&current.value)? else {
                return Ok(current);
            };
            let record = write(&next, current.version + 1);
            if self
                .put_at(collection, &record, current.version, &[])
                .await?
            {
                return Ok(Versioned {
                    value: next,
                    version: record.version,
                });
            }
        }
        Err(Error::Conflict {
            entity,
            key: id.to_owned(),
            attempts: RETRY_COUNT_MAX,
        })
    }

    /// The lines one reseller's part of a period gives, as they would be recorded at `now`.
    fn run_lines(sub: &ResellerRun, now: DateTime<Utc>) -> Result<Vec<CommissionLine>> {
        sub.run
            .lines
            .iter()
            .map(|l| Self::run_line(sub, l, now))
            .collect()
    }

    /// One line of a reseller's part of a period, as it would be recorded at `now`.
    fn run_line(
        sub: &ResellerRun,
        l: &commission::Line,
        now: DateTime<Utc>,
    ) -> Result<CommissionLine> {
        let p = &sub.payments[l.payment as usize];
        let record = &sub.records[l.payment as usize];
        let payable_at = DateTime::from_timestamp_millis(l.payable_at_ms)
            .ok_or_else(|| Error::invalid("end", "a hold reaches past the last date"))?;
        let reverses = match (p.kind, p.reverses) {
            (PaymentKind::Payment, _) | (_, None) => None,
            (_, Some(o)) => Some(CommissionLine::line_id(
                &sub.records[o as usize].id,
                l.level,
                l.rule,
            )),
        };
        Ok(CommissionLine {
            id: CommissionLine::line_id(&record.id, l.level, l.rule),
            payment_id: record.id.clone(),
            client_id: sub.client_ids[p.customer as usize].clone(),
            reseller_id: sub.reseller_ids[l.reseller as usize].clone(),
            level: l.level,
            rule: l.rule,
            rate: l.rate,
            base: l.base,
            amount: l.amount,
            payment_at: record.at,
            payable_at,
            status: if payable_at > now {
                CommissionStatus::Pending
            } else {
                CommissionStatus::Approved
            },
            reverses,
            batch_id: None,
            adjusts: None,
            reason: None,
            recorded_at: now,
            updated_at: now,
        })
    }

    /// The lines recorded for each of `payment_ids`, as one list: one read per payment, a
    /// batch of them in flight at once.
    async fn recorded_lines(&self, payment_ids: &[&str]) -> Result<Vec<CommissionLine>> {
        let mut out = Vec::new();
        for batch in payment_ids.chunks(WRITES_IN_FLIGHT) {
            let reads = batch.iter().map(|&id| self.lines_of_payment(id)).collect();
            for lines in join_all(reads).await {
                out.extend(lines?);
            }
        }
        Ok(out)
    }

    async fn lines_of_payment(&self, payment_id: &str) -> Result<Vec<CommissionLine>> {
        let lines = self
            .find_all(LINES, Some((INDEX_PAYMENT, payment_id)), |r| {
                read_line(r).map(|l| l.value)
            })
            .await?;
        Ok(lines
            .into_iter()
            .filter(|l| l.payment_id == payment_id)
            .collect())
    }

    /// The monthly run (the reference's "process commissions"): records the configured plan's
    /// lines for payments in `[start, end)`. A line already recorded is left as it is, so a run
    /// repeats safely and an interrupted run is finished by running it again. A clawback that
    /// cancels an unpaid line reverses both; pending lines whose hold has passed are approved.
    /// `progress` may stop the run by returning an error: what is recorded stays recorded.
    ///
    /// One run at a time across every instance on a storage: a run holds a lease in the state
    /// record (renewed as it goes), and a run that finds another's lease live is `CONFLICT`. Two
    /// runs from different snapshots of the payments would otherwise adjust each other's lines
    /// back and forth.
    pub async fn process_commissions(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        progress: &mut dyn FnMut(Progress) -> Result<()>,
    ) -> Result<ProcessSummary> {
        if end <= start {
            return Err(Error::invalid("end", "must be after start"));
        }
        let now = self.now()?;
        // Compare-and-set writes that any number of instances may make at once: no lease.
        self.ensure_payment_indexes().await?;
        let holder = self.ids.borrow_mut().token("run_", 16, true);
        let mut lease = RunLease {
            version: self.take_run_lease(&holder, now, None).await?,
            renewed: now,
        };
        let outcome = self
            .process_held(start, end, now, &holder, &mut lease, progress)
            .await;
        // Released whatever the outcome; one taken over meanwhile is the other run's.
        let released = self.release_run_lease(lease.version).await;
        let summary = outcome?;
        released?;
        Ok(summary)
    }

    /// The lease's state record: its holder (while live), until when, and its version.
    async fn run_lease(&self) -> Result<(Option<(String, DateTime<Utc>)>, u64)> {
        let Some(state) = self
            .storage
            .get(STATE, STATE_RUN)
            .await
            .map_err(storage_failed("get"))?
        else {
            return Ok((None, 0));
        };
        let json: Value = serde_json::from_str(&state.data)
            .map_err(|e| unreadable("commissionState", STATE_RUN, e))?;
        let holder = json.get("holder").and_then(Value::as_str);
        let until = json
            .get("until")
            .and_then(Value::as_i64)
            .and_then(DateTime::from_timestamp_millis);
        Ok((
            holder.zip(until).map(|(h, u)| (h.to_owned(), u)),
            state.version,
        ))
    }

    fn run_lease_record(
        holder: Option<&str>,
        until: Option<DateTime<Utc>>,
        version: u64,
    ) -> StoredRecord {
        StoredRecord {
            id: STATE_RUN.to_owned(),
            version,
            data: json!({ "holder": holder, "until": until.map(|u| u.timestamp_millis()) })
                .to_string(),
            indexes: Vec::new(),
        }
    }

    /// Takes (or, with `held: Some(version)`, renews) the run lease for `holder` at `now`; the
    /// version it is held at. `CONFLICT` while another run's lease is live, or when this one's
    /// was taken over.
    async fn take_run_lease(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        held: Option<u64>,
    ) -> Result<u64> {
        let busy = || Error::Conflict {
            entity: "commissionRun",
            key: STATE_RUN.to_owned(),
            attempts: 1,
        };
        let (current, version) = self.run_lease().await?;
        match (&current, held) {
            (Some((other, until)), _) if other != holder && *until > now => return Err(busy()),
            (_, Some(mine)) if mine != version => return Err(busy()),
            _ => {}
        }
        let until = now + chrono::Duration::milliseconds(RUN_LEASE_MS);
        let record = Self::run_lease_record(Some(holder), Some(until), version + 1);
        if self.put_at(STATE, &record, version, &[]).await? {
            Ok(version + 1)
        } else {
            Err(busy())
        }
    }

    /// Renews the lease once a quarter of it has passed since it was last taken: a run that
    /// lives longer than the lease keeps it, however long one reseller's part takes.
    async fn keep_lease(&self, holder: &str, lease: &mut RunLease) -> Result<()> {
        let now = self.now()?;
        if now - lease.renewed >= chrono::Duration::milliseconds(RUN_LEASE_MS / 4) {
            lease.version = self
                .take_run_lease(holder, now, Some(lease.version))
                .await?;
            lease.renewed = now;
        }
        Ok(())
    }

    /// Lets the lease held at `version` go; one another run has taken over is left to it.
    async fn release_run_lease(&self, version: u64) -> Result<()> {
        let record = Self::run_lease_record(None, None, version + 1);
        self.put_at(STATE, &record, version, &[]).await.map(|_| ())
    }

    async fn process_held(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        now: DateTime<Utc>,
        holder: &str,
        lease: &mut RunLease,
        progress: &mut dyn FnMut(Progress) -> Result<()>,
    ) -> Result<ProcessSummary> {
        let active = self.period_activity(start, end, progress).await?;
        self.keep_lease(holder, lease).await?;
        let total: u64 = active.values().sum();
        let mut summary = ProcessSummary {
            start,
            end,
            as_of: now,
            payments: 0,
            lines: 0,
            recorded: 0,
            adjusted: 0,
            reversed: 0,
            approved: 0,
            total: 0,
        };
        let mut known = KnownResellers::new();
        let mut done = 0u64;
        progress(Progress {
            phase: "record",
            done,
            total,
        })?;
        for (reseller_id, count) in &active {
            // A payment whose reseller is not stored earns nothing, and nothing is recorded.
            if let Some(sub) = self
                .reseller_run(reseller_id, start, end, now, &mut known, false)
                .await?
            {
                let lines = &sub.run.lines;
                summary.payments = summary.payments.saturating_add(sub.completed());
                summary.lines = summary
                    .lines
                    .saturating_add(u32::try_from(lines.len()).unwrap_or(u32::MAX));
                summary.total = payout::sum_minor(
                    std::iter::once(summary.total).chain(lines.iter().map(|l| l.amount)),
                    "the run's total",
                )?;
                // Per payment of the run, its lines: the recorded form is made a batch at a
                // time.
                let mut of_payment: Vec<Vec<u32>> = vec![Vec::new(); sub.payments.len()];
                for (k, line) in lines.iter().enumerate() {
                    of_payment[line.payment as usize].push(k as u32);
                }
                let mut clawbacks: Vec<String> = Vec::new();
                for batch in sub.in_period.chunks(WRITES_IN_FLIGHT) {
                    self.keep_lease(holder, lease).await?;
                    let given: Vec<Vec<CommissionLine>> = batch
                        .iter()
                        .map(|&i| {
                            of_payment[i as usize]
                                .iter()
                                .map(|&k| Self::run_line(&sub, &lines[k as usize], now))
                                .collect::<Result<_>>()
                        })
                        .collect::<Result<_>>()?;
                    let writes = batch
                        .iter()
                        .zip(&given)
                        .map(|(&i, lines)| {
                            let refs: Vec<&CommissionLine> = lines.iter().collect();
                            let id = sub.records[i as usize].id.as_str();
                            async move { self.record_lines_of(id, &refs, now).await }
                        })
                        .collect();
                    for outcome in join_all(writes).await {
                        let (recorded, adjusted) = outcome?;
                        summary.recorded += recorded;
                        summary.adjusted += adjusted;
                    }
                    clawbacks.extend(
                        given
                            .iter()
                            .flatten()
                            .filter(|l| l.reverses.is_some())
                            .map(|l| l.id.clone()),
                    );
                }
                // Once every line of the reseller's part is recorded: a clawback may come
                // before the line it cancels in id order.
                for id in clawbacks {
                    self.keep_lease(holder, lease).await?;
                    summary.reversed += self.cancel_pair(&id, now).await?;
                }
            }
            done += count;
            progress(Progress {
                phase: "record",
                done,
                total,
            })?;
            self.keep_lease(holder, lease).await?;
        }
        summary.approved = self
            .approve_due(now, Some((holder, lease)), progress)
            .await?;
        Ok(summary)
    }

    /// Brings the lines recorded for one payment to `given`, the lines the period gives for it
    /// now: records the lines not recorded yet, and adjusts the recorded ones that no longer
    /// hold (see [`payout::adjustments`]). How many lines and adjustments it recorded. Every
    /// write is a create: a run beside it that recorded the same line or adjustment first
    /// makes this one read the payment's lines again, so two runs never record one change
    /// twice.
    async fn record_lines_of(
        &self,
        payment_id: &str,
        given: &[&CommissionLine],
        now: DateTime<Utc>,
    ) -> Result<(u32, u32)> {
        let (mut recorded, mut adjusted) = (0, 0);
        for _ in 0..RETRY_COUNT_MAX {
            let stored = self
                .find_all(LINES, Some((INDEX_PAYMENT, payment_id)), |r| {
                    read_line(r).map(|l| l.value)
                })
                .await?;
            let mut parts: BTreeMap<&str, Vec<&CommissionLine>> = BTreeMap::new();
            for line in stored.iter().filter(|l| l.payment_id == payment_id) {
                parts.entry(line.line_of()).or_default().push(line);
            }
            let mut writes: Vec<(CommissionLine, bool)> = Vec::new();
            for line in given {
                match parts.remove(line.id.as_str()) {
                    None => writes.push(((*line).clone(), false)),
                    Some(held) => writes.extend(
                        payout::adjustments(&line.id, Some(line), &held, now)?
                            .into_iter()
                            .map(|a| (a, true)),
                    ),
                }
            }
            for (line_id, held) in &parts {
                writes.extend(
                    payout::adjustments(line_id, None, held, now)?
                        .into_iter()
                        .map(|a| (a, true)),
                );
            }
            let mut raced = false;
            for (line, is_adjustment) in &writes {
                let outcome = self
                    .storage
                    .put(LINES, &line_record(line, 1), 0, &[])
                    .await
                    .map_err(storage_failed("put"))?;
                if outcome != WriteOutcome::Written {
                    raced = true;
                    break;
                }
                if *is_adjustment {
                    adjusted += 1;
                } else {
                    recorded += 1;
                }
            }
            if !raced {
                return Ok((recorded, adjusted));
            }
        }
        Err(Error::Conflict {
            entity: "commission",
            key: payment_id.to_owned(),
            attempts: RETRY_COUNT_MAX,
        })
    }

    /// Reverses an open clawback and the open line it claws back in full; how many lines moved.
    async fn cancel_pair(&self, clawback_id: &str, now: DateTime<Utc>) -> Result<u32> {
        let Some(clawback) = self.find_line(clawback_id).await? else {
            return Ok(0);
        };
        let Some(original_id) = clawback.value.reverses.clone() else {
            return Ok(0);
        };
        let Some(original) = self.find_line(&original_id).await? else {
            return Ok(0);
        };
        let cancels = clawback.value.status.is_open()
            && original.value.status.is_open()
            && original.value.reseller_id == clawback.value.reseller_id
            && original.value.amount.checked_add(clawback.value.amount) == Some(0);
        if !cancels {
            return Ok(0);
        }
        // The original first: if the clawback were reversed alone, the line it cancels would
        // still be paid.
        let mut moved = 0;
        for id in [original_id.as_str(), clawback_id] {
            let mut changed = false;
            self.update_record(LINES, id, "commission", read_line, line_record, |l| {
                changed = l.status.is_open();
                if changed {
                    l.reverse(now).map(Some)
                } else {
                    Ok(None)
                }
            })
            .await?;
            moved += u32::from(changed);
        }
        Ok(moved)
    }

    /// Approves every pending line whose hold has passed by `now`; how many. Within a run,
    /// the run's lease is kept as it goes.
    async fn approve_due(
        &self,
        now: DateTime<Utc>,
        mut lease: Option<(&str, &mut RunLease)>,
        progress: &mut dyn FnMut(Progress) -> Result<()>,
    ) -> Result<u32> {
        let pending = self
            .find_all(
                LINES,
                Some((INDEX_STATUS, CommissionStatus::Pending.as_str())),
                read_line,
            )
            .await?;
        let due: Vec<&Versioned<CommissionLine>> = pending
            .iter()
            .filter(|l| l.value.payable_at <= now)
            .collect();
        let mut approved = 0;
        for (i, line) in due.iter().enumerate() {
            if i as u64 % PROGRESS_EVERY == 0 {
                if let Some((holder, lease)) = lease.as_mut() {
                    self.keep_lease(holder, lease).await?;
                }
                progress(Progress {
                    phase: "approve",
                    done: i as u64,
                    total: due.len() as u64,
                })?;
            }
            let mut changed = false;
            self.update_record(
                LINES,
                &line.value.id,
                "commission",
                read_line,
                line_record,
                |l| {
                    changed = l.status == CommissionStatus::Pending && l.payable_at <= now;
                    if changed {
                        l.approve(now).map(Some)
                    } else {
                        Ok(None)
                    }
                },
            )
            .await?;
            approved += u32::from(changed);
        }
        progress(Progress {
            phase: "approve",
            done: due.len() as u64,
            total: due.len() as u64,
        })?;
        Ok(approved)
    }

    pub async fn find_line(&self, id: &str) -> Result<Option<Versioned<CommissionLine>>> {
        self.storage
            .get(LINES, id)
            .await
            .map_err(storage_failed("get"))?
            .map(read_line)
            .transpose()
    }

    /// Recorded lines matching `filter`, by payment time then id.
    pub async fn commission_lines(&self, filter: &LineFilter) -> Result<Vec<CommissionLine>> {
        let index = match (
            &filter.batch,
            &filter.payment,
            &filter.reseller,
            filter.status,
        ) {
            (Some(b), _, _, _) => Some((INDEX_BATCH, b.as_str())),
            (None, Some(p), _, _) => Some((INDEX_PAYMENT, p.as_str())),
            (None, None, Some(r), _) => Some((INDEX_RESELLER, r.as_str())),
            (None, None, None, Some(s)) => Some((INDEX_STATUS, s.as_str())),
            (None, None, None, None) => None,
        };
        let mut out: Vec<CommissionLine> = self
            .find_all(LINES, index, |r| read_line(r).map(|l| l.value))
            .await?
            .into_iter()
            .filter(|l| {
                filter.reseller.as_ref().is_none_or(|r| &l.reseller_id == r)
                    && filter.status.is_none_or(|s| l.status == s)
                    && filter
                        .batch
                        .as_ref()
                        .is_none_or(|b| l.batch_id.as_ref() == Some(b))
                    && filter.payment.as_ref().is_none_or(|p| &l.payment_id == p)
            })
            .collect();
        out.sort_by(|a, b| (a.payment_at, &a.id).cmp(&(b.payment_at, &b.id)));
        Ok(out)
    }

    /// Commission paid to a reseller (by batches and by hand), newest last.
    pub async fn commission_payments(&self, reseller_id: &str) -> Result<Vec<CommissionPayment>> {
        let mut out: Vec<CommissionPayment> = self
            .find_all(
                COMMISSION_PAYMENTS,
                Some((INDEX_RESELLER, reseller_id)),
                |r| read_payment(r).map(|p| p.value),
            )
            .await?;
        out.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        Ok(out)
    }

    /// A reseller's commission account: held, approved, advanced, payable and paid.
    pub async fn commission_balance(&self, reseller_id: &str) -> Result<CommissionBalance> {
        let reseller = self.require_reseller(reseller_id).await?.value;
        let lines = self
            .find_all(LINES, Some((INDEX_RESELLER, &reseller.id)), |r| {
                read_line(r).map(|l| l.value)
            })
            .await?;
        let paid_out = self.commission_payments(&reseller.id).await?;
        let sum = |status: CommissionStatus| {
            payout::sum_minor(
                lines
                    .iter()
                    .filter(|l| l.status == status)
                    .map(|l| l.amount),
                &format!("the {} commission of \"{}\"", status.as_str(), reseller.id),
            )
        };
        let (payable, withheld) = payout::plan_payouts(
            &lines,
            &paid_out,
            self.config.commission_plan.minimum_payout,
        )?;
        let advances = payout::sum_minor(
            paid_out
                .iter()
                .filter(|p| p.is_open_advance())
                .map(|p| p.amount),
            &format!("the advances of \"{}\"", reseller.id),
        )?;
        let approved = sum(CommissionStatus::Approved)?;
        let pending = sum(CommissionStatus::Pending)?;
        let net = approved.checked_sub(advances).ok_or_else(|| {
            Error::overflow(format!("the payable commission of \"{}\"", reseller.id))
        })?;
        let paid = payout::sum_minor(
            paid_out.iter().map(|p| p.amount),
            &format!("the commission paid to \"{}\"", reseller.id),
        )?;
        Ok(CommissionBalance {
            reseller_id: reseller.id,
            pending,
            approved,
            advances,
            payable: net,
            paid,
            withheld: if payable.is_empty() {
                Some(
                    withheld
                        .first()
                        .map_or(HoldReason::NothingPayable, |w| w.reason),
                )
            } else {
                None
            },
        })
    }

    /// The reference's `payCommission(reseller, amount, description)`: records commission paid
    /// to a reseller by hand. It counts against the reseller's payable balance: the next batch
    /// nets it out, and until earned commission covers it the balance is negative.
    pub async fn pay_commission(
        &self,
        reseller_id: &str,
        amount: i64,
        description: Option<String>,
    ) -> Result<CommissionPayment> {
        if amount < 1 {
            return Err(Error::invalid("amount", "must be positive"));
        }
        if let Some(text) = &description {
            check_description(text, "description")?;
        }
        let reseller = self.require_reseller(reseller_id).await?.value;
        let payment = CommissionPayment {
            id: self.ids.borrow_mut().commission_payment_id(),
            reseller_id: reseller.id,
            amount,
            description,
            at: self.now()?,
            batch_id: None,
            settled_by: None,
        };
        match self
            .storage
            .put(COMMISSION_PAYMENTS, &payment_record(&payment, 1), 0, &[])
            .await
            .map_err(storage_failed("put"))?
        {
            WriteOutcome::Written => Ok(payment),
            _ => Err(Error::Conflict {
                entity: "commissionPayment",
                key: payment.id,
                attempts: 1,
            }),
        }
    }

    pub async fn payout_batch(&self, id: &str) -> Result<Option<PayoutBatch>> {
        self.storage
            .get(BATCHES, id)
            .await
            .map_err(storage_failed("get"))?
            .map(|r| read_batch(r).map(|b| b.value))
            .transpose()
    }

    /// Payout batches, oldest first.
    pub async fn payout_batches(&self) -> Result<Vec<PayoutBatch>> {
        let mut out = self
            .find_all(BATCHES, None, |r| read_batch(r).map(|b| b.value))
            .await?;
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }

    /// The batch in progress named by the state record, and the state's version.
    async fn open_batch(&self) -> Result<(Option<String>, u64)> {
        let state = self
            .storage
            .get(STATE, STATE_PAYOUTS)
            .await
            .map_err(storage_failed("get"))?;
        let Some(state) = state else {
            return Ok((None, 0));
        };
        let json: Value = serde_json::from_str(&state.data)
            .map_err(|e| unreadable("commissionState", STATE_PAYOUTS, e))?;
        let open = json
            .get("openBatch")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok((open, state.version))
    }

    async fn set_open_batch(&self, batch: Option<&str>, version: u64) -> Result<bool> {
        let record = StoredRecord {
            id: STATE_PAYOUTS.to_owned(),
            version: version + 1,
            data: json!({ "openBatch": batch }).to_string(),
            indexes: Vec::new(),
        };
        let outcome = self
            .storage
            .put(STATE, &record, version, &[])
            .await
            .map_err(storage_failed("put"))?;
        Ok(outcome == WriteOutcome::Written)
    }

    /// Pays every reseller whose approved commission, net of clawbacks and advances, is
    /// positive and reaches the plan's minimum payout: one batch, one commission payment per
    /// reseller, its lines marked paid. Pending lines whose hold has passed are approved first.
    /// One batch is made at a time across every instance on the storage: a batch left open by
    /// an interrupted call is finished first (nothing in it is paid twice).
    pub async fn create_payout_batch(&self, description: Option<String>) -> Result<PayoutBatch> {
        if let Some(text) = &description {
            check_description(text, "description")?;
        }
        let now = self.now()?;
        for _ in 0..RETRY_COUNT_MAX {
            let (open, version) = self.open_batch().await?;
            if let Some(id) = open {
                self.finish_batch(&id, now).await?;
                self.set_open_batch(None, version).await?;
                continue;
            }
            let id = self.ids.borrow_mut().batch_id();
            if !self.set_open_batch(Some(&id), version).await? {
                continue;
            }
            self.approve_due(now, None, &mut |_| Ok(())).await?;
            let approved = self
                .find_all(
                    LINES,
                    Some((INDEX_STATUS, CommissionStatus::Approved.as_str())),
                    |r| read_line(r).map(|l| l.value),
                )
                .await?;
            let advances = self
                .find_all(COMMISSION_PAYMENTS, Some((INDEX_STATUS, "open")), |r| {
                    read_payment(r).map(|p| p.value)
                })
                .await?;
            let (payouts, withheld) = payout::plan_payouts(
                &approved,
                &advances,
                self.config.commission_plan.minimum_payout,
            )?;
            let batch = PayoutBatch {
                id: id.clone(),
                description,
                status: BatchStatus::Open,
                created_at: now,
                completed_at: None,
                payouts,
                withheld,
            };
            let written = self
                .storage
                .put(BATCHES, &batch_record(&batch, 1), 0, &[])
                .await
                .map_err(storage_failed("put"))?;
            if written != WriteOutcome::Written {
                return Err(Error::Conflict {
                    entity: "payoutBatch",
                    key: id,
                    attempts: 1,
                });
            }
            let paid = self.finish_batch(&id, now).await?;
            let (_, version) = self.open_batch().await?;
            self.set_open_batch(None, version).await?;
            return Ok(paid);
        }
        Err(Error::Conflict {
            entity: "payoutBatch",
            key: "new batch".to_owned(),
            attempts: RETRY_COUNT_MAX,
        })
    }

    /// Claims an open batch's lines and advances, records its payments, and marks it paid;
    /// safe to repeat. A line that changed since the batch was planned (reversed by a
    /// refund) is left out, and the payout is what the claimed lines add up to.
    async fn finish_batch(&self, id: &str, now: DateTime<Utc>) -> Result<PayoutBatch> {
        let Some(stored) = self
            .storage
            .get(BATCHES, id)
            .await
            .map_err(storage_failed("get"))?
        else {
            // The state named a batch whose record was never written: nothing was claimed.
            return Ok(PayoutBatch {
                id: id.to_owned(),
                description: None,
                status: BatchStatus::Paid,
                created_at: now,
                completed_at: Some(now),
                payouts: Vec::new(),
                withheld: Vec::new(),
            });
        };
        let stored = read_batch(stored)?;
        if stored.value.status == BatchStatus::Paid {
            return Ok(stored.value);
        }
        let mut batch = stored.value.clone();
        for payout in &mut batch.payouts {
            let (mut earned, mut clawbacks, mut advances) = (0i64, 0i64, 0i64);
            let mut lines = Vec::with_capacity(payout.line_ids.len());
            for line_id in &payout.line_ids {
                let line = self
                    .update_record(LINES, line_id, "commission", read_line, line_record, |l| {
                        if l.status == CommissionStatus::Approved {
                            l.pay(id, now).map(Some)
                        } else {
                            Ok(None)
                        }
                    })
                    .await?;
                if line.value.batch_id.as_deref() == Some(id) {
                    let what = || format!("the payout of reseller \"{}\"", payout.reseller_id);
                    if line.value.amount >= 0 {
                        earned = payout::add_minor(earned, line.value.amount, what)?;
                    } else {
                        clawbacks = payout::add_minor(clawbacks, line.value.amount, what)?;
                    }
                    lines.push(line_id.clone());
                }
            }
            let mut settled = Vec::with_capacity(payout.advance_ids.len());
            for advance_id in &payout.advance_ids {
                let advance = self
                    .update_record(
                        COMMISSION_PAYMENTS,
                        advance_id,
                        "commissionPayment",
                        read_payment,
                        payment_record,
                        |p| {
                            if p.is_open_advance() {
                                p.settle(id).map(Some)
                            } else {
                                Ok(None)
                            }
                        },
                    )
                    .await?;
                if advance.value.settled_by.as_deref() == Some(id) {
                    advances = payout::add_minor(advances, advance.value.amount, || {
                        format!("the advances of reseller \"{}\"", payout.reseller_id)
                    })?;
                    settled.push(advance_id.clone());
                }
            }
            payout.line_ids = lines;
            payout.advance_ids = settled;
            payout.earned = earned;
            payout.clawbacks = clawbacks;
            payout.advances = advances;
            payout.amount = payout::net_minor(earned, clawbacks, advances, &payout.reseller_id)?;
            payout.payment_id = None;
            if payout.amount > 0 {
                let payment = CommissionPayment {
                    id: PayoutBatch::payment_id(id, &payout.reseller_id),
                    reseller_id: payout.reseller_id.clone(),
                    amount: payout.amount,
                    description: batch.description.clone(),
                    at: now,
                    batch_id: Some(id.to_owned()),
                    settled_by: None,
                };
                // Written by an earlier attempt at this batch, it is the same payment.
                self.storage
                    .put(COMMISSION_PAYMENTS, &payment_record(&payment, 1), 0, &[])
                    .await
                    .map_err(storage_failed("put"))?;
                payout.payment_id = Some(payment.id);
            }
        }
        batch.status = BatchStatus::Paid;
        batch.completed_at = Some(now);
        let record = batch_record(&batch, stored.version + 1);
        match self
            .storage
            .put(BATCHES, &record, stored.version, &[])
            .await
            .map_err(storage_failed("put"))?
        {
            WriteOutcome::Written => Ok(batch),
            // Another instance finished it meanwhile: its record stands.
            _ => self.payout_batch(id).await?.ok_or_else(|| Error::NotFound {
                entity: "payoutBatch",
                key: id.to_owned(),
            }),
        }
    }

    /// Recomputes the configured plan's lines for payments in `[start, end)` and compares them
    /// with the lines recorded for those payments: every missing, unexpected or changed line.
    /// Like a run, it reads one reseller's part of the period at a time.
    pub async fn reconcile(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Reconciliation> {
        let now = self.now()?;
        self.ensure_payment_indexes().await?;
        let active = self.period_activity(start, end, &mut |_| Ok(())).await?;
        let mut out = Reconciliation::default();
        let mut known = KnownResellers::new();
        for reseller_id in active.keys() {
            let Some(sub) = self
                .reseller_run(reseller_id, start, end, now, &mut known, false)
                .await?
            else {
                continue;
            };
            let expected = Self::run_lines(&sub, now)?;
            let ids: Vec<&str> = sub
                .in_period
                .iter()
                .map(|&i| sub.records[i as usize].id.as_str())
                .collect();
            let recorded = self.recorded_lines(&ids).await?;
            let part = payout::reconcile(&expected, &recorded)?;
            out.expected_lines = out.expected_lines.saturating_add(part.expected_lines);
            out.recorded_lines = out.recorded_lines.saturating_add(part.recorded_lines);
            out.matched = out.matched.saturating_add(part.matched);
            out.expected_total = payout::sum_minor(
                [out.expected_total, part.expected_total],
                "the expected total",
            )?;
            out.recorded_total = payout::sum_minor(
                [out.recorded_total, part.recorded_total],
                "the recorded total",
            )?;
            out.discrepancies.extend(part.discrepancies);
        }
        out.discrepancies.sort_by(|a, b| a.line_id.cmp(&b.line_id));
        Ok(out)
    }
}

//! The engine form of commissions for JavaScript: `ally.commissions.process(…)`, recorded
//! lines, balances, payout batches, and the reference's `ally.payCommission(…)` and
//! `ally.reconcile(…)`.

use std::rc::Rc;

use js_sys::{Function, Promise};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::ally::{call, record_id, reseller_id, Ally, Engine};
use super::codec::to_plain;
use super::commission::minor;
use super::commission::minor_text;
use super::error::{describe, OrThrow};
use super::input::{self, type_name};
use super::payments::time;
use super::types::optional::{
    self, CommissionLineFilterArg, MemoArg, PayoutBatchOptionsArg, ProcessCommissionsOptionsArg,
};
use crate::domain::payout::{
    AdjustmentReason, CommissionLine, CommissionPayment, CommissionStatus, Discrepancy,
    PayoutBatch, Reconciliation,
};
use crate::domain::reseller::iso_time;
use crate::domain::{Error, Result};
use crate::engine::{check_description, CommissionBalance, LineFilter, ProcessSummary, Progress};

#[wasm_bindgen(typescript_custom_section)]
const PAYOUT_TYPES: &str = r#"
export type CommissionStatus = "pending" | "approved" | "paid" | "reversed";

/** Why a run adjusted a recorded line: another reseller earns it, its rate or base moved, a
 * cap or remainder over the period moved its amount, or the period no longer gives it. */
export type CommissionAdjustmentReason = "reseller" | "rate" | "base" | "allocation" | "removed";

/** Where a long commission run stands: `load` after each page of the period's payments
 * (`done` and `total`: the payments read so far), `record` after each reseller's part (the
 * period's payments recorded, of all), `approve` as held lines are approved. */
export interface CommissionProgress {
  phase: "load" | "record" | "approve";
  done: number;
  total: number;
}

export interface PayoutBatchOptions {
  description?: string;
}

export interface ProcessCommissionsOptions {
  /** Called as the run moves on; throwing stops the run (what is recorded stays, and running
   * the same period again records the rest). */
  onProgress?: (progress: CommissionProgress) => void;
}

export interface CommissionRunSummary {
  start: string;
  end: string;
  asOf: string;
  /** Completed payments, refunds and chargebacks in the period. */
  payments: number;
  /** Lines the plan gives for them. */
  lines: number;
  /** Of those, recorded by this run (the rest were recorded by an earlier run). */
  recorded: number;
  /** Adjustments recorded by this run: lines an earlier run recorded that the period no longer
   * gives as they are (a late payment moved a cap, a band or a tier). */
  adjusted: number;
  /** Lines reversed: an unpaid line and the clawback that cancels it in full. */
  reversed: number;
  /** Pending lines (of any period) approved because their hold has passed. */
  approved: number;
  /** Sum of the period's lines. */
  total: string;
}

/** A recorded commission line. */
export interface CommissionRecord {
  /** `cm_<paymentId>_<level>_<rule>`. */
  id: string;
  paymentId: string;
  clientId: string;
  resellerId: string;
  level: number;
  rule: CommissionRule;
  rate: string;
  base: string;
  amount: string;
  paymentAt: string;
  payableAt: string;
  status: CommissionStatus;
  /** For a clawback: the line it claws back. */
  reverses: string | null;
  batchId: string | null;
  /** For an adjustment (`<line>_adj<n>`): the line it adjusts. Its amount and base are the
   * change, its rate the line's rate now. */
  adjusts: string | null;
  /** For an adjustment: what moved. */
  reason: CommissionAdjustmentReason | null;
  recordedAt: string;
  updatedAt: string;
}

export interface CommissionLineFilter {
  reseller?: Reseller | string;
  status?: CommissionStatus;
  batch?: string;
  payment?: string;
}

export type WithheldReason = "negativeBalance" | "nothingPayable" | "belowMinimum";

export interface CommissionBalance {
  resellerId: string;
  /** Lines in their hold. */
  pending: string;
  /** Approved lines not yet paid, clawbacks included. */
  approved: string;
  /** Commission paid by hand (`payCommission`) and not yet netted out by a batch. */
  advances: string;
  /** `approved − advances`: what the next batch would pay; negative blocks payouts. */
  payable: string;
  /** Paid by batches and by hand, in all. */
  paid: string;
  /** Why the next batch would leave the reseller out, or null. */
  withheld: WithheldReason | null;
}

/** Commission paid to a reseller, by a batch or by hand. */
export interface CommissionPaymentRecord {
  id: string;
  resellerId: string;
  amount: string;
  description: string | null;
  at: string;
  paymentMethod: "commission";
  status: "completed";
  /** The batch that paid it; null when it was paid by hand. */
  batchId: string | null;
  /** Paid by hand: the batch that netted it out of a payout. */
  settledBy: string | null;
}

export interface Payout {
  resellerId: string;
  lineIds: string[];
  advanceIds: string[];
  earned: string;
  clawbacks: string;
  advances: string;
  amount: string;
  paymentId: string | null;
}

export interface PayoutBatch {
  id: string;
  description: string | null;
  status: "open" | "paid";
  createdAt: string;
  completedAt: string | null;
  currency: string;
  minimumPayout: string;
  total: string;
  payouts: Payout[];
  withheld: { resellerId: string; payable: string; reason: WithheldReason }[];
}

export interface CommissionDiscrepancy {
  kind: "missing" | "unexpected" | "changed";
  lineId: string;
  paymentId: string;
  /** For `changed`: the fields that differ. */
  fields: ("resellerId" | "amount" | "rate" | "base" | "payableAt")[];
  expected: CommissionRecord | null;
  recorded: CommissionRecord | null;
}

export interface Reconciliation {
  start: string;
  end: string;
  expectedLines: number;
  recordedLines: number;
  matched: number;
  expectedTotal: string;
  recordedTotal: string;
  /** `recordedTotal − expectedTotal`. */
  difference: string;
  discrepancies: CommissionDiscrepancy[];
}
"#;

/// Commission runs, recorded lines, balances and payout batches: `ally.commissions`.
#[wasm_bindgen]
pub struct Commissions {
    engine: Rc<Engine>,
}

fn line_js(l: &CommissionLine, scale: u32) -> Value {
    json!({
        "id": l.id,
        "paymentId": l.payment_id,
        "clientId": l.client_id,
        "resellerId": l.reseller_id,
        "level": l.level,
        "rule": l.rule.as_str(),
        "rate": l.rate.to_decimal().to_string(),
        "base": minor_text(l.base, scale),
        "amount": minor_text(l.amount, scale),
        "paymentAt": iso_time::format(l.payment_at),
        "payableAt": iso_time::format(l.payable_at),
        "status": l.status.as_str(),
        "reverses": l.reverses,
        "batchId": l.batch_id,
        "adjusts": l.adjusts,
        "reason": l.reason.map(AdjustmentReason::as_str),
        "recordedAt": iso_time::format(l.recorded_at),
        "updatedAt": iso_time::format(l.updated_at),
    })
}

fn commission_payment_js(p: &CommissionPayment, scale: u32) -> Value {
    json!({
        "id": p.id,
        "resellerId": p.reseller_id,
        "amount": minor_text(p.amount, scale),
        "description": p.description,
        "at": iso_time::format(p.at),
        "paymentMethod": "commission",
        "status": "completed",
        "batchId": p.batch_id,
        "settledBy": p.settled_by,
    })
}

fn batch_js(b: &PayoutBatch, engine: &Engine) -> Result<Value, Error> {
    let config = engine.config();
    let scale = config.pricing.currency.scale();
    let payouts: Vec<Value> = b
        .payouts
        .iter()
        .map(|p| {
            json!({
                "resellerId": p.reseller_id,
                "lineIds": p.line_ids,
                "advanceIds": p.advance_ids,
                "earned": minor_text(p.earned, scale),
                "clawbacks": minor_text(p.clawbacks, scale),
                "advances": minor_text(p.advances, scale),
                "amount": minor_text(p.amount, scale),
                "paymentId": p.payment_id,
            })
        })
        .collect();
    let withheld: Vec<Value> = b
        .withheld
        .iter()
        .map(|w| {
            json!({
                "resellerId": w.reseller_id,
                "payable": minor_text(w.payable, scale),
                "reason": w.reason.as_str(),
            })
        })
        .collect();
    Ok(json!({
        "id": b.id,
        "description": b.description,
        "status": b.status.as_str(),
        "createdAt": iso_time::format(b.created_at),
        "completedAt": b.completed_at.map(iso_time::format),
        "currency": config.pricing.currency.code(),
        "minimumPayout": minor_text(config.commission_plan.minimum_payout, scale),
        "total": minor_text(b.total()?, scale),
        "payouts": payouts,
        "withheld": withheld,
    }))
}

fn balance_js(b: &CommissionBalance, scale: u32) -> Value {
    json!({
        "resellerId": b.reseller_id,
        "pending": minor_text(b.pending, scale),
        "approved": minor_text(b.approved, scale),
        "advances": minor_text(b.advances, scale),
        "payable": minor_text(b.payable, scale),
        "paid": minor_text(b.paid, scale),
        "withheld": b.withheld.map(|w| w.as_str()),
    })
}

fn summary_js(s: &ProcessSummary, scale: u32) -> Value {
    json!({
        "start": iso_time::format(s.start),
        "end": iso_time::format(s.end),
        "asOf": iso_time::format(s.as_of),
        "payments": s.payments,
        "lines": s.lines,
        "recorded": s.recorded,
        "adjusted": s.adjusted,
        "reversed": s.reversed,
        "approved": s.approved,
        "total": minor_text(s.total, scale),
    })
}

fn discrepancy_js(d: &Discrepancy, scale: u32) -> Value {
    json!({
        "kind": d.kind.as_str(),
        "lineId": d.line_id,
        "paymentId": d.payment_id,
        "fields": d.fields,
        "expected": d.expected.as_ref().map(|l| line_js(l, scale)),
        "recorded": d.recorded.as_ref().map(|l| line_js(l, scale)),
    })
}

fn reconciliation_js(
    r: &Reconciliation,
    start: chrono::DateTime<chrono::Utc>,
    end: chrono::DateTime<chrono::Utc>,
    scale: u32,
) -> Result<Value, Error> {
    let difference = r
        .recorded_total
        .checked_sub(r.expected_total)
        .ok_or_else(|| Error::overflow("the difference of the recorded and expected totals"))?;
    Ok(json!({
        "start": iso_time::format(start),
        "end": iso_time::format(end),
        "expectedLines": r.expected_lines,
        "recordedLines": r.recorded_lines,
        "matched": r.matched,
        "expectedTotal": minor_text(r.expected_total, scale),
        "recordedTotal": minor_text(r.recorded_total, scale),
        "difference": minor_text(difference, scale),
        "discrepancies": r.discrepancies.iter().map(|d| discrepancy_js(d, scale)).collect::<Vec<_>>(),
    }))
}

/// `{ onProgress? }`: the progress function, if any.
fn progress_option(options: &JsValue) -> Result<Option<Function>> {
    if options.is_undefined() || options.is_null() {
        return Ok(None);
    }
    if !input::is_plain(options) {
        return Err(Error::invalid(
            "options",
            format!("expected a plain object, got {}", type_name(options)),
        ));
    }
    let object: &js_sys::Object = options.unchecked_ref();
    let keys = js_sys::Reflect::own_keys(object)
        .map_err(|_| Error::invalid("options", "its keys could not be read"))?;
    for key in keys.iter() {
        let name = key.as_string().unwrap_or_else(|| "a symbol".to_owned());
        if name != "onProgress" {
            return Err(Error::invalid(
                format!("options.{name}"),
                "unknown key; expected onProgress",
            ));
        }
    }
    let value = input::own_property(options, "onProgress")
        .map_err(|_| Error::invalid("options.onProgress", "could not be read"))?;
    if value.is_undefined() {
        return Ok(None);
    }
    value.dyn_into::<Function>().map(Some).map_err(|v| {
        Error::invalid(
            "options.onProgress",
            format!("expected a function, got {}", type_name(&v)),
        )
    })
}

fn call_progress(f: &Function, p: Progress) -> Result<()> {
    let payload = js_sys::Object::new();
    let set = |k: &str, v: JsValue| js_sys::Reflect::set(&payload, &k.into(), &v);
    let _ = set("phase", p.phase.into());
    let _ = set("done", (p.done as f64).into());
    let _ = set("total", (p.total as f64).into());
    f.call1(&JsValue::UNDEFINED, &payload)
        .map(|_| ())
        .map_err(|thrown| {
            Error::invalid(
                "options.onProgress",
                format!("threw, which stops the run: {}", describe(&thrown)),
            )
        })
}

/// A filter's `reseller`: the record or its id, or absent.
pub(super) fn filter_reseller(f: &mut crate::domain::record::Fields) -> Result<Option<String>> {
    match f.take("reseller") {
        None => Ok(None),
        Some(Value::String(id)) => Ok(Some(id)),
        Some(Value::Object(mut o)) => match o.remove("id") {
            Some(Value::String(id)) => Ok(Some(id)),
            _ => Err(Error::invalid(
                "filter.reseller",
                "expected a reseller or its id",
            )),
        },
        Some(_) => Err(Error::invalid(
            "filter.reseller",
            "expected a reseller or its id",
        )),
    }
}

fn line_filter(value: &JsValue) -> Result<LineFilter> {
    let mut f = input::record(value, "filter")?;
    let reseller = filter_reseller(&mut f)?;
    let filter = LineFilter {
        reseller,
        status: f.opt_choice("status", &CommissionStatus::ALL, CommissionStatus::as_str)?,
        batch: f.opt_string("batch")?,
        payment: f.opt_string("payment")?,
    };
    f.finish(&["reseller", "status", "batch", "payment"])?;
    Ok(filter)
}

fn opt_description(value: &JsValue, field: &str) -> Result<Option<String>> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    let text = input::string(value, field)?;
    check_description(&text, field)?;
    Ok(Some(text))
}

#[wasm_bindgen]
impl Ally {
    /// Commission runs, recorded lines, balances and payout batches.
    #[wasm_bindgen(getter)]
    pub fn commissions(&self) -> Commissions {
        Commissions {
            engine: Rc::clone(&self.engine),
        }
    }

    /// The reference's `payCommission(reseller, amount, description)`: records commission paid
    /// to a reseller by hand (`paymentMethod: "commission"`, `status: "completed"`). The next
    /// payout batch nets it out of what the reseller is owed; until earned commission covers
    /// it, the reseller's payable balance is negative and its payouts wait.
    #[wasm_bindgen(js_name = payCommission, unchecked_return_type = "Promise<CommissionPaymentRecord>")]
    pub fn pay_commission(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Money")] amount: JsValue,
        description: Option<MemoArg>,
    ) -> Promise {
        let currency = self.engine.config().pricing.currency.clone();
        let parsed = (|| {
            let id = reseller_id(&reseller, "reseller")?;
            let amount = minor(&input::to_json(&amount, "amount")?, &currency, "amount")?;
            let description = opt_description(&optional::value(description), "description")?;
            Ok::<_, Error>((id, amount, description))
        })();
        call(
            &self.engine,
            parsed,
            |engine, (id, amount, description)| async move {
                let scale = engine.config().pricing.currency.scale();
                let paid = engine
                    .pay_commission(&id, amount, description)
                    .await
                    .or_throw()?;
                to_plain(&commission_payment_js(&paid, scale))
            },
        )
    }

    /// Recomputes the configured plan's commission for payments in `[start, end)` and lists
    /// every difference with the recorded lines: missing, unexpected, or changed (naming the
    /// fields).
    #[wasm_bindgen(unchecked_return_type = "Promise<Reconciliation>")]
    pub fn reconcile(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | Date | number")] start: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string | Date | number")] end: JsValue,
    ) -> Promise {
        let parsed = time(&start, "start").and_then(|s| Ok((s, time(&end, "end")?)));
        call(&self.engine, parsed, |engine, (start, end)| async move {
            let scale = engine.config().pricing.currency.scale();
            let report = engine.reconcile(start, end).await.or_throw()?;
            to_plain(&reconciliation_js(&report, start, end, scale).or_throw()?)
        })
    }
}

#[wasm_bindgen]
impl Commissions {
    /// The monthly run: records the configured plan's lines for payments in `[start, end)`,
    /// reverses unpaid lines a full refund cancels, and approves lines whose hold has passed.
    /// Running a period again records only what is new.
    #[wasm_bindgen(unchecked_return_type = "Promise<CommissionRunSummary>")]
    pub fn process(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | Date | number")] start: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string | Date | number")] end: JsValue,
        options: Option<ProcessCommissionsOptionsArg>,
    ) -> Promise {
        let parsed = time(&start, "start").and_then(|s| {
            Ok((
                s,
                time(&end, "end")?,
                progress_option(&optional::value(options))?,
            ))
        });
        call(
            &self.engine,
            parsed,
            |engine, (start, end, on_progress)| async move {
                let scale = engine.config().pricing.currency.scale();
                let mut report = |p: Progress| match &on_progress {
                    Some(f) => call_progress(f, p),
                    None => Ok(()),
                };
                let summary = engine
                    .process_commissions(start, end, &mut report)
                    .await
                    .or_throw()?;
                to_plain(&summary_js(&summary, scale))
            },
        )
    }

    /// Recorded lines, by payment time; the filter narrows by reseller, status, batch or
    /// payment.
    #[wasm_bindgen(unchecked_return_type = "Promise<CommissionRecord[]>")]
    pub fn lines(&self, filter: Option<CommissionLineFilterArg>) -> Promise {
        call(
            &self.engine,
            line_filter(&optional::value(filter)),
            |engine, filter| async move {
                let scale = engine.config().pricing.currency.scale();
                let lines = engine.commission_lines(&filter).await.or_throw()?;
                to_plain(&lines.iter().map(|l| line_js(l, scale)).collect::<Vec<_>>())
            },
        )
    }

    /// A reseller's commission account: pending, approved, advances, payable and paid.
    #[wasm_bindgen(unchecked_return_type = "Promise<CommissionBalance>")]
    pub fn balance(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
    ) -> Promise {
        call(
            &self.engine,
            reseller_id(&reseller, "reseller"),
            |engine, id| async move {
                let scale = engine.config().pricing.currency.scale();
                let balance = engine.commission_balance(&id).await.or_throw()?;
                to_plain(&balance_js(&balance, scale))
            },
        )
    }

    /// Commission paid to a reseller, by batches and by hand, oldest first.
    #[wasm_bindgen(unchecked_return_type = "Promise<CommissionPaymentRecord[]>")]
    pub fn payments(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
    ) -> Promise {
        call(
            &self.engine,
            reseller_id(&reseller, "reseller"),
            |engine, id| async move {
                let scale = engine.config().pricing.currency.scale();
                engine.require_reseller(&id).await.or_throw()?;
                let paid = engine.commission_payments(&id).await.or_throw()?;
                to_plain(
                    &paid
                        .iter()
                        .map(|p| commission_payment_js(p, scale))
                        .collect::<Vec<_>>(),
                )
            },
        )
    }

    /// Pays every reseller whose approved commission, net of clawbacks and advances, is
    /// positive and reaches the plan's `minimumPayout`: one commission payment each, their
    /// lines marked paid; the others are listed as withheld with the reason. A batch left open
    /// by an interrupted call is finished first.
    #[wasm_bindgen(js_name = createPayoutBatch, unchecked_return_type = "Promise<PayoutBatch>")]
    pub fn create_payout_batch(&self, options: Option<PayoutBatchOptionsArg>) -> Promise {
        let parsed = (|| {
            let mut f = input::record(&optional::value(options), "options")?;
            let description = f.opt_string("description")?;
            f.finish(&["description"])?;
            if let Some(text) = &description {
                check_description(text, "options.description")?;
            }
            Ok::<_, Error>(description)
        })();
        call(&self.engine, parsed, |engine, description| async move {
            let batch = engine.create_payout_batch(description).await.or_throw()?;
            to_plain(&batch_js(&batch, &engine).or_throw()?)
        })
    }

    /// The payout batch with this id (`NOT_FOUND` otherwise).
    #[wasm_bindgen(unchecked_return_type = "Promise<PayoutBatch>")]
    pub fn batch(&self, #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue) -> Promise {
        call(
            &self.engine,
            record_id(&id, "id", "payout batch"),
            |engine, id| async move {
                let batch = engine
                    .payout_batch(&id)
                    .await
                    .or_throw()?
                    .ok_or_else(|| Error::NotFound {
                        entity: "payoutBatch",
                        key: id.clone(),
                    })
                    .or_throw()?;
                to_plain(&batch_js(&batch, &engine).or_throw()?)
            },
        )
    }

    /// Every payout batch, oldest first.
    #[wasm_bindgen(unchecked_return_type = "Promise<PayoutBatch[]>")]
    pub fn batches(&self) -> Promise {
        call(&self.engine, Ok(()), |engine, ()| async move {
            let batches = engine.payout_batches().await.or_throw()?;
            to_plain(
                &batches
                    .iter()
                    .map(|b| batch_js(b, &engine))
                    .collect::<Result<Vec<_>, _>>()
                    .or_throw()?,
            )
        })
    }
}

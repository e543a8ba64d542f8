//! `ally.payments.record(…)` and the commission reports for JavaScript.

use std::rc::Rc;

use chrono::DateTime;
use js_sys::Promise;
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;

use super::ally::{promise, rejected, reseller_id, Ally, Engine};
use super::codec::to_plain;
use super::commission::{minor, minor_text};
use super::error::OrThrow;
use super::input;
use super::input::{time_ms, time_value_ms};
use crate::domain::commission::{PaymentKind, PaymentStatus};
use crate::domain::money::Rate;
use crate::domain::payment::PaymentRecord;
use crate::domain::record::Fields;
use crate::domain::reseller::iso_time;
use crate::domain::{Error, Result};
use crate::engine::{ChildAccountsRevenue, PaymentInput, ResellerFilter};

#[wasm_bindgen(typescript_custom_section)]
const PAYMENT_TYPES: &str = r#"
export interface PaymentInput {
  /** Default: a fresh `pm_…` id. */
  id?: string;
  clientId: string;
  /** In the configured currency. */
  amount: Money;
  at: string | Date | number;
  /** Default `completed`; only completed payments count. */
  status?: "completed" | "pending" | "failed";
  /** Default `payment`. */
  kind?: "payment" | "refund" | "chargeback";
  /** For a refund or chargeback: the id of the payment it reverses. */
  reverses?: string;
  description?: string;
}

export interface PaymentRecord {
  id: string;
  clientId: string;
  /** The client's reseller when the payment was recorded. */
  resellerId: string | null;
  amount: string;
  at: string;
  status: "completed" | "pending" | "failed";
  kind: "payment" | "refund" | "chargeback";
  reverses: string | null;
  description: string | null;
}

export interface ClientRevenue {
  clientId: string;
  refid: string;
  name: string;
  revenue: string;
  payments: number;
  commission: string;
}

/** The lines of one rule, level and rate a report's commission is made of. */
export interface CommissionRuleFigure {
  rule: CommissionRule;
  /** 0 on the reseller's own clients' payments; 1 and up for overrides on those below it. */
  level: number;
  rate: string;
  base: string;
  amount: string;
  lines: number;
}

/** How a report's commission is made up, under the configured `commissionPlan`. */
export interface CommissionFigures {
  /** The rule the direct rate came from. */
  rule: CommissionRule;
  /** Percentage and flat fees on its own clients' payments, after any cap. */
  direct: string;
  /** Overrides on the payments of the resellers below it. */
  overrides: string;
  /** Clawed back for refunds and chargebacks (at most 0). */
  clawbacks: string;
  /** Direct commission the cap removed. */
  capped: string;
  byRule: CommissionRuleFigure[];
}

/** The reference's `calculateChildAccountsRevenue`, under the configured plan: `commission`
 * is what a commission run over the same payments records for the reseller. */
export interface ChildAccountsRevenue extends CommissionFigures {
  totalRevenue: string;
  totalPayments: number;
  commission: string;
  /** The direct rate (the effective one in graduated mode). */
  commissionRate: string;
  childCount: number;
  breakdown: ClientRevenue[];
}

/** The reference's `generateCommissionReport`. */
export interface CommissionReport {
  resellerId: string;
  resellerName: string;
  reportPeriod: { start: string; end: string };
  summary: CommissionFigures & {
    totalChildAccounts: number;
    totalRevenue: string;
    /** The direct rate as a percentage, e.g. `"15%"`. */
    commissionRate: string;
    /** What a commission run over the same payments records for the reseller. */
    totalCommission: string;
    totalPayments: number;
  };
  childAccountsBreakdown: ClientRevenue[];
}
"#;

/// Client payments: `ally.payments.record({ clientId, amount, at, status?, kind?, reverses? })`.
#[wasm_bindgen]
pub struct Payments {
    engine: Rc<Engine>,
}

fn payment_js(p: &PaymentRecord, scale: u32) -> Value {
    json!({
        "id": p.id,
        "clientId": p.client_id,
        "resellerId": p.reseller_id,
        "amount": minor_text(p.amount, scale),
        "at": iso_time::format(p.at),
        "status": p.status.as_str(),
        "kind": p.kind.as_str(),
        "reverses": p.reverses,
        "description": p.description,
    })
}

fn time_value(value: &Value, path: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    let ms = time_value_ms(value, path)?;
    DateTime::from_timestamp_millis(ms).ok_or_else(|| Error::invalid(path, "is out of range"))
}

pub(super) fn time(value: &JsValue, path: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    let ms = time_ms(value, path)?;
    DateTime::from_timestamp_millis(ms).ok_or_else(|| Error::invalid(path, "is out of range"))
}

/// `0.1500` as `"15%"`, `0.1250` as `"12.5%"`.
fn percent(rate: Rate) -> String {
    let units = rate.units();
    let whole = units / 100;
    let rest = units % 100;
    if rest == 0 {
        format!("{whole}%")
    } else {
        let fraction = format!("{rest:02}");
        format!("{whole}.{}%", fraction.trim_end_matches('0'))
    }
}

fn breakdown_js(report: &ChildAccountsRevenue, scale: u32) -> Vec<Value> {
    report
        .breakdown
        .iter()
        .map(|row| {
            json!({
                "clientId": row.client.id,
                "refid": row.client.refid,
                "name": row.client.name,
                "revenue": minor_text(row.revenue, scale),
                "payments": row.payments,
                "commission": minor_text(row.commission, scale),
            })
        })
        .collect()
}

/// Adds the figures a report's commission is made of to `out`.
fn figures_js(out: &mut Value, report: &ChildAccountsRevenue, scale: u32) {
    let t = &report.totals;
    out["rule"] = report.rule.as_str().into();
    out["direct"] = minor_text(t.direct, scale).into();
    out["overrides"] = minor_text(t.overrides, scale).into();
    out["clawbacks"] = minor_text(t.clawbacks, scale).into();
    out["capped"] = minor_text(t.capped, scale).into();
    out["byRule"] = report
        .rules
        .iter()
        .map(|f| {
            json!({
                "rule": f.rule.as_str(),
                "level": f.level,
                "rate": f.rate.to_decimal().to_string(),
                "base": minor_text(f.base, scale),
                "amount": minor_text(f.amount, scale),
                "lines": f.lines,
            })
        })
        .collect::<Vec<_>>()
        .into();
}

fn summary_js(report: &ChildAccountsRevenue, scale: u32) -> Value {
    let mut out = json!({
        "totalChildAccounts": report.child_count,
        "totalRevenue": minor_text(report.total_revenue, scale),
        "commissionRate": percent(report.commission_rate),
        "totalCommission": minor_text(report.commission, scale),
        "totalPayments": report.total_payments,
    });
    figures_js(&mut out, report, scale);
    out
}

#[wasm_bindgen]
impl Ally {
    /// Client payments.
    #[wasm_bindgen(getter)]
    pub fn payments(&self) -> Payments {
        Payments {
            engine: Rc::clone(&self.engine),
        }
    }

    /// A reseller's clients' completed payments in `[start, end)` and the commission the
    /// configured plan earns it in the period, as a commission run records it: `{ totalRevenue,
    /// totalPayments, commission, commissionRate, childCount, breakdown }` and how the
    /// commission is made up (`rule`, `direct`, `overrides`, `clawbacks`, `capped`, `byRule`).
    #[wasm_bindgen(
        js_name = calculateChildAccountsRevenue,
        unchecked_return_type = "Promise<ChildAccountsRevenue>"
    )]
    pub fn calculate_child_accounts_revenue(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string | Date | number")] start: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string | Date | number")] end: JsValue,
    ) -> Promise {
        self.revenue_report(&reseller, &start, &end, |r, scale, _, _| {
            let mut out = json!({
                "totalRevenue": minor_text(r.total_revenue, scale),
                "totalPayments": r.total_payments,
                "commission": minor_text(r.commission, scale),
                "commissionRate": r.commission_rate.to_decimal().to_string(),
                "childCount": r.child_count,
                "breakdown": breakdown_js(&r, scale),
            });
            figures_js(&mut out, &r, scale);
            to_plain(&out)
        })
    }

    /// The reference's commission report for one reseller over `[start, end)`.
    #[wasm_bindgen(js_name = commissionReport, unchecked_return_type = "Promise<CommissionReport>")]
    pub fn commission_report(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string | Date | number")] start: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string | Date | number")] end: JsValue,
    ) -> Promise {
        self.revenue_report(&reseller, &start, &end, |r, scale, start, end| {
            to_plain(&json!({
                "resellerId": r.reseller.id,
                "resellerName": r.reseller.company_name,
                "reportPeriod": { "start": iso_time::format(start), "end": iso_time::format(end) },
                "summary": summary_js(&r, scale),
                "childAccountsBreakdown": breakdown_js(&r, scale),
            }))
        })
    }

    /// Every reseller's commission summary over `[start, end)`, oldest reseller first.
    #[wasm_bindgen(
        js_name = allResellersCommission,
        unchecked_return_type = "Promise<(CommissionReport[\"summary\"] & { resellerId: string; resellerName: string })[]>"
    )]
    pub fn all_resellers_commission(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | Date | number")] start: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string | Date | number")] end: JsValue,
    ) -> Promise {
        let parsed = time(&start, "start").and_then(|s| Ok((s, time(&end, "end")?)));
        let (start, end) = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(async move {
            let scale = engine.config().pricing.currency.scale();
            let resellers = engine
                .list_resellers(&ResellerFilter::default())
                .await
                .or_throw()?;
            let mut out = Vec::with_capacity(resellers.len());
            for r in resellers {
                let report = engine
                    .child_accounts_revenue(&r.value.id, start, end)
                    .await
                    .or_throw()?;
                let mut row = summary_js(&report, scale);
                row["resellerId"] = report.reseller.id.into();
                row["resellerName"] = report.reseller.company_name.into();
                out.push(row);
            }
            to_plain(&out)
        })
    }
}

impl Ally {
    /// Reads `(reseller, start, end)`, computes the reseller's revenue report and hands it to
    /// `shape` with the currency scale and the period.
    fn revenue_report(
        &self,
        reseller: &JsValue,
        start: &JsValue,
        end: &JsValue,
        shape: impl FnOnce(
                ChildAccountsRevenue,
                u32,
                chrono::DateTime<chrono::Utc>,
                chrono::DateTime<chrono::Utc>,
            ) -> std::result::Result<JsValue, JsValue>
            + 'static,
    ) -> Promise {
        let parsed = reseller_id(reseller, "reseller")
            .and_then(|id| Ok((id, time(start, "start")?, time(end, "end")?)));
        let (id, start, end) = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(async move {
            let scale = engine.config().pricing.currency.scale();
            let report = engine
                .child_accounts_revenue(&id, start, end)
                .await
                .or_throw()?;
            shape(report, scale, start, end)
        })
    }
}

#[wasm_bindgen]
impl Payments {
    /// Records a payment of a known client (`NOT_FOUND` otherwise); the reseller is the
    /// client's now. A refund or chargeback names the payment it reverses.
    #[wasm_bindgen(unchecked_return_type = "Promise<PaymentRecord>")]
    pub fn record(
        &self,
        #[wasm_bindgen(unchecked_param_type = "PaymentInput")] input: JsValue,
    ) -> Promise {
        let currency = self.engine.config().pricing.currency.clone();
        let parsed = (|| {
            let mut f = Fields::new(input::to_json_dated(&input, "payment")?, "payment")?;
            let id = f.opt_string("id")?;
            let client_id = f.string("clientId")?;
            let amount = minor(
                &f.take("amount").unwrap_or(Value::Null),
                &currency,
                "payment.amount",
            )?;
            let at = time_value(&f.take("at").unwrap_or(Value::Null), "payment.at")?;
            let status = f
                .opt_choice("status", &PaymentStatus::ALL, PaymentStatus::as_str)?
                .unwrap_or(PaymentStatus::Completed);
            let kind = f
                .opt_choice("kind", &PaymentKind::ALL, PaymentKind::as_str)?
                .unwrap_or(PaymentKind::Payment);
            let reverses = f.opt_string("reverses")?;
            let description = f.opt_string("description")?;
            f.finish(&[
                "id",
                "clientId",
                "amount",
                "at",
                "status",
                "kind",
                "reverses",
                "description",
            ])?;
            Ok(PaymentInput {
                id,
                client_id,
                amount,
                at,
                status,
                kind,
                reverses,
                description,
            })
        })();
        let input = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(async move {
            let scale = engine.config().pricing.currency.scale();
            let record = engine.record_payment(input).await.or_throw()?;
            to_plain(&payment_js(&record, scale))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::percent;
    use crate::domain::money::Rate;

    #[test]
    fn rates_as_percentages() {
        let p = |u| percent(Rate::from_units(u).unwrap_or(Rate::ZERO));
        assert_eq!(
            (p(1500), p(1250), p(5), p(0), p(10_000)),
            (
                "15%".into(),
                "12.5%".into(),
                "0.05%".into(),
                "0%".into(),
                "100%".into()
            )
        );
    }
}

//! `commission(plan, payments, hierarchy, options)`: the pure commission run for JavaScript (a
//! reseller's "what will I earn" page, a monthly preview), with no storage.
//!
//! Small inputs come as plain objects with ids; a monthly run over a million payments comes as
//! columns of typed arrays (`PaymentColumns`, `CustomerColumns`), copied into wasm memory in one
//! step each, and can answer its lines as columns too.

use std::collections::HashMap;

use js_sys::{Float64Array, Int32Array, Object, Reflect, Uint16Array, Uint32Array, Uint8Array};
use serde_json::Value;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::error::{to_js, OrThrow};
use super::input::{self, time_ms, time_value_ms, type_name};
use crate::domain::commission::{
    self, BandMode, BaseRule, CapAttribution, CustomerNode, Hierarchy, Payment, PaymentKind,
    PaymentStatus, Period, Plan, ResellerNode, RevenueBand, Rule, Step, LEVELS_MAX,
};
use crate::domain::decimal;
use crate::domain::money::{Currency, Rate};
use crate::domain::record::{self as fields, describe, Fields};
use crate::domain::rounding::Rounding;
use crate::domain::{Error, Result};

#[wasm_bindgen(typescript_custom_section)]
const COMMISSION_TYPES: &str = r#"
/** An amount of money: a decimal string at most at the currency's scale (`"1999.99"`), or a finite number. */
export type Money = string | number;
/** A rate in [0, 1] with at most 4 decimals: `"0.15"` or `0.15`. */
export type Rate = string | number;

/** A commission plan; every key is optional (the reference plan: own rate, 5 % override). */
export interface CommissionPlan {
  /** What sets the direct rate: the reseller's own `commissionRate` (default), its number of customers, or the period's revenue. */
  base?: "ownRate" | "childCount" | "revenue";
  /** For `base: "childCount"`: rows by descending minimum, the last with minimum 0. Default: 50+ 20 %, 25+ 15 %, 10+ 12 %, else 10 %. */
  childCountTiers?: { min: number; rate: Rate }[];
  /** For `base: "childCount"`: `volume` (default) rates every customer at the tier the count reaches; `graduated` rates customers 1 to 10 at the first tier, the next at the next. */
  childCountMode?: "volume" | "graduated";
  /** For `base: "revenue"`: ascending bands, the last with `upTo: null`; a band's `flatFee` is paid once a period when it is reached (graduated: every band entered; volume: the band the revenue ends in), shared over the period's payments as `bandFee` lines. */
  revenueBands?: { upTo: Money | null; rate: Rate; flatFee?: Money | null }[];
  /** `volume`: the band reached sets the rate for all revenue; `graduated`: each band at its own rate. Default `volume`. */
  bandMode?: "volume" | "graduated";
  /** Paid per payment beside the percentage. Default 0. */
  flatFee?: Money;
  /** Commission only in a customer's first N months; `null` (default) for its lifetime. */
  recurringMonths?: number | null;
  /** The most direct commission one reseller earns in the period; `null` (default) for no cap. */
  capPerPeriod?: Money | null;
  /** How a cap cuts a reseller's lines: `proportional` (default) in proportion to their amounts; `chronological` keeps lines in payment order until the cap, the crossing one gets what is left, later ones nothing. */
  capAttribution?: "proportional" | "chronological";
  /** The direct rate by the customer's month since it became one, replacing the own rate: `[{ months: 3, rate: "0.40" }, { months: null, rate: "0.20" }]`; the last step is open. Only with `base: "ownRate"`. */
  stepDown?: { months: number | null; rate: Rate }[];
  /** Commission on each customer's first N completed payments only (counted over every payment given, in time order); `null` (default) for all. */
  recurringPayments?: number | null;
  /** Bounds on one payment's direct commission (the percentage plus any flat or band fee); a minimum never raises it past what the payment leaves after its overrides. */
  perPaymentMinimum?: Money | null;
  perPaymentMaximum?: Money | null;
  /** Days after a payment before its commission is payable. Default 0. */
  holdDays?: number;
  /** The smallest payout. Default 0. */
  minimumPayout?: Money;
  /** What each level above the direct reseller earns on a payment: `[parent, grandparent, …]`. Default `["0.05"]`. */
  overrides?: Rate[];
  /** Default `halfUp`. */
  rounding?: RoundingName;
}

export interface CommissionReseller {
  id: string;
  parentId?: string | null;
  commissionRate: Rate;
  /** Only `approved` (the default) resellers earn. */
  status?: "approved" | "pending" | "rejected" | "suspended";
}

export interface CommissionCustomer {
  id: string;
  resellerId: string;
  /** When it became a customer (recurring limits count from here). Default: the epoch. */
  since?: string | Date | number;
}

/** Customers as columns: customer `i` belongs to reseller `reseller[i]` (an index into `resellers`). */
export interface CustomerColumns {
  reseller: Uint32Array;
  /** Epoch milliseconds. */
  since?: Float64Array;
}

export interface CommissionHierarchy {
  resellers: CommissionReseller[];
  customers: CommissionCustomer[] | CustomerColumns;
  /** How many levels may sit above a reseller. Default 8. */
  depthMax?: number;
}

export interface CommissionPayment {
  id?: string;
  customerId: string;
  amount: Money;
  at: string | Date | number;
  /** Only `completed` (the default) payments count. */
  status?: "completed" | "pending" | "failed";
  /** Default `payment`; a refund or chargeback claws commission back. */
  kind?: "payment" | "refund" | "chargeback";
  /** For a refund or chargeback: the `id` of the payment it reverses. */
  reverses?: string;
}

/**
 * Payments as columns, all of one length: `customer[i]` is an index into the hierarchy's
 * customers, `amountMinor[i]` whole minor units (cents), `at[i]` epoch milliseconds.
 * `status`: 0 completed (default), 1 pending, 2 failed. `kind`: 0 payment (default), 1 refund,
 * 2 chargeback. `reverses[i]`: index of the payment reversed, or -1.
 */
export interface PaymentColumns {
  customer: Uint32Array;
  amountMinor: Float64Array;
  at: Float64Array;
  status?: Uint8Array;
  kind?: Uint8Array;
  reverses?: Int32Array;
}

export interface CommissionOptions {
  /** The period is `[start, end)`. */
  start: string | Date | number;
  end: string | Date | number;
  /** Lines payable by then are approved, the others pending. Default: `end`. */
  asOf?: string | Date | number;
  /** Currency code of the amounts. Default `USD`. */
  currency?: string;
  /** How lines come back. Default: `objects` for payment objects, `columns` for payment columns. */
  lines?: "objects" | "columns" | "none";
}

export interface CommissionLine {
  /** The payment's `id` (or its index when it has none). */
  paymentId: string;
  resellerId: string;
  /** 0 for the direct reseller, 1 for its parent, … */
  level: number;
  rule: CommissionRule;
  rate: string;
  base: string;
  amount: string;
  payableAt: string;
  clawback: boolean;
}

export type CommissionRule = "percentage" | "childCountTier" | "revenueVolume" | "revenueGraduated" | "flatFee" | "override" | "stepDown" | "bandFee";

/** Lines as columns; `rule[i]` indexes `rules`, `rate[i]` is in ten-thousandths, amounts in minor units. */
export interface CommissionLineColumns {
  payment: Uint32Array;
  reseller: Uint32Array;
  level: Uint8Array;
  rule: Uint8Array;
  rules: CommissionRule[];
  rate: Uint16Array;
  baseMinor: Float64Array;
  amountMinor: Float64Array;
  payableAt: Float64Array;
}

export interface CommissionResellerTotal {
  resellerId: string;
  revenue: string;
  payments: number;
  childCount: number;
  /** The direct rate (the effective one in graduated mode). */
  rate: string;
  direct: string;
  overrides: string;
  clawbacks: string;
  capped: string;
  total: string;
  approved: string;
  pending: string;
  /** Approved total reaches the plan's minimum payout (and is positive). */
  payoutEligible: boolean;
}

export interface CommissionRun {
  currency: string;
  period: { start: string; end: string; asOf: string };
  /** One per reseller of the hierarchy, in its order. */
  resellers: CommissionResellerTotal[];
  lines?: CommissionLine[] | CommissionLineColumns;
  lineCount: number;
}
"#;

const RULES: [Rule; 8] = Rule::ALL;

/// Whole minor units from a money value at the currency's scale.
pub(super) fn minor(value: &Value, currency: &Currency, path: &str) -> Result<i64> {
    let text = fields::decimal_text(value, path)?;
    let parsed =
        decimal::parse(&text, currency.scale()).map_err(|reason| Error::invalid(path, reason))?;
    parsed
        .mantissa_at(currency.scale())
        .and_then(|m| i64::try_from(m).ok())
        .filter(|m| m.unsigned_abs() < 1 << 53)
        .ok_or_else(|| Error::invalid(path, "is too large"))
}

/// Minor units as decimal text, e.g. `(12345, 2)` → `"123.45"`.
pub(super) use crate::domain::decimal::units_text as minor_text;

fn rate(value: &Value, path: &str) -> Result<Rate> {
    match value {
        Value::String(text) => Rate::parse(text, path),
        Value::Number(n) => Rate::parse(&fields::number_text(n), path),
        other => Err(Error::invalid(
            path,
            format!(
                "expected a rate (decimal string or number), got {}",
                describe(other)
            ),
        )),
    }
}

fn whole(value: &Value, path: &str, max: u64) -> Result<u64> {
    value
        .as_u64()
        .filter(|&n| n <= max)
        .ok_or_else(|| Error::invalid(path, format!("expected a whole number from 0 to {max}")))
}

fn parse_plan(value: &JsValue, currency: &Currency) -> Result<Plan> {
    plan_from_fields(input::record(value, "plan")?, currency)
}

/// A plan from its record (`plan` for a preview, `commissionPlan` in the config); every key is
/// optional and defaults to the reference plan's.
pub(super) fn plan_from_fields(mut f: Fields, currency: &Currency) -> Result<Plan> {
    let mut plan = Plan::reference();
    let base = f.opt_string("base")?;
    let tiers = f.opt_array("childCountTiers")?;
    let bands = f.opt_array("revenueBands")?;
    let mode = match f.opt_string("bandMode")?.as_deref() {
        None | Some("volume") => BandMode::Volume,
        Some("graduated") => BandMode::Graduated,
        Some(other) => {
            return Err(Error::invalid(
                f.path("bandMode"),
                format!(
                    "expected \"volume\" or \"graduated\", got \"{}\"",
                    decimal::printable(other)
                ),
            ))
        }
    };
    plan.base = match base.as_deref() {
        None | Some("ownRate") => BaseRule::OwnRate,
        Some("childCount") => match tiers {
            None => BaseRule::ChildCount(commission::child_count_reference()),
            Some(rows) => BaseRule::ChildCount(
                rows.into_iter()
                    .map(|(path, row)| {
                        let mut r = Fields::new(row, &path)?;
                        let min = whole(
                            &r.take("min").unwrap_or(Value::Null),
                            &r.path("min"),
                            u64::from(u32::MAX),
                        )?;
                        let rate = rate(&r.take("rate").unwrap_or(Value::Null), &r.path("rate"))?;
                        r.finish(&["min", "rate"])?;
                        Ok((min as u32, rate))
                    })
                    .collect::<Result<_>>()?,
            ),
        },
        Some("revenue") => {
            let rows = bands.ok_or_else(|| {
                Error::invalid(f.path("revenueBands"), "is required for base \"revenue\"")
            })?;
            let bands = rows
                .into_iter()
                .map(|(path, row)| {
                    let mut r = Fields::new(row, &path)?;
                    let up_to = match r.take("upTo") {
                        None | Some(Value::Null) => None,
                        Some(v) => Some(minor(&v, currency, &r.path("upTo"))?),
                    };
                    let rate = rate(&r.take("rate").unwrap_or(Value::Null), &r.path("rate"))?;
                    let flat_fee = match r.take("flatFee") {
                        None | Some(Value::Null) => 0,
                        Some(v) => minor(&v, currency, &r.path("flatFee"))?,
                    };
                    r.finish(&["upTo", "rate", "flatFee"])?;
                    Ok(RevenueBand {
                        up_to,
                        rate,
                        flat_fee,
                    })
                })
                .collect::<Result<_>>()?;
            BaseRule::Revenue { mode, bands }
        }
        Some(other) => {
            return Err(Error::invalid(
                f.path("base"),
                format!(
                    "expected \"ownRate\", \"childCount\" or \"revenue\", got \"{}\"",
                    decimal::printable(other)
                ),
            ))
        }
    };
    if let Some(v) = f.take("flatFee") {
        plan.flat_fee = minor(&v, currency, &f.path("flatFee"))?;
    }
    match f.take("recurringMonths") {
        None | Some(Value::Null) => {}
        Some(v) => {
            plan.recurring_months = Some(whole(&v, &f.path("recurringMonths"), 1200)? as u32)
        }
    }
    match f.take("capPerPeriod") {
        None | Some(Value::Null) => {}
        Some(v) => plan.cap_per_period = Some(minor(&v, currency, &f.path("capPerPeriod"))?),
    }
    if let Some(v) = f.take("holdDays") {
        plan.hold_days = whole(&v, &f.path("holdDays"), 3650)? as u32;
    }
    if let Some(v) = f.take("minimumPayout") {
        plan.minimum_payout = minor(&v, currency, &f.path("minimumPayout"))?;
    }
    if let Some(rows) = f.opt_array("overrides")? {
        if rows.len() > LEVELS_MAX {
            return Err(Error::invalid(
                f.path("overrides"),
                format!("at most {LEVELS_MAX} levels"),
            ));
        }
        plan.overrides = rows
            .iter()
            .map(|(path, v)| rate(v, path))
            .collect::<Result<_>>()?;
    }
    if let Some(rows) = f.opt_array("stepDown")? {
        plan.step_down = rows
            .into_iter()
            .map(|(path, row)| {
                let mut r = Fields::new(row, &path)?;
                let months = match r.take("months") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(whole(&v, &r.path("months"), 1200)? as u32),
                };
                let rate = rate(&r.take("rate").unwrap_or(Value::Null), &r.path("rate"))?;
                r.finish(&["months", "rate"])?;
                Ok(Step { months, rate })
            })
            .collect::<Result<_>>()?;
    }
    match f.take("recurringPayments") {
        None | Some(Value::Null) => {}
        Some(v) => {
            plan.recurring_payments =
                Some(whole(&v, &f.path("recurringPayments"), 1_000_000)? as u32);
        }
    }
    for (key, slot) in [
        ("perPaymentMinimum", &mut plan.per_payment_minimum),
        ("perPaymentMaximum", &mut plan.per_payment_maximum),
    ] {
        match f.take(key) {
            None | Some(Value::Null) => {}
            Some(v) => *slot = Some(minor(&v, currency, &f.path(key))?),
        }
    }
    plan.child_count_mode = f
        .opt_choice("childCountMode", &BandMode::ALL, BandMode::as_str)?
        .unwrap_or(BandMode::Volume);
    plan.cap_attribution = f
        .opt_choice(
            "capAttribution",
            &CapAttribution::ALL,
            CapAttribution::as_str,
        )?
        .unwrap_or_default();
    if let Some(name) = f.opt_string("rounding")? {
        plan.rounding = Rounding::parse(&name).ok_or_else(|| {
            Error::invalid(
                f.path("rounding"),
                format!(
                    "expected halfUp, halfEven, up or down, got \"{}\"",
                    decimal::printable(&name)
                ),
            )
        })?;
    }
    f.finish(&[
        "base",
        "childCountTiers",
        "revenueBands",
        "bandMode",
        "flatFee",
        "recurringMonths",
        "capPerPeriod",
        "holdDays",
        "minimumPayout",
        "overrides",
        "rounding",
        "stepDown",
        "recurringPayments",
        "perPaymentMinimum",
        "perPaymentMaximum",
        "childCountMode",
        "capAttribution",
    ])?;
    plan.check()?;
    Ok(plan)
}

/// A JS property of a record, own properties only (inherited ones, and ones that throw when
/// read, read as absent: the field's own check then names it).
pub(super) fn own(object: &JsValue, key: &str) -> JsValue {
    input::own_property(object, key).unwrap_or(JsValue::UNDEFINED)
}

/// The keys of a columns record must be known ones.
pub(super) fn check_keys(object: &JsValue, path: &str, known: &[&str]) -> Result<()> {
    // Any object, whatever its prototype or realm: not `instanceof`.
    if !object.is_object() {
        return Ok(());
    }
    let object: &Object = object.unchecked_ref();
    let keys =
        input::own_keys(object).map_err(|_| Error::invalid(path, "listing its keys threw"))?;
    for key in keys.iter() {
        let key = key.as_string().unwrap_or_default();
        if !known.contains(&key.as_str()) {
            return Err(Error::invalid(
                format!("{path}.{key}"),
                format!("unknown key; expected {}", known.join(", ")),
            ));
        }
    }
    Ok(())
}

struct ParsedHierarchy {
    hierarchy: Hierarchy,
    reseller_ids: Vec<String>,
    customer_index: HashMap<String, u32>,
}

fn parse_hierarchy(value: &JsValue) -> Result<ParsedHierarchy> {
    if !input::is_plain(value) {
        return Err(Error::invalid(
            "hierarchy",
            format!("expected an object, got {}", type_name(value)),
        ));
    }
    check_keys(value, "hierarchy", &["resellers", "customers", "depthMax"])?;
    let depth = own(value, "depthMax");
    let depth_max = if depth.is_undefined() || depth.is_null() {
        LEVELS_MAX
    } else {
        let v = input::to_json(&depth, "hierarchy.depthMax")?;
        whole(&v, "hierarchy.depthMax", LEVELS_MAX as u64)? as usize
    };
    let Value::Array(rows) = input::to_json(&own(value, "resellers"), "hierarchy.resellers")?
    else {
        return Err(Error::invalid(
            "hierarchy.resellers",
            "expected an array of resellers",
        ));
    };
    let mut index: HashMap<String, u32> = HashMap::with_capacity(rows.len());
    let mut pending = Vec::with_capacity(rows.len());
    for (i, row) in rows.into_iter().enumerate() {
        let path = format!("hierarchy.resellers[{i}]");
        let mut r = Fields::new(row, &path)?;
        let id = r.string("id")?;
        let parent = r.opt_string("parentId")?;
        let rate = rate(
            &r.take("commissionRate").unwrap_or(Value::Null),
            &r.path("commissionRate"),
        )?;
        let approved = match r.opt_string("status")?.as_deref() {
            None | Some("approved") => true,
            Some("pending" | "rejected" | "suspended") => false,
            Some(other) => {
                return Err(Error::invalid(
                    r.path("status"),
                    format!(
                        "expected approved, pending, rejected or suspended, got \"{}\"",
                        decimal::printable(other)
                    ),
                ))
            }
        };
        r.finish(&["id", "parentId", "commissionRate", "status"])?;
        if index.insert(id.clone(), i as u32).is_some() {
            return Err(Error::invalid(
                format!("{path}.id"),
                format!("\"{}\" appears twice", decimal::printable(&id)),
            ));
        }
        pending.push((id, parent, rate, approved));
    }
    let mut resellers = Vec::with_capacity(pending.len());
    let mut reseller_ids = Vec::with_capacity(pending.len());
    for (i, (id, parent, rate, approved)) in pending.into_iter().enumerate() {
        let parent = match parent {
            None => None,
            Some(p) => Some(*index.get(&p).ok_or_else(|| {
                Error::invalid(
                    format!("hierarchy.resellers[{i}].parentId"),
                    format!(
                        "\"{}\" is not a reseller of the hierarchy",
                        decimal::printable(&p)
                    ),
                )
            })?),
        };
        reseller_ids.push(id.clone());
        resellers.push(ResellerNode {
            id,
            parent,
            rate,
            approved,
        });
    }
    let customers_value = own(value, "customers");
    let mut customer_index = HashMap::new();
    let customers = if input::is_array(&customers_value) {
        let Value::Array(rows) = input::to_json_dated(&customers_value, "hierarchy.customers")?
        else {
            return Err(Error::invalid("hierarchy.customers", "expected an array"));
        };
        customer_index.reserve(rows.len());
        let mut out = Vec::with_capacity(rows.len());
        for (i, row) in rows.into_iter().enumerate() {
            let path = format!("hierarchy.customers[{i}]");
            let mut c = Fields::new(row, &path)?;
            let id = c.string("id")?;
            let reseller_id = c.string("resellerId")?;
            let since_ms = match c.take("since") {
                None | Some(Value::Null) => 0,
                Some(v) => time_value_ms(&v, &c.path("since"))?,
            };
            c.finish(&["id", "resellerId", "since"])?;
            let reseller = *index.get(&reseller_id).ok_or_else(|| {
                Error::invalid(
                    format!("{path}.resellerId"),
                    format!(
                        "\"{}\" is not a reseller of the hierarchy",
                        decimal::printable(&reseller_id)
                    ),
                )
            })?;
            if customer_index.insert(id.clone(), i as u32).is_some() {
                return Err(Error::invalid(
                    format!("{path}.id"),
                    format!("\"{}\" appears twice", decimal::printable(&id)),
                ));
            }
            out.push(CustomerNode { reseller, since_ms });
        }
        out
    } else if input::is_plain(&customers_value) {
        check_keys(
            &customers_value,
            "hierarchy.customers",
            &["reseller", "since"],
        )?;
        let reseller = input::typed_into::<Uint32Array>(own(&customers_value, "reseller"))
            .map_err(|v| {
                Error::invalid(
                    "hierarchy.customers.reseller",
                    format!("expected a Uint32Array, got {}", type_name(&v)),
                )
            })?
            .to_vec();
        let since = typed_f64(
            &own(&customers_value, "since"),
            "hierarchy.customers.since",
            reseller.len(),
        )?;
        let mut out = Vec::with_capacity(reseller.len());
        for (i, &r) in reseller.iter().enumerate() {
            let since_ms = match &since {
                Some(column) => whole_ms(column[i], || format!("hierarchy.customers.since[{i}]"))?,
                None => 0,
            };
            out.push(CustomerNode {
                reseller: r,
                since_ms,
            });
        }
        out
    } else {
        return Err(Error::invalid(
            "hierarchy.customers",
            format!(
                "expected an array of customers or CustomerColumns, got {}",
                type_name(&customers_value)
            ),
        ));
    };
    let hierarchy = Hierarchy::new(resellers, customers, depth_max)?;
    Ok(ParsedHierarchy {
        hierarchy,
        reseller_ids,
        customer_index,
    })
}

/// An optional `Float64Array` column of `len` values.
pub(super) fn typed_f64(value: &JsValue, path: &str, len: usize) -> Result<Option<Vec<f64>>> {
    if value.is_undefined() {
        return Ok(None);
    }
    let column = input::typed::<Float64Array>(value).ok_or_else(|| {
        Error::invalid(
            path,
            format!("expected a Float64Array, got {}", type_name(value)),
        )
    })?;
    if column.length() as usize != len {
        return Err(Error::invalid(
            path,
            format!("has {} values, expected {len}", column.length()),
        ));
    }
    Ok(Some(column.to_vec()))
}

/// A time in whole milliseconds; `path` names it only on a refusal (it runs per payment of a
/// column, so the name is not built until it is needed).
fn whole_ms(value: f64, path: impl FnOnce() -> String) -> Result<i64> {
    if value.is_finite() && value.fract() == 0.0 && value.abs() <= 8.64e15 {
        Ok(value as i64)
    } else {
        Err(Error::invalid(
            path(),
            format!("{} is not a valid time", decimal::js_number(value)),
        ))
    }
}

struct ParsedPayments {
    payments: Vec<Payment>,
    /// The payments' ids (object input), for the lines.
    ids: Option<Vec<Option<String>>>,
}

fn parse_payment_objects(
    value: &JsValue,
    parsed: &ParsedHierarchy,
    currency: &Currency,
) -> Result<ParsedPayments> {
    let Value::Array(rows) = input::to_json_dated(value, "payments")? else {
        return Err(Error::invalid("payments", "expected an array"));
    };
    let mut by_id: HashMap<String, u32> = HashMap::new();
    let mut payments = Vec::with_capacity(rows.len());
    let mut ids = Vec::with_capacity(rows.len());
    let mut reversals = Vec::new();
    for (i, row) in rows.into_iter().enumerate() {
        let path = format!("payments[{i}]");
        let mut p = Fields::new(row, &path)?;
        let id = p.opt_string("id")?;
        let customer_id = p.string("customerId")?;
        let customer = *parsed.customer_index.get(&customer_id).ok_or_else(|| {
            Error::invalid(
                format!("{path}.customerId"),
                format!(
                    "\"{}\" is not a customer of the hierarchy",
                    decimal::printable(&customer_id)
                ),
            )
        })?;
        let amount = minor(
            &p.take("amount").unwrap_or(Value::Null),
            currency,
            &p.path("amount"),
        )?;
        let at_ms = time_value_ms(&p.take("at").unwrap_or(Value::Null), &p.path("at"))?;
        let status = p
            .opt_choice("status", &PaymentStatus::ALL, PaymentStatus::as_str)?
            .unwrap_or(PaymentStatus::Completed);
        let kind = p
            .opt_choice("kind", &PaymentKind::ALL, PaymentKind::as_str)?
            .unwrap_or(PaymentKind::Payment);
        if let Some(reverses) = p.opt_string("reverses")? {
            reversals.push((i, reverses));
        }
        p.finish(&[
            "id",
            "customerId",
            "amount",
            "at",
            "status",
            "kind",
            "reverses",
        ])?;
        if let Some(id) = &id {
            if by_id.insert(id.clone(), i as u32).is_some() {
                return Err(Error::invalid(
                    format!("{path}.id"),
                    format!("\"{}\" appears twice", decimal::printable(id)),
                ));
            }
        }
        ids.push(id);
        payments.push(Payment {
            customer,
            amount,
            at_ms,
            status,
            kind,
            reverses: None,
        });
    }
    for (i, reverses) in reversals {
        let original = *by_id.get(&reverses).ok_or_else(|| {
            Error::invalid(
                format!("payments[{i}].reverses"),
                format!(
                    "\"{}\" is not a payment of this call",
                    decimal::printable(&reverses)
                ),
            )
        })?;
        payments[i].reverses = Some(original);
    }
    Ok(ParsedPayments {
        payments,
        ids: Some(ids),
    })
}

fn parse_payment_columns(value: &JsValue) -> Result<ParsedPayments> {
    check_keys(
        value,
        "payments",
        &[
            "customer",
            "amountMinor",
            "at",
            "status",
            "kind",
            "reverses",
        ],
    )?;
    let customer = input::typed_into::<Uint32Array>(own(value, "customer"))
        .map_err(|v| {
            Error::invalid(
                "payments.customer",
                format!("expected a Uint32Array, got {}", type_name(&v)),
            )
        })?
        .to_vec();
    let n = customer.len();
    let amount = typed_f64(&own(value, "amountMinor"), "payments.amountMinor", n)?
        .ok_or_else(|| Error::invalid("payments.amountMinor", "is required"))?;
    let at = typed_f64(&own(value, "at"), "payments.at", n)?
        .ok_or_else(|| Error::invalid("payments.at", "is required"))?;
    let bytes = |key: &str| -> Result<Option<Vec<u8>>> {
        let v = own(value, key);
        if v.is_undefined() {
            return Ok(None);
        }
        let column = input::typed::<Uint8Array>(&v).ok_or_else(|| {
            Error::invalid(
                format!("payments.{key}"),
                format!("expected a Uint8Array, got {}", type_name(&v)),
            )
        })?;
        if column.length() as usize != n {
            return Err(Error::invalid(
                format!("payments.{key}"),
                format!("has {} values, expected {n}", column.length()),
            ));
        }
        Ok(Some(column.to_vec()))
    };
    let status = bytes("status")?;
    let kind = bytes("kind")?;
    let reverses = {
        let v = own(value, "reverses");
        if v.is_undefined() {
            None
        } else {
            let column = input::typed::<Int32Array>(&v).ok_or_else(|| {
                Error::invalid(
                    "payments.reverses",
                    format!("expected an Int32Array, got {}", type_name(&v)),
                )
            })?;
            if column.length() as usize != n {
                return Err(Error::invalid(
                    "payments.reverses",
                    format!("has {} values, expected {n}", column.length()),
                ));
            }
            Some(column.to_vec())
        }
    };
    let mut payments = Vec::with_capacity(n);
    for i in 0..n {
        let a = amount[i];
        if !(a.is_finite() && a.fract() == 0.0 && a.abs() < 9_007_199_254_740_992.0) {
            return Err(Error::invalid(
                format!("payments.amountMinor[{i}]"),
                format!(
                    "{} is not a whole number of minor units",
                    decimal::js_number(a)
                ),
            ));
        }
        let status = match status.as_ref().map_or(0, |s| s[i]) {
            0 => PaymentStatus::Completed,
            1 => PaymentStatus::Pending,
            2 => PaymentStatus::Failed,
            other => {
                return Err(Error::invalid(
                    format!("payments.status[{i}]"),
                    format!("{other} is not 0, 1 or 2"),
                ))
            }
        };
        let kind = match kind.as_ref().map_or(0, |k| k[i]) {
            0 => PaymentKind::Payment,
            1 => PaymentKind::Refund,
            2 => PaymentKind::Chargeback,
            other => {
                return Err(Error::invalid(
                    format!("payments.kind[{i}]"),
                    format!("{other} is not 0, 1 or 2"),
                ))
            }
        };
        let reverses = match reverses.as_ref().map_or(-1, |r| r[i]) {
            -1 => None,
            r => Some(u32::try_from(r).map_err(|_| {
                Error::invalid(
                    format!("payments.reverses[{i}]"),
                    format!("{r} is not an index or -1"),
                )
            })?),
        };
        payments.push(Payment {
            customer: customer[i],
            amount: a as i64,
            at_ms: whole_ms(at[i], || format!("payments.at[{i}]"))?,
            status,
            kind,
            reverses,
        });
    }
    Ok(ParsedPayments {
        payments,
        ids: None,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LinesAs {
    Objects,
    Columns,
    None,
}

fn set(target: &Object, key: &str, value: &JsValue) {
    let _ = Reflect::set(target, &JsValue::from_str(key), value);
}

fn line_columns(lines: &[commission::Line]) -> JsValue {
    // One column at a time: each is an exact-size collect, with no capacity checks per line.
    let payment: Vec<u32> = lines.iter().map(|l| l.payment).collect();
    let reseller: Vec<u32> = lines.iter().map(|l| l.reseller).collect();
    let level: Vec<u8> = lines.iter().map(|l| l.level).collect();
    let rule: Vec<u8> = lines
        .iter()
        .map(|l| RULES.iter().position(|r| *r == l.rule).unwrap_or(0) as u8)
        .collect();
    let rate: Vec<u16> = lines.iter().map(|l| l.rate.units()).collect();
    // Minor units within ±2^53 (amounts are bounded at the boundary): exact as f64.
    let base: Vec<f64> = lines.iter().map(|l| l.base as f64).collect();
    let amount: Vec<f64> = lines.iter().map(|l| l.amount as f64).collect();
    let payable: Vec<f64> = lines.iter().map(|l| l.payable_at_ms as f64).collect();
    let out = Object::new();
    set(&out, "payment", &Uint32Array::from(payment.as_slice()));
    set(&out, "reseller", &Uint32Array::from(reseller.as_slice()));
    set(&out, "level", &Uint8Array::from(level.as_slice()));
    set(&out, "rule", &Uint8Array::from(rule.as_slice()));
    let names: js_sys::Array = RULES
        .iter()
        .map(|r| JsValue::from_str(r.as_str()))
        .collect();
    set(&out, "rules", &names);
    set(&out, "rate", &Uint16Array::from(rate.as_slice()));
    set(&out, "baseMinor", &Float64Array::from(base.as_slice()));
    set(&out, "amountMinor", &Float64Array::from(amount.as_slice()));
    set(&out, "payableAt", &Float64Array::from(payable.as_slice()));
    out.into()
}

/// One reseller's figures, as a run answers them (fields in name order, as JSON objects have
/// always come).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ResellerFigures<'a> {
    approved: String,
    capped: String,
    child_count: u32,
    clawbacks: String,
    direct: String,
    overrides: String,
    payments: u32,
    payout_eligible: bool,
    pending: String,
    rate: String,
    reseller_id: &'a str,
    revenue: String,
    total: String,
}

/// One line, as a run answers it in `lines: "objects"`.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct LineFigures<'a> {
    amount: String,
    base: String,
    clawback: bool,
    level: u8,
    payable_at: String,
    payment_id: std::borrow::Cow<'a, str>,
    rate: String,
    reseller_id: &'a str,
    rule: &'static str,
}

#[derive(serde::Serialize)]
struct PeriodFigures {
    #[serde(rename = "asOf")]
    as_of: String,
    end: String,
    start: String,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct RunFigures<'a> {
    currency: &'a str,
    line_count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    lines: Option<Vec<LineFigures<'a>>>,
    period: PeriodFigures,
    resellers: Vec<ResellerFigures<'a>>,
}

/// Computes the commissions of `payments` over `[start, end)`: per reseller its revenue, direct
/// commission, overrides, clawbacks, cap cut, approved and pending totals, and every line with the
/// rule, rate, level and base that produced it. Pure: nothing is stored.
#[wasm_bindgen(js_name = commission, unchecked_return_type = "CommissionRun")]
pub fn commission_run(
    #[wasm_bindgen(unchecked_param_type = "CommissionPlan")] plan: JsValue,
    #[wasm_bindgen(unchecked_param_type = "CommissionPayment[] | PaymentColumns")]
    payments: JsValue,
    #[wasm_bindgen(unchecked_param_type = "CommissionHierarchy")] hierarchy: JsValue,
    #[wasm_bindgen(unchecked_param_type = "CommissionOptions")] options: JsValue,
) -> std::result::Result<JsValue, JsValue> {
    if !input::is_plain(&options) {
        return Err(to_js(&Error::invalid(
            "options",
            format!(
                "expected an object with start and end, got {}",
                type_name(&options)
            ),
        )));
    }
    check_keys(
        &options,
        "options",
        &["start", "end", "asOf", "currency", "lines"],
    )
    .or_throw()?;
    let start_ms = time_ms(&own(&options, "start"), "options.start").or_throw()?;
    let end_ms = time_ms(&own(&options, "end"), "options.end").or_throw()?;
    let as_of = own(&options, "asOf");
    let as_of_ms = if as_of.is_undefined() {
        end_ms
    } else {
        time_ms(&as_of, "options.asOf").or_throw()?
    };
    let currency_value = own(&options, "currency");
    let currency = if currency_value.is_undefined() {
        Currency::usd()
    } else {
        let code = input::string(&currency_value, "options.currency").or_throw()?;
        Currency::new(&code, None, "options.currency").or_throw()?
    };
    let lines_value = own(&options, "lines");
    let lines_as = if lines_value.is_undefined() {
        None
    } else {
        match input::string(&lines_value, "options.lines")
            .or_throw()?
            .as_str()
        {
            "objects" => Some(LinesAs::Objects),
            "columns" => Some(LinesAs::Columns),
            "none" => Some(LinesAs::None),
            other => {
                return Err(to_js(&Error::invalid(
                    "options.lines",
                    format!(
                        "expected \"objects\", \"columns\" or \"none\", got \"{}\"",
                        decimal::printable(other)
                    ),
                )))
            }
        }
    };
    let plan = parse_plan(&plan, &currency).or_throw()?;
    let parsed = parse_hierarchy(&hierarchy).or_throw()?;
    let given = if input::is_array(&payments) {
        parse_payment_objects(&payments, &parsed, &currency).or_throw()?
    } else if input::is_plain(&payments) {
        parse_payment_columns(&payments).or_throw()?
    } else {
        return Err(to_js(&Error::invalid(
            "payments",
            format!(
                "expected an array of payments or PaymentColumns, got {}",
                type_name(&payments)
            ),
        )));
    };
    let lines_as = lines_as.unwrap_or(if given.ids.is_some() {
        LinesAs::Objects
    } else {
        LinesAs::Columns
    });
    let period = Period {
        start_ms,
        end_ms,
        as_of_ms,
    };
    let run =
        commission::commission(&plan, &given.payments, &parsed.hierarchy, period).or_throw()?;
    let scale = currency.scale();
    let money = |v: i64| minor_text(v, scale);
    let resellers = run
        .totals
        .iter()
        .zip(&parsed.reseller_ids)
        .map(|(t, id)| ResellerFigures {
            reseller_id: id,
            revenue: money(t.revenue),
            payments: t.payments,
            child_count: t.child_count,
            rate: t.rate.to_decimal().to_string(),
            direct: money(t.direct),
            overrides: money(t.overrides),
            clawbacks: money(t.clawbacks),
            capped: money(t.capped),
            total: money(t.total),
            approved: money(t.approved),
            pending: money(t.pending),
            payout_eligible: t.approved > 0 && t.approved >= plan.minimum_payout,
        })
        .collect();
    let iso = crate::domain::reseller::iso_time::format_millis;
    let lines = (lines_as == LinesAs::Objects).then(|| {
        run.lines
            .iter()
            .map(|l| LineFigures {
                payment_id: given
                    .ids
                    .as_ref()
                    .and_then(|ids| ids[l.payment as usize].as_deref())
                    .map_or_else(|| l.payment.to_string().into(), Into::into),
                reseller_id: &parsed.reseller_ids[l.reseller as usize],
                level: l.level,
                rule: l.rule.as_str(),
                rate: l.rate.to_decimal().to_string(),
                base: money(l.base),
                amount: money(l.amount),
                payable_at: iso(l.payable_at_ms),
                clawback: l.is_clawback(),
            })
            .collect()
    });
    let out = RunFigures {
        currency: currency.code(),
        period: PeriodFigures {
            start: iso(start_ms),
            end: iso(end_ms),
            as_of: iso(as_of_ms),
        },
        resellers,
        line_count: run.lines.len(),
        lines,
    };
    let text = serde_json::to_string(&out)
        .map_err(|e| Error::invalid("run", e.to_string()))
        .or_throw()?;
    let result = js_sys::JSON::parse(&text)?;
    if lines_as == LinesAs::Columns {
        let _ = Reflect::set(
            &result,
            &JsValue::from_str("lines"),
            &line_columns(&run.lines),
        );
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::minor_text;

    #[test]
    fn minor_units_print_at_the_scale() {
        assert_eq!(minor_text(-563, 2), "-5.63");
        assert_eq!(minor_text(75_000, 2), "750.00");
        assert_eq!(minor_text(5, 3), "0.005");
        assert_eq!(minor_text(12, 0), "12");
        assert_eq!(minor_text(i64::MIN, 2), "-92233720368547758.08");
    }
}

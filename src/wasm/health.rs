//! `healthScore(metrics, options?)` and `healthScoreBatch(columns, options?)`: the pure partner
//! health score for JavaScript.

use std::rc::Rc;

use js_sys::{Float64Array, Object, Promise, Reflect, Uint16Array, Uint8Array};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;

use super::ally::{call, record_id, reseller_id, Ally, Engine};
use super::codec::to_plain;
use super::commission::{check_keys, own, typed_f64};
use super::error::{to_js, OrThrow};
use super::input::{self, type_name};
use super::types::optional::{
    self, HealthAlertFilterArg, HealthOptionsArg, RecordHealthOptionsArg,
};
use super::wallets::{event_reseller, Listeners};
use crate::domain::decimal;
use crate::domain::health::{
    self, scale_of, AlertStatus, Band, Component, HealthOptions, Metrics, MissingPolicy, Range,
    POINTS_MAX,
};
use crate::domain::money::Currency;
use crate::domain::record::{self as fields, Fields};
use crate::domain::{Error, Result};
use crate::engine::check_note;

#[wasm_bindgen(typescript_custom_section)]
const HEALTH_TYPES: &str = r#"
export type HealthComponent =
  | "revenuePerformance" | "customerAcquisition" | "customerRetention" | "growthTrajectory"
  | "engagement" | "operationalExcellence" | "partnerSatisfaction";
export type HealthBand = "healthy" | "atRisk" | "critical";

/** One partner's raw metrics for a period; a missing (or null) metric is missing data. */
export interface HealthMetrics {
  /** Revenue in the period (money). */
  revenue?: Money | null;
  /** Customers acquired in the period (whole). */
  newCustomers?: number | null;
  /** Share of customers kept, 0 to 1 (at most 4 decimals). */
  retentionRate?: Rate | null;
  /** Revenue growth against the previous period, -1 to 100 (e.g. "0.05" for +5 %). */
  growthRate?: string | number | null;
  /** Days with activity in the period (whole). */
  activeDays?: number | null;
  /** Share of tickets handled within the service level, 0 to 1. */
  slaCompliance?: Rate | null;
  /** Survey score, 0 to 10 (at most 2 decimals). */
  satisfaction?: string | number | null;
}

export interface HealthOptions {
  /** Per component, overlaid on the reference (25, 20, 20, 15, 10, 5, 5); they must sum to 100. */
  weights?: Partial<Record<HealthComponent, number>>;
  /** Per component: the raw value normalised to 0 (`floor`) and to 100 (`target`), linear between. */
  targets?: Partial<Record<HealthComponent, { floor: string | number; target: string | number }>>;
  /** Missing data: "reweight" (default: score over the components present), "zero", "refuse". */
  missing?: "reweight" | "zero" | "refuse";
  /** Lowest score of each band; default healthy 70, atRisk 40 (critical below). */
  bands?: { healthy?: string | number; atRisk?: string | number };
  /** Points above a threshold a score must climb to move to the better band; default 5. */
  hysteresis?: string | number;
  /** A change smaller than this is "stable"; default 1. */
  trendTolerance?: string | number;
  /** The partner's previous score and band, for the trend and hysteresis. */
  previous?: { score: string | number; band?: HealthBand };
  /** Currency of `revenue` and its targets; default "USD". */
  currency?: string;
}

export interface HealthComponentScore {
  component: HealthComponent;
  metric: keyof HealthMetrics;
  /** The raw value as given, normalised to its unit; null when missing. */
  raw: string | null;
  /** 0 to 100 with 2 decimals; null when missing and not counted. */
  normalised: string | null;
  weight: number;
  /** The weight it carried in this score, in percent (reweighted when some were missing). */
  effectiveWeight: string;
  /** Points it added; the contributions add up to the score. */
  contribution: string;
}

export interface HealthScore {
  /** 0 to 100 with 2 decimals. */
  score: string;
  band: HealthBand;
  missing: HealthComponent[];
  policy: "reweight" | "zero" | "refuse";
  trend: { previous: string; change: string; direction: "improving" | "stable" | "declining" } | null;
  components: HealthComponentScore[];
}

/** Metrics of many partners as columns: `Float64Array`s of one length, NaN for missing. */
export interface HealthColumns {
  revenue?: Float64Array;
  newCustomers?: Float64Array;
  retentionRate?: Float64Array;
  growthRate?: Float64Array;
  activeDays?: Float64Array;
  slaCompliance?: Float64Array;
  satisfaction?: Float64Array;
  /** Each partner's previous band as its index in `bands` (255: none), for hysteresis. */
  previousBand?: Uint8Array;
}

export interface HealthBatch {
  count: number;
  /** Hundredths of a point: 7245 is 72.45. */
  score: Uint16Array;
  /** Index in `bands`. */
  band: Uint8Array;
  /** Bit i set: `components[i]` was missing. */
  missing: Uint8Array;
  bands: HealthBand[];
  components: HealthComponent[];
}
"#;

const OPTION_KEYS: [&str; 8] = [
    "weights",
    "targets",
    "missing",
    "bands",
    "hysteresis",
    "trendTolerance",
    "previous",
    "currency",
];

/// Digits after the point a unit's values carry.
/// A decimal (string or number) as a whole number of `10^-scale` units.
fn fixed(value: &Value, scale: u32, path: &str) -> Result<i64> {
    let text = fields::decimal_text(value, path)?;
    let parsed = decimal::parse(&text, scale).map_err(|reason| Error::invalid(path, reason))?;
    parsed
        .mantissa_at(scale)
        .and_then(|m| i64::try_from(m).ok())
        .ok_or_else(|| Error::invalid(path, "is too large"))
}

/// Points (0 to 100, at most 2 decimals) as hundredths.
fn points(value: &Value, path: &str) -> Result<u32> {
    let v = fixed(value, 2, path)?;
    u32::try_from(v)
        .ok()
        .filter(|&p| p <= POINTS_MAX)
        .ok_or_else(|| Error::invalid(path, "expected 0 to 100 points"))
}

fn component_by_name(name: &str, path: &str) -> Result<usize> {
    Component::ALL
        .iter()
        .position(|c| c.as_str() == name)
        .ok_or_else(|| {
            Error::invalid(
                format!("{path}.{}", decimal::printable(name)),
                "unknown component",
            )
        })
}

/// The reference ranges, with the revenue target (10 000) at the currency's scale.
fn reference_ranges(currency: &Currency) -> [Range; 7] {
    let mut ranges = Component::ALL.map(Component::reference_range);
    ranges[0].target = 10_000 * 10i64.pow(currency.scale());
    ranges
}

struct Parsed {
    options: HealthOptions,
    currency: Currency,
    previous: Option<(u32, Option<Band>)>,
}

fn parse_options(value: &JsValue) -> Result<Parsed> {
    let mut f = input::record(value, "options")?;
    let currency = match f.opt_string("currency")? {
        None => Currency::usd(),
        Some(code) => Currency::new(&code, None, "options.currency")?,
    };
    let mut weights = Component::ALL.map(Component::reference_weight);
    if let Some(w) = f.opt_object("weights")? {
        for (path, name, v) in w.into_entries() {
            let i = component_by_name(&name, "options.weights")?;
            weights[i] = v
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .filter(|&n| n <= 100)
                .ok_or_else(|| Error::invalid(&path, "expected a whole weight from 0 to 100"))?;
        }
    }
    let mut ranges = reference_ranges(&currency);
    if let Some(t) = f.opt_object("targets")? {
        for (path, name, v) in t.into_entries() {
            let i = component_by_name(&name, "options.targets")?;
            let scale = scale_of(Component::ALL[i].unit(), &currency);
            let mut r = Fields::new(v, &path)?;
            let floor = fixed(
                &r.take("floor").unwrap_or(Value::Null),
                scale,
                &r.path("floor"),
            )?;
            let target = fixed(
                &r.take("target").unwrap_or(Value::Null),
                scale,
                &r.path("target"),
            )?;
            r.finish(&["floor", "target"])?;
            ranges[i] = Range { floor, target };
        }
    }
    let missing = f
        .opt_choice("missing", &MissingPolicy::ALL, MissingPolicy::as_str)?
        .unwrap_or_default();
    let (mut healthy, mut at_risk) = (7_000, 4_000);
    if let Some(mut b) = f.opt_object("bands")? {
        if let Some(v) = b.take("healthy") {
            healthy = points(&v, &b.path("healthy"))?;
        }
        if let Some(v) = b.take("atRisk") {
            at_risk = points(&v, &b.path("atRisk"))?;
        }
        b.finish(&["healthy", "atRisk"])?;
    }
    let hysteresis = match f.take("hysteresis") {
        None => 500,
        Some(v) => points(&v, "options.hysteresis")?,
    };
    let tolerance = match f.take("trendTolerance") {
        None => 100,
        Some(v) => points(&v, "options.trendTolerance")?,
    };
    let previous = match f.opt_object("previous")? {
        None => None,
        Some(mut p) => {
            let score = points(&p.take("score").unwrap_or(Value::Null), &p.path("score"))?;
            let band = p.opt_choice("band", &Band::ALL, Band::as_str)?;
            p.finish(&["score", "band"])?;
            Some((score, band))
        }
    };
    f.finish(&OPTION_KEYS)?;
    let options = HealthOptions::new(
        weights,
        ranges,
        missing,
        (healthy, at_risk),
        hysteresis,
        tolerance,
    )
    .map_err(|e| match e {
        Error::InvalidInput { field, reason } => Error::invalid(format!("options.{field}"), reason),
        other => other,
    })?;
    Ok(Parsed {
        options,
        currency,
        previous,
    })
}

/// One partner's metrics: each a decimal in its component's unit, missing when absent.
fn parse_metrics(metrics: &JsValue, currency: &Currency) -> Result<Metrics> {
    if metrics.is_undefined() || metrics.is_null() {
        return Err(Error::invalid(
            "metrics",
            format!("expected an object, got {}", type_name(metrics)),
        ));
    }
    let mut f = input::record(metrics, "metrics")?;
    let mut values: Metrics = [None; 7];
    for (i, c) in Component::ALL.iter().enumerate() {
        if let Some(v) = f.take(c.metric()) {
            let scale = scale_of(c.unit(), currency);
            values[i] = Some(fixed(&v, scale, &format!("metrics.{}", c.metric()))?);
        }
    }
    let names: Vec<&str> = Component::ALL.iter().map(|c| c.metric()).collect();
    f.finish(&names)?;
    Ok(values)
}

/// Scores one partner's metrics: the score (0 to 100, 2 decimals), its band, the components
/// with raw value, normalised value, weight and contribution, which were missing, and the trend
/// against `options.previous`. Pure: nothing is stored.
#[wasm_bindgen(js_name = healthScore, unchecked_return_type = "HealthScore")]
pub fn health_score(
    #[wasm_bindgen(unchecked_param_type = "HealthMetrics")] metrics: JsValue,
    options: Option<HealthOptionsArg>,
) -> std::result::Result<JsValue, JsValue> {
    let parsed = parse_options(&optional::value(options)).or_throw()?;
    let values = parse_metrics(&metrics, &parsed.currency).or_throw()?;
    let previous_band = parsed.previous.and_then(|(_, band)| band);
    let score = health::health_score(&values, &parsed.options, previous_band).or_throw()?;
    let previous = parsed.previous.map(|(score, _)| score);
    to_plain(&health::score_json(
        &score,
        &parsed.options,
        &parsed.currency,
        previous,
    ))
}

/// `value` as a whole number of `10^-scale` units, if it is exactly such a decimal; NaN is
/// missing.
fn column_value(value: f64, scale: u32, path: &dyn Fn() -> String) -> Result<Option<i64>> {
    if value.is_nan() {
        return Ok(None);
    }
    let factor = 10f64.powi(scale as i32);
    let scaled = (value * factor).round();
    if !value.is_finite() || scaled.abs() > 9.0e15 || scaled / factor != value {
        return Err(Error::invalid(
            path(),
            format!(
                "expected a finite number with at most {scale} decimals (NaN for missing), got {}",
                decimal::js_number(value)
            ),
        ));
    }
    Ok(Some(scaled as i64))
}

/// Scores many partners in one call: metrics as `Float64Array` columns (NaN for missing), and
/// out come scores in hundredths, band indexes and missing-component bits as typed arrays.
#[wasm_bindgen(js_name = healthScoreBatch, unchecked_return_type = "HealthBatch")]
pub fn health_score_batch(
    #[wasm_bindgen(unchecked_param_type = "HealthColumns")] columns: JsValue,
    options: Option<HealthOptionsArg>,
) -> std::result::Result<JsValue, JsValue> {
    let parsed = parse_options(&optional::value(options)).or_throw()?;
    if parsed.previous.is_some() {
        return Err(to_js(&Error::invalid(
            "options.previous",
            "give a batch's previous bands as the previousBand column",
        )));
    }
    if !input::is_plain(&columns) {
        return Err(to_js(&Error::invalid(
            "columns",
            format!(
                "expected an object of Float64Array columns, got {}",
                type_name(&columns)
            ),
        )));
    }
    let mut known: Vec<&str> = Component::ALL.iter().map(|c| c.metric()).collect();
    known.push("previousBand");
    check_keys(&columns, "columns", &known).or_throw()?;
    // The length is the first column's; every other must match.
    let len = Component::ALL
        .iter()
        .find_map(|c| {
            let column = own(&columns, c.metric());
            input::typed::<Float64Array>(&column).map(|a| a.length() as usize)
        })
        .ok_or_else(|| Error::invalid("columns", "needs at least one metric column"))
        .or_throw()?;
    let mut data: Vec<Option<Vec<f64>>> = Vec::with_capacity(7);
    for c in Component::ALL {
        data.push(
            typed_f64(
                &own(&columns, c.metric()),
                &format!("columns.{}", c.metric()),
                len,
            )
            .or_throw()?,
        );
    }
    let previous_value = own(&columns, "previousBand");
    let previous = if previous_value.is_undefined() {
        None
    } else {
        let column = input::typed::<Uint8Array>(&previous_value)
            .ok_or_else(|| {
                Error::invalid(
                    "columns.previousBand",
                    format!("expected a Uint8Array, got {}", type_name(&previous_value)),
                )
            })
            .or_throw()?;
        if column.length() as usize != len {
            return Err(to_js(&Error::invalid(
                "columns.previousBand",
                format!("has {} values, expected {len}", column.length()),
            )));
        }
        Some(column.to_vec())
    };
    let scales = Component::ALL.map(|c| scale_of(c.unit(), &parsed.currency));
    let mut score = vec![0u16; len];
    let mut band = vec![0u8; len];
    let mut missing = vec![0u8; len];
    for row in 0..len {
        let mut metrics: Metrics = [None; 7];
        for (i, column) in data.iter().enumerate() {
            if let Some(column) = column {
                let path = || format!("columns.{}[{row}]", Component::ALL[i].metric());
                metrics[i] = column_value(column[row], scales[i], &path).or_throw()?;
            }
        }
        let prior = match previous.as_ref().map(|p| p[row]) {
            None | Some(255) => None,
            Some(b) => Some(
                *Band::ALL
                    .get(b as usize)
                    .ok_or_else(|| {
                        Error::invalid(
                            format!("columns.previousBand[{row}]"),
                            "expected 0, 1, 2 or 255 (none)",
                        )
                    })
                    .or_throw()?,
            ),
        };
        let (s, m) = health::score_only(&metrics, &parsed.options)
            .map_err(|e| match e {
                Error::InvalidInput { field, reason } => {
                    Error::invalid(format!("columns[{row}].{field}"), reason)
                }
                other => other,
            })
            .or_throw()?;
        score[row] = s as u16;
        band[row] = parsed.options.next_band(prior, s).index();
        missing[row] = m;
    }
    let out = Object::new();
    let set = |k: &str, v: &JsValue| js_sys::Reflect::set(&out, &k.into(), v);
    let _ = set("count", &(len as f64).into());
    let _ = set("score", &Uint16Array::from(score.as_slice()).into());
    let _ = set("band", &Uint8Array::from(band.as_slice()).into());
    let _ = set("missing", &Uint8Array::from(missing.as_slice()).into());
    let _ = set("bands", &to_plain(&json!(Band::ALL.map(Band::as_str)))?);
    let _ = set(
        "components",
        &to_plain(&json!(Component::ALL.map(Component::as_str)))?,
    );
    Ok(out.into())
}

#[wasm_bindgen(typescript_custom_section)]
const PARTNER_HEALTH_TYPES: &str = r#"
/** A recorded score: `healthScore`'s answer, with its place in the partner's history. */
export interface HealthRecord extends HealthScore {
  /** `hs_<reseller>_<sequence>`. */
  id: string;
  resellerId: string;
  /** 1 for the partner's first score, +1 for each next one. */
  sequence: number;
  /** The host's name for the period scored, e.g. `"2026-11"`, or null. */
  period: string | null;
  recordedAt: string;
}

export type HealthAlertStatus = "open" | "acknowledged" | "resolved";

/** Raised once per crossing into a worse band. */
export interface HealthAlert {
  /** `ha_<reseller>_<sequence>`, the sequence of the score that raised it. */
  id: string;
  resellerId: string;
  scoreId: string;
  period: string | null;
  /** The band before, or null for a partner's first score. */
  fromBand: HealthBand | null;
  band: HealthBand;
  score: string;
  previousScore: string | null;
  /** open → acknowledged (an intervention opened) → resolved (it closed). */
  status: HealthAlertStatus;
  raisedAt: string;
  intervention: {
    note: string; openedBy: string; openedAt: string;
    outcome: string | null; closedBy: string | null; closedAt: string | null;
  } | null;
}

export interface RecordHealthOptions {
  /** The host's name for the period scored, e.g. `"2026-11"`. */
  period?: string;
  /** As `healthScore`'s options, but without `previous`: the engine uses the last recorded score. */
  options?: Omit<HealthOptions, "previous">;
}

export interface RecordedHealth extends HealthRecord {
  /** The alert this score raised, or null. */
  alert: HealthAlert | null;
}

/** A `healthAlert` event. */
export interface HealthAlertEvent {
  reseller: Reseller;
  alert: HealthAlert;
  /** The account manager's mail (to the reseller's `metadata.accountManager`): `sent`, `pending` (kept in the outbox and retried by `checkCredits`) or `undeliverable` (no address). */
  notification: "sent" | "pending" | "undeliverable";
}
"#;

/// Partner health through the engine: `ally.health`.
#[wasm_bindgen]
pub struct PartnerHealth {
    engine: Rc<Engine>,
    listeners: Rc<Listeners>,
}

#[wasm_bindgen]
impl Ally {
    /// Partner health: recorded scores, alerts and interventions.
    #[wasm_bindgen(getter)]
    pub fn health(&self) -> PartnerHealth {
        PartnerHealth {
            engine: Rc::clone(&self.engine),
            listeners: Rc::clone(&self.listeners),
        }
    }
}

fn alert_id(value: &JsValue) -> Result<String> {
    record_id(value, "alert", "health alert")
}

/// `{ key: text, by: text }` of an intervention call.
fn intervention_args(value: &JsValue, key: &str, by: &str) -> Result<(String, String)> {
    let mut f = input::record(value, "details")?;
    if value.is_undefined() || value.is_null() {
        return Err(Error::invalid(
            "details",
            format!("expected {{ {key}, {by} }}"),
        ));
    }
    let text = f
        .opt_string(key)?
        .ok_or_else(|| Error::invalid(format!("details.{key}"), "is required"))?;
    let actor = f
        .opt_string(by)?
        .ok_or_else(|| Error::invalid(format!("details.{by}"), "is required"))?;
    f.finish(&[key, by])?;
    Ok((
        check_note(&text, &format!("details.{key}"))?,
        check_note(&actor, &format!("details.{by}"))?,
    ))
}

#[wasm_bindgen]
impl PartnerHealth {
    /// Scores the reseller's metrics against its last recorded score (trend and hysteresis),
    /// adds the score to its history, and, when it crossed into a worse band, raises an alert:
    /// the `healthAlert` event and a mail to the reseller's account manager.
    #[wasm_bindgen(unchecked_return_type = "Promise<RecordedHealth>")]
    pub fn record(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        #[wasm_bindgen(unchecked_param_type = "HealthMetrics")] metrics: JsValue,
        options: Option<RecordHealthOptionsArg>,
    ) -> Promise {
        let options: JsValue = optional::value(options);
        let parsed = (|| {
            let id = reseller_id(&reseller, "reseller")?;
            let mut f = input::record(&options, "options")?;
            let period = f.opt_string("period")?;
            if let Some(p) = &period {
                check_note(p, "options.period")?;
            }
            let inner = f.take("options");
            f.finish(&["period", "options"])?;
            let inner_js = match &inner {
                None => JsValue::UNDEFINED,
                Some(v) => to_plain(v)
                    .map_err(|_| Error::invalid("options.options", "is not plain data"))?,
            };
            let scoring = parse_options(&inner_js).map_err(|e| match e {
                Error::InvalidInput { field, reason } => {
                    Error::invalid(format!("options.{field}"), reason)
                }
                other => other,
            })?;
            if scoring.previous.is_some() {
                return Err(Error::invalid(
                    "options.options.previous",
                    "the engine scores against the last recorded score; leave previous out",
                ));
            }
            let metrics = parse_metrics(&metrics, &scoring.currency)?;
            Ok((id, period, scoring, metrics))
        })();
        let listeners = Rc::clone(&self.listeners);
        call(
            &self.engine,
            parsed,
            |engine, (id, period, scoring, metrics)| async move {
                let done = engine
                    .record_health(&id, &metrics, &scoring.options, &scoring.currency, period)
                    .await
                    .or_throw()?;
                if let Some(event) = &done.event {
                    let payload = Object::new();
                    Reflect::set(
                        &payload,
                        &"reseller".into(),
                        &event_reseller(&event.reseller)?,
                    )?;
                    Reflect::set(&payload, &"alert".into(), &to_plain(&event.alert)?)?;
                    Reflect::set(&payload, &"notification".into(), &event.notification.into())?;
                    listeners.emit("healthAlert", &payload.into()).await;
                }
                let mut out = done.score;
                out["alert"] = done.alert.unwrap_or(Value::Null);
                to_plain(&out)
            },
        )
    }

    /// A reseller's recorded scores, oldest first.
    #[wasm_bindgen(unchecked_return_type = "Promise<HealthRecord[]>")]
    pub fn history(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
    ) -> Promise {
        call(
            &self.engine,
            reseller_id(&reseller, "reseller"),
            |engine, id| async move { to_plain(&engine.health_history(&id).await.or_throw()?) },
        )
    }

    /// Alerts, oldest first; `{ reseller?, status? }` narrows them.
    #[wasm_bindgen(unchecked_return_type = "Promise<HealthAlert[]>")]
    pub fn alerts(&self, filter: Option<HealthAlertFilterArg>) -> Promise {
        let filter: JsValue = optional::value(filter);
        let parsed = (|| {
            let mut f = input::record(&filter, "filter")?;
            let reseller = super::payouts::filter_reseller(&mut f)?;
            let status = f.opt_choice("status", &AlertStatus::ALL, AlertStatus::as_str)?;
            f.finish(&["reseller", "status"])?;
            Ok((reseller, status))
        })();
        call(
            &self.engine,
            parsed,
            |engine, (reseller, status)| async move {
                let alerts = engine.health_alerts(reseller.as_deref(), status);
                to_plain(&alerts.await.or_throw()?)
            },
        )
    }

    /// One alert, or `NOT_FOUND`.
    #[wasm_bindgen(unchecked_return_type = "Promise<HealthAlert>")]
    pub fn alert(
        &self,
        #[wasm_bindgen(unchecked_param_type = "HealthAlert | string")] alert: JsValue,
    ) -> Promise {
        call(&self.engine, alert_id(&alert), |engine, id| async move {
            to_plain(&engine.health_alert(&id).await.or_throw()?)
        })
    }

    /// Opens an intervention on an open alert: `{ note, openedBy }`; the alert becomes
    /// `acknowledged`. Any other status is `STATUS_TRANSITION_DENIED`.
    #[wasm_bindgen(js_name = openIntervention, unchecked_return_type = "Promise<HealthAlert>")]
    pub fn open_intervention(
        &self,
        #[wasm_bindgen(unchecked_param_type = "HealthAlert | string")] alert: JsValue,
        #[wasm_bindgen(unchecked_param_type = "{ note: string; openedBy: string }")]
        details: JsValue,
    ) -> Promise {
        let parsed = alert_id(&alert)
            .and_then(|id| Ok((id, intervention_args(&details, "note", "openedBy")?)));
        call(
            &self.engine,
            parsed,
            |engine, (id, (note, by))| async move {
                to_plain(&engine.open_intervention(&id, &note, &by).await.or_throw()?)
            },
        )
    }

    /// Closes the alert's intervention: `{ outcome, closedBy }`; the alert becomes `resolved`.
    #[wasm_bindgen(js_name = closeIntervention, unchecked_return_type = "Promise<HealthAlert>")]
    pub fn close_intervention(
        &self,
        #[wasm_bindgen(unchecked_param_type = "HealthAlert | string")] alert: JsValue,
        #[wasm_bindgen(unchecked_param_type = "{ outcome: string; closedBy: string }")]
        details: JsValue,
    ) -> Promise {
        let parsed = alert_id(&alert)
            .and_then(|id| Ok((id, intervention_args(&details, "outcome", "closedBy")?)));
        call(
            &self.engine,
            parsed,
            |engine, (id, (outcome, by))| async move {
                let alert = engine.close_intervention(&id, &outcome, &by);
                to_plain(&alert.await.or_throw()?)
            },
        )
    }
}

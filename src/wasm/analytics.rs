//! `ally.analytics()` and `ally.clients.analytics()`: the fluent analytics for JavaScript.
//!
//! A handle is immutable: `.monthly()` or `.forReseller(id)` return a new handle, so one handle
//! can be kept and reused. From `ally.asReseller(id)`, the handle is fixed to that reseller and
//! `forReseller` with any other is `FORBIDDEN`.

use std::rc::Rc;

use js_sys::{Array, Object, Promise, Reflect};
use serde_json::Value;
use wasm_bindgen::prelude::*;

use super::ally::{promise, rejected, reseller_id, Ally, Engine, JsResult};
use super::clients::Clients;
use super::codec::to_plain;
use super::error::OrThrow;
use super::input;
use super::input::time_ms;
use super::types::optional::{self, AnalyticsDayArg, LimitArg};
use super::wallets::ResellerScope;
use crate::domain::analytics::{day_of, Days, Interval, DAY_MS};
use crate::domain::client::ClientStatus;
use crate::domain::reseller::iso_time;
use crate::domain::{Error, Result};
use crate::engine::TOP_LIMIT_MAX;

#[wasm_bindgen(typescript_custom_section)]
const ANALYTICS_TYPES: &str = r#"
/**
 * A day, or a time that names its UTC day: `"2026-01-31"`, an ISO-8601 time, a `Date` or epoch
 * milliseconds. Analytics count whole UTC days, both ends of a period included.
 */
export type AnalyticsDay = string | Date | number;
export type AnalyticsInterval = "daily" | "monthly" | "yearly";
/** Bucket key (`YYYY-MM-DD`, `YYYY-MM` or `YYYY`) → value, oldest first, empty buckets as 0. */
export type Trend = Record<string, number>;

/** One row of `topResellers`. */
export interface TopReseller {
  id: string;
  refid: string;
  company: string;
  tier: string;
  /** Clients it signed up in the period. */
  acquisitions: number;
  /** Credits it bought (top-ups) in the period. */
  creditVolume: number;
  /** Credits it spent (provisions) in the period. */
  provisioned: number;
  /** Its balance now. */
  balance: number;
}

export interface ResellerStats {
  id: string;
  refid: string;
  company: string;
  tier: string;
  status: ResellerStatusName;
  /** Its tier's discount, e.g. `"0.15"`. */
  discount: string;
  balance: number;
  /** Credits bought over its whole history. */
  creditsPurchased: number;
  /** Credits spent over its whole history. */
  creditsProvisioned: number;
  /** Ledger entries. */
  transactions: number;
  clients: Record<ClientStatus, number> & { total: number };
  /** The last day its wallet moved (`YYYY-MM-DD`), or null. */
  lastActivity: string | null;
}

export interface ClientSegment {
  count: number;
  /** Share of all clients in percent, 2 decimals; the two add up to exactly 100 (0 when none). */
  percentage: number;
}

export interface ClientSegmentation {
  /** Clients of the business itself (no reseller). */
  standalone: ClientSegment;
  /** Clients served by a reseller. */
  resold: ClientSegment;
}
"#;

/// The interval and scope a handle carries.
#[derive(Clone, Debug, Default)]
struct Lens {
    interval: Interval,
    scope: Option<String>,
    /// Set by `asReseller`: the only reseller this handle may look at.
    locked: bool,
    /// What a locked handle's `forReseller` named, when it is not the handle's id: its refid
    /// passes, anything else answers as a missing reseller.
    named: Option<String>,
}

/// Runs an analytics call once the handle's `forReseller` is known to name its own reseller.
fn scoped<T: 'static, F>(
    engine: &Rc<Engine>,
    lens: &Lens,
    args: Result<T>,
    work: impl FnOnce(Rc<Engine>, T) -> F + 'static,
) -> Promise
where
    F: std::future::Future<Output = JsResult> + 'static,
{
    let args = match args {
        Ok(args) => args,
        Err(e) => return rejected(&e),
    };
    let engine = Rc::clone(engine);
    let (scope, named) = (lens.scope.clone(), lens.named.clone());
    promise(async move {
        if named.is_some() {
            engine
                .scoped_reseller(scope.as_deref(), named.as_deref())
                .await
                .or_throw()?;
        }
        work(engine, args).await
    })
}

impl Lens {
    fn with_interval(&self, interval: Interval) -> Self {
        Self {
            interval,
            ..self.clone()
        }
    }

    fn for_reseller(&self, reseller: &JsValue) -> Result<Self> {
        let id = reseller_id(reseller, "reseller")?;
        if let (true, Some(own)) = (self.locked, &self.scope) {
            // A reseller's handle names its own id, or else (its refid, another reseller) what
            // the call checks first.
            return Ok(Self {
                named: (*own != id).then_some(id),
                ..self.clone()
            });
        }
        Ok(Self {
            scope: Some(id),
            ..self.clone()
        })
    }

    fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }
}

/// The UTC day a bound names.
fn day_arg(value: &JsValue, path: &str) -> Result<i64> {
    Ok(day_of(time_ms(value, path)?))
}

/// A period with both bounds required.
fn period(start: &JsValue, end: &JsValue) -> Result<Days> {
    for (value, path) in [(start, "start"), (end, "end")] {
        if value.is_undefined() || value.is_null() {
            return Err(Error::invalid(
                path,
                "is required: a day such as \"2026-01-31\"",
            ));
        }
    }
    Days::new(day_arg(start, "start")?, day_arg(end, "end")?)
}

/// A period whose bounds may be left out (from the first day, to the last).
fn open_period(start: &JsValue, end: &JsValue) -> Result<Days> {
    let bound = |value: &JsValue, path, default| {
        if value.is_undefined() || value.is_null() {
            Ok(default)
        } else {
            day_arg(value, path)
        }
    };
    let first = bound(start, "start", Days::ALL.first)?;
    let last = bound(end, "end", Days::ALL.last)?;
    Days::new(first, last)
}

/// A sum of credits as a JS number: exact, or refused past 2^53 − 1 rather than rounded.
fn count(value: i128, what: &str) -> Result<Value> {
    const SAFE: i128 = (1 << 53) - 1;
    if value.abs() > SAFE {
        return Err(Error::invalid(
            what,
            format!("{value} is past 2^53 - 1, the exact range of a JavaScript number; narrow the scope or period"),
        ));
    }
    Ok(Value::from(i64::try_from(value).unwrap_or(0)))
}

/// A plain object with its keys in the order given (a JSON object would sort them). Built with
/// `Object.fromEntries`, which defines own properties: no key can reach a prototype.
fn ordered<K: AsRef<str>>(pairs: Vec<(K, Value)>) -> std::result::Result<JsValue, JsValue> {
    let entries = Array::new();
    for (key, value) in pairs {
        let pair = Array::of2(&JsValue::from_str(key.as_ref()), &to_plain(&value)?);
        entries.push(&pair);
    }
    Ok(Object::from_entries(&entries)?.into())
}

fn trend_js(trend: Vec<(String, i128)>) -> std::result::Result<JsValue, JsValue> {
    let mut pairs = Vec::with_capacity(trend.len());
    for (key, value) in trend {
        let n = count(value, &key).or_throw()?;
        pairs.push((key, n));
    }
    ordered(pairs)
}

fn optional<T: AsRef<JsValue>>(arg: Option<T>) -> JsValue {
    optional::value(arg)
}

/// The fluent part both handles share: the interval, the scope, and what they are.
macro_rules! fluent {
    ($handle:ident) => {
        impl $handle {
            fn with(&self, lens: Lens) -> $handle {
                $handle {
                    engine: Rc::clone(&self.engine),
                    lens,
                }
            }
        }

        #[wasm_bindgen]
        impl $handle {
            /// Trends by day (`YYYY-MM-DD`).
            pub fn daily(&self) -> $handle {
                self.with(self.lens.with_interval(Interval::Daily))
            }

            /// Trends by month (`YYYY-MM`), the default.
            pub fn monthly(&self) -> $handle {
                self.with(self.lens.with_interval(Interval::Monthly))
            }

            /// Trends by year (`YYYY`).
            pub fn yearly(&self) -> $handle {
                self.with(self.lens.with_interval(Interval::Yearly))
            }

            /// Limits every figure to one reseller: its wallet, its clients.
            #[wasm_bindgen(js_name = forReseller)]
            pub fn for_reseller(
                &self,
                #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
            ) -> std::result::Result<$handle, JsValue> {
                Ok(self.with(self.lens.for_reseller(&reseller).or_throw()?))
            }

            /// The interval trends use.
            #[wasm_bindgen(getter, unchecked_return_type = "AnalyticsInterval")]
            pub fn interval(&self) -> String {
                self.lens.interval.as_str().to_owned()
            }

            /// The reseller figures are limited to, or null.
            #[wasm_bindgen(getter, js_name = resellerId)]
            pub fn reseller_id(&self) -> Option<String> {
                self.lens.scope.clone()
            }
        }
    };
}

fluent!(Analytics);
fluent!(ClientAnalytics);

/// The network's analytics: `ally.analytics().monthly().forReseller(id).creditTrends(start, end)`.
#[wasm_bindgen]
pub struct Analytics {
    engine: Rc<Engine>,
    lens: Lens,
}

#[wasm_bindgen]
impl Ally {
    /// The network's analytics, monthly and unscoped until told otherwise.
    pub fn analytics(&self) -> Analytics {
        Analytics {
            engine: Rc::clone(&self.engine),
            lens: Lens::default(),
        }
    }
}

#[wasm_bindgen]
impl ResellerScope {
    /// This reseller's analytics; `forReseller` with another reseller answers as a missing one
    /// (`NOT_FOUND`).
    pub fn analytics(&self) -> Analytics {
        Analytics {
            engine: self.engine(),
            lens: Lens {
                scope: Some(self.reseller_id()),
                locked: true,
                ..Lens::default()
            },
        }
    }
}

#[wasm_bindgen]
impl Analytics {
    /// Credits distributed (top-ups) per bucket from `start` to `end`, both days included.
    #[wasm_bindgen(js_name = creditTrends, unchecked_return_type = "Promise<Trend>")]
    pub fn credit_trends(
        &self,
        #[wasm_bindgen(unchecked_param_type = "AnalyticsDay")] start: JsValue,
        #[wasm_bindgen(unchecked_param_type = "AnalyticsDay")] end: JsValue,
    ) -> Promise {
        let lens = self.lens.clone();
        scoped(
            &self.engine,
            &self.lens,
            period(&start, &end),
            |engine, days| async move {
                let trend = engine.credit_trends(lens.scope(), days, lens.interval);
                trend_js(trend.await.or_throw()?)
            },
        )
    }

    /// Resellers per tier (every configured tier present), of those registered in the period
    /// when one is given.
    #[wasm_bindgen(js_name = tierSnapshot, unchecked_return_type = "Promise<Record<string, number>>")]
    pub fn tier_snapshot(
        &self,
        start: Option<AnalyticsDayArg>,
        end: Option<AnalyticsDayArg>,
    ) -> Promise {
        let lens = self.lens.clone();
        let days = open_period(&optional(start), &optional(end));
        scoped(&self.engine, &self.lens, days, |engine, days| async move {
            let snapshot = engine.tier_snapshot(lens.scope(), days).await.or_throw()?;
            ordered(
                snapshot
                    .into_iter()
                    .map(|(tier, n)| (tier, Value::from(n)))
                    .collect(),
            )
        })
    }

    /// The resellers that bought the most credits in the period (all time when left out), then
    /// those that signed up the most clients; `limit` defaults to 10.
    #[wasm_bindgen(js_name = topResellers, unchecked_return_type = "Promise<TopReseller[]>")]
    pub fn top_resellers(
        &self,
        limit: Option<LimitArg>,
        start: Option<AnalyticsDayArg>,
        end: Option<AnalyticsDayArg>,
    ) -> Promise {
        let limit = optional(limit);
        let parsed = top_limit(&limit)
            .and_then(|limit| Ok((limit, open_period(&optional(start), &optional(end))?)));
        let lens = self.lens.clone();
        scoped(
            &self.engine,
            &self.lens,
            parsed,
            |engine, (limit, days)| async move {
                let rows = engine
                    .top_resellers(lens.scope(), limit, days)
                    .await
                    .or_throw()?;
                let out = Array::new();
                for row in rows {
                    out.push(&ordered(vec![
                        ("id", row.reseller.id.into()),
                        ("refid", row.reseller.refid.into()),
                        ("company", row.reseller.company_name.into()),
                        ("tier", row.reseller.tier.into()),
                        ("acquisitions", row.acquisitions.into()),
                        (
                            "creditVolume",
                            count(row.credit_volume, "creditVolume").or_throw()?,
                        ),
                        (
                            "provisioned",
                            count(row.provisioned, "provisioned").or_throw()?,
                        ),
                        ("balance", row.balance.get().into()),
                    ])?);
                }
                Ok(out.into())
            },
        )
    }

    /// The credits held in wallets now: what the business owes its network in services.
    #[wasm_bindgen(js_name = totalCreditsDistributed, unchecked_return_type = "Promise<number>")]
    pub fn total_credits_distributed(&self) -> Promise {
        let lens = self.lens.clone();
        scoped(&self.engine, &self.lens, Ok(()), |engine, ()| async move {
            let total = engine
                .total_credits_distributed(lens.scope())
                .await
                .or_throw()?;
            to_plain(&count(total, "totalCreditsDistributed").or_throw()?)
        })
    }

    /// One reseller's balance, tier, wallet volume and clients.
    #[wasm_bindgen(js_name = resellerStats, unchecked_return_type = "Promise<ResellerStats>")]
    pub fn reseller_stats(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
    ) -> Promise {
        let lens = match self.lens.for_reseller(&reseller) {
            Ok(lens) => lens,
            Err(e) => return rejected(&e),
        };
        let id = lens.scope.clone().unwrap_or_default();
        scoped(&self.engine, &lens, Ok(id), |engine, id| async move {
            let stats = engine.reseller_stats(&id).await.or_throw()?;
            let mut clients: Vec<(&str, Value)> = ClientStatus::ALL
                .iter()
                .zip(stats.clients)
                .map(|(status, n)| (status.as_str(), n.into()))
                .collect();
            clients.push(("total", stats.clients.iter().sum::<u64>().into()));
            let last = stats
                .last_activity_day
                .and_then(|day| day.checked_mul(DAY_MS))
                .and_then(|ms| iso_time::format_millis(ms).get(..10).map(str::to_owned));
            let out = ordered(vec![
                ("id", stats.reseller.id.into()),
                ("refid", stats.reseller.refid.into()),
                ("company", stats.reseller.company_name.into()),
                ("tier", stats.reseller.tier.into()),
                ("status", stats.reseller.status.as_str().into()),
                ("discount", stats.discount.to_string().into()),
                ("balance", stats.balance.get().into()),
                (
                    "creditsPurchased",
                    count(stats.volume.credited, "creditsPurchased").or_throw()?,
                ),
                (
                    "creditsProvisioned",
                    count(stats.volume.debited, "creditsProvisioned").or_throw()?,
                ),
                ("transactions", stats.volume.entries.into()),
                ("clients", Value::Null),
                ("lastActivity", last.into()),
            ])?;
            Reflect::set(&out, &"clients".into(), &ordered(clients)?)?;
            Ok(out)
        })
    }
}

fn top_limit(value: &JsValue) -> Result<u32> {
    if value.is_undefined() || value.is_null() {
        return Ok(10);
    }
    let refuse = || {
        Error::invalid(
            "limit",
            format!(
                "expected a whole number from 1 to {TOP_LIMIT_MAX}, got {}",
                input::type_name(value)
            ),
        )
    };
    let n = value.as_f64().ok_or_else(refuse)?;
    if n.fract() != 0.0 || !(1.0..=f64::from(TOP_LIMIT_MAX)).contains(&n) {
        return Err(Error::invalid(
            "limit",
            format!("expected a whole number from 1 to {TOP_LIMIT_MAX}, got {n}"),
        ));
    }
    // Whole and within 1..=TOP_LIMIT_MAX: the conversion is exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(n as u32)
}

/// The clients' analytics: `ally.clients.analytics().forReseller(id).monthly().signupTrends(…)`.
#[wasm_bindgen]
pub struct ClientAnalytics {
    engine: Rc<Engine>,
    lens: Lens,
}

#[wasm_bindgen]
impl Clients {
    /// The clients' analytics, monthly and unscoped until told otherwise.
    pub fn analytics(&self) -> ClientAnalytics {
        ClientAnalytics {
            engine: self.engine(),
            lens: self.lens(),
        }
    }
}

impl Clients {
    fn lens(&self) -> Lens {
        match self.scope() {
            Some(id) => Lens {
                scope: Some(id),
                locked: true,
                ..Lens::default()
            },
            None => Lens::default(),
        }
    }
}

#[wasm_bindgen]
impl ClientAnalytics {
    /// Clients by status (every status present), of those created in the period when given.
    #[wasm_bindgen(
        js_name = statusBreakdown,
        unchecked_return_type = "Promise<Record<ClientStatus, number>>"
    )]
    pub fn status_breakdown(
        &self,
        start: Option<AnalyticsDayArg>,
        end: Option<AnalyticsDayArg>,
    ) -> Promise {
        let lens = self.lens.clone();
        let days = open_period(&optional(start), &optional(end));
        scoped(&self.engine, &self.lens, days, |engine, days| async move {
            let counts = engine
                .client_status_breakdown(lens.scope(), days)
                .await
                .or_throw()?;
            ordered(
                ClientStatus::ALL
                    .iter()
                    .zip(counts)
                    .map(|(status, n)| (status.as_str(), n.into()))
                    .collect(),
            )
        })
    }

    /// How many clients were created in the period (all time when left out).
    #[wasm_bindgen(unchecked_return_type = "Promise<number>")]
    pub fn growth(&self, start: Option<AnalyticsDayArg>, end: Option<AnalyticsDayArg>) -> Promise {
        let lens = self.lens.clone();
        let days = open_period(&optional(start), &optional(end));
        scoped(&self.engine, &self.lens, days, |engine, days| async move {
            let n = engine.client_growth(lens.scope(), days).await.or_throw()?;
            Ok(JsValue::from_f64(n as f64))
        })
    }

    /// Standalone against resold clients, with percentages that add up to exactly 100.
    #[wasm_bindgen(unchecked_return_type = "Promise<ClientSegmentation>")]
    pub fn segmentation(
        &self,
        start: Option<AnalyticsDayArg>,
        end: Option<AnalyticsDayArg>,
    ) -> Promise {
        let lens = self.lens.clone();
        let days = open_period(&optional(start), &optional(end));
        scoped(&self.engine, &self.lens, days, |engine, days| async move {
            let s = engine
                .client_segmentation(lens.scope(), days)
                .await
                .or_throw()?;
            // Hundredths of a percent as a two-decimal number: 3333 → 33.33 (parsed from text,
            // so the number is the one nearest the decimal).
            let percent = |share: u32| -> Value {
                let text = format!("{}.{:02}", share / 100, share % 100);
                serde_json::from_str(&text).unwrap_or(Value::Null)
            };
            let segment = |count: u64, share: u32| {
                ordered(vec![
                    ("count", count.into()),
                    ("percentage", percent(share)),
                ])
            };
            let out = ordered(vec![("standalone", Value::Null), ("resold", Value::Null)])?;
            Reflect::set(
                &out,
                &"standalone".into(),
                &segment(s.standalone, s.standalone_share)?,
            )?;
            Reflect::set(&out, &"resold".into(), &segment(s.resold, s.resold_share)?)?;
            Ok(out)
        })
    }

    /// Clients created per bucket from `start` to `end`, both days included.
    #[wasm_bindgen(js_name = signupTrends, unchecked_return_type = "Promise<Trend>")]
    pub fn signup_trends(
        &self,
        #[wasm_bindgen(unchecked_param_type = "AnalyticsDay")] start: JsValue,
        #[wasm_bindgen(unchecked_param_type = "AnalyticsDay")] end: JsValue,
    ) -> Promise {
        let lens = self.lens.clone();
        scoped(
            &self.engine,
            &self.lens,
            period(&start, &end),
            |engine, days| async move {
                let trend = engine.signup_trends(lens.scope(), days, lens.interval);
                trend_js(trend.await.or_throw()?)
            },
        )
    }
}

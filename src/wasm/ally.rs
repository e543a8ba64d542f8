//! `new Ally(options)`: the engine with the host's ports, and its reseller surface.

use std::rc::Rc;

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::future_to_promise;

use super::codec::to_plain;
use super::commission::plan_from_fields;
use super::error::{to_js, OrThrow};
use super::host::{HostClock, HostMailer, HostStorage};
use super::input::{self, credits, type_name, RESERVED_KEYS};
use super::pricing::{
    catalog_from_js, cost_batch, discount_of, price_to_js, tier_table, verify_to_js,
};
use super::types::optional::{
    self, AllyOptionsArg, JsonValueArg, ResellerListFilterArg, StatusOptionsArg,
};
use super::types::{self, ResellerStatusName};
use super::wallets::Listeners;
use crate::domain::commission::Plan;
use crate::domain::config::Config;
use crate::domain::money::{ConversionRate, Currency, Rate};
use crate::domain::quote::PricingContext;
use crate::domain::record::Fields;
use crate::domain::reseller::{
    self, Reseller, ResellerDraft, ResellerStatus, StatusChange, UserId,
};
use crate::domain::rounding::Rounding;
use crate::domain::tier::{tier_cost, TierName};
use crate::domain::workflow::{Checklist, Lifecycle, Stage, Task};
use crate::domain::{Error, Result};
use crate::engine::{self, ResellerFilter, Versioned};

pub(super) type Engine = engine::Ally<HostStorage, HostMailer, HostClock>;

/// The partner engine with the host's storage, mail and clock.
#[wasm_bindgen]
pub struct Ally {
    pub(super) engine: Rc<Engine>,
    pub(super) listeners: Rc<Listeners>,
}

const OPTION_KEYS: [&str; 5] = ["config", "storage", "mail", "clock", "onEvent"];

/// Reads one of `options`' own properties (an inherited one reads as absent, so a polluted
/// `Object.prototype.mail` receives nothing); `INVALID_CONFIG` when reading it throws.
fn option(options: &JsValue, key: &str) -> Result<JsValue> {
    input::own_property(options, key).map_err(|_| Error::InvalidConfig {
        key: key.to_owned(),
        reason: "reading this option threw".to_owned(),
    })
}

fn check_options(options: &JsValue) -> Result<()> {
    if options.is_undefined() || options.is_null() {
        return Ok(());
    }
    let config_error = |key: &str, reason: String| Error::InvalidConfig {
        key: key.to_owned(),
        reason,
    };
    // Any object, whatever its prototype (`Object.create(null)`) or realm: not `instanceof`.
    let Some(object) =
        (options.is_object() && !options.is_function()).then(|| options.unchecked_ref::<Object>())
    else {
        return Err(config_error(
            "options",
            format!("expected an object, got {}", type_name(options)),
        ));
    };
    if !input::is_plain(options) {
        return Err(config_error(
            "options",
            format!("expected a plain object, got {}", type_name(options)),
        ));
    }
    let keys = Reflect::own_keys(object)
        .map_err(|_| config_error("options", "its keys could not be read".to_owned()))?;
    for key in keys.iter().filter_map(|k| k.as_string()) {
        if RESERVED_KEYS.contains(&key.as_str()) || !OPTION_KEYS.contains(&key.as_str()) {
            return Err(config_error(
                &key,
                "unknown option; expected config, storage, mail, clock or onEvent".to_owned(),
            ));
        }
    }
    Ok(())
}

const CONFIG_KEYS: [&str; 13] = [
    "defaultTier",
    "creditConversionRate",
    "autoProvisionWallet",
    "lowCreditThreshold",
    "urls",
    "tiers",
    "currency",
    "rounding",
    "hierarchyLevelsMax",
    "clientRefidPrefix",
    "commissionPlan",
    "onboarding",
    "lifecycle",
];

/// Builds the validated config from the host's `config` record; every failure is
/// `INVALID_CONFIG` naming the key.
fn parse_config(value: &JsValue) -> Result<Config> {
    read_config(value)
        .map_err(|e| match e {
            // Keys are named from the config root; the root itself is "config".
            Error::InvalidInput { field, reason } if field.is_empty() => {
                Error::invalid("config", reason)
            }
            other => other,
        })
        .map_err(Error::into_config_error)
}

fn read_config(value: &JsValue) -> Result<Config> {
    let mut config = input::record(value, "")?;
    let defaults = Config::default();
    let default_tier = match config.opt_string("defaultTier")? {
        None => defaults.default_tier.clone(),
        Some(name) => TierName::parse(&name, "defaultTier")?,
    };
    let conversion = match config.opt_credits("creditConversionRate")? {
        None => ConversionRate::DEFAULT,
        Some(rate) => ConversionRate::new(rate.get(), "creditConversionRate")?,
    };
    let auto_provision_wallet = config
        .opt_bool("autoProvisionWallet")?
        .unwrap_or(defaults.auto_provision_wallet);
    let low_credit_threshold = config
        .opt_credits("lowCreditThreshold")?
        .unwrap_or(defaults.low_credit_threshold);
    let dashboard_url = match config.opt_object("urls")? {
        None => defaults.dashboard_url.clone(),
        Some(mut urls) => {
            let dashboard = urls.opt_string("dashboard")?;
            urls.finish(&["dashboard"])?;
            dashboard.unwrap_or(defaults.dashboard_url.clone())
        }
    };
    let tiers = tier_table(config.opt_object("tiers")?, "tiers")?;
    let currency = match config.take("currency") {
        None => defaults.pricing.currency.clone(),
        Some(serde_json::Value::String(code)) => Currency::new(&code, None, "currency")?,
        Some(other) => {
            let mut detail = Fields::new(other, "currency")?;
            let code = detail.string("code")?;
            let scale = detail
                .opt_count("scale")?
                .map(|s| u32::try_from(s).unwrap_or(u32::MAX));
            detail.finish(&["code", "scale"])?;
            Currency::new(&code, scale, "currency")?
        }
    };
    let rounding = config
        .opt_choice("rounding", &Rounding::ALL, Rounding::as_str)?
        .unwrap_or(defaults.rounding);
    let levels = match config.opt_count("hierarchyLevelsMax")? {
        None => Config::HIERARCHY_LEVELS_DEFAULT,
        Some(n) if (1..=Config::HIERARCHY_LEVELS_MAX as u64).contains(&n) => n as usize,
        Some(n) => {
            return Err(Error::invalid(
                "hierarchyLevelsMax",
                format!("expected 1 to {}, got {n}", Config::HIERARCHY_LEVELS_MAX),
            ))
        }
    };
    let client_prefix = match config.opt_string("clientRefidPrefix")? {
        None => Config::CLIENT_REFID_PREFIX_DEFAULT.to_owned(),
        Some(prefix) => {
            let ok = (1..=8).contains(&prefix.len())
                && prefix.bytes().all(|b| {
                    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !ok {
                return Err(Error::invalid(
                    "clientRefidPrefix",
                    "expected 1 to 8 characters from A-Z, 0-9, - and _",
                ));
            }
            prefix
        }
    };
    let plan = match config.opt_object("commissionPlan")? {
        None => Plan::reference(),
        Some(fields) => plan_from_fields(fields, &currency)?,
    };
    let onboarding = match config.opt_array("onboarding")? {
        None => Checklist::reference(),
        Some(items) => checklist(items)?,
    };
    let lifecycle = match config.opt_array("lifecycle")? {
        None => Lifecycle::reference(),
        Some(items) => lifecycle(items)?,
    };
    config.finish(&CONFIG_KEYS)?;
    let mut built = Config::new(
        default_tier,
        PricingContext {
            tiers,
            currency,
            conversion,
        },
        rounding,
        auto_provision_wallet,
        low_credit_threshold,
        dashboard_url,
    )?;
    built.hierarchy_levels_max = levels;
    built.client_refid_prefix = client_prefix;
    built.commission_plan = plan;
    built.onboarding = onboarding;
    built.lifecycle = lifecycle;
    Ok(built)
}

/// Keys listed in an array field: strings only.
fn keys(fields: &mut Fields, key: &str) -> Result<Vec<String>> {
    match fields.opt_array(key)? {
        None => Ok(Vec::new()),
        Some(items) => items
            .into_iter()
            .map(|(path, v)| match v {
                serde_json::Value::String(s) => Ok(s),
                _ => Err(Error::invalid(path, "expected a key")),
            })
            .collect(),
    }
}

/// `onboarding`: `[{ key, title, required?, dependsOn? }]`.
fn checklist(items: Vec<(String, serde_json::Value)>) -> Result<Checklist> {
    let mut tasks = Vec::with_capacity(items.len());
    for (path, item) in items {
        let mut f = Fields::new(item, &path)?;
        let task = Task {
            key: f.string("key")?,
            title: f.string("title")?,
            required: f.opt_bool("required")?.unwrap_or(true),
            depends_on: keys(&mut f, "dependsOn")?,
        };
        f.finish(&["key", "title", "required", "dependsOn"])?;
        tasks.push(task);
    }
    Checklist::new(tasks, "onboarding")
}

/// `lifecycle`: `[{ key, title, next? }]`, the first stage where every client starts.
fn lifecycle(items: Vec<(String, serde_json::Value)>) -> Result<Lifecycle> {
    let mut stages = Vec::with_capacity(items.len());
    for (path, item) in items {
        let mut f = Fields::new(item, &path)?;
        let stage = Stage {
            key: f.string("key")?,
            title: f.string("title")?,
            next: keys(&mut f, "next")?,
        };
        f.finish(&["key", "title", "next"])?;
        stages.push(stage);
    }
    Lifecycle::new(stages, "lifecycle")
}

/// A seed for identifiers from the runtime's cryptographic source.
fn id_seed() -> Result<u64> {
    let mut bytes = [0u8; 8];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::InvalidConfig {
        key: "crypto".to_owned(),
        reason: format!("the runtime offers no crypto.getRandomValues: {e}"),
    })?;
    Ok(u64::from_le_bytes(bytes))
}

/// A reseller record (or its id) as the id.
pub(super) fn reseller_id(value: &JsValue, field: &str) -> Result<String> {
    record_id(value, field, "reseller")
}

/// The id of a record of `kind` given as the record (its own `id`) or as the id string.
pub(super) fn record_id(value: &JsValue, field: &str, kind: &str) -> Result<String> {
    if value.is_string() {
        return input::string(value, field);
    }
    if value.is_object() && !value.is_function() {
        if let Some(id) = input::own_property(value, "id")
            .ok()
            .filter(JsValue::is_string)
        {
            return input::string(&id, &format!("{field}.id"));
        }
    }
    Err(Error::invalid(
        field,
        format!(
            "expected a {kind} record or its id (a string), got {}",
            type_name(value)
        ),
    ))
}

fn user_id(value: &JsValue, field: &str) -> Result<UserId> {
    if let Some(text) = value.as_string() {
        return UserId::text(&text, field);
    }
    if value.as_f64().is_some() || value.is_bigint() {
        let number = credits(value, field).map_err(|e| match e {
            Error::InvalidInput { reason, .. } => Error::invalid(
                field,
                format!("a user id must be a positive whole number or a string: {reason}"),
            ),
            other => other,
        })?;
        return UserId::number(number.get(), field);
    }
    Err(Error::invalid(
        field,
        format!(
            "expected a user id (number or string), got {}",
            type_name(value)
        ),
    ))
}

fn list_filter(value: &JsValue) -> Result<ResellerFilter> {
    let mut filter = input::record(value, "filter")?;
    let tier = filter.opt_string("tier")?;
    let status = filter.opt_choice("status", &ResellerStatus::ALL, ResellerStatus::as_str)?;
    filter.finish(&["tier", "status"])?;
    Ok(ResellerFilter { tier, status })
}

/// The reseller and the `{ reason }` of `suspend` and `deactivate`.
fn status_args(reseller: &JsValue, options: &JsValue) -> Result<(String, Option<String>)> {
    let id = reseller_id(reseller, "reseller")?;
    let mut options = input::record(options, "options")?;
    let reason = options.opt_string("reason")?;
    options.finish(&["reason"])?;
    let reason = reason
        .map(|r| crate::domain::ledger::text(&r, "options.reason"))
        .transpose()?;
    Ok((id, reason))
}

impl Ally {
    fn change_status(&self, args: Result<(String, StatusChange)>) -> Promise {
        call(&self.engine, args, |engine, (id, change)| async move {
            reseller_js(&engine.set_reseller_status(&id, change).await.or_throw()?)
        })
    }
}

fn status_name(status: ResellerStatus) -> ResellerStatusName {
    match status {
        ResellerStatus::Active => ResellerStatusName::Active,
        ResellerStatus::Suspended => ResellerStatusName::Suspended,
        ResellerStatus::Inactive => ResellerStatusName::Inactive,
    }
}

pub(super) fn reseller_output(found: &Versioned<Reseller>) -> types::Reseller {
    let r = &found.value;
    types::Reseller {
        id: r.id.clone(),
        refid: r.refid.clone(),
        user_id: serde_json::to_value(&r.user_id).unwrap_or(serde_json::Value::Null),
        company_name: r.company_name.clone(),
        email: r.email.clone(),
        tier: r.tier.clone(),
        status: status_name(r.status),
        status_reason: r.status_reason.clone(),
        metadata: r.metadata.clone(),
        commission_rate: r.commission_rate.map(|rate| rate.to_decimal().to_string()),
        parent_id: r.parent_id.clone(),
        created_at: reseller::iso_time::format(r.created_at),
        updated_at: reseller::iso_time::format(r.updated_at),
        version: found.version,
    }
}

fn reseller_js(found: &Versioned<Reseller>) -> std::result::Result<JsValue, JsValue> {
    to_plain(&reseller_output(found))
}

fn optional_reseller_js(
    found: Option<Versioned<Reseller>>,
) -> std::result::Result<JsValue, JsValue> {
    found.as_ref().map_or(Ok(JsValue::NULL), reseller_js)
}

pub(super) type JsResult = std::result::Result<JsValue, JsValue>;

/// Runs an engine operation as a Promise; every failure rejects with an `AllyError`. The future
/// is boxed so that the promise machinery is compiled once, not once per method.
/// The promise of an engine operation. The operation is polled once at once: with the built-in
/// memory storage it is already done, and a settled promise skips a trip through the task queue.
/// Otherwise the event loop drives it from there (every future in the engine registers the
/// waker of its latest poll, so the first poll's inert waker is never the one woken).
pub(super) fn promise(future: impl std::future::Future<Output = JsResult> + 'static) -> Promise {
    let mut boxed: std::pin::Pin<Box<dyn std::future::Future<Output = JsResult>>> =
        Box::pin(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match boxed.as_mut().poll(&mut context) {
        std::task::Poll::Ready(Ok(value)) => Promise::resolve(&value),
        std::task::Poll::Ready(Err(error)) => Promise::reject(&error),
        std::task::Poll::Pending => future_to_promise(boxed),
    }
}

/// Runs `work` on the engine with arguments checked first: a bad argument is a rejected Promise
/// before anything runs.
pub(super) fn call<T, F>(
    engine: &Rc<Engine>,
    args: Result<T>,
    work: impl FnOnce(Rc<Engine>, T) -> F,
) -> Promise
where
    F: std::future::Future<Output = JsResult> + 'static,
{
    match args {
        Ok(args) => promise(work(Rc::clone(engine), args)),
        Err(e) => rejected(&e),
    }
}

pub(super) fn rejected(error: &Error) -> Promise {
    Promise::reject(&to_js(error))
}

#[wasm_bindgen]
impl Ally {
    /// Every option is optional: the default storage is in memory, mail is dropped, and the clock
    /// is the runtime's. A bad config throws `INVALID_CONFIG` naming the key.
    #[wasm_bindgen(constructor)]
    pub fn new(options: Option<AllyOptionsArg>) -> std::result::Result<Ally, JsValue> {
        let options = optional::value(options);
        check_options(&options).or_throw()?;
        let get = |key| {
            if options.is_undefined() || options.is_null() {
                Ok(JsValue::UNDEFINED)
            } else {
                option(&options, key)
            }
        };
        let config = get("config").and_then(|c| parse_config(&c)).or_throw()?;
        let events = get("onEvent")
            .and_then(|e| super::events::EventSink::from_js(&e))
            .or_throw()?;
        let storage = get("storage")
            .and_then(|s| HostStorage::from_js(&s, events.clone()))
            .or_throw()?;
        let mailer = get("mail")
            .and_then(|m| HostMailer::from_js(&m))
            .or_throw()?;
        let clock = get("clock")
            .and_then(|c| HostClock::from_js(&c))
            .or_throw()?;
        let seed = id_seed().or_throw()?;
        let mut engine = engine::Ally::new(config, storage, mailer, clock, seed);
        if let Some(events) = &events {
            engine = engine.with_observer(events.observer());
        }
        Ok(Ally {
            engine: Rc::new(engine),
            listeners: Rc::default(),
        })
    }

    /// A builder for a new reseller: `.user(id).company(name).email(e).platinum().create()`.
    #[must_use]
    pub fn make(&self) -> ResellerBuilder {
        ResellerBuilder {
            engine: Rc::clone(&self.engine),
            draft: ResellerDraft::default(),
        }
    }

    /// The reseller with this id, or `null`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Reseller | null>")]
    pub fn find(&self, #[wasm_bindgen(unchecked_param_type = "string")] id: JsValue) -> Promise {
        let id = match input::string(&id, "id") {
            Ok(id) => id,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(async move { optional_reseller_js(engine.find_reseller(&id).await.or_throw()?) })
    }

    /// The reseller profile of a system user, or `null`.
    #[wasm_bindgen(js_name = findByUser, unchecked_return_type = "Promise<Reseller | null>")]
    pub fn find_by_user(
        &self,
        #[wasm_bindgen(js_name = userId, unchecked_param_type = "number | string")] user: JsValue,
    ) -> Promise {
        let user = match user_id(&user, "userId") {
            Ok(user) => user,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(async move {
            optional_reseller_js(engine.find_reseller_by_user(&user).await.or_throw()?)
        })
    }

    /// The reseller with this public reference, or `null`.
    #[wasm_bindgen(js_name = findByRefid, unchecked_return_type = "Promise<Reseller | null>")]
    pub fn find_by_refid(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] refid: JsValue,
    ) -> Promise {
        let refid = match input::string(&refid, "refid") {
            Ok(refid) => refid,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(async move {
            optional_reseller_js(engine.find_reseller_by_refid(&refid).await.or_throw()?)
        })
    }

    /// Resellers, oldest first, optionally scoped by `tier` and `status`.
    #[wasm_bindgen(unchecked_return_type = "Promise<Reseller[]>")]
    pub fn list(&self, filter: Option<ResellerListFilterArg>) -> Promise {
        let filter = match list_filter(&optional::value(filter)) {
            Ok(f) => f,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(async move {
            let found = engine.list_resellers(&filter).await.or_throw()?;
            let outputs: Vec<types::Reseller> = found.iter().map(reseller_output).collect();
            to_plain(&outputs)
        })
    }

    /// Sets one metadata key to a JSON value; `undefined` or `null` removes it. Resolves to the
    /// updated record.
    #[wasm_bindgen(js_name = updateMetadata, unchecked_return_type = "Promise<Reseller>")]
    pub fn update_metadata(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] key: JsValue,
        value: Option<JsonValueArg>,
    ) -> Promise {
        let parsed = (|| {
            let id = reseller_id(&reseller, "reseller")?;
            let key = input::string(&key, "key")?;
            if RESERVED_KEYS.contains(&key.as_str()) {
                return Err(Error::invalid(
                    "key",
                    format!("the key \"{key}\" is not allowed"),
                ));
            }
            let value = value
                .map(|v| input::to_json(v.as_ref(), "value"))
                .transpose()?;
            Ok((id, key, value))
        })();
        let (id, key, value) = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(async move {
            reseller_js(
                &engine
                    .update_reseller_metadata(&id, &key, value)
                    .await
                    .or_throw()?,
            )
        })
    }

    /// Sets the reseller's own commission rate (`"0.15"` or `0.15`, at most 4 decimals, in
    /// [0, 1]); `null` clears it. Resolves to the updated record.
    #[wasm_bindgen(js_name = setCommissionRate, unchecked_return_type = "Promise<Reseller>")]
    pub fn set_commission_rate(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string | number | null")] rate: JsValue,
    ) -> Promise {
        let parsed = reseller_id(&reseller, "reseller").and_then(|id| {
            let rate = if rate.is_null() {
                None
            } else if let Some(text) = rate.as_string() {
                Some(Rate::parse(&text, "rate")?)
            } else if let Some(number) = rate.as_f64() {
                Some(Rate::from_f64(number, "rate")?)
            } else {
                return Err(Error::invalid(
                    "rate",
                    format!(
                        "expected a rate (decimal string or number) or null, got {}",
                        type_name(&rate)
                    ),
                ));
            };
            Ok((id, rate))
        });
        let (id, rate) = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(
            async move { reseller_js(&engine.set_commission_rate(&id, rate).await.or_throw()?) },
        )
    }

    /// Suspends the reseller's ability to provision: its provisions are refused with
    /// `RESELLER_INACTIVE` (carrying `reason`) until `reactivate`; top-ups, reads and commission
    /// go on. Repeating it changes nothing. Resolves to the updated record.
    #[wasm_bindgen(unchecked_return_type = "Promise<Reseller>")]
    pub fn suspend(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        options: Option<StatusOptionsArg>,
    ) -> Promise {
        let options: JsValue = optional::value(options);
        let args = status_args(&reseller, &options)
            .map(|(id, reason)| (id, StatusChange::Suspend { reason }));
        self.change_status(args)
    }

    /// Makes a suspended or inactive reseller active again. Resolves to the updated record.
    #[wasm_bindgen(unchecked_return_type = "Promise<Reseller>")]
    pub fn reactivate(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
    ) -> Promise {
        let args = reseller_id(&reseller, "reseller").map(|id| (id, StatusChange::Reactivate));
        self.change_status(args)
    }

    /// Closes the reseller: inactive, its provisions refused with `RESELLER_INACTIVE` until
    /// `reactivate` (a closed reseller cannot be suspended). Resolves to the updated record.
    #[wasm_bindgen(unchecked_return_type = "Promise<Reseller>")]
    pub fn deactivate(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        options: Option<StatusOptionsArg>,
    ) -> Promise {
        let options: JsValue = optional::value(options);
        let args = status_args(&reseller, &options)
            .map(|(id, reason)| (id, StatusChange::Deactivate { reason }));
        self.change_status(args)
    }

    /// Puts the reseller under `parent` (a reseller or its id), or at the top with `null`.
    /// Refused with `INVALID_INPUT` when it would sit under itself or a descendant, or when a
    /// chain would grow past `hierarchyLevelsMax`; `NOT_FOUND` for an unknown reseller.
    #[wasm_bindgen(js_name = setParent, unchecked_return_type = "Promise<Reseller>")]
    pub fn set_parent(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string | null")] parent: JsValue,
    ) -> Promise {
        let parsed = reseller_id(&reseller, "reseller").and_then(|id| {
            let parent = if parent.is_null() {
                None
            } else {
                Some(reseller_id(&parent, "parent")?)
            };
            Ok((id, parent))
        });
        let (id, parent) = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(
            async move { reseller_js(&engine.set_parent(&id, parent.as_deref()).await.or_throw()?) },
        )
    }

    /// The resellers directly under this one, oldest first.
    #[wasm_bindgen(unchecked_return_type = "Promise<Reseller[]>")]
    pub fn children(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
    ) -> Promise {
        let id = match reseller_id(&reseller, "reseller") {
            Ok(id) => id,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(async move {
            let found = engine.children(&id).await.or_throw()?;
            let list: Vec<types::Reseller> = found.iter().map(reseller_output).collect();
            to_plain(&list)
        })
    }

    /// What the reseller pays for `basePrice` credits under its tier, in whole credits.
    #[wasm_bindgen(js_name = calculateTierCost, unchecked_return_type = "Promise<number>")]
    pub fn calculate_tier_cost(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Reseller | string")] reseller: JsValue,
        #[wasm_bindgen(js_name = basePrice, unchecked_param_type = "number | bigint")]
        base_price: JsValue,
    ) -> Promise {
        let parsed = reseller_id(&reseller, "reseller")
            .and_then(|id| Ok((id, credits(&base_price, "basePrice")?)));
        let (id, base) = match parsed {
            Ok(p) => p,
            Err(e) => return rejected(&e),
        };
        let engine = Rc::clone(&self.engine);
        promise(async move {
            let cost = engine.calculate_tier_cost(&id, base).await.or_throw()?;
            Ok(JsValue::from_f64(cost.as_f64()))
        })
    }

    /// `tierCost` with this instance's tiers and rounding.
    #[wasm_bindgen(js_name = tierCost)]
    pub fn tier_cost(
        &self,
        #[wasm_bindgen(js_name = basePrice, unchecked_param_type = "number | bigint")]
        base_price: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] tier: JsValue,
    ) -> std::result::Result<f64, JsValue> {
        let base = credits(&base_price, "basePrice").or_throw()?;
        let discount = self.discount(&tier).or_throw()?;
        Ok(tier_cost(base, discount, self.engine.config().rounding).as_f64())
    }

    /// `tierCostBatch` with this instance's tiers and rounding.
    #[wasm_bindgen(js_name = tierCostBatch)]
    pub fn tier_cost_batch(
        &self,
        #[wasm_bindgen(js_name = basePrices, unchecked_param_type = "Float64Array | number[]")]
        base_prices: JsValue,
        #[wasm_bindgen(unchecked_param_type = "string")] tier: JsValue,
    ) -> std::result::Result<js_sys::Float64Array, JsValue> {
        let discount = self.discount(&tier).or_throw()?;
        cost_batch(&base_prices, discount, self.engine.config().rounding).or_throw()
    }

    /// `quote` with this instance's tiers, currency and credit conversion rate.
    #[wasm_bindgen(unchecked_return_type = "Quote")]
    pub fn quote(
        &self,
        #[wasm_bindgen(unchecked_param_type = "QuoteRequestInput")] request: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Catalog | ProductInput[]")] catalog: JsValue,
    ) -> std::result::Result<JsValue, JsValue> {
        let catalog = catalog_from_js(&catalog).or_throw()?;
        price_to_js(&request, &catalog, &self.engine.config().pricing)
    }

    /// `verifyQuote` with this instance's tiers, currency and credit conversion rate.
    #[wasm_bindgen(js_name = verifyQuote, unchecked_return_type = "QuoteVerification")]
    pub fn verify_quote(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Quote")] quote: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Catalog | ProductInput[]")] catalog: JsValue,
    ) -> std::result::Result<JsValue, JsValue> {
        let catalog = catalog_from_js(&catalog).or_throw()?;
        verify_to_js(&quote, &catalog, &self.engine.config().pricing)
    }

    /// Credits as money at the configured currency's scale, e.g. `"7.00"` for 700.
    #[wasm_bindgen(js_name = creditsToMoney)]
    pub fn credits_to_money(
        &self,
        #[wasm_bindgen(unchecked_param_type = "number | bigint")] amount: JsValue,
    ) -> std::result::Result<String, JsValue> {
        let amount = credits(&amount, "credits").or_throw()?;
        let pricing = &self.engine.config().pricing;
        Ok(pricing
            .conversion
            .to_money(amount, &pricing.currency, self.engine.config().rounding)
            .to_string())
    }

    /// Money (a decimal string or number) as whole credits, rounded under the configured mode.
    #[wasm_bindgen(js_name = moneyToCredits)]
    pub fn money_to_credits(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | number")] amount: JsValue,
    ) -> std::result::Result<f64, JsValue> {
        let pricing = &self.engine.config().pricing;
        let money = if let Some(text) = amount.as_string() {
            crate::domain::money::Money::parse(&text, &pricing.currency, "money")
        } else if let Some(number) = amount.as_f64() {
            crate::domain::money::Money::from_f64(number, &pricing.currency, "money")
        } else {
            Err(Error::invalid(
                "money",
                format!(
                    "expected a decimal string or a number, got {}",
                    type_name(&amount)
                ),
            ))
        }
        .or_throw()?;
        let credits = pricing
            .conversion
            .to_credits(&money, self.engine.config().rounding, "money")
            .or_throw()?;
        Ok(credits.as_f64())
    }

    fn discount(&self, tier: &JsValue) -> Result<crate::domain::money::Rate> {
        discount_of(&self.engine.config().pricing.tiers, tier)
    }
}

/// Collects a new reseller's fields; each setter checks its value at once and returns a new
/// builder, so a builder can be reused as a template.
#[wasm_bindgen]
#[derive(Clone)]
pub struct ResellerBuilder {
    engine: Rc<Engine>,
    draft: ResellerDraft,
}

impl ResellerBuilder {
    fn with(&self, change: impl FnOnce(&mut ResellerDraft)) -> ResellerBuilder {
        let mut next = self.clone();
        change(&mut next.draft);
        next
    }

    fn with_tier(&self, name: &str) -> std::result::Result<ResellerBuilder, JsValue> {
        self.engine.config().pricing.tiers.get(name).or_throw()?;
        Ok(self.with(|d| d.tier = Some(name.to_owned())))
    }
}

#[wasm_bindgen]
impl ResellerBuilder {
    /// The system user the profile belongs to (a positive integer or a string id).
    pub fn user(
        &self,
        #[wasm_bindgen(unchecked_param_type = "number | string")] id: JsValue,
    ) -> std::result::Result<ResellerBuilder, JsValue> {
        let user = user_id(&id, "user").or_throw()?;
        Ok(self.with(|d| d.user_id = Some(user)))
    }

    pub fn company(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: JsValue,
    ) -> std::result::Result<ResellerBuilder, JsValue> {
        let name = input::string(&name, "company")
            .and_then(|n| reseller::company_name(&n, "company"))
            .or_throw()?;
        Ok(self.with(|d| d.company_name = Some(name)))
    }

    pub fn email(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] address: JsValue,
    ) -> std::result::Result<ResellerBuilder, JsValue> {
        let address = input::string(&address, "email")
            .and_then(|a| reseller::email(&a, "email"))
            .or_throw()?;
        Ok(self.with(|d| d.email = Some(address)))
    }

    /// Any tier of the configured table; `UNKNOWN_TIER` otherwise.
    pub fn tier(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string")] name: JsValue,
    ) -> std::result::Result<ResellerBuilder, JsValue> {
        let name = input::string(&name, "tier").or_throw()?;
        self.with_tier(&name)
    }

    pub fn platinum(&self) -> std::result::Result<ResellerBuilder, JsValue> {
        self.with_tier("platinum")
    }

    pub fn gold(&self) -> std::result::Result<ResellerBuilder, JsValue> {
        self.with_tier("gold")
    }

    pub fn standard(&self) -> std::result::Result<ResellerBuilder, JsValue> {
        self.with_tier("standard")
    }

    /// Free-form JSON (branding, flags); at most 16 KiB as JSON.
    pub fn metadata(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Record<string, JsonValue>")] data: JsValue,
    ) -> std::result::Result<ResellerBuilder, JsValue> {
        let parsed = input::to_json(&data, "metadata")
            .and_then(|json| match json {
                serde_json::Value::Object(map) => reseller::metadata(map, "metadata"),
                _ => Err(Error::invalid(
                    "metadata",
                    format!("expected a plain object, got {}", type_name(&data)),
                )),
            })
            .or_throw()?;
        Ok(self.with(|d| d.metadata = Some(parsed)))
    }

    /// Stores the reseller. Rejects `ALREADY_EXISTS` if the user has a profile already,
    /// `INVALID_INPUT` if `user` or `company` is missing.
    #[wasm_bindgen(unchecked_return_type = "Promise<Reseller>")]
    pub fn create(&self) -> Promise {
        let engine = Rc::clone(&self.engine);
        let draft = self.draft.clone();
        promise(async move { reseller_js(&engine.create_reseller(draft).await.or_throw()?) })
    }
}

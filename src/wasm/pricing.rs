//! Tier pricing and quotes for JavaScript: pure functions, no host needed.

use std::rc::Rc;

use super::codec::to_plain;
use js_sys::Float64Array;
use serde_json::Value;
use wasm_bindgen::prelude::*;

use super::error::{to_js, OrThrow};
use super::input::{self, credits, type_name, ArrayRead};
use super::registry::Registry;
use super::types::optional::{self, TierCostOptionsArg};
use super::types::{
    self, BandUseOutput, PricingModelName, QuoteLineEcho, QuoteLineOutput, QuoteRequestEcho,
    QuoteVerification, RoundingName,
};
use crate::domain::catalog::{self, Band, PricingModel, ProductSpec};
use crate::domain::money::{Credits, Rate};
use crate::domain::quote::{self, PricingContext, QuoteRequest};
use crate::domain::record::{self as fields, Fields};
use crate::domain::rounding::Rounding;
use crate::domain::tier::{tier_cost as domain_tier_cost, Tier, TierName, TierTable};
use crate::domain::Error;

/// The most prices one `tierCostBatch` call takes: 4 Mi prices, 32 MiB of wasm memory, an amount
/// every runtime grants. Longer lists go in several calls.
pub const BATCH_LEN_MAX: u32 = 1 << 22;

thread_local! {
    static REFERENCE: PricingContext = PricingContext::default();
    /// Recently seen tier names (as JS values) and their reference discounts. Comparing a JS
    /// string with `===` is one cheap call; reading it into Rust copies it through the allocator.
    static RECENT_TIERS: std::cell::RefCell<Vec<(JsValue, Rate)>> = const { std::cell::RefCell::new(Vec::new()) };
    static CATALOGS: Registry<catalog::Catalog> = Registry::new();
}

const CATALOG_HANDLE: &str = "__allyCatalogHandle";

/// A tier table from the reference with the `tiers` record (name → `{ discount }`) laid over it.
pub fn tier_table(overrides: Option<Fields>, field: &str) -> Result<TierTable, Error> {
    let Some(overrides) = overrides else {
        return Ok(TierTable::reference());
    };
    let mut parsed = Vec::new();
    for (at, name, value) in overrides.into_entries() {
        let tier_name = TierName::parse(&name, &at)?;
        let mut definition = Fields::new(value, &at)?;
        let discount = Rate::parse(
            &definition.decimal("discount")?,
            &definition.path("discount"),
        )?;
        definition.finish(&["discount"])?;
        parsed.push((tier_name, Tier { discount }));
    }
    TierTable::with_overrides(parsed, field)
}

/// Parsed `tierCost` options: the table in force and the rounding mode.
struct CostOptions {
    tiers: Option<TierTable>,
    rounding: Rounding,
}

fn cost_options(options: &JsValue) -> Result<CostOptions, Error> {
    let mut parsed = input::record(options, "options")?;
    let rounding = parsed
        .opt_choice("rounding", &Rounding::ALL, Rounding::as_str)?
        .unwrap_or_default();
    let tiers = match parsed.opt_object("tiers")? {
        Some(map) => Some(tier_table(Some(map), "options.tiers")?),
        None => None,
    };
    parsed.finish(&["rounding", "tiers"])?;
    Ok(CostOptions { tiers, rounding })
}

/// The discount of the tier named by a JS value, from `tiers`.
pub fn discount_of(tiers: &TierTable, tier: &JsValue) -> Result<Rate, Error> {
    let name = tier.as_string().ok_or_else(|| {
        Error::invalid(
            "tier",
            format!("expected a tier name, got {}", type_name(tier)),
        )
    })?;
    Ok(tiers.get(&name)?.1.discount)
}

/// The reference discount of `tier`, through a small cache of recently used tier values.
fn reference_discount(tier: &JsValue) -> Result<Rate, Error> {
    const RECENT_MAX: usize = 4;
    let hit = RECENT_TIERS.with(|recent| {
        recent
            .borrow()
            .iter()
            .find(|(name, _)| name == tier)
            .map(|(_, rate)| *rate)
    });
    if let Some(rate) = hit {
        return Ok(rate);
    }
    let rate = REFERENCE.with(|r| discount_of(&r.tiers, tier))?;
    RECENT_TIERS.with(|recent| {
        let mut recent = recent.borrow_mut();
        if recent.len() >= RECENT_MAX {
            recent.pop();
        }
        recent.insert(0, (tier.clone(), rate));
    });
    Ok(rate)
}

/// The length of a plain array of prices: `None` when it is not an array.
fn array_length(value: &JsValue) -> Result<Option<u32>, Error> {
    match super::input::array_length(value, BATCH_LEN_MAX as usize) {
        Ok(length) => Ok(Some(length)),
        Err(ArrayRead::NotArray) => Ok(None),
        Err(ArrayRead::TooLong(length)) => Err(Error::invalid(
            "basePrices",
            format!("at most {BATCH_LEN_MAX} prices per call, got {length}"),
        )),
        // What was thrown stays with the caller's own object: it is not read here.
        Err(ArrayRead::Threw(_)) => Err(Error::invalid("basePrices", "reading it threw")),
    }
}

/// Applies a tier discount to each price; shared by the free function and `Ally#tierCostBatch`.
pub fn cost_batch(
    base_prices: &JsValue,
    discount: Rate,
    rounding: Rounding,
) -> Result<Float64Array, Error> {
    let typed = input::typed::<Float64Array>(base_prices);
    let mut prices: Vec<f64> = if let Some(typed) = typed {
        if typed.length() > BATCH_LEN_MAX {
            return Err(Error::invalid(
                "basePrices",
                format!("at most {BATCH_LEN_MAX} prices per call"),
            ));
        }
        typed.to_vec()
    } else if let Some(length) = array_length(base_prices)? {
        let mut out = Vec::with_capacity(length as usize);
        for index in 0..length {
            let item = super::input::array_item(base_prices, index)
                .map_err(|_| Error::invalid(format!("basePrices[{index}]"), "reading it threw"))?;
            let Some(number) = item.as_f64() else {
                return Err(Error::invalid(
                    format!("basePrices[{index}]"),
                    format!(
                        "expected whole credits (a number), got {}",
                        type_name(&item)
                    ),
                ));
            };
            out.push(number);
        }
        out
    } else {
        return Err(Error::invalid(
            "basePrices",
            format!(
                "expected a Float64Array or an array of numbers, got {}",
                type_name(base_prices)
            ),
        ));
    };
    // In place: each price becomes its cost, so one buffer crosses in and the same one out.
    for (index, price) in prices.iter_mut().enumerate() {
        let Some(base) = Credits::from_f64_exact(*price) else {
            // Off the hot path: say exactly what is wrong with this element.
            let reason = match Credits::from_f64(*price, "") {
                Err(Error::InvalidInput { reason, .. }) => reason,
                _ => "expected whole credits".to_owned(),
            };
            return Err(Error::invalid(format!("basePrices[{index}]"), reason));
        };
        *price = domain_tier_cost(base, discount, rounding).as_f64();
    }
    Ok(Float64Array::from(prices.as_slice()))
}

/// What a reseller of `tier` pays for `basePrice` credits, in whole credits.
///
/// Default tiers: platinum 30 % off, gold 15 %, standard 0 %. Default rounding: `"halfUp"`.
/// `tierCost(1000, "platinum") === 700`.
#[wasm_bindgen(js_name = tierCost)]
pub fn tier_cost(
    #[wasm_bindgen(js_name = basePrice, unchecked_param_type = "number | bigint")]
    base_price: JsValue,
    #[wasm_bindgen(unchecked_param_type = "string")] tier: JsValue,
    options: Option<TierCostOptionsArg>,
) -> Result<f64, JsValue> {
    let base = credits(&base_price, "basePrice").or_throw()?;
    let Some(options) = options.map(JsValue::from) else {
        let discount = reference_discount(&tier).or_throw()?;
        return Ok(domain_tier_cost(base, discount, Rounding::HalfUp).as_f64());
    };
    let options = cost_options(&options).or_throw()?;
    let discount = match &options.tiers {
        Some(tiers) => discount_of(tiers, &tier),
        None => reference_discount(&tier),
    }
    .or_throw()?;
    Ok(domain_tier_cost(base, discount, options.rounding).as_f64())
}

/// `tierCost` over many prices in one call: the hot path for price lists. Takes a `Float64Array`
/// (fastest) or an array of numbers, returns a `Float64Array` of whole credits.
#[wasm_bindgen(js_name = tierCostBatch)]
pub fn tier_cost_batch(
    #[wasm_bindgen(js_name = basePrices, unchecked_param_type = "Float64Array | number[]")]
    base_prices: JsValue,
    #[wasm_bindgen(unchecked_param_type = "string")] tier: JsValue,
    options: Option<TierCostOptionsArg>,
) -> Result<Float64Array, JsValue> {
    let options = cost_options(&optional::value(options)).or_throw()?;
    let discount = match &options.tiers {
        Some(tiers) => discount_of(tiers, &tier),
        None => reference_discount(&tier),
    }
    .or_throw()?;
    cost_batch(&base_prices, discount, options.rounding).or_throw()
}

/// A validated product catalog. Build it once and price many quotes against it: the products
/// are checked and digested once, not on every quote.
#[wasm_bindgen]
pub struct Catalog {
    handle: u32,
    inner: Rc<catalog::Catalog>,
}

impl Drop for Catalog {
    fn drop(&mut self) {
        CATALOGS.with(|r| r.remove(self.handle));
    }
}

#[wasm_bindgen]
impl Catalog {
    /// Validates `products`; throws `INVALID_INPUT` naming the product and field.
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "ProductInput[]")] products: JsValue,
    ) -> Result<Catalog, JsValue> {
        let inner = Rc::new(parse_catalog(&products).or_throw()?);
        let handle = CATALOGS.with(|r| r.insert(&inner));
        Ok(Catalog { handle, inner })
    }

    #[wasm_bindgen(js_name = __allyCatalogHandle, skip_typescript)]
    #[must_use]
    pub fn catalog_handle(&self) -> u32 {
        self.handle
    }

    /// SHA-256 (hex) of the catalog's canonical form.
    #[wasm_bindgen(getter)]
    #[must_use]
    pub fn digest(&self) -> String {
        self.inner.digest_hex()
    }

    /// How many products it holds.
    #[wasm_bindgen(getter)]
    #[must_use]
    pub fn size(&self) -> u32 {
        self.inner.len() as u32
    }

    /// Prices `request` against this catalog with the reference tiers; see `quote`.
    #[wasm_bindgen(unchecked_return_type = "Quote")]
    pub fn quote(
        &self,
        #[wasm_bindgen(unchecked_param_type = "QuoteRequestInput")] request: JsValue,
    ) -> Result<JsValue, JsValue> {
        REFERENCE.with(|context| price_to_js(&request, &self.inner, context))
    }
}

fn parse_catalog(products: &JsValue) -> Result<catalog::Catalog, Error> {
    if !input::is_array(products) {
        return Err(Error::invalid(
            "catalog",
            format!(
                "expected an array of products or a Catalog, got {}",
                type_name(products)
            ),
        ));
    }
    let serde_json::Value::Array(items) = input::to_json(products, "catalog")? else {
        return Err(Error::invalid("catalog", "expected an array of products"));
    };
    if items.len() > catalog::Catalog::PRODUCTS_MAX {
        return Err(Error::invalid(
            "catalog",
            format!(
                "a catalog holds at most {} products, got {}",
                catalog::Catalog::PRODUCTS_MAX,
                items.len()
            ),
        ));
    }
    let mut specs = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        specs.push(product_spec(item, &format!("catalog[{index}]"))?);
    }
    catalog::Catalog::new(specs, "catalog")
}

fn product_spec(item: serde_json::Value, path: &str) -> Result<ProductSpec, Error> {
    let mut product = Fields::new(item, path)?;
    let sku = product.string("sku")?;
    let name = product.string("name")?;
    let base_price = product.opt_credits("basePrice")?;
    let pricing = product
        .opt_choice("pricing", &PricingModel::ALL, PricingModel::as_str)?
        .unwrap_or(PricingModel::PerUnit);
    let bands = match product.opt_array("bands")? {
        None => None,
        Some(items) if items.len() > catalog::Catalog::BANDS_MAX => {
            return Err(Error::invalid(
                product.path("bands"),
                format!("at most {} bands", catalog::Catalog::BANDS_MAX),
            ))
        }
        Some(items) => {
            let mut bands = Vec::with_capacity(items.len());
            for (at, item) in items {
                let mut band = Fields::new(item, &at)?;
                let up_to = band.opt_count("upTo")?;
                let unit_price = band.credits("unitPrice")?;
                let flat_fee = band.opt_credits("flatFee")?.unwrap_or(Credits::ZERO);
                band.finish(&["upTo", "unitPrice", "flatFee"])?;
                bands.push(Band {
                    up_to,
                    unit_price,
                    flat_fee,
                });
            }
            Some(bands)
        }
    };
    let tiers = match product.opt_array("tiers")? {
        None => None,
        Some(items) => Some(
            items
                .into_iter()
                .map(|(at, v)| match v {
                    serde_json::Value::String(s) => Ok(s),
                    other => Err(Error::invalid(
                        at,
                        format!("expected a tier name, got {}", fields::describe(&other)),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let package_size = product.opt_units("packageSize", catalog::Catalog::PACKAGE_SIZE_MAX)?;
    let package_price = product.opt_credits("packagePrice")?;
    let free_units = product.opt_units("freeUnits", catalog::Catalog::FREE_UNITS_MAX)?;
    product.finish(&[
        "sku",
        "name",
        "basePrice",
        "pricing",
        "bands",
        "packageSize",
        "packagePrice",
        "freeUnits",
        "tiers",
    ])?;
    Ok(ProductSpec {
        sku,
        name,
        base_price,
        pricing,
        bands,
        package_size,
        package_price,
        free_units,
        tiers,
    })
}

/// A `Catalog` handle, or an array of products validated on the spot.
pub fn catalog_from_js(value: &JsValue) -> Result<Rc<catalog::Catalog>, Error> {
    if let Some(found) = CATALOGS.with(|r| r.lookup(value, CATALOG_HANDLE)) {
        return Ok(found);
    }
    parse_catalog(value).map(Rc::new)
}

fn parse_request(request: &JsValue) -> Result<QuoteRequest, Error> {
    QuoteRequest::from_json(input::to_json(request, "request")?, "request")
}

fn model_name(model: PricingModel) -> PricingModelName {
    match model {
        PricingModel::PerUnit => PricingModelName::PerUnit,
        PricingModel::Volume => PricingModelName::Volume,
        PricingModel::Graduated => PricingModelName::Graduated,
        PricingModel::Package => PricingModelName::Package,
    }
}

/// The wire form of a priced quote.
pub fn quote_output(quote: &quote::Quote, context: &PricingContext) -> types::Quote {
    types::Quote {
        request: QuoteRequestEcho {
            tier: quote.request.tier.clone(),
            lines: quote
                .request
                .lines
                .iter()
                .map(|l| QuoteLineEcho {
                    sku: l.sku.clone(),
                    quantity: l.quantity,
                })
                .collect(),
            rounding: RoundingName::from(quote.request.rounding),
        },
        tier: quote.request.tier.clone(),
        discount_rate: quote.discount_rate.to_string(),
        lines: quote
            .lines
            .iter()
            .map(|line| QuoteLineOutput {
                sku: line.sku.clone(),
                name: line.name.clone(),
                quantity: line.quantity,
                pricing: model_name(line.pricing),
                unit_price: line.unit_price.get(),
                bands: line
                    .bands
                    .iter()
                    .map(|b| BandUseOutput {
                        band: b.band,
                        up_to: b.up_to,
                        quantity: b.quantity,
                        unit_price: b.unit_price.get(),
                        flat_fee: (b.flat_fee != Credits::ZERO).then(|| b.flat_fee.get()),
                        amount: b.amount.get(),
                    })
                    .collect(),
                packages: line.package.map(|p| p.packages),
                free_units: line.package.map(|p| p.free_units),
                subtotal: line.subtotal.get(),
                discount_rate: line.discount_rate.to_string(),
                discount: line.discount.get(),
                total: line.total.get(),
            })
            .collect(),
        subtotal: quote.subtotal.get(),
        discount: quote.discount.get(),
        total: quote.total.get(),
        total_money: quote.total_money.to_string(),
        currency: context.currency.code().to_owned(),
        catalog_digest: catalog::hex(&quote.catalog_digest),
        fingerprint: quote.fingerprint_hex(),
    }
}

/// Prices a JS request against a catalog under `context` and returns the plain quote object.
pub fn price_to_js(
    request: &JsValue,
    catalog: &catalog::Catalog,
    context: &PricingContext,
) -> Result<JsValue, JsValue> {
    let request = parse_request(request).or_throw()?;
    let quote = quote::price(request, catalog, context).or_throw()?;
    to_plain(&quote_output(&quote, context))
}

/// Re-prices the request a quote carries and compares the whole result with what was received.
pub fn verify_to_js(
    received: &JsValue,
    catalog: &catalog::Catalog,
    context: &PricingContext,
) -> Result<JsValue, JsValue> {
    let received = input::to_json(received, "quote").or_throw()?;
    let Some(request) = received.get("request") else {
        return Err(to_js(&Error::invalid(
            "quote.request",
            "a quote carries the request it priced",
        )));
    };
    let request = QuoteRequest::from_json(request.clone(), "quote.request").or_throw()?;
    let expected = quote_output(
        &quote::price(request, catalog, context).or_throw()?,
        context,
    );
    let expected_json = serde_json::to_value(&expected)
        .map_err(|e| to_js(&Error::invalid("quote", e.to_string())))?;
    let mut mismatches = Vec::new();
    diff(&expected_json, &received, "", &mut mismatches);
    to_plain(&QuoteVerification {
        valid: mismatches.is_empty(),
        fingerprint: expected.fingerprint,
        mismatches,
    })
}

/// Collects the paths where `received` differs from `expected` (at most 100).
fn diff(expected: &Value, received: &Value, path: &str, out: &mut Vec<String>) {
    const MISMATCHES_MAX: usize = 100;
    if out.len() >= MISMATCHES_MAX {
        return;
    }
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (expected, received) {
        (Value::Object(e), Value::Object(r)) => {
            for (key, value) in e {
                match r.get(key) {
                    Some(other) => diff(value, other, &join(key), out),
                    None => out.push(join(key)),
                }
            }
            for key in r.keys().filter(|k| !e.contains_key(*k)) {
                out.push(join(key));
            }
        }
        (Value::Array(e), Value::Array(r)) if e.len() == r.len() => {
            for (index, (a, b)) in e.iter().zip(r).enumerate() {
                diff(a, b, &format!("{path}[{index}]"), out);
            }
        }
        (a, b) if a == b => {}
        _ => out.push(if path.is_empty() {
            "quote".to_owned()
        } else {
            path.to_owned()
        }),
    }
}

/// Prices a cart for a tier against a catalog (a `Catalog` or an array of products), with the
/// reference tiers, USD and 100 credits per dollar. Each line shows the band used, the tier
/// discount and the line total; the quote carries a SHA-256 fingerprint of catalog, request and
/// result. Throws `UNKNOWN_TIER`, `TIER_RESTRICTED`, or `INVALID_INPUT` naming the line and field.
#[wasm_bindgen(js_name = quote, unchecked_return_type = "Quote")]
pub fn quote_js(
    #[wasm_bindgen(unchecked_param_type = "QuoteRequestInput")] request: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Catalog | ProductInput[]")] catalog: JsValue,
) -> Result<JsValue, JsValue> {
    let catalog = catalog_from_js(&catalog).or_throw()?;
    REFERENCE.with(|context| price_to_js(&request, &catalog, context))
}

/// Re-prices a quote received from elsewhere (a browser, a queue) and says whether it is genuine:
/// `valid` is true only if every field matches the re-priced quote.
#[wasm_bindgen(js_name = verifyQuote, unchecked_return_type = "QuoteVerification")]
pub fn verify_quote(
    #[wasm_bindgen(unchecked_param_type = "Quote")] quote: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Catalog | ProductInput[]")] catalog: JsValue,
) -> Result<JsValue, JsValue> {
    let catalog = catalog_from_js(&catalog).or_throw()?;
    REFERENCE.with(|context| verify_to_js(&quote, &catalog, context))
}

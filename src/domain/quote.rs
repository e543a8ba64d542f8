//! Pricing a cart for a tier: line by line, with the band used, the tier discount and a stable
//! fingerprint, so that a quote made in a browser can be re-priced and checked anywhere.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::catalog::{hex, put_str, put_u64, Band, Catalog, Package, Pricing, PricingModel};
use super::error::{Error, Result};
use super::money::{ConversionRate, Credits, Currency, Money, Rate};
use super::record::Fields;
use super::rounding::Rounding;
use super::tier::{tier_cost, TierTable};

/// What prices a quote besides the catalog: tiers, currency and the credit conversion rate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PricingContext {
    pub tiers: TierTable,
    pub currency: Currency,
    pub conversion: ConversionRate,
}

impl Default for PricingContext {
    fn default() -> Self {
        Self {
            tiers: TierTable::reference(),
            currency: Currency::usd(),
            conversion: ConversionRate::DEFAULT,
        }
    }
}

/// One requested line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineRequest {
    pub sku: String,
    pub quantity: u64,
}

/// A cart to price for a tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteRequest {
    pub tier: String,
    pub lines: Vec<LineRequest>,
    /// Rounding of each line's discounted total and of the money total (default half-up).
    pub rounding: Rounding,
}

impl QuoteRequest {
    pub const LINES_MAX: usize = 1_000;
    pub const QUANTITY_MAX: u64 = 1_000_000_000;

    /// Reads a request from a JSON record, naming the path of the first field that is wrong.
    pub fn from_json(value: Value, path: &str) -> Result<Self> {
        let mut request = Fields::new(value, path)?;
        let tier = request.string("tier")?;
        let items = request.values("lines")?;
        if items.is_empty() || items.len() > Self::LINES_MAX {
            return Err(Error::invalid(
                request.path("lines"),
                format!(
                    "a quote needs 1-{} lines, got {}",
                    Self::LINES_MAX,
                    items.len()
                ),
            ));
        }
        let mut lines = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let line = match LineRequest::well_formed(&item) {
                Some(line) => line,
                None => LineRequest::from_json(item, &request.item_path("lines", index))?,
            };
            lines.push(line);
        }
        let rounding = request
            .opt_choice("rounding", &Rounding::ALL, Rounding::as_str)?
            .unwrap_or_default();
        request.finish(&["tier", "lines", "rounding"])?;
        Ok(Self {
            tier,
            lines,
            rounding,
        })
    }
}

impl LineRequest {
    /// Reads `{ sku, quantity }`, naming the path of the field that is wrong.
    fn from_json(value: Value, path: &str) -> Result<Self> {
        let mut line = Fields::new(value, path)?;
        let sku = line.string("sku")?;
        let quantity = line.count("quantity")?;
        line.finish(&["sku", "quantity"])?;
        Ok(Self { sku, quantity })
    }

    /// The line when it is exactly `{ sku: string, quantity: whole number }`, which
    /// [`LineRequest::from_json`] reads to the same value; `None` sends the rest to it. Most carts
    /// are well formed, and reading them costs no path text.
    fn well_formed(value: &Value) -> Option<Self> {
        let Value::Object(map) = value else {
            return None;
        };
        if map.len() != 2 {
            return None;
        }
        let sku = map.get("sku")?.as_str()?;
        let quantity = map.get("quantity")?.as_u64()?;
        Credits::new(quantity)?;
        Some(Self {
            sku: sku.to_owned(),
            quantity,
        })
    }
}

/// The units of a line that one band priced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BandUse {
    /// Index of the band in the product's bands; `None` for per-unit pricing.
    pub band: Option<usize>,
    pub up_to: Option<u64>,
    pub quantity: u64,
    pub unit_price: Credits,
    /// The band's flat fee, billed once with it.
    pub flat_fee: Credits,
    /// `quantity × unit_price + flat_fee`.
    pub amount: Credits,
}

/// How a package-priced line came to its subtotal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackageUse {
    /// The units priced free (at most the product's free units).
    pub free_units: u64,
    /// Started blocks billed.
    pub packages: u64,
    pub size: u64,
    pub price: Credits,
}

/// A priced line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteLine {
    pub sku: String,
    pub name: String,
    pub quantity: u64,
    pub pricing: PricingModel,
    /// The unit price of the last unit on the line: the base price, the volume band's price, or
    /// the price of the highest graduated band reached; for package pricing, a block's price.
    pub unit_price: Credits,
    /// The bands that priced the line (per-unit pricing: one without an index; package: none).
    pub bands: Vec<BandUse>,
    /// For package pricing, the blocks billed.
    pub package: Option<PackageUse>,
    pub subtotal: Credits,
    pub discount_rate: Rate,
    pub discount: Credits,
    pub total: Credits,
}

/// A priced cart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    pub request: QuoteRequest,
    pub lines: Vec<QuoteLine>,
    pub discount_rate: Rate,
    pub subtotal: Credits,
    pub discount: Credits,
    pub total: Credits,
    pub total_money: Money,
    pub catalog_digest: [u8; 32],
    pub fingerprint: [u8; 32],
}

/// Prices `request` against `catalog` under `context`.
///
/// Each line's subtotal comes from its pricing model; the tier discount is applied per line and
/// rounded under `request.rounding`, so the quote total is the sum of the line totals and every
/// credit is accounted for on a line.
pub fn price(request: QuoteRequest, catalog: &Catalog, context: &PricingContext) -> Result<Quote> {
    let (_, tier) = context.tiers.get(&request.tier)?;
    let discount_rate = tier.discount;
    if request.lines.is_empty() || request.lines.len() > QuoteRequest::LINES_MAX {
        return Err(Error::invalid(
            "request.lines",
            format!(
                "a quote needs 1-{} lines, got {}",
                QuoteRequest::LINES_MAX,
                request.lines.len()
            ),
        ));
    }
    let mut lines = Vec::with_capacity(request.lines.len());
    let mut subtotal = Credits::ZERO;
    let mut total = Credits::ZERO;
    for (index, line) in request.lines.iter().enumerate() {
        let priced = price_line(line, index, catalog, &request, discount_rate)?;
        let too_large = || {
            Error::invalid(
                "request.lines",
                "the quote total exceeds 9007199254740991 credits",
            )
        };
        subtotal = subtotal
            .checked_add(priced.subtotal)
            .ok_or_else(too_large)?;
        total = total.checked_add(priced.total).ok_or_else(too_large)?;
        lines.push(priced);
    }
    let discount = subtotal.checked_sub(total).unwrap_or(Credits::ZERO);
    let total_money = context
        .conversion
        .to_money(total, &context.currency, request.rounding);
    let catalog_digest = *catalog.digest();
    let mut quote = Quote {
        request,
        lines,
        discount_rate,
        subtotal,
        discount,
        total,
        total_money,
        catalog_digest,
        fingerprint: [0; 32],
    };
    quote.fingerprint = fingerprint(&quote, context);
    Ok(quote)
}

fn price_line(
    line: &LineRequest,
    index: usize,
    catalog: &Catalog,
    request: &QuoteRequest,
    discount_rate: Rate,
) -> Result<QuoteLine> {
    let field = |name: &str| format!("request.lines[{index}].{name}");
    if line.quantity > QuoteRequest::QUANTITY_MAX {
        return Err(Error::invalid(
            field("quantity"),
            format!(
                "quantity must be within 0..={}, got {}",
                QuoteRequest::QUANTITY_MAX,
                line.quantity
            ),
        ));
    }
    let product = catalog.get(&line.sku).ok_or_else(|| {
        Error::invalid(
            field("sku"),
            format!(
                "no product with SKU \"{}\" in the catalog",
                super::decimal::printable(&line.sku)
            ),
        )
    })?;
    if !product.sellable_by(&request.tier) {
        return Err(Error::TierRestricted {
            sku: product.sku.clone(),
            tier: request.tier.clone(),
            field: field("sku"),
        });
    }
    let overflow = || {
        Error::invalid(
            field("quantity"),
            "the line subtotal exceeds 9007199254740991 credits",
        )
    };
    let mut package = None;
    let (bands, unit_price) = match &product.pricing {
        Pricing::PerUnit { base_price } => {
            let amount = base_price.checked_mul(line.quantity).ok_or_else(overflow)?;
            let only = BandUse {
                band: None,
                up_to: None,
                quantity: line.quantity,
                unit_price: *base_price,
                flat_fee: Credits::ZERO,
                amount,
            };
            (vec![only], *base_price)
        }
        // 0 units reach no band, so nothing is billed (Lago's volume model).
        Pricing::Volume { bands } if line.quantity == 0 => (
            Vec::new(),
            bands.first().map_or(Credits::ZERO, |b| b.unit_price),
        ),
        Pricing::Volume { bands } => {
            let (band_index, band) = band_for(bands, line.quantity).ok_or_else(overflow)?;
            let used = band_use(band_index, band, line.quantity).ok_or_else(overflow)?;
            (vec![used], band.unit_price)
        }
        Pricing::Graduated { bands } => graduated(bands, line.quantity).ok_or_else(overflow)?,
        Pricing::Package(terms) => {
            package = Some(package_use(terms, line.quantity));
            (Vec::new(), terms.price)
        }
    };
    let subtotal = match &package {
        Some(used) => used.price.checked_mul(used.packages).ok_or_else(overflow)?,
        None => {
            let mut sum = Credits::ZERO;
            for used in &bands {
                sum = sum.checked_add(used.amount).ok_or_else(overflow)?;
            }
            sum
        }
    };
    let total = tier_cost(subtotal, discount_rate, request.rounding);
    Ok(QuoteLine {
        sku: product.sku.clone(),
        name: product.name.clone(),
        quantity: line.quantity,
        pricing: product.pricing.model(),
        unit_price,
        bands,
        package,
        subtotal,
        discount_rate,
        discount: subtotal.checked_sub(total).unwrap_or(Credits::ZERO),
        total,
    })
}

/// The band that `quantity` reaches. The catalog guarantees a final open-ended band, so `None`
/// cannot happen for a validated product.
fn band_for(bands: &[Band], quantity: u64) -> Option<(usize, Band)> {
    bands
        .iter()
        .copied()
        .enumerate()
        .find(|(_, band)| band.up_to.is_none_or(|up_to| quantity <= up_to))
}

/// `quantity` units of `band`, with its flat fee; `None` on overflow.
fn band_use(index: usize, band: Band, quantity: u64) -> Option<BandUse> {
    Some(BandUse {
        band: Some(index),
        up_to: band.up_to,
        quantity,
        unit_price: band.unit_price,
        flat_fee: band.flat_fee,
        amount: band
            .unit_price
            .checked_mul(quantity)?
            .checked_add(band.flat_fee)?,
    })
}

/// Each band prices the units that fall into it, and bills its flat fee once it is reached.
/// The first band is always reached, so a line of 0 units still bills a flat first band: the
/// fixed fee of Stripe's graduated pricing with a flat first tier.
fn graduated(bands: &[Band], quantity: u64) -> Option<(Vec<BandUse>, Credits)> {
    let mut uses = Vec::new();
    let mut floor = 0u64;
    let mut unit_price = Credits::ZERO;
    for (index, band) in bands.iter().enumerate() {
        if index > 0 && floor >= quantity {
            break;
        }
        let ceiling = band.up_to.map_or(quantity, |up_to| up_to.min(quantity));
        uses.push(band_use(index, *band, ceiling - floor)?);
        unit_price = band.unit_price;
        floor = ceiling;
    }
    Some((uses, unit_price))
}

fn package_use(terms: &Package, quantity: u64) -> PackageUse {
    PackageUse {
        free_units: quantity.min(terms.free_units),
        packages: terms.packages(quantity),
        size: terms.size,
        price: terms.price,
    }
}

/// SHA-256 over the canonical form of catalog digest, pricing context, request and result.
///
/// A quote with a flat fee or a package line is hashed in a second encoding that also covers each
/// line's model, bands and blocks; one without them keeps the fingerprint of the first.
fn fingerprint(quote: &Quote, context: &PricingContext) -> [u8; 32] {
    let extended = quote.lines.iter().any(|line| {
        line.package.is_some() || line.bands.iter().any(|b| b.flat_fee != Credits::ZERO)
    });
    let mut bytes = Vec::with_capacity(128 + 64 * quote.lines.len());
    bytes.extend_from_slice(if extended {
        b"ally-quote-v2\0"
    } else {
        b"ally-quote-v1\0"
    });
    bytes.extend_from_slice(&quote.catalog_digest);
    put_str(&mut bytes, &quote.request.tier);
    put_str(&mut bytes, quote.request.rounding.as_str());
    put_str(&mut bytes, context.currency.code());
    put_u64(&mut bytes, u64::from(context.currency.scale()));
    put_u64(&mut bytes, context.conversion.get());
    put_u64(&mut bytes, u64::from(quote.discount_rate.units()));
    put_u64(&mut bytes, quote.lines.len() as u64);
    for line in &quote.lines {
        put_str(&mut bytes, &line.sku);
        put_u64(&mut bytes, line.quantity);
        put_u64(&mut bytes, line.subtotal.get());
        put_u64(&mut bytes, line.total.get());
        if extended {
            put_str(&mut bytes, line.pricing.as_str());
            put_u64(&mut bytes, line.bands.len() as u64);
            for used in &line.bands {
                put_u64(&mut bytes, used.quantity);
                put_u64(&mut bytes, used.unit_price.get());
                put_u64(&mut bytes, used.flat_fee.get());
            }
            match &line.package {
                None => put_u64(&mut bytes, u64::MAX),
                Some(used) => {
                    put_u64(&mut bytes, used.free_units);
                    put_u64(&mut bytes, used.packages);
                }
            }
        }
    }
    put_u64(&mut bytes, quote.subtotal.get());
    put_u64(&mut bytes, quote.total.get());
    put_str(&mut bytes, &quote.total_money.to_string());
    Sha256::digest(&bytes).into()
}

impl Quote {
    #[must_use]
    pub fn fingerprint_hex(&self) -> String {
        hex(&self.fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Well-formed lines, read without paths, read as the field-by-field reader reads them; the
    /// others are refused in its words.
    #[test]
    fn request_text_reads_as_the_record_reads() {
        let texts = [
            r#"{"tier":"gold","lines":[{"sku":"a","quantity":3}]}"#,
            r#"{"tier":"gold","lines":[{"sku":"a","quantity":3}],"rounding":"halfEven"}"#,
            r#"{"tier":"gold","lines":[{"sku":"a","quantity":3}],"rounding":null}"#,
            r#"{"tier":"","lines":[{"sku":"","quantity":0}]}"#,
            r#"{"tier":"gold","lines":[{"sku":"a","quantity":9007199254740991}]}"#,
            r#"{"tier":"gold","lines":[{"sku":"a","quantity":9007199254740992}]}"#,
            r#"{"tier":"gold","lines":[{"sku":"a","quantity":-1}]}"#,
            r#"{"tier":"gold","lines":[{"sku":"a","quantity":1.5}]}"#,
            r#"{"tier":"gold","lines":[{"sku":"a","quantity":3.0}]}"#,
            r#"{"tier":"gold","lines":[{"sku":"a","quantity":null}]}"#,
            r#"{"tier":"gold","lines":[{"sku":"a"}]}"#,
            r#"{"tier":"gold","lines":[{"sku":"a","quantity":1,"extra":1}]}"#,
            r#"{"tier":"gold","lines":[],"rounding":"up"}"#,
            r#"{"tier":"gold","lines":[{"sku":"a","quantity":1}],"rounding":"sideways"}"#,
            r#"{"tier":"gold","lines":[{"sku":"a","quantity":1}],"rounding":"half\u0055p"}"#,
            r#"{"tier":null,"lines":[{"sku":"a","quantity":1}]}"#,
            r#"{"tier":7,"lines":[{"sku":"a","quantity":1}]}"#,
            r#"{"tier":"gold","lines":{"0":{"sku":"a","quantity":1}}}"#,
            r#"{"tier":"gold","lines":[{"sku":"a","quantity":1}],"x":null}"#,
            r#"{"tier":"gold","tier":"silver","lines":[{"sku":"a","quantity":1}]}"#,
            r#"[1,2]"#,
            r#""gold""#,
        ];
        for text in texts {
            let value: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let by_record =
                QuoteRequest::from_json(value.clone(), "request").map_err(|e| e.to_string());
            let by_fields = (|| {
                let mut request = Fields::new(value, "request")?;
                let tier = request.string("tier")?;
                let items = request.array("lines")?;
                if items.is_empty() || items.len() > QuoteRequest::LINES_MAX {
                    return Err(Error::invalid(
                        "request.lines",
                        format!(
                            "a quote needs 1-{} lines, got {}",
                            QuoteRequest::LINES_MAX,
                            items.len()
                        ),
                    ));
                }
                let lines = items
                    .into_iter()
                    .map(|(at, item)| LineRequest::from_json(item, &at))
                    .collect::<Result<Vec<_>>>()?;
                let rounding = request
                    .opt_choice("rounding", &Rounding::ALL, Rounding::as_str)?
                    .unwrap_or_default();
                request.finish(&["tier", "lines", "rounding"])?;
                Ok(QuoteRequest {
                    tier,
                    lines,
                    rounding,
                })
            })()
            .map_err(|e| e.to_string());
            assert_eq!(by_record, by_fields, "{text}");
        }
        let many = format!(
            r#"{{"tier":"gold","lines":[{}]}}"#,
            vec![r#"{"sku":"a","quantity":1}"#; QuoteRequest::LINES_MAX + 1].join(",")
        );
        let many: Value = serde_json::from_str(&many).unwrap_or_default();
        assert!(QuoteRequest::from_json(many, "request").is_err());
    }
    use crate::domain::catalog::ProductSpec;

    fn credits(value: u64) -> Credits {
        Credits::new(value).unwrap_or_default()
    }

    fn band(up_to: Option<u64>, price: u64) -> Band {
        Band {
            up_to,
            unit_price: credits(price),
            flat_fee: Credits::ZERO,
        }
    }

    fn catalog() -> Catalog {
        let per_unit = |sku: &str, price: u64, tiers: Option<Vec<&str>>| ProductSpec {
            sku: sku.to_owned(),
            name: format!("{sku} licence"),
            base_price: Some(credits(price)),
            pricing: PricingModel::PerUnit,
            bands: None,
            package_size: None,
            package_price: None,
            free_units: None,
            tiers: tiers.map(|t| t.into_iter().map(str::to_owned).collect()),
        };
        let banded = |sku: &str, pricing| ProductSpec {
            sku: sku.to_owned(),
            name: format!("{sku} seats"),
            base_price: None,
            pricing,
            bands: Some(vec![
                band(Some(10), 100),
                band(Some(50), 90),
                band(None, 80),
            ]),
            package_size: None,
            package_price: None,
            free_units: None,
            tiers: None,
        };
        Catalog::new(
            vec![
                per_unit("basic", 1000, None),
                per_unit("pro", 5000, Some(vec!["gold", "platinum"])),
                banded("vol", PricingModel::Volume),
                banded("grad", PricingModel::Graduated),
            ],
            "catalog",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn request(tier: &str, lines: &[(&str, u64)]) -> QuoteRequest {
        QuoteRequest {
            tier: tier.to_owned(),
            lines: lines
                .iter()
                .map(|&(sku, quantity)| LineRequest {
                    sku: sku.to_owned(),
                    quantity,
                })
                .collect(),
            rounding: Rounding::HalfUp,
        }
    }

    #[test]
    fn prices_each_model() {
        let catalog = catalog();
        let context = PricingContext::default();
        // (tier, sku, quantity, subtotal, total, unit price)
        let cases: &[(&str, &str, u64, u64, u64, u64)] = &[
            ("platinum", "basic", 1, 1000, 700, 1000),
            ("gold", "basic", 3, 3000, 2550, 1000),
            ("standard", "basic", 2, 2000, 2000, 1000),
            ("standard", "vol", 10, 1000, 1000, 100),
            ("standard", "vol", 11, 990, 990, 90),
            ("standard", "vol", 51, 4080, 4080, 80),
            ("standard", "grad", 10, 1000, 1000, 100),
            ("standard", "grad", 11, 1090, 1090, 90),
            ("gold", "grad", 60, 1000 + 3600 + 800, 4590, 80),
            ("platinum", "pro", 1, 5000, 3500, 5000),
        ];
        for &(tier, sku, quantity, subtotal, total, unit) in cases {
            let quote = price(request(tier, &[(sku, quantity)]), &catalog, &context)
                .unwrap_or_else(|e| panic!("{tier} {sku} {quantity}: {e}"));
            let line = &quote.lines[0];
            assert_eq!(
                (line.subtotal, line.total, line.unit_price),
                (credits(subtotal), credits(total), credits(unit)),
                "{tier} {sku} {quantity}"
            );
            assert_eq!(quote.total, credits(total));
            let band_sum: u64 = line.bands.iter().map(|b| b.amount.get()).sum();
            assert_eq!(band_sum, subtotal);
            let band_units: u64 = line.bands.iter().map(|b| b.quantity).sum();
            assert_eq!(band_units, quantity);
        }
    }

    #[test]
    fn totals_and_money_add_up() {
        let quote = price(
            request("platinum", &[("basic", 2), ("grad", 12), ("vol", 5)]),
            &catalog(),
            &PricingContext::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // basic 2000 → 1400; grad 1000 + 180 = 1180 → 826; vol 500 → 350
        assert_eq!(quote.subtotal, credits(3680));
        assert_eq!(quote.total, credits(2576));
        assert_eq!(quote.discount, credits(1104));
        assert_eq!(quote.total_money.to_string(), "25.76");
        assert_eq!(quote.discount_rate.to_string(), "0.3000");
        assert_eq!(quote.fingerprint_hex().len(), 64);
    }

    #[test]
    fn refusals_name_the_line() {
        let catalog = catalog();
        let context = PricingContext::default();
        let cases: &[(QuoteRequest, &str, &str)] = &[
            (
                request("diamond", &[("basic", 1)]),
                "UNKNOWN_TIER",
                "unknown tier \"diamond\"",
            ),
            (
                request("standard", &[("basic", 1), ("pro", 1)]),
                "TIER_RESTRICTED",
                "request.lines[1].sku: product \"pro\" may not be sold by \"standard\" resellers",
            ),
            (
                request("gold", &[("nope", 1)]),
                "INVALID_INPUT",
                "request.lines[0].sku: no product with SKU \"nope\" in the catalog",
            ),
            (
                request("gold", &[("basic", 1_000_000_001)]),
                "INVALID_INPUT",
                "request.lines[0].quantity: quantity must be within 0..=1000000000, got 1000000001",
            ),
            (
                request("gold", &[]),
                "INVALID_INPUT",
                "request.lines: a quote needs 1-1000 lines, got 0",
            ),
        ];
        for (req, code, message) in cases {
            let err = price(req.clone(), &catalog, &context)
                .err()
                .unwrap_or_else(|| panic!("{message}"));
            assert_eq!(
                (err.code().as_str(), err.to_string().as_str()),
                (*code, *message)
            );
        }
        let huge = Catalog::new(
            vec![ProductSpec {
                sku: "big".into(),
                name: "Big".into(),
                base_price: Some(Credits::MAX),
                pricing: PricingModel::PerUnit,
                bands: None,
                package_size: None,
                package_price: None,
                free_units: None,
                tiers: None,
            }],
            "catalog",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let err = price(request("gold", &[("big", 2)]), &huge, &context).err();
        assert_eq!(err.map(|e| e.code().as_str()), Some("INVALID_INPUT"));
    }

    #[test]
    fn fingerprint_is_stable_and_sensitive() {
        let catalog = catalog();
        let context = PricingContext::default();
        let a = price(request("gold", &[("basic", 2)]), &catalog, &context)
            .map(|q| q.fingerprint_hex());
        let b = price(request("gold", &[("basic", 2)]), &catalog, &context)
            .map(|q| q.fingerprint_hex());
        let c = price(request("gold", &[("basic", 3)]), &catalog, &context)
            .map(|q| q.fingerprint_hex());
        let d = price(request("platinum", &[("basic", 2)]), &catalog, &context)
            .map(|q| q.fingerprint_hex());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }

    proptest::proptest! {
        /// Every credit is on a line: line totals sum to the total, discounts to the discount,
        /// bands to the line subtotal, and the money total is the credit total at the rate.
        #[test]
        fn quotes_add_up(
            lines in proptest::collection::vec((0usize..4, 1u64..500), 1..25),
            tier in proptest::sample::select(vec!["standard", "gold", "platinum"]),
            mode in proptest::sample::select(Rounding::ALL.to_vec()),
        ) {
            let skus = ["basic", "pro", "vol", "grad"];
            let req = QuoteRequest {
                tier: tier.to_owned(),
                lines: lines.iter().map(|&(i, q)| LineRequest { sku: skus[i].to_owned(), quantity: q }).collect(),
                rounding: mode,
            };
            let quote = match price(req, &catalog(), &PricingContext::default()) {
                Ok(quote) => quote,
                Err(Error::TierRestricted { .. }) => return Ok(()),
                Err(other) => return Err(proptest::test_runner::TestCaseError::fail(other.to_string())),
            };
            let total: u64 = quote.lines.iter().map(|l| l.total.get()).sum();
            let subtotal: u64 = quote.lines.iter().map(|l| l.subtotal.get()).sum();
            let discount: u64 = quote.lines.iter().map(|l| l.discount.get()).sum();
            proptest::prop_assert_eq!(quote.total.get(), total);
            proptest::prop_assert_eq!(quote.subtotal.get(), subtotal);
            proptest::prop_assert_eq!(quote.discount.get(), discount);
            for line in &quote.lines {
                let bands: u64 = line.bands.iter().map(|b| b.amount.get()).sum();
                proptest::prop_assert_eq!(bands, line.subtotal.get());
                proptest::prop_assert_eq!(line.subtotal.get() - line.discount.get(), line.total.get());
            }
            let cents = u64::try_from(quote.total_money.amount().mantissa()).unwrap_or(u64::MAX);
            proptest::prop_assert_eq!(cents, total);
        }
    }

    /// A product priced by `pricing`, with the given bands or package terms.
    fn product(sku: &str, pricing: PricingModel) -> ProductSpec {
        ProductSpec {
            sku: sku.to_owned(),
            name: format!("{sku} product"),
            base_price: None,
            pricing,
            bands: None,
            package_size: None,
            package_price: None,
            free_units: None,
            tiers: None,
        }
    }

    fn fee_band(up_to: Option<u64>, price: u64, fee: u64) -> Band {
        Band {
            flat_fee: credits(fee),
            ..band(up_to, price)
        }
    }

    fn package(sku: &str, size: u64, price: u64, free: Option<u64>) -> ProductSpec {
        ProductSpec {
            package_size: Some(size),
            package_price: Some(credits(price)),
            free_units: free,
            ..product(sku, PricingModel::Package)
        }
    }

    fn banded(sku: &str, pricing: PricingModel, bands: Vec<Band>) -> ProductSpec {
        ProductSpec {
            bands: Some(bands),
            ..product(sku, pricing)
        }
    }

    /// The subtotal of `quantity` units of `sku` (standard tier: no discount).
    fn subtotal_of(catalog: &Catalog, sku: &str, quantity: u64) -> u64 {
        price(
            request("standard", &[(sku, quantity)]),
            catalog,
            &PricingContext::default(),
        )
        .map(|q| q.lines[0].subtotal.get())
        .unwrap_or_else(|e| panic!("{sku} × {quantity}: {e}"))
    }

    /// A quote priced before flat fees and packages existed keeps its catalog digest and its
    /// fingerprint, so it still verifies.
    #[test]
    fn earlier_quotes_keep_their_digest_and_fingerprint() {
        let quote = price(
            request("platinum", &[("basic", 2), ("grad", 12), ("vol", 5)]),
            &catalog(),
            &PricingContext::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            hex(&quote.catalog_digest),
            "d489d204ef7271fe417add7d21f76b6b82c91dc73715909c52883b71b78247ae"
        );
        assert_eq!(
            quote.fingerprint_hex(),
            "4e377947a008441b42dc3da5125fb05dab9394a4e7dc0c348809b2e7a10a3dcf"
        );
    }

    /// Stripe's tiered-pricing guide (Typographic: 1-5 fonts at 7 USD, 6-10 at 6.50 USD, 11+ at
    /// 6 USD; credits are cents), its volume table and the graduated sums of the same tiers.
    #[test]
    fn stripe_typographic_tiers() {
        let tiers = || vec![band(Some(5), 700), band(Some(10), 650), band(None, 600)];
        let catalog = Catalog::new(
            vec![
                banded("fonts-volume", PricingModel::Volume, tiers()),
                banded("fonts-graduated", PricingModel::Graduated, tiers()),
            ],
            "catalog",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for (quantity, volume, graduated) in [
            (1, 700, 700),
            (5, 3_500, 3_500),
            (6, 3_900, 4_150),
            (20, 12_000, 12_750),
            (25, 15_000, 15_750),
        ] {
            assert_eq!(
                subtotal_of(&catalog, "fonts-volume", quantity),
                volume,
                "volume × {quantity}"
            );
            assert_eq!(
                subtotal_of(&catalog, "fonts-graduated", quantity),
                graduated,
                "graduated × {quantity}"
            );
        }
    }

    /// Flat fees per band as Stripe's `flat_amount` and Lago's flat amount per range bill them:
    /// volume bills the reached band's fee once (0 units reach none), graduated the fee of every
    /// band reached, and a line of 0 units still bills a flat first band in graduated pricing.
    #[test]
    fn flat_fees_per_band() {
        // Stripe's Typographic tiers (above), given a flat fee per tier here: 1-5 at 7 USD
        // + 10 USD, 6-10 at 6.50 USD + 5 USD, 11+ at 6 USD.
        let tiers = || {
            vec![
                fee_band(Some(5), 700, 1_000),
                fee_band(Some(10), 650, 500),
                fee_band(None, 600, 0),
            ]
        };
        // A stairstep: the fee alone prices each slab.
        let stairs = vec![
            fee_band(Some(10), 0, 5_000),
            fee_band(Some(100), 0, 20_000),
            fee_band(None, 0, 50_000),
        ];
        let catalog = Catalog::new(
            vec![
                banded("v", PricingModel::Volume, tiers()),
                banded("g", PricingModel::Graduated, tiers()),
                banded("stairs", PricingModel::Volume, stairs),
            ],
            "catalog",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for (sku, quantity, subtotal) in [
            ("v", 0, 0),
            ("v", 5, 3_500 + 1_000),
            ("v", 6, 3_900 + 500),
            ("v", 11, 6_600),
            ("g", 0, 1_000),
            ("g", 1, 700 + 1_000),
            ("g", 5, 3_500 + 1_000),
            ("g", 6, 3_500 + 1_000 + 650 + 500),
            ("g", 20, 3_500 + 1_000 + 3_250 + 500 + 6_000),
            ("stairs", 0, 0),
            ("stairs", 1, 5_000),
            ("stairs", 10, 5_000),
            ("stairs", 11, 20_000),
            ("stairs", 101, 50_000),
        ] {
            assert_eq!(
                subtotal_of(&catalog, sku, quantity),
                subtotal,
                "{sku} × {quantity}"
            );
        }
        let quote = price(
            request("gold", &[("g", 6)]),
            &catalog,
            &PricingContext::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let line = &quote.lines[0];
        let uses: Vec<(u64, u64, u64, u64)> = line
            .bands
            .iter()
            .map(|b| {
                (
                    b.quantity,
                    b.unit_price.get(),
                    b.flat_fee.get(),
                    b.amount.get(),
                )
            })
            .collect();
        assert_eq!(uses, [(5, 700, 1_000, 4_500), (1, 650, 500, 1_150)]);
        // The tier discount applies to the line subtotal, fees included: 5 650 × 0.85.
        assert_eq!((line.subtotal.get(), line.total.get()), (5_650, 4_803));
    }

    /// Lago's package model: 5 USD per 100 units with the first 100 free, so 201 units cost
    /// 0 + 5 + 5 = 10 USD; and a started block is billed whole.
    #[test]
    fn package_pricing() {
        let catalog = Catalog::new(
            vec![
                package("api", 100, 500, Some(100)),
                package("sms", 1_000, 5_000, None),
            ],
            "catalog",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        for (sku, quantity, subtotal) in [
            ("api", 201, 1_000),
            ("api", 0, 0),
            ("api", 100, 0),
            ("api", 101, 500),
            ("api", 200, 500),
            ("sms", 0, 0),
            ("sms", 1, 5_000),
            ("sms", 1_000, 5_000),
            ("sms", 1_001, 10_000),
        ] {
            assert_eq!(
                subtotal_of(&catalog, sku, quantity),
                subtotal,
                "{sku} × {quantity}"
            );
        }
        let quote = price(
            request("platinum", &[("api", 201)]),
            &catalog,
            &PricingContext::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let line = &quote.lines[0];
        assert_eq!(line.pricing, PricingModel::Package);
        assert!(line.bands.is_empty());
        assert_eq!(
            line.package,
            Some(PackageUse {
                free_units: 100,
                packages: 2,
                size: 100,
                price: credits(500),
            })
        );
        assert_eq!((line.unit_price.get(), line.total.get()), (500, 700));
        // A block price times a huge count is refused, not wrapped.
        let huge = Catalog::new(vec![package("big", 1, Credits::MAX.get(), None)], "catalog")
            .unwrap_or_else(|e| panic!("{e}"));
        let err = price(
            request("gold", &[("big", 2)]),
            &huge,
            &PricingContext::default(),
        )
        .err();
        assert_eq!(err.map(|e| e.code().as_str()), Some("INVALID_INPUT"));
    }

    /// A line of 0 units is priced by its model: nothing for per-unit and package pricing.
    #[test]
    fn quantity_zero() {
        let catalog = catalog();
        for sku in ["basic", "vol", "grad"] {
            assert_eq!(subtotal_of(&catalog, sku, 0), 0, "{sku}");
        }
        let quote = price(
            request("gold", &[("grad", 0)]),
            &catalog,
            &PricingContext::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let line = &quote.lines[0];
        assert_eq!(
            (line.quantity, line.bands.len(), line.unit_price.get()),
            (0, 1, 100)
        );
    }

    /// The new fields enter the digest and the fingerprint.
    #[test]
    fn fees_and_packages_are_fingerprinted() {
        let with_fee = |fee| {
            Catalog::new(
                vec![banded(
                    "g",
                    PricingModel::Graduated,
                    vec![fee_band(None, 10, fee)],
                )],
                "catalog",
            )
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let a = with_fee(1);
        let b = with_fee(2);
        assert_ne!(a.digest(), b.digest());
        assert_ne!(a.digest(), with_fee(0).digest());
        let packaged = |free| {
            Catalog::new(vec![package("p", 10, 100, free)], "catalog")
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_ne!(packaged(None).digest(), packaged(Some(1)).digest());
        // Explicit zero free units and none are the same product.
        assert_eq!(packaged(None).digest(), packaged(Some(0)).digest());
        let fingerprint = |catalog: &Catalog, quantity| {
            price(
                request("gold", &[("g", quantity)]),
                catalog,
                &PricingContext::default(),
            )
            .map(|q| q.fingerprint_hex())
            .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_ne!(fingerprint(&a, 3), fingerprint(&b, 3));
    }

    proptest::proptest! {
        /// Flat fees only ever add: graduated pricing with fees is never below the same bands
        /// without them, and exceeds them by exactly the fees of the bands reached.
        #[test]
        fn graduated_fees_only_add(
            prices in proptest::collection::vec((1u64..50, 0u64..1_000, 0u64..5_000), 1..6),
            quantity in 0u64..400,
        ) {
            let mut floor = 0;
            let bands: Vec<Band> = prices.iter().enumerate().map(|(i, &(width, price, fee))| {
                floor += width;
                fee_band((i + 1 < prices.len()).then_some(floor), price, fee)
            }).collect();
            let bare: Vec<Band> = bands.iter().map(|b| Band { flat_fee: Credits::ZERO, ..*b }).collect();
            let catalog = Catalog::new(
                vec![banded("fees", PricingModel::Graduated, bands), banded("bare", PricingModel::Graduated, bare)],
                "catalog",
            ).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            let with = price(request("standard", &[("fees", quantity)]), &catalog, &PricingContext::default())
                .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            let without = subtotal_of(&catalog, "bare", quantity);
            // The bands reached, from the bands alone: the first, and each whose floor (the
            // previous limit) lies below the quantity.
            let mut floor = 0;
            let mut fees = 0;
            for (i, &(width, _, fee)) in prices.iter().enumerate() {
                if i == 0 || floor < quantity {
                    fees += fee;
                }
                floor += width;
            }
            proptest::prop_assert!(with.lines[0].subtotal.get() >= without);
            proptest::prop_assert_eq!(with.lines[0].subtotal.get(), without + fees);
        }

        /// A package price never falls as the quantity grows, and rises by at most one block
        /// per unit.
        #[test]
        fn package_price_is_monotone(
            size in 1u64..500,
            block in 0u64..10_000,
            free in proptest::option::of(0u64..1_000),
            quantity in 0u64..100_000,
        ) {
            let catalog = Catalog::new(vec![package("p", size, block, free)], "catalog")
                .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            let here = subtotal_of(&catalog, "p", quantity);
            let next = subtotal_of(&catalog, "p", quantity + 1);
            proptest::prop_assert!(next >= here);
            proptest::prop_assert!(next - here <= block);
        }
    }

    #[test]
    fn package_validation_names_the_field() {
        let cases: Vec<(ProductSpec, &str)> = vec![
            (
                product("x", PricingModel::Package),
                "catalog[0].packageSize",
            ),
            (
                ProductSpec {
                    package_size: Some(0),
                    ..package("x", 1, 1, None)
                },
                "catalog[0].packageSize",
            ),
            (
                ProductSpec {
                    package_size: Some(Catalog::PACKAGE_SIZE_MAX + 1),
                    ..package("x", 1, 1, None)
                },
                "catalog[0].packageSize",
            ),
            (
                ProductSpec {
                    package_price: None,
                    ..package("x", 1, 1, None)
                },
                "catalog[0].packagePrice",
            ),
            (
                ProductSpec {
                    base_price: Some(credits(1)),
                    ..package("x", 1, 1, None)
                },
                "catalog[0].basePrice",
            ),
            (
                ProductSpec {
                    bands: Some(vec![band(None, 1)]),
                    ..package("x", 1, 1, None)
                },
                "catalog[0].bands",
            ),
            (
                ProductSpec {
                    package_size: Some(10),
                    ..banded("x", PricingModel::Volume, vec![band(None, 1)])
                },
                "catalog[0].packageSize",
            ),
            (
                ProductSpec {
                    free_units: Some(10),
                    base_price: Some(credits(1)),
                    ..product("x", PricingModel::PerUnit)
                },
                "catalog[0].freeUnits",
            ),
        ];
        for (spec, field) in cases {
            match Catalog::new(vec![spec], "catalog") {
                Err(Error::InvalidInput { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn catalog_validation_names_the_field() {
        let spec = |pricing, base: Option<u64>, bands: Option<Vec<Band>>| ProductSpec {
            sku: "x".into(),
            name: "X".into(),
            base_price: base.map(credits),
            pricing,
            bands,
            package_size: None,
            package_price: None,
            free_units: None,
            tiers: None,
        };
        let cases: Vec<(ProductSpec, &str)> = vec![
            (
                spec(PricingModel::PerUnit, None, None),
                "catalog[0].basePrice",
            ),
            (
                spec(PricingModel::Volume, Some(1), None),
                "catalog[0].basePrice",
            ),
            (
                spec(PricingModel::Volume, None, Some(vec![])),
                "catalog[0].bands",
            ),
            (
                spec(PricingModel::Volume, None, Some(vec![band(Some(5), 1)])),
                "catalog[0].bands[0].upTo",
            ),
            (
                spec(
                    PricingModel::Graduated,
                    None,
                    Some(vec![band(Some(5), 1), band(Some(5), 1), band(None, 1)]),
                ),
                "catalog[0].bands[1].upTo",
            ),
            (
                spec(
                    PricingModel::Graduated,
                    None,
                    Some(vec![band(None, 1), band(None, 1)]),
                ),
                "catalog[0].bands[0].upTo",
            ),
            (
                ProductSpec {
                    sku: "bad sku".into(),
                    ..spec(PricingModel::PerUnit, Some(1), None)
                },
                "catalog[0].sku",
            ),
            (
                ProductSpec {
                    name: " ".into(),
                    ..spec(PricingModel::PerUnit, Some(1), None)
                },
                "catalog[0].name",
            ),
            (
                ProductSpec {
                    tiers: Some(vec![]),
                    ..spec(PricingModel::PerUnit, Some(1), None)
                },
                "catalog[0].tiers",
            ),
        ];
        for (spec, field) in cases {
            match Catalog::new(vec![spec], "catalog") {
                Err(Error::InvalidInput { field: got, .. }) => assert_eq!(got, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}

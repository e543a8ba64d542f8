//! Pricing a cart for a tier: line by line, with the band used, the tier discount and a stable
//! fingerprint, so that a quote made in a browser can be re-priced and checked anywhere.

use sha2::{Digest, Sha256};

use super::catalog::{hex, put_str, put_u64, Band, Catalog, Pricing, PricingModel};
use super::error::{Error, Result};
use super::money::{ConversionRate, Credits, Currency, Money, Rate};
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
}

/// The units of a line that one band priced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BandUse {
    /// Index of the band in the product's bands; `None` for per-unit pricing.
    pub band: Option<usize>,
    pub up_to: Option<u64>,
    pub quantity: u64,
    pub unit_price: Credits,
    pub amount: Credits,
}

/// A priced line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteLine {
    pub sku: String,
    pub name: String,
    pub quantity: u64,
    pub pricing: PricingModel,
    /// The unit price of the last unit on the line: the base price, the volume band's price, or
    /// the price of the highest graduated band reached.
    pub unit_price: Credits,
    pub bands: Vec<BandUse>,
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
    if line.quantity == 0 || line.quantity > QuoteRequest::QUANTITY_MAX {
        return Err(Error::invalid(
            field("quantity"),
            format!(
                "quantity must be within 1..={}, got {}",
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
    let (bands, unit_price) = match &product.pricing {
        Pricing::PerUnit { base_price } => {
            let amount = base_price.checked_mul(line.quantity).ok_or_else(overflow)?;
            let only = BandUse {
                band: None,
                up_to: None,
                quantity: line.quantity,
                unit_price: *base_price,
                amount,
            };
            (vec![only], *base_price)
        }
        Pricing::Volume { bands } => {
            let (band_index, band) = band_for(bands, line.quantity).ok_or_else(overflow)?;
            let amount = band
                .unit_price
                .checked_mul(line.quantity)
                .ok_or_else(overflow)?;
            let used = BandUse {
                band: Some(band_index),
                up_to: band.up_to,
                quantity: line.quantity,
                unit_price: band.unit_price,
                amount,
            };
            (vec![used], band.unit_price)
        }
        Pricing::Graduated { bands } => graduated(bands, line.quantity).ok_or_else(overflow)?,
    };
    let mut subtotal = Credits::ZERO;
    for used in &bands {
        subtotal = subtotal.checked_add(used.amount).ok_or_else(overflow)?;
    }
    let total = tier_cost(subtotal, discount_rate, request.rounding);
    Ok(QuoteLine {
        sku: product.sku.clone(),
        name: product.name.clone(),
        quantity: line.quantity,
        pricing: product.pricing.model(),
        unit_price,
        bands,
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

fn graduated(bands: &[Band], quantity: u64) -> Option<(Vec<BandUse>, Credits)> {
    let mut uses = Vec::new();
    let mut floor = 0u64;
    let mut unit_price = Credits::ZERO;
    for (index, band) in bands.iter().enumerate() {
        if floor >= quantity {
            break;
        }
        let ceiling = band.up_to.map_or(quantity, |up_to| up_to.min(quantity));
        let in_band = ceiling - floor;
        uses.push(BandUse {
            band: Some(index),
            up_to: band.up_to,
            quantity: in_band,
            unit_price: band.unit_price,
            amount: band.unit_price.checked_mul(in_band)?,
        });
        unit_price = band.unit_price;
        floor = ceiling;
    }
    Some((uses, unit_price))
}

/// SHA-256 over the canonical form of catalog digest, pricing context, request and result.
fn fingerprint(quote: &Quote, context: &PricingContext) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"ally-quote-v1\0");
    hasher.update(quote.catalog_digest);
    put_str(&mut hasher, &quote.request.tier);
    put_str(&mut hasher, quote.request.rounding.as_str());
    put_str(&mut hasher, context.currency.code());
    put_u64(&mut hasher, u64::from(context.currency.scale()));
    put_u64(&mut hasher, context.conversion.get());
    put_u64(&mut hasher, u64::from(quote.discount_rate.units()));
    put_u64(&mut hasher, quote.lines.len() as u64);
    for line in &quote.lines {
        put_str(&mut hasher, &line.sku);
        put_u64(&mut hasher, line.quantity);
        put_u64(&mut hasher, line.subtotal.get());
        put_u64(&mut hasher, line.total.get());
    }
    put_u64(&mut hasher, quote.subtotal.get());
    put_u64(&mut hasher, quote.total.get());
    put_str(&mut hasher, &quote.total_money.to_string());
    hasher.finalize().into()
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
    use crate::domain::catalog::ProductSpec;

    fn credits(value: u64) -> Credits {
        Credits::new(value).unwrap_or_default()
    }

    fn band(up_to: Option<u64>, price: u64) -> Band {
        Band {
            up_to,
            unit_price: credits(price),
        }
    }

    fn catalog() -> Catalog {
        let per_unit = |sku: &str, price: u64, tiers: Option<Vec<&str>>| ProductSpec {
            sku: sku.to_owned(),
            name: format!("{sku} licence"),
            base_price: Some(credits(price)),
            pricing: PricingModel::PerUnit,
            bands: None,
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
                request("gold", &[("basic", 0)]),
                "INVALID_INPUT",
                "request.lines[0].quantity: quantity must be within 1..=1000000000, got 0",
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

    #[test]
    fn catalog_validation_names_the_field() {
        let spec = |pricing, base: Option<u64>, bands: Option<Vec<Band>>| ProductSpec {
            sku: "x".into(),
            name: "X".into(),
            base_price: base.map(credits),
            pricing,
            bands,
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

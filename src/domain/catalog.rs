//! Products a reseller may sell, with their pricing models and tier restrictions.
//!
//! A catalog is validated once and carries a digest of its canonical form, so a quote can name the
//! exact catalog it was priced against without hashing every product again.

use std::fmt;

use sha2::{Digest, Sha256};

use super::decimal;
use super::error::{Error, Result};
use super::money::Credits;
use super::tier::TierName;

/// How a product's unit price follows from the quantity on a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PricingModel {
    /// Every unit at the base price.
    PerUnit,
    /// The band the whole quantity reaches sets the unit price for all units.
    Volume,
    /// Each band prices the units that fall into it.
    Graduated,
    /// A price per started block of units, after optional free units.
    Package,
}

impl PricingModel {
    pub const ALL: [Self; 4] = [Self::PerUnit, Self::Volume, Self::Graduated, Self::Package];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PerUnit => "perUnit",
            Self::Volume => "volume",
            Self::Graduated => "graduated",
            Self::Package => "package",
        }
    }

    pub fn parse(name: &str, field: &str) -> Result<Self> {
        match name {
            "perUnit" => Ok(Self::PerUnit),
            "volume" => Ok(Self::Volume),
            "graduated" => Ok(Self::Graduated),
            "package" => Ok(Self::Package),
            other => Err(Error::invalid(
                field,
                format!(
                    "pricing must be \"perUnit\", \"volume\", \"graduated\" or \"package\", got \"{}\"",
                    decimal::printable(other)
                ),
            )),
        }
    }
}

impl fmt::Display for PricingModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A quantity band: units up to and including `up_to` (`None`: without end) at `unit_price`
/// each, plus `flat_fee` once when the band is billed (Stripe's `flat_amount`, Lago's flat amount
/// per range): in volume pricing the fee of the band the quantity reaches, in graduated pricing
/// the fee of every band units fall into, and of the first band even for 0 units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Band {
    pub up_to: Option<u64>,
    pub unit_price: Credits,
    pub flat_fee: Credits,
}

/// Package pricing: `price` per started block of `size` units, after the first `free_units`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Package {
    /// At least 1.
    pub size: u64,
    pub price: Credits,
    pub free_units: u64,
}

impl Package {
    /// The blocks billed for `quantity` units: the units past the free ones, rounded up to whole
    /// blocks.
    #[must_use]
    pub const fn packages(&self, quantity: u64) -> u64 {
        quantity.saturating_sub(self.free_units).div_ceil(self.size)
    }
}

/// How a product is priced: a flat unit price, bands, or packages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pricing {
    PerUnit { base_price: Credits },
    Volume { bands: Vec<Band> },
    Graduated { bands: Vec<Band> },
    Package(Package),
}

impl Pricing {
    /// Whether the catalog digest needs its second encoding: a flat fee or a package, which
    /// the first cannot say. A catalog without either keeps the digest it always had.
    fn is_extended(&self) -> bool {
        match self {
            Self::PerUnit { .. } => false,
            Self::Volume { bands } | Self::Graduated { bands } => {
                bands.iter().any(|b| b.flat_fee != Credits::ZERO)
            }
            Self::Package(_) => true,
        }
    }
}

impl Pricing {
    #[must_use]
    pub fn model(&self) -> PricingModel {
        match self {
            Self::PerUnit { .. } => PricingModel::PerUnit,
            Self::Volume { .. } => PricingModel::Volume,
            Self::Graduated { .. } => PricingModel::Graduated,
            Self::Package(_) => PricingModel::Package,
        }
    }
}

/// A product as a host describes it, before validation.
#[derive(Clone, Debug)]
pub struct ProductSpec {
    pub sku: String,
    pub name: String,
    pub base_price: Option<Credits>,
    pub pricing: PricingModel,
    pub bands: Option<Vec<Band>>,
    /// For package pricing: units per block, the price of a block, free units first.
    pub package_size: Option<u64>,
    pub package_price: Option<Credits>,
    pub free_units: Option<u64>,
    /// Tiers allowed to sell the product; `None` means every tier.
    pub tiers: Option<Vec<String>>,
}

/// A validated product.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
    pub sku: String,
    pub name: String,
    pub pricing: Pricing,
    /// Sorted and without duplicates.
    pub tiers: Option<Vec<TierName>>,
}

impl Product {
    /// Whether a reseller of `tier` may sell this product.
    #[must_use]
    pub fn sellable_by(&self, tier: &str) -> bool {
        self.tiers
            .as_ref()
            .is_none_or(|tiers| tiers.binary_search_by(|t| t.as_str().cmp(tier)).is_ok())
    }
}

/// A validated set of products, sorted by SKU, with the digest of its canonical form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Catalog {
    products: Vec<Product>,
    digest: [u8; 32],
}

impl Catalog {
    pub const PRODUCTS_MAX: usize = 10_000;
    pub const BANDS_MAX: usize = 32;
    pub const SKU_LEN_MAX: usize = 64;
    pub const NAME_LEN_MAX: usize = 200;
    /// The largest block of package pricing: the largest quantity a quote line takes.
    pub const PACKAGE_SIZE_MAX: u64 = 1_000_000_000;
    /// The most free units of package pricing: more would make every quantity free.
    pub const FREE_UNITS_MAX: u64 = 1_000_000_000;

    /// Validates products; `field` prefixes error paths (`catalog[3].bands[1].upTo`).
    pub fn new(specs: Vec<ProductSpec>, field: &str) -> Result<Self> {
        if specs.len() > Self::PRODUCTS_MAX {
            return Err(Error::invalid(
                field,
                format!(
                    "a catalog holds at most {} products, got {}",
                    Self::PRODUCTS_MAX,
                    specs.len()
                ),
            ));
        }
        let mut products = Vec::with_capacity(specs.len());
        for (index, spec) in specs.into_iter().enumerate() {
            products.push((index, validate_product(spec, &format!("{field}[{index}]"))?));
        }
        // Unstable is enough: (sku, index) pairs are unique.
        products.sort_unstable_by(|(i, a), (j, b)| a.sku.cmp(&b.sku).then(i.cmp(j)));
        if let Some(pair) = products
            .windows(2)
            .find(|pair| pair[0].1.sku == pair[1].1.sku)
        {
            return Err(Error::invalid(
                format!("{field}[{}].sku", pair[1].0),
                format!("SKU \"{}\" appears twice in the catalog", pair[1].1.sku),
            ));
        }
        let products: Vec<Product> = products.into_iter().map(|(_, p)| p).collect();
        let digest = digest_products(&products);
        Ok(Self { products, digest })
    }

    pub fn get(&self, sku: &str) -> Option<&Product> {
        self.products
            .binary_search_by(|p| p.sku.as_str().cmp(sku))
            .ok()
            .map(|at| &self.products[at])
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.products.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }

    pub fn products(&self) -> impl Iterator<Item = &Product> {
        self.products.iter()
    }

    /// SHA-256 of the catalog's canonical form.
    #[must_use]
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    #[must_use]
    pub fn digest_hex(&self) -> String {
        hex(&self.digest)
    }
}

fn validate_product(mut spec: ProductSpec, at: &str) -> Result<Product> {
    let sku_ok = !spec.sku.is_empty()
        && spec.sku.len() <= Catalog::SKU_LEN_MAX
        && spec
            .sku
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if !sku_ok {
        return Err(Error::invalid(
            format!("{at}.sku"),
            format!(
                "a SKU is 1-{} letters, digits, '-', '_', '.' or ':'; got \"{}\"",
                Catalog::SKU_LEN_MAX,
                decimal::printable(&spec.sku)
            ),
        ));
    }
    let name_len = spec.name.chars().count();
    if spec.name.trim().is_empty() || name_len > Catalog::NAME_LEN_MAX {
        return Err(Error::invalid(
            format!("{at}.name"),
            format!(
                "a product name is 1-{} characters and not blank",
                Catalog::NAME_LEN_MAX
            ),
        ));
    }
    let pricing = pricing(&mut spec, at)?;
    let tiers = match spec.tiers {
        None => None,
        Some(names) => {
            let mut set = Vec::with_capacity(names.len());
            for (index, name) in names.iter().enumerate() {
                set.push(TierName::parse(name, &format!("{at}.tiers[{index}]"))?);
            }
            set.sort_unstable();
            set.dedup();
            if set.is_empty() {
                return Err(Error::invalid(
                    format!("{at}.tiers"),
                    "an empty tier list would make the product unsellable; omit it to allow every tier",
                ));
            }
            Some(set)
        }
    };
    Ok(Product {
        sku: spec.sku,
        name: spec.name,
        pricing,
        tiers,
    })
}

/// The product's pricing from the fields its model takes; a field of another model is refused,
/// so that a catalog never carries a price that prices nothing.
fn pricing(spec: &mut ProductSpec, at: &str) -> Result<Pricing> {
    let model = spec.pricing;
    let refuse = |field: &str, reason: String| Err(Error::invalid(format!("{at}.{field}"), reason));
    let package_fields = [
        ("packageSize", spec.package_size.is_some()),
        ("packagePrice", spec.package_price.is_some()),
        ("freeUnits", spec.free_units.is_some()),
    ];
    if model != PricingModel::Package {
        if let Some((field, _)) = package_fields.iter().find(|(_, given)| *given) {
            return refuse(
                field,
                format!("{model} pricing takes no {field}; it is for \"package\" pricing"),
            );
        }
    }
    match model {
        PricingModel::PerUnit => match (spec.base_price, &spec.bands) {
            (Some(base_price), None) => Ok(Pricing::PerUnit { base_price }),
            (None, _) => refuse(
                "basePrice",
                "perUnit pricing needs a basePrice in credits".to_owned(),
            ),
            (Some(_), Some(_)) => refuse(
                "bands",
                "perUnit pricing takes no bands; use \"volume\" or \"graduated\"".to_owned(),
            ),
        },
        PricingModel::Volume | PricingModel::Graduated => {
            if spec.base_price.is_some() {
                return refuse(
                    "basePrice",
                    format!("{model} pricing takes its unit prices from bands; drop basePrice"),
                );
            }
            let bands = validate_bands(spec.bands.take().unwrap_or_default(), model, at)?;
            Ok(if model == PricingModel::Volume {
                Pricing::Volume { bands }
            } else {
                Pricing::Graduated { bands }
            })
        }
        PricingModel::Package => {
            if spec.base_price.is_some() {
                return refuse(
                    "basePrice",
                    "package pricing takes packagePrice, the price of one block; drop basePrice"
                        .to_owned(),
                );
            }
            if spec.bands.is_some() {
                return refuse("bands", "package pricing takes no bands".to_owned());
            }
            let size = match spec.package_size {
                Some(size) if (1..=Catalog::PACKAGE_SIZE_MAX).contains(&size) => size,
                other => {
                    return refuse(
                        "packageSize",
                        match other {
                            None => {
                                "package pricing needs a packageSize (units per block)".to_owned()
                            }
                            Some(size) => format!(
                                "packageSize must be within 1..={}, got {size}",
                                Catalog::PACKAGE_SIZE_MAX
                            ),
                        },
                    )
                }
            };
            let Some(price) = spec.package_price else {
                return refuse(
                    "packagePrice",
                    "package pricing needs a packagePrice in credits".to_owned(),
                );
            };
            let free_units = spec.free_units.unwrap_or(0);
            if free_units > Catalog::FREE_UNITS_MAX {
                return refuse(
                    "freeUnits",
                    format!(
                        "freeUnits must be within 0..={}, got {free_units}",
                        Catalog::FREE_UNITS_MAX
                    ),
                );
            }
            Ok(Pricing::Package(Package {
                size,
                price,
                free_units,
            }))
        }
    }
}

fn validate_bands(bands: Vec<Band>, model: PricingModel, at: &str) -> Result<Vec<Band>> {
    if bands.is_empty() || bands.len() > Catalog::BANDS_MAX {
        return Err(Error::invalid(
            format!("{at}.bands"),
            format!(
                "{model} pricing needs 1-{} bands, got {}",
                Catalog::BANDS_MAX,
                bands.len()
            ),
        ));
    }
    let last = bands.len() - 1;
    let mut floor = 0u64;
    for (index, band) in bands.iter().enumerate() {
        match band.up_to {
            Some(up_to) if index == last => {
                return Err(Error::invalid(
                    format!("{at}.bands[{index}].upTo"),
                    format!("the last band must be open-ended (upTo: null), got {up_to}"),
                ))
            }
            Some(up_to) if up_to <= floor => {
                return Err(Error::invalid(
                    format!("{at}.bands[{index}].upTo"),
                    format!("band limits must rise: {up_to} does not exceed {floor}"),
                ))
            }
            Some(up_to) => floor = up_to,
            None if index != last => {
                return Err(Error::invalid(
                    format!("{at}.bands[{index}].upTo"),
                    "only the last band may be open-ended",
                ))
            }
            None => {}
        }
    }
    Ok(bands)
}

/// Canonical bytes of every product, in SKU order, hashed. A catalog with a flat fee or a package
/// is hashed in a second encoding (its own prefix, every band's fee, the package's fields): one
/// without them keeps the digest of the first, so quotes priced before still verify.
fn digest_products(products: &[Product]) -> [u8; 32] {
    let extended = products.iter().any(|p| p.pricing.is_extended());
    let mut bytes = Vec::with_capacity(64 * products.len());
    bytes.extend_from_slice(if extended {
        b"ally-catalog-v2\0"
    } else {
        b"ally-catalog-v1\0"
    });
    for product in products {
        put_str(&mut bytes, &product.sku);
        put_str(&mut bytes, &product.name);
        put_str(&mut bytes, product.pricing.model().as_str());
        match &product.pricing {
            Pricing::PerUnit { base_price } => put_u64(&mut bytes, base_price.get()),
            Pricing::Volume { bands } | Pricing::Graduated { bands } => {
                put_u64(&mut bytes, bands.len() as u64);
                for band in bands {
                    put_u64(&mut bytes, band.up_to.map_or(u64::MAX, |q| q));
                    put_u64(&mut bytes, band.unit_price.get());
                    if extended {
                        put_u64(&mut bytes, band.flat_fee.get());
                    }
                }
            }
            Pricing::Package(package) => {
                put_u64(&mut bytes, package.size);
                put_u64(&mut bytes, package.price.get());
                put_u64(&mut bytes, package.free_units);
            }
        }
        match &product.tiers {
            None => put_u64(&mut bytes, u64::MAX),
            Some(tiers) => {
                put_u64(&mut bytes, tiers.len() as u64);
                for tier in tiers {
                    put_str(&mut bytes, tier.as_str());
                }
            }
        }
    }
    Sha256::digest(&bytes).into()
}

/// Length-prefixed, so that no two different inputs share an encoding. The canonical bytes are
/// gathered and hashed once: one hasher call per field costs more than the hashing.
pub(crate) fn put_str(bytes: &mut Vec<u8>, text: &str) {
    put_u64(bytes, text.len() as u64);
    bytes.extend_from_slice(text.as_bytes());
}

pub(crate) fn put_u64(bytes: &mut Vec<u8>, value: u64) {
    bytes.extend_from_slice(&value.to_le_bytes());
}

/// Lowercase hexadecimal.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

//! Boundary values: credits, money, rates and currencies. Each can only be built valid, so inner
//! code never re-checks them.

use std::fmt;

use rust_decimal::Decimal;

use super::decimal::{self, ParsedDecimal};
use super::error::{Error, Result};
use super::rounding::Rounding;

/// Whole credits, from 0 to 2^53 − 1 (the largest integer a JS `number` holds exactly).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Credits(u64);

impl Credits {
    /// 2^53 − 1, `Number.MAX_SAFE_INTEGER`.
    pub const MAX: Self = Self((1 << 53) - 1);
    pub const ZERO: Self = Self(0);

    /// `None` beyond [`Credits::MAX`].
    #[inline(always)]
    #[must_use]
    pub const fn new(value: u64) -> Option<Self> {
        if value <= Self::MAX.0 {
            Some(Self(value))
        } else {
            None
        }
    }

    /// Reads a JS number: finite, whole, not negative (nor -0), at most 2^53 − 1.
    pub fn from_f64(value: f64, field: &str) -> Result<Self> {
        if !value.is_finite() {
            return Err(Error::invalid(
                field,
                format!("expected whole credits, got {}", decimal::js_number(value)),
            ));
        }
        if value < 0.0 || (value == 0.0 && value.is_sign_negative()) {
            return Err(Error::invalid(
                field,
                format!(
                    "credits must not be negative, got {}",
                    decimal::js_number(value)
                ),
            ));
        }
        if value.fract() != 0.0 {
            return Err(Error::invalid(
                field,
                format!(
                    "credits are whole units, got a fraction: {}",
                    decimal::js_number(value)
                ),
            ));
        }
        if value > Self::MAX.0 as f64 {
            return Err(Error::invalid(
                field,
                format!(
                    "credits must be at most 9007199254740991 (2^53 - 1), got {}",
                    decimal::js_number(value)
                ),
            ));
        }
        // Finite, whole and within 0..=2^53-1: the cast is exact.
        Ok(Self(value as u64))
    }

    /// The hot-path check: `Some` exactly when [`Credits::from_f64`] would succeed.
    #[inline(always)]
    #[must_use]
    pub fn from_f64_exact(value: f64) -> Option<Self> {
        let whole = value >= 0.0 && value <= Self::MAX.0 as f64 && value.trunc() == value;
        let negative_zero = value == 0.0 && value.is_sign_negative();
        if whole && !negative_zero {
            Some(Self(value as u64))
        } else {
            None
        }
    }

    /// Reads a JS bigint (already narrowed to i128 by the caller).
    pub fn from_i128(value: i128, field: &str) -> Result<Self> {
        if value < 0 {
            return Err(Error::invalid(
                field,
                format!("credits must not be negative, got {value}n"),
            ));
        }
        u64::try_from(value)
            .ok()
            .and_then(Self::new)
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    format!("credits must be at most 9007199254740991 (2^53 - 1), got {value}n"),
                )
            })
    }

    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The value as a JS number (exact, since it is at most 2^53 − 1).
    #[must_use]
    pub const fn as_f64(self) -> f64 {
        self.0 as f64
    }

    #[must_use]
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).and_then(Self::new)
    }

    #[must_use]
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }

    #[must_use]
    pub fn checked_mul(self, factor: u64) -> Option<Self> {
        self.0.checked_mul(factor).and_then(Self::new)
    }
}

impl fmt::Display for Credits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A rate in [0, 1] with at most 4 decimals, held in ten-thousandths (`0.15` is 1500).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(u16);

impl Rate {
    /// Fraction digits a rate may carry.
    pub const SCALE: u32 = 4;
    /// 10^SCALE: the denominator of `units`.
    pub const ONE_UNITS: u16 = 10_000;
    pub const ZERO: Self = Self(0);
    pub const ONE: Self = Self(Self::ONE_UNITS);

    /// A rate from ten-thousandths; `None` above 1.
    #[must_use]
    pub const fn from_units(units: u16) -> Option<Self> {
        if units <= Self::ONE_UNITS {
            Some(Self(units))
        } else {
            None
        }
    }

    pub fn parse(text: &str, field: &str) -> Result<Self> {
        let parsed =
            decimal::parse(text, Self::SCALE).map_err(|reason| Error::invalid(field, reason))?;
        Self::from_parsed(parsed, field)
    }

    pub fn from_f64(value: f64, field: &str) -> Result<Self> {
        let parsed = decimal::from_f64(value, Self::SCALE)
            .map_err(|reason| Error::invalid(field, reason))?;
        Self::from_parsed(parsed, field)
    }

    fn from_parsed(parsed: ParsedDecimal, field: &str) -> Result<Self> {
        parsed
            .mantissa_at(Self::SCALE)
            .and_then(|units| u16::try_from(units).ok())
            .and_then(Self::from_units)
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    format!("a rate must be within [0, 1], got {}", parsed.to_decimal()),
                )
            })
    }

    /// Ten-thousandths: 0.15 is 1500.
    #[must_use]
    pub const fn units(self) -> u16 {
        self.0
    }

    #[must_use]
    pub fn to_decimal(self) -> Decimal {
        Decimal::new(i64::from(self.0), Self::SCALE)
    }

    /// `1 - self`, the share a buyer pays after this discount.
    #[must_use]
    pub const fn complement(self) -> Self {
        Self(Self::ONE_UNITS - self.0)
    }
}

impl fmt::Display for Rate {
    /// Always four decimals: `0.1500`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:04}",
            self.0 / Self::ONE_UNITS,
            self.0 % Self::ONE_UNITS
        )
    }
}

/// A currency: its ISO 4217 code and the number of fraction digits of its minor unit.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Currency {
    code: String,
    scale: u32,
}

impl Currency {
    /// The most fraction digits a currency may have.
    pub const SCALE_MAX: u32 = 6;

    /// The US dollar, the default currency.
    #[must_use]
    pub fn usd() -> Self {
        Self {
            code: "USD".to_owned(),
            scale: 2,
        }
    }

    /// A currency by code; the scale defaults from ISO 4217 for the common codes and must be given
    /// for others.
    pub fn new(code: &str, scale: Option<u32>, field: &str) -> Result<Self> {
        let well_formed = code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase());
        if !well_formed {
            return Err(Error::invalid(
                field,
                format!(
                    "a currency code is three capital letters, got \"{}\"",
                    decimal::printable(code)
                ),
            ));
        }
        let scale = match scale.or_else(|| iso_scale(code)) {
            Some(scale) if scale <= Self::SCALE_MAX => scale,
            Some(scale) => {
                return Err(Error::invalid(
                    field,
                    format!(
                        "a currency scale must be at most {}, got {scale}",
                        Self::SCALE_MAX
                    ),
                ))
            }
            None => {
                return Err(Error::invalid(
                    field,
                    format!("currency \"{code}\" has no known scale; give one explicitly"),
                ))
            }
        };
        Ok(Self {
            code: code.to_owned(),
            scale,
        })
    }

    #[must_use]
    pub fn code(&self) -> &str {
        &self.code
    }

    #[must_use]
    pub const fn scale(&self) -> u32 {
        self.scale
    }
}

/// Minor-unit digits for common ISO 4217 codes.
fn iso_scale(code: &str) -> Option<u32> {
    match code {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "XAF" | "XOF" => Some(0),
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "IQD" | "LYD" => Some(3),
        "USD" | "EUR" | "GBP" | "CAD" | "AUD" | "NZD" | "CHF" | "SEK" | "NOK" | "DKK" | "PLN"
        | "CZK" | "HUF" | "MXN" | "BRL" | "INR" | "CNY" | "HKD" | "SGD" | "ZAR" | "NGN" | "KES"
        | "GHS" | "EGP" | "AED" | "SAR" | "ILS" | "TRY" | "THB" | "MYR" | "PHP" | "IDR" => Some(2),
        _ => None,
    }
}

/// An amount of money in a currency, always at the currency's scale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// Parses a decimal string with at most the currency's fraction digits.
    pub fn parse(text: &str, currency: &Currency, field: &str) -> Result<Self> {
        let parsed =
            decimal::parse(text, currency.scale).map_err(|reason| Error::invalid(field, reason))?;
        Ok(Self::from_parsed(parsed, currency))
    }

    /// Reads a finite JS number by the decimal it prints as.
    pub fn from_f64(value: f64, currency: &Currency, field: &str) -> Result<Self> {
        let parsed = decimal::from_f64(value, currency.scale)
            .map_err(|reason| Error::invalid(field, reason))?;
        Ok(Self::from_parsed(parsed, currency))
    }

    fn from_parsed(parsed: ParsedDecimal, currency: &Currency) -> Self {
        let mut amount = parsed.to_decimal();
        amount.rescale(currency.scale);
        Self {
            amount,
            currency: currency.clone(),
        }
    }

    #[must_use]
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    #[must_use]
    pub fn currency(&self) -> &Currency {
        &self.currency
    }
}

impl fmt::Display for Money {
    /// The amount at the currency's scale, e.g. `750.00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.amount.fmt(f)
    }
}

/// How many credits make one unit of the currency (`creditConversionRate`, default 100: 100
/// credits are 1.00).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConversionRate(u64);

impl ConversionRate {
    pub const DEFAULT: Self = Self(100);
    /// A bound that keeps every conversion inside the decimal range.
    pub const MAX: u64 = 1_000_000_000;

    pub fn new(credits_per_unit: u64, field: &str) -> Result<Self> {
        if credits_per_unit == 0 || credits_per_unit > Self::MAX {
            return Err(Error::invalid(
                field,
                format!(
                    "credits per currency unit must be within 1..={}, got {credits_per_unit}",
                    Self::MAX
                ),
            ));
        }
        Ok(Self(credits_per_unit))
    }

    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Credits as money at the currency's scale: `credits / rate`, rounded under `rounding`.
    #[must_use]
    pub fn to_money(self, credits: Credits, currency: &Currency, rounding: Rounding) -> Money {
        // minor = credits * 10^scale / rate; with credits < 2^53, 10^scale <= 10^6 and the
        // quotient rounded, everything fits in i128 and the result in 28 digits.
        let factor = 10i128.pow(currency.scale);
        let minor = rounding
            .divide(i128::from(credits.get()) * factor, i128::from(self.0))
            .unwrap_or(0);
        let amount = Decimal::try_from_i128_with_scale(minor, currency.scale).unwrap_or_default();
        Money {
            amount,
            currency: currency.clone(),
        }
    }

    /// Money as whole credits: `amount * rate`, rounded under `rounding`.
    pub fn to_credits(self, money: &Money, rounding: Rounding, field: &str) -> Result<Credits> {
        let scale = money.amount.scale();
        let numerator = money
            .amount
            .mantissa()
            .checked_mul(i128::from(self.0))
            .ok_or_else(|| Error::invalid(field, "amount is too large to convert"))?;
        let credits = rounding.divide(numerator, 10i128.pow(scale)).unwrap_or(0);
        if credits < 0 {
            return Err(Error::invalid(
                field,
                format!("a negative amount ({money}) is not credits"),
            ));
        }
        u64::try_from(credits)
            .ok()
            .and_then(Credits::new)
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    format!("{money} is more than 9007199254740991 credits"),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn credits_accept_only_safe_whole_numbers() {
        let good: &[(f64, u64)] = &[
            (0.0, 0),
            (1.0, 1),
            (700.0, 700),
            (9_007_199_254_740_991.0, (1 << 53) - 1),
        ];
        for &(value, want) in good {
            assert_eq!(Credits::from_f64(value, "x").map(Credits::get), Ok(want));
        }
        for value in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -1.0,
            -0.0,
            1.5,
            9_007_199_254_740_992.0,
        ] {
            assert!(Credits::from_f64(value, "x").is_err(), "{value}");
        }
        assert_eq!(Credits::from_i128(5, "x").map(Credits::get), Ok(5));
        assert!(Credits::from_i128(-5, "x").is_err());
        assert!(Credits::from_i128(1 << 53, "x").is_err());
    }

    #[test]
    fn rates_stay_in_unit_interval_with_four_decimals() {
        let cases: &[(&str, Option<u16>)] = &[
            ("0", Some(0)),
            ("1", Some(10_000)),
            ("0.15", Some(1_500)),
            ("0.1234", Some(1_234)),
            ("1.0000", Some(10_000)),
            ("0.12345", None),
            ("1.0001", None),
            ("-0.1", None),
            ("2", None),
        ];
        for &(text, want) in cases {
            assert_eq!(Rate::parse(text, "r").ok().map(Rate::units), want, "{text}");
        }
        assert_eq!(
            Rate::from_f64(0.3, "r").map(|r| r.to_string()),
            Ok("0.3000".to_owned())
        );
        assert_eq!(Rate::ONE.complement(), Rate::ZERO);
    }

    #[test]
    fn money_keeps_the_currency_scale() {
        let usd = Currency::usd();
        assert_eq!(
            Money::parse("750", &usd, "m").map(|m| m.to_string()),
            Ok("750.00".to_owned())
        );
        assert_eq!(
            Money::parse("1999.99", &usd, "m").map(|m| m.to_string()),
            Ok("1999.99".to_owned())
        );
        assert!(Money::parse("1.999", &usd, "m").is_err());
        assert!(Money::from_f64(0.1 + 0.2, &usd, "m").is_err());
        let jpy = Currency::new("JPY", None, "c").map(|c| c.scale());
        assert_eq!(jpy, Ok(0));
        assert!(Currency::new("usd", None, "c").is_err());
        assert!(Currency::new("XYZ", None, "c").is_err());
        assert_eq!(Currency::new("XYZ", Some(3), "c").map(|c| c.scale()), Ok(3));
    }

    #[test]
    fn converts_between_credits_and_money() {
        let usd = Currency::usd();
        let rate = ConversionRate::DEFAULT;
        let cases: &[(u64, &str)] = &[
            (0, "0.00"),
            (1, "0.01"),
            (700, "7.00"),
            (123_456, "1234.56"),
        ];
        for &(credits, money) in cases {
            let credits = Credits::new(credits).unwrap_or_default();
            assert_eq!(
                rate.to_money(credits, &usd, Rounding::HalfUp).to_string(),
                money
            );
        }
        let three = ConversionRate::new(3, "r").unwrap_or(ConversionRate::DEFAULT);
        let one = Credits::new(1).unwrap_or_default();
        assert_eq!(
            three.to_money(one, &usd, Rounding::HalfUp).to_string(),
            "0.33"
        );
        assert_eq!(three.to_money(one, &usd, Rounding::Up).to_string(), "0.34");
        assert!(ConversionRate::new(0, "r").is_err());
    }

    proptest! {
        #[test]
        fn credits_to_money_to_credits_round_trips(credits in 0u64..=(1 << 53) - 1, rate in prop::sample::select(vec![1u64, 2, 4, 5, 10, 20, 25, 50, 100])) {
            // Any rate that divides 10^scale converts without loss both ways.
            let usd = Currency::usd();
            let rate = ConversionRate::new(rate, "r").unwrap_or(ConversionRate::DEFAULT);
            let credits = Credits::new(credits).unwrap_or_default();
            for mode in Rounding::ALL {
                let money = rate.to_money(credits, &usd, mode);
                prop_assert_eq!(rate.to_credits(&money, mode, "m"), Ok(credits));
            }
        }

        #[test]
        fn money_to_credits_never_drifts_more_than_half_a_unit(minor in 0i64..1_000_000_000_000, rate in 1u64..10_000) {
            let usd = Currency::usd();
            let rate = ConversionRate::new(rate, "r").unwrap_or(ConversionRate::DEFAULT);
            let money = Money { amount: Decimal::new(minor, 2), currency: usd };
            let exact = Decimal::from(rate.get()) * money.amount();
            let credits = rate.to_credits(&money, Rounding::HalfUp, "m").map(Credits::get).unwrap_or(u64::MAX);
            let drift = (Decimal::from(credits) - exact).abs();
            prop_assert!(drift <= Decimal::new(5, 1));
        }
    }
}

//! Reseller tiers and what they pay.
//!
//! The defaults come from the reference: platinum 30 % off, gold 15 %, standard 0 %. A host may add
//! tiers (`silver`) and change discounts through config; the table is validated once and is then
//! immutable.

use std::fmt;

use super::decimal;
use super::error::{Error, Result};
use super::money::{Credits, Rate};
use super::rounding::Rounding;

/// A tier name: lowercase ASCII letters, digits, `-` and `_`, starting with a letter, 1 to 32
/// characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TierName(String);

impl TierName {
    pub const LEN_MAX: usize = 32;

    pub fn parse(text: &str, field: &str) -> Result<Self> {
        let bytes = text.as_bytes();
        let well_formed = !bytes.is_empty()
            && bytes.len() <= Self::LEN_MAX
            && bytes[0].is_ascii_lowercase()
            && bytes
                .iter()
                .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !well_formed {
            return Err(Error::invalid(
                field,
                format!(
                    "a tier name is 1-{} lowercase letters, digits, '-' or '_', starting with a \
                     letter; got \"{}\"",
                    Self::LEN_MAX,
                    decimal::printable(text)
                ),
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// A name from a literal in this crate, already known to be well formed.
    pub(crate) fn from_literal(name: &'static str) -> Self {
        debug_assert!(Self::parse(name, "").is_ok());
        Self(name.to_owned())
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TierName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a tier grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tier {
    /// The share taken off the base price.
    pub discount: Rate,
}

/// The tiers in force, sorted by name. (A sorted `Vec` rather than a map: at most 64 entries,
/// and one collection type fewer in the wasm module.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierTable {
    tiers: Vec<(TierName, Tier)>,
}

impl TierTable {
    /// The most tiers a table may hold.
    pub const TIERS_MAX: usize = 64;

    /// standard 0 %, gold 15 %, platinum 30 %.
    #[must_use]
    pub fn reference() -> Self {
        let tier = |name: &'static str, units: u16| {
            (
                TierName::from_literal(name),
                Tier {
                    discount: Rate::from_units(units).unwrap_or(Rate::ZERO),
                },
            )
        };
        // Sorted by name.
        Self {
            tiers: vec![
                tier("gold", 1_500),
                tier("platinum", 3_000),
                tier("standard", 0),
            ],
        }
    }

    /// The reference table with `overrides` laid over it (new tiers added, discounts changed).
    pub fn with_overrides(overrides: Vec<(TierName, Tier)>, field: &str) -> Result<Self> {
        let mut table = Self::reference();
        for (name, tier) in overrides {
            match table.tiers.binary_search_by(|(n, _)| n.cmp(&name)) {
                Ok(at) => table.tiers[at].1 = tier,
                Err(at) => table.tiers.insert(at, (name, tier)),
            }
        }
        if table.tiers.len() > Self::TIERS_MAX {
            return Err(Error::invalid(
                field,
                format!("at most {} tiers are allowed", Self::TIERS_MAX),
            ));
        }
        Ok(table)
    }

    /// The tier of this name, or `UNKNOWN_TIER`.
    pub fn get(&self, name: &str) -> Result<(&TierName, &Tier)> {
        self.tiers
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .map(|at| (&self.tiers[at].0, &self.tiers[at].1))
            .map_err(|_| Error::UnknownTier {
                tier: decimal::printable(name),
            })
    }

    pub fn iter(&self) -> impl Iterator<Item = (&TierName, &Tier)> {
        self.tiers.iter().map(|(name, tier)| (name, tier))
    }
}

/// What a reseller of a tier with `discount` pays for `base_price`:
/// `base_price × (1 − discount)`, rounded to whole credits under `rounding` (default half-up).
///
/// Exact integer arithmetic: the discount is held in ten-thousandths, and
/// `base = q × 10 000 + r` gives `base × paid / 10 000 = q × paid + r × paid / 10 000`, where only
/// the last term needs rounding and `r × paid < 10^8` fits 32 bits. wasm has no 64-bit
/// multiply-high, so a 64-bit division by a constant stays a slow `i64.div_u` there; the split
/// estimates `q` with one float multiply (exact to ±1 below 2^53) and corrects it, and divides
/// only in 32 bits, which compiles to a multiply and a shift.
// Forced inline: the module is built for size, but this is the hot loop of `tierCostBatch`.
#[inline(always)]
#[must_use]
pub fn tier_cost(base_price: Credits, discount: Rate, rounding: Rounding) -> Credits {
    const ONE: u64 = Rate::ONE_UNITS as u64;
    let base = base_price.get();
    let paid_units = u32::from(discount.complement().units());
    let mut whole = (base as f64 * 1e-4) as u64;
    let mut rest = base.wrapping_sub(whole * ONE) as i64;
    if rest < 0 {
        whole -= 1;
        rest += ONE as i64;
    } else if rest >= ONE as i64 {
        whole += 1;
        rest -= ONE as i64;
    }
    // 0 <= rest < 10 000, so rest × paid < 10^8.
    let rest_paid = rest as u32 * paid_units;
    let quotient = whole * u64::from(paid_units) + u64::from(rest_paid / Rate::ONE_UNITS as u32);
    let remainder = u64::from(rest_paid % Rate::ONE_UNITS as u32);
    let cost = rounding.settle(quotient, remainder, ONE);
    // cost <= base_price because paid_units <= ONE.
    Credits::new(cost).unwrap_or(base_price)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn credits(value: u64) -> Credits {
        Credits::new(value).unwrap_or_default()
    }

    #[test]
    fn reference_tiers_price_as_documented() {
        let table = TierTable::reference();
        let cases: &[(u64, &str, u64)] = &[
            (1000, "platinum", 700),
            (1000, "gold", 850),
            (1000, "standard", 1000),
            (0, "platinum", 0),
            (1, "gold", 1), // 0.85 rounds half-up to 1
            (3, "gold", 3), // 2.55 → 3
            (10, "platinum", 7),
            (15, "platinum", 11), // 10.5 → 11 half-up
        ];
        for &(base, tier, want) in cases {
            let (_, found) = table
                .get(tier)
                .map_err(|e| e.to_string())
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                tier_cost(credits(base), found.discount, Rounding::HalfUp),
                credits(want),
                "{base} {tier}"
            );
        }
        assert_eq!(
            table.get("diamond").map(|_| ()),
            Err(Error::UnknownTier {
                tier: "diamond".into()
            })
        );
    }

    #[test]
    fn rounding_modes_apply_to_tier_cost() {
        let gold = Rate::from_units(1_500).unwrap_or(Rate::ZERO);
        let half = Rate::from_units(5_000).unwrap_or(Rate::ZERO);
        // 3 × 0.85 = 2.55; 5 × 0.5 = 2.5
        let cases: &[(u64, Rate, Rounding, u64)] = &[
            (3, gold, Rounding::HalfUp, 3),
            (3, gold, Rounding::Down, 2),
            (3, gold, Rounding::Up, 3),
            (3, gold, Rounding::HalfEven, 3),
            (5, half, Rounding::HalfEven, 2),
            (5, half, Rounding::HalfUp, 3),
            (7, half, Rounding::HalfEven, 4),
            // 10 005 × 0.5 = 5002.5: the even neighbour is 5002, which only the whole quotient shows.
            (10_005, half, Rounding::HalfEven, 5_002),
            (30_005, half, Rounding::HalfEven, 15_002),
            (10_015, half, Rounding::HalfEven, 5_008),
        ];
        for &(base, rate, mode, want) in cases {
            assert_eq!(
                tier_cost(credits(base), rate, mode),
                credits(want),
                "{base} {rate} {mode}"
            );
        }
    }

    #[test]
    fn overrides_add_and_change_tiers() {
        let silver = TierName::parse("silver", "t").unwrap_or_else(|e| panic!("{e}"));
        let gold = TierName::parse("gold", "t").unwrap_or_else(|e| panic!("{e}"));
        let rate = |u| Tier {
            discount: Rate::from_units(u).unwrap_or(Rate::ZERO),
        };
        let table =
            TierTable::with_overrides(vec![(silver, rate(1_000)), (gold, rate(2_000))], "tiers")
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            table.get("silver").map(|(_, t)| t.discount.units()),
            Ok(1_000)
        );
        assert_eq!(
            table.get("gold").map(|(_, t)| t.discount.units()),
            Ok(2_000)
        );
        assert_eq!(table.iter().count(), 4);
        for bad in ["", "Gold", "1st", "a b", "x".repeat(33).as_str(), "gold!"] {
            assert!(TierName::parse(bad, "t").is_err(), "{bad}");
        }
    }

    #[test]
    fn split_arithmetic_is_exact_at_the_edges() {
        let max = (1u64 << 53) - 1;
        let bases = [
            0,
            1,
            9_999,
            10_000,
            10_001,
            19_999,
            20_000,
            99_990_000,
            max - 10_000,
            max - 9_999,
            max - 1,
            max,
            1 << 52,
            (1 << 52) + 1,
        ];
        for base in bases {
            for units in [0u16, 1, 1_500, 3_000, 5_000, 9_999, 10_000] {
                let rate = Rate::from_units(units).unwrap_or(Rate::ZERO);
                let exact = i128::from(base) * i128::from(10_000 - units);
                for mode in Rounding::ALL {
                    let want = mode.divide(exact, 10_000).unwrap_or(-1);
                    assert_eq!(
                        i128::from(tier_cost(credits(base), rate, mode).get()),
                        want,
                        "{base} {units} {mode}"
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn split_arithmetic_matches_exact_division(base in 0u64..=(1 << 53) - 1, units in 0u16..=10_000) {
            let rate = Rate::from_units(units).unwrap_or(Rate::ZERO);
            let exact = i128::from(base) * i128::from(10_000 - units);
            for mode in Rounding::ALL {
                let want = mode.divide(exact, 10_000).unwrap_or(-1);
                prop_assert_eq!(i128::from(tier_cost(credits(base), rate, mode).get()), want);
            }
        }

        #[test]
        fn rounding_never_gains_or_loses_more_than_half_a_credit(base in 0u64..=(1 << 53) - 1, units in 0u16..=10_000) {
            let rate = Rate::from_units(units).unwrap_or(Rate::ZERO);
            let exact_num = u128::from(base) * u128::from(10_000 - units); // exact × 10 000
            for mode in Rounding::ALL {
                let cost = u128::from(tier_cost(credits(base), rate, mode).get()) * 10_000;
                let drift = cost.abs_diff(exact_num);
                match mode {
                    Rounding::HalfUp | Rounding::HalfEven => prop_assert!(drift <= 5_000),
                    Rounding::Up => prop_assert!(cost >= exact_num && drift < 10_000),
                    Rounding::Down => prop_assert!(cost <= exact_num && drift < 10_000),
                }
            }
        }
    }
}

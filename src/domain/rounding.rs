//! Rounding modes. Every rounding in the engine names one; defaults are documented where used.

use std::fmt;

/// How a quotient that does not come out even is brought to a whole unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Rounding {
    /// Half away from zero: 2.5 → 3, -2.5 → -3. The default for prices.
    #[default]
    HalfUp,
    /// Half to even (banker's rounding): 2.5 → 2, 3.5 → 4.
    HalfEven,
    /// Away from zero: 2.1 → 3.
    Up,
    /// Toward zero (truncate): 2.9 → 2.
    Down,
}

impl Rounding {
    pub const ALL: [Self; 4] = [Self::HalfUp, Self::HalfEven, Self::Up, Self::Down];

    /// The name a host uses: `halfUp`, `halfEven`, `up`, `down`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HalfUp => "halfUp",
            Self::HalfEven => "halfEven",
            Self::Up => "up",
            Self::Down => "down",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.as_str() == name)
    }

    /// `numerator / denominator` rounded to an integer under this mode.
    /// Returns `None` for a zero or negative denominator.
    #[must_use]
    pub fn divide(self, numerator: i128, denominator: i128) -> Option<i128> {
        if denominator <= 0 {
            return None;
        }
        // In 64 bits when both fit: a 128-bit division is a library call in wasm. Every mode
        // is symmetric about zero, so the magnitude is rounded and the sign put back.
        if let (Ok(n), Ok(d)) = (i64::try_from(numerator), u64::try_from(denominator)) {
            let magnitude = i128::from(self.settle(n.unsigned_abs() / d, n.unsigned_abs() % d, d));
            return Some(if n < 0 { -magnitude } else { magnitude });
        }
        self.divide_wide(numerator, denominator)
    }

    /// [`Rounding::divide`] in 128-bit arithmetic, `denominator` positive.
    fn divide_wide(self, numerator: i128, denominator: i128) -> Option<i128> {
        let quotient = numerator / denominator; // truncates toward zero
        let remainder = numerator % denominator; // same sign as numerator
        if remainder == 0 {
            return Some(quotient);
        }
        let away = if numerator < 0 { -1 } else { 1 };
        let twice = remainder.unsigned_abs() * 2;
        let denominator_abs = denominator.unsigned_abs();
        let round_away = match self {
            Self::Down => false,
            Self::Up => true,
            Self::HalfUp => twice >= denominator_abs,
            Self::HalfEven => {
                twice > denominator_abs || (twice == denominator_abs && quotient % 2 != 0)
            }
        };
        Some(if round_away {
            quotient + away
        } else {
            quotient
        })
    }

    /// Unsigned fast path for the pricing hot loop; same results as [`Rounding::divide`].
    #[inline]
    #[must_use]
    pub fn divide_u64(self, numerator: u64, denominator: u64) -> u64 {
        debug_assert!(denominator > 0);
        self.settle(
            numerator / denominator,
            numerator % denominator,
            denominator,
        )
    }

    /// Rounds `quotient + remainder / denominator` (with `remainder < denominator`) to an integer.
    /// Callers that split a division use this so that half-even sees the parity of the whole
    /// quotient.
    #[inline(always)]
    #[must_use]
    pub fn settle(self, quotient: u64, remainder: u64, denominator: u64) -> u64 {
        if remainder == 0 {
            return quotient;
        }
        let other = denominator - remainder;
        let round_up = match self {
            Self::Down => false,
            Self::Up => true,
            Self::HalfUp => remainder >= other,
            Self::HalfEven => remainder > other || (remainder == other && quotient % 2 == 1),
        };
        quotient + u64::from(round_up)
    }

    /// The matching `rust_decimal` strategy, for rounding decimals to a scale.
    #[must_use]
    pub const fn strategy(self) -> rust_decimal::RoundingStrategy {
        use rust_decimal::RoundingStrategy as S;
        match self {
            Self::HalfUp => S::MidpointAwayFromZero,
            Self::HalfEven => S::MidpointNearestEven,
            Self::Up => S::AwayFromZero,
            Self::Down => S::ToZero,
        }
    }
}

impl fmt::Display for Rounding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Rounding::{self, *};

    #[test]
    fn divides_under_each_mode() {
        // (numerator, denominator, halfUp, halfEven, up, down)
        let cases: &[(i128, i128, i128, i128, i128, i128)] = &[
            (25, 10, 3, 2, 3, 2),
            (35, 10, 4, 4, 4, 3),
            (21, 10, 2, 2, 3, 2),
            (29, 10, 3, 3, 3, 2),
            (-25, 10, -3, -2, -3, -2),
            (-21, 10, -2, -2, -3, -2),
            (20, 10, 2, 2, 2, 2),
            (0, 7, 0, 0, 0, 0),
            (1, 3, 0, 0, 1, 0),
            (2, 3, 1, 1, 1, 0),
        ];
        for &(n, d, half_up, half_even, up, down) in cases {
            let got: Vec<_> = Rounding::ALL.iter().map(|m| m.divide(n, d)).collect();
            assert_eq!(
                got,
                vec![Some(half_up), Some(half_even), Some(up), Some(down)],
                "{n}/{d}"
            );
            if n >= 0 {
                for mode in Rounding::ALL {
                    assert_eq!(
                        Some(i128::from(mode.divide_u64(n as u64, d as u64))),
                        mode.divide(n, d),
                        "{mode} {n}/{d}"
                    );
                }
            }
        }
        assert_eq!(HalfUp.divide(1, 0), None);
    }

    proptest::proptest! {
        #[test]
        fn the_64_bit_division_gives_the_128_bit_one(
            n in proptest::num::i64::ANY,
            d in proptest::prop_oneof![1i64..20_000, 1i64..=i64::MAX],
        ) {
            for mode in [Rounding::HalfUp, Rounding::HalfEven, Rounding::Up, Rounding::Down] {
                proptest::prop_assert_eq!(
                    mode.divide(i128::from(n), i128::from(d)),
                    mode.divide_wide(i128::from(n), i128::from(d))
                );
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for mode in Rounding::ALL {
            assert_eq!(Rounding::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(Rounding::parse("HALF_UP"), None);
        assert_eq!(Down.to_string(), "down");
        assert_eq!(HalfEven.as_str(), "halfEven");
        assert_eq!(Up.as_str(), "up");
    }
}

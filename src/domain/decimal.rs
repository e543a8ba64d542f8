//! Our own decimal grammar for values that cross the boundary.
//!
//! `rust_decimal`'s `from_str` accepts `1e18` and `1_000` and silently rounds past 28 digits; a
//! money field must do none of that. The grammar here is deliberately small:
//!
//! ```text
//! decimal  = ["-"] integer ["." fraction]
//! integer  = "0" | nonzero digit*
//! fraction = digit+
//! ```
//!
//! No `+`, no exponent, no `_`, no blanks, no hex, no leading zeros, at most 28 digits in all, and
//! at most the caller's number of fraction digits. Nothing is ever rounded while parsing.

use rust_decimal::Decimal;

/// The most digits a decimal may carry (rust_decimal's 96-bit mantissa holds 28 in full).
pub const DIGITS_MAX: u32 = 28;

/// A parsed decimal: `mantissa / 10^scale`, exactly as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParsedDecimal {
    pub mantissa: i128,
    pub scale: u32,
}

impl ParsedDecimal {
    #[must_use]
    pub fn to_decimal(self) -> Decimal {
        // Both bounds were checked while parsing: |mantissa| < 10^28 < 2^96 and scale <= 28.
        Decimal::try_from_i128_with_scale(self.mantissa, self.scale).unwrap_or(Decimal::ZERO)
    }

    /// The value rescaled to exactly `scale` fraction digits (never rounds: `scale` must be at
    /// least the parsed scale, which the parser guaranteed via `scale_max`).
    #[must_use]
    pub fn mantissa_at(self, scale: u32) -> Option<i128> {
        let shift = scale.checked_sub(self.scale)?;
        10i128
            .checked_pow(shift)
            .and_then(|factor| self.mantissa.checked_mul(factor))
    }
}

/// Parses `text` under the grammar above, with at most `scale_max` fraction digits.
/// The error is a sentence fit to follow the field name.
pub fn parse(text: &str, scale_max: u32) -> Result<ParsedDecimal, String> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err("expected a decimal string, got an empty string".to_owned());
    }
    let (negative, digits) = match bytes[0] {
        b'-' => (true, &bytes[1..]),
        _ => (false, bytes),
    };
    let dot = digits.iter().position(|&b| b == b'.');
    let (int_part, frac_part) = match dot {
        Some(at) => (&digits[..at], &digits[at + 1..]),
        None => (digits, &digits[digits.len()..]),
    };
    let all_digits = |part: &[u8]| part.iter().all(u8::is_ascii_digit);
    if int_part.is_empty()
        || !all_digits(int_part)
        || !all_digits(frac_part)
        || (dot.is_some() && frac_part.is_empty())
    {
        return Err(format!(
            "\"{}\" is not a plain decimal (digits, an optional leading '-', an optional '.' \
             followed by digits; no exponent, '_', '+', blanks or hex)",
            printable(text)
        ));
    }
    if int_part.len() > 1 && int_part[0] == b'0' {
        return Err(format!("\"{}\" has a leading zero", printable(text)));
    }
    let scale = u32::try_from(frac_part.len()).unwrap_or(u32::MAX);
    if scale > scale_max {
        return Err(format!(
            "\"{}\" has {scale} fraction digits; at most {scale_max} are allowed",
            printable(text)
        ));
    }
    let significant = int_part.iter().skip_while(|&&b| b == b'0').count() + frac_part.len();
    if significant > DIGITS_MAX as usize {
        return Err(format!(
            "\"{}\" has more than {DIGITS_MAX} digits",
            printable(text)
        ));
    }
    let mut mantissa: i128 = 0;
    for &b in int_part.iter().chain(frac_part) {
        // At most 28 significant digits (plus leading zeros) were checked above: no overflow.
        mantissa = mantissa * 10 + i128::from(b - b'0');
    }
    if negative {
        mantissa = -mantissa;
    }
    Ok(ParsedDecimal { mantissa, scale })
}

/// A JS number as the decimal it prints as: the shortest form that reads back to the same double.
/// `0.1 + 0.2` becomes `0.30000000000000004`, which a money field then refuses for its fraction
/// digits. Very large or very small numbers print with an exponent and are refused: such amounts
/// belong in decimal strings.
pub fn from_f64(value: f64, scale_max: u32) -> Result<ParsedDecimal, String> {
    if !value.is_finite() || (value == 0.0 && value.is_sign_negative()) {
        return Err(format!(
            "expected a finite number, got {}",
            js_number(value)
        ));
    }
    parse(&js_number(value), scale_max)
        .map_err(|reason| format!("{reason}; pass large or precise amounts as decimal strings"))
}

/// How JavaScript would print a number, for messages: the shortest round-tripping form. (The
/// shortest-form printer of serde_json's serializer, which the module links anyway, is used
/// instead of `f64`'s `Display`, whose own float formatting would add ~20 KB to the wasm.)
#[must_use]
pub fn js_number(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 {
        return (value as i64).to_string();
    }
    // The shortest digits that read back to the same double (serde_json's printer), laid out
    // the way ECMAScript's Number::toString lays them out.
    let text = serde_json::to_string(&value).unwrap_or_default();
    let (sign, unsigned) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = format!("{whole}{fraction}");
    let leading = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_start_matches('0').trim_end_matches('0');
    if digits.is_empty() {
        return "0".to_owned();
    }
    // value = 0.d1d2…dk × 10^n
    let k = digits.len() as i32;
    let n = whole.len() as i32 - leading as i32 + exponent;
    let out = if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let e = n - 1;
        let exp = if e >= 0 {
            format!("+{e}")
        } else {
            e.to_string()
        };
        if k == 1 {
            format!("{digits}e{exp}")
        } else {
            format!("{}.{}e{exp}", &digits[..1], &digits[1..])
        }
    };
    format!("{sign}{out}")
}

/// `value` in units of `10^-scale` as decimal text: `(12345, 2)` is `"123.45"`, `(-5, 2)` is
/// `"-0.05"`.
#[must_use]
pub fn units_text(value: i64, scale: u32) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let magnitude = value.unsigned_abs();
    if scale == 0 {
        return format!("{sign}{magnitude}");
    }
    let unit = 10u64.pow(scale);
    format!(
        "{sign}{}.{:0width$}",
        magnitude / unit,
        magnitude % unit,
        width = scale as usize
    )
}

/// Text safe to echo in a message: long inputs are cut, control characters escaped.
#[must_use]
pub fn printable(text: &str) -> String {
    const SHOWN_MAX: usize = 40;
    let mut out: String = text
        .chars()
        .take(SHOWN_MAX)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > SHOWN_MAX {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_as_javascript_prints_them() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "-0"),
            (1.5, "1.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (9_007_199_254_740_991.0, "9007199254740991"),
            // 2^53 + 1 has no double: the literal reads as 2^53, printed whole.
            (9_007_199_254_740_993.0, "9007199254740992"),
            // The shortest digits, then zeros: 2^60 is 1152921504606846976.
            (1_152_921_504_606_846_976.0, "1152921504606847000"),
            (1e20, "100000000000000000000"),
            (-1e20, "-100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e300, "1.5e+300"),
            (123.456, "123.456"),
            (0.000_001, "0.000001"),
            (1e-7, "1e-7"),
            (-1.5e-7, "-1.5e-7"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for &(value, text) in cases {
            assert_eq!(js_number(value), text, "{value:?}");
        }
    }

    #[test]
    fn parses_plain_decimals() {
        let cases: &[(&str, u32, i128, u32)] = &[
            ("0", 2, 0, 0),
            ("5", 2, 5, 0),
            ("1999.99", 2, 199_999, 2),
            ("-12.5", 2, -125, 1),
            ("0.0001", 4, 1, 4),
            (
                "9999999999999999999999999999",
                0,
                9_999_999_999_999_999_999_999_999_999,
                0,
            ),
        ];
        for &(text, scale_max, mantissa, scale) in cases {
            assert_eq!(
                parse(text, scale_max),
                Ok(ParsedDecimal { mantissa, scale }),
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_everything_else() {
        let cases = [
            "",
            " 5",
            "5 ",
            "1e3",
            "1E3",
            "1_000",
            "0x10",
            "+5",
            ".5",
            "5.",
            "01",
            "00.5",
            "1.2.3",
            "--1",
            "-",
            "١٢",
            "1,5",
            "NaN",
            "Infinity",
            "1.234",
            "99999999999999999999999999999",
        ];
        for text in cases {
            assert!(parse(text, 2).is_err(), "{text:?} should be refused");
        }
    }

    #[test]
    fn numbers_read_as_they_print() {
        assert_eq!(
            from_f64(19.99, 2),
            Ok(ParsedDecimal {
                mantissa: 1999,
                scale: 2
            })
        );
        assert_eq!(
            from_f64(1e15, 0).map(|p| p.mantissa),
            Ok(1_000_000_000_000_000)
        );
        assert!(from_f64(1e21, 0).is_err());
        assert!(from_f64(0.1 + 0.2, 2).is_err());
        assert!(from_f64(f64::NAN, 2).is_err());
        assert!(from_f64(f64::INFINITY, 2).is_err());
        assert!(from_f64(-0.0, 2).is_err());
    }
}

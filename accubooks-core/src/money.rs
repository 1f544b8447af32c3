//! Money: integer minor units inside, decimal strings at the edges.
//!
//! The number of fraction digits comes from ISO 4217. No floating point is
//! used anywhere: amounts are `i64` minor units, intermediate products are
//! `i128`, and every rounding is explicit (half away from zero, "half-up",
//! unless a caller says otherwise). Splits use largest-remainder allocation,
//! so the parts always add up to the whole.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Fraction digits of a currency (ISO 4217), or `None` for a code we do not
/// know.
pub fn minor_digits(currency: &str) -> Option<u32> {
    let digits = match currency {
        // Currencies without minor units.
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        // Currencies with three fraction digits.
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        // Four.
        "CLF" | "UYW" => 4,
        code if KNOWN_TWO_DIGIT.contains(&code) => 2,
        _ => return None,
    };
    Some(digits)
}

const KNOWN_TWO_DIGIT: &[&str] = &[
    "AED", "ARS", "AUD", "BGN", "BRL", "CAD", "CHF", "CNY", "COP", "CZK", "DKK", "EGP", "EUR",
    "GBP", "HKD", "HUF", "IDR", "ILS", "INR", "KES", "MAD", "MXN", "MYR", "NGN", "NOK", "NZD",
    "PEN", "PHP", "PKR", "PLN", "RON", "RUB", "SAR", "SEK", "SGD", "THB", "TRY", "TWD", "UAH",
    "USD", "VES", "ZAR",
];

/// Why a text is not an acceptable amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// Not of the form `123`, `123.4` or `-0.05`.
    #[error("{0:?} is not a decimal amount such as \"1234.56\"")]
    NotDecimal(String),
    /// More fraction digits than allowed.
    #[error("{text:?} has more than {digits} fraction digits")]
    TooPrecise {
        /// The text.
        text: String,
        /// Allowed fraction digits.
        digits: u32,
    },
    /// Does not fit in 64-bit minor units.
    #[error("{0:?} is too large")]
    TooLarge(String),
    /// Not an ISO 4217 code we know.
    #[error("{0:?} is not a supported ISO 4217 currency code")]
    UnknownCurrency(String),
}

/// An exact decimal: `mantissa × 10^-scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    /// The digits as an integer.
    pub mantissa: i128,
    /// How many of them are fraction digits.
    pub scale: u32,
}

impl Decimal {
    /// Parses `-?[0-9]+(\.[0-9]+)?` with at most `max_scale` fraction digits.
    pub fn parse(text: &str, max_scale: u32) -> Result<Decimal, MoneyError> {
        let not_decimal = || MoneyError::NotDecimal(text.to_owned());
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) if !fraction.is_empty() => (whole, fraction),
            Some(_) => return Err(not_decimal()),
            None => (unsigned, ""),
        };
        if whole.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(not_decimal());
        }
        let scale = u32::try_from(fraction.len()).map_err(|_| not_decimal())?;
        if scale > max_scale {
            return Err(MoneyError::TooPrecise {
                text: text.to_owned(),
                digits: max_scale,
            });
        }
        let digits = format!("{whole}{fraction}");
        if digits.len() > 30 {
            return Err(MoneyError::TooLarge(text.to_owned()));
        }
        let magnitude: i128 = digits.parse().map_err(|_| not_decimal())?;
        Ok(Decimal {
            mantissa: if negative { -magnitude } else { magnitude },
            scale,
        })
    }

    /// The value in units of `10^-scale`, exactly (fails if that would lose digits).
    pub fn rescale(self, scale: u32) -> Option<i128> {
        if scale >= self.scale {
            self.mantissa
                .checked_mul(10i128.checked_pow(scale - self.scale)?)
        } else {
            let factor = 10i128.checked_pow(self.scale - scale)?;
            (self.mantissa % factor == 0).then_some(self.mantissa / factor)
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let magnitude = self.mantissa.unsigned_abs();
        if self.scale == 0 {
            return write!(f, "{sign}{magnitude}");
        }
        let unit = 10u128.pow(self.scale);
        write!(
            f,
            "{sign}{}.{:0width$}",
            magnitude / unit,
            magnitude % unit,
            width = self.scale as usize
        )
    }
}

/// Parses an amount of a currency with `digits` fraction digits into minor
/// units. `"12.5"` in USD is 1250.
pub fn parse_minor(text: &str, digits: u32) -> Result<i64, MoneyError> {
    let decimal = Decimal::parse(text, digits)?;
    let minor = decimal
        .rescale(digits)
        .ok_or_else(|| MoneyError::TooLarge(text.to_owned()))?;
    i64::try_from(minor).map_err(|_| MoneyError::TooLarge(text.to_owned()))
}

/// Quantizes a decimal text to minor units of a currency with `digits`
/// fraction digits, exactly: `"1500.0"` in JPY is 1500 and `"12.50"` in
/// USD 1250, but `"0.123"` in USD is [`MoneyError::TooPrecise`] (rounding
/// would change the amount). For amounts others wrote (a bank's JSON
/// number), where trailing zeros carry no meaning.
pub fn quantize_minor(text: &str, digits: u32) -> Result<i64, MoneyError> {
    let decimal = Decimal::parse(text, 30)?;
    let minor = decimal
        .rescale(digits)
        .ok_or_else(|| MoneyError::TooPrecise {
            text: text.to_owned(),
            digits,
        })?;
    i64::try_from(minor).map_err(|_| MoneyError::TooLarge(text.to_owned()))
}

/// Formats `minor` units of a currency with `digits` fraction digits.
pub fn format_minor(minor: i64, digits: u32) -> String {
    Decimal {
        mantissa: i128::from(minor),
        scale: digits,
    }
    .to_string()
}

/// `numerator / denominator` rounded half away from zero ("half-up" in
/// accounting usage). `denominator` must be positive.
pub fn div_round_half_up(numerator: i128, denominator: i128) -> i128 {
    assert!(denominator > 0, "rounding needs a positive denominator");
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    if remainder.abs() * 2 >= denominator {
        quotient + numerator.signum()
    } else {
        quotient
    }
}

/// Splits `total` in proportion to `weights` by largest remainder: each part
/// is the rounded-down share, and the units left over go to the parts with
/// the largest remainders (earlier parts first on ties). The parts always sum
/// to `total`. Weights must be non-negative with a positive sum.
pub fn allocate(total: i64, weights: &[i128]) -> Vec<i64> {
    let sum: i128 = weights.iter().sum();
    assert!(
        sum > 0 && weights.iter().all(|w| *w >= 0),
        "weights must be non-negative with a positive sum"
    );
    let total_wide = i128::from(total);
    let magnitude = total_wide.abs();
    let mut parts: Vec<i128> = weights.iter().map(|w| magnitude * w / sum).collect();
    let mut remainders: Vec<(i128, usize)> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| (magnitude * w % sum, i))
        .collect();
    // Largest remainder first; stable order keeps earlier parts first on ties.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut left = magnitude - parts.iter().sum::<i128>();
    for (_, index) in remainders {
        if left == 0 {
            break;
        }
        parts[index] += 1;
        left -= 1;
    }
    parts
        .into_iter()
        .map(|p| {
            let signed = if total < 0 { -p } else { p };
            i64::try_from(signed).expect("a part is never larger than the total")
        })
        .collect()
}

/// The OpenAPI `format` of a money amount (a decimal string): the one mark
/// by which the schema tells money from other strings, so a door (the
/// Python one) can turn exactly the money fields into exact decimals.
pub const MONEY_FORMAT: &str = "decimal";

/// A money amount as it crosses the API: always a JSON string. A JSON
/// number is refused while parsing, so floats never reach money code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmountText(pub String);

impl Serialize for AmountText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AmountText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = AmountText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal string such as \"100.00\" (money is never a JSON number)")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<AmountText, E> {
                Ok(AmountText(value.to_owned()))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

impl utoipa::PartialSchema for AmountText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::schema::SchemaFormat::Custom(
                MONEY_FORMAT.to_owned(),
            )))
            .pattern(Some(r"^-?[0-9]+(\.[0-9]+)?$"))
            .description(Some(
                "A decimal string such as \"1234.56\", with no more fraction digits than the \
                 currency allows (ISO 4217). Never a JSON number.",
            ))
            .examples(["100.00"])
            .into()
    }
}

impl utoipa::ToSchema for AmountText {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantizes_exactly_or_not_at_all() {
        assert_eq!(quantize_minor("1500.0", 0), Ok(1500));
        assert_eq!(quantize_minor("-25.5", 2), Ok(-2550));
        assert_eq!(quantize_minor("0.120", 2), Ok(12));
        assert!(matches!(
            quantize_minor("0.123", 2),
            Err(MoneyError::TooPrecise { digits: 2, .. })
        ));
        assert!(matches!(
            quantize_minor("1e21", 2),
            Err(MoneyError::NotDecimal(_))
        ));
        assert!(matches!(
            quantize_minor("99999999999999999999", 2),
            Err(MoneyError::TooLarge(_))
        ));
    }

    #[test]
    fn digits_follow_iso_4217() {
        assert_eq!(minor_digits("USD"), Some(2));
        assert_eq!(minor_digits("JPY"), Some(0));
        assert_eq!(minor_digits("KWD"), Some(3));
        assert_eq!(minor_digits("usd"), None);
        assert_eq!(minor_digits("XYZ"), None);
    }

    #[test]
    fn parsing_is_exact_and_strict() {
        assert_eq!(parse_minor("1234.56", 2), Ok(123456));
        assert_eq!(parse_minor("12.5", 2), Ok(1250));
        assert_eq!(parse_minor("7", 2), Ok(700));
        assert_eq!(parse_minor("-0.05", 2), Ok(-5));
        assert_eq!(parse_minor("1500", 0), Ok(1500));
        assert_eq!(parse_minor("1.234", 3), Ok(1234));
        assert!(matches!(
            parse_minor("1.234", 2),
            Err(MoneyError::TooPrecise { digits: 2, .. })
        ));
        assert!(matches!(
            parse_minor("1.5", 0),
            Err(MoneyError::TooPrecise { .. })
        ));
        for bad in [
            "", "-", ".5", "5.", "1e3", "+1", " 1", "1,5", "0x10", "1.2.3", "NaN", "١٢",
        ] {
            assert!(
                matches!(parse_minor(bad, 2), Err(MoneyError::NotDecimal(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse_minor("99999999999999999999", 2),
            Err(MoneyError::TooLarge(_))
        ));
    }

    #[test]
    fn formatting() {
        assert_eq!(format_minor(123456, 2), "1234.56");
        assert_eq!(format_minor(-5, 2), "-0.05");
        assert_eq!(format_minor(0, 3), "0.000");
        assert_eq!(format_minor(1500, 0), "1500");
        assert_eq!(format_minor(i64::MIN, 2), "-92233720368547758.08");
        for minor in [0i64, 1, -1, 99, 100, 123456789, -987654321] {
            assert_eq!(parse_minor(&format_minor(minor, 2), 2), Ok(minor));
        }
    }

    #[test]
    fn half_up_rounding() {
        assert_eq!(div_round_half_up(5, 10), 1);
        assert_eq!(div_round_half_up(4, 10), 0);
        assert_eq!(div_round_half_up(-5, 10), -1);
        assert_eq!(div_round_half_up(-4, 10), 0);
        assert_eq!(div_round_half_up(15, 10), 2);
        assert_eq!(div_round_half_up(25, 10), 3);
    }

    #[test]
    fn allocation_always_adds_up() {
        assert_eq!(allocate(100, &[1, 1, 1]), vec![34, 33, 33]);
        assert_eq!(allocate(-100, &[1, 1, 1]), vec![-34, -33, -33]);
        assert_eq!(allocate(5, &[0, 1]), vec![0, 5]);
        assert_eq!(allocate(1, &[3, 7]), vec![0, 1]);
        for total in [-1001i64, -1, 0, 1, 7, 99, 1000, 123457] {
            for weights in [vec![1i128, 2, 3], vec![5, 5], vec![1, 0, 1, 999], vec![13]] {
                let parts = allocate(total, &weights);
                assert_eq!(parts.iter().sum::<i64>(), total, "{total} {weights:?}");
            }
        }
    }

    #[test]
    fn amounts_are_strings_only() {
        let ok: AmountText = serde_json::from_str("\"10.00\"").unwrap();
        assert_eq!(ok.0, "10.00");
        let err = serde_json::from_str::<AmountText>("10.0").unwrap_err();
        assert!(err.to_string().contains("never a JSON number"), "{err}");
        assert!(serde_json::from_str::<AmountText>("10").is_err());
    }
}

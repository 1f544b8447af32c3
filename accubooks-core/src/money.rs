//! Money: integer minor units inside, decimal strings at the edges.
//!
//! The number of fraction digits comes from ISO 4217. No floating point is
//! used anywhere.

/// Fraction digits of a currency (ISO 4217), or `None` for an unknown code.
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
    "AED", "AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "IDR",
    "ILS", "INR", "MXN", "MYR", "NOK", "NZD", "PHP", "PLN", "RON", "RUB", "SAR", "SEK", "SGD",
    "THB", "TRY", "TWD", "USD", "ZAR",
];

/// Formats `minor` units of a currency with `digits` fraction digits.
pub fn format_minor(minor: i64, digits: u32) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let magnitude = minor.unsigned_abs();
    if digits == 0 {
        return format!("{sign}{magnitude}");
    }
    let scale = 10u64.pow(digits);
    format!(
        "{sign}{}.{:0width$}",
        magnitude / scale,
        magnitude % scale,
        width = digits as usize
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_follow_iso_4217() {
        assert_eq!(minor_digits("USD"), Some(2));
        assert_eq!(minor_digits("JPY"), Some(0));
        assert_eq!(minor_digits("KWD"), Some(3));
        assert_eq!(minor_digits("usd"), None);
        assert_eq!(minor_digits("XYZ"), None);
    }

    #[test]
    fn formatting() {
        assert_eq!(format_minor(123456, 2), "1234.56");
        assert_eq!(format_minor(-5, 2), "-0.05");
        assert_eq!(format_minor(0, 3), "0.000");
        assert_eq!(format_minor(1500, 0), "1500");
        assert_eq!(format_minor(i64::MIN, 2), "-92233720368547758.08");
    }
}

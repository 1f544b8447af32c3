//! Invoice arithmetic: line amounts, tax and totals, computed once, exactly.
//!
//! A line's amount is quantity × unit price, rounded half-up to the
//! currency's minor unit. Tax follows the organization's policy:
//! - `line`: each line's tax is rounded, and the document's tax is their sum;
//! - `document`: the exact taxes are summed and rounded once; the rounded
//!   total is then split back over the lines by largest remainder, so the
//!   lines still add up to the document.

use serde::{Deserialize, Serialize};

use crate::money::{self, Decimal, div_round_half_up};

/// How tax is rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaxRounding {
    /// Round each line's tax.
    Line,
    /// Round the document's tax once.
    Document,
}

impl TaxRounding {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaxRounding::Line => "line",
            TaxRounding::Document => "document",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "line" => Some(TaxRounding::Line),
            "document" => Some(TaxRounding::Document),
            _ => None,
        }
    }
}

/// A parsed invoice line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineFigures {
    /// Quantity, at most 4 fraction digits, positive.
    pub quantity: Decimal,
    /// Unit price in minor units, not negative.
    pub unit_price: i64,
    /// Tax rate as a fraction (0.0825 for 8.25 %), 0 to 1, at most 6 digits.
    pub tax_rate: Decimal,
}

/// Computed amounts of one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTotals {
    /// Quantity × unit price, rounded.
    pub amount: i64,
    /// The line's tax.
    pub tax: i64,
}

/// Computed amounts of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentTotals {
    /// Per line, in order.
    pub lines: Vec<LineTotals>,
    /// Sum of line amounts.
    pub subtotal: i64,
    /// Tax.
    pub tax: i64,
    /// Subtotal + tax.
    pub total: i64,
}

/// Why totals cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the invoice amounts are too large")]
pub struct TooLarge;

fn scale(decimal: Decimal) -> i128 {
    10i128.pow(decimal.scale)
}

/// Computes every amount of a document.
pub fn compute(lines: &[LineFigures], rounding: TaxRounding) -> Result<DocumentTotals, TooLarge> {
    let mut amounts = Vec::with_capacity(lines.len());
    // Exact tax of each line as a fraction over a common denominator.
    const TAX_SCALE: u32 = 6;
    let tax_denominator = 10i128.pow(TAX_SCALE);
    let mut exact_taxes = Vec::with_capacity(lines.len());
    for line in lines {
        let product = line
            .quantity
            .mantissa
            .checked_mul(i128::from(line.unit_price))
            .ok_or(TooLarge)?;
        let amount = div_round_half_up(product, scale(line.quantity));
        let amount = i64::try_from(amount).map_err(|_| TooLarge)?;
        let rate = line.tax_rate.rescale(TAX_SCALE).ok_or(TooLarge)?;
        exact_taxes.push(i128::from(amount).checked_mul(rate).ok_or(TooLarge)?);
        amounts.push(amount);
    }
    let line_taxes: Vec<i64> = match rounding {
        TaxRounding::Line => exact_taxes
            .iter()
            .map(|t| i64::try_from(div_round_half_up(*t, tax_denominator)).map_err(|_| TooLarge))
            .collect::<Result<_, _>>()?,
        TaxRounding::Document => {
            let exact_sum: i128 = exact_taxes.iter().sum();
            let tax = i64::try_from(div_round_half_up(exact_sum, tax_denominator))
                .map_err(|_| TooLarge)?;
            if exact_sum == 0 {
                vec![0; lines.len()]
            } else {
                money::allocate(tax, &exact_taxes)
            }
        }
    };
    let subtotal = amounts
        .iter()
        .try_fold(0i64, |acc, a| acc.checked_add(*a))
        .ok_or(TooLarge)?;
    let tax = line_taxes
        .iter()
        .try_fold(0i64, |acc, t| acc.checked_add(*t))
        .ok_or(TooLarge)?;
    let total = subtotal.checked_add(tax).ok_or(TooLarge)?;
    Ok(DocumentTotals {
        lines: amounts
            .into_iter()
            .zip(line_taxes)
            .map(|(amount, tax)| LineTotals { amount, tax })
            .collect(),
        subtotal,
        tax,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(quantity: &str, unit_price: i64, rate: &str) -> LineFigures {
        LineFigures {
            quantity: Decimal::parse(quantity, 4).unwrap(),
            unit_price,
            tax_rate: Decimal::parse(rate, 6).unwrap(),
        }
    }

    #[test]
    fn line_rounding_rounds_each_line() {
        // 3 lines of 0.10 at 5 %: each tax is 0.005 → 0.01 (half-up).
        let lines = [
            line("1", 10, "0.05"),
            line("1", 10, "0.05"),
            line("1", 10, "0.05"),
        ];
        let totals = compute(&lines, TaxRounding::Line).unwrap();
        assert_eq!(totals.tax, 3);
        assert_eq!(totals.total, 33);
        // Document rounding: 0.015 → 0.02, split 1/1/0.
        let totals = compute(&lines, TaxRounding::Document).unwrap();
        assert_eq!(totals.tax, 2);
        assert_eq!(
            totals.lines.iter().map(|l| l.tax).collect::<Vec<_>>(),
            vec![1, 1, 0]
        );
        assert_eq!(totals.total, 32);
    }

    #[test]
    fn quantities_and_prices() {
        // 2.5 × 19.99 = 49.975 → 49.98; tax 8.25 % = 4.123... → 4.12.
        let totals = compute(&[line("2.5", 1999, "0.0825")], TaxRounding::Line).unwrap();
        assert_eq!(
            totals.lines[0],
            LineTotals {
                amount: 4998,
                tax: 412
            }
        );
        assert_eq!(
            (totals.subtotal, totals.tax, totals.total),
            (4998, 412, 5410)
        );
    }

    #[test]
    fn parts_always_add_up() {
        for rounding in [TaxRounding::Line, TaxRounding::Document] {
            let lines = [
                line("3", 333, "0.07"),
                line("0.3333", 1001, "0.19"),
                line("7", 1, "0.2"),
            ];
            let totals = compute(&lines, rounding).unwrap();
            assert_eq!(
                totals.lines.iter().map(|l| l.amount).sum::<i64>(),
                totals.subtotal
            );
            assert_eq!(totals.lines.iter().map(|l| l.tax).sum::<i64>(), totals.tax);
            assert_eq!(totals.subtotal + totals.tax, totals.total);
        }
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        assert_eq!(
            compute(&[line("999999999", i64::MAX / 2, "0")], TaxRounding::Line),
            Err(TooLarge)
        );
    }
}

//! Reports as CSV tables (RFC 4180: a header row, fields quoted where they
//! need it, CRLF line ends) that are safe to open in a spreadsheet.
//!
//! Every cell goes through [`spreadsheet_safe`]: a customer named
//! `=HYPERLINK(…)` or an entry memo starting with `@` is text, not a
//! formula, when an accountant opens the file (OWASP "CSV injection").

use std::borrow::Cow;

use serde_json::Value;

use super::ReportQuery;

/// A cell as a spreadsheet must read it: text starting with `=`, `+`, `-`,
/// `@`, a tab or a carriage return (what Excel, LibreOffice and Google
/// Sheets take for the start of a formula) gets a leading `'`, which they
/// show as text and do not evaluate (OWASP's advice).
///
/// One exception, by choice: a cell that is wholly a decimal number
/// (`-12.50`, `-3`) is left alone, so negative amounts stay numbers a
/// spreadsheet can sum. Such a cell cannot hold a formula: it has nothing
/// but an optional leading `-`, digits and at most one `.`.
pub(crate) fn spreadsheet_safe(cell: &str) -> Cow<'_, str> {
    let starts_formula = cell
        .chars()
        .next()
        .is_some_and(|c| matches!(c, '=' | '+' | '-' | '@' | '\t' | '\r'));
    if starts_formula && !is_decimal(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// `-?[0-9]+(\.[0-9]+)?`: how the API writes money and counts.
fn is_decimal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "1"));
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && all_digits(fraction)
}

/// The columns of a statement's rows (balance sheet, income statement).
const STATEMENT_COLUMNS: &[&str] = &[
    "code", "name", "currency", "amount", "parent", "level", "subtotal",
];

/// The table of a report: which arrays hold its rows (with a `section`
/// column when there are several), and which fields make the columns
/// (named as in the report's JSON, whose rows are flat: the AR aging's
/// buckets are fields of its rows).
pub(crate) fn to_csv(query: &ReportQuery, report: &Value) -> String {
    let (sections, columns): (&[&str], &[&str]) = match query {
        ReportQuery::TrialBalance { .. } => (
            &["accounts"],
            &[
                "code",
                "name",
                "type",
                "currency",
                "debit",
                "credit",
                "parent",
                "level",
                "subtotal_debit",
                "subtotal_credit",
            ],
        ),
        ReportQuery::BalanceSheet { .. } => {
            (&["assets", "liabilities", "equity"], STATEMENT_COLUMNS)
        }
        ReportQuery::IncomeStatement { .. } => (&["revenue", "expenses"], STATEMENT_COLUMNS),
        ReportQuery::CashFlow { .. } => (
            &[
                "cash",
                "customers",
                "suppliers",
                "liabilities",
                "equity",
                "assets",
            ],
            &[
                "code", "name", "currency", "parent", "opening", "closing", "amount",
            ],
        ),
        ReportQuery::GeneralLedger { .. } => (
            &["rows"],
            &["date", "entry_id", "memo", "debit", "credit", "balance"],
        ),
        ReportQuery::ArAging { .. } => (
            &["customers"],
            &[
                "customer_id",
                "customer",
                "currency",
                "current",
                "days_1_30",
                "days_31_60",
                "days_61_90",
                "over_90",
                "total",
            ],
        ),
    };
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let with_section = sections.len() > 1;
    let mut header: Vec<&str> = Vec::new();
    if with_section {
        header.push("section");
    }
    header.extend(columns);
    // Writing into a Vec cannot fail.
    let _ = writer.write_record(&header);
    for section in sections {
        for row in report[*section].as_array().into_iter().flatten() {
            let mut record: Vec<String> = Vec::new();
            if with_section {
                record.push((*section).to_owned());
            }
            for column in columns {
                record.push(match &row[*column] {
                    Value::Null => String::new(),
                    Value::String(text) => spreadsheet_safe(text).into_owned(),
                    other => spreadsheet_safe(&other.to_string()).into_owned(),
                });
            }
            let _ = writer.write_record(&record);
        }
    }
    String::from_utf8(writer.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use serde_json::json;

    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let report = json!({"rows": [
            {"date": "2026-01-02", "entry_id": 7, "memo": "Lunch, \"client\"\nvisit", "debit": "12.50", "credit": null, "balance": "12.50"},
        ]});
        let query = ReportQuery::GeneralLedger {
            account: "1000".into(),
            from: NaiveDate::MIN,
            to: NaiveDate::MAX,
        };
        assert_eq!(
            to_csv(&query, &report),
            "date,entry_id,memo,debit,credit,balance\r\n\
             2026-01-02,7,\"Lunch, \"\"client\"\"\nvisit\",12.50,,12.50\r\n"
        );
    }

    #[test]
    fn statements_carry_their_section() {
        let report = json!({"revenue": [{"code": "4000", "name": "Sales", "currency": "USD", "amount": "10.00"}],
                            "expenses": [{"code": "5000", "name": "Rent", "currency": "USD", "amount": "4.00"}]});
        let query = ReportQuery::IncomeStatement {
            from: NaiveDate::MIN,
            to: NaiveDate::MAX,
        };
        assert_eq!(
            to_csv(&query, &report),
            "section,code,name,currency,amount,parent,level,subtotal\r\n\
             revenue,4000,Sales,USD,10.00,,,\r\n\
             expenses,5000,Rent,USD,4.00,,,\r\n"
        );
    }

    #[test]
    fn formulas_become_text_and_numbers_stay_numbers() {
        for (cell, safe) in [
            (
                "=HYPERLINK(\"http://evil.example\",\"x\")",
                "'=HYPERLINK(\"http://evil.example\",\"x\")",
            ),
            ("+1+1", "'+1+1"),
            ("-1+1", "'-1+1"),
            ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("-", "'-"),
            ("-.5", "'-.5"),
            ("-12.", "'-12."),
            ("-12.50", "-12.50"),
            ("-3", "-3"),
            ("12.50", "12.50"),
            ("Globex = best", "Globex = best"),
            ("", ""),
        ] {
            assert_eq!(spreadsheet_safe(cell), safe, "{cell:?}");
        }
    }

    #[test]
    fn aging_rows_carry_their_buckets_and_names_are_text() {
        let report = json!({"customers": [{"customer_id": 3, "customer": "=HYPERLINK(\"http://evil.example\",\"x\")",
            "currency": "USD", "current": "10.00", "days_1_30": "0.00", "days_31_60": "-2.50",
            "days_61_90": "0.00", "over_90": "1.00", "total": "8.50"}]});
        let query = ReportQuery::ArAging {
            as_of: NaiveDate::MIN,
        };
        assert_eq!(
            to_csv(&query, &report),
            "customer_id,customer,currency,current,days_1_30,days_31_60,days_61_90,over_90,total\r\n\
             3,\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",USD,10.00,0.00,-2.50,0.00,1.00,8.50\r\n"
        );
    }
}

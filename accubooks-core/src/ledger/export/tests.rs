use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

const CODE_ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";
const EVIL_MEMO: &str = "'; DROP TABLE x; --\"\n";

/// The inverse of [`beancount_component`].
fn decode_component(name: &str) -> Option<String> {
    let mut chars = name.strip_prefix('C')?.chars();
    let mut code = String::new();
    while let Some(c) = chars.next() {
        code.push(match c {
            '-' => match chars.next()? {
                'H' => '-',
                'D' => '.',
                'U' => '_',
                _ => return None,
            },
            c => c,
        });
    }
    Some(code)
}

/// What beancount's lexer reads back from a quoted string.
fn unquote(quoted: &str) -> String {
    let inner = quoted
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap();
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next().unwrap()),
            '"' => panic!("unescaped quote in {quoted}"),
            c => out.push(c),
        }
    }
    out
}

fn is_beancount_component(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[test]
fn beancount_names_are_injective_on_every_short_code() {
    // Every code of up to three characters: 65 + 65² + 65³ of them.
    let alphabet: Vec<char> = CODE_ALPHABET.chars().collect();
    let mut codes = vec![String::new()];
    let mut seen = HashSet::new();
    for _ in 0..3 {
        codes = codes
            .iter()
            .flat_map(|prefix| alphabet.iter().map(move |c| format!("{prefix}{c}")))
            .collect();
        for code in &codes {
            let name = beancount_component(code);
            assert!(is_beancount_component(&name), "{code} -> {name}");
            assert!(seen.insert(name), "{code} collides");
        }
    }
    assert_eq!(seen.len(), 65 + 65 * 65 + 65 * 65 * 65);
}

#[test]
fn account_names_by_type() {
    assert_eq!(hledger_account(AccountType::Asset, "1000"), "assets:1000");
    assert_eq!(
        hledger_account(AccountType::Revenue, "4000.a_b-c"),
        "income:4000.a_b-c"
    );
    assert_eq!(
        beancount_account(AccountType::Asset, "1000"),
        "Assets:C1000"
    );
    assert_eq!(
        beancount_account(AccountType::Revenue, "1000.10-a_b"),
        "Income:C1000-D10-Ha-Ub"
    );
    assert_eq!(
        beancount_account(AccountType::Liability, "-._"),
        "Liabilities:C-H-D-U"
    );
    assert_eq!(beancount_account(AccountType::Expense, "x").len(), 11);
}

proptest! {
    #[test]
    fn beancount_names_decode_back(code in "[A-Za-z0-9._-]{1,20}") {
        let name = beancount_component(&code);
        prop_assert!(is_beancount_component(&name), "{name}");
        prop_assert_eq!(decode_component(&name), Some(code));
    }

    #[test]
    fn free_text_stays_inert(text in "(?s).{0,40}|[\\n\\r\\t;:\"\\\\a ]{0,20}") {
        let description = hledger_description(&text);
        prop_assert!(!description.contains([';', '\n', '\r']));
        let comment = hledger_comment(&text);
        prop_assert!(!comment.contains([':', '\n', '\r']));
        let quoted = beancount_string(&text);
        prop_assert!(!quoted.contains(['\n', '\r']));
        prop_assert_eq!(unquote(&quoted), one_line(&text));
    }
}

#[test]
fn memos_cannot_break_out() {
    let memo = format!("{EVIL_MEMO}ünïcödé 帳簿 \u{2028}next (x) * ! \\ end");
    assert_eq!(
        hledger_description(&memo),
        "'\u{FF1B} DROP TABLE x\u{FF1B} --\" ünïcödé 帳簿  next (x) * ! \\ end"
    );
    assert_eq!(
        beancount_string(&memo),
        "\"'; DROP TABLE x; --\\\" ünïcödé 帳簿  next (x) * ! \\\\ end\""
    );
    assert_eq!(
        hledger_comment("Cash: petty; type:Z"),
        "Cash\u{FF1A} petty; type\u{FF1A}Z"
    );
    assert_eq!(one_line("\t a\r\nb \n"), "a  b");
}

fn account(id: i64, code: &str, kind: AccountType, currency: &str, balance: i64) -> ExportAccount {
    ExportAccount {
        id,
        code: code.to_owned(),
        name: format!("Account \"{code}\": x; y"),
        kind,
        currency: currency.to_owned(),
        balance,
    }
}

fn sample(format: ExportFormat) -> String {
    let date = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
    let accounts = vec![
        account(1, "1000", AccountType::Asset, "USD", 10_000),
        account(2, "1100.a", AccountType::Asset, "JPY", 1500),
        account(3, "2000", AccountType::Liability, "KWD", -1005),
        account(4, "4000", AccountType::Revenue, "USD", -10_000),
        account(5, "5000", AccountType::Expense, "KWD", 1005),
    ];
    let mut journal = Journal::new(
        format,
        &OrganizationId::nth(1),
        date("2026-02-28"),
        accounts,
    );
    let lines = [
        (7, "2026-01-31", EVIL_MEMO, None, 1, 10_000),
        (7, "2026-01-31", EVIL_MEMO, None, 4, -10_000),
        (9, "2026-02-01", "", None, 5, 1005),
        (9, "2026-02-01", "", None, 3, -1005),
        (9, "2026-02-01", "", None, 2, 1500),
        (9, "2026-02-01", "", None, 2, -1500),
        (11, "2026-02-02", "Reversal of entry 9", Some(9), 2, 1500),
        (11, "2026-02-02", "Reversal of entry 9", Some(9), 2, -1500),
    ];
    for (entry, day, memo, reverses, account, amount) in lines {
        journal
            .line(Line {
                entry,
                date: date(day),
                memo: memo.to_owned(),
                reverses,
                account,
                amount,
                metadata: None,
            })
            .unwrap();
    }
    journal.finish()
}

#[test]
fn hledger_journal() {
    let text = sample(ExportFormat::Hledger);
    let expected = "\
; AccuBooks ledger export of organization 00000000-0000-0000-0000-000000000001, as of 2026-02-28.
; Accounts are named <type>:<code>; the account's name follows it.

decimal-mark .

commodity 1000. JPY
commodity 1000.000 KWD
commodity 1000.00 USD

account assets:1000  ; Account \"1000\"\u{FF1A} x; y
account assets:1100.a  ; Account \"1100.a\"\u{FF1A} x; y
account liabilities:2000  ; Account \"2000\"\u{FF1A} x; y
account income:4000  ; Account \"4000\"\u{FF1A} x; y
account expenses:5000  ; Account \"5000\"\u{FF1A} x; y

2026-01-31 (7) '\u{FF1B} DROP TABLE x\u{FF1B} --\"
    assets:1000  100.00 USD
    income:4000  -100.00 USD

2026-02-01 (9)
    expenses:5000  1.005 KWD
    liabilities:2000  -1.005 KWD
    assets:1100.a  1500 JPY
    assets:1100.a  -1500 JPY

2026-02-02 (11) Reversal of entry 9  ; reverses:9
    assets:1100.a  1500 JPY
    assets:1100.a  -1500 JPY

2026-02-28 AccuBooks balances at the end of 2026-02-28
    assets:1000  0.00 USD == 100.00 USD
    assets:1100.a  0 JPY == 1500 JPY
    liabilities:2000  0.000 KWD == -1.005 KWD
    income:4000  0.00 USD == -100.00 USD
    expenses:5000  0.000 KWD == 1.005 KWD
";
    assert_eq!(text, expected);
}

#[test]
fn beancount_ledger() {
    let text = sample(ExportFormat::Beancount);
    assert!(text.starts_with(
            "; AccuBooks ledger export of organization 00000000-0000-0000-0000-000000000001, as of 2026-02-28.\n\
             ; Accounts are named <Type>:C<code> with '-' written -H, '.' -D and '_' -U.\n\n\
             option \"operating_currency\" \"KWD\"\n\n\
             2026-01-31 open Assets:C1000 USD\n  name: \"Account \\\"1000\\\": x; y\"\n  code: \"1000\"\n"
        ), "{text}");
    assert!(text.contains(
            "2026-01-31 open Assets:C1100-Da JPY\n  name: \"Account \\\"1100.a\\\": x; y\"\n  code: \"1100.a\"\n"
        ));
    assert!(text.contains(
            "\n2026-01-31 * \"'; DROP TABLE x; --\\\"\"\n  entry: 7\n  Assets:C1000  100.00 USD\n  Income:C4000  -100.00 USD\n"
        ));
    assert!(text.contains(
            "\n2026-02-02 * \"Reversal of entry 9\"\n  entry: 11\n  reverses: 9\n  Assets:C1100-Da  1500 JPY\n"
        ));
    assert!(
        text.ends_with(
            "\n2026-03-01 balance Assets:C1000  100.00 ~ 0.00 USD\n\
             2026-03-01 balance Assets:C1100-Da  1500 ~ 0 JPY\n\
             2026-03-01 balance Liabilities:C2000  -1.005 ~ 0.000 KWD\n\
             2026-03-01 balance Income:C4000  -100.00 ~ 0.00 USD\n\
             2026-03-01 balance Expenses:C5000  1.005 ~ 0.000 KWD\n"
        ),
        "{text}"
    );
}

#[test]
fn main_currency_is_the_most_used() {
    let a = |code, currency| account(0, code, AccountType::Asset, currency, 0);
    assert_eq!(main_currency(&[]), None);
    assert_eq!(
        main_currency(&[a("1", "USD"), a("2", "JPY"), a("3", "USD")]),
        Some("USD")
    );
    assert_eq!(main_currency(&[a("1", "USD"), a("2", "JPY")]), Some("JPY"));
}

#[test]
fn lines_of_unknown_accounts_are_refused() {
    let mut journal = Journal::new(
        ExportFormat::Hledger,
        &OrganizationId::nth(1),
        NaiveDate::MIN,
        vec![],
    );
    let line = Line {
        entry: 1,
        date: NaiveDate::MIN,
        memo: String::new(),
        reverses: None,
        account: 9,
        amount: 1,
        metadata: None,
    };
    assert!(journal.line(line).is_err());
}

#[test]
fn beancount_needs_a_next_day() {
    let last = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();
    assert_eq!(beancount_check_date(last), None);
    assert_eq!(beancount_check_date(last.pred_opt().unwrap()), Some(last));
}

#[test]
fn formats_parse() {
    let name = |text| ExportFormat::from_name(text).ok();
    assert_eq!(name("hledger"), Some(ExportFormat::Hledger));
    assert_eq!(name("beancount"), Some(ExportFormat::Beancount));
    assert!(matches!(
        ExportFormat::from_name("ledger"),
        Err(LedgerError::Invalid {
            code: "INVALID_FORMAT",
            ..
        })
    ));
}

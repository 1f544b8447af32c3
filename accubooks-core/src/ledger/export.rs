//! The books as a plain-text journal that hledger or beancount can check on
//! their own: every entry up to a date, then one exact balance assertion per
//! account. If our running balances ever disagreed with the journal lines,
//! `hledger check` or `bean-check` would say so.
//!
//! Account names are derived from the account's type and code only, so they
//! never collide and never need escaping:
//!
//! - hledger: `assets:1000`, `liabilities:2000`, `equity:3000`,
//!   `income:4000`, `expenses:5000`. Codes (`[A-Za-z0-9._-]`) are valid
//!   hledger name components as they are.
//! - beancount: `Assets:C1000`, … A component may only hold letters, digits
//!   and `-`, so the code is prefixed with `C` and `-`, `.` and `_` are
//!   written `-H`, `-D` and `-U`: `1000.10-a_b` becomes `C1000-D10-Ha-Ub`.
//!   `-` only ever starts an escape, so the spelling is prefix-free and
//!   therefore injective.
//!
//! Free text (memos, account names) is put on one line and stripped of what
//! the target syntax would read as structure; see [`hledger_description`],
//! [`hledger_comment`] and [`beancount_string`].

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use bytes::Bytes;
use chrono::NaiveDate;
use futures::TryStreamExt;

use super::accounts::AccountType;
use super::{LedgerError, LedgerResult};
use crate::db::Database;
use crate::db::sql::{BeginScoped, on_pool};
use crate::money;

/// The journal dialect of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// hledger journal (`hledger -f books.journal check`).
    Hledger,
    /// beancount ledger (`bean-check books.beancount`).
    Beancount,
}

impl ExportFormat {
    /// `hledger` or `beancount`; `422 INVALID_FORMAT` otherwise.
    pub fn from_name(text: &str) -> LedgerResult<Self> {
        match text {
            "hledger" => Ok(ExportFormat::Hledger),
            "beancount" => Ok(ExportFormat::Beancount),
            _ => Err(LedgerError::invalid(
                "INVALID_FORMAT",
                format!("{text:?} is not an export format: use \"hledger\" or \"beancount\"."),
            )),
        }
    }
}

/// Every account with its balance at the end of `$2`, as `reports.rs`
/// computes it (current balance less later day movements); repeated here so
/// it runs in the same snapshot as the journal query.
const ACCOUNTS_SQL: &str = "SELECT a.id, a.code, a.name, a.type, a.currency, \
     CAST(a.balance - COALESCE((SELECT SUM(d.delta) FROM account_days d \
                           WHERE d.account_id = a.id AND d.day > $2), 0) AS BIGINT) \
     FROM accounts a WHERE a.organization_id = $1 ORDER BY a.code";

/// Every journal line up to `$2`, in the order the journal lists them.
const LINES_SQL: &str = "SELECT e.id, e.entry_date, e.memo, e.reverses, l.account_id, l.amount \
     FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.id \
     WHERE e.organization_id = $1 AND e.entry_date <= $2 \
     ORDER BY e.entry_date, e.id, l.line_no";

type AccountRow = (i64, String, String, String, String, i64);
type LineRow = (i64, NaiveDate, String, Option<i64>, i64, i64);

/// How long an export may read the database: whole books take longer
/// than one statement may (`DB_STATEMENT_TIMEOUT_MS`).
pub const EXPORT_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// How much journal text is gathered before it is sent as one chunk.
const CHUNK_BYTES: usize = 64 * 1024;

/// How many chunks may wait for a slow reader before the export waits too.
const CHUNKS_AHEAD: usize = 4;

/// The organization's books up to and including `as_of`, in `format`, ending
/// with an exact balance assertion per account at the end of `as_of`.
///
/// The accounts and the journal are read in one read-only transaction (a
/// repeatable-read snapshot on PostgreSQL), so a concurrent posting cannot
/// make the assertions disagree with the entries. The text is streamed:
/// a task reads the lines and sends the journal in chunks of about 64 KiB,
/// at most a few ahead of the reader, so memory does not grow with the
/// books. This answers once the first chunk is ready, so a failure to start
/// (the database down, a bad date) is an error here; a failure midway ends
/// the stream with an error instead. The whole export is bounded by
/// [`EXPORT_TIME_LIMIT`].
pub async fn export_ledger(
    db: &Database,
    organization: &str,
    format: ExportFormat,
    as_of: NaiveDate,
) -> LedgerResult<ExportStream> {
    if format == ExportFormat::Beancount && beancount_check_date(as_of).is_none() {
        return Err(LedgerError::invalid(
            "INVALID_DATE",
            "beancount checks balances at the start of the next day; \"as_of\" must be before 9999-12-31.",
        ));
    }
    let (sender, mut receiver) = tokio::sync::mpsc::channel(CHUNKS_AHEAD);
    let (db, organization) = (db.clone(), organization.to_owned());
    tokio::spawn(async move {
        let failed = sender.clone();
        let written = db
            .run_within(EXPORT_TIME_LIMIT, |pool| async move {
                on_pool!(pool, p => {
                    let mut tx = p.begin_snapshot_for(&organization).await?;
                    let accounts: Vec<AccountRow> = sqlx::query_as(ACCOUNTS_SQL)
                        .bind(&organization)
                        .bind(as_of)
                        .fetch_all(&mut *tx)
                        .await?;
                    let accounts = accounts
                        .into_iter()
                        .map(ExportAccount::from_row)
                        .collect::<Result<Vec<_>, _>>()?;
                    let mut journal = Journal::new(format, &organization, as_of, accounts);
                    let mut lines = sqlx::query_as::<_, LineRow>(LINES_SQL)
                        .bind(&organization)
                        .bind(as_of)
                        .fetch(&mut *tx);
                    let mut started = false;
                    let mut reading = true;
                    while reading {
                        let row = lines.try_next().await?;
                        if let Some(row) = row {
                            journal
                                .line(Line::from(row))
                                .map_err(|e| sqlx::Error::Decode(e.into()))?;
                            if journal.body.len() < CHUNK_BYTES {
                                continue;
                            }
                        } else {
                            reading = false;
                        }
                        // The header waits for the first line: beancount
                        // opens the accounts on the first entry's date.
                        let mut chunk = if started { String::new() } else { journal.header() };
                        started = true;
                        chunk.push_str(&journal.take_body());
                        if !reading {
                            chunk.push_str(&journal.footer());
                        }
                        // A reader that went away ends the export quietly.
                        if sender.send(Ok(Bytes::from(chunk))).await.is_err() {
                            break;
                        }
                    }
                    drop(lines);
                    tx.rollback().await
                })
            })
            .await;
        if let Err(err) = written {
            let _ = failed.send(Err(LedgerError::Storage(err))).await;
        }
    });
    match receiver.recv().await {
        Some(Ok(first)) => Ok(ExportStream {
            first: Some(first),
            receiver,
            held: None,
        }),
        Some(Err(err)) => Err(err),
        None => Err(LedgerError::Storage(crate::Error::Setup(
            "the export ended before writing anything".to_owned(),
        ))),
    }
}

/// The chunks of a journal being exported, in order. An error ends it
/// early (the books could not be read to the end).
pub struct ExportStream {
    first: Option<Bytes>,
    receiver: tokio::sync::mpsc::Receiver<LedgerResult<Bytes>>,
    /// What must live as long as the export (its slot of the work limits).
    held: Option<Box<dyn Send + Sync>>,
}

impl ExportStream {
    /// Keeps `value` until the stream is dropped.
    pub fn holding(mut self, value: impl Send + Sync + 'static) -> Self {
        self.held = Some(Box::new(value));
        self
    }

    /// The next chunk, or `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<LedgerResult<Bytes>> {
        match self.first.take() {
            Some(first) => Some(Ok(first)),
            None => self.receiver.recv().await,
        }
    }

    /// The whole journal as one text, for a caller that wants it whole.
    pub async fn into_text(mut self) -> LedgerResult<String> {
        let mut text = Vec::new();
        while let Some(chunk) = self.next_chunk().await {
            text.extend_from_slice(&chunk?);
        }
        String::from_utf8(text).map_err(|_| {
            LedgerError::Storage(crate::Error::Setup("the export is not UTF-8".to_owned()))
        })
    }
}

impl futures::Stream for ExportStream {
    type Item = LedgerResult<Bytes>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.first.take() {
            Some(first) => std::task::Poll::Ready(Some(Ok(first))),
            None => self.receiver.poll_recv(cx),
        }
    }
}

/// The day a beancount `balance` must carry to check the end of `as_of`
/// (beancount checks at the start of the day), if beancount can parse it.
fn beancount_check_date(as_of: NaiveDate) -> Option<NaiveDate> {
    as_of
        .succ_opt()
        .filter(|next| chrono::Datelike::year(next) <= 9999)
}

/// One account as the export shows it.
#[derive(Debug, Clone)]
struct ExportAccount {
    id: i64,
    code: String,
    name: String,
    kind: AccountType,
    currency: String,
    /// Balance at the end of the export date, minor units, debits positive.
    balance: i64,
}

impl ExportAccount {
    fn from_row(
        (id, code, name, kind, currency, balance): AccountRow,
    ) -> Result<Self, sqlx::Error> {
        Ok(ExportAccount {
            id,
            kind: AccountType::parse(&kind).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown account type {kind:?}").into())
            })?,
            code,
            name,
            currency,
            balance,
        })
    }

    fn digits(&self) -> u32 {
        money::minor_digits(&self.currency).unwrap_or(2)
    }

    fn amount(&self, minor: i64) -> String {
        money::format_minor(minor, self.digits())
    }
}

/// One journal line with its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    entry: i64,
    date: NaiveDate,
    memo: String,
    reverses: Option<i64>,
    account: i64,
    amount: i64,
}

impl From<LineRow> for Line {
    fn from((entry, date, memo, reverses, account, amount): LineRow) -> Self {
        Line {
            entry,
            date,
            memo,
            reverses,
            account,
            amount,
        }
    }
}

/// Builds the journal text from accounts and lines fed in journal order.
struct Journal {
    format: ExportFormat,
    organization: String,
    as_of: NaiveDate,
    accounts: Vec<ExportAccount>,
    /// The journal's name of each of `accounts`.
    names: Vec<String>,
    /// Account id → index in `accounts`.
    by_id: HashMap<i64, usize>,
    /// The transactions written so far.
    body: String,
    /// The date of the first entry, which the beancount `open`s need.
    first_date: Option<NaiveDate>,
    /// The entry whose postings are being written.
    entry: Option<i64>,
}

impl Journal {
    fn new(
        format: ExportFormat,
        organization: &str,
        as_of: NaiveDate,
        accounts: Vec<ExportAccount>,
    ) -> Self {
        let by_id = accounts
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id, i))
            .collect();
        let names = accounts
            .iter()
            .map(|a| match format {
                ExportFormat::Hledger => hledger_account(a.kind, &a.code),
                ExportFormat::Beancount => beancount_account(a.kind, &a.code),
            })
            .collect();
        Journal {
            format,
            organization: organization.to_owned(),
            as_of,
            accounts,
            names,
            by_id,
            body: String::new(),
            first_date: None,
            entry: None,
        }
    }

    /// Adds a line; lines come in (date, entry, line) order.
    fn line(&mut self, line: Line) -> Result<(), String> {
        let index = *self.by_id.get(&line.account).ok_or_else(|| {
            format!(
                "entry {} posts to account {} of another organization",
                line.entry, line.account
            )
        })?;
        let (account, name) = (&self.accounts[index], &self.names[index]);
        let out = &mut self.body;
        if self.entry != Some(line.entry) {
            self.entry = Some(line.entry);
            self.first_date.get_or_insert(line.date);
            out.push('\n');
            match self.format {
                ExportFormat::Hledger => {
                    let _ = write!(out, "{} ({})", line.date, line.entry);
                    let description = hledger_description(&line.memo);
                    if !description.is_empty() {
                        let _ = write!(out, " {description}");
                    }
                    if let Some(reversed) = line.reverses {
                        let _ = write!(out, "  ; reverses:{reversed}");
                    }
                    out.push('\n');
                }
                ExportFormat::Beancount => {
                    let _ = writeln!(
                        out,
                        "{} * {}\n  entry: {}",
                        line.date,
                        beancount_string(&line.memo),
                        line.entry
                    );
                    if let Some(reversed) = line.reverses {
                        let _ = writeln!(out, "  reverses: {reversed}");
                    }
                }
            }
        }
        let indent = match self.format {
            ExportFormat::Hledger => "    ",
            ExportFormat::Beancount => "  ",
        };
        let _ = writeln!(
            out,
            "{indent}{name}  {} {}",
            account.amount(line.amount),
            account.currency
        );
        Ok(())
    }

    /// The transactions written since the last call.
    fn take_body(&mut self) -> String {
        std::mem::take(&mut self.body)
    }

    /// What comes before the transactions: a comment, options and the
    /// account declarations (beancount opens them on the first entry's
    /// date, so this waits for the first line).
    fn header(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "; AccuBooks ledger export of organization {}, as of {}.",
            one_line(&self.organization),
            self.as_of
        );
        match self.format {
            ExportFormat::Hledger => {
                out.push_str(
                    "; Accounts are named <type>:<code>; the account's name follows it.\n",
                );
                out.push_str("\ndecimal-mark .\n\n");
                for (currency, digits) in currencies(&self.accounts) {
                    // hledger wants a decimal mark in the sample even without decimals.
                    let zeros = "0".repeat(digits as usize);
                    let _ = writeln!(out, "commodity 1000.{zeros} {currency}");
                }
                out.push('\n');
                for (account, name) in self.accounts.iter().zip(&self.names) {
                    let _ = writeln!(out, "account {name}  ; {}", hledger_comment(&account.name));
                }
            }
            ExportFormat::Beancount => {
                out.push_str(
                    "; Accounts are named <Type>:C<code> with '-' written -H, '.' -D and '_' -U.\n\n",
                );
                if let Some(main) = main_currency(&self.accounts) {
                    let _ = writeln!(out, "option \"operating_currency\" \"{main}\"\n");
                }
                let opened = self.first_date.map_or(self.as_of, |d| d.min(self.as_of));
                for (account, name) in self.accounts.iter().zip(&self.names) {
                    let _ = writeln!(
                        out,
                        "{opened} open {name} {}\n  name: {}\n  code: {}",
                        account.currency,
                        beancount_string(&account.name),
                        beancount_string(&account.code)
                    );
                }
            }
        }
        out
    }

    /// What comes after the transactions: one exact balance assertion per
    /// account at the end of the export date.
    fn footer(&self) -> String {
        let mut out = String::new();
        if self.accounts.is_empty() {
            return out;
        }
        match self.format {
            ExportFormat::Hledger => {
                let _ = writeln!(
                    out,
                    "\n{} AccuBooks balances at the end of {}",
                    self.as_of, self.as_of
                );
                for (account, name) in self.accounts.iter().zip(&self.names) {
                    // `==`: the account holds exactly this and no other commodity.
                    let _ = writeln!(
                        out,
                        "    {name}  {} {cur} == {} {cur}",
                        account.amount(0),
                        account.amount(account.balance),
                        cur = account.currency
                    );
                }
            }
            ExportFormat::Beancount => {
                out.push('\n');
                // A beancount balance holds at the start of its day, and without
                // an explicit tolerance it allows one unit of the last digit.
                let checked = beancount_check_date(self.as_of).unwrap_or(self.as_of);
                for (account, name) in self.accounts.iter().zip(&self.names) {
                    let _ = writeln!(
                        out,
                        "{checked} balance {name}  {} ~ {} {}",
                        account.amount(account.balance),
                        account.amount(0),
                        account.currency
                    );
                }
            }
        }
        out
    }

    /// The whole text at once, as the stream sends it in pieces.
    #[cfg(test)]
    fn finish(mut self) -> String {
        let body = self.take_body();
        self.header() + &body + &self.footer()
    }
}

/// The currencies of the accounts with their fraction digits, by code.
fn currencies(accounts: &[ExportAccount]) -> BTreeMap<&str, u32> {
    accounts
        .iter()
        .map(|a| (a.currency.as_str(), a.digits()))
        .collect()
}

/// The currency most accounts use (the one the organization registered
/// with, whose default chart it got); the first by code on a tie.
fn main_currency(accounts: &[ExportAccount]) -> Option<&str> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for account in accounts {
        *counts.entry(account.currency.as_str()).or_default() += 1;
    }
    counts
        .into_iter()
        .rev()
        .max_by_key(|(_, count)| *count)
        .map(|(currency, _)| currency)
}

/// hledger's top-level account for a type (hledger infers the account type
/// from these names).
fn hledger_root(kind: AccountType) -> &'static str {
    match kind {
        AccountType::Asset => "assets",
        AccountType::Liability => "liabilities",
        AccountType::Equity => "equity",
        AccountType::Revenue => "income",
        AccountType::Expense => "expenses",
    }
}

/// `assets:1000`: account codes are valid hledger name components as they
/// are (no `:`, no spaces).
fn hledger_account(kind: AccountType, code: &str) -> String {
    format!("{}:{code}", hledger_root(kind))
}

/// `Assets:C1000`; see [`beancount_component`].
fn beancount_account(kind: AccountType, code: &str) -> String {
    let root = match kind {
        AccountType::Asset => "Assets",
        AccountType::Liability => "Liabilities",
        AccountType::Equity => "Equity",
        AccountType::Revenue => "Income",
        AccountType::Expense => "Expenses",
    };
    format!("{root}:{}", beancount_component(code))
}

/// A beancount account component for a code: `C`, then the code with `-`,
/// `.` and `_` written `-H`, `-D` and `-U`. Every other character of the code
/// alphabet (ASCII letters and digits) stands for itself, and `-` only ever
/// starts a two-character escape, so distinct codes give distinct names.
fn beancount_component(code: &str) -> String {
    let mut out = String::with_capacity(code.len() + 1);
    out.push('C');
    for c in code.chars() {
        match c {
            '-' => out.push_str("-H"),
            '.' => out.push_str("-D"),
            '_' => out.push_str("-U"),
            c => out.push(c),
        }
    }
    out
}

/// Free text on one line: control characters (newlines, tabs) and Unicode
/// line or paragraph separators become spaces, and the ends are trimmed.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A memo as an hledger description. hledger has no escapes: a `;` would
/// start a comment (whose `name:value` words are tags), so it is written as
/// the full-width `；`. A leading `(`, `*` or `!` is harmless because the
/// entry id is written as the transaction code before it.
fn hledger_description(memo: &str) -> String {
    one_line(memo).replace(';', "\u{FF1B}")
}

/// Text for an hledger comment. Comments are read for `name:value` tags,
/// and some (`type:`) change how hledger reads the account or fail the
/// file, so `:` is written as the full-width `：`.
fn hledger_comment(text: &str) -> String {
    one_line(text).replace(':', "\u{FF1A}")
}

/// A quoted beancount string: one line, with `\` and `"` escaped.
fn beancount_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in one_line(text).chars() {
        if matches!(c, '\\' | '"') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
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

    fn account(
        id: i64,
        code: &str,
        kind: AccountType,
        currency: &str,
        balance: i64,
    ) -> ExportAccount {
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
        let mut journal = Journal::new(format, "org-1", date("2026-02-28"), accounts);
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
                })
                .unwrap();
        }
        journal.finish()
    }

    #[test]
    fn hledger_journal() {
        let text = sample(ExportFormat::Hledger);
        let expected = "\
; AccuBooks ledger export of organization org-1, as of 2026-02-28.
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
            "; AccuBooks ledger export of organization org-1, as of 2026-02-28.\n\
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
        let mut journal = Journal::new(ExportFormat::Hledger, "org", NaiveDate::MIN, vec![]);
        let line = Line {
            entry: 1,
            date: NaiveDate::MIN,
            memo: String::new(),
            reverses: None,
            account: 9,
            amount: 1,
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
}

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
use super::balances::{Boundary, balance_sql};
use super::{LedgerError, LedgerResult};
use crate::db::Database;
use crate::db::sql::{BeginScoped, on_pool};
use crate::metadata::Metadata;
use crate::money;
use crate::organization::OrganizationId;

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

/// Every account with its balance at the end of `$2`, as the reports read
/// it ([`balance_sql`]), in the same snapshot as the journal query.
fn accounts_sql() -> String {
    format!(
        "SELECT a.id, a.code, a.name, a.type, a.currency, {} \
         FROM accounts a WHERE a.organization_id = $1 ORDER BY a.code",
        balance_sql("a", Boundary::EndOf, "$2")
    )
}

/// Every journal line up to `$2`, in the order the journal lists them.
const LINES_SQL: &str = "SELECT e.id, e.entry_date, e.memo, e.reverses, l.account_id, l.amount, \
     CAST(e.metadata AS TEXT) \
     FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.id \
     WHERE e.organization_id = $1 AND e.entry_date <= $2 \
     ORDER BY e.entry_date, e.id, l.line_no";

type AccountRow = (i64, String, String, String, String, i64);
type LineRow = (
    i64,
    NaiveDate,
    String,
    Option<i64>,
    i64,
    i64,
    Option<String>,
);

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
    organization: &OrganizationId,
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
                    let accounts: Vec<AccountRow> = sqlx::query_as(sqlx::AssertSqlSafe(accounts_sql()))
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
    /// The entry's metadata as stored.
    metadata: Option<String>,
}

impl From<LineRow> for Line {
    fn from((entry, date, memo, reverses, account, amount, metadata): LineRow) -> Self {
        Line {
            entry,
            date,
            memo,
            reverses,
            account,
            amount,
            metadata,
        }
    }
}

/// Builds the journal text from accounts and lines fed in journal order.
struct Journal {
    format: ExportFormat,
    organization: OrganizationId,
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
        organization: &OrganizationId,
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
                    let metadata = Metadata::from_stored(line.metadata.as_deref());
                    for (key, value) in metadata.iter() {
                        let _ = writeln!(out, "    ; {key}: {}", hledger_tag_value(value));
                    }
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
                    let metadata = Metadata::from_stored(line.metadata.as_deref());
                    for (key, value) in metadata.iter() {
                        let _ =
                            writeln!(out, "  {}: {}", beancount_key(key), beancount_string(value));
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

/// A metadata value as an hledger tag value, which ends at a comma or the
/// end of the line: a comment's text (so a `word:` in it is not read as
/// another tag), with `,` written as the full-width `，`.
fn hledger_tag_value(value: &str) -> String {
    hledger_comment(value).replace(',', "\u{FF0C}")
}

/// A metadata key as a beancount metadata key (`[a-z][a-zA-Z0-9-_]*`, and
/// not `entry` or `reverses`, which the export writes itself): as it is
/// when it is one, else `meta-` and the key with `.` as `_`.
fn beancount_key(key: &str) -> String {
    let usable = key.starts_with(|c: char| c.is_ascii_lowercase())
        && !key.contains('.')
        && !matches!(key, "entry" | "reverses");
    if usable {
        key.to_owned()
    } else {
        format!("meta-{}", key.replace('.', "_"))
    }
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
mod tests;

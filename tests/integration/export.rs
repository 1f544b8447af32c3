//! `GET /api/export/ledger`: the books exported as hledger and beancount
//! journals, checked by the real tools on both stores, and proof that their
//! balance assertions catch a tampered posting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use http::StatusCode;
use serde_json::{Value, json};

use crate::books::{Books, Door, Store};
use crate::support::server::Host;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_on_postgres() {
    exports_are_checked_by_hledger_and_beancount(Store::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_on_sqlite() {
    exports_are_checked_by_hledger_and_beancount(Store::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_exports_stream_in_chunks_through_every_host() {
    for host in [Host::Axum, Host::Warp] {
        large_export_streams(host).await;
    }
}

/// Books whose journal is about a megabyte arrive in many chunks (no
/// `Content-Length`: the server never held the whole text), and the text
/// put together is still a journal the tools accept, with the balances of
/// the trial balance.
async fn large_export_streams(host: Host) {
    let books = Books::start(Door {
        store: Store::Sqlite,
        host,
    })
    .await;
    let token = books.register("big-export@acme.test", "USD").await;
    let memo = "A long memo so that each entry takes room in the journal: ".repeat(3);
    for batch in 0..3 {
        let entries: Vec<Value> = (0..1000)
            .map(|n| {
                json!({
                    "date": format!("2026-01-{:02}", 1 + (n % 28)),
                    "memo": format!("{memo}{batch}-{n}"),
                    "lines": [{"account": "1000", "debit": "1.25"}, {"account": "4000", "credit": "1.25"}],
                })
            })
            .collect();
        books.post_batch(&token, entries).await;
    }
    for format in ["hledger", "beancount"] {
        let mut response = books
            .server
            .client
            .get(format!(
                "{}/api/export/ledger?format={format}&as_of=2026-12-31",
                books.server.base
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.headers().get("content-length").is_none(),
            "{host:?}: a streamed export has no length"
        );
        let (mut chunks, mut text) = (0, Vec::new());
        while let Some(chunk) = response.chunk().await.unwrap() {
            chunks += 1;
            text.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(text).unwrap();
        assert!(text.len() > 500_000, "{}", text.len());
        assert!(chunks >= 5, "{host:?} {format}: {chunks} chunks");
        let dir = tempfile::tempdir().unwrap();
        if format == "hledger" {
            let file = write(dir.path(), "big.journal", &text);
            let outcome = hledger(&["check", "--strict"], &file).await;
            assert!(outcome.ok, "{}", outcome.output);
            let expected = trial_balance_by_hledger_name(&books, &token, "2026-12-31").await;
            assert_eq!(expected["assets:1000"], "3750.00 USD");
            assert_eq!(hledger_assertions(&text), expected);
        } else {
            let outcome = bean_check(&write(dir.path(), "big.beancount", &text)).await;
            assert!(
                outcome.ok && outcome.output.is_empty(),
                "{}",
                outcome.output
            );
            assert!(text.contains("2027-01-01 balance Assets:C1000  3750.00 ~ 0.00 USD"));
        }
    }
}

const EVIL_MEMO: &str = "'; DROP TABLE x; --\"\nünïcödé 帳簿: type:Z | (x) ;";

/// A tool's outcome: success, and stdout + stderr.
struct Outcome {
    ok: bool,
    output: String,
}

async fn run(mut command: tokio::process::Command, install_hint: &str) -> Outcome {
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let output = command
        .output()
        .await
        .unwrap_or_else(|err| panic!("cannot run {program}: {err}. {install_hint}"));
    Outcome {
        ok: output.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// `hledger -f FILE <args…>`.
async fn hledger(args: &[&str], file: &Path) -> Outcome {
    let mut command = tokio::process::Command::new("hledger");
    command.arg("-f").arg(file).args(args);
    run(
        command,
        "Install it with `apt-get install -y hledger` (scripts/test does so in CI).",
    )
    .await
}

const BEANCOUNT_HINT: &str = "Create the venv with `python3 -m venv .venv && \
     .venv/bin/pip install beancount` in the workspace root (scripts/test does so in CI).";

/// The project venv's `bean-check`, else the one on PATH.
fn bean_check_program() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/bean-check");
    if venv.exists() {
        return venv;
    }
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| dir.join("bean-check").is_file())
    });
    assert!(
        on_path,
        "bean-check not found: neither {} nor `bean-check` on PATH. {BEANCOUNT_HINT}",
        venv.display()
    );
    PathBuf::from("bean-check")
}

/// `bean-check FILE`.
async fn bean_check(file: &Path) -> Outcome {
    let mut command = tokio::process::Command::new(bean_check_program());
    command.arg(file);
    run(command, BEANCOUNT_HINT).await
}

/// GET the export; returns status, content type, disposition and body.
async fn export(
    books: &Books,
    token: Option<&str>,
    query: &str,
) -> (StatusCode, String, String, String) {
    let mut request = books
        .server
        .client
        .get(format!("{}/api/export/ledger?{query}", books.server.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    let status = response.status();
    (
        status,
        content_type,
        disposition,
        response.text().await.unwrap(),
    )
}

/// Exports `format` as of `as_of`, expecting success.
async fn export_ok(books: &Books, token: &str, format: &str, as_of: &str) -> String {
    let (status, content_type, disposition, body) = export(
        books,
        Some(token),
        &format!("format={format}&as_of={as_of}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type, "text/plain; charset=utf-8");
    let file = if format == "hledger" {
        "books.journal"
    } else {
        "books.beancount"
    };
    assert_eq!(disposition, format!("attachment; filename=\"{file}\""));
    body
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Every account's signed balance in the trial balance, as hledger would
/// print it (`-100.00 USD`), keyed by hledger account name; zeros left out.
async fn trial_balance_by_hledger_name(
    books: &Books,
    token: &str,
    as_of: &str,
) -> BTreeMap<String, String> {
    let tb = books.trial_balance(token, as_of).await;
    let is_zero = |s: &str| s.chars().all(|c| c == '0' || c == '.');
    tb["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| {
            let (debit, credit) = (a["debit"].as_str().unwrap(), a["credit"].as_str().unwrap());
            let amount = match (is_zero(debit), is_zero(credit)) {
                (true, true) => return None,
                (false, _) => debit.to_owned(),
                (true, false) => format!("-{credit}"),
            };
            let root = match a["type"].as_str().unwrap() {
                "asset" => "assets",
                "liability" => "liabilities",
                "equity" => "equity",
                "revenue" => "income",
                _ => "expenses",
            };
            Some((
                format!("{root}:{}", a["code"].as_str().unwrap()),
                format!("{amount} {}", a["currency"].as_str().unwrap()),
            ))
        })
        .collect()
}

/// The balances `hledger bal` computes from the journal's postings.
async fn hledger_balances(file: &Path) -> BTreeMap<String, String> {
    let outcome = hledger(&["bal", "-N", "--flat", "-O", "csv"], file).await;
    assert!(outcome.ok, "{}", outcome.output);
    outcome
        .output
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split("\",\"").map(|f| f.trim_matches('"')).collect();
            (fields[0].to_owned(), fields[1].to_owned())
        })
        .collect()
}

/// The asserted balances (`== X CUR`) of an hledger export, zeros left out.
fn hledger_assertions(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let (posting, asserted) = line.split_once(" == ")?;
            let account = posting.split_whitespace().next()?;
            let zero = asserted
                .split(' ')
                .next()?
                .chars()
                .all(|c| c == '0' || c == '.');
            (!zero).then(|| (account.to_owned(), asserted.to_owned()))
        })
        .collect()
}

/// Replaces the first posting of `amount` and its counter-posting `-amount`
/// with `by` and `-by`, so the entry still balances but no longer matches
/// the stored balances.
fn tamper(text: &str, amount: &str, by: &str) -> String {
    let mut debit_done = false;
    let mut credit_done = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            // Postings are indented (4 spaces in hledger, 2 in beancount);
            // hledger's assertions carry `==`.
            let is_posting = line.starts_with("  ") && !line.contains(" == ");
            if is_posting && !debit_done && line.ends_with(&format!("  {amount}")) {
                debit_done = true;
                return line.replace(&format!("  {amount}"), &format!("  {by}"));
            }
            if is_posting && !credit_done && line.ends_with(&format!("  -{amount}")) {
                credit_done = true;
                return line.replace(&format!("  -{amount}"), &format!("  -{by}"));
            }
            line.to_owned()
        })
        .collect();
    assert!(
        debit_done && credit_done,
        "no posting of {amount} to tamper with"
    );
    lines.join("\n") + "\n"
}

async fn post_entry(books: &Books, token: &str, date: &str, memo: &str, lines: Value) -> i64 {
    let (status, body) = books
        .call(
            "POST",
            "/api/journal-entries",
            Some(token),
            Some(json!({"date": date, "memo": memo, "lines": lines})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

async fn exports_are_checked_by_hledger_and_beancount(store: Store) {
    let books = Books::start(store).await;
    let token = books.register("export@acme.test", "USD").await;
    // Accounts in other currencies, with codes using every special character
    // and names full of what journal syntaxes care about.
    for (code, name, kind, currency) in [
        ("1010.jp", "Tokyo \"cash\"; yen", "asset", "JPY"),
        ("4010-jp", "Sales: Japan ; type:Z", "revenue", "JPY"),
        ("1020_kw", "Kuwait \\ dinar ünï", "asset", "KWD"),
        ("3010.kw", "Capital (KWD)", "equity", "KWD"),
    ] {
        let (status, body) = books
            .call(
                "POST",
                "/api/accounts",
                Some(&token),
                Some(json!({"code": code, "name": name, "type": kind, "currency": currency})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let sale = |amount: &str| json!([{"account": "1000", "debit": amount}, {"account": "4000", "credit": amount}]);
    post_entry(&books, &token, "2026-01-05", EVIL_MEMO, sale("100.00")).await;
    // Metadata whose keys beancount would refuse as they are and whose
    // values hold what either syntax cares about.
    let (status, body) = books
        .call(
            "POST",
            "/api/journal-entries",
            Some(&token),
            Some(
                json!({"date": "2026-01-06", "memo": "Tagged sale", "lines": sale("1.00"),
                        "metadata": {"order": "A-1, \"quoted\"; type:Z", "2nd.key": "back\\slash",
                                     "entry": "mine", "region.eu": ""}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    post_entry(
        &books,
        &token,
        "2026-01-20",
        "Rent: January (50%)",
        json!([{"account": "5000", "debit": "30.25"}, {"account": "1000", "credit": "30.25"}]),
    )
    .await;
    post_entry(
        &books,
        &token,
        "2026-01-25",
        "Tokyo sale",
        json!([{"account": "1010.jp", "debit": "1500"}, {"account": "4010-jp", "credit": "1500"}]),
    )
    .await;
    post_entry(
        &books,
        &token,
        "2026-02-03",
        "Capital in dinars",
        json!([{"account": "1020_kw", "debit": "1.005"}, {"account": "3010.kw", "credit": "1.005"}]),
    )
    .await;
    let february = post_entry(
        &books,
        &token,
        "2026-02-10",
        "February sale",
        sale("250.00"),
    )
    .await;
    let (status, reversal) = books
        .call(
            "POST",
            &format!("/api/journal-entries/{february}/reverse"),
            Some(&token),
            Some(json!({"date": "2026-02-15"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reversal}");
    post_entry(
        &books,
        &token,
        "2026-02-20",
        "Two currencies at once",
        json!([
            {"account": "1000", "debit": "12.34"}, {"account": "4000", "credit": "12.34"},
            {"account": "1010.jp", "debit": "200"}, {"account": "4010-jp", "credit": "200"},
        ]),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();

    // hledger accepts the journal, strictly, and agrees with the trial balance.
    let journal = export_ok(&books, &token, "hledger", "2026-02-28").await;
    let journal_file = write(dir.path(), "books.journal", &journal);
    for args in [
        &["check"][..],
        &["check", "--strict"],
        &["check", "ordereddates"],
    ] {
        let outcome = hledger(args, &journal_file).await;
        assert!(
            outcome.ok,
            "hledger {args:?} failed:\n{}\n{journal}",
            outcome.output
        );
    }
    let expected = trial_balance_by_hledger_name(&books, &token, "2026-02-28").await;
    assert_eq!(expected["assets:1000"], "83.09 USD");
    assert_eq!(expected["assets:1010.jp"], "1700 JPY");
    assert_eq!(expected["equity:3010.kw"], "-1.005 KWD");
    assert_eq!(hledger_balances(&journal_file).await, expected, "{journal}");
    assert_eq!(hledger_assertions(&journal), expected);
    assert!(
        journal.contains(&format!("  ; reverses:{february}")),
        "{journal}"
    );
    // Each metadata pair is a tag of its transaction, as hledger reads it.
    let tags = hledger(&["tags", "--values", "order"], &journal_file).await;
    assert!(tags.ok, "{}", tags.output);
    assert!(
        tags.output
            .contains("A-1\u{FF0C} \"quoted\"; type\u{FF1A}Z"),
        "{}",
        tags.output
    );
    for tag in ["2nd.key", "entry", "region.eu"] {
        let listed = hledger(&["tags", tag], &journal_file).await;
        assert!(listed.output.contains(tag), "{tag}: {}", listed.output);
    }

    // bean-check accepts the beancount file without a word.
    let ledger = export_ok(&books, &token, "beancount", "2026-02-28").await;
    let ledger_file = write(dir.path(), "books.beancount", &ledger);
    let outcome = bean_check(&ledger_file).await;
    assert!(
        outcome.ok && outcome.output.is_empty(),
        "bean-check:\n{}\n{ledger}",
        outcome.output
    );
    assert!(
        ledger.contains("2026-03-01 balance Assets:C1010-Djp  1700 ~ 0 JPY"),
        "{ledger}"
    );
    assert!(ledger.contains("2026-03-01 balance Equity:C3010-Dkw  -1.005 ~ 0.000 KWD"));
    assert!(ledger.contains("2026-03-01 balance Assets:C1000  83.09 ~ 0.00 USD"));
    for line in [
        "  order: \"A-1, \\\"quoted\\\"; type:Z\"",
        "  meta-2nd_key: \"back\\\\slash\"",
        "  meta-entry: \"mine\"",
        "  meta-region_eu: \"\"",
    ] {
        assert!(ledger.contains(line), "{line}\n{ledger}");
    }

    // The assertions bite: one cent more on a posting (and on its
    // counter-posting, so the entry still balances) fails both checks.
    let tampered = tamper(&journal, "100.00 USD", "100.01 USD");
    let tampered_file = write(dir.path(), "tampered.journal", &tampered);
    let outcome = hledger(&["check"], &tampered_file).await;
    assert!(
        !outcome.ok,
        "hledger accepted a tampered journal:\n{tampered}"
    );
    assert!(
        outcome.output.contains("balance assertion"),
        "{}",
        outcome.output
    );
    let tampered = tamper(&ledger, "100.00 USD", "100.01 USD");
    let tampered_file = write(dir.path(), "tampered.beancount", &tampered);
    let outcome = bean_check(&tampered_file).await;
    assert!(
        !outcome.ok,
        "bean-check accepted a tampered file:\n{tampered}"
    );
    assert!(
        outcome.output.contains("Balance failed"),
        "{}",
        outcome.output
    );
    // The same for a yen posting, where the currency has no minor unit.
    let tampered = tamper(&ledger, "1500 JPY", "1501 JPY");
    let outcome = bean_check(&write(dir.path(), "yen.beancount", &tampered)).await;
    assert!(
        !outcome.ok && outcome.output.contains("Balance failed"),
        "{}",
        outcome.output
    );

    // As of the end of January, February is left out and the assertions
    // are January's trial balance.
    let january = export_ok(&books, &token, "hledger", "2026-01-31").await;
    assert!(
        !january.lines().any(|l| l.starts_with("2026-02")),
        "{january}"
    );
    let january_file = write(dir.path(), "january.journal", &january);
    let outcome = hledger(&["check", "--strict"], &january_file).await;
    assert!(outcome.ok, "{}\n{january}", outcome.output);
    let expected = trial_balance_by_hledger_name(&books, &token, "2026-01-31").await;
    assert_eq!(expected["assets:1000"], "70.75 USD");
    assert_eq!(hledger_assertions(&january), expected);
    assert_eq!(hledger_balances(&january_file).await, expected);
    let january = export_ok(&books, &token, "beancount", "2026-01-31").await;
    assert!(
        !january.lines().any(|l| l.starts_with("2026-02-1")),
        "{january}"
    );
    assert!(january.contains("2026-02-01 balance Assets:C1000  70.75 ~ 0.00 USD"));
    assert!(january.contains("2026-02-01 balance Assets:C1020-Ukw  0.000 ~ 0.000 KWD"));
    let outcome = bean_check(&write(dir.path(), "january.beancount", &january)).await;
    assert!(
        outcome.ok && outcome.output.is_empty(),
        "{}\n{january}",
        outcome.output
    );

    // Before any entry: declarations and zero assertions only, still valid.
    let empty = export_ok(&books, &token, "beancount", "2025-12-31").await;
    let outcome = bean_check(&write(dir.path(), "empty.beancount", &empty)).await;
    assert!(
        outcome.ok && outcome.output.is_empty(),
        "{}\n{empty}",
        outcome.output
    );
    let empty = export_ok(&books, &token, "hledger", "2025-12-31").await;
    assert!(
        hledger(&["check"], &write(dir.path(), "empty.journal", &empty))
            .await
            .ok
    );

    // Without a date the export is as of today (after every entry, unless
    // the clock is far behind).
    let (status, _, _, today) = export(&books, Some(&token), "format=hledger").await;
    assert_eq!(status, StatusCode::OK);
    if chrono::Utc::now().date_naive().to_string().as_str() > "2026-02-28" {
        assert_eq!(hledger_assertions(&today), hledger_assertions(&journal));
    }

    // Bad queries, and no token.
    for (query, code) in [
        ("format=ledger", "INVALID_FORMAT"),
        ("", "INVALID_QUERY"),
        ("format=hledger&as_of=yesterday", "INVALID_DATE"),
        ("format=hledger&colour=red", "INVALID_QUERY"),
    ] {
        let (status, _, _, body) = export(&books, Some(&token), query).await;
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code)),
            "{query}: {body}"
        );
    }
    let (status, _, _, _) = export(&books, None, "format=hledger").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Another organization's export holds none of these books.
    let stranger = books.register("stranger@other.test", "EUR").await;
    let theirs = export_ok(&books, &stranger, "hledger", "2026-02-28").await;
    assert!(!theirs.contains("2026-01-05"), "{theirs}");
    assert!(hledger_assertions(&theirs).is_empty());
}

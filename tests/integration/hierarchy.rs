//! The account tree (issue 24, contract §5): parents on accounts, reports
//! that roll children up into their parents, and the cash-flow statement.
//! Every case through a real server on PostgreSQL (row-level security on)
//! and SQLite; report jobs in JSON and CSV answer the same numbers.

use http::StatusCode;
use serde_json::{Value, json};

use crate::books::{Books, Store};
use crate::jobs::report_result;

/// Cents of a decimal string (`"-12.34"`), or of null as `None`.
fn cents(text: &Value) -> Option<i64> {
    let text = text.as_str()?;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (units, fraction) = digits.split_once('.').unwrap();
    let value = units.parse::<i64>().unwrap() * 100 + fraction.parse::<i64>().unwrap();
    Some(if negative { -value } else { value })
}

/// Opens an account; answers status and body.
async fn open(books: &Books, token: &str, account: Value) -> (StatusCode, Value) {
    books
        .call("POST", "/api/accounts", Some(token), Some(account))
        .await
}

/// Opens a USD account under `parent`.
async fn open_under(books: &Books, token: &str, code: &str, kind: &str, parent: Option<&str>) {
    let (status, body) = open(
        books,
        token,
        json!({"code": code, "name": format!("Account {code}"), "type": kind,
               "currency": "USD", "parent": parent}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["parent"], json!(parent), "{body}");
}

/// Books whose jobs run on the database (no Redis needed), on `store`.
async fn with_jobs(store: Store) -> Books {
    Books::start_with(store, &[("JOB_TRANSPORT", "database".to_owned())]).await
}

async fn get(books: &Books, token: &str, path: &str) -> Value {
    let (status, body) = books.call("GET", path, Some(token), None).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// Asks for a report as a job and answers its result's text.
async fn as_job(books: &Books, token: &str, report: &str, params: Value, format: &str) -> String {
    let (status, job) = books
        .call(
            "POST",
            "/api/report-jobs",
            Some(token),
            Some(json!({"report": report, "params": params, "format": format})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    report_result(books, token, &job).await.1
}

/// A CSV table (no quoted fields in these reports) as maps by header.
fn csv_rows(text: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), header.len(), "{line}");
            header
                .iter()
                .zip(cells)
                .map(|(h, c)| ((*h).to_owned(), c.to_owned()))
                .collect()
        })
        .collect()
}

/// A parent must exist, have the child's type and currency, and be less
/// than 8 levels deep; a refused account is not opened. The chart answers
/// each account's parent.
async fn parents_are_checked(store: Store) {
    let books = Books::start(store).await;
    let token = books.register("tree@acme.test", "USD").await;
    let (status, euros) = open(
        &books,
        &token,
        json!({"code": "1500", "name": "Euro cash", "type": "asset", "currency": "EUR"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{euros}");
    assert_eq!(euros["parent"], Value::Null);
    for (parent, kind, code) in [
        ("1999", "asset", "UNKNOWN_ACCOUNT"),
        ("4000", "asset", "PARENT_TYPE_MISMATCH"),
        ("1000", "revenue", "PARENT_TYPE_MISMATCH"),
        ("1500", "asset", "PARENT_CURRENCY_MISMATCH"),
    ] {
        let (status, body) = open(
            &books,
            &token,
            json!({"code": "1600", "name": "Child", "type": kind, "currency": "USD",
                   "parent": parent}),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{parent}: {body}");
        assert_eq!(body["code"], code, "{body}");
        assert!(
            body["error"].as_str().unwrap().contains(parent),
            "the sentence names the parent: {body}"
        );
    }
    // Eight levels: 1000 and seven below it. A ninth is refused.
    let mut parent = "1000".to_owned();
    for level in 2..=8 {
        let code = format!("1{level}10");
        open_under(&books, &token, &code, "asset", Some(&parent)).await;
        parent = code;
    }
    let (status, body) = open(
        &books,
        &token,
        json!({"code": "1901", "name": "Too deep", "type": "asset", "currency": "USD",
               "parent": "1810"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "ACCOUNT_TREE_TOO_DEEP", "{body}");
    let chart = books.list("/api/accounts?limit=500", &token).await;
    let codes: Vec<&str> = chart.iter().map(|a| a["code"].as_str().unwrap()).collect();
    assert!(
        !codes.contains(&"1600") && !codes.contains(&"1901"),
        "{codes:?}"
    );
    let parent_of =
        |code: &str| chart.iter().find(|a| a["code"] == code).unwrap()["parent"].clone();
    assert_eq!(parent_of("1210"), json!("1000"));
    assert_eq!(parent_of("1810"), json!("1710"));
    assert_eq!(parent_of("1000"), Value::Null);
}

/// The entries both organizations of the roll-up case post.
fn roll_up_entries() -> Vec<(&'static str, Value)> {
    let line = |account: &str, side: &str, amount: &str| json!({"account": account, side: amount});
    vec![
        (
            "2026-01-05",
            json!([
                line("1000", "debit", "100.01"),
                line("4000", "credit", "100.01")
            ]),
        ),
        (
            "2026-01-06",
            json!([
                line("1010", "debit", "250.10"),
                line("4010", "credit", "250.10")
            ]),
        ),
        (
            "2026-01-07",
            json!([
                line("1011", "debit", "33.33"),
                line("4011", "credit", "33.33")
            ]),
        ),
        (
            "2026-01-08",
            json!([
                line("5010", "debit", "20.05"),
                line("1011", "credit", "20.05")
            ]),
        ),
        (
            "2026-01-09",
            json!([
                line("1020", "debit", "7.77"),
                line("3000", "credit", "7.77")
            ]),
        ),
        (
            "2026-01-10",
            json!([
                line("5000", "debit", "1.50"),
                line("1000", "credit", "1.50")
            ]),
        ),
    ]
}

/// A three-level tree (1000 > 1010 > 1011, 1000 > 1020; 4000 > 4010 >
/// 4011; 5000 > 5010): every report lists children after their parent,
/// with subtotals to the cent, and the same totals and per-account amounts
/// as books with the same accounts and no parents. The report jobs answer
/// the same, in JSON and CSV.
async fn reports_roll_children_up(store: Store) {
    let books = with_jobs(store).await;
    let token = books.register("rollup@acme.test", "USD").await;
    let flat = books.register("flat@acme.test", "USD").await;
    for (code, kind, parent) in [
        ("1010", "asset", "1000"),
        ("1011", "asset", "1010"),
        ("1020", "asset", "1000"),
        ("4010", "revenue", "4000"),
        ("4011", "revenue", "4010"),
        ("5010", "expense", "5000"),
    ] {
        open_under(&books, &token, code, kind, Some(parent)).await;
        open_under(&books, &flat, code, kind, None).await;
    }
    for (date, lines) in roll_up_entries() {
        books.post(&token, date, lines.clone()).await;
        books.post(&flat, date, lines).await;
    }

    let tb = books.trial_balance(&token, "2026-01-31").await;
    let flat_tb = books.trial_balance(&flat, "2026-01-31").await;
    for field in ["total_debit", "total_credit", "totals"] {
        assert_eq!(tb[field], flat_tb[field], "{field}");
    }
    assert_eq!(tb["total_debit"], "391.21");
    let rows = tb["accounts"].as_array().unwrap();
    let order: Vec<(&str, u64)> = rows
        .iter()
        .map(|r| (r["code"].as_str().unwrap(), r["level"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        &order[..5],
        [
            ("1000", 0),
            ("1010", 1),
            ("1011", 2),
            ("1020", 1),
            ("1100", 0)
        ]
    );
    let row = |code: &str| rows.iter().find(|r| r["code"] == code).unwrap().clone();
    // 1000: 100.01 - 1.50 own, 250.10 in 1010, 13.28 in 1011, 7.77 in 1020.
    let expected = [
        ("1000", "98.51", Some("369.66"), Value::Null),
        ("1010", "250.10", Some("263.38"), json!("1000")),
        ("1011", "13.28", None, json!("1010")),
        ("1020", "7.77", None, json!("1000")),
    ];
    for (code, debit, subtotal, parent) in expected {
        let r = row(code);
        assert_eq!(r["debit"], debit, "{r}");
        assert_eq!(r["parent"], parent, "{r}");
        assert_eq!(r["subtotal_debit"], json!(subtotal), "{r}");
        let credit = subtotal.map(|_| "0.00");
        assert_eq!(r["subtotal_credit"], json!(credit), "{r}");
    }
    assert_eq!(row("4000")["subtotal_credit"], "383.44");
    assert_eq!(row("4000")["subtotal_debit"], "0.00");
    assert_eq!(row("4010")["subtotal_credit"], "283.43");
    assert_eq!(row("5000")["subtotal_debit"], "21.55");
    assert_eq!(row("3000")["subtotal_debit"], Value::Null);
    // Each account's own balance is as in the flat books.
    for flat_row in flat_tb["accounts"].as_array().unwrap() {
        let r = row(flat_row["code"].as_str().unwrap());
        assert_eq!(
            (&r["debit"], &r["credit"]),
            (&flat_row["debit"], &flat_row["credit"])
        );
    }

    let bs = get(
        &books,
        &token,
        "/api/reports/balance-sheet?as_of=2026-01-31",
    )
    .await;
    let flat_bs = get(&books, &flat, "/api/reports/balance-sheet?as_of=2026-01-31").await;
    assert_eq!(bs["totals"], flat_bs["totals"]);
    assert_eq!(bs["totals"][0]["assets"], "369.66");
    let assets = bs["assets"].as_array().unwrap();
    assert_eq!(assets[0]["code"], "1000");
    assert_eq!(assets[0]["amount"], "98.51");
    assert_eq!(assets[0]["subtotal"], "369.66");
    assert_eq!(assets[1]["subtotal"], "263.38");
    assert_eq!(assets[2]["code"], "1011");
    assert_eq!(assets[2]["level"], 2);
    assert_eq!(assets[2]["subtotal"], Value::Null);

    let path = "/api/reports/income-statement?from=2026-01-01&to=2026-01-31";
    let is = get(&books, &token, path).await;
    let flat_is = get(&books, &flat, path).await;
    assert_eq!(is["totals"], flat_is["totals"]);
    assert_eq!(is["totals"][0]["net_income"], "361.89");
    let revenue: Vec<(&str, &str, Option<i64>)> = is["revenue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["code"].as_str().unwrap(),
                r["amount"].as_str().unwrap(),
                cents(&r["subtotal"]),
            )
        })
        .collect();
    assert_eq!(
        &revenue[..3],
        [
            ("4000", "100.01", Some(38_344)),
            ("4010", "250.10", Some(28_343)),
            ("4011", "33.33", None)
        ]
    );
    assert_eq!(is["expenses"][0]["subtotal"], "21.55");

    // The jobs: the same JSON; CSV rows with the same amounts and subtotals.
    let job = as_job(
        &books,
        &token,
        "trial-balance",
        json!({"as_of": "2026-01-31"}),
        "json",
    )
    .await;
    assert_eq!(serde_json::from_str::<Value>(&job).unwrap(), tb);
    let job = as_job(
        &books,
        &token,
        "income-statement",
        json!({"from": "2026-01-01", "to": "2026-01-31"}),
        "json",
    )
    .await;
    assert_eq!(serde_json::from_str::<Value>(&job).unwrap(), is);
    let csv = as_job(
        &books,
        &token,
        "trial-balance",
        json!({"as_of": "2026-01-31"}),
        "csv",
    )
    .await;
    let table = csv_rows(&csv);
    assert_eq!(table.len(), rows.len());
    for (cells, r) in table.iter().zip(rows) {
        assert_eq!(cells["code"], r["code"].as_str().unwrap());
        assert_eq!(cells["parent"], r["parent"].as_str().unwrap_or(""));
        assert_eq!(cells["level"], r["level"].to_string());
        assert_eq!(
            cells["subtotal_debit"],
            r["subtotal_debit"].as_str().unwrap_or("")
        );
        assert_eq!(
            cells["subtotal_credit"],
            r["subtotal_credit"].as_str().unwrap_or("")
        );
        assert_eq!(cells["debit"], r["debit"].as_str().unwrap());
    }
    let csv = as_job(
        &books,
        &token,
        "balance-sheet",
        json!({"as_of": "2026-01-31"}),
        "csv",
    )
    .await;
    let first = &csv_rows(&csv)[0];
    assert_eq!(
        (
            first["section"].as_str(),
            first["code"].as_str(),
            first["subtotal"].as_str()
        ),
        ("assets", "1000", "369.66")
    );
}

/// Links a bank account of the organization that has account `code` to
/// it, behind the API's back (the Plaid link itself is tested in bank.rs).
async fn link_bank_account(books: &Books, code: &str) {
    let item = format!(
        "INSERT INTO bank_items (organization_id, item_id, access_token, created_ms) \
         SELECT organization_id, 'item-{code}', 'v1:00', 0 FROM accounts WHERE code = '{code}'"
    );
    assert_eq!(books.execute_as_admin(&item).await, 1);
    let account = format!(
        "INSERT INTO bank_accounts (organization_id, item_id, plaid_account_id, name, currency, \
         ledger_account_id) SELECT a.organization_id, i.id, 'acc-{code}', 'Savings', 'USD', a.id \
         FROM accounts a JOIN bank_items i ON i.organization_id = a.organization_id \
         WHERE a.code = '{code}' AND i.item_id = 'item-{code}'"
    );
    assert_eq!(books.execute_as_admin(&account).await, 1);
}

/// Opening cash before January, receipts, payments, a transfer between two
/// cash accounts and an entry with several counterparts split by the
/// documented rule: every cent is accounted for, opening + net change =
/// closing = the cash accounts' balances in the trial balance, and the
/// report jobs (JSON, CSV) answer the same numbers.
async fn the_cash_flow_statement_reconciles(store: Store) {
    let books = with_jobs(store).await;
    let token = books.register("cash@acme.test", "USD").await;
    open_under(&books, &token, "1010", "asset", Some("1000")).await;
    open_under(&books, &token, "1050", "asset", None).await;
    open_under(&books, &token, "1500", "asset", None).await;
    open_under(&books, &token, "2500", "liability", None).await;
    link_bank_account(&books, "1050").await;
    let line = |account: &str, side: &str, amount: &str| json!({"account": account, side: amount});
    let entries = [
        // Before the period: the owner's capital.
        (
            "2025-12-15",
            json!([
                line("1000", "debit", "1000.00"),
                line("3000", "credit", "1000.00")
            ]),
        ),
        // A cash sale.
        (
            "2026-01-02",
            json!([
                line("1000", "debit", "250.00"),
                line("4000", "credit", "250.00")
            ]),
        ),
        // An invoice (no cash), then its payment into the bank (1010).
        (
            "2026-01-03",
            json!([
                line("1100", "debit", "300.00"),
                line("4000", "credit", "300.00")
            ]),
        ),
        (
            "2026-01-04",
            json!([
                line("1010", "debit", "300.00"),
                line("1100", "credit", "300.00")
            ]),
        ),
        // An expense paid.
        (
            "2026-01-05",
            json!([
                line("5000", "debit", "120.00"),
                line("1000", "credit", "120.00")
            ]),
        ),
        // Transfers between cash accounts: no cash moves.
        (
            "2026-01-06",
            json!([
                line("1010", "debit", "500.00"),
                line("1000", "credit", "500.00")
            ]),
        ),
        (
            "2026-01-07",
            json!([
                line("1050", "debit", "40.00"),
                line("1010", "credit", "40.00")
            ]),
        ),
        // Equipment bought from the linked bank account.
        (
            "2026-01-08",
            json!([
                line("1500", "debit", "15.00"),
                line("1050", "credit", "15.00")
            ]),
        ),
        // 100.00 in, with a receivable of 0.02 on the same side, against
        // three credits of 33.34: split 33.34 / 33.33 / 33.33.
        (
            "2026-01-09",
            json!([
                line("1000", "debit", "100.00"),
                line("1100", "debit", "0.02"),
                line("4000", "credit", "33.34"),
                line("2500", "credit", "33.34"),
                line("3000", "credit", "33.34")
            ]),
        ),
        // After the period.
        (
            "2026-02-01",
            json!([
                line("1000", "debit", "77.00"),
                line("4000", "credit", "77.00")
            ]),
        ),
    ];
    for (date, lines) in entries {
        books.post(&token, date, lines).await;
    }

    let path = "/api/reports/cash-flow?from=2026-01-01&to=2026-01-31";
    let cf = get(&books, &token, path).await;
    let codes = |section: &str| -> Vec<(String, i64)> {
        cf[section]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["code"].as_str().unwrap().to_owned(),
                    cents(&l["amount"]).unwrap(),
                )
            })
            .collect()
    };
    let own = |pairs: &[(&str, i64)]| -> Vec<(String, i64)> {
        pairs.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect()
    };
    assert_eq!(
        codes("cash"),
        own(&[("1000", -27_000), ("1010", 76_000), ("1050", 2_500)])
    );
    assert_eq!(
        codes("customers"),
        own(&[("1100", 30_000), ("4000", 28_334)])
    );
    assert_eq!(codes("suppliers"), own(&[("5000", -12_000)]));
    assert_eq!(codes("liabilities"), own(&[("2500", 3_333)]));
    assert_eq!(codes("equity"), own(&[("3000", 3_333)]));
    assert_eq!(codes("assets"), own(&[("1500", -1_500)]));
    assert_eq!(cf["opening_cash"], "1000.00");
    assert_eq!(cf["net_change"], "515.00");
    assert_eq!(cf["closing_cash"], "1515.00");
    let totals = &cf["totals"][0];
    assert_eq!(totals["customers"], "583.34");
    assert_eq!(totals["closing_cash"], "1515.00");
    let flows: i64 = ["customers", "suppliers", "liabilities", "equity", "assets"]
        .iter()
        .flat_map(|s| codes(s))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(
        cents(&cf["opening_cash"]).unwrap() + flows,
        cents(&cf["closing_cash"]).unwrap()
    );
    // Opening and closing are the cash accounts' trial balances.
    let cash_in_tb = |tb: Value| -> i64 {
        tb["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| ["1000", "1010", "1050"].contains(&a["code"].as_str().unwrap()))
            .map(|a| cents(&a["debit"]).unwrap() - cents(&a["credit"]).unwrap())
            .sum()
    };
    assert_eq!(
        cash_in_tb(books.trial_balance(&token, "2025-12-31").await),
        100_000
    );
    assert_eq!(
        cash_in_tb(books.trial_balance(&token, "2026-01-31").await),
        151_500
    );

    // A period with no movement: opening = closing, no lines.
    let quiet = get(
        &books,
        &token,
        "/api/reports/cash-flow?from=2026-01-10&to=2026-01-31",
    )
    .await;
    assert_eq!(quiet["opening_cash"], "1515.00");
    assert_eq!(quiet["net_change"], "0.00");
    assert_eq!(quiet["customers"], json!([]));

    // The jobs answer the same numbers.
    let params = json!({"from": "2026-01-01", "to": "2026-01-31"});
    let job = as_job(&books, &token, "cash-flow", params.clone(), "json").await;
    assert_eq!(serde_json::from_str::<Value>(&job).unwrap(), cf);
    let csv = as_job(&books, &token, "cash-flow", params, "csv").await;
    let table = csv_rows(&csv);
    let mut from_csv: Vec<(String, String, String)> = Vec::new();
    let mut csv_flows = 0;
    for row in &table {
        from_csv.push((
            row["section"].clone(),
            row["code"].clone(),
            row["amount"].clone(),
        ));
        if row["section"] == "cash" {
            assert!(!row["opening"].is_empty(), "{row:?}");
        } else {
            csv_flows += cents(&json!(row["amount"])).unwrap();
        }
    }
    let mut from_json = Vec::new();
    for section in [
        "cash",
        "customers",
        "suppliers",
        "liabilities",
        "equity",
        "assets",
    ] {
        for l in cf[section].as_array().unwrap() {
            from_json.push((
                section.to_owned(),
                l["code"].as_str().unwrap().to_owned(),
                l["amount"].as_str().unwrap().to_owned(),
            ));
        }
    }
    assert_eq!(from_csv, from_json);
    assert_eq!(csv_flows, flows);

    // Bad periods.
    for (query, code) in [
        ("from=2026-02-01&to=2026-01-01", "INVALID_PERIOD"),
        ("from=2026-02-30&to=2026-03-01", "INVALID_DATE"),
    ] {
        let (status, body) = books
            .call(
                "GET",
                &format!("/api/reports/cash-flow?{query}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["code"], code, "{body}");
    }
}

on_every_store!(
    parents_are_checked,
    reports_roll_children_up,
    the_cash_flow_statement_reconciles,
);

//! Invoice numbers that follow issue dates (contract §5) and metadata on
//! invoices, over HTTP on PostgreSQL and SQLite; the catch-up of a
//! recurring invoice on two instances sharing one PostgreSQL.

use std::time::{Duration, Instant};

use chrono::{Datelike, Months, NaiveDate, Utc};
use http::StatusCode;
use serde_json::{Value, json};

use crate::books::{Books, Store};

on_every_store!(
    two_organizations_interleaving_are_each_numbered_from_one,
    a_backdated_issue_is_refused_and_changes_nothing,
    concurrent_issues_are_numbered_without_gaps_in_date_order,
    metadata_is_given_answered_filtered_and_bounded,
    recurring_metadata_is_copied_onto_each_occurrence,
    existing_invoices_are_numbered_by_the_migration,
    occurrences_in_a_locked_period_are_issued_on_the_first_open_day,
);

async fn organization(books: &Books) -> (String, i64) {
    let token = books
        .register(&format!("num-{}@acme.test", uuid::Uuid::new_v4()), "USD")
        .await;
    let customer = crate::jobs::create_customer(books, &token, "Globex").await;
    (token, customer)
}

/// A credit note of `amount` on `invoice`, dated `date`.
async fn credit_note(
    books: &Books,
    token: &str,
    invoice: &Value,
    date: &str,
    amount: &str,
) -> (StatusCode, Value) {
    books
        .call(
            "POST",
            &format!("/api/invoices/{invoice}/credit-notes"),
            Some(token),
            Some(json!({"date": date,
                        "lines": [{"description": "Refund", "quantity": "1", "unit_price": amount}]})),
        )
        .await
}

/// A draft of `amount` (one line, no tax), with `metadata` if not null.
async fn draft(books: &Books, token: &str, customer: i64, amount: &str, metadata: Value) -> Value {
    let mut body = json!({
        "customer_id": customer,
        "due_date": "2026-12-31",
        "lines": [{"description": "Consulting", "quantity": "1", "unit_price": amount}],
    });
    if !metadata.is_null() {
        body["metadata"] = metadata;
    }
    let (status, invoice) = books
        .call("POST", "/api/invoices", Some(token), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invoice}");
    invoice
}

async fn issue(books: &Books, token: &str, id: &Value, date: &str) -> (StatusCode, Value) {
    books
        .call(
            "POST",
            &format!("/api/invoices/{id}/issue"),
            Some(token),
            Some(json!({"date": date})),
        )
        .await
}

async fn issued(books: &Books, token: &str, customer: i64, date: &str) -> Value {
    let invoice = draft(books, token, customer, "100.00", Value::Null).await;
    let (status, invoice) = issue(books, token, &invoice["id"], date).await;
    assert_eq!(status, StatusCode::OK, "{invoice}");
    invoice
}

async fn two_organizations_interleaving_are_each_numbered_from_one(store: Store) {
    let books = Books::start(store).await;
    let (a, a_customer) = organization(&books).await;
    let (b, b_customer) = organization(&books).await;
    let mut numbers = (Vec::new(), Vec::new());
    for day in 1..=3 {
        let date = format!("2026-03-{day:02}");
        numbers
            .0
            .push(issued(&books, &a, a_customer, &date).await["number"].clone());
        numbers
            .1
            .push(issued(&books, &b, b_customer, &date).await["number"].clone());
    }
    let expected = json!(["INV-000001", "INV-000002", "INV-000003"]);
    assert_eq!(json!(numbers.0), expected);
    assert_eq!(json!(numbers.1), expected);

    // A draft has no number until it is issued.
    let pending = draft(&books, &a, a_customer, "50.00", Value::Null).await;
    assert_eq!(pending["number"], Value::Null);
    assert_eq!(pending["status"], "draft");

    // Credit notes have their own sequence; invoices go on after them.
    let last = books
        .list("/api/invoices?status=issued", &a)
        .await
        .into_iter()
        .find(|i| i["number"] == "INV-000003")
        .unwrap();
    let credit = |date: &'static str| credit_note(&books, &a, &last["id"], date, "10.00");
    let (status, first) = credit("2026-03-04").await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, second) = credit("2026-03-05").await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(
        (first["number"].as_str(), second["number"].as_str()),
        (Some("CN-000001"), Some("CN-000002"))
    );
    assert_eq!(first["metadata"], json!({}));
    let (status, fourth) = issue(&books, &a, &pending["id"], "2026-03-05").await;
    assert_eq!(status, StatusCode::OK, "{fourth}");
    assert_eq!(fourth["number"], "INV-000004");
    // The other organization's sequence did not move.
    assert_eq!(
        issued(&books, &b, b_customer, "2026-03-06").await["number"],
        "INV-000004"
    );
}

async fn a_backdated_issue_is_refused_and_changes_nothing(store: Store) {
    let books = Books::start(store).await;
    let (token, customer) = organization(&books).await;
    let first = issued(&books, &token, customer, "2026-03-10").await;
    assert_eq!(first["number"], "INV-000001");
    let late = draft(&books, &token, customer, "70.00", Value::Null).await;
    let (status, refused) = issue(&books, &token, &late["id"], "2026-03-09").await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["code"], "INVOICE_DATE_ORDER");
    let message = refused["error"].as_str().unwrap();
    assert!(message.contains("2026-03-10"), "{message}");
    // Nothing of it was written: still a draft, unnumbered, not posted.
    let (_, still) = books
        .call(
            "GET",
            &format!("/api/invoices/{}", late["id"]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (still["status"].as_str(), &still["number"]),
        (Some("draft"), &Value::Null)
    );
    assert_eq!(books.balance(&token, "1100").await, "100.00");
    // The same day is not before it: numbered next, with no gap.
    let (status, same_day) = issue(&books, &token, &late["id"], "2026-03-10").await;
    assert_eq!(status, StatusCode::OK, "{same_day}");
    assert_eq!(same_day["number"], "INV-000002");
    assert_eq!(books.balance(&token, "1100").await, "170.00");
    // The issue entry's memo names the invoice by id (see the README).
    let (_, entry) = books
        .call(
            "GET",
            &format!("/api/journal-entries/{}", same_day["issue_entry_id"]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(entry["memo"], format!("Invoice id {}", late["id"]));

    // Credit notes likewise, against their own last date.
    let note = |date: &'static str| credit_note(&books, &token, &first["id"], date, "5.00");
    let (status, body) = note("2026-03-20").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = note("2026-03-19").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("INVOICE_DATE_ORDER")),
        "{body}"
    );
    assert_eq!(books.balance(&token, "1100").await, "165.00");
}

/// 20 drafts issued at once on dates over four days: each is numbered or
/// refused as dated before the last; the numbered ones are 1, 2, 3, … with
/// no gap and their dates never go back. The refused, issued again on the
/// last date, follow on without a gap.
async fn concurrent_issues_are_numbered_without_gaps_in_date_order(store: Store) {
    let books = Books::start(store).await;
    let (token, customer) = organization(&books).await;
    let mut drafts = Vec::new();
    for _ in 0..20 {
        drafts.push(draft(&books, &token, customer, "10.00", Value::Null).await);
    }
    let dates = ["2026-05-01", "2026-05-02", "2026-05-03", "2026-05-04"];
    let answers = futures::future::join_all(
        drafts
            .iter()
            .enumerate()
            .map(|(i, d)| issue(&books, &token, &d["id"], dates[i % 4])),
    )
    .await;
    let mut refused = Vec::new();
    for ((status, body), d) in answers.iter().zip(&drafts) {
        match *status {
            StatusCode::OK => {}
            StatusCode::CONFLICT if body["code"] == "INVOICE_DATE_ORDER" => refused.push(d),
            other => panic!("an issue answered {other}: {body}"),
        }
    }
    eprintln!(
        "figure: 20 concurrent issues over 4 dates, {} refused as dated before the last",
        refused.len()
    );
    for d in &refused {
        let (status, body) = issue(&books, &token, &d["id"], "2026-05-04").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let mut all: Vec<(String, String)> = books
        .list("/api/invoices?status=issued&limit=500", &token)
        .await
        .iter()
        .map(|i| {
            (
                i["number"].as_str().unwrap().to_owned(),
                i["issue_date"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    all.sort();
    let numbers: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    let expected: Vec<String> = (1..=20).map(|n| format!("INV-{n:06}")).collect();
    assert_eq!(numbers, expected, "refused at first: {}", refused.len());
    assert!(
        all.windows(2).all(|w| w[0].1 <= w[1].1),
        "numbers go back in date: {all:?}"
    );
    assert_eq!(books.balance(&token, "1100").await, "200.00");
}

async fn metadata_is_given_answered_filtered_and_bounded(store: Store) {
    let books = Books::start(store).await;
    let (token, customer) = organization(&books).await;
    let tagged = draft(
        &books,
        &token,
        customer,
        "30.00",
        json!({"order": "A-1042", "region": "eu"}),
    )
    .await;
    assert_eq!(
        tagged["metadata"],
        json!({"order": "A-1042", "region": "eu"})
    );
    let other = draft(&books, &token, customer, "40.00", json!({"region": "eu"})).await;
    let plain = draft(&books, &token, customer, "50.00", Value::Null).await;
    assert_eq!(plain["metadata"], json!({}));

    // Answered after issue and payment too.
    let (_, after) = issue(&books, &token, &tagged["id"], "2026-06-01").await;
    assert_eq!(after["metadata"]["order"], "A-1042");
    let (status, paid) = books
        .call(
            "POST",
            &format!("/api/invoices/{}/payments", tagged["id"]),
            Some(&token),
            Some(json!({"amount": "30.00", "date": "2026-06-02"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
    assert_eq!(paid["metadata"]["region"], "eu");

    let ids = |list: Vec<Value>| -> Vec<Value> { list.iter().map(|i| i["id"].clone()).collect() };
    assert_eq!(
        ids(books
            .list("/api/invoices?metadata[order]=A-1042", &token)
            .await),
        vec![tagged["id"].clone()]
    );
    // Newest first; every pair must match; with the other filters.
    assert_eq!(
        ids(books
            .list("/api/invoices?metadata[region]=eu", &token)
            .await),
        vec![other["id"].clone(), tagged["id"].clone()]
    );
    assert_eq!(
        ids(books
            .list(
                "/api/invoices?metadata[region]=eu&metadata[order]=A-1042",
                &token
            )
            .await),
        vec![tagged["id"].clone()]
    );
    assert_eq!(
        ids(books
            .list("/api/invoices?metadata[region]=eu&status=draft", &token)
            .await),
        vec![other["id"].clone()]
    );
    assert!(
        books
            .list("/api/invoices?metadata[region]=us", &token)
            .await
            .is_empty()
    );
    // The filter pages like the list (its Link keeps the filter).
    let (status, page, next) = books
        .page("/api/invoices?metadata[region]=eu&limit=1", &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page[0]["id"], other["id"]);
    let next = next.expect("a second page");
    assert!(next.contains("metadata"), "{next}");

    // Bounded: 21 keys, a bad key, a long value are 422 and create nothing.
    let many: serde_json::Map<String, Value> =
        (0..21).map(|i| (format!("k{i}"), json!("v"))).collect();
    for bad in [
        Value::Object(many),
        json!({"Bad Key": "v"}),
        json!({"note": "x".repeat(501)}),
    ] {
        let (status, body) = books
            .call(
                "POST",
                "/api/invoices",
                Some(&token),
                Some(json!({
                    "customer_id": customer,
                    "due_date": "2026-12-31",
                    "lines": [{"description": "X", "quantity": "1", "unit_price": "1.00"}],
                    "metadata": bad,
                })),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["code"], "INVALID_FIELD");
    }
    assert_eq!(books.list("/api/invoices", &token).await.len(), 3);
    let (status, body) = books
        .call(
            "GET",
            "/api/invoices?metadata[Bad Key]=v",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

/// A recurring invoice's metadata is copied onto each occurrence.
async fn recurring_metadata_is_copied_onto_each_occurrence(store: Store) {
    let books = Books::start_with(
        store,
        &[
            ("RECURRING_SCAN_MS", "200".to_owned()),
            ("JOB_TRANSPORT", "database".to_owned()),
        ],
    )
    .await;
    let (token, customer) = organization(&books).await;
    let start = Utc::now()
        .date_naive()
        .checked_sub_months(Months::new(2))
        .unwrap();
    let (status, template) = books
        .call(
            "POST",
            "/api/recurring-invoices",
            Some(&token),
            Some(monthly(customer, start, json!({"plan": "pro"}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    assert_eq!(template["metadata"], json!({"plan": "pro"}));
    let invoices = wait_for_issued(&books, &token, 3, Duration::from_secs(30)).await;
    assert!(
        invoices
            .iter()
            .all(|i| i["metadata"] == json!({"plan": "pro"})),
        "{invoices:?}"
    );
    assert_eq!(
        books
            .list("/api/invoices?metadata[plan]=pro", &token)
            .await
            .len(),
        3
    );
}

/// A catch-up whose first two occurrences fall in a locked period: they
/// are issued on the first open day (their `period` and the entries'
/// `original_date` keep their own), the rest on their dates, and the
/// numbers still follow the issue dates.
async fn occurrences_in_a_locked_period_are_issued_on_the_first_open_day(store: Store) {
    let books = Books::start_with(
        store,
        &[
            ("RECURRING_SCAN_MS", "200".to_owned()),
            ("JOB_TRANSPORT", "database".to_owned()),
        ],
    )
    .await;
    let (token, customer) = organization(&books).await;
    let today = Utc::now().date_naive();
    let start = today
        .with_day(1)
        .unwrap()
        .checked_sub_months(Months::new(3))
        .unwrap();
    let lock = start.checked_add_months(Months::new(1)).unwrap() + chrono::Days::new(4);
    let first_open = lock + chrono::Days::new(1);
    let (status, settings) = books
        .call(
            "PUT",
            "/api/settings",
            Some(&token),
            Some(json!({"lock_date": lock.to_string()})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    let (status, template) = books
        .call(
            "POST",
            "/api/recurring-invoices",
            Some(&token),
            Some(monthly(customer, start, json!({}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    let mut invoices = wait_for_issued(&books, &token, 4, Duration::from_secs(30)).await;
    invoices.sort_by_key(|i| i["number"].as_str().unwrap().to_owned());
    let mut seen = Vec::new();
    for invoice in &invoices {
        let (status, entry) = books
            .call(
                "GET",
                &format!("/api/journal-entries/{}", invoice["issue_entry_id"]),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{entry}");
        seen.push((
            invoice["number"].as_str().unwrap().to_owned(),
            invoice["period"].as_str().unwrap().to_owned(),
            invoice["issue_date"].as_str().unwrap().to_owned(),
            entry["metadata"]["original_date"]
                .as_str()
                .map(str::to_owned),
        ));
    }
    let month = |n: u32| {
        start
            .checked_add_months(Months::new(n))
            .unwrap()
            .to_string()
    };
    assert_eq!(
        seen,
        vec![
            (
                "INV-000001".into(),
                month(0),
                first_open.to_string(),
                Some(month(0))
            ),
            (
                "INV-000002".into(),
                month(1),
                first_open.to_string(),
                Some(month(1))
            ),
            ("INV-000003".into(), month(2), month(2), None),
            ("INV-000004".into(), month(3), month(3), None),
        ]
    );
}

fn monthly(customer: i64, start: NaiveDate, metadata: Value) -> Value {
    json!({
        "customer_id": customer,
        "lines": [{"description": "Hosting", "quantity": "1", "unit_price": "49.90"}],
        "schedule": {"frequency": "monthly", "start": start.to_string()},
        "auto_issue": true,
        "metadata": metadata,
    })
}

/// Waits until `expected` occurrences are issued; answers the invoices.
async fn wait_for_issued(
    books: &Books,
    token: &str,
    expected: usize,
    limit: Duration,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let found = books.list("/api/invoices?status=issued", token).await;
        if found.len() >= expected {
            return found;
        }
        assert!(
            started.elapsed() < limit,
            "{} of {expected} occurrences issued after {limit:?}; jobs: {}",
            found.len(),
            books.call("GET", "/api/jobs", Some(token), None).await.1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two instances on one PostgreSQL, both running the scheduler and the
/// jobs, catch up eleven monthly occurrences: numbered INV-000001 to
/// INV-000011 in the order of their dates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_on_two_instances_is_numbered_in_date_order() {
    use crate::support::server::{Host, TestServer, base_vars, set};
    use crate::support::services::Postgres;

    let pg = Postgres::start().await;
    let mut vars = base_vars();
    set(&mut vars, "DATABASE_URL", pg.url());
    set(&mut vars, "JOB_TRANSPORT", "database");
    set(&mut vars, "JOB_CONCURRENCY", "4");
    set(&mut vars, "RECURRING_SCAN_MS", "100");
    let (a, b) = tokio::join!(
        TestServer::start(Host::Axum, vars.clone()),
        TestServer::start(Host::Warp, vars)
    );
    for server in [&a, &b] {
        server
            .wait_for_dependency("database", "connected", Duration::from_secs(10))
            .await;
    }
    let books = Books::around(a);
    let (token, customer) = organization(&books).await;
    let start = Utc::now()
        .date_naive()
        .checked_sub_months(Months::new(10))
        .unwrap();
    let (status, template) = books
        .call(
            "POST",
            "/api/recurring-invoices",
            Some(&token),
            Some(monthly(customer, start, json!({}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    assert_eq!(template["occurrences"], 11);
    let started = Instant::now();
    let mut invoices = wait_for_issued(&books, &token, 11, Duration::from_secs(60)).await;
    eprintln!(
        "figure: 11 occurrences generated and issued in {:?} on two instances",
        started.elapsed()
    );
    invoices.sort_by(|x, y| x["number"].as_str().cmp(&y["number"].as_str()));
    let numbers: Vec<&str> = invoices
        .iter()
        .map(|i| i["number"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (1..=11).map(|n| format!("INV-{n:06}")).collect();
    assert_eq!(numbers, expected);
    let periods: Vec<&str> = invoices
        .iter()
        .map(|i| i["period"].as_str().unwrap())
        .collect();
    assert!(
        periods.windows(2).all(|w| w[0] < w[1]),
        "numbers out of date order: {numbers:?} {periods:?}"
    );
    assert!(invoices.iter().all(|i| i["issue_date"] == i["period"]));
    drop((b, pg));
}

/// What the migration found issued is numbered per organization and kind in
/// (issue date, id) order, drafts stay unnumbered, and each counter starts
/// at the last number given.
async fn existing_invoices_are_numbered_by_the_migration(store: Store) {
    use sqlx::migrate::Migrator;
    use std::borrow::Cow;

    let backend = match store {
        Store::Postgres => "postgres",
        Store::Sqlite => "sqlite",
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("accubooks-core/migrations")
        .join(backend);
    let all = Migrator::new(dir.as_path()).await.unwrap();
    let mut before = Migrator::new(dir.as_path()).await.unwrap();
    before.migrations = Cow::Owned(
        all.migrations
            .iter()
            .filter(|m| m.version < 20)
            .cloned()
            .collect(),
    );
    // Two organizations' documents as they stood, ids out of date order:
    // (organization, kind, issue date or a draft).
    let rows = [
        ("org-a", "invoice", Some("2026-02-10")),
        ("org-a", "invoice", Some("2026-01-31")),
        ("org-b", "invoice", Some("2026-01-15")),
        ("org-a", "invoice", None),
        ("org-a", "credit_note", Some("2026-02-11")),
        ("org-a", "invoice", Some("2026-01-31")),
    ];
    let setup = |n: usize| {
        let (org, kind, date) = rows[n];
        format!(
            "INSERT INTO invoices (organization_id, customer_id, kind, currency, status, due_date, \
             issue_date, tax_rounding, subtotal, tax, total) VALUES ('{org}', \
             (SELECT id FROM customers WHERE organization_id = '{org}'), '{kind}', 'USD', '{}', \
             '2026-12-31', {}, 'line', 100, 0, 100)",
            if date.is_some() { "issued" } else { "draft" },
            date.map_or("NULL".to_owned(), |d| format!("'{d}'")),
        )
    };
    let mut statements = vec![
        "INSERT INTO organizations (id, name) VALUES ('org-a', 'A'), ('org-b', 'B')".to_owned(),
        "INSERT INTO customers (organization_id, name) VALUES ('org-a', 'X'), ('org-b', 'Y')"
            .to_owned(),
    ];
    statements.extend((0..rows.len()).map(setup));
    let read = "SELECT organization_id, kind, number FROM invoices ORDER BY id";
    let counters = "SELECT organization_id, kind, last_number FROM invoice_numbers \
                    ORDER BY organization_id, kind";
    type Numbered = Vec<(String, String, Option<i64>)>;
    let (numbered, last): (Numbered, Vec<(String, String, i64)>) = match store {
        Store::Postgres => {
            let pg = crate::support::services::Postgres::start().await;
            let app = sqlx::PgPool::connect(&pg.url()).await.unwrap();
            let admin = sqlx::PgPool::connect(&pg.admin_url()).await.unwrap();
            before.run(&app).await.unwrap();
            for sql in &statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.as_str()))
                    .execute(&admin)
                    .await
                    .unwrap();
            }
            all.run(&app).await.unwrap();
            let found = (
                sqlx::query_as(read).fetch_all(&admin).await.unwrap(),
                sqlx::query_as(counters).fetch_all(&admin).await.unwrap(),
            );
            drop(pg);
            found
        }
        Store::Sqlite => {
            let file = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/books.db?mode=rwc", file.path().display());
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            before.run(&pool).await.unwrap();
            for sql in &statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.as_str()))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            all.run(&pool).await.unwrap();
            (
                sqlx::query_as(read).fetch_all(&pool).await.unwrap(),
                sqlx::query_as(counters).fetch_all(&pool).await.unwrap(),
            )
        }
    };
    let row =
        |org: &str, kind: &str, number: Option<i64>| (org.to_owned(), kind.to_owned(), number);
    assert_eq!(
        numbered,
        vec![
            row("org-a", "invoice", Some(3)),
            row("org-a", "invoice", Some(1)),
            row("org-b", "invoice", Some(1)),
            row("org-a", "invoice", None),
            row("org-a", "credit_note", Some(1)),
            row("org-a", "invoice", Some(2)),
        ]
    );
    let counter = |org: &str, kind: &str, n: i64| (org.to_owned(), kind.to_owned(), n);
    assert_eq!(
        last,
        vec![
            counter("org-a", "credit_note", 1),
            counter("org-a", "invoice", 3),
            counter("org-b", "invoice", 1),
        ]
    );
}

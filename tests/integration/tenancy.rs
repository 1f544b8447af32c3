//! One organization cannot hurt another (issue 21, contract §4 and §11):
//! each test plays a hostile or careless tenant against a real server and
//! asserts the bound, and that another organization notices nothing.

use std::time::Duration;

use accubooks_core::identity::{Principal, Role};
use reqwest::StatusCode;
use serde_json::json;

use crate::books::{Books, Store};

on_every_store!(
    a_pay_run_over_the_employee_limit_is_refused_and_hurts_no_one,
    a_balance_beyond_64_bits_is_refused_and_the_books_stay_readable,
);

/// The largest amount a line may carry (i64::MAX cents): two of them on
/// one account overflow its balance. SQLite once stored the sum as a
/// float and every later read of the organization's accounts failed.
async fn a_balance_beyond_64_bits_is_refused_and_the_books_stay_readable(store: Store) {
    const HUGE: &str = "92233720368547758.07";
    let books = Books::start(store).await;
    let token = books.register("huge@acme.test", "USD").await;
    let entry = || {
        json!({"date": "2026-02-01", "lines": [
            {"account": "1000", "debit": HUGE}, {"account": "4000", "credit": HUGE}]})
    };
    let (status, body) = books
        .call("POST", "/api/journal-entries", Some(&token), Some(entry()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Alone, and two at once (one commit group): each past the first is refused.
    let (status, body) = books
        .call("POST", "/api/journal-entries", Some(&token), Some(entry()))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "AMOUNT_OUT_OF_RANGE", "{body}");
    let (a, b) = tokio::join!(
        books.call("POST", "/api/journal-entries", Some(&token), Some(entry())),
        books.call("POST", "/api/journal-entries", Some(&token), Some(entry())),
    );
    for (status, body) in [a, b] {
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    assert_eq!(books.balance(&token, "1000").await, HUGE);
    for path in [
        "/api/accounts",
        "/api/reports/general-ledger?account=1000&from=2026-01-01&to=2026-12-31",
        "/api/reports/trial-balance?as_of=2026-12-31",
    ] {
        let (status, body) = books.call("GET", path, Some(&token), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    // Smaller amounts still post.
    books
        .post(
            &token,
            "2026-02-02",
            json!([{"account": "4000", "debit": "1.00"}, {"account": "1000", "credit": "1.00"}]),
        )
        .await;
    assert_eq!(books.balance(&token, "1000").await, "92233720368547757.07");
}

/// How many employees the hostile organization has: more than PostgreSQL's
/// 65,535 bound values, which once made a pay run's id list a protocol
/// error that marked the database down for everyone.
const HOSTILE_EMPLOYEES: i64 = 70_000;

async fn a_pay_run_over_the_employee_limit_is_refused_and_hurts_no_one(store: Store) {
    let books = Books::start(store).await;
    let (hostile, organization) = books.register_organization("hostile@acme.test").await;
    let other = books.register("other@acme.test", "USD").await;
    books
        .create_account(&hostile, "5100", "Wages", "expense")
        .await;
    insert_employees(&books, &organization, HOSTILE_EMPLOYEES).await;

    let run = json!({"period_start": "2026-03-01", "period_end": "2026-03-31", "pay_date": "2026-03-31", "hours": {}});
    for _ in 0..3 {
        let (status, body) = books
            .call(
                "POST",
                "/api/payroll-runs",
                Some(&hostile),
                Some(run.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["code"], "TOO_MANY_EMPLOYEES", "{body}");
        let message = body["error"].as_str().unwrap();
        assert!(
            message.contains("10000") && message.contains("70000"),
            "{message}"
        );
    }
    // The database stayed up for everyone, and the other organization posts.
    let health = books.server.health().await;
    assert_eq!(
        health["dependencies"]["database"]["status"], "connected",
        "{health}"
    );
    for day in 1..=5 {
        books
            .post(
                &other,
                &format!("2026-03-0{day}"),
                json!([{"account": "1000", "debit": "1.00"}, {"account": "4000", "credit": "1.00"}]),
            )
            .await;
    }
    assert_eq!(books.balance(&other, "1000").await, "5.00");
}

/// One organization's statement that runs past `DB_STATEMENT_TIMEOUT_MS`
/// (here: its pay run waits on a lock of its own organization's row) is
/// that request's 503 alone: the database stays `connected` and another
/// organization's postings all succeed meanwhile. (It once counted like a
/// failed probe: two slow requests marked the database down for everyone.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_statement_is_its_own_request_s_failure_not_an_outage() {
    let books = Books::start_with(
        Store::Postgres,
        &[("DB_STATEMENT_TIMEOUT_MS", "300".to_owned())],
    )
    .await;
    let (slow, organization) = books.register_organization("slow@acme.test").await;
    let other = books.register("other@acme.test", "USD").await;
    books
        .create_account(&slow, "5100", "Wages", "expense")
        .await;
    let (status, body) = books
        .call(
            "POST",
            "/api/employees",
            Some(&slow),
            Some(
                json!({"name": "Ann", "pay": {"type": "salary", "annual": "60000.00"},
                        "frequency": "monthly", "start_date": "2026-01-01"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Another session holds the organization's row, as a long transaction
    // of the organization's own would.
    let admin = sqlx::PgPool::connect(&books.postgres().unwrap().admin_url())
        .await
        .unwrap();
    let mut holder = admin.begin().await.unwrap();
    sqlx::query("SELECT id FROM organizations WHERE id = $1 FOR UPDATE")
        .bind(&organization)
        .execute(&mut *holder)
        .await
        .unwrap();

    let run = json!({"period_start": "2026-03-01", "period_end": "2026-03-31", "pay_date": "2026-03-31", "hours": {}});
    for attempt in 0..4 {
        let (status, body) = books
            .call("POST", "/api/payroll-runs", Some(&slow), Some(run.clone()))
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["code"], "REQUEST_TIMEOUT", "{body}");
        let date = format!("2026-04-0{}", attempt + 1);
        let posted = books
            .call(
                "POST",
                "/api/journal-entries",
                Some(&other),
                Some(json!({"date": date, "lines": [
                    {"account": "1000", "debit": "2.00"}, {"account": "4000", "credit": "2.00"}]})),
            )
            .await;
        assert_eq!(posted.0, StatusCode::CREATED, "{}", posted.1);
    }
    // The probes the timeouts asked for found the database well.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let health = books.server.health().await;
    let database = &health["dependencies"]["database"];
    assert_eq!(database["status"], "connected", "{health}");
    assert_eq!(database["consecutive_failures"], 0, "{health}");
    assert_eq!(books.balance(&other, "1000").await, "8.00");

    // Once the lock is gone, the same run goes through.
    holder.rollback().await.unwrap();
    let (status, body) = books
        .call("POST", "/api/payroll-runs", Some(&slow), Some(run))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    admin.close().await;
}

/// A token grants the lower of its `role` claim and the user's current
/// role: a read-only dashboard token minted for an owner only reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_grants_no_more_than_its_role_claim() {
    let books = Books::start(Store::Postgres).await;
    let owner = books.register("owner@acme.test", "USD").await;
    let app = &books.server.app;
    let principal = app
        .tokens()
        .verify(Some(&format!("Bearer {owner}")))
        .unwrap();
    let minted = |role: Role| {
        app.tokens()
            .issue(Principal { role, ..principal }, Duration::from_secs(600))
    };
    let viewer = minted(Role::Viewer);
    let accountant = minted(Role::Accountant);
    let entry = json!({"date": "2026-01-31", "lines": [
        {"account": "1000", "debit": "1.00"}, {"account": "4000", "credit": "1.00"}]});
    let new_user =
        json!({"email": "second@acme.test", "password": "correct horse battery", "role": "owner"});

    let (status, _) = books
        .call("GET", "/api/accounts", Some(&viewer), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    for (method, path, body) in [
        ("POST", "/api/journal-entries", Some(entry.clone())),
        (
            "PUT",
            "/api/settings",
            Some(json!({"timezone": "Europe/Paris"})),
        ),
        ("POST", "/api/users", Some(new_user.clone())),
    ] {
        let (status, answer) = books.call(method, path, Some(&viewer), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
    }
    // An accountant's token of an owner posts, but manages no users.
    let (status, answer) = books
        .call(
            "POST",
            "/api/journal-entries",
            Some(&accountant),
            Some(entry),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let (status, answer) = books
        .call(
            "POST",
            "/api/users",
            Some(&accountant),
            Some(new_user.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    // The owner's own token still does everything.
    let (status, answer) = books
        .call("POST", "/api/users", Some(&owner), Some(new_user))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(books.balance(&owner, "1000").await, "1.00");
}

/// Salaries, payslips and payroll rules are for accountants and owners.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payroll_data_is_not_for_viewers() {
    let books = Books::start(Store::Sqlite).await;
    let owner = books.register("owner@acme.test", "USD").await;
    let (status, employee) = books
        .call(
            "POST",
            "/api/employees",
            Some(&owner),
            Some(
                json!({"name": "Ann", "pay": {"type": "salary", "annual": "60000.00"},
                        "frequency": "monthly", "start_date": "2026-01-01"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{employee}");
    let viewer = user_token(&books, &owner, "viewer").await;
    let accountant = user_token(&books, &owner, "accountant").await;
    for path in [
        "/api/employees",
        "/api/payroll/rules",
        "/api/payroll-runs/1",
    ] {
        let (status, body) = books.call("GET", path, Some(&viewer), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert!(!body.to_string().contains("60000"), "{body}");
    }
    let (status, staff) = books
        .call("GET", "/api/employees", Some(&accountant), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{staff}");
    assert_eq!(staff[0]["name"], "Ann", "{staff}");
    let (status, rules) = books
        .call("GET", "/api/payroll/rules", Some(&accountant), None)
        .await;
    assert_eq!((status, rules), (StatusCode::OK, json!([])));
}

/// Adds a user of `role` with the owner's token; answers the user's token.
async fn user_token(books: &Books, owner: &str, role: &str) -> String {
    let email = format!("{role}@acme.test");
    let (status, body) = books
        .call(
            "POST",
            "/api/users",
            Some(owner),
            Some(json!({"email": email, "password": "correct horse battery", "role": role})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    books.login(&email).await
}

/// Inserts `count` salaried employees straight into the store (the API
/// would take minutes), past row-level security.
async fn insert_employees(books: &Books, organization: &str, count: i64) {
    let (numbers, start) = match books.postgres() {
        Some(_) => (
            format!("(SELECT g AS n FROM generate_series(1, {count}) g)"),
            "DATE '2026-01-01'",
        ),
        None => (
            format!(
                "(WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {count}) \
                 SELECT n FROM g)"
            ),
            "'2026-01-01'",
        ),
    };
    let inserted = books
        .execute_as_admin(&format!(
            "INSERT INTO employees (organization_id, name, pay_type, pay_amount, frequency, \
             start_date, end_date, created_ms) \
             SELECT '{organization}', 'E' || n, 'salary', 5200000, 'monthly', {start}, NULL, 0 \
             FROM {numbers} numbers"
        ))
        .await;
    assert_eq!(inserted, u64::try_from(count).unwrap());
}

/// Ten wrong passwords for someone else's e-mail lock out only the address
/// they came from: the owner logs in from theirs. A guesser spread over a
/// hundred addresses spends the e-mail's own budget; then an address that
/// failed is refused while one that did not still gets its password checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_cannot_lock_the_owner_out() {
    let books = Books::start_with(
        Store::Sqlite,
        &[("TRUSTED_PROXIES", "127.0.0.1".to_owned())],
    )
    .await;
    books.register("victim@acme.test", "USD").await;
    let login = |from: String, password: &'static str| {
        let books = &books;
        async move {
            let headers = [("X-Forwarded-For", from.as_str())];
            let body = json!({"email": "victim@acme.test", "password": password});
            books
                .call_with("POST", "/api/auth/login", None, Some(body), &headers)
                .await
                .0
        }
    };
    const RIGHT: &str = "correct horse battery";
    const WRONG: &str = "wrong horse battery";
    let attacker = "203.0.113.5".to_owned();
    for attempt in 0..10 {
        let status = login(attacker.clone(), WRONG).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    assert_eq!(
        login(attacker.clone(), WRONG).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // The owner, from another address, is not locked out; the attacker's
    // address is, even with the right password.
    assert_eq!(login("198.51.100.7".into(), RIGHT).await, StatusCode::OK);
    assert_eq!(
        login(attacker.clone(), RIGHT).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A guesser on many addresses: 90 more failures spend the e-mail's
    // budget of 100.
    for n in 0..90 {
        let status = login(format!("192.0.2.{n}"), WRONG).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "guess {n}");
    }
    assert_eq!(
        login("192.0.2.1".into(), RIGHT).await,
        StatusCode::TOO_MANY_REQUESTS,
        "an address that failed waits once the e-mail's budget is spent"
    );
    assert_eq!(
        login("198.51.100.8".into(), RIGHT).await,
        StatusCode::OK,
        "an address with no failure still logs in"
    );
    assert_eq!(
        login("198.51.100.9".into(), WRONG).await,
        StatusCode::UNAUTHORIZED
    );
}

/// A recurring invoice starts at most five years back: a template from
/// 1900 once queued tens of thousands of occurrences at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recurring_invoice_cannot_start_decades_ago() {
    let books = Books::start(Store::Sqlite).await;
    let token = books.register("old@acme.test", "USD").await;
    let (status, customer) = books
        .call(
            "POST",
            "/api/customers",
            Some(&token),
            Some(json!({"name": "Initech"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    let template = |start: &str| {
        json!({"customer_id": customer["id"], "auto_issue": true,
               "lines": [{"description": "Hosting", "quantity": "1", "unit_price": "49.90"}],
               "schedule": {"frequency": "weekly", "start": start}})
    };
    let (status, body) = books
        .call(
            "POST",
            "/api/recurring-invoices",
            Some(&token),
            Some(template("1900-01-01")),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "START_TOO_EARLY", "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("5 years"),
        "{body}"
    );
    let (_, jobs) = books.call("GET", "/api/jobs", Some(&token), None).await;
    assert_eq!(jobs, json!([]), "nothing was queued");
    let recent = (chrono::Utc::now().date_naive() - chrono::Days::new(30)).to_string();
    let (status, body) = books
        .call(
            "POST",
            "/api/recurring-invoices",
            Some(&token),
            Some(template(&recent)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

//! Background jobs and recurring invoices, on both transports: Redis
//! Streams over PostgreSQL (several processes share the work), and straight
//! from the outbox on SQLite (the embedded default, no Redis).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate, Utc};
use http::StatusCode;
use serde_json::{Value, json};

use crate::books::{Books, Store};
use crate::support::services::Redis;

/// What carries the jobs in a test.
#[derive(Debug, Clone, Copy)]
enum Carrier {
    /// PostgreSQL and a private Redis, `JOB_TRANSPORT=redis`.
    Redis,
    /// SQLite, no Redis, `JOB_TRANSPORT=database`.
    Database,
}

struct Setup {
    books: Books,
    redis: Option<Redis>,
    token: String,
    customer: i64,
}

async fn start(carrier: Carrier) -> Setup {
    let quick = [
        ("RECURRING_SCAN_MS", "200".to_owned()),
        ("JOB_LEASE_MS", "2000".to_owned()),
        ("JOB_RETRY_BASE_MS", "100".to_owned()),
    ];
    let (books, redis) = match carrier {
        Carrier::Redis => {
            let redis = Redis::start().await;
            let mut vars = quick.to_vec();
            vars.push(("REDIS_URL", redis.url()));
            vars.push(("JOB_TRANSPORT", "redis".to_owned()));
            (Books::start_with(Store::Postgres, &vars).await, Some(redis))
        }
        Carrier::Database => {
            let mut vars = quick.to_vec();
            vars.push(("JOB_TRANSPORT", "database".to_owned()));
            (Books::start_with(Store::Sqlite, &vars).await, None)
        }
    };
    let token = books
        .register(&format!("jobs-{}@acme.test", uuid::Uuid::new_v4()), "USD")
        .await;
    let customer = create_customer(&books, &token, "Initech").await;
    Setup {
        books,
        redis,
        token,
        customer,
    }
}

/// Creates a customer; its id.
pub(crate) async fn create_customer(books: &Books, token: &str, name: &str) -> i64 {
    let (status, customer) = books
        .call(
            "POST",
            "/api/customers",
            Some(token),
            Some(json!({"name": name})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    customer["id"].as_i64().unwrap()
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// A weekly template whose start is `weeks` weeks before today (UTC): it
/// has `weeks + 1` occurrences due.
fn weekly(customer: i64, weeks: u64, auto_issue: bool) -> Value {
    let start = today().checked_sub_days(Days::new(7 * weeks)).unwrap();
    json!({
        "customer_id": customer,
        "lines": [{"description": "Hosting", "quantity": "1", "unit_price": "49.90", "tax_rate": "0.1"}],
        "schedule": {"frequency": "weekly", "interval": 1, "start": start.to_string()},
        "due_days": 14,
        "auto_issue": auto_issue,
    })
}

/// The invoices generated from recurring templates.
async fn occurrences(books: &Books, token: &str) -> Vec<Value> {
    let invoices = books.list("/api/invoices?limit=500", token).await;
    invoices
        .iter()
        .filter(|i| !i["recurring_id"].is_null())
        .cloned()
        .collect()
}

/// Waits until `expected` occurrences exist (and, with `issued`, are all
/// issued); panics after `limit`.
async fn wait_for_occurrences(
    books: &Books,
    token: &str,
    expected: usize,
    issued: bool,
    limit: Duration,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let found = occurrences(books, token).await;
        let done =
            found.len() >= expected && (!issued || found.iter().all(|i| i["status"] == "issued"));
        if done {
            return found;
        }
        assert!(
            started.elapsed() < limit,
            "{} of {expected} occurrences after {limit:?}; jobs: {}",
            found.len(),
            books.call("GET", "/api/jobs", Some(token), None).await.1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every occurrence is one invoice: no (template, period) twice.
fn assert_unique(invoices: &[Value]) {
    let keys: HashSet<(i64, String)> = invoices
        .iter()
        .map(|i| {
            (
                i["recurring_id"].as_i64().unwrap(),
                i["period"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        keys.len(),
        invoices.len(),
        "an occurrence was generated twice"
    );
}

async fn a_template_in_the_past_is_caught_up_once(carrier: Carrier) {
    let setup = start(carrier).await;
    let (books, token) = (&setup.books, setup.token.as_str());
    let (status, template) = books
        .call(
            "POST",
            "/api/recurring-invoices",
            Some(token),
            Some(weekly(setup.customer, 52, true)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{template}");
    assert_eq!(template["occurrences"], 53);
    let invoices = wait_for_occurrences(books, token, 53, true, Duration::from_secs(30)).await;
    assert_unique(&invoices);
    let mut periods: Vec<&str> = invoices
        .iter()
        .map(|i| i["period"].as_str().unwrap())
        .collect();
    periods.sort_unstable();
    let start = today().checked_sub_days(Days::new(7 * 52)).unwrap();
    assert_eq!(periods.first().copied(), Some(start.to_string().as_str()));
    assert_eq!(periods.last().copied(), Some(today().to_string().as_str()));
    // Each occurrence is issued on its own date and due 14 days later.
    for invoice in &invoices {
        let period =
            NaiveDate::parse_from_str(invoice["period"].as_str().unwrap(), "%Y-%m-%d").unwrap();
        assert_eq!(invoice["issue_date"], period.to_string());
        assert_eq!(
            invoice["due_date"],
            period.checked_add_days(Days::new(14)).unwrap().to_string()
        );
        assert_eq!(invoice["total"], "54.89");
    }
    // Receivables hold the 53 invoices exactly.
    let (_, trial) = books
        .call("GET", "/api/reports/trial-balance", Some(token), None)
        .await;
    let receivable = trial["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["code"] == "1100")
        .unwrap();
    assert_eq!(receivable["debit"], "2909.17", "{trial}");
    // Numbered in the order of their dates: the catch-up is one job that
    // issues its occurrences oldest first.
    let mut numbered: Vec<(&str, &str)> = invoices
        .iter()
        .map(|i| (i["number"].as_str().unwrap(), i["period"].as_str().unwrap()))
        .collect();
    numbered.sort_unstable();
    assert_eq!(numbered[0].0, "INV-000001");
    assert_eq!(numbered[52].0, "INV-000053");
    assert!(
        numbered.windows(2).all(|w| w[0].1 < w[1].1),
        "numbers out of date order: {numbered:?}"
    );

    // Later scans find nothing new; the one job succeeded once.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(occurrences(books, token).await.len(), 53);
    let (_, jobs) = books
        .call(
            "GET",
            "/api/jobs?queue=recurring-invoices&status=succeeded",
            Some(token),
            None,
        )
        .await;
    assert_eq!(jobs.as_array().unwrap().len(), 1, "{jobs}");
    let job = &jobs[0];
    assert_eq!(job["attempts"], 1);
    assert!(job["error"].is_null());
    let (status, one) = books
        .call(
            "GET",
            &format!("/api/jobs/{}", job["id"]),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one, *job);

    // The next occurrences, computed from the start.
    let (status, preview) = books
        .call(
            "GET",
            &format!("/api/recurring-invoices/{}/preview?count=3", template["id"]),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    let next: Vec<String> = (1..=3)
        .map(|w| {
            today()
                .checked_add_days(Days::new(7 * w))
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(preview["dates"], json!(next));

    // Health and metrics show the queues at work, and nothing waiting (the
    // monitor counts the queues once a second: wait for a count taken after
    // the last job ended).
    let started = std::time::Instant::now();
    let health = loop {
        let health = books.server.health().await;
        let waiting =
            &health["dependencies"]["jobQueues"]["stats"]["recurring-invoices"]["waiting"];
        if *waiting == 0 || started.elapsed() > std::time::Duration::from_secs(5) {
            break health;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let queues = &health["dependencies"]["jobQueues"];
    assert_eq!(queues["status"], "healthy", "{queues}");
    assert_eq!(queues["queues"]["recurring-invoices"], true);
    assert_eq!(queues["stats"]["recurring-invoices"]["waiting"], 0);
    let metrics = books
        .server
        .get("/api/monitoring/metrics")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains("accubooks_jobs_total{outcome=\"succeeded\",queue=\"recurring-invoices\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("accubooks_job_dead{queue=\"payroll-processing\"} 0"));
    drop(setup.redis);
}

async fn bad_templates_are_refused_and_change_nothing(carrier: Carrier) {
    let setup = start(carrier).await;
    let (books, token) = (&setup.books, setup.token.as_str());
    let mut bad = weekly(setup.customer, 3, false);
    bad["schedule"]["interval"] = json!(0);
    let (status, body) = books
        .call("POST", "/api/recurring-invoices", Some(token), Some(bad))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "INVALID_SCHEDULE");
    let mut unknown = weekly(setup.customer, 3, false);
    unknown["customer_id"] = json!(999_999);
    let (status, body) = books
        .call(
            "POST",
            "/api/recurring-invoices",
            Some(token),
            Some(unknown),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = books
        .call(
            "PUT",
            "/api/settings",
            Some(token),
            Some(json!({"timezone": "Mars/Olympus_Mons"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "INVALID_TIMEZONE");
    let (status, settings) = books
        .call(
            "PUT",
            "/api/settings",
            Some(token),
            Some(json!({"timezone": "America/New_York"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(
        settings,
        json!({"tax_rounding": "line", "timezone": "America/New_York", "lock_date": null})
    );
    let (_, templates) = books
        .call("GET", "/api/recurring-invoices", Some(token), None)
        .await;
    assert_eq!(templates, json!([]));
    let (_, jobs) = books.call("GET", "/api/jobs", Some(token), None).await;
    assert_eq!(jobs, json!([]));
    let (status, body) = books
        .call("GET", "/api/jobs?status=sleeping", Some(token), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = books
        .call("GET", "/api/jobs/424242", Some(token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A host's own jobs recorded with `AccuBooks::enqueue`, more than one
/// statement's worth in one call: a key given twice in the call, or used by
/// an earlier call, is the first job (its id answered again); every job
/// runs, once.
async fn enqueued_jobs_are_recorded_once_per_key_and_run_once(carrier: Carrier) {
    use accubooks_core::jobs::NewJob;
    use accubooks_core::reporting;
    let setup = start(carrier).await;
    let books = &setup.books;
    let (token, organization) = books
        .register_organization(&format!("enqueue-{}@acme.test", uuid::Uuid::new_v4()))
        .await;
    let job = |key: String| NewJob {
        queue: reporting::QUEUE,
        kind: crate::support::server::TEST_JOB_KIND,
        unique_key: key,
        payload: json!({"n": 1}),
    };
    let app = &books.server.app;
    let first = app
        .enqueue(
            &accubooks_core::OrganizationId::parse(&organization).unwrap(),
            vec![job("early".to_owned())],
        )
        .await
        .unwrap();
    let mut jobs: Vec<NewJob> = (0..700).map(|i| job(format!("job-{i}"))).collect();
    jobs.push(job("job-3".to_owned()));
    jobs.push(job("early".to_owned()));
    let ids = app
        .enqueue(
            &accubooks_core::OrganizationId::parse(&organization).unwrap(),
            jobs,
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 702);
    assert_eq!(ids[700], ids[3]);
    assert_eq!(ids[701], first[0]);
    assert_eq!(ids[..700].iter().collect::<HashSet<_>>().len(), 700);
    assert!(!ids[..700].contains(&first[0]));
    let started = Instant::now();
    loop {
        let done = books
            .list("/api/jobs?queue=report-generation&status=succeeded", &token)
            .await;
        if done.len() == 701 {
            assert!(done.iter().all(|j| j["attempts"] == 1), "{done:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} of 701 succeeded",
            done.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The embedded default, as the README's first command starts it: SQLite and
/// no Redis variable. Redis is `disabled` (not configured, never probed), not
/// `unavailable`, so the instance is `healthy`; its jobs run on the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_default_is_healthy_without_redis() {
    use crate::support::server::{Host, TestServer, base_vars, set};

    let dir = tempfile::tempdir().unwrap();
    let mut vars = base_vars();
    vars.retain(|(name, _)| name != "REDIS_URL");
    let books_db = format!("sqlite://{}/books.db", dir.path().display());
    set(&mut vars, "DATABASE_URL", books_db);
    let books = Books::around(TestServer::start(Host::Axum, vars).await);
    books
        .server
        .wait_for_dependency("database", "connected", Duration::from_secs(10))
        .await;
    let token = books
        .register(
            &format!("embedded-{}@acme.test", uuid::Uuid::new_v4()),
            "USD",
        )
        .await;
    let (status, job) = books
        .call(
            "POST",
            "/api/report-jobs",
            Some(&token),
            Some(json!({"report": "trial-balance", "params": {"as_of": "2026-02-01"}, "format": "json"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    report_result(&books, &token, &job).await;
    let started = Instant::now();
    loop {
        let health = books.server.health().await;
        let dependencies = &health["dependencies"];
        assert_eq!(dependencies["redis"]["status"], "disabled", "{health}");
        assert_eq!(
            dependencies["jobQueues"]["transport"], "database",
            "{health}"
        );
        if health["status"] == "healthy" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the embedded default stays {health}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The queue filter names the queues this instance has registered.
    let (status, refused) = books
        .call("GET", "/api/jobs?queue=nope", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["code"], "INVALID_QUERY");
    let said = refused["error"].as_str().unwrap_or_default();
    assert!(
        said.contains("bank-feeds") && said.contains("recurring-invoices"),
        "{refused}"
    );
    // A Redis variable set means Redis is wanted: then it is probed, and
    // a closed port is `unavailable` as before (the other tests' servers).
}

/// Polls a report job until it has succeeded; answers its result's content
/// type and text.
pub(crate) async fn report_result(books: &Books, token: &str, job: &Value) -> (String, String) {
    let started = Instant::now();
    loop {
        let (status, now) = books
            .call(
                "GET",
                &format!("/api/report-jobs/{}", job["id"]),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{now}");
        if now["status"] == "succeeded" {
            assert!(now["finished_at"].is_string(), "{now}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20) && now["status"] != "dead",
            "{now}: {}",
            books.call("GET", "/api/jobs", Some(token), None).await.1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = books
        .server
        .client
        .get(format!(
            "{}/api/report-jobs/{}/result",
            books.server.base, job["id"]
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()[http::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    (content_type, response.text().await.unwrap())
}

async fn reports_run_as_jobs_in_json_and_csv(carrier: Carrier) {
    let setup = start(carrier).await;
    let (books, token) = (&setup.books, setup.token.as_str());
    let (status, entry) = books
        .call(
            "POST",
            "/api/journal-entries",
            Some(token),
            Some(
                json!({"date": "2026-01-31", "memo": "Owner's \"seed\", capital", "lines": [
                    {"account": "1000", "debit": "1500.00"},
                    {"account": "3000", "credit": "1500.00"},
                ]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    let (_, direct) = books
        .call(
            "GET",
            "/api/reports/trial-balance?as_of=2026-02-01",
            Some(token),
            None,
        )
        .await;

    let ask = |report: &str, params: Value, format: &str| json!({"report": report, "params": params, "format": format});
    let tb = ask("trial-balance", json!({"as_of": "2026-02-01"}), "json");
    let keyed = [("Idempotency-Key", "tb-1")];
    let (status, job) = books
        .call_with(
            "POST",
            "/api/report-jobs",
            Some(token),
            Some(tb.clone()),
            &keyed,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert!(job["job_id"].is_i64());
    // A retry with the key answers the same job (and asks for no other).
    let (status, again) = books
        .call_with("POST", "/api/report-jobs", Some(token), Some(tb), &keyed)
        .await;
    assert_eq!((status, &again), (StatusCode::ACCEPTED, &job));
    let (content_type, text) = report_result(books, token, &job).await;
    assert_eq!(content_type, "application/json");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), direct);

    let (status, job) = books
        .call(
            "POST",
            "/api/report-jobs",
            Some(token),
            Some(ask(
                "general-ledger",
                json!({"account": "1000", "from": "2026-01-01", "to": "2026-12-31"}),
                "csv",
            )),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let (content_type, text) = report_result(books, token, &job).await;
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    let entry_id = entry["id"].as_i64().unwrap();
    assert_eq!(
        text,
        format!(
            "date,entry_id,memo,debit,credit,balance\r\n\
             2026-01-31,{entry_id},\"Owner's \"\"seed\"\", capital\",1500.00,,1500.00\r\n"
        )
    );

    // Bad asks are refused and record nothing.
    for bad in [
        ask("trial-balance", json!({"from": "2026-01-01"}), "csv"),
        ask("income-statement", json!({"from": "2026-01-01"}), "json"),
        ask("balance-sheet", json!({}), "xlsx"),
        ask("cash-flow", json!({"from": "2026-01-01"}), "json"),
        ask("profit-and-loss", json!({}), "json"),
    ] {
        let (status, body) = books
            .call("POST", "/api/report-jobs", Some(token), Some(bad.clone()))
            .await;
        assert!(status.is_client_error(), "{bad}: {status} {body}");
    }
    let (_, jobs) = books
        .call(
            "GET",
            "/api/jobs?queue=report-generation",
            Some(token),
            None,
        )
        .await;
    assert_eq!(jobs.as_array().unwrap().len(), 2, "{jobs}");
    let (status, _) = books
        .call("GET", "/api/report-jobs/99999/result", Some(token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Cents of a decimal string.
fn cents(text: &Value) -> i64 {
    let text = text
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {text}"));
    let (units, fraction) = text.split_once('.').unwrap();
    units.parse::<i64>().unwrap() * 100 + fraction.parse::<i64>().unwrap()
}

async fn wait_posted(books: &Books, token: &str, run: &Value) -> Value {
    let started = Instant::now();
    loop {
        let (status, now) = books
            .call(
                "GET",
                &format!("/api/payroll-runs/{}", run["id"]),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{now}");
        if now["status"] == "posted" {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20) && now["job_status"] != "dead",
            "{now}: {}",
            books.call("GET", "/api/jobs", Some(token), None).await.1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn pay_runs_post_one_balanced_entry_and_stop_at_caps(carrier: Carrier) {
    let setup = start(carrier).await;
    let (books, token) = (&setup.books, setup.token.as_str());
    for (code, name, kind) in [
        ("5100", "Wages", "expense"),
        ("2200", "Withholding payable", "liability"),
        ("2300", "Employer taxes payable", "liability"),
    ] {
        books.create_account(token, code, name, kind).await;
    }
    let rules = json!([
        {"name": "Social security", "kind": "deduction", "rate": "0.062", "annual_cap": "500.00", "account": "2200"},
        {"name": "Health plan", "kind": "deduction", "amount": "50.00", "account": "2200"},
        {"name": "Employer social security", "kind": "employer", "rate": "0.062", "account": "2300"},
    ]);
    let (status, body) = books
        .call(
            "PUT",
            "/api/payroll/rules",
            Some(token),
            Some(rules.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut ids = Vec::new();
    let dave = json!({"name": "Dave", "pay": {"type": "hourly", "rate": "20.00"}, "frequency": "weekly",
                      "start_date": "2020-01-01", "end_date": "2020-12-31"});
    let keyed = [("Idempotency-Key", "hire-dave")];
    let (status, first) = books
        .call_with(
            "POST",
            "/api/employees",
            Some(token),
            Some(dave.clone()),
            &keyed,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (_, again) = books
        .call_with("POST", "/api/employees", Some(token), Some(dave), &keyed)
        .await;
    assert_eq!(again, first);
    let (_, staff) = books.call("GET", "/api/employees", Some(token), None).await;
    assert_eq!(staff.as_array().unwrap().len(), 1, "{staff}");
    for employee in [
        json!({"name": "Ada", "pay": {"type": "salary", "annual": "60000.00"}, "frequency": "monthly", "start_date": "2026-01-01"}),
        json!({"name": "Bob", "pay": {"type": "hourly", "rate": "25.00"}, "frequency": "monthly", "start_date": "2025-06-01"}),
        // Starts on Wednesday 11 March: 15 of March's 22 working days.
        json!({"name": "Cy", "pay": {"type": "salary", "annual": "48000.00"}, "frequency": "monthly", "start_date": "2026-03-11"}),
    ] {
        let (status, body) = books
            .call("POST", "/api/employees", Some(token), Some(employee))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["id"].as_i64().unwrap());
    }
    let (ada, bob, cy) = (ids[0], ids[1], ids[2]);
    let month = |from: &str, to: &str, hours: Value| json!({"period_start": from, "period_end": to, "pay_date": to, "hours": hours});

    // Refused asks change nothing.
    for (bad, code) in [
        (
            month(
                "2026-03-01",
                "2026-03-31",
                json!({ada.to_string(): "10.00"}),
            ),
            "INVALID_PAYROLL",
        ),
        (
            month("2026-03-01", "2026-03-31", json!({"4242": "10.00"})),
            "INVALID_PAYROLL",
        ),
        (
            month("2026-03-01", "2026-03-31", json!({})),
            "INVALID_PAYROLL",
        ),
        (
            month("2026-03-31", "2026-03-01", json!({})),
            "INVALID_FIELD",
        ),
    ] {
        let (status, body) = books
            .call("POST", "/api/payroll-runs", Some(token), Some(bad))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["code"], code, "{body}");
    }

    let march = month(
        "2026-03-01",
        "2026-03-31",
        json!({bob.to_string(): "80.00"}),
    );
    let keyed = [("Idempotency-Key", "march-run")];
    let (status, run) = books
        .call_with(
            "POST",
            "/api/payroll-runs",
            Some(token),
            Some(march.clone()),
            &keyed,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    assert_eq!(run["status"], "pending");
    // A retry with the key is the same run, not an overlap.
    let (status, again) = books
        .call_with(
            "POST",
            "/api/payroll-runs",
            Some(token),
            Some(march),
            &keyed,
        )
        .await;
    assert_eq!((status, &again), (StatusCode::ACCEPTED, &run));
    let posted = wait_posted(books, token, &run).await;
    let slips = posted["payslips"].as_array().unwrap();
    let slip = |id: i64| {
        slips
            .iter()
            .find(|s| s["employee_id"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        slip(ada),
        json!({"employee_id": ada, "gross": "5000.00",
               "deductions": [{"name": "Social security", "amount": "310.00"}, {"name": "Health plan", "amount": "50.00"}],
               "employer": [{"name": "Employer social security", "amount": "310.00"}],
               "net": "4640.00"})
    );
    assert_eq!(slip(bob)["gross"], "2000.00");
    assert_eq!(slip(cy)["gross"], "2727.27");
    // The run's entry holds its payslips to the cent.
    let (_, entry) = books
        .call(
            "GET",
            &format!("/api/journal-entries/{}", posted["entry_id"]),
            Some(token),
            None,
        )
        .await;
    let line = |code: &str, side: &str| -> i64 {
        entry["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["account"] == code && !l[side].is_null())
            .map(|l| cents(&l[side]))
            .sum()
    };
    let sum = |field: &str| slips.iter().map(|s| cents(&s[field])).sum::<i64>();
    let part = |list: &str| -> i64 {
        slips
            .iter()
            .flat_map(|s| s[list].as_array().unwrap().clone())
            .map(|l| cents(&l["amount"]))
            .sum()
    };
    assert_eq!(
        line("5100", "debit"),
        sum("gross") + part("employer"),
        "{entry}"
    );
    assert_eq!(line("2200", "credit"), part("deductions"), "{entry}");
    assert_eq!(line("2300", "credit"), part("employer"), "{entry}");
    assert_eq!(line("1000", "credit"), sum("net"), "{entry}");
    assert_eq!(sum("gross") - part("deductions"), sum("net"));

    // An overlapping run of the same employees is refused.
    let (status, body) = books
        .call(
            "POST",
            "/api/payroll-runs",
            Some(token),
            Some(month(
                "2026-03-15",
                "2026-04-15",
                json!({bob.to_string(): "80.00"}),
            )),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "PAYROLL_PERIOD_OVERLAP");

    // April: Ada's social security stops at its 500.00 cap; May takes none.
    for (from, to, expected) in [
        ("2026-04-01", "2026-04-30", "190.00"),
        ("2026-05-01", "2026-05-31", "0.00"),
    ] {
        let (status, run) = books
            .call(
                "POST",
                "/api/payroll-runs",
                Some(token),
                Some(month(from, to, json!({bob.to_string(): "80.00"}))),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{run}");
        let posted = wait_posted(books, token, &run).await;
        let ada_slip = posted["payslips"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["employee_id"] == ada)
            .unwrap()
            .clone();
        assert_eq!(
            ada_slip["deductions"][0],
            json!({"name": "Social security", "amount": expected})
        );
        assert_eq!(ada_slip["employer"][0]["amount"], "310.00");
    }
    let (_, jobs) = books
        .call(
            "GET",
            "/api/jobs?queue=payroll-processing",
            Some(token),
            None,
        )
        .await;
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .all(|j| j["status"] == "succeeded" && j["attempts"] == 1),
        "{jobs}"
    );
    assert_eq!(jobs.as_array().unwrap().len(), 3);
}

/// One `#[tokio::test]` per transport for each case: `$case(carrier)` is an
/// async fn of this module.
macro_rules! on_both_transports {
    ($($case:ident),* $(,)?) => {
        mod redis_transport {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Carrier::Redis).await
                }
            )*
        }
        mod database_transport {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Carrier::Database).await
                }
            )*
        }
    };
}

on_both_transports!(
    enqueued_jobs_are_recorded_once_per_key_and_run_once,
    a_template_in_the_past_is_caught_up_once,
    bad_templates_are_refused_and_change_nothing,
    reports_run_as_jobs_in_json_and_csv,
    pay_runs_post_one_balanced_entry_and_stop_at_caps,
    one_organization_s_backlog_does_not_delay_another_s_job,
);

/// Jobs are taken in turns across organizations: while one organization
/// has 20,000 jobs waiting on a queue, another's job enqueued behind them
/// runs within 2 s. (Taken oldest first, it waited for the whole backlog.)
async fn one_organization_s_backlog_does_not_delay_another_s_job(carrier: Carrier) {
    let setup = start(carrier).await;
    another_s_job_runs_behind_a_backlog(&setup.books, &format!("{carrier:?}")).await;
}

/// The same on PostgreSQL with `JOB_TRANSPORT=database`: several processes
/// may claim there, so the claim locks the rows it chose by their turns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_transport_on_postgres_takes_turns_too() {
    let books =
        Books::start_with(Store::Postgres, &[("JOB_TRANSPORT", "database".to_owned())]).await;
    another_s_job_runs_behind_a_backlog(&books, "database transport on PostgreSQL").await;
}

/// With more organizations holding backlogs than one claim takes (the
/// claim's `limit` is the free slots, here 4), the organization of the
/// highest id still gets its turn: the turns start after the last
/// organization served. (Starting at the lowest id each time, it waited
/// until the lower organizations' 12,000 jobs had run.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_turns_on_postgres_reach_more_organizations_than_a_claim_takes() {
    let books = Books::start_with(
        Store::Postgres,
        &[
            ("JOB_TRANSPORT", "database".to_owned()),
            ("JOB_CONCURRENCY", "4".to_owned()),
        ],
    )
    .await;
    let mut organizations = Vec::new();
    for n in 0..12 {
        organizations.push(
            books
                .register_organization(&format!("org{n}@acme.test"))
                .await,
        );
    }
    organizations.sort_by(|a, b| a.1.cmp(&b.1));
    let last = organizations.pop().unwrap();
    let hostile: Vec<String> = organizations.into_iter().map(|(_, id)| id).collect();
    a_job_runs_behind_backlogs(&books, "11 organizations, 4 slots", &hostile, 1_500, &last).await;
}

async fn another_s_job_runs_behind_a_backlog(books: &Books, carrier: &str) {
    let (_, hostile) = books.register_organization("backlog@acme.test").await;
    let other = books.register_organization("other@acme.test").await;
    a_job_runs_behind_backlogs(books, carrier, &[hostile], 20_000, &other).await;
}

/// While each of `hostile` has `backlog` jobs waiting on a queue, the job
/// `other` (token, organization) enqueues behind them runs within 2 s.
async fn a_job_runs_behind_backlogs(
    books: &Books,
    carrier: &str,
    hostile: &[String],
    backlog: usize,
    other: &(String, String),
) {
    use accubooks_core::jobs::NewJob;
    use accubooks_core::reporting;
    let (other_token, other) = other;
    let job = |key: String| NewJob {
        queue: reporting::QUEUE,
        kind: crate::support::server::TEST_JOB_KIND,
        unique_key: key,
        payload: json!({}),
    };
    let app = &books.server.app;
    for organization in hostile {
        let jobs = (0..backlog).map(|n| job(format!("backlog-{n}"))).collect();
        app.enqueue(
            &accubooks_core::OrganizationId::parse(organization).unwrap(),
            jobs,
        )
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let id = app
        .enqueue(
            &accubooks_core::OrganizationId::parse(other).unwrap(),
            vec![job("due-today".to_owned())],
        )
        .await
        .unwrap()[0];
    loop {
        let (status, answer) = books
            .call("GET", &format!("/api/jobs/{id}"), Some(other_token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        if answer["status"] == "succeeded" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the other organization's job is still {} after {:?}",
            answer["status"],
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let waited = started.elapsed();
    let mut left = 0;
    for organization in hostile {
        left += open_jobs(books, organization).await;
    }
    let total = backlog * hostile.len();
    eprintln!(
        "figure: fairness ({carrier}): another organization's job ran {waited:?} after it was \
         asked for, with {left} of the {total} backlogged jobs still open"
    );
    assert!(left > 1_000, "the backlogs were nearly done ({left} open)");
}

/// The jobs of `organization` not yet succeeded, read past row-level
/// security (as the superuser on PostgreSQL).
async fn open_jobs(books: &Books, organization: &str) -> i64 {
    books
        .count_as_admin(&format!(
            "SELECT count(*) FROM jobs WHERE organization_id = '{organization}' \
             AND status <> 'succeeded'"
        ))
        .await
}

/// Jobs through a Redis outage, on both stores with `JOB_TRANSPORT=redis`.
mod through_a_redis_outage {
    use accubooks_core::OrganizationId;
    use accubooks_core::jobs::NewJob;
    use accubooks_core::reporting;

    use super::*;
    use crate::books::Store;

    on_every_store!(
        jobs_keep_completing_while_redis_is_down_and_each_runs_once,
        messages_that_come_back_after_an_outage_run_nothing_twice,
    );

    /// A server on `store` with a private Redis carrying its jobs, and the
    /// id of the organization of `Setup::token`.
    async fn start_on(store: Store, extra: &[(&str, &str)]) -> (Setup, OrganizationId) {
        let redis = Redis::start().await;
        let mut vars = vec![
            ("RECURRING_SCAN_MS", "200".to_owned()),
            ("JOB_LEASE_MS", "2000".to_owned()),
            ("JOB_RETRY_BASE_MS", "100".to_owned()),
            ("REDIS_URL", redis.url()),
            ("JOB_TRANSPORT", "redis".to_owned()),
        ];
        vars.extend(
            extra
                .iter()
                .map(|(name, value)| (*name, (*value).to_owned())),
        );
        let books = Books::start_with(store, &vars).await;
        let (token, organization) = books
            .register_organization(&format!("outage-{}@acme.test", uuid::Uuid::new_v4()))
            .await;
        let customer = create_customer(&books, &token, "Initech").await;
        wait_for_transport(&books.server, "redis", Duration::from_secs(10)).await;
        let setup = Setup {
            books,
            redis: Some(redis),
            token,
            customer,
        };
        (setup, OrganizationId::parse(&organization).unwrap())
    }

    /// `count` no-op jobs on the report queue, keys `{prefix}-{n}`.
    fn burst(prefix: &str, count: usize) -> Vec<NewJob> {
        (0..count)
            .map(|n| NewJob {
                queue: reporting::QUEUE,
                kind: crate::support::server::TEST_JOB_KIND,
                unique_key: format!("{prefix}-{n}"),
                payload: json!({}),
            })
            .collect()
    }

    /// Jobs `queued`: relayed to a stream, not yet claimed.
    async fn queued(books: &Books) -> i64 {
        books
            .count_as_admin("SELECT count(*) FROM jobs WHERE status = 'queued'")
            .await
    }

    /// Asks for a trial balance as a report job; its id.
    async fn ask_report(books: &Books, token: &str) -> Value {
        let (status, job) = books
            .call(
                "POST",
                "/api/report-jobs",
                Some(token),
                Some(json!({"report": "trial-balance", "params": {"as_of": "2026-02-01"}, "format": "json"})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        job
    }

    /// Creates a weekly template with `weeks + 1` occurrences due.
    async fn ask_invoices(setup: &Setup, weeks: u64) {
        let (status, body) = setup
            .books
            .call(
                "POST",
                "/api/recurring-invoices",
                Some(&setup.token),
                Some(weekly(setup.customer, weeks, true)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// A stream of work: `rounds` rounds of a template (two occurrences)
    /// and a report job, 100 ms apart. Answers the report jobs.
    async fn stream_of_work(setup: &Setup, rounds: usize) -> Vec<Value> {
        let mut reports = Vec::new();
        for _ in 0..rounds {
            ask_invoices(setup, 1).await;
            reports.push(ask_report(&setup.books, &setup.token).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        reports
    }

    /// Every job of the store succeeded at its first attempt: none ran
    /// twice, none failed, none is left. Answers how many there are.
    async fn every_job_ran_once(books: &Books) -> i64 {
        let started = Instant::now();
        loop {
            let left = books
                .count_as_admin("SELECT count(*) FROM jobs WHERE status <> 'succeeded'")
                .await;
            if left == 0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{left} jobs not done: {}",
                books.server.health().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let again = books
            .count_as_admin("SELECT count(*) FROM jobs WHERE attempts <> 1")
            .await;
        assert_eq!(again, 0, "a job was attempted twice (or never)");
        books.count_as_admin("SELECT count(*) FROM jobs").await
    }

    /// Redis is killed under a stream of recurring invoices and report
    /// jobs (and a burst of jobs relayed just before, some of them on the
    /// stream): the queues go on from the database, and work asked for
    /// during the outage completes while Redis is still down (health:
    /// `transport` `database`, every queue `true`, `jobQueues` healthy,
    /// the service degraded). Redis restarted (empty: nothing persisted),
    /// the streams carry the jobs again, and every job ran exactly once:
    /// each occurrence one invoice, each report one result.
    async fn jobs_keep_completing_while_redis_is_down_and_each_runs_once(store: Store) {
        let (mut setup, organization) = start_on(store, &[]).await;
        let books = &setup.books;
        let token = setup.token.clone();
        // Before the outage: catch-ups (5 occurrences each) and reports.
        for _ in 0..3 {
            ask_invoices(&setup, 4).await;
        }
        let mut reports = stream_of_work(&setup, 3).await;
        // A burst relayed just before the kill: some of it is on the stream
        // (queued) when Redis goes, and runs from the database.
        let app = &books.server.app;
        app.enqueue(&organization, burst("burst", 2_000))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        setup.redis.as_mut().unwrap().kill();
        let killed = Instant::now();
        let on_stream = queued(books).await;
        books
            .server
            .wait_for_dependency("redis", "unavailable", Duration::from_secs(10))
            .await;
        let health = wait_for_transport(&books.server, "database", Duration::from_secs(5)).await;
        let switched = killed.elapsed();
        assert_eq!(
            health["dependencies"]["jobQueues"]["status"], "healthy",
            "{health}"
        );
        assert_eq!(health["status"], "degraded", "Redis is down: {health}");

        // During the outage: a stream of work, done while Redis is down.
        let during = Instant::now();
        reports.extend(stream_of_work(&setup, 8).await);
        let invoices =
            wait_for_occurrences(books, &token, 15 + 2 * 11, true, Duration::from_secs(30)).await;
        assert_unique(&invoices);
        // Posted: 37 invoices of 49.90 and 10 % tax in receivables, to the
        // cent.
        assert!(
            invoices.iter().all(|i| i["total"] == "54.89"),
            "{invoices:?}"
        );
        assert_eq!(books.balance(&token, "1100").await, "2030.93");
        for report in &reports {
            report_result(books, &token, report).await;
        }
        let done_in = during.elapsed();
        let health = books.server.health().await;
        assert_eq!(
            health["dependencies"]["redis"]["status"], "unavailable",
            "the work must complete while Redis is still down: {health}"
        );
        assert_eq!(health["dependencies"]["jobQueues"]["transport"], "database");
        let metrics = books.server.app.render_metrics();
        assert!(
            metrics.contains("accubooks_job_transport{transport=\"database\"} 1"),
            "{metrics}"
        );

        setup.redis.as_mut().unwrap().restart().await;
        books
            .server
            .wait_for_dependency("redis", "connected", Duration::from_secs(10))
            .await;
        let health = wait_for_transport(&books.server, "redis", Duration::from_secs(5)).await;
        assert_eq!(
            health["dependencies"]["jobQueues"]["status"], "healthy",
            "{health}"
        );
        // After the outage: on the streams again.
        reports.extend(stream_of_work(&setup, 3).await);
        let invoices =
            wait_for_occurrences(books, &token, 15 + 2 * 14, true, Duration::from_secs(30)).await;
        for report in &reports {
            report_result(books, &token, report).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let invoices_now = occurrences(books, &token).await;
        assert_eq!(
            invoices_now.len(),
            invoices.len(),
            "an occurrence came twice"
        );
        assert_eq!(invoices.len(), 15 + 2 * 14);
        assert_unique(&invoices);
        assert_eq!(books.balance(&token, "1100").await, "2360.27");
        let jobs = every_job_ran_once(books).await;
        let metrics = books.server.app.render_metrics();
        assert!(
            metrics.contains("accubooks_job_transport{transport=\"redis\"} 1"),
            "{metrics}"
        );
        eprintln!(
            "figure: Redis outage ({store:?}): the queues ran from the database {switched:?} \
             after the kill ({on_stream} jobs were queued on the lost stream); 8 rounds of work \
             asked for during the outage done {done_in:?} after the first; {jobs} jobs in all, \
             each run once"
        );
    }

    /// Redis frozen (its streams kept) right after a burst was relayed:
    /// the jobs queued on the stream run from the database meanwhile, and
    /// when Redis answers again their messages are read, miss their claim
    /// and are dropped: every job ran once, and the stream is left empty.
    async fn messages_that_come_back_after_an_outage_run_nothing_twice(store: Store) {
        // One job at a time: the relay fills the stream far faster than the
        // worker reads it.
        let (setup, organization) = start_on(store, &[("JOB_CONCURRENCY", "1")]).await;
        let (books, redis) = (&setup.books, setup.redis.as_ref().unwrap());
        let app = &books.server.app;
        app.enqueue(&organization, burst("frozen", 1_000))
            .await
            .unwrap();
        let started = Instant::now();
        while queued(books).await < 50 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nothing relayed"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        redis.pause();
        let frozen = Instant::now();
        let on_stream = queued(books).await;
        books
            .server
            .wait_for_dependency("redis", "unavailable", Duration::from_secs(10))
            .await;
        wait_for_transport(&books.server, "database", Duration::from_secs(10)).await;
        let started = Instant::now();
        while books
            .count_as_admin("SELECT count(*) FROM jobs WHERE status <> 'succeeded'")
            .await
            > 0
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the jobs did not run from the database: {}",
                books.server.health().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let drained = frozen.elapsed();
        assert_eq!(
            books.server.health().await["dependencies"]["redis"]["status"],
            "unavailable",
            "the jobs must have run while Redis was frozen"
        );
        redis.resume();
        wait_for_transport(&books.server, "redis", Duration::from_secs(10)).await;
        // The messages of the jobs run meanwhile are read and dropped.
        let key = "{accubooks:report-generation}:jobs";
        let started = Instant::now();
        loop {
            let mut connection = app.redis().connection();
            let left: i64 = redis::cmd("XLEN")
                .arg(key)
                .query_async(&mut connection)
                .await
                .unwrap();
            if left == 0 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{left} messages left on the stream"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(every_job_ran_once(books).await, 1_000);
        let metrics = app.render_metrics();
        assert!(
            metrics.contains(
                "accubooks_jobs_total{outcome=\"succeeded\",queue=\"report-generation\"} 1000"
            ),
            "each job counted once: {metrics}"
        );
        eprintln!(
            "figure: Redis frozen ({store:?}) with {on_stream} jobs queued on its stream: all \
             1,000 jobs done from the database {drained:?} after the freeze; the messages \
             dropped after it thawed; each job run once"
        );
    }
}

/// Waits until `jobQueues.transport` is `transport` with every queue
/// running; answers the health body.
pub(crate) async fn wait_for_transport(
    server: &crate::support::server::TestServer,
    transport: &str,
    limit: Duration,
) -> Value {
    let started = Instant::now();
    loop {
        let health = server.health().await;
        let queues = &health["dependencies"]["jobQueues"];
        let running = queues["queues"]
            .as_object()
            .is_some_and(|q| q.values().all(|v| *v == true));
        if queues["transport"] == transport && running {
            return health;
        }
        assert!(
            started.elapsed() < limit,
            "the jobs did not go to {transport} within {limit:?}: {health}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two server processes' worth of instances on one PostgreSQL and Redis
/// split the catch-ups of eight organizations (a year of weekly invoices
/// each): both do some of the work, and each occurrence is generated once.
/// (One organization's catch-up is one job, issued in date order: the work
/// is shared by organization.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_work_and_generate_each_occurrence_once() {
    use crate::support::server::{Host, TestServer, base_vars, set};
    use crate::support::services::Postgres;

    let (pg, redis) = tokio::join!(Postgres::start(), Redis::start());
    let mut vars = base_vars();
    set(&mut vars, "DATABASE_URL", pg.url());
    set(&mut vars, "REDIS_URL", redis.url());
    set(&mut vars, "JOB_TRANSPORT", "redis");
    set(&mut vars, "JOB_CONCURRENCY", "2");
    let (a, b) = tokio::join!(
        TestServer::start(Host::Axum, vars.clone()),
        TestServer::start(Host::Warp, vars)
    );
    for server in [&a, &b] {
        server
            .wait_for_dependency("jobQueues", "healthy", Duration::from_secs(10))
            .await;
    }
    let books = Books::around(a);
    let mut tokens = Vec::new();
    for _ in 0..8 {
        let token = books
            .register(&format!("shared-{}@acme.test", uuid::Uuid::new_v4()), "USD")
            .await;
        let customer = create_customer(&books, &token, "Hooli").await;
        tokens.push((token, customer));
    }
    for (token, customer) in &tokens {
        let (status, _) = books
            .call(
                "POST",
                "/api/recurring-invoices",
                Some(token),
                Some(weekly(*customer, 52, false)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    for (token, _) in &tokens {
        let invoices =
            wait_for_occurrences(&books, token, 53, false, Duration::from_secs(60)).await;
        assert_eq!(invoices.len(), 53);
        assert_unique(&invoices);
    }
    let done = |metrics: &str| -> u64 {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(
                    "accubooks_jobs_total{outcome=\"succeeded\",queue=\"recurring-invoices\"}",
                )
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let (by_a, by_b) = (
        done(&books.server.app.render_metrics()),
        done(&b.app.render_metrics()),
    );
    eprintln!(
        "figure: 8 catch-ups of 53 occurrences, {by_a} by one instance and {by_b} by the other"
    );
    assert_eq!(by_a + by_b, 8);
    assert!(
        by_a > 0 && by_b > 0,
        "one instance did all the work: {by_a} / {by_b}"
    );
    drop((pg, redis));
}

/// A message that Redis loses while keeping its stream (an asynchronous
/// failover, an append-only file missing its last second) would leave its
/// job `queued` for good: once `JOB_RESEND_AFTER_MS` has passed, the relay
/// sends it again, and it runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_message_was_lost_is_sent_again() {
    use crate::support::server::{Host, TestServer, base_vars, set};
    use crate::support::services::Postgres;

    let (pg, redis) = tokio::join!(Postgres::start(), Redis::start());
    let mut vars = base_vars();
    set(&mut vars, "DATABASE_URL", pg.url());
    set(&mut vars, "REDIS_URL", redis.url());
    set(&mut vars, "JOB_TRANSPORT", "redis");
    set(&mut vars, "JOB_LEASE_MS", "1000");
    set(&mut vars, "JOB_RESEND_AFTER_MS", "1500");
    let server = TestServer::start(Host::Axum, vars).await;
    server
        .wait_for_dependency("jobQueues", "healthy", Duration::from_secs(10))
        .await;
    let books = Books::around(server);
    let (token, organization) = books
        .register_organization(&format!("lost-{}@acme.test", uuid::Uuid::new_v4()))
        .await;
    // A job recorded as already relayed (`queued`) whose message is not on
    // the stream: what a lost message leaves. (Redis is up, so the workers
    // read only the stream; while it is down they would take it from the
    // table.)
    let admin = sqlx::PgPool::connect(&pg.admin_url()).await.unwrap();
    let inserted = sqlx::query(
        "INSERT INTO jobs (organization_id, queue, kind, unique_key, payload, status, attempts, \
         run_after_ms, created_ms, updated_ms) VALUES ($1, 'report-generation', $2, 'lost', '{}', \
         'queued', 0, 0, 0, CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT))",
    )
    .bind(&organization)
    .bind(crate::support::server::TEST_JOB_KIND)
    .execute(&admin)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(inserted, 1);
    let done = wait_succeeded(&books, &token, 1, Duration::from_secs(20)).await;
    assert_eq!(done[0]["attempts"], 1, "{done:?}");
    admin.close().await;
}

/// Polls until `expected` report jobs of `token`'s organization have
/// succeeded; answers them. Panics after `limit`.
async fn wait_succeeded(
    books: &Books,
    token: &str,
    expected: usize,
    limit: Duration,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let done = books
            .list("/api/jobs?queue=report-generation&status=succeeded", token)
            .await;
        if done.len() >= expected {
            return done;
        }
        assert!(
            started.elapsed() < limit,
            "{} of {expected} jobs succeeded after {limit:?}; health: {}",
            done.len(),
            books.server.health().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The queues on a Redis Cluster of three masters with a replica each
/// (`REDIS_MODE=cluster`, `REDIS_WAIT_REPLICAS=1`). The server starts before
/// the nodes form a cluster and picks it up with no restart. The master of the report
/// queue's slot is SIGKILLed while jobs are being relayed and run; its
/// replica takes over, the server follows it with no restart, and every job
/// asked for before, during and after the failover runs exactly once, as do
/// the recurring invoices, whose queue lives on another master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queues_run_on_redis_cluster_and_lose_no_job_when_a_master_fails() {
    use crate::support::services::RedisCluster;
    use accubooks_core::jobs::NewJob;
    use accubooks_core::reporting;

    let mut cluster = RedisCluster::start(3, 1).await;
    let vars = [
        ("RECURRING_SCAN_MS", "200".to_owned()),
        ("JOB_LEASE_MS", "2000".to_owned()),
        ("JOB_TRANSPORT", "redis".to_owned()),
        ("REDIS_MODE", "cluster".to_owned()),
        ("REDIS_URL", cluster.urls()),
        ("REDIS_WAIT_REPLICAS", "1".to_owned()),
    ];
    // The server starts while the nodes are not a cluster yet: it does not
    // wait for them, and follows once they are.
    let books = Books::start_with(Store::Postgres, &vars).await;
    books
        .server
        .wait_for_dependency("redis", "unavailable", Duration::from_secs(10))
        .await;
    let (token, organization) = books
        .register_organization(&format!("cluster-{}@acme.test", uuid::Uuid::new_v4()))
        .await;
    let customer = create_customer(&books, &token, "Pied Piper").await;
    let app = &books.server.app;
    let organization = accubooks_core::OrganizationId::parse(&organization).unwrap();
    let enqueue = |phase: &'static str| {
        let jobs = (0..200)
            .map(|i| NewJob {
                queue: reporting::QUEUE,
                kind: crate::support::server::TEST_JOB_KIND,
                unique_key: format!("{phase}-{i}"),
                payload: json!({"phase": phase}),
            })
            .collect();
        app.enqueue(&organization, jobs)
    };

    enqueue("before").await.unwrap();
    cluster.join().await;
    books
        .server
        .wait_for_dependency("jobQueues", "healthy", Duration::from_secs(15))
        .await;
    wait_succeeded(&books, &token, 200, Duration::from_secs(30)).await;
    let (status, body) = books
        .call(
            "POST",
            "/api/recurring-invoices",
            Some(&token),
            Some(weekly(customer, 52, false)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let key = "{accubooks:report-generation}:jobs";
    let master = cluster
        .master_of(key, None)
        .expect("a master serves the report queue");
    enqueue("during").await.unwrap();
    cluster.nodes[master].kill();
    let killed = Instant::now();
    enqueue("after").await.unwrap();
    let promoted = loop {
        if matches!(cluster.master_of(key, Some(master)), Some(node) if node != master) {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no replica took over the slot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let done = wait_succeeded(&books, &token, 600, Duration::from_secs(60)).await;
    let all_done = killed.elapsed();
    assert_eq!(done.len(), 600, "a job ran twice: {done:?}");
    assert!(
        done.iter().all(|job| job["attempts"] == 1),
        "a job was attempted twice: {done:?}"
    );
    let invoices = wait_for_occurrences(&books, &token, 53, false, Duration::from_secs(30)).await;
    assert_eq!(invoices.len(), 53);
    assert_unique(&invoices);
    books
        .server
        .wait_for_dependency("jobQueues", "healthy", Duration::from_secs(15))
        .await;
    eprintln!(
        "figure: cluster master failover: replica serving {promoted:?} after the kill; \
         all 600 jobs done {all_done:?} after it; 0 lost, 0 run twice; 53 occurrences once"
    );
}

/// Host job kinds, registered with `Builder::job_handler`: retries, `dead`,
/// the retry route, and a graceful shutdown that hands a running job back.
mod host_jobs {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use accubooks_core::identity::Principal;
    use accubooks_core::jobs::{self, JobFailure, JobStatus, NewJob};
    use accubooks_core::reporting;
    use accubooks_core::{AccuBooks, Config};

    use super::*;
    use crate::support::server::{base_vars, init_logs, set};

    fn vars(dir: &tempfile::TempDir, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut vars = base_vars();
        set(
            &mut vars,
            "DATABASE_URL",
            format!("sqlite://{}/books.db", dir.path().display()),
        );
        set(&mut vars, "JOB_TRANSPORT", "database");
        for (name, value) in extra {
            set(&mut vars, name, *value);
        }
        vars
    }

    /// Waits until the instance's database is connected (and migrated).
    async fn connected(app: &AccuBooks) {
        let started = Instant::now();
        while !app
            .registry()
            .get("database")
            .is_some_and(|d| d.is_available())
        {
            assert!(started.elapsed() < Duration::from_secs(10), "no database");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn owner(app: &AccuBooks) -> Principal {
        connected(app).await;
        let registration = serde_json::from_value(json!({
            "email": format!("host-{}@example.com", uuid::Uuid::new_v4().simple()),
            "password": "correct horse battery",
            "organization": "Host jobs",
        }))
        .unwrap();
        accubooks_core::identity::register(app.database(), app.password_hashing(), registration)
            .await
            .unwrap()
    }

    async fn wait_status(app: &AccuBooks, caller: &Principal, id: i64, status: JobStatus) {
        let started = Instant::now();
        loop {
            let job = app.books().job(caller, id).await.unwrap();
            if job.status == status {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{job:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn job(kind: &'static str) -> NewJob {
        NewJob {
            queue: reporting::QUEUE,
            kind,
            unique_key: uuid::Uuid::new_v4().to_string(),
            payload: json!({}),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn temporary_failures_are_retried_until_dead_and_a_dead_job_can_be_retried() {
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let config = Config::from_vars(vars(
            &dir,
            &[("JOB_MAX_ATTEMPTS", "3"), ("JOB_RETRY_BASE_MS", "50")],
        ))
        .unwrap();
        // Fails its first four runs with a temporary error, then succeeds.
        let runs = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&runs);
        let flaky = jobs::from_fn(move |_, _| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 4 {
                    Err(JobFailure::temporary("UPSTREAM_BUSY"))
                } else {
                    Ok(())
                }
            }
        });
        let permanent = jobs::from_fn(|_, _| async { Err(JobFailure::permanent("BAD_INPUT")) });
        let app = AccuBooks::builder(config)
            .job_handler("flaky", reporting::QUEUE, flaky)
            .job_handler("permanent", reporting::QUEUE, permanent)
            .build()
            .await
            .unwrap();
        let caller = owner(&app).await;
        let organization = caller.organization.to_string();
        let ids = app
            .enqueue(
                &accubooks_core::OrganizationId::parse(&organization).unwrap(),
                vec![job("flaky"), job("permanent")],
            )
            .await
            .unwrap();
        // Three attempts, then dead, with the last failure's code.
        wait_status(&app, &caller, ids[0], JobStatus::Dead).await;
        let dead = app.books().job(&caller, ids[0]).await.unwrap();
        assert_eq!(dead.attempts, 3);
        assert_eq!(dead.error.as_ref().unwrap().code, "UPSTREAM_BUSY");
        assert_eq!(dead.error.as_ref().unwrap().kind, "temporary");
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        // A permanent failure is not retried.
        wait_status(&app, &caller, ids[1], JobStatus::Dead).await;
        assert_eq!(app.books().job(&caller, ids[1]).await.unwrap().attempts, 1);
        let listed = app
            .books()
            .jobs(
                &caller,
                Some(reporting::QUEUE),
                Some(JobStatus::Dead),
                accubooks_core::paging::PageRequest::default(),
            )
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 2);
        // Retried: attempts counted afresh; it fails once more, then succeeds.
        let retried = app.books().retry_job(&caller, ids[0]).await.unwrap();
        assert_eq!(retried.status, JobStatus::Pending);
        assert_eq!(retried.attempts, 0);
        wait_status(&app, &caller, ids[0], JobStatus::Succeeded).await;
        let done = app.books().job(&caller, ids[0]).await.unwrap();
        assert_eq!(done.attempts, 2);
        assert!(done.error.is_none());
        assert_eq!(runs.load(Ordering::SeqCst), 5);
        let metrics = app.render_metrics();
        assert!(
            metrics
                .contains("accubooks_jobs_total{outcome=\"dead\",queue=\"report-generation\"} 2"),
            "{metrics}"
        );
        app.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_draining_process_hands_back_a_job_it_cannot_finish() {
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let slow = jobs::from_fn(|_, _| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        });
        let config = Config::from_vars(vars(&dir, &[("DRAIN_TIMEOUT_MS", "300")])).unwrap();
        let first = AccuBooks::builder(config)
            .job_handler("work", reporting::QUEUE, slow)
            .build()
            .await
            .unwrap();
        let caller = owner(&first).await;
        let ids = first
            .enqueue(&caller.organization.into(), vec![job("work")])
            .await
            .unwrap();
        wait_status(&first, &caller, ids[0], JobStatus::Running).await;
        let closing = Instant::now();
        first.close().await;
        assert!(closing.elapsed() < Duration::from_secs(5));
        // Handed back to the outbox, not left running under a dead lease.
        let second_config = Config::from_vars(vars(&dir, &[])).unwrap();
        let done = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&done);
        let quick = jobs::from_fn(move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        });
        let second = AccuBooks::builder(second_config)
            .job_handler("work", reporting::QUEUE, quick)
            .build()
            .await
            .unwrap();
        connected(&second).await;
        wait_status(&second, &caller, ids[0], JobStatus::Succeeded).await;
        assert_eq!(done.load(Ordering::SeqCst), 1);
        let job = second.books().job(&caller, ids[0]).await.unwrap();
        assert_eq!(job.attempts, 2, "{job:?}");
        second.close().await;
    }

    /// The status and attempts of every job of the caller's organization on
    /// the report queue, through the instance.
    async fn statuses(app: &AccuBooks, caller: &Principal) -> Vec<(JobStatus, u32)> {
        let mut all = Vec::new();
        let mut page = accubooks_core::paging::PageRequest {
            limit: accubooks_core::paging::Limit::MAX,
            after: None,
        };
        loop {
            let read = app
                .books()
                .jobs(caller, Some(reporting::QUEUE), None, page.clone())
                .await
                .unwrap();
            all.extend(read.items.iter().map(|job| (job.status, job.attempts)));
            match (read.next, read.items.last()) {
                (Some(_), Some(last)) => page.after = Some(last.id),
                _ => return all,
            }
        }
    }

    /// A draining process gives back at once the jobs of its local queue
    /// (claimed in a batch, `running` under its lease, never started):
    /// `pending` again with their attempt not counted, so another process
    /// runs them without waiting for the lease, and each job runs once
    /// (the one stuck in its handler twice: handed back at the drain
    /// timeout, as before).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_draining_process_gives_back_the_jobs_it_claimed_but_never_started() {
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let runs = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&runs);
        // The 50th run never ends (until the process gives up on it).
        let stuck = jobs::from_fn(move |_, _| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 49 {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
                Ok(())
            }
        });
        let config = Config::from_vars(vars(
            &dir,
            &[("JOB_CONCURRENCY", "1"), ("DRAIN_TIMEOUT_MS", "300")],
        ))
        .unwrap();
        let first = AccuBooks::builder(config)
            .job_handler("work", reporting::QUEUE, stuck)
            .build()
            .await
            .unwrap();
        let caller = owner(&first).await;
        let jobs: Vec<NewJob> = (0..200).map(|_| job("work")).collect();
        first
            .enqueue(&caller.organization.into(), jobs)
            .await
            .unwrap();
        let started = Instant::now();
        while runs.load(Ordering::SeqCst) < 50 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "stuck before 50 runs"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The stuck job and the local queue behind it (JOB_CONCURRENCY=1:
        // a local queue of 20) are running, and so are, until the finisher
        // has recorded them, jobs already done: at most two local queues
        // and a slot in all.
        let mut running = 0;
        let started = Instant::now();
        while running < 2 {
            let now = statuses(&first, &caller).await;
            running = now.iter().filter(|(s, _)| *s == JobStatus::Running).count();
            assert!(started.elapsed() < Duration::from_secs(10), "{now:?}");
        }
        assert!(
            running <= 41,
            "{running} running with one slot and local queues of 20"
        );
        first.close().await;
        // Read from the file itself: the instance's pools are closed.
        let file =
            sqlx::SqlitePool::connect(&format!("sqlite://{}/books.db", dir.path().display()))
                .await
                .unwrap();
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, attempts FROM jobs WHERE kind = 'work'")
                .fetch_all(&file)
                .await
                .unwrap();
        file.close().await;
        let after: Vec<(JobStatus, u32)> = rows
            .into_iter()
            .map(|(s, a)| (JobStatus::parse(&s).unwrap(), u32::try_from(a).unwrap()))
            .collect();
        assert_eq!(after.len(), 200);
        assert_eq!(
            after
                .iter()
                .filter(|(s, _)| *s == JobStatus::Succeeded)
                .count(),
            49,
            "{after:?}"
        );
        // Nothing left running; of the 151 pending, only the stuck one
        // counts an attempt.
        let pending: Vec<u32> = after
            .iter()
            .filter(|(s, _)| *s == JobStatus::Pending)
            .map(|(_, attempts)| *attempts)
            .collect();
        assert_eq!(pending.len(), 151, "{after:?}");
        assert_eq!(
            pending.iter().filter(|a| **a == 1).count(),
            1,
            "{pending:?}"
        );
        assert_eq!(
            pending.iter().filter(|a| **a == 0).count(),
            150,
            "{pending:?}"
        );
        // Another process runs the rest: each job once more at most.
        let counter = Arc::clone(&runs);
        let quick = jobs::from_fn(move |_, _| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok(()) }
        });
        let second = AccuBooks::builder(Config::from_vars(vars(&dir, &[])).unwrap())
            .job_handler("work", reporting::QUEUE, quick)
            .build()
            .await
            .unwrap();
        connected(&second).await;
        let started = Instant::now();
        loop {
            let now = statuses(&second, &caller).await;
            if now.iter().all(|(s, _)| *s == JobStatus::Succeeded) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{now:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), 200 + 1);
        second.close().await;
    }

    /// Whether the instance's registry says `dependency` is available.
    fn available(app: &AccuBooks, dependency: &str) -> bool {
        app.registry()
            .get(dependency)
            .is_some_and(|d| d.is_available())
    }

    /// One semaphore for both modes: with `JOB_CONCURRENCY=4`, jobs of
    /// 1 s on the redis transport, Redis killed while four read from the
    /// stream run (the queue goes on from the table) and restarted while
    /// jobs claimed from the table still run (the queue goes back to its
    /// stream): never more than four run at once, some run while Redis is
    /// down, and each runs once (counted in the handler itself, not from
    /// the job's record). With a semaphore per mode, eight ran at once
    /// (in two runs of three).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_queue_runs_at_most_job_concurrency_jobs_across_a_redis_outage() {
        use std::collections::HashMap;
        use std::sync::Mutex;
        use std::sync::atomic::AtomicUsize;

        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let mut redis = Redis::start().await;
        let url = redis.url();
        let config = Config::from_vars(vars(
            &dir,
            &[
                ("JOB_TRANSPORT", "redis"),
                ("REDIS_URL", url.as_str()),
                ("JOB_CONCURRENCY", "4"),
                ("JOB_LEASE_MS", "2000"),
            ],
        ))
        .unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let runs: Arc<Mutex<HashMap<i64, u32>>> = Arc::default();
        let (r, m, ran) = (Arc::clone(&running), Arc::clone(&most), Arc::clone(&runs));
        let work = jobs::from_fn(move |_, job| {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            *ran.lock().unwrap().entry(job.id).or_default() += 1;
            let r = Arc::clone(&r);
            async move {
                tokio::time::sleep(Duration::from_millis(1000)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        });
        let app = AccuBooks::builder(config)
            .job_handler("work", reporting::QUEUE, work)
            .build()
            .await
            .unwrap();
        let caller = owner(&app).await;
        let started = Instant::now();
        while !available(&app, "redis") {
            assert!(started.elapsed() < Duration::from_secs(10), "no Redis");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let jobs: Vec<NewJob> = (0..24).map(|_| job("work")).collect();
        let ids = app
            .enqueue(&caller.organization.into(), jobs)
            .await
            .unwrap();
        let ran = || runs.lock().unwrap().len();
        let started = Instant::now();
        while ran() < 4 {
            assert!(started.elapsed() < Duration::from_secs(10), "nothing ran");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        redis.kill();
        let started = Instant::now();
        while available(&app, "redis") {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "Redis still up"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let at_outage = ran();
        // Jobs start while Redis is down, from the table.
        let started = Instant::now();
        while ran() < at_outage + 4 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{} jobs ran while Redis was down",
                ran() - at_outage
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let during = ran() - at_outage;
        redis.restart().await;
        let caller_ref = &caller;
        for id in &ids {
            wait_status(&app, caller_ref, *id, JobStatus::Succeeded).await;
        }
        let runs = runs.lock().unwrap().clone();
        assert_eq!(runs.len(), 24, "a job never ran");
        assert!(runs.values().all(|&n| n == 1), "a job ran twice: {runs:?}");
        let most = most.load(Ordering::SeqCst);
        assert!(most <= 4, "{most} jobs ran at once with JOB_CONCURRENCY=4");
        eprintln!(
            "figure: 24 jobs of 1 s at JOB_CONCURRENCY=4 across a Redis outage: {during} \
             started while it was down (at least), at most {most} at once, each once"
        );
        app.close().await;
    }
}

//! Jobs cannot starve requests of database connections (issue 26): jobs
//! take theirs from their own share of `DB_POOL_MAX` (`DB_POOL_JOBS`), so
//! a flood of them, however high `JOB_CONCURRENCY` is, never makes a request
//! wait past `DB_CONNECT_TIMEOUT_MS`. On PostgreSQL (an ordinary role, with
//! row-level security) and SQLite, through HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{Days, NaiveDate};
use http::StatusCode;
use serde_json::{Value, json};

use crate::books::{Books, Store};

/// Entries in the books every report of the flood reads.
const ENTRIES: usize = 2_000;
/// Report jobs asked for at once.
const REPORTS: usize = 64;

/// The pool of the flood: six connections, a connect timeout that a
/// request must never wait past, and up to 256 report jobs at once.
const VARS: [(&str, &str); 6] = [
    ("JOB_TRANSPORT", "database"),
    ("DB_POOL_MAX", "6"),
    ("DB_POOL_MIN", "1"),
    ("DB_CONNECT_TIMEOUT_MS", "500"),
    ("JOB_CONCURRENCY", "256"),
    ("RUST_LOG", "warn"),
];

async fn start(store: Store, extra: &[(&str, &str)]) -> (Books, String) {
    let vars: Vec<_> = VARS
        .iter()
        .chain(extra)
        .map(|(name, value)| (*name, (*value).to_owned()))
        .collect();
    let books = Books::start_with(store, &vars).await;
    let token = books
        .register(&format!("pool-{}@acme.test", uuid::Uuid::new_v4()), "USD")
        .await;
    (books, token)
}

/// The value of the sample `series` (name and labels, as rendered).
fn sample(metrics: &str, series: &str) -> Option<i64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn metrics_of(books: &Books) -> String {
    let response = books.server.get("/api/monitoring/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// Every request made while the flood ran: (what, status, how long, body).
type Seen = Vec<(&'static str, StatusCode, Duration, Value)>;

/// Report jobs by the hundred, up to 256 running at once on a pool of 6,
/// while clients read the accounts and post entries: every request is
/// answered 2xx (none 503 for want of a connection), every report is made
/// at its first attempt, and the posted entries are all in the balance, to
/// the cent. On PostgreSQL storing a report's result takes 500 ms more (a
/// trigger, as a slow disk or a large result would), so each job holds its
/// connection that long: with one pool for all, requests then wait seconds
/// for a connection and are refused (measured before issue 26: 503s and the
/// database declared down).
async fn a_flood_of_jobs_leaves_requests_their_connections(store: Store) {
    let (books, token) = start(store, &[]).await;
    let books = Arc::new(books);
    // Books every report reads whole: ENTRIES sales of 10.00 through 2026.
    let start_date = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    for chunk in (0..ENTRIES).collect::<Vec<_>>().chunks(1_000) {
        let entries: Vec<_> = chunk
            .iter()
            .map(|n| {
                let date = start_date + Days::new((n % 360) as u64);
                json!({"date": date.to_string(), "memo": format!("sale {n}"), "lines": [
                    {"account": "1000", "debit": "10.00"},
                    {"account": "4000", "credit": "10.00"}]})
            })
            .collect();
        books.post_batch(&token, entries).await;
    }

    if let Store::Postgres = store {
        books
            .execute_as_admin(
                "CREATE FUNCTION slow_store() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN PERFORM pg_sleep(0.5); RETURN NEW; END $$",
            )
            .await;
        books
            .execute_as_admin(
                "CREATE TRIGGER slow_store BEFORE UPDATE OF result ON report_jobs \
                 FOR EACH ROW EXECUTE FUNCTION slow_store()",
            )
            .await;
    }
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    // Three clients read and post for as long as the flood lasts.
    let clients: Vec<_> = (0..3)
        .map(|client| {
            let (books, token, done) = (books.clone(), token.clone(), done.clone());
            tokio::spawn(async move {
                let mut seen = Seen::new();
                let mut n = 0u32;
                while !done.load(Ordering::Relaxed) {
                    n += 1;
                    let asked = Instant::now();
                    let (what, (status, body)) = if (n + client).is_multiple_of(2) {
                        let answer = books.call("GET", "/api/accounts", Some(&token), None).await;
                        ("GET /api/accounts", answer)
                    } else {
                        let entry = json!({"date": "2026-12-31", "lines": [
                            {"account": "1000", "debit": "0.01"},
                            {"account": "3000", "credit": "0.01"}]});
                        let answer = books
                            .call("POST", "/api/journal-entries", Some(&token), Some(entry))
                            .await;
                        ("POST /api/journal-entries", answer)
                    };
                    seen.push((what, status, asked.elapsed(), body));
                }
                seen
            })
        })
        .collect();
    // The flood, asked for by eight clients at once: a general ledger of
    // every sale, or a trial balance, in turns.
    let askers: Vec<_> = (0..8)
        .map(|asker| {
            let (books, token) = (books.clone(), token.clone());
            tokio::spawn(async move {
                let mut seen = Seen::new();
                let mut jobs = Vec::new();
                for n in (asker..REPORTS).step_by(8) {
                    let ask = if n.is_multiple_of(2) {
                        json!({"report": "general-ledger", "format": "csv", "params":
                            {"account": "1000", "from": "2026-01-01", "to": "2026-12-31"}})
                    } else {
                        json!({"report": "trial-balance", "format": "json", "params":
                            {"as_of": "2026-12-31"}})
                    };
                    let asked = Instant::now();
                    let (status, body) = books
                        .call("POST", "/api/report-jobs", Some(&token), Some(ask))
                        .await;
                    if status == StatusCode::ACCEPTED {
                        jobs.push((n, body["id"].as_i64().unwrap()));
                    }
                    seen.push(("POST /api/report-jobs", status, asked.elapsed(), body));
                }
                (seen, jobs)
            })
        })
        .collect();
    let mut seen = Seen::new();
    let mut report_jobs = Vec::new();
    for asker in askers {
        let (asked, jobs) = asker.await.unwrap();
        seen.extend(asked);
        report_jobs.extend(jobs);
    }
    // Until every report is made (or a job gives up, or two minutes pass);
    // the polls are requests too.
    let mut succeeded = 0;
    while started.elapsed() < Duration::from_secs(120) {
        let path = "/api/jobs?queue=report-generation&limit=500";
        let asked = Instant::now();
        let (status, jobs) = books.call("GET", path, Some(&token), None).await;
        seen.push(("GET /api/jobs", status, asked.elapsed(), jobs.clone()));
        if let Some(jobs) = jobs.as_array() {
            succeeded = jobs.iter().filter(|j| j["status"] == "succeeded").count();
            let dead = jobs.iter().filter(|j| j["status"] == "dead").count();
            if succeeded == report_jobs.len() || dead > 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let flood = started.elapsed();
    done.store(true, Ordering::Relaxed);
    for client in clients {
        seen.extend(client.await.unwrap());
    }

    let refused: Vec<_> = seen
        .iter()
        .filter(|(_, status, _, _)| !status.is_success())
        .take(5)
        .collect();
    let slowest = seen.iter().map(|s| s.2).max().unwrap();
    let requests = seen.len();
    eprintln!(
        "figure: pool flood on {store:?}: {REPORTS} report jobs ({succeeded} made) in {flood:?}; \
         {requests} requests meanwhile, {} refused, the slowest {slowest:?}",
        seen.iter().filter(|s| !s.1.is_success()).count()
    );
    assert!(
        refused.is_empty(),
        "requests refused during the flood: {refused:?}"
    );
    assert_eq!(report_jobs.len(), REPORTS);
    assert_eq!(succeeded, REPORTS, "not every report was made in {flood:?}");
    // No job failed for want of a connection: each took one attempt.
    let jobs = books
        .list("/api/jobs?queue=report-generation&limit=500", &token)
        .await;
    let retried: Vec<_> = jobs.iter().filter(|j| j["attempts"] != 1).take(3).collect();
    assert!(retried.is_empty(), "{retried:?}");
    // Every entry the clients posted is in the cash balance, to the cent.
    let posted = seen
        .iter()
        .filter(|s| s.0 == "POST /api/journal-entries")
        .count();
    assert!(posted > 0, "the clients posted nothing during the flood");
    let cash = books.balance(&token, "1000").await;
    let expected = ENTRIES as i64 * 1_000 + posted as i64;
    assert_eq!(cash, format!("{}.{:02}", expected / 100, expected % 100));
    // The first report is right: a general ledger with every sale of the
    // books in it (and the clients' entries posted before it ran).
    let first = report_jobs.iter().find(|(n, _)| *n == 0).unwrap().1;
    let response = books
        .server
        .get_as(&format!("/api/report-jobs/{first}/result"), &token)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let csv = response.text().await.unwrap();
    let sales = csv.lines().filter(|l| l.contains(",sale ")).count();
    assert_eq!(sales, ENTRIES, "{}", &csv[..csv.len().min(500)]);
    let metrics = metrics_of(&books).await;
    assert_eq!(
        sample(
            &metrics,
            "accubooks_dependency_state_changes_total{dependency=\"database\",to=\"unavailable\"}"
        )
        .unwrap_or(0),
        0,
        "the database was declared down during the flood"
    );
}

/// The jobs' share is taken out of `DB_POOL_MAX` (the default: a quarter,
/// at least 2), and `DB_POOL_JOBS` sets it; the pool gauges say so, per
/// pool, and count the connections each has open.
async fn the_jobs_share_is_taken_out_of_db_pool_max(store: Store) {
    for (extra, requests, jobs) in [
        (&[][..], 4, 2),
        (&[("DB_POOL_JOBS", "1")][..], 5, 1),
        (&[("DB_POOL_MAX", "20")][..], 15, 5),
    ] {
        let (books, token) = start(store, extra).await;
        // Something for each share to have done: a request, and a job.
        let (status, body) = books
            .call(
                "POST",
                "/api/report-jobs",
                Some(&token),
                Some(json!({"report": "trial-balance", "format": "json",
                    "params": {"as_of": "2026-12-31"}})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let path = format!("/api/report-jobs/{}/result", body["id"]);
        let limit = Instant::now() + Duration::from_secs(20);
        while books.call("GET", &path, Some(&token), None).await.0 != StatusCode::OK {
            assert!(Instant::now() < limit, "the report job never ran");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let metrics = metrics_of(&books).await;
        let max = |pool: &str| {
            sample(
                &metrics,
                &format!(
                    "accubooks_db_pool_max_connections{{database=\"primary\",pool=\"{pool}\"}}"
                ),
            )
        };
        assert_eq!(
            (max("requests"), max("jobs")),
            (Some(requests), Some(jobs)),
            "{extra:?}"
        );
        for pool in ["requests", "jobs"] {
            let open: i64 = ["in_use", "idle"]
                .iter()
                .map(|state| {
                    sample(
                        &metrics,
                        &format!(
                            "accubooks_db_pool_connections{{database=\"primary\",pool=\"{pool}\",state=\"{state}\"}}"
                        ),
                    )
                    .unwrap()
                })
                .sum();
            assert!(
                (1..=max(pool).unwrap()).contains(&open),
                "{pool}: {open} open connections\n{metrics}"
            );
        }
    }
}

on_every_store!(
    a_flood_of_jobs_leaves_requests_their_connections,
    the_jobs_share_is_taken_out_of_db_pool_max,
);

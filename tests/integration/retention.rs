//! Stored answers expire (contract section 11, issue 21): finished jobs,
//! report results and idempotency answers older than `RETENTION_DAYS` are
//! purged, younger ones kept; an idempotency key is kept at least a day.
//!
//! Age is made by backdating rows with SQL (as the superuser on
//! PostgreSQL, past row-level security; through the server's own pool on
//! SQLite), and the purge is run by calling `AccuBooks::purge_expired`, the
//! method the hourly task calls.

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{Value, json};

use crate::books::{Books, Store};

async fn start(store: Store, extra: &[(&str, &str)]) -> Books {
    let mut vars = vec![("JOB_TRANSPORT", "database".to_owned())];
    vars.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    Books::start_with(store, &vars).await
}

/// Milliseconds since the epoch, `hours` ago.
fn ms_ago(hours: i64) -> i64 {
    chrono::Utc::now().timestamp_millis() - hours * 3600 * 1000
}

/// Backdates the idempotency answer of `key` by `hours`.
async fn backdate_key(books: &Books, key: &str, hours: i64) {
    let then = chrono::Utc::now() - chrono::Duration::hours(hours);
    let then = then.format("%Y-%m-%dT%H:%M:%S%.3fZ");
    let value = match books.postgres() {
        Some(_) => format!("CAST('{then}' AS TIMESTAMPTZ)"),
        None => format!("'{then}'"),
    };
    let sql = format!("UPDATE idempotency_keys SET created_at = {value} WHERE key = '{key}'");
    assert_eq!(books.execute_as_admin(&sql).await, 1, "{key}");
}

/// Posts a journal entry with an `Idempotency-Key`; answers its id.
async fn keyed_entry(books: &Books, token: &str, key: &str) -> i64 {
    let (status, entry) = books
        .call_with(
            "POST",
            "/api/journal-entries",
            Some(token),
            Some(json!({"date": "2026-01-31", "memo": "seed", "lines": [
                {"account": "1000", "debit": "10.00"},
                {"account": "3000", "credit": "10.00"},
            ]})),
            &[("Idempotency-Key", key)],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    entry["id"].as_i64().unwrap()
}

/// Asks for a report job; answers the status and body.
async fn ask(books: &Books, token: &str, report: Value) -> (StatusCode, Value) {
    books
        .call("POST", "/api/report-jobs", Some(token), Some(report))
        .await
}

fn trial_balance() -> Value {
    json!({"report": "trial-balance", "params": {"as_of": "2026-02-01"}})
}

/// Waits until a report job's job has finished; answers the report job.
async fn finished(books: &Books, token: &str, job: &Value) -> Value {
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
        if now["status"] == "succeeded" || now["status"] == "dead" {
            return now;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{now}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn result(books: &Books, token: &str, job: &Value) -> (StatusCode, Value) {
    books
        .call(
            "GET",
            &format!("/api/report-jobs/{}/result", job["id"]),
            Some(token),
            None,
        )
        .await
}

/// Report results, finished jobs and idempotency answers older than
/// RETENTION_DAYS go; younger ones stay. A purged result answers 410
/// REPORT_EXPIRED, and one retention later its report job is gone.
async fn expired_answers_are_purged_and_younger_ones_kept(store: Store) {
    use accubooks_core::invoicing::recurring;
    use accubooks_core::jobs::NewJob;
    let books = start(store, &[("RETENTION_DAYS", "30")]).await;
    let (token, organization) = books
        .register_organization(&format!("retention-{}@acme.test", uuid::Uuid::new_v4()))
        .await;
    let (token, app) = (token.as_str(), &books.server.app);

    let (status, old) = ask(&books, token, trial_balance()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{old}");
    let (_, young) = ask(&books, token, trial_balance()).await;
    assert_eq!(finished(&books, token, &old).await["status"], "succeeded");
    assert_eq!(finished(&books, token, &young).await["status"], "succeeded");
    // Two jobs that die at once (no handler knows their kind), as a
    // user's failed work does; dead jobs go after their last update.
    let dead = |key: &str| NewJob {
        queue: recurring::QUEUE,
        kind: "no-such-kind",
        unique_key: key.to_owned(),
        payload: json!({}),
    };
    let dead_ids = app
        .enqueue(
            &accubooks_core::OrganizationId::parse(&organization).unwrap(),
            vec![dead("old-dead"), dead("young-dead")],
        )
        .await
        .unwrap();
    let started = Instant::now();
    while books.list("/api/jobs?status=dead", token).await.len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let old_entry = keyed_entry(&books, token, "old-key").await;
    let young_entry = keyed_entry(&books, token, "young-key").await;

    let month_ago = ms_ago(31 * 24);
    books
        .execute_as_admin(&format!(
            "UPDATE jobs SET updated_ms = {month_ago} WHERE id IN ({}, {})",
            old["job_id"], dead_ids[0]
        ))
        .await;
    backdate_key(&books, "old-key", 31 * 24).await;

    let purged = app.purge_expired().await.unwrap();
    assert_eq!(
        (
            purged.report_results,
            purged.report_jobs,
            purged.jobs,
            purged.idempotency_keys
        ),
        (1, 0, 1, 1),
        "{purged:?}"
    );
    let (status, body) = result(&books, token, &old).await;
    assert_eq!(status, StatusCode::GONE, "{body}");
    assert_eq!(body["code"], "REPORT_EXPIRED");
    assert!(
        body["error"].as_str().unwrap().contains("30 days"),
        "{body}"
    );
    let (status, _) = result(&books, token, &young).await;
    assert_eq!(status, StatusCode::OK);
    // The old dead job is gone, the young one can still be retried.
    let (status, _) = books
        .call(
            "GET",
            &format!("/api/jobs/{}", dead_ids[0]),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, job) = books
        .call(
            "GET",
            &format!("/api/jobs/{}", dead_ids[1]),
            Some(token),
            None,
        )
        .await;
    assert_eq!((status, &job["status"]), (StatusCode::OK, &json!("dead")));
    // A forgotten key is a new request; a kept one replays its answer.
    assert_ne!(keyed_entry(&books, token, "old-key").await, old_entry);
    assert_eq!(keyed_entry(&books, token, "young-key").await, young_entry);

    // Nothing more is due: a second purge finds nothing.
    assert!(app.purge_expired().await.unwrap().is_empty());

    // One retention after its result expired, the report job and its job
    // are forgotten.
    books
        .execute_as_admin(&format!(
            "UPDATE report_jobs SET expired_ms = {month_ago} WHERE id = {}",
            old["id"]
        ))
        .await;
    let purged = app.purge_expired().await.unwrap();
    assert_eq!((purged.report_jobs, purged.jobs), (1, 1), "{purged:?}");
    let (status, _) = result(&books, token, &old).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = books
        .call(
            "GET",
            &format!("/api/jobs/{}", old["job_id"]),
            Some(token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = result(&books, token, &young).await;
    assert_eq!(status, StatusCode::OK);

    let metrics = books.server.app.metrics().render(
        Duration::ZERO,
        accubooks_core::resources::ResourceSample::default(),
    );
    assert!(
        metrics.contains("accubooks_retention_purged_rows_total{kind=\"report_results\"} 1"),
        "{metrics}"
    );
}

/// With RETENTION_DAYS=1, an idempotency key 23 hours old is kept and
/// replays its answer; one 25 hours old is purged.
async fn an_idempotency_key_is_kept_a_day_whatever_the_retention(store: Store) {
    let books = start(store, &[("RETENTION_DAYS", "1")]).await;
    let token = books
        .register(&format!("keys-{}@acme.test", uuid::Uuid::new_v4()), "USD")
        .await;
    let kept = keyed_entry(&books, &token, "day-old").await;
    let gone = keyed_entry(&books, &token, "older").await;
    backdate_key(&books, "day-old", 23).await;
    backdate_key(&books, "older", 25).await;
    let purged = books.server.app.purge_expired().await.unwrap();
    assert_eq!(purged.idempotency_keys, 1, "{purged:?}");
    assert_eq!(keyed_entry(&books, &token, "day-old").await, kept);
    assert_ne!(keyed_entry(&books, &token, "older").await, gone);
}

/// With a small quota, an organization's report jobs are refused (422
/// REPORT_QUOTA_EXCEEDED) once its stored results reach it, and a job whose
/// result would go beyond it dies without storing; another organization is
/// not affected.
async fn the_report_quota_refuses_and_spares_other_organizations(store: Store) {
    let books = start(store, &[("REPORT_STORAGE_PER_ORGANIZATION_BYTES", "2000")]).await;
    let token = books
        .register(&format!("quota-{}@acme.test", uuid::Uuid::new_v4()), "USD")
        .await;
    let other = books
        .register(&format!("quota-{}@acme.test", uuid::Uuid::new_v4()), "USD")
        .await;
    // A trial balance fits (a result of some 1,000-2,000 bytes); a second
    // would go beyond the quota: its job dies, storing nothing.
    let (status, first) = ask(&books, &token, trial_balance()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    assert_eq!(
        finished(&books, &token, &first).await["status"],
        "succeeded"
    );
    let (status, second) = ask(&books, &token, trial_balance()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    assert_eq!(finished(&books, &token, &second).await["status"], "dead");
    let (_, job) = books
        .call(
            "GET",
            &format!("/api/jobs/{}", second["job_id"]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(job["error"]["code"], "REPORT_QUOTA_EXCEEDED", "{job}");
    let (status, body) = result(&books, &token, &second).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // The stored result and the dead job have one event each.
    let news = books.events(&token, "report.ready,job.dead").await;
    let kinds: Vec<&str> = news.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["report.ready", "job.dead"], "{news:?}");
    assert_eq!(news[0]["data"]["id"], first["id"]);
    assert!(news[0]["data"]["finished_at"].is_string(), "{news:?}");
    assert_eq!(news[1]["data"]["id"], second["job_id"]);
    assert_eq!(news[1]["data"]["status"], "dead");
    assert_eq!(news[1]["data"]["error"]["code"], "REPORT_QUOTA_EXCEEDED");
    // Once the stored results reach the quota (as if more had been stored:
    // the first result's size is set to the whole quota), a new ask is
    // refused at once.
    books
        .execute_as_admin(&format!(
            "UPDATE report_jobs SET result_bytes = 2000 WHERE id = {}",
            first["id"]
        ))
        .await;
    let refused = ask(&books, &token, trial_balance()).await;
    assert_eq!(refused.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.1);
    assert_eq!(refused.1["code"], "REPORT_QUOTA_EXCEEDED");
    assert!(
        refused.1["error"]
            .as_str()
            .unwrap()
            .contains("REPORT_STORAGE_PER_ORGANIZATION_BYTES"),
        "{}",
        refused.1
    );
    // The other organization is not affected.
    let (status, job) = ask(&books, &other, trial_balance()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    assert_eq!(finished(&books, &other, &job).await["status"], "succeeded");
}

on_every_store!(
    expired_answers_are_purged_and_younger_ones_kept,
    an_idempotency_key_is_kept_a_day_whatever_the_retention,
    the_report_quota_refuses_and_spares_other_organizations,
);

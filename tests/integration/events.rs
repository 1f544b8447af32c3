//! Events (issue 25, contract §10): every committed change writes exactly
//! one event of its type in its own transaction, numbered in commit order,
//! and a client that keeps the last cursor it read never misses or repeats
//! one, even while changes commit concurrently. Through a real server on
//! PostgreSQL (row-level security on) and SQLite.

use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::{Value, json};

use crate::books::{Books, Door, Store};

fn moved(debit: &str, credit: &str, amount: &str) -> Value {
    json!([{"account": debit, "debit": amount}, {"account": credit, "credit": amount}])
}

/// Every event of the organization, following the list's pages.
async fn all_events(books: &Books, token: &str) -> Vec<Value> {
    books.list("/api/events?limit=500", token).await
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

/// Asserts events are numbered 1, 2, 3… with distinct ids.
fn numbered_from_one(events: &[Value]) {
    let sequences: Vec<i64> = events
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    let expected: Vec<i64> = (1..=events.len() as i64).collect();
    assert_eq!(sequences, expected, "events are numbered in commit order");
    let ids: BTreeSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "event ids are distinct");
    assert!(
        ids.iter()
            .all(|id| id.starts_with("evt_") && id.len() == 36),
        "{ids:?}"
    );
}

async fn entries_and_reversals_write_one_event_each(door: Door) {
    let books = Books::start(door).await;
    let token = books.register("events@acme.test", "USD").await;
    let first = books
        .post(&token, "2026-03-01", moved("1000", "4000", "10.00"))
        .await;
    let second = books
        .post(&token, "2026-03-02", moved("1000", "4000", "20.00"))
        .await;
    let (status, reversal) = books
        .call(
            "POST",
            &format!("/api/journal-entries/{first}/reverse"),
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reversal}");

    // A refused change writes nothing, its event included.
    let (status, body) = books
        .call(
            "POST",
            "/api/journal-entries",
            Some(&token),
            Some(json!({"date": "2026-03-03", "memo": "unbalanced",
                        "lines": [{"account": "1000", "debit": "5.00"}, {"account": "4000", "credit": "4.00"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let events = all_events(&books, &token).await;
    assert_eq!(
        types(&events),
        [
            "entry.posted",
            "entry.posted",
            "entry.posted",
            "entry.reversed"
        ]
    );
    numbered_from_one(&events);
    // The data is the object as the API answers it after the change.
    for (event, id) in events.iter().zip([first, second]) {
        let (status, entry) = books
            .call(
                "GET",
                &format!("/api/journal-entries/{id}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(event["data"]["lines"], entry["lines"]);
        assert_eq!(event["data"]["id"], id);
        assert_eq!(event["data"]["date"], entry["date"]);
    }
    assert_eq!(events[2]["data"], reversal, "the reversing entry as posted");
    assert_eq!(events[3]["data"]["id"], first, "the reversed entry…");
    assert_eq!(
        events[3]["data"]["reversed_by"], reversal["id"],
        "…now reversed"
    );
    for event in &events {
        assert!(
            event["timestamp"].as_str().unwrap().ends_with('Z'),
            "{event}"
        );
        assert!(event["organization"].is_string(), "{event}");
    }

    // From a cursor: only what followed.
    let after = events[1]["cursor"].as_str().unwrap();
    let rest = books
        .list(&format!("/api/events?after={after}"), &token)
        .await;
    assert_eq!(rest, events[2..].to_vec());
    // Paged as every list.
    let (status, page, next) = books.page("/api/events?limit=3", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page.as_array().unwrap().len(), 3);
    assert!(next.is_some(), "a Link to the rest");
    // By type.
    let reversed = books
        .list("/api/events?types=entry.reversed,invoice.paid", &token)
        .await;
    assert_eq!(types(&reversed), ["entry.reversed"]);
    let (status, body) = books
        .call(
            "GET",
            "/api/events?types=entry.posted,entry.exploded",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("UNKNOWN_EVENT_TYPE")),
        "{body}"
    );

    // Another organization sees none of them; a viewer may not read them
    // (events show pay runs).
    let other = books.register("other@globex.test", "USD").await;
    assert!(all_events(&books, &other).await.is_empty());
    let viewer = books
        .member_token(&token, "viewer@acme.test", "viewer")
        .await;
    let (status, _) = books.call("GET", "/api/events", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Posters commit concurrently while a client polls from its last cursor:
/// it reads every event exactly once, in order, with no gap, and the
/// events are exactly the committed entries.
async fn a_poller_never_misses_or_repeats_an_event(store: Store) {
    let books = Books::start(store).await;
    let token = books.register("poller@acme.test", "USD").await;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let posters = (0..6).map(|_| async {
        let mut ids = Vec::new();
        for _ in 0..25 {
            ids.push(
                books
                    .post(&token, "2026-04-01", moved("1000", "4000", "1.00"))
                    .await,
            );
        }
        ids
    });
    let poller = async {
        let mut seen: Vec<Value> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let done = stop.load(std::sync::atomic::Ordering::SeqCst);
            let path = match &cursor {
                Some(cursor) => format!("/api/events?after={cursor}&limit=7"),
                None => "/api/events?limit=7".to_owned(),
            };
            let (status, page, _) = books.page(&path, &token).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let page = page.as_array().unwrap().clone();
            if let Some(last) = page.last() {
                cursor = Some(last["cursor"].as_str().unwrap().to_owned());
            }
            let empty = page.is_empty();
            seen.extend(page);
            if done && empty {
                return seen;
            }
            if empty {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    };
    let posting = async {
        let ids = futures::future::join_all(posters).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        ids
    };
    let (ids, seen) = tokio::join!(posting, poller);
    numbered_from_one(&seen);
    let posted: BTreeSet<i64> = ids.into_iter().flatten().collect();
    let announced: BTreeSet<i64> = seen
        .iter()
        .map(|e| e["data"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(posted.len(), 150);
    assert_eq!(announced, posted, "one event per committed entry");
}

async fn call_ok(books: &Books, token: &str, method: &str, path: &str, body: Value) -> Value {
    let (status, answer) = books.call(method, path, Some(token), Some(body)).await;
    assert!(status.is_success(), "{method} {path}: {status} {answer}");
    answer
}

/// Invoices, a pay run and the lock date: each change announces the
/// object as the API answers it just after, once.
async fn invoices_pay_runs_and_lock_dates_announce_what_changed(store: Store) {
    // Jobs from the database outbox: the pay run's job needs no Redis.
    let books = Books::start_with(store, &[("JOB_TRANSPORT", "database".to_owned())]).await;
    let token = books.register("news@acme.test", "USD").await;
    let customer = call_ok(
        &books,
        &token,
        "POST",
        "/api/customers",
        json!({"name": "Globex"}),
    )
    .await;
    let draft = async || {
        call_ok(
            &books,
            &token,
            "POST",
            "/api/invoices",
            json!({"customer_id": customer["id"], "due_date": "2026-06-30",
                   "lines": [{"description": "Audit", "quantity": "1", "unit_price": "100.00"}]}),
        )
        .await["id"]
            .as_i64()
            .unwrap()
    };
    let act = async |id: i64, action: &str, body: Value| {
        call_ok(
            &books,
            &token,
            "POST",
            &format!("/api/invoices/{id}/{action}"),
            body,
        )
        .await
    };
    // Issued, paid in two parts (paid in full once), and one credited to
    // the end (paid in full by its credit note).
    let paid = draft().await;
    let issued = act(paid, "issue", json!({"date": "2026-03-10"})).await;
    act(
        paid,
        "payments",
        json!({"amount": "40.00", "date": "2026-03-11"}),
    )
    .await;
    let settled = act(
        paid,
        "payments",
        json!({"amount": "60.00", "date": "2026-03-12"}),
    )
    .await;
    assert_eq!(settled["status"], "paid");
    let credited = draft().await;
    act(credited, "issue", json!({"date": "2026-03-10"})).await;
    let note = act(
        credited,
        "credit-notes",
        json!({"date": "2026-03-13",
        "lines": [{"description": "Refund", "quantity": "1", "unit_price": "100.00"}]}),
    )
    .await;
    // Voided: one issued (its entry reversed), one still a draft.
    let voided = draft().await;
    act(voided, "issue", json!({"date": "2026-03-10"})).await;
    let void_issued = act(voided, "void", json!({"date": "2026-03-14"})).await;
    let never_issued = draft().await;
    let void_draft = act(never_issued, "void", json!({})).await;

    let news = books
        .events(
            &token,
            "invoice.issued,invoice.paid,invoice.voided,credit_note.issued",
        )
        .await;
    let seen: Vec<(&str, i64)> = news
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["data"]["id"].as_i64().unwrap(),
            )
        })
        .collect();
    let note_id = note["id"].as_i64().unwrap();
    assert_eq!(
        seen,
        [
            ("invoice.issued", paid),
            ("invoice.paid", paid),
            ("invoice.issued", credited),
            ("credit_note.issued", note_id),
            ("invoice.paid", credited),
            ("invoice.issued", voided),
            ("invoice.voided", voided),
            ("invoice.voided", never_issued),
        ]
    );
    assert_eq!(news[0]["data"]["status"], "issued");
    assert_eq!(
        news[0]["data"]["number"], issued["number"],
        "numbered when issued"
    );
    assert_eq!(news[1]["data"], settled);
    assert_eq!(news[3]["data"]["kind"], "credit_note");
    assert_eq!(news[6]["data"], void_issued);
    assert_eq!(news[7]["data"], void_draft);
    // The void of an issued invoice reversed its issuing entry.
    let reversed = books.events(&token, "entry.reversed").await;
    assert_eq!(reversed.len(), 1);
    assert_eq!(reversed[0]["data"]["id"], void_issued["issue_entry_id"]);

    // A pay run, posted by its job.
    books
        .create_account(&token, "5100", "Wages", "expense")
        .await;
    call_ok(
        &books,
        &token,
        "POST",
        "/api/employees",
        json!({"name": "Ada", "pay": {"type": "salary", "annual": "60000.00"},
               "frequency": "monthly", "start_date": "2026-01-01"}),
    )
    .await;
    let run = call_ok(
        &books,
        &token,
        "POST",
        "/api/payroll-runs",
        json!({"period_start": "2026-03-01", "period_end": "2026-03-31",
               "pay_date": "2026-03-31", "hours": {}}),
    )
    .await;
    let run_path = format!("/api/payroll-runs/{}", run["id"]);
    let mut posted = Value::Null;
    for _ in 0..300 {
        let (_, now) = books.call("GET", &run_path, Some(&token), None).await;
        if now["status"] == "posted" {
            posted = now;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        posted["status"], "posted",
        "the pay run was not posted in 30 s"
    );
    let runs = books.events(&token, "payroll_run.posted").await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["data"]["id"], run["id"]);
    assert_eq!(runs[0]["data"]["entry_id"], posted["entry_id"]);
    assert_eq!(runs[0]["data"]["payslips"], posted["payslips"]);

    // The lock date: locked, then unlocked; a change to the same date is
    // no change.
    for date in [json!("2026-03-31"), json!("2026-03-31"), Value::Null] {
        call_ok(
            &books,
            &token,
            "PUT",
            "/api/settings",
            json!({"lock_date": date}),
        )
        .await;
    }
    let locks = books.events(&token, "period.locked").await;
    let moves: Vec<(Value, Value)> = locks
        .iter()
        .map(|e| (e["data"]["to"].clone(), e["data"]["reason"].clone()))
        .collect();
    assert_eq!(
        moves,
        [
            (json!("2026-03-31"), json!("locked")),
            (Value::Null, json!("unlocked"))
        ]
    );
    let (_, history) = books
        .call("GET", "/api/settings/history", Some(&token), None)
        .await;
    assert_eq!(
        locks[0]["data"], history[0],
        "the change as the history shows it"
    );

    // Every event is numbered in commit order, whatever its type.
    numbered_from_one(&all_events(&books, &token).await);
}

// Through both hosts: the feed's route is declared once in the core.
on_every_door!(entries_and_reversals_write_one_event_each);

on_every_store!(
    invoices_pay_runs_and_lock_dates_announce_what_changed,
    a_poller_never_misses_or_repeats_an_event,
);

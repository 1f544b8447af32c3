//! Events (issue 25, contract §10): every committed change writes exactly
//! one event of its type in its own transaction, numbered in commit order,
//! and a client that keeps the last cursor it read never misses or repeats
//! one, even while changes commit concurrently. Through a real server on
//! PostgreSQL (row-level security on) and SQLite.

use std::collections::BTreeSet;

use http::StatusCode;
use serde_json::{Value, json};

use crate::books::{Books, Store};

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

async fn entries_and_reversals_write_one_event_each(store: Store) {
    let books = Books::start(store).await;
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

on_every_store!(
    entries_and_reversals_write_one_event_each,
    a_poller_never_misses_or_repeats_an_event,
);

//! Lists page (contract §4, issue 21): at most `limit` items (1–500,
//! default 100), a `Link` to the next page that keeps the filters, an
//! opaque cursor, and no record repeated or skipped while others are added.
//! Every case runs through a real server on PostgreSQL (an ordinary role,
//! row-level security on) and on SQLite; the shorter ones behind both hosts.

use std::collections::HashSet;

use futures::StreamExt;
use http::StatusCode;
use serde_json::{Value, json};

use crate::books::{Books, Door, Store, next_of};

/// How many requests run at once while a case fills the books.
const CONCURRENCY: usize = 16;

/// Creates a customer; answers its id.
async fn customer(books: &Books, token: &str, name: String) -> i64 {
    let (status, body) = books
        .call(
            "POST",
            "/api/customers",
            Some(token),
            Some(json!({"name": name})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

/// Creates `count` customers, `CONCURRENCY` at a time; answers their ids.
async fn customers(books: &Books, token: &str, count: usize) -> Vec<i64> {
    futures::stream::iter(0..count)
        .map(|i| customer(books, token, format!("Customer {i}")))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

/// Creates a draft invoice of `lines` lines; answers its id.
async fn invoice(books: &Books, token: &str, customer: i64, lines: usize) -> i64 {
    let lines: Vec<Value> = (0..lines)
        .map(
            |i| json!({"description": format!("Item {i}"), "quantity": "1", "unit_price": "10.00"}),
        )
        .collect();
    let (status, body) = books
        .call(
            "POST",
            "/api/invoices",
            Some(token),
            Some(json!({"customer_id": customer, "due_date": "2026-12-31", "lines": lines})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().unwrap()
}

/// Creates `count` one-line drafts, `CONCURRENCY` at a time; answers their ids.
async fn invoices(books: &Books, token: &str, customer: i64, count: usize) -> Vec<i64> {
    futures::stream::iter(0..count)
        .map(|_| invoice(books, token, customer, 1))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

fn ids(page: &Value) -> Vec<i64> {
    page.as_array()
        .unwrap_or_else(|| panic!("not a list: {page}"))
        .iter()
        .map(|item| item["id"].as_i64().unwrap())
        .collect()
}

/// Reads a list page by page from `path`, running `between` after each
/// page; answers every id in the order read and the number of pages.
async fn read_all<F, Fut>(books: &Books, token: &str, path: &str, between: F) -> (Vec<i64>, usize)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (mut seen, mut pages, mut path) = (Vec::new(), 0, path.to_owned());
    loop {
        let (status, page, next) = books.page(&path, token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        seen.extend(ids(&page));
        pages += 1;
        between().await;
        match next {
            Some(next) => path = next,
            None => return (seen, pages),
        }
    }
}

fn assert_once_each(seen: &[i64], existing: &[i64]) {
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "a record was answered twice");
    let missing: Vec<&i64> = existing.iter().filter(|id| !unique.contains(id)).collect();
    assert!(missing.is_empty(), "skipped: {missing:?}");
}

/// 2,000 invoices read 250 at a time, newest first, while ten more are
/// created after every page: each one that existed is read exactly once,
/// in order; none of the pages is larger than asked.
async fn invoices_page_without_gaps_while_more_are_added(store: Store) {
    let books = Books::start(store).await;
    let token = books.register("pages@acme.test", "USD").await;
    let buyer = customer(&books, &token, "Buyer".into()).await;
    let existing = invoices(&books, &token, buyer, 2_000).await;
    let (seen, pages) = read_all(&books, &token, "/api/invoices?limit=250", || async {
        invoices(&books, &token, buyer, 10).await;
    })
    .await;
    assert_once_each(&seen, &existing);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "not newest first by id"
    );
    // The first page was read before any was added: exactly the 2,000.
    assert_eq!(seen.len(), 2_000);
    assert_eq!(pages, 8);
}

/// 2,500 customers read with the default page, oldest first, while
/// customers are added after every page: each one that existed is read once;
/// those added later come at the end, also once.
async fn customers_page_without_gaps_while_more_are_added(store: Store) {
    let books = Books::start(store).await;
    let token = books.register("people@acme.test", "USD").await;
    let existing = customers(&books, &token, 2_500).await;
    let (seen, pages) = read_all(&books, &token, "/api/customers", || async {
        customers(&books, &token, 5).await;
    })
    .await;
    assert_once_each(&seen, &existing);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "not oldest first");
    // Default pages of 100; those added while paging are read too.
    assert!(pages >= 25, "{pages} pages");
    assert!(seen.len() > 2_500);
}

/// `limit` is 1 to 500, default 100; anything else is a 422 that names it;
/// a cursor that no list gave, or another list's, is a clear 422 too.
async fn limits_and_cursors_are_checked(door: Door) {
    let books = Books::start(door).await;
    let token = books.register("limits@acme.test", "USD").await;
    customers(&books, &token, 150).await;
    let (status, page, next) = books.page("/api/customers", &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&page).len(), 100, "the default page");
    let next = next.expect("a Link while more remain");
    assert!(next.contains("limit=100"), "{next}");
    let (_, rest, last) = books.page(&next, &token).await;
    assert_eq!(ids(&rest).len(), 50);
    assert_eq!(last, None, "no Link on the last page");
    let (_, all, _) = books.page("/api/customers?limit=500", &token).await;
    assert_eq!(ids(&all).len(), 150);

    for bad in ["0", "501", "x", "-1", "1.5", "", "99999999999"] {
        let path = format!("/api/customers?limit={bad}");
        let (status, body) = books.call("GET", &path, Some(&token), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        assert_eq!(body["code"], "INVALID_LIMIT", "{body}");
        assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
    }
    // A cursor of the users list (an e-mail address) means nothing to
    // the customers list; neither does text no list made.
    let (_, _, users_next) = books.page("/api/users?limit=1", &token).await;
    assert!(users_next.is_none(), "one user, one page");
    for bad in ["zz", "not-a-cursor", "5b226140622e6578616d706c65225d", ""] {
        let path = format!("/api/customers?after={bad}");
        let (status, body) = books.call("GET", &path, Some(&token), None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        assert_eq!(body["code"], "INVALID_CURSOR", "{body}");
        assert!(body["error"].as_str().unwrap().contains("cursor"), "{body}");
    }
}

/// The `Link` of a filtered list keeps the filter: following it from
/// `/api/invoices?status=issued&limit=10` reads only issued invoices, every
/// one of them.
async fn the_next_link_keeps_the_filters(door: Door) {
    let books = Books::start(door).await;
    let token = books.register("filters@acme.test", "USD").await;
    let buyer = customer(&books, &token, "Buyer".into()).await;
    let all = invoices(&books, &token, buyer, 60).await;
    let mut issued: Vec<i64> = all.iter().copied().filter(|id| id % 2 == 0).collect();
    futures::stream::iter(issued.clone())
        .map(|id| {
            let (books, token) = (&books, &token);
            async move {
                let path = format!("/api/invoices/{id}/issue");
                let (status, body) = books
                    .call(
                        "POST",
                        &path,
                        Some(token),
                        Some(json!({"date": "2026-06-01"})),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect::<Vec<()>>()
        .await;

    let (status, page, next) = books
        .page("/api/invoices?status=issued&limit=10", &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page).len(), 10);
    let next = next.expect("more issued invoices remain");
    assert!(next.starts_with("/api/invoices?"), "{next}");
    assert!(next.contains("status=issued"), "{next}");
    assert!(next.contains("limit=10"), "{next}");
    let read = books
        .list("/api/invoices?status=issued&limit=10", &token)
        .await;
    assert!(read.iter().all(|i| i["status"] == "issued"), "{read:?}");
    let mut read: Vec<i64> = read.iter().map(|i| i["id"].as_i64().unwrap()).collect();
    read.sort_unstable();
    issued.sort_unstable();
    assert_eq!(read, issued);

    // The other filters of other lists carry over the same way.
    let (status, _, next) = books
        .page(
            &format!("/api/invoices?customer_id={buyer}&limit=7"),
            &token,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(next.unwrap().contains(&format!("customer_id={buyer}")));
    let (status, body) = books
        .call("GET", "/api/invoices?status=sent", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

/// A page of invoices stops before the one that would take it past 5,000
/// lines, whatever the limit, and goes on from there.
async fn an_invoice_page_is_bounded_by_its_lines(store: Store) {
    let books = Books::start(store).await;
    let token = books.register("lines@acme.test", "USD").await;
    let buyer = customer(&books, &token, "Buyer".into()).await;
    let created: Vec<i64> = futures::stream::iter(0..12)
        .map(|_| invoice(&books, &token, buyer, 500))
        .buffer_unordered(4)
        .collect()
        .await;
    let (status, page, next) = books.page("/api/invoices?limit=500", &token).await;
    assert_eq!(status, StatusCode::OK);
    let first = page.as_array().unwrap();
    assert_eq!(first.len(), 10, "10 × 500 lines");
    assert!(
        first
            .iter()
            .all(|i| i["lines"].as_array().unwrap().len() == 500)
    );
    let (_, rest, last) = books.page(&next.expect("a Link"), &token).await;
    assert_eq!(ids(&rest).len(), 2);
    assert_eq!(last, None);
    let mut read: Vec<i64> = ids(&page).into_iter().chain(ids(&rest)).collect();
    read.sort_unstable();
    let mut created = created;
    created.sort_unstable();
    assert_eq!(read, created);
}

/// Every list route answers pages: `limit=1` holds one item and links on;
/// `limit=0` is refused. The OpenAPI document says so.
async fn every_list_pages(door: Door) {
    let books = Books::start(door).await;
    let token = books.register("every@acme.test", "USD").await;
    let buyer = customer(&books, &token, "Buyer".into()).await;
    customer(&books, &token, "Other".into()).await;
    invoices(&books, &token, buyer, 2).await;
    for name in ["Ann", "Bob"] {
        let (status, body) = books
            .call(
                "POST",
                "/api/employees",
                Some(&token),
                Some(
                    json!({"name": name, "pay": {"type": "hourly", "rate": "25.00"},
                            "frequency": "monthly", "start_date": "2026-01-01", "end_date": null}),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = books
        .call(
            "POST",
            "/api/users",
            Some(&token),
            Some(json!({"email": "second@acme.test", "password": "correct horse battery", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Two of each at least: one page of one, and a Link.
    for path in [
        "/api/accounts",
        "/api/users",
        "/api/customers",
        "/api/invoices",
        "/api/employees",
    ] {
        let (status, page, next) = books.page(&format!("{path}?limit=1"), &token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        assert_eq!(page.as_array().unwrap().len(), 1, "{path}: {page}");
        let next = next.unwrap_or_else(|| panic!("{path}: no Link"));
        let (status, second, _) = books.page(&next, &token).await;
        assert_eq!(status, StatusCode::OK, "{next}: {second}");
        assert_eq!(second.as_array().unwrap().len(), 1, "{next}");
        assert_ne!(page[0], second[0], "{path}: the same item twice");
    }
    // Lists that are empty here still take and check the paging.
    for path in [
        "/api/jobs",
        "/api/recurring-invoices",
        "/api/bank/accounts",
        "/api/bank/transactions",
        "/api/reports/general-ledger?account=1000&from=2026-01-01&to=2026-12-31",
    ] {
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, _, next) = books.page(&format!("{path}{sep}limit=1"), &token).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(next, None, "{path}");
        let (status, body) = books
            .call("GET", &format!("{path}{sep}limit=0"), Some(&token), None)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        assert_eq!(body["code"], "INVALID_LIMIT", "{path}: {body}");
    }

    let (_, document) = books.call("GET", "/api/openapi.json", None, None).await;
    for path in [
        "/api/accounts",
        "/api/users",
        "/api/customers",
        "/api/invoices",
        "/api/employees",
        "/api/jobs",
        "/api/recurring-invoices",
        "/api/bank/accounts",
        "/api/bank/transactions",
        "/api/reports/general-ledger",
    ] {
        let get = &document["paths"][path]["get"];
        let names: Vec<&str> = get["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert!(
            names.contains(&"limit") && names.contains(&"after"),
            "{path}: {names:?}"
        );
        assert!(
            get["responses"]["200"]["headers"]["Link"].is_object(),
            "{path}: {get}"
        );
    }
}

/// The general ledger pages its rows: the rows of all pages are the rows of
/// the period once each, in order, and every page's running balance goes on
/// from the page before; `truncated` says whether another page follows.
async fn the_general_ledger_pages(door: Door) {
    let books = Books::start(door).await;
    let token = books.register("ledger@acme.test", "USD").await;
    books
        .post(
            &token,
            "2025-12-31",
            json!([{"account": "1000", "debit": "5.00"}, {"account": "3000", "credit": "5.00"}]),
        )
        .await;
    let entries: Vec<Value> = (0..250)
        .map(|i| {
            json!({"date": format!("2026-{:02}-{:02}", 1 + i % 12, 1 + i % 28), "memo": format!("sale {i}"),
                   "lines": [{"account": "1000", "debit": "1.25"}, {"account": "4000", "credit": "1.25"}]})
        })
        .collect();
    books.post_batch(&token, entries).await;

    let mut path =
        "/api/reports/general-ledger?account=1000&from=2026-01-01&to=2026-12-31&limit=100"
            .to_owned();
    let (mut rows, mut pages, mut balance) = (Vec::new(), 0, 500_i64);
    loop {
        let response = books
            .server
            .client
            .get(format!("{}{path}", books.server.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let next = response
            .headers()
            .get(http::header::LINK)
            .map(|l| next_of(l.to_str().unwrap()));
        let page: Value = response.json().await.unwrap();
        pages += 1;
        assert_eq!(page["opening_balance"], "5.00", "{path}");
        assert_eq!(page["truncated"], next.is_some(), "{path}");
        assert!(page["rows"].as_array().unwrap().len() <= 100);
        for row in page["rows"].as_array().unwrap() {
            balance += 125;
            assert_eq!(row["debit"], "1.25");
            assert_eq!(
                row["balance"],
                format!("{}.{:02}", balance / 100, balance % 100),
                "{path}: {row}"
            );
            rows.push((
                row["date"].as_str().unwrap().to_owned(),
                row["entry_id"].as_i64().unwrap(),
            ));
        }
        assert_eq!(
            page["closing_balance"],
            format!("{}.{:02}", balance / 100, balance % 100)
        );
        match next {
            Some(next) => {
                assert!(next.contains("account=1000") && next.contains("from=2026-01-01"));
                path = next;
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(rows.len(), 250);
    assert!(rows.windows(2).all(|w| w[0] < w[1]), "not in date order");
    let (status, body) = books
        .call(
            "GET",
            "/api/reports/general-ledger?account=1000&from=2026-01-01&to=2026-12-31&after=00",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "INVALID_CURSOR");
}

// The long cases once per store (paging is the core's, whichever host);
// the rest through every door, so no host drops or rewrites the `Link`.
on_every_store!(
    invoices_page_without_gaps_while_more_are_added,
    customers_page_without_gaps_while_more_are_added,
    an_invoice_page_is_bounded_by_its_lines,
);

on_every_door!(
    limits_and_cursors_are_checked,
    the_next_link_keeps_the_filters,
    every_list_pages,
    the_general_ledger_pages,
);

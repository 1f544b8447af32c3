//! Reading the journal back (issue 24, contract §5): the entries list with
//! its filters, an account's history with running balances, and an
//! account's balance on a day. Every case through a real server on
//! PostgreSQL (row-level security on) and SQLite.

use std::collections::HashSet;

use http::StatusCode;
use serde_json::{Value, json};

use crate::books::{Books, Door, Store};

/// A sale of `cents` on `date`: cash 1000 against revenue 4000, or, every
/// fifth, against expense 5000 (so that account filters keep some only).
fn sale(n: usize, date: &str, cents: i64) -> Value {
    let amount = format!("{}.{:02}", cents / 100, cents % 100);
    let other = if n.is_multiple_of(5) { "5000" } else { "4000" };
    json!({"date": date, "memo": format!("sale {n}"),
           "lines": [{"account": "1000", "debit": amount}, {"account": other, "credit": amount}]})
}

/// Day `n` of 2026 spread over the year, as `YYYY-MM-DD`.
fn day(n: usize) -> String {
    format!("2026-{:02}-{:02}", 1 + n % 12, 1 + (n * 7) % 28)
}

/// Reads every page of `path`; after each page runs `between`. Answers the
/// items in the order read and the number of pages.
async fn read_all(
    books: &Books,
    token: &str,
    path: &str,
    mut between: impl AsyncFnMut(),
) -> (Vec<Value>, usize) {
    let (mut items, mut pages, mut path) = (Vec::new(), 0, path.to_owned());
    loop {
        let (status, page, next) = books.page(&path, token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        let page = page
            .as_array()
            .unwrap_or_else(|| panic!("not a list: {page}"));
        assert!(page.len() <= 500, "{path}: {} items", page.len());
        items.extend(page.iter().cloned());
        pages += 1;
        between().await;
        match next {
            Some(next) => path = next,
            None => return (items, pages),
        }
    }
}

fn key(entry: &Value) -> (String, i64) {
    (
        entry["date"].as_str().unwrap().to_owned(),
        entry["id"].as_i64().unwrap(),
    )
}

/// 3,000 entries read 500 at a time while 20 more are posted after every
/// page: each entry that existed is read exactly once, in (date, id) order,
/// newest first when asked; with `account` only entries with a line there,
/// with `from`/`to` only those of the period, with `reversed` only those
/// reversed since (or not).
async fn the_journal_pages_without_gaps_while_entries_are_posted(store: Store) {
    let books = Books::start(store).await;
    let token = books.register("journal@acme.test", "USD").await;
    let mut existing = Vec::new();
    for chunk in 0..3 {
        let entries = (0..1_000)
            .map(|i| chunk * 1_000 + i)
            .map(|n| sale(n, &day(n), 100 + n as i64))
            .collect();
        existing.extend(books.post_batch(&token, entries).await);
    }
    let mut posted = 3_000;
    let (seen, pages) = read_all(
        &books,
        &token,
        "/api/journal-entries?limit=500",
        async || {
            let more = (posted..posted + 20).map(|n| sale(n, &day(n), 1)).collect();
            books.post_batch(&token, more).await;
            posted += 20;
        },
    )
    .await;
    let ids: Vec<i64> = seen.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    let unique: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an entry was answered twice");
    let missing: Vec<&i64> = existing.iter().filter(|id| !unique.contains(id)).collect();
    assert!(missing.is_empty(), "skipped: {missing:?}");
    assert!(pages >= 6, "{pages} pages");
    let keys: Vec<(String, i64)> = seen.iter().map(key).collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "not in (date, id) order"
    );
    // Each entry comes with its lines, as GET /api/journal-entries/{id}.
    let (status, one) = books
        .call(
            "GET",
            &format!("/api/journal-entries/{}", ids[0]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one, seen[0]);

    // Newest first.
    let (newest, _) = read_all(
        &books,
        &token,
        "/api/journal-entries?order=newest&limit=500",
        async || {},
    )
    .await;
    let keys: Vec<(String, i64)> = newest.iter().map(key).collect();
    assert!(keys.windows(2).all(|w| w[0] > w[1]), "not newest first");
    assert_eq!(newest.len(), posted);

    // One account's entries: every fifth is an expense.
    let (expenses, _) = read_all(
        &books,
        &token,
        "/api/journal-entries?account=5000&limit=100",
        async || {},
    )
    .await;
    assert_eq!(expenses.len(), posted / 5);
    assert!(expenses.iter().all(|e| {
        e["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["account"] == "5000")
    }));
    let keys: Vec<(String, i64)> = expenses.iter().map(key).collect();
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "not in (date, id) order"
    );

    // A period, newest first, of one account.
    let (march, _) = read_all(
        &books,
        &token,
        "/api/journal-entries?account=5000&from=2026-03-01&to=2026-03-31&order=newest&limit=7",
        async || {},
    )
    .await;
    let expected = (0..posted)
        .filter(|n: &usize| n.is_multiple_of(5) && day(*n).starts_with("2026-03-"))
        .count();
    assert_eq!(march.len(), expected);
    assert!(
        march
            .iter()
            .all(|e| e["date"].as_str().unwrap().starts_with("2026-03-"))
    );

    // Reversed or not.
    for id in &existing[..3] {
        let (status, body) = books
            .call(
                "POST",
                &format!("/api/journal-entries/{id}/reverse"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (reversed, _) = read_all(
        &books,
        &token,
        "/api/journal-entries?reversed=true",
        async || {},
    )
    .await;
    let mut reversed: Vec<i64> = reversed.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    reversed.sort_unstable();
    let mut expected = existing[..3].to_vec();
    expected.sort_unstable();
    assert_eq!(reversed, expected);
    let (standing, _) = read_all(
        &books,
        &token,
        "/api/journal-entries?reversed=false&limit=500",
        async || {},
    )
    .await;
    // Every entry but the three reversed ones (the reversals included).
    assert_eq!(standing.len(), posted + 3 - 3);

    // Bad filters change nothing and say why.
    for (query, code) in [
        ("account=9999", "UNKNOWN_ACCOUNT"),
        ("from=2026-13-01", "INVALID_DATE"),
        ("from=2026-05-01&to=2026-04-01", "INVALID_PERIOD"),
        ("order=oldest", "INVALID_QUERY"),
        ("reversed=maybe", "INVALID_QUERY"),
        ("colour=red", "INVALID_QUERY"),
    ] {
        let (status, body) = books
            .call(
                "GET",
                &format!("/api/journal-entries?{query}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["code"], code, "{query}: {body}");
    }
}

/// An account's history pages in date order with the balance after each
/// posting, continuous across pages and ending at the account's balance;
/// its balance on a day is the sum of its postings up to that day; another
/// organization's account does not exist.
async fn an_account_history_runs_its_balance_across_pages(door: Door) {
    let books = Books::start(door).await;
    let token = books.register("history@acme.test", "USD").await;
    // Posted out of date order, several on a day.
    let entries: Vec<Value> = (0..450)
        .rev()
        .map(|n| sale(n, &day(n), 100 + n as i64))
        .collect();
    books.post_batch(&token, entries).await;

    let (rows, pages) = read_all(
        &books,
        &token,
        "/api/accounts/1000/entries?limit=100",
        async || {},
    )
    .await;
    assert_eq!((rows.len(), pages), (450, 5));
    let cents = |text: &Value| -> i64 {
        let (units, fraction) = text.as_str().unwrap().split_once('.').unwrap();
        units.parse::<i64>().unwrap() * 100 + fraction.parse::<i64>().unwrap()
    };
    let mut balance = 0;
    let mut keys = Vec::new();
    for row in &rows {
        balance += cents(&row["debit"]);
        assert_eq!(cents(&row["balance"]), balance, "{row}");
        keys.push((
            row["date"].as_str().unwrap().to_owned(),
            row["entry_id"].as_i64().unwrap(),
        ));
    }
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "not in date order");
    let total: i64 = (0..450).map(|n| 100 + n as i64).sum();
    assert_eq!(balance, total);
    assert_eq!(
        books.balance(&token, "1000").await,
        format!("{}.{:02}", total / 100, total % 100)
    );

    // A period: its first row's balance counts every posting before it.
    let (june, _) = read_all(
        &books,
        &token,
        "/api/accounts/1000/entries?from=2026-06-01&to=2026-06-30&limit=10",
        async || {},
    )
    .await;
    let before_june: i64 = (0..450)
        .filter(|n| day(*n).as_str() < "2026-06-01")
        .map(|n| 100 + n as i64)
        .sum();
    assert_eq!(
        cents(&june[0]["balance"]) - cents(&june[0]["debit"]),
        before_june
    );
    assert!(
        june.iter()
            .all(|r| r["date"].as_str().unwrap().starts_with("2026-06-"))
    );

    // The balance on a day, for days around the postings.
    for as_of in ["2025-12-31", "2026-03-15", "2026-06-30", "2026-12-31"] {
        let (status, body) = books
            .call(
                "GET",
                &format!("/api/accounts/4000/balance?as_of={as_of}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let credits: i64 = (0..450)
            .filter(|n: &usize| !n.is_multiple_of(5) && day(*n).as_str() <= as_of)
            .map(|n| 100 + n as i64)
            .sum();
        assert_eq!(body["code"], "4000");
        assert_eq!(body["as_of"], as_of);
        assert_eq!(body["currency"], "USD");
        assert_eq!(
            cents(&json!(
                body["balance"].as_str().unwrap().trim_start_matches('-')
            )),
            credits
        );
        if credits > 0 {
            assert!(body["balance"].as_str().unwrap().starts_with('-'), "{body}");
        }
    }

    // Another organization has no account 1000 of this one's: its own is empty.
    let other = books.register("other@acme.test", "USD").await;
    let (status, page, next) = books.page("/api/accounts/1000/entries", &other).await;
    assert_eq!((status, page, next), (StatusCode::OK, json!([]), None));
    for path in ["/api/accounts/9999/entries", "/api/accounts/9999/balance"] {
        let (status, body) = books.call("GET", path, Some(&token), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let (status, body) = books
        .call(
            "GET",
            "/api/accounts/1000/balance?as_of=yesterday",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "INVALID_DATE");
}

/// Entries carry the metadata they were posted with (batches too), answer
/// it wherever they are, and the journal finds them by it; metadata outside
/// its bounds is refused and posts nothing; a reversal carries none.
async fn entries_carry_metadata_and_are_found_by_it(store: Store) {
    let books = Books::start(store).await;
    let token = books.register("tags@acme.test", "USD").await;
    let tagged = |n: usize, order: &str, region: &str| {
        let mut entry = sale(n, &day(n), 100);
        entry["metadata"] = json!({"order": order, "region.eu": region});
        entry
    };
    let ids = books
        .post_batch(
            &token,
            vec![
                tagged(1, "A-1", "fr"),
                tagged(2, "A-2", "fr"),
                tagged(3, "A-1", "de"),
                sale(4, &day(4), 100),
            ],
        )
        .await;
    let (status, single) = books
        .call(
            "POST",
            "/api/journal-entries",
            Some(&token),
            Some(json!({"date": "2026-07-01", "memo": "single", "metadata": {"order": "A-1"},
                        "lines": [{"account": "1000", "debit": "1.00"}, {"account": "4000", "credit": "1.00"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{single}");
    assert_eq!(single["metadata"], json!({"order": "A-1"}));
    let (_, read) = books
        .call(
            "GET",
            &format!("/api/journal-entries/{}", ids[0]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(read["metadata"], json!({"order": "A-1", "region.eu": "fr"}));
    let (_, plain) = books
        .call(
            "GET",
            &format!("/api/journal-entries/{}", ids[3]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(plain["metadata"], json!({}));

    let found = |query: &'static str| {
        let (books, token) = (&books, &token);
        async move {
            let (items, _) = read_all(
                books,
                token,
                &format!("/api/journal-entries?{query}"),
                async || {},
            )
            .await;
            let mut ids: Vec<i64> = items.iter().map(|e| e["id"].as_i64().unwrap()).collect();
            ids.sort_unstable();
            ids
        }
    };
    let single = single["id"].as_i64().unwrap();
    assert_eq!(
        found("metadata[order]=A-1").await,
        vec![ids[0], ids[2], single]
    );
    assert_eq!(
        found("metadata[order]=A-1&metadata[region.eu]=de").await,
        vec![ids[2]]
    );
    assert_eq!(
        found("metadata[order]=A-1&account=4000&limit=1").await,
        vec![ids[0], ids[2], single]
    );
    assert_eq!(found("metadata[order]=nope").await, Vec::<i64>::new());

    // The reversal of a tagged entry carries no metadata of its own.
    let (status, reversal) = books
        .call(
            "POST",
            &format!("/api/journal-entries/{}/reverse", ids[1]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reversal}");
    assert_eq!(reversal["metadata"], json!({}));

    // Out of bounds: refused, and nothing posted.
    let many: serde_json::Map<String, Value> =
        (0..21).map(|i| (format!("k{i}"), json!("v"))).collect();
    for metadata in [
        Value::Object(many),
        json!({"Order": "A-1"}),
        json!({"order": "x".repeat(501)}),
        json!({"order": 1}),
    ] {
        let mut entry = sale(9, "2026-08-01", 100);
        entry["metadata"] = metadata.clone();
        let (status, body) = books
            .call("POST", "/api/journal-entries", Some(&token), Some(entry))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{metadata}: {body}"
        );
        assert_eq!(body["code"], "INVALID_FIELD", "{body}");
    }
    let (items, _) = read_all(
        &books,
        &token,
        "/api/journal-entries?from=2026-08-01&to=2026-08-01",
        async || {},
    )
    .await;
    assert!(items.is_empty(), "{items:?}");
    for query in ["metadata[Order]=x", "metadata[order]=a&metadata[order]=b"] {
        let (status, body) = books
            .call(
                "GET",
                &format!("/api/journal-entries?{query}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["code"], "INVALID_QUERY", "{query}: {body}");
    }
}

/// Accounts carry metadata given when they are opened, answered in the
/// chart of accounts; an accountant replaces it (a viewer may not), and the
/// chart filters on it; another organization's account is not there.
async fn accounts_carry_replaceable_metadata(store: Store) {
    let books = Books::start(store).await;
    let token = books.register("chart@acme.test", "USD").await;
    let (status, opened) = books
        .call(
            "POST",
            "/api/accounts",
            Some(&token),
            Some(
                json!({"code": "1010", "name": "Bank EU", "type": "asset", "currency": "USD",
                        "metadata": {"region": "eu", "iban.last4": "1234"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    assert_eq!(
        opened["metadata"],
        json!({"region": "eu", "iban.last4": "1234"})
    );
    let codes = |query: &'static str| {
        let (books, token) = (&books, &token);
        async move {
            let (items, _) =
                read_all(books, token, &format!("/api/accounts?{query}"), async || {}).await;
            items
                .iter()
                .map(|a| a["code"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(codes("metadata[region]=eu").await, vec!["1010"]);
    let all = codes("limit=500").await;
    assert!(all.len() > 5 && all.contains(&"1000".to_owned()), "{all:?}");

    // Replaced, whole: keys not given are gone.
    let (status, replaced) = books
        .call(
            "PUT",
            "/api/accounts/1000/metadata",
            Some(&token),
            Some(json!({"region": "us"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["metadata"], json!({"region": "us"}));
    assert_eq!(replaced["code"], "1000");
    let (status, cleared) = books
        .call(
            "PUT",
            "/api/accounts/1010/metadata",
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert_eq!(cleared["metadata"], json!({}));
    assert_eq!(codes("metadata[region]=eu").await, Vec::<String>::new());
    assert_eq!(codes("metadata[region]=us").await, vec!["1000"]);

    // Bounds, roles, tenants.
    let (status, body) = books
        .call(
            "PUT",
            "/api/accounts/1000/metadata",
            Some(&token),
            Some(json!({"Region": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        codes("metadata[region]=us").await,
        vec!["1000"],
        "unchanged"
    );
    let (status, _) = books
        .call(
            "PUT",
            "/api/accounts/9999/metadata",
            Some(&token),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let viewer = books
        .member_token(&token, "viewer@acme.test", "viewer")
        .await;
    let (status, _) = books
        .call(
            "PUT",
            "/api/accounts/1000/metadata",
            Some(&viewer),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let other = books.register("neighbour@acme.test", "USD").await;
    let (status, theirs) = books
        .call(
            "PUT",
            "/api/accounts/1000/metadata",
            Some(&other),
            Some(json!({"x": "y"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{theirs}");
    assert_eq!(
        codes("metadata[region]=us").await,
        vec!["1000"],
        "their 1000 is theirs"
    );
}

/// Customers carry metadata given when they are added, answered in the
/// list; an accountant replaces it, and the list filters on it.
async fn customers_carry_replaceable_metadata(store: Store) {
    let books = Books::start(store).await;
    let token = books.register("crm@acme.test", "USD").await;
    let mut ids = Vec::new();
    for (name, crm) in [("Ann", "c-1"), ("Bob", "c-2"), ("Cy", "c-1")] {
        let (status, added) = books
            .call(
                "POST",
                "/api/customers",
                Some(&token),
                Some(json!({"name": name, "metadata": {"crm.id": crm}})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{added}");
        assert_eq!(added["metadata"], json!({"crm.id": crm}));
        ids.push(added["id"].as_i64().unwrap());
    }
    let found = |query: &'static str| {
        let (books, token) = (&books, &token);
        async move {
            let (items, _) = read_all(
                books,
                token,
                &format!("/api/customers?{query}"),
                async || {},
            )
            .await;
            items
                .iter()
                .map(|c| c["id"].as_i64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        found("metadata[crm.id]=c-1&limit=1").await,
        vec![ids[0], ids[2]]
    );
    let (status, replaced) = books
        .call(
            "PUT",
            &format!("/api/customers/{}/metadata", ids[2]),
            Some(&token),
            Some(json!({"crm.id": "c-3", "tier": "gold"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(
        replaced["metadata"],
        json!({"crm.id": "c-3", "tier": "gold"})
    );
    assert_eq!(replaced["name"], "Cy");
    assert_eq!(found("metadata[crm.id]=c-1").await, vec![ids[0]]);
    assert_eq!(
        found("metadata[tier]=gold&metadata[crm.id]=c-3").await,
        vec![ids[2]]
    );
    let (status, body) = books
        .call(
            "PUT",
            &format!("/api/customers/{}/metadata", ids[0]),
            Some(&token),
            Some(json!({"crm.id": 7})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let other = books.register("rival@acme.test", "USD").await;
    let (status, _) = books
        .call(
            "PUT",
            &format!("/api/customers/{}/metadata", ids[0]),
            Some(&other),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another organization's customer"
    );
    assert_eq!(found("metadata[crm.id]=c-1").await, vec![ids[0]]);
}

on_every_store!(
    the_journal_pages_without_gaps_while_entries_are_posted,
    customers_carry_replaceable_metadata,
    entries_carry_metadata_and_are_found_by_it,
    accounts_carry_replaceable_metadata,
);

on_every_door!(an_account_history_runs_its_balance_across_pages);

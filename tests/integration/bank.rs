//! Bank feeds over HTTP against the fake Plaid, on PostgreSQL and SQLite:
//! link (the access token sealed, never answered), map, sync (idempotent,
//! paged, restarted on a mutation during pagination), suggestions, matching
//! once, and Plaid outages; Plaid's amounts and currencies as it sends
//! them (lines set aside for review, dismissed), pending lines posted, and
//! probes within the providers' rate limits. Every answer of the fake Plaid
//! is checked against Plaid's published schemas (`support::saas::schema`).

use std::time::{Duration, Instant};

use accubooks_core::db::Pool;
use http::StatusCode;
use serde_json::{Value, json};

use crate::books::{Books, Store};
use crate::support::saas::{FakeSaas, Mode, PLAID_CLIENT};

/// The public URL of the server's Plaid webhook, as configured.
const WEBHOOK_URL: &str = "https://books.example.test/api/webhooks/plaid";

async fn start(store: Store, saas: &FakeSaas) -> (Books, String, String) {
    let books = Books::start_with(
        store,
        &[
            ("PLAID_CLIENT_ID", PLAID_CLIENT.0.to_owned()),
            ("PLAID_SECRET", PLAID_CLIENT.1.to_owned()),
            ("PLAID_API_BASE", saas.base()),
            ("PLAID_WEBHOOK_URL", WEBHOOK_URL.to_owned()),
            ("PROVIDER_TIMEOUT_MS", "400".to_owned()),
            ("JOB_TRANSPORT", "database".to_owned()),
            ("JOB_RETRY_BASE_MS", "100".to_owned()),
            ("JOB_RETRY_MAX_MS", "500".to_owned()),
            ("JOB_MAX_ATTEMPTS", "50".to_owned()),
        ],
    )
    .await;
    books
        .server
        .wait_for_dependency("plaid", "connected", Duration::from_secs(10))
        .await;
    let (token, organization) = books
        .register_organization(&format!("bank-{}@acme.test", uuid::Uuid::new_v4()))
        .await;
    (books, token, organization)
}

/// Links an item with one checking account `acc-1`, mapped to 1000.
async fn link(books: &Books, token: &str, saas: &FakeSaas) -> (String, Value) {
    let (public, item) = saas
        .plaid
        .issue_public_token(&[("acc-1", "Checking", "0001")]);
    let (status, linked) = books
        .call(
            "POST",
            "/api/bank/link",
            Some(token),
            Some(json!({"public_token": public})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{linked}");
    let account = linked["accounts"][0].clone();
    let (status, mapped) = books
        .call(
            "PUT",
            &format!("/api/bank/accounts/{}", account["id"]),
            Some(token),
            Some(json!({"ledger_account": "1000"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{mapped}");
    (item, linked)
}

/// Asks for a sync and waits for its job to succeed.
async fn sync(books: &Books, token: &str) -> Value {
    let (status, asked) = books
        .call("POST", "/api/bank/sync", Some(token), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{asked}");
    wait_job(books, token, &asked["job_id"], Duration::from_secs(20)).await
}

async fn wait_job(books: &Books, token: &str, id: &Value, limit: Duration) -> Value {
    let started = Instant::now();
    loop {
        let (_, job) = books
            .call("GET", &format!("/api/jobs/{id}"), Some(token), None)
            .await;
        match job["status"].as_str() {
            Some("succeeded") => return job,
            Some("dead") => panic!("the sync job died: {job}"),
            _ => {}
        }
        assert!(
            started.elapsed() < limit,
            "the sync job did not finish: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn lines(books: &Books, token: &str, status: &str) -> Vec<Value> {
    let (code, lines) = books
        .call(
            "GET",
            &format!("/api/bank/transactions?status={status}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{lines}");
    lines.as_array().unwrap().clone()
}

fn by_plaid_id<'a>(lines: &'a [Value], id: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["plaid_transaction_id"] == id)
        .unwrap_or_else(|| panic!("no line {id} in {lines:?}"))
}

/// The stored access tokens, read past the server (row-level security
/// scoped to the organization on PostgreSQL).
async fn raw_tokens(books: &Books, organization: &str) -> Vec<String> {
    let sql = "SELECT access_token FROM bank_items";
    match books.server.app.database().pool() {
        Pool::Postgres(pool) => {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("SELECT set_config('accubooks.organization', $1, true)")
                .bind(organization)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query_scalar(sql).fetch_all(&mut *tx).await.unwrap()
        }
        Pool::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
    }
}

async fn issued_invoice(books: &Books, token: &str, amount: &str) -> Value {
    let (_, customer) = books
        .call(
            "POST",
            "/api/customers",
            Some(token),
            Some(json!({"name": "Globex"})),
        )
        .await;
    let (status, draft) = books
        .call(
            "POST",
            "/api/invoices",
            Some(token),
            Some(
                json!({"customer_id": customer["id"], "due_date": "2026-03-31",
                        "lines": [{"description": "Work", "quantity": "1", "unit_price": amount}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{draft}");
    let (status, issued) = books
        .call(
            "POST",
            &format!("/api/invoices/{}/issue", draft["id"]),
            Some(token),
            Some(json!({"date": "2026-03-01"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    issued
}

on_every_store!(
    linking_keeps_the_access_token_sealed_and_maps_accounts,
    syncs_import_once_follow_changes_and_restart_on_mutation,
    matching_posts_once_and_suggestions_rank_the_invoice_first,
    a_pass_is_saved_whole_and_sync_answers_name_new_accounts,
    amounts_and_currencies_as_plaid_sends_them,
    a_posted_transaction_replaces_its_pending_line,
);

async fn linking_keeps_the_access_token_sealed_and_maps_accounts(store: Store) {
    let saas = FakeSaas::start().await;
    let (books, token, organization) = start(store, &saas).await;
    let (item, linked) = link(&books, &token, &saas).await;
    let access = saas.plaid.access_token(&item);
    assert_eq!(linked["item_id"], item);
    assert_eq!(linked["accounts"][0]["name"], "Checking");
    assert_eq!(linked["accounts"][0]["mask"], "0001");
    assert!(!linked.to_string().contains(&access), "{linked}");

    // At rest: sealed, bound to the organization and item.
    let rows = raw_tokens(&books, &organization).await;
    assert_eq!(rows.len(), 1);
    let sealed = &rows[0];
    assert!(sealed.starts_with("v1:") && !sealed.contains(&access));
    let sealer = books.server.app.sealer();
    assert!(
        sealer
            .open(sealed, &format!("plaid-item:{organization}:{item}"))
            .is_ok()
    );
    assert!(
        sealer
            .open(sealed, &format!("plaid-item:other:{item}"))
            .is_err()
    );

    // A public token is exchanged once.
    let (public, _) = saas
        .plaid
        .issue_public_token(&[("acc-9", "Savings", "0009")]);
    let body = json!({"public_token": public});
    let (status, _) = books
        .call("POST", "/api/bank/link", Some(&token), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, again) = books
        .call("POST", "/api/bank/link", Some(&token), Some(body))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{again}");
    assert_eq!(again["code"], "INVALID_PUBLIC_TOKEN");

    // Mapping: the chart's account in the same currency, else 422.
    let id = &linked["accounts"][0]["id"];
    for (code, expected) in [
        ("9999", "UNKNOWN_ACCOUNT"),
        ("4000", "INVALID_LEDGER_ACCOUNT"),
    ] {
        let (status, refused) = books
            .call(
                "PUT",
                &format!("/api/bank/accounts/{id}"),
                Some(&token),
                Some(json!({"ledger_account": code})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
        assert_eq!(refused["code"], expected);
    }
    let (status, eur) = books
        .call(
            "POST",
            "/api/accounts",
            Some(&token),
            Some(json!({"code": "1010", "name": "Euro cash", "type": "asset", "currency": "EUR"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{eur}");
    let (status, refused) = books
        .call(
            "PUT",
            &format!("/api/bank/accounts/{id}"),
            Some(&token),
            Some(json!({"ledger_account": "1010"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["code"], "CURRENCY_MISMATCH");
    let (_, accounts) = books
        .call("GET", "/api/bank/accounts", Some(&token), None)
        .await;
    assert_eq!(accounts[0]["ledger_account"], "1000", "{accounts}");
    assert_eq!(accounts.as_array().unwrap().len(), 2);

    // Another organization sees none of it.
    let stranger = books.register("stranger@other.test", "USD").await;
    let (_, none) = books
        .call("GET", "/api/bank/accounts", Some(&stranger), None)
        .await;
    assert_eq!(none, json!([]));
    let (status, _) = books
        .call(
            "PUT",
            &format!("/api/bank/accounts/{id}"),
            Some(&stranger),
            Some(json!({"ledger_account": "1000"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let health = books.server.health().await.to_string();
    assert!(!health.contains(&access) && !health.contains(PLAID_CLIENT.1));
}

async fn syncs_import_once_follow_changes_and_restart_on_mutation(store: Store) {
    let saas = FakeSaas::start().await;
    let (books, token, _) = start(store, &saas).await;
    let (item, _) = link(&books, &token, &saas).await;
    saas.plaid
        .add(&item, "t1", "acc-1", "-125.00", "2026-03-05", "ACH GLOBEX");
    saas.plaid
        .add(&item, "t2", "acc-1", "40.5", "2026-03-06", "OFFICE DEPOT");
    saas.plaid
        .add(&item, "t3", "acc-1", "12", "2026-03-07", "COFFEE");
    sync(&books, &token).await;
    let imported = lines(&books, &token, "unmatched").await;
    assert_eq!(imported.len(), 3);
    let t1 = by_plaid_id(&imported, "t1");
    assert_eq!(
        (t1["amount"].as_str(), t1["direction"].as_str()),
        (Some("-125.00"), Some("in"))
    );
    assert_eq!(by_plaid_id(&imported, "t2")["amount"], "40.50");
    assert_eq!(by_plaid_id(&imported, "t3")["direction"], "out");

    // Twice: nothing twice.
    sync(&books, &token).await;
    assert_eq!(lines(&books, &token, "unmatched").await.len(), 3);

    // Modified updates, removed removes an unmatched line.
    saas.plaid.modify(&item, "t2", "41.25");
    saas.plaid.remove(&item, "t3");
    sync(&books, &token).await;
    let now = lines(&books, &token, "unmatched").await;
    assert_eq!(now.len(), 2);
    assert_eq!(by_plaid_id(&now, "t2")["amount"], "41.25");

    // Many pages, and Plaid's data changing on the second: the run starts
    // over from its first cursor and imports each line once.
    saas.plaid.set_page_size(2);
    for n in 4..=9 {
        saas.plaid.add(
            &item,
            &format!("t{n}"),
            "acc-1",
            &format!("{n}.00"),
            "2026-03-08",
            "CARD",
        );
    }
    saas.plaid.mutation_during_pagination_at(2);
    let calls = saas.plaid.sync_calls();
    sync(&books, &token).await;
    // 3 pages, one refused, then the 3 pages again.
    assert_eq!(saas.plaid.sync_calls() - calls, 1 + 1 + 3);
    let all = lines(&books, &token, "unmatched").await;
    assert_eq!(all.len(), 8);
    let mut ids: Vec<&str> = all
        .iter()
        .map(|l| l["plaid_transaction_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 8);

    // The lines page like every list, newest imported first, the status
    // filter kept by the Link, each page's lines with their suggestions.
    let (status, first, next) = books
        .page("/api/bank/transactions?status=unmatched&limit=3", &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first.as_array().unwrap().len(), 3);
    assert!(first[0]["suggestions"].is_array(), "{first}");
    assert!(next.unwrap().contains("status=unmatched"));
    let paged = books
        .list("/api/bank/transactions?status=unmatched&limit=3", &token)
        .await;
    let paged_ids: Vec<i64> = paged.iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert_eq!(paged_ids.len(), 8);
    assert!(paged_ids.windows(2).all(|w| w[0] > w[1]), "{paged_ids:?}");

    // A revoked token is a permanent failure: the job ends dead.
    saas.plaid.revoke(&item);
    let (status, asked) = books
        .call("POST", "/api/bank/sync", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let started = Instant::now();
    loop {
        let (_, job) = books
            .call(
                "GET",
                &format!("/api/jobs/{}", asked["job_id"]),
                Some(&token),
                None,
            )
            .await;
        if job["status"] == "dead" {
            assert_eq!(
                job["error"],
                json!({"code": "BANK_ITEM_LOGIN_REQUIRED", "kind": "permanent"})
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn matching_posts_once_and_suggestions_rank_the_invoice_first(store: Store) {
    let saas = FakeSaas::start().await;
    let (books, token, _) = start(store, &saas).await;
    let (item, _) = link(&books, &token, &saas).await;
    let other = issued_invoice(&books, &token, "99.00").await;
    let invoice = issued_invoice(&books, &token, "125.00").await;
    saas.plaid.add(
        &item,
        "in-1",
        "acc-1",
        "-125.00",
        "2026-03-05",
        "ACH GLOBEX PAYMENT",
    );
    saas.plaid.add(
        &item,
        "in-2",
        "acc-1",
        "-99.00",
        "2026-03-05",
        &format!("WIRE {}", other["number"].as_str().unwrap()),
    );
    saas.plaid.add(
        &item,
        "out-1",
        "acc-1",
        "40.00",
        "2026-03-06",
        "OFFICE DEPOT",
    );
    sync(&books, &token).await;
    let unmatched = lines(&books, &token, "unmatched").await;
    let incoming = by_plaid_id(&unmatched, "in-1");
    let best = &incoming["suggestions"][0];
    assert_eq!(best["kind"], "invoice", "{incoming}");
    assert_eq!(best["invoice_id"], invoice["id"]);
    assert_eq!(best["amount"], "125.00");
    let wire = by_plaid_id(&unmatched, "in-2");
    assert_eq!(wire["suggestions"][0]["invoice_id"], other["id"]);
    assert_eq!(wire["suggestions"][0]["score"], 100, "{wire}");

    // Match to the invoice: the payment is recorded and posted once, with
    // two concurrent requests.
    let path = format!("/api/bank/transactions/{}/match", incoming["id"]);
    let body = json!({"invoice_id": invoice["id"]});
    let (a, b) = tokio::join!(
        books.call("POST", &path, Some(&token), Some(body.clone())),
        books.call("POST", &path, Some(&token), Some(body.clone())),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{} {}",
        a.1,
        b.1
    );
    let refused = if a.0 == StatusCode::CONFLICT {
        a.1
    } else {
        b.1
    };
    assert_eq!(refused["code"], "BANK_TRANSACTION_MATCHED", "{refused}");
    let (status, again) = books.call("POST", &path, Some(&token), Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(again["code"], "BANK_TRANSACTION_MATCHED");
    let (_, paid) = books
        .call(
            "GET",
            &format!("/api/invoices/{}", invoice["id"]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(paid["status"], "paid", "{paid}");
    assert_eq!(books.balance(&token, "1000").await, "125.00");
    // One event per line the feed brought, and one match, whatever the
    // concurrent requests: the line as matched, then the invoice paid.
    let imported = books.events(&token, "bank_transaction.imported").await;
    let mut brought: Vec<&str> = imported
        .iter()
        .map(|e| e["data"]["plaid_transaction_id"].as_str().unwrap())
        .collect();
    brought.sort();
    assert_eq!(brought, ["in-1", "in-2", "out-1"]);
    let matched = books
        .events(&token, "bank_transaction.matched,invoice.paid")
        .await;
    let kinds: Vec<&str> = matched
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["bank_transaction.matched", "invoice.paid"]);
    assert_eq!(matched[0]["data"]["status"], "matched");
    assert_eq!(matched[0]["data"]["invoice_id"], invoice["id"]);
    assert_eq!(matched[1]["data"], paid);

    // Categorise money out: posted once between 1000 and 5000.
    let out = by_plaid_id(&unmatched, "out-1");
    let path = format!("/api/bank/transactions/{}/match", out["id"]);
    // The money moved at the bank on the line's day: while that day is
    // locked, the match posts on the first open day, the day kept.
    let lock = async |date: Value| {
        let (status, body) = books
            .call(
                "PUT",
                "/api/settings",
                Some(&token),
                Some(json!({ "lock_date": date })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    };
    lock(json!("2026-03-06")).await;
    let (status, matched) = books
        .call(
            "POST",
            &path,
            Some(&token),
            Some(json!({"account": "5000"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{matched}");
    assert_eq!(matched["status"], "matched");
    let expense = books
        .list("/api/journal-entries?account=5000", &token)
        .await;
    assert_eq!(expense.len(), 1, "{expense:?}");
    assert_eq!(
        (
            &expense[0]["date"],
            &expense[0]["metadata"]["original_date"]
        ),
        (&json!("2026-03-07"), &json!("2026-03-06"))
    );
    lock(Value::Null).await;
    let (status, _) = books
        .call(
            "POST",
            &path,
            Some(&token),
            Some(json!({"account": "5000"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(books.balance(&token, "1000").await, "85.00");
    assert_eq!(books.balance(&token, "5000").await, "40.00");
    let trial = books.trial_balance(&token, "2026-12-31").await;
    assert_eq!(trial["total_debit"], trial["total_credit"], "{trial}");

    // Bad matches change nothing.
    let wire_path = format!("/api/bank/transactions/{}/match", wire["id"]);
    for (body, status, code) in [
        (json!({}), StatusCode::UNPROCESSABLE_ENTITY, "INVALID_FIELD"),
        (
            json!({"account": "9999"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "MISSING_ACCOUNT",
        ),
        (
            json!({"invoice_id": invoice["id"]}),
            StatusCode::CONFLICT,
            "INVOICE_NOT_OPEN",
        ),
        (
            json!({"invoice_id": 987654}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "UNKNOWN_INVOICE",
        ),
    ] {
        let (got, answer) = books
            .call("POST", &wire_path, Some(&token), Some(body))
            .await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{answer}"
        );
    }
    assert_eq!(books.balance(&token, "1000").await, "85.00");

    // The bank removes a matched line: it is kept, flagged.
    saas.plaid.remove(&item, "out-1");
    sync(&books, &token).await;
    let matched = lines(&books, &token, "matched").await;
    assert_eq!(matched.len(), 2);
    assert_eq!(by_plaid_id(&matched, "out-1")["bank_change"], "removed");
    assert_eq!(lines(&books, &token, "unmatched").await.len(), 1);
}

/// Plaid failing, slow or not configured: the bank routes that need it
/// answer 503 at once, everything else works, and a sync that failed
/// meanwhile completes once Plaid is back (found by the probe).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaid_outages_answer_503_and_heal_by_themselves() {
    let saas = FakeSaas::start().await;
    let (books, token, _) = start(Store::Sqlite, &saas).await;
    let (item, _) = link(&books, &token, &saas).await;
    saas.plaid
        .add(&item, "t1", "acc-1", "-10.00", "2026-03-05", "DEPOSIT");

    // Plaid answers 500 while a sync runs: the job fails (temporarily).
    saas.plaid_mode(Mode::Failing(500));
    let (status, asked) = books
        .call("POST", "/api/bank/sync", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{asked}");
    books
        .server
        .wait_for_dependency("plaid", "unavailable", Duration::from_secs(10))
        .await;
    let (public, _) = saas.plaid.issue_public_token(&[("acc-2", "Other", "0002")]);
    for (method, path, body) in [
        ("POST", "/api/bank/sync", None),
        (
            "POST",
            "/api/bank/link",
            Some(json!({"public_token": public})),
        ),
    ] {
        let started = Instant::now();
        let (status, refused) = books.call(method, path, Some(&token), body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{refused}");
        assert_eq!(refused["code"], "BANK_INTEGRATION_UNAVAILABLE");
        assert!(started.elapsed() < Duration::from_millis(300));
    }
    for path in [
        "/api/bank/transactions",
        "/api/bank/accounts",
        "/api/accounts",
        "/api/invoices",
    ] {
        let (status, body) = books.call("GET", path, Some(&token), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let health = books.server.health().await;
    assert_eq!(health["dependencies"]["plaid"]["status"], "unavailable");
    assert_eq!(health["dependencies"]["database"]["status"], "connected");

    // The job meets the outage: a temporary failure, retried.
    let started = Instant::now();
    loop {
        let (_, job) = books
            .call(
                "GET",
                &format!("/api/jobs/{}", asked["job_id"]),
                Some(&token),
                None,
            )
            .await;
        if job["status"] == "failed" {
            assert_eq!(job["error"]["kind"], "temporary", "{job}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Back: the probe sees it, and the job that failed completes.
    saas.plaid_mode(Mode::Normal);
    books
        .server
        .wait_for_dependency("plaid", "connected", Duration::from_secs(15))
        .await;
    let job = wait_job(&books, &token, &asked["job_id"], Duration::from_secs(20)).await;
    assert!(job["attempts"].as_u64().unwrap() >= 2, "{job}");
    assert_eq!(lines(&books, &token, "unmatched").await.len(), 1);

    // Slow past PROVIDER_TIMEOUT_MS: the call gives up, and the route says 503.
    saas.plaid_mode(Mode::Slow(Duration::from_secs(2)));
    let started = Instant::now();
    let (status, refused) = books
        .call(
            "POST",
            "/api/bank/link",
            Some(&token),
            Some(json!({"public_token": public})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{refused}");
    assert_eq!(refused["code"], "BANK_INTEGRATION_UNAVAILABLE");
    assert!(started.elapsed() < Duration::from_millis(1500));
    // Timeouts (of traffic and probes) then mark it down: 503 at once.
    books
        .server
        .wait_for_dependency("plaid", "unavailable", Duration::from_secs(10))
        .await;
    let started = Instant::now();
    let (status, _) = books
        .call("POST", "/api/bank/sync", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < Duration::from_millis(300));
    let health = books.server.health().await;
    assert!(!health.to_string().contains(PLAID_CLIENT.1));
    saas.plaid_mode(Mode::Normal);

    // Not configured: disabled, and a 503 that says so and names what to
    // set, rather than "retry shortly".
    let plain = Books::start(Store::Sqlite).await;
    let owner = plain.register("plain@acme.test", "USD").await;
    let (status, refused) = plain
        .call(
            "POST",
            "/api/bank/link",
            Some(&owner),
            Some(json!({"public_token": "public-x"})),
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused["code"], "BANK_INTEGRATION_NOT_CONFIGURED");
    let message = refused["error"].as_str().unwrap();
    assert!(
        message.contains("not configured")
            && message.contains("PLAID_CLIENT_ID")
            && message.contains("PLAID_SECRET"),
        "{message}"
    );
    let (status, _) = plain
        .call("GET", "/api/bank/transactions", Some(&owner), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        plain.server.health().await["dependencies"]["plaid"]["status"],
        "disabled"
    );
}

/// The job of a sync asked for now (not waited for).
async fn ask_sync(books: &Books, token: &str) -> Value {
    let (status, asked) = books
        .call("POST", "/api/bank/sync", Some(token), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{asked}");
    asked["job_id"].clone()
}

async fn a_pass_is_saved_whole_and_sync_answers_name_new_accounts(store: Store) {
    let saas = FakeSaas::start().await;
    let (books, token, _) = start(store, &saas).await;
    let (item, _) = link(&books, &token, &saas).await;
    // Three pages; Plaid's data changes under every pass that goes past
    // its first page, so no pass completes while that lasts.
    saas.plaid.set_page_size(1);
    for n in 1..=3 {
        saas.plaid.add(
            &item,
            &format!("t{n}"),
            "acc-1",
            &format!("{n}.00"),
            "2026-03-08",
            "CARD",
        );
    }
    saas.plaid.mutating(true);
    let before = saas.plaid.sync_calls();
    let job = ask_sync(&books, &token).await;
    // A run pages twice per attempt (the first page, then the refusal),
    // restarts three times, and the job retries: wait for a retry.
    let started = Instant::now();
    while saas.plaid.sync_calls() - before < 10 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} sync calls",
            saas.plaid.sync_calls() - before
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nothing of the abandoned passes was saved, and the job is not done.
    assert_eq!(
        lines(&books, &token, "unmatched").await,
        Vec::<Value>::new()
    );
    let (_, pending) = books
        .call("GET", &format!("/api/jobs/{job}"), Some(&token), None)
        .await;
    assert!(
        ["pending", "running", "failed"].contains(&pending["status"].as_str().unwrap()),
        "{pending}"
    );
    // Plaid settles: the next pass completes and saves every line once.
    saas.plaid.mutating(false);
    wait_job(&books, &token, &job, Duration::from_secs(20)).await;
    let saved = lines(&books, &token, "unmatched").await;
    assert_eq!(saved.len(), 3, "{saved:?}");
    // The cursor was saved with the pass: a sync now pages once, imports
    // nothing again.
    let calls = saas.plaid.sync_calls();
    sync(&books, &token).await;
    assert_eq!(saas.plaid.sync_calls() - calls, 1);
    assert_eq!(lines(&books, &token, "unmatched").await.len(), 3);

    // An account that /accounts/get does not list, but the sync answer's
    // `accounts` does (only on the page of its line: each page lists the
    // accounts of its own lines): its lines are kept, and it is listed.
    saas.plaid
        .open_account(&item, "acc-new", "New savings", Some("USD"), None, false);
    saas.plaid.add(
        &item,
        "t-new",
        "acc-new",
        "-7.25",
        "2026-03-09",
        "TRANSFER IN",
    );
    saas.plaid
        .add(&item, "t-after", "acc-1", "1.00", "2026-03-09", "CARD");
    sync(&books, &token).await;
    let now = lines(&books, &token, "unmatched").await;
    let kept = by_plaid_id(&now, "t-new");
    assert_eq!(kept["amount"], "-7.25");
    let accounts = books.list("/api/bank/accounts", &token).await;
    let savings = accounts
        .iter()
        .find(|a| a["plaid_account_id"] == "acc-new")
        .unwrap_or_else(|| panic!("acc-new is not listed: {accounts:?}"));
    assert_eq!(savings["name"], "New savings");
    assert_eq!(kept["account_id"], savings["id"]);
    assert_eq!(saas.plaid.violations(), Vec::<String>::new());
}

async fn amounts_and_currencies_as_plaid_sends_them(store: Store) {
    let saas = FakeSaas::start().await;
    let (books, token, _) = start(store, &saas).await;
    let (item, _) = link(&books, &token, &saas).await;
    saas.plaid
        .open_account(&item, "acc-jpy", "Yen", Some("JPY"), None, true);
    saas.plaid
        .open_account(&item, "acc-btc", "Crypto", None, Some("BTC"), true);
    let jpy = json!({"iso_currency_code": "JPY"});
    let btc = json!({"iso_currency_code": null, "unofficial_currency_code": "BTC"});
    saas.plaid.add_with(
        &item,
        "yen",
        "acc-jpy",
        "1500.0",
        "2026-03-05",
        "KONBINI",
        jpy,
    );
    saas.plaid
        .add(&item, "inexact", "acc-1", "0.123", "2026-03-05", "FX FEE");
    saas.plaid.add_with(
        &item,
        "coin",
        "acc-btc",
        "0.00012",
        "2026-03-05",
        "BTC BUY",
        btc,
    );
    saas.plaid
        .add(&item, "zero", "acc-1", "0.0", "2026-03-05", "CARD CHECK");
    saas.plaid
        .add(&item, "usd", "acc-1", "12.5", "2026-03-05", "COFFEE");
    sync(&books, &token).await;

    // Exact amounts are booked as their currency has them.
    let unmatched = lines(&books, &token, "unmatched").await;
    assert_eq!(unmatched.len(), 2, "{unmatched:?}");
    let yen = by_plaid_id(&unmatched, "yen");
    assert_eq!(
        (yen["amount"].as_str(), yen["currency"].as_str()),
        (Some("1500"), Some("JPY"))
    );
    assert_eq!(by_plaid_id(&unmatched, "usd")["amount"], "12.50");

    // The others are set aside with the reason, Plaid's amount as sent.
    let review = lines(&books, &token, "review").await;
    let seen: Vec<(&str, &str, &str, &str)> = ["inexact", "coin", "zero"]
        .iter()
        .map(|id| {
            let line = by_plaid_id(&review, id);
            (
                *id,
                line["review_reason"].as_str().unwrap(),
                line["amount"].as_str().unwrap(),
                line["currency"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("inexact", "INEXACT_AMOUNT", "0.123", "USD"),
            ("coin", "UNOFFICIAL_CURRENCY", "0.00012", "BTC"),
            ("zero", "ZERO_AMOUNT", "0.00", "USD"),
        ]
    );
    assert_eq!(review.len(), 3);
    assert!(review.iter().all(|l| l["status"] == "review"));

    // The feed goes on: the cursor moved past them.
    saas.plaid
        .add(&item, "later", "acc-1", "3", "2026-03-06", "PARKING");
    sync(&books, &token).await;
    assert_eq!(
        by_plaid_id(&lines(&books, &token, "unmatched").await, "later")["amount"],
        "3.00"
    );

    // A line set aside cannot be booked; it can be dismissed, once.
    let inexact = by_plaid_id(&review, "inexact")["id"].clone();
    let (status, refused) = books
        .call(
            "POST",
            &format!("/api/bank/transactions/{inexact}/match"),
            Some(&token),
            Some(json!({"account": "5000"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["code"], "BANK_TRANSACTION_IN_REVIEW");
    let zero = by_plaid_id(&review, "zero")["id"].clone();
    for _ in 0..2 {
        let (status, dismissed) = books
            .call(
                "POST",
                &format!("/api/bank/transactions/{zero}/dismiss"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{dismissed}");
        assert_eq!(dismissed["status"], "dismissed");
        assert_eq!(dismissed["review_reason"], "ZERO_AMOUNT");
    }
    assert_eq!(lines(&books, &token, "review").await.len(), 2);
    let dismissed = lines(&books, &token, "dismissed").await;
    assert_eq!(dismissed.len(), 1);
    assert_eq!(dismissed[0]["plaid_transaction_id"], "zero");

    // A matched line is not dismissed; an unknown status is refused.
    let usd = by_plaid_id(&unmatched, "usd")["id"].clone();
    let (status, matched) = books
        .call(
            "POST",
            &format!("/api/bank/transactions/{usd}/match"),
            Some(&token),
            Some(json!({"account": "5000"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{matched}");
    let (status, refused) = books
        .call(
            "POST",
            &format!("/api/bank/transactions/{usd}/dismiss"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["code"], "BANK_TRANSACTION_MATCHED");
    let (status, refused) = books
        .call(
            "GET",
            "/api/bank/transactions?status=odd",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(saas.plaid.violations(), Vec::<String>::new());
}

async fn a_posted_transaction_replaces_its_pending_line(store: Store) {
    let saas = FakeSaas::start().await;
    let (books, token, _) = start(store, &saas).await;
    let (item, _) = link(&books, &token, &saas).await;
    let pending = json!({"pending": true});
    saas.plaid.add_with(
        &item,
        "p1",
        "acc-1",
        "-40.00",
        "2026-03-05",
        "DEPOSIT",
        pending.clone(),
    );
    saas.plaid.add_with(
        &item,
        "p2",
        "acc-1",
        "9.99",
        "2026-03-05",
        "STREAMING",
        pending,
    );
    sync(&books, &token).await;
    let before = lines(&books, &token, "unmatched").await;
    assert!(before.iter().all(|l| l["pending"] == true), "{before:?}");

    // p1 posts; Plaid reports the pending one's removal only later. p2
    // posts with its removal in the same answer (on another page).
    saas.plaid.set_page_size(1);
    saas.plaid.post_pending(&item, "p1", "t1", false);
    saas.plaid.post_pending(&item, "p2", "t2", true);
    sync(&books, &token).await;
    let after = lines(&books, &token, "unmatched").await;
    let mut ids: Vec<(&str, bool)> = after
        .iter()
        .map(|l| {
            (
                l["plaid_transaction_id"].as_str().unwrap(),
                l["pending"] == true,
            )
        })
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![("t1", false), ("t2", false)]);
    assert_eq!(by_plaid_id(&after, "t1")["amount"], "-40.00");

    // The late removal changes nothing.
    saas.plaid.remove(&item, "p1");
    sync(&books, &token).await;
    assert_eq!(lines(&books, &token, "unmatched").await.len(), 2);
    assert_eq!(saas.plaid.violations(), Vec::<String>::new());
}

/// Probes stay within what the providers allow per client, with one and
/// with three instances: Plaid allows 50 `/institutions/get` a minute.
/// Idle, an instance probes each provider every `PROVIDER_PROBE_INTERVAL_MS`
/// (30 s); a successful call of real traffic counts as a probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_stay_within_the_providers_limits() {
    use crate::support::saas::{STRIPE_KEY, WEBHOOK_SECRET};
    use crate::support::server::{Host, TestServer, base_vars, set};
    const PLAID_LIMIT_PER_MINUTE: f64 = 50.0;
    let window = Duration::from_secs(
        std::env::var("PROBE_WINDOW_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(12),
    );
    for instances in [1usize, 3] {
        // A fake of their own: only these instances' calls count.
        let saas = FakeSaas::start().await;
        let mut servers = Vec::new();
        for _ in 0..instances {
            let mut vars = base_vars();
            set(&mut vars, "STRIPE_SECRET_KEY", STRIPE_KEY);
            set(&mut vars, "STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET);
            set(&mut vars, "STRIPE_API_BASE", saas.base());
            set(&mut vars, "PLAID_CLIENT_ID", PLAID_CLIENT.0);
            set(&mut vars, "PLAID_SECRET", PLAID_CLIENT.1);
            set(&mut vars, "PLAID_API_BASE", saas.base());
            servers.push(TestServer::start(Host::Axum, vars).await);
        }
        for server in &servers {
            for provider in ["stripe", "plaid"] {
                server
                    .wait_for_dependency(provider, "connected", Duration::from_secs(5))
                    .await;
            }
        }
        let (plaid, stripe) = (saas.calls("/institutions/get"), saas.calls("/v1/balance"));
        let started = Instant::now();
        tokio::time::sleep(window).await;
        let elapsed = started.elapsed().as_secs_f64();
        let per_minute = |calls: usize| calls as f64 * 60.0 / elapsed;
        let plaid = per_minute(saas.calls("/institutions/get") - plaid);
        let stripe = per_minute(saas.calls("/v1/balance") - stripe);
        eprintln!(
            "figure: idle probes with {instances} instance(s) over {elapsed:.0} s: \
             Plaid {plaid:.1}/min, Stripe {stripe:.1}/min"
        );
        // At most one probe per instance and provider per 30 s interval
        // begun in the window, however the window falls.
        let intervals = (elapsed / 30.0).floor() + 1.0;
        let bound = instances as f64 * intervals * 60.0 / elapsed;
        assert!(
            plaid <= bound && plaid <= PLAID_LIMIT_PER_MINUTE,
            "Plaid {plaid}/min"
        );
        assert!(stripe <= bound, "Stripe {stripe}/min");
        for server in &servers {
            assert_eq!(
                server.health().await["dependencies"]["plaid"]["status"],
                "connected"
            );
        }
    }
}

/// The fake Plaid holds AccuBooks to its pinned API version: a request
/// without `Plaid-Version: 2020-09-14` is refused (and counted against the
/// test), one with it answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_plaid_refuses_requests_without_the_pinned_version() {
    let saas = FakeSaas::start().await;
    let body = json!({"client_id": PLAID_CLIENT.0, "secret": PLAID_CLIENT.1, "count": 1,
                      "offset": 0, "country_codes": ["US"]});
    let url = format!("{}/institutions/get", saas.base());
    let client = reqwest::Client::new();
    let unversioned = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(unversioned.status(), StatusCode::BAD_REQUEST);
    let refused: Value = unversioned.json().await.unwrap();
    assert_eq!(refused["error_code"], "INVALID_HEADERS");
    let versioned = client
        .post(&url)
        .header("Plaid-Version", accubooks_core::deps::PLAID_VERSION)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(versioned.status(), StatusCode::OK);
    let violations = saas.plaid.take_violations();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(violations[0].contains("Plaid-Version"), "{violations:?}");
}

/// Plaid's link flow (issue 23): Link tokens, update mode, items with their
/// status, removal, errors by their meaning, and Plaid's signed webhooks.
mod link_flow {
    use super::*;
    use crate::support::saas::PLAID_CLIENT;
    use crate::support::saas::plaid::{INSTITUTION, ItemFailure, webhooks};
    use crate::support::saas::schema::Schemas;

    on_every_store!(
        link_tokens_and_update_mode_keep_the_items_accounts_mappings_and_lines,
        removing_an_item_at_plaid_stops_its_sync_and_keeps_its_lines,
        plaid_webhooks_are_verified_then_sync_and_set_the_items_status,
    );

    async fn items(books: &Books, token: &str) -> Vec<Value> {
        let (status, items) = books
            .call("GET", "/api/bank/items", Some(token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{items}");
        items.as_array().unwrap().clone()
    }

    async fn link_token(books: &Books, token: &str, item: Value) -> (StatusCode, Value) {
        books
            .call(
                "POST",
                "/api/bank/link-token",
                Some(token),
                Some(json!({"item_id": item})),
            )
            .await
    }

    /// Asks for a sync and waits for its job to fail (`failed` or `dead`).
    async fn sync_failing(books: &Books, token: &str) -> Value {
        let (status, asked) = books
            .call("POST", "/api/bank/sync", Some(token), None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{asked}");
        let started = Instant::now();
        loop {
            let (_, job) = books
                .call(
                    "GET",
                    &format!("/api/jobs/{}", asked["job_id"]),
                    Some(token),
                    None,
                )
                .await;
            if job["status"] == "failed" || job["status"] == "dead" {
                return job;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "{job}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn post_webhook(
        books: &Books,
        body: &[u8],
        header: Option<String>,
    ) -> (StatusCode, Value) {
        let mut request = books
            .server
            .client
            .post(format!("{}/api/webhooks/plaid", books.server.base))
            .header("Content-Type", "application/json")
            .body(body.to_vec());
        if let Some(header) = header {
            request = request.header("Plaid-Verification", header);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// A webhook Plaid sends, signed now.
    async fn plaid_sends(books: &Books, saas: &FakeSaas, body: Value) -> Value {
        let raw = serde_json::to_vec(&body).unwrap();
        let header = saas
            .plaid
            .sign_webhook(&raw, chrono::Utc::now().timestamp());
        let (status, receipt) = post_webhook(books, &raw, Some(header)).await;
        assert_eq!(status, StatusCode::OK, "{receipt}");
        receipt
    }

    async fn link_tokens_and_update_mode_keep_the_items_accounts_mappings_and_lines(store: Store) {
        let saas = FakeSaas::start().await;
        let (books, token, organization) = start(store, &saas).await;

        // A Link token for a new bank: made server side with the products,
        // the organization as Plaid's user and the webhook URL.
        let (status, issued) = link_token(&books, &token, Value::Null).await;
        assert_eq!(status, StatusCode::CREATED, "{issued}");
        assert!(
            issued["link_token"].as_str().unwrap().starts_with("link-"),
            "{issued}"
        );
        assert!(issued["expiration"].is_string(), "{issued}");
        let asked = saas.plaid.link_token_requests();
        assert_eq!(asked[0]["user"]["client_user_id"], organization.as_str());
        assert_eq!(asked[0]["products"], json!(["transactions"]));
        assert_eq!(asked[0]["webhook"], WEBHOOK_URL);
        assert!(asked[0].get("access_token").is_none(), "{}", asked[0]);

        let (item, linked) = link(&books, &token, &saas).await;
        let account = linked["accounts"][0]["id"].clone();
        saas.plaid
            .add(&item, "t1", "acc-1", "-10.00", "2026-03-05", "DEPOSIT");
        sync(&books, &token).await;
        let listed = items(&books, &token).await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["id"], item);
        assert_eq!(listed[0]["institution"], INSTITUTION);
        assert_eq!(listed[0]["status"], "active");
        assert!(listed[0]["last_synced_at"].is_string(), "{listed:?}");

        // The bank asks the user to log in again: the sync ends (dead, not
        // retried) and the item says what it needs.
        saas.plaid.revoke(&item);
        let job = sync_failing(&books, &token).await;
        assert_eq!(job["status"], "dead", "{job}");
        assert_eq!(job["error"]["code"], "BANK_ITEM_LOGIN_REQUIRED");
        let listed = items(&books, &token).await;
        assert_eq!(listed[0]["status"], "login_required", "{listed:?}");
        // Later syncs leave the item alone until the user is back.
        let calls = saas.plaid.sync_calls();
        sync(&books, &token).await;
        assert_eq!(saas.plaid.sync_calls(), calls);

        // Linking the same bank login again would import its history twice:
        // refused, pointing to update mode, and Plaid's new item removed.
        let (public, duplicate) =
            saas.plaid
                .issue_public_token(&[("acc-1-again", "Checking", "0001")]);
        let (status, refused) = books
            .call(
                "POST",
                "/api/bank/link",
                Some(&token),
                Some(json!({"public_token": public})),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{refused}");
        assert_eq!(refused["code"], "BANK_ITEM_ALREADY_LINKED");
        let message = refused["error"].as_str().unwrap();
        assert!(
            message.contains(&item) && message.contains("update mode"),
            "{message}"
        );
        assert!(saas.plaid.is_removed(&duplicate));
        assert_eq!(items(&books, &token).await.len(), 1);

        // Update mode: a Link token made with the item's access token, which
        // never reaches the client.
        let (status, issued) = link_token(&books, &token, json!(item)).await;
        assert_eq!(status, StatusCode::CREATED, "{issued}");
        let asked = saas.plaid.link_token_requests();
        let update = asked.last().unwrap();
        assert_eq!(update["access_token"], saas.plaid.access_token(&item));
        assert!(update.get("products").is_none(), "{update}");
        assert!(!issued.to_string().contains(&saas.plaid.access_token(&item)));
        // Before the user finished, Plaid still refuses the item.
        let reconnected = format!("/api/bank/items/{item}/reconnected");
        let (status, refused) = books.call("POST", &reconnected, Some(&token), None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{refused}");
        assert_eq!(refused["code"], "BANK_ITEM_LOGIN_REQUIRED");

        // The user logged in again in Link: no public token to exchange; the
        // item is active again with its accounts, mapping and lines.
        saas.plaid.fail(&item, None);
        saas.plaid
            .add(&item, "t2", "acc-1", "-20.00", "2026-03-06", "DEPOSIT 2");
        let (status, back) = books.call("POST", &reconnected, Some(&token), None).await;
        assert_eq!(status, StatusCode::OK, "{back}");
        assert_eq!(back["status"], "active");
        assert_eq!(back["status_code"], Value::Null);
        sync(&books, &token).await;
        let (_, accounts) = books
            .call("GET", "/api/bank/accounts", Some(&token), None)
            .await;
        assert_eq!(accounts.as_array().unwrap().len(), 1, "{accounts}");
        assert_eq!(accounts[0]["id"], account);
        assert_eq!(accounts[0]["ledger_account"], "1000");
        let unmatched = lines(&books, &token, "unmatched").await;
        assert_eq!(unmatched.len(), 2, "{unmatched:?}");
        assert!(unmatched.iter().all(|l| l["account_id"] == account));
        assert_eq!(items(&books, &token).await[0]["status"], "active");

        // Unknown items, and another organization's.
        let (status, _) = link_token(&books, &token, json!("item-unknown")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let stranger = books.register("stranger-link@other.test", "USD").await;
        let (status, _) = link_token(&books, &stranger, json!(item)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = books
            .call("POST", &reconnected, Some(&stranger), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(items(&books, &stranger).await.is_empty());
    }

    async fn removing_an_item_at_plaid_stops_its_sync_and_keeps_its_lines(store: Store) {
        let saas = FakeSaas::start().await;
        let (books, token, _) = start(store, &saas).await;
        let (item, _) = link(&books, &token, &saas).await;
        saas.plaid
            .add(&item, "t1", "acc-1", "-10.00", "2026-03-05", "DEPOSIT");
        saas.plaid
            .add(&item, "t2", "acc-1", "12.00", "2026-03-06", "COFFEE");
        sync(&books, &token).await;
        let coffee = by_plaid_id(&lines(&books, &token, "unmatched").await, "t2")["id"].clone();
        let (status, matched) = books
            .call(
                "POST",
                &format!("/api/bank/transactions/{coffee}/match"),
                Some(&token),
                Some(json!({"account": "5000"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{matched}");

        let path = format!("/api/bank/items/{item}");
        let stranger = books.register("stranger-remove@other.test", "USD").await;
        let (status, _) = books.call("DELETE", &path, Some(&stranger), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(!saas.plaid.is_removed(&item));

        let (status, body) = books.call("DELETE", &path, Some(&token), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        assert!(saas.plaid.is_removed(&item));
        assert!(items(&books, &token).await.is_empty());
        // Its lines stay, the matched one with its posting.
        let kept = lines(&books, &token, "matched").await;
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(kept[0]["entry_id"].is_i64(), "{kept:?}");
        assert_eq!(lines(&books, &token, "unmatched").await.len(), 1);
        // Nothing is left to sync; the item is gone for every route.
        let (status, refused) = books
            .call("POST", "/api/bank/sync", Some(&token), None)
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{refused}");
        assert_eq!(refused["code"], "NO_BANK_ITEMS");
        let (status, _) = books.call("DELETE", &path, Some(&token), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = link_token(&books, &token, json!(item)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    async fn plaid_webhooks_are_verified_then_sync_and_set_the_items_status(store: Store) {
        let saas = FakeSaas::start().await;
        let (books, token, _) = start(store, &saas).await;
        let (item, _) = link(&books, &token, &saas).await;
        saas.plaid
            .add(&item, "t1", "acc-1", "-10.00", "2026-03-05", "DEPOSIT");
        let updates = webhooks::sync_updates_available(&item);

        // Refused: no header, another signer, another body, too old, too new.
        let raw = serde_json::to_vec(&updates).unwrap();
        let now = chrono::Utc::now().timestamp();
        let other = br#"{"webhook_type":"TRANSACTIONS","webhook_code":"SYNC_UPDATES_AVAILABLE","item_id":"x"}"#;
        for header in [
            None,
            Some("not-a-jwt".to_owned()),
            Some(saas.plaid.forge_webhook(&raw, now)),
            Some(saas.plaid.sign_webhook(other, now)),
            // Five minutes either way is the bound; ten seconds more leave
            // room for a slow machine between signing and checking.
            Some(saas.plaid.sign_webhook(&raw, now - 310)),
            Some(saas.plaid.sign_webhook(&raw, now + 310)),
        ] {
            let (status, refused) = post_webhook(&books, &raw, header.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{header:?}: {refused}");
            assert_eq!(refused["code"], "INVALID_SIGNATURE");
        }
        assert!(lines(&books, &token, "unmatched").await.is_empty());
        // A body past the bound is refused before it is read: the answer
        // comes to a head announcing 70 KB whose body never follows.
        let head = format!(
            "POST /api/webhooks/plaid HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            70 * 1024
        );
        let answer = books.server.raw_exchange(head.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

        // Plaid's SYNC_UPDATES_AVAILABLE starts a sync.
        let receipt = plaid_sends(&books, &saas, updates.clone()).await;
        assert_eq!(receipt["outcome"], "sync_requested", "{receipt}");
        wait_job(&books, &token, &receipt["job_id"], Duration::from_secs(20)).await;
        assert_eq!(lines(&books, &token, "unmatched").await.len(), 1);
        // The key is fetched once and kept.
        let receipt = plaid_sends(&books, &saas, updates).await;
        assert_eq!(saas.plaid.key_fetches(), 1);
        wait_job(&books, &token, &receipt["job_id"], Duration::from_secs(20)).await;

        // ITEM webhooks set the item's status.
        let receipt = plaid_sends(
            &books,
            &saas,
            webhooks::error(&item, ItemFailure::LoginRequired),
        )
        .await;
        assert_eq!(receipt["outcome"], "status_set", "{receipt}");
        let listed = items(&books, &token).await;
        assert_eq!(listed[0]["status"], "login_required", "{listed:?}");
        assert_eq!(listed[0]["status_code"], "ITEM_LOGIN_REQUIRED");
        plaid_sends(&books, &saas, webhooks::login_repaired(&item)).await;
        assert_eq!(items(&books, &token).await[0]["status"], "active");
        // The bank being down is no news for the item.
        let receipt = plaid_sends(
            &books,
            &saas,
            webhooks::error(&item, ItemFailure::InstitutionDown),
        )
        .await;
        assert_eq!(receipt["outcome"], "ignored", "{receipt}");
        assert_eq!(items(&books, &token).await[0]["status"], "active");
        for (hook, code) in [
            (webhooks::pending_expiration(&item), "PENDING_EXPIRATION"),
            (webhooks::pending_disconnect(&item), "PENDING_DISCONNECT"),
        ] {
            plaid_sends(&books, &saas, hook).await;
            let listed = items(&books, &token).await;
            assert_eq!(listed[0]["status"], "login_required", "{listed:?}");
            assert_eq!(listed[0]["status_code"], code);
        }
        // Until it expires the item still works, so it still syncs.
        saas.plaid
            .add(&item, "t2", "acc-1", "-5.00", "2026-03-07", "DEPOSIT 2");
        sync(&books, &token).await;
        assert_eq!(lines(&books, &token, "unmatched").await.len(), 2);

        // About an item this server does not hold: acknowledged.
        let receipt = plaid_sends(&books, &saas, webhooks::login_repaired("item-elsewhere")).await;
        assert_eq!(receipt["outcome"], "unknown_item", "{receipt}");
    }

    /// Plaid's errors by their meaning: what passes (the bank down, the
    /// first pull not ready) is retried with backoff and the item stays
    /// active; what needs the user is covered above.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plaid_errors_that_pass_are_retried_and_leave_the_item_active() {
        let saas = FakeSaas::start().await;
        let (books, token, _) = start(Store::Sqlite, &saas).await;
        let (item, _) = link(&books, &token, &saas).await;
        for (n, (failure, code)) in [
            (ItemFailure::InstitutionDown, "BANK_INSTITUTION_DOWN"),
            (ItemFailure::ProductNotReady, "BANK_PRODUCT_NOT_READY"),
        ]
        .into_iter()
        .enumerate()
        {
            saas.plaid.add(
                &item,
                &format!("t{n}"),
                "acc-1",
                "-10.00",
                "2026-03-05",
                "DEPOSIT",
            );
            saas.plaid.fail(&item, Some(failure));
            let job = sync_failing(&books, &token).await;
            assert_eq!(job["status"], "failed", "{job}");
            assert_eq!(job["error"], json!({"code": code, "kind": "temporary"}));
            // Retried with backoff while it lasts.
            let started = Instant::now();
            loop {
                let (_, now) = books
                    .call(
                        "GET",
                        &format!("/api/jobs/{}", job["id"]),
                        Some(&token),
                        None,
                    )
                    .await;
                if now["attempts"].as_u64().unwrap() >= 3 {
                    assert_ne!(now["status"], "dead", "{now}");
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(10), "{now}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let listed = items(&books, &token).await;
            assert_eq!(listed[0]["status"], "active", "{listed:?}");
            assert_eq!(
                books.server.health().await["dependencies"]["plaid"]["status"],
                "connected"
            );
            // Once it passes, the same job completes.
            saas.plaid.fail(&item, None);
            wait_job(&books, &token, &job["id"], Duration::from_secs(20)).await;
            assert_eq!(lines(&books, &token, "unmatched").await.len(), n + 1);
        }
    }

    /// The fake Plaid's answers for the link flow, the requests AccuBooks
    /// sends for it and the webhooks the tests send, checked against Plaid's
    /// published schemas (a trimmed copy, `schemas/plaid-link.json`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_fake_plaids_link_flow_speaks_plaids_schemas() {
        let schemas = Schemas::plaid_link();
        let saas = FakeSaas::start().await;
        let (books, token, _) = start(Store::Sqlite, &saas).await;
        let (item, _) = link(&books, &token, &saas).await;
        for asked in [Value::Null, json!(item)] {
            let (status, issued) = link_token(&books, &token, asked).await;
            assert_eq!(status, StatusCode::CREATED, "{issued}");
        }
        let client = reqwest::Client::new();
        let call = |path: &'static str, mut body: Value| {
            body["client_id"] = json!(PLAID_CLIENT.0);
            body["secret"] = json!(PLAID_CLIENT.1);
            let request = client
                .post(format!("{}{path}", saas.base()))
                .header("Plaid-Version", accubooks_core::deps::PLAID_VERSION)
                .json(&body);
            async move {
                let response = request.send().await.unwrap();
                (response.status(), response.json::<Value>().await.unwrap())
            }
        };
        // What AccuBooks asked (a new item, then update mode), and answers.
        let requests = saas.plaid.link_token_requests();
        assert_eq!(requests.len(), 2);
        for request in requests {
            schemas.assert_valid(&schemas.name("requests", "/link/token/create"), &request);
            let (status, answer) = call("/link/token/create", request).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            schemas.assert_valid(&schemas.name("answers", "/link/token/create"), &answer);
        }
        let access = json!({"access_token": saas.plaid.access_token(&item)});
        let (status, answer) = call("/accounts/get", access.clone()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        schemas.assert_valid(&schemas.name("answers", "/accounts/get"), &answer);
        let key = json!({"key_id": crate::support::saas::plaid::WEBHOOK_KEY_ID});
        schemas.assert_valid(
            &schemas.name("requests", "/webhook_verification_key/get"),
            &key,
        );
        let (status, answer) = call("/webhook_verification_key/get", key).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        schemas.assert_valid(
            &schemas.name("answers", "/webhook_verification_key/get"),
            &answer,
        );
        // Plaid's error objects, for each failure the fake can put an item in.
        let error = schemas.name("answers", "error");
        for failure in [
            ItemFailure::LoginRequired,
            ItemFailure::InstitutionDown,
            ItemFailure::ProductNotReady,
        ] {
            saas.plaid.fail(&item, Some(failure));
            let (status, answer) = call("/accounts/get", access.clone()).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            schemas.assert_valid(&error, &answer);
            let hook = webhooks::error(&item, failure);
            schemas.assert_valid(&schemas.name("webhooks", "ITEM.ERROR"), &hook);
        }
        let (status, answer) =
            call("/webhook_verification_key/get", json!({"key_id": "nope"})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        schemas.assert_valid(&error, &answer);
        schemas.assert_valid(&schemas.name("requests", "/item/remove"), &access);
        let (status, answer) = call("/item/remove", access.clone()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        schemas.assert_valid(&schemas.name("answers", "/item/remove"), &answer);
        let (status, answer) = call("/item/remove", access).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        schemas.assert_valid(&error, &answer);
        // The webhooks the tests send.
        for (kind, hook) in [
            (
                "TRANSACTIONS.SYNC_UPDATES_AVAILABLE",
                webhooks::sync_updates_available(&item),
            ),
            ("ITEM.LOGIN_REPAIRED", webhooks::login_repaired(&item)),
            (
                "ITEM.PENDING_EXPIRATION",
                webhooks::pending_expiration(&item),
            ),
            (
                "ITEM.PENDING_DISCONNECT",
                webhooks::pending_disconnect(&item),
            ),
        ] {
            schemas.assert_valid(&schemas.name("webhooks", kind), &hook);
        }
    }
}

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

async fn start(store: Store, saas: &FakeSaas) -> (Books, String, String) {
    let books = Books::start_with(
        store,
        &[
            ("PLAID_CLIENT_ID", PLAID_CLIENT.0.to_owned()),
            ("PLAID_SECRET", PLAID_CLIENT.1.to_owned()),
            ("PLAID_API_BASE", saas.base()),
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

    // Categorise money out: posted once between 1000 and 5000.
    let out = by_plaid_id(&unmatched, "out-1");
    let path = format!("/api/bank/transactions/{}/match", out["id"]);
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

//! Closing a period (issue 24, contract §5): the lock date refuses every
//! kind of change dated in the locked period, reopening is the owner's and
//! shows in the settings' history, and a year-end close moves revenue and
//! expenses into retained earnings, to the cent. Every case through a real
//! server on PostgreSQL (row-level security on) and SQLite.

use http::StatusCode;
use serde_json::{Value, json};

use crate::books::{Books, Store};

fn line(account: &str, side: &str, amount: &str) -> Value {
    json!({"account": account, side: amount})
}

/// `amount` from `credit` to `debit`: the lines of an entry.
fn moved(debit: &str, credit: &str, amount: &str) -> Value {
    json!([line(debit, "debit", amount), line(credit, "credit", amount)])
}

fn entry(date: &str, debit: &str, credit: &str, amount: &str) -> Value {
    json!({"date": date, "memo": format!("{debit} against {credit}"),
           "lines": moved(debit, credit, amount)})
}

/// Asserts a 409 with `code`.
fn refused(answer: (StatusCode, Value), code: &str, what: &str) {
    let (status, body) = answer;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some(code)),
        "{what}: {body}"
    );
}

async fn lock(books: &Books, token: &str, date: Value) -> (StatusCode, Value) {
    books
        .call(
            "PUT",
            "/api/settings",
            Some(token),
            Some(json!({ "lock_date": date })),
        )
        .await
}

async fn entry_count(books: &Books, token: &str) -> usize {
    books
        .list("/api/journal-entries?limit=500", token)
        .await
        .len()
}

async fn a_locked_period_refuses_each_kind_of_change(store: Store) {
    let books = Books::start(store).await;
    let token = books.register("locks@acme.test", "USD").await;
    let (status, customer) = books
        .call(
            "POST",
            "/api/customers",
            Some(&token),
            Some(json!({"name": "Globex"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    let draft = async || {
        let (status, invoice) = books
            .call(
                "POST",
                "/api/invoices",
                Some(&token),
                Some(json!({"customer_id": customer["id"], "due_date": "2026-06-30",
                        "lines": [{"description": "Audit", "quantity": "1", "unit_price": "100.00"}]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{invoice}");
        invoice["id"].as_i64().unwrap()
    };
    let act = async |id: i64, action: &str, body: Value| {
        books
            .call(
                "POST",
                &format!("/api/invoices/{id}/{action}"),
                Some(&token),
                Some(body),
            )
            .await
    };
    let issued = draft().await;
    let (status, body) = act(issued, "issue", json!({"date": "2026-03-10"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let still_draft = draft().await;
    let sale = books
        .post(&token, "2026-03-15", moved("1000", "4000", "50.00"))
        .await;

    // Only an owner sets the lock date.
    let accountant = books
        .member_token(&token, "clerk@acme.test", "accountant")
        .await;
    let (status, _) = lock(&books, &accountant, json!("2026-03-31")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, settings) = lock(&books, &token, json!("2026-03-31")).await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["lock_date"], "2026-03-31");
    assert_eq!(settings["timezone"], "UTC", "other settings are kept");

    // Accounts opened after the lock date was set are locked too.
    for (code, kind) in [("1010", "asset"), ("4010", "revenue")] {
        books
            .create_account(&token, code, "Opened later", kind)
            .await;
    }
    let before = books.trial_balance(&token, "2026-12-31").await;
    let entries_before = entry_count(&books, &token).await;
    let post = async |body: Value| {
        books
            .call("POST", "/api/journal-entries", Some(&token), Some(body))
            .await
    };
    refused(
        post(entry("2026-03-31", "1000", "4000", "1.00")).await,
        "PERIOD_LOCKED",
        "an entry on the lock date",
    );
    refused(
        books
            .call(
                "POST",
                "/api/journal-entries/batch",
                Some(&token),
                Some(
                    json!({"entries": [entry("2026-04-02", "1000", "4000", "2.00"),
                                        entry("2026-01-05", "5000", "1000", "3.00")]}),
                ),
            )
            .await,
        "PERIOD_LOCKED",
        "a batch with one entry in the period",
    );
    refused(
        books
            .call(
                "POST",
                &format!("/api/journal-entries/{sale}/reverse"),
                Some(&token),
                None,
            )
            .await,
        "PERIOD_LOCKED",
        "a reversal on the entry's own date",
    );
    refused(
        act(still_draft, "issue", json!({"date": "2026-03-30"})).await,
        "PERIOD_LOCKED",
        "an issue",
    );
    refused(
        act(
            issued,
            "payments",
            json!({"amount": "10.00", "date": "2026-03-31"}),
        )
        .await,
        "PERIOD_LOCKED",
        "a payment",
    );
    refused(
        act(issued, "void", json!({"date": "2026-03-20"})).await,
        "PERIOD_LOCKED",
        "a void",
    );
    refused(
        act(
            issued,
            "credit-notes",
            json!({"date": "2026-03-25",
                   "lines": [{"description": "Discount", "quantity": "1", "unit_price": "5.00"}]}),
        )
        .await,
        "PERIOD_LOCKED",
        "a credit note",
    );
    let (status, employee) = books
        .call(
            "POST",
            "/api/employees",
            Some(&token),
            Some(
                json!({"name": "Ada", "pay": {"type": "salary", "annual": "60000.00"},
                        "frequency": "monthly", "start_date": "2026-01-01"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{employee}");
    refused(
        books
            .call(
                "POST",
                "/api/payroll-runs",
                Some(&token),
                Some(
                    json!({"period_start": "2026-03-01", "period_end": "2026-03-31",
                            "pay_date": "2026-03-31", "hours": {}}),
                ),
            )
            .await,
        "PERIOD_LOCKED",
        "a pay run paid in the period",
    );
    refused(
        post(entry("2026-03-31", "1010", "4010", "1.00")).await,
        "PERIOD_LOCKED",
        "an entry between accounts opened after the lock",
    );
    // Nothing of any of them was written.
    assert_eq!(books.trial_balance(&token, "2026-12-31").await, before);
    assert_eq!(entry_count(&books, &token).await, entries_before);
    let (_, draft_now) = books
        .call(
            "GET",
            &format!("/api/invoices/{still_draft}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(draft_now["status"], "draft");

    // After the lock date everything goes through, a reversal of a locked
    // entry too.
    let (status, body) = post(entry("2026-04-01", "1000", "4000", "1.00")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = books
        .call(
            "POST",
            &format!("/api/journal-entries/{sale}/reverse"),
            Some(&token),
            Some(json!({"date": "2026-04-01"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Reopening (moving the date back) lets the day through again.
    let (status, settings) = lock(&books, &token, json!("2026-02-28")).await;
    assert_eq!(
        (status, &settings["lock_date"]),
        (StatusCode::OK, &json!("2026-02-28"))
    );
    let (status, body) = act(still_draft, "issue", json!({"date": "2026-03-30"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, settings) = lock(&books, &token, Value::Null).await;
    assert_eq!(
        (status, &settings["lock_date"]),
        (StatusCode::OK, &Value::Null)
    );
    // Leaving the field out keeps it.
    let (status, settings) = books
        .call(
            "PUT",
            "/api/settings",
            Some(&token),
            Some(json!({"timezone": "Europe/Paris"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(settings["lock_date"], Value::Null);

    let history = books.list("/api/settings/history", &accountant).await;
    let steps: Vec<(Value, Value, Value)> = history
        .iter()
        .map(|c| (c["from"].clone(), c["to"].clone(), c["reason"].clone()))
        .collect();
    assert_eq!(
        steps,
        vec![
            (Value::Null, json!("2026-03-31"), json!("locked")),
            (json!("2026-03-31"), json!("2026-02-28"), json!("reopened")),
            (json!("2026-02-28"), Value::Null, json!("unlocked")),
        ]
    );
    let owner = &history[0]["changed_by"];
    assert!(owner.as_str().is_some_and(|id| id.len() == 36), "{owner}");
    assert!(history.iter().all(|c| &c["changed_by"] == owner));
}

/// Revenue 1,234.56, returns 34.56 and expenses 400.10 in 2025 close into
/// retained earnings as a profit of 799.90.
async fn a_year_end_close_moves_the_result_into_retained_earnings(store: Store) {
    let books = Books::start(store).await;
    let token = books.register("close@acme.test", "USD").await;
    for (date, debit, credit, amount) in [
        ("2025-03-01", "1000", "4000", "1234.56"),
        ("2025-06-30", "4900", "1000", "34.56"),
        ("2025-12-31", "5000", "1000", "400.10"),
        ("2026-01-15", "1000", "4000", "100.00"),
    ] {
        books.post(&token, date, moved(debit, credit, amount)).await;
    }
    let statement = async |from: &str, to: &str| {
        let (status, body) = books
            .call(
                "GET",
                &format!("/api/reports/income-statement?from={from}&to={to}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    };
    let year_2025 = statement("2025-01-01", "2025-12-31").await;
    assert_eq!(year_2025["totals"][0]["net_income"], "799.90");

    let viewer = books.member_token(&token, "view@acme.test", "viewer").await;
    let close = async |token: &str, through: &str| {
        books
            .call(
                "POST",
                "/api/periods/close",
                Some(token),
                Some(json!({ "through": through })),
            )
            .await
    };
    let (status, _) = close(&viewer, "2025-12-31").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, closing) = close(&token, "2025-12-31").await;
    assert_eq!(status, StatusCode::CREATED, "{closing}");
    assert_eq!(
        (&closing["kind"], &closing["date"]),
        (&json!("closing"), &json!("2025-12-31"))
    );
    let lines: Vec<(String, Value, Value)> = closing["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["account"].as_str().unwrap().to_owned(),
                l["debit"].clone(),
                l["credit"].clone(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            ("4000".into(), json!("1234.56"), Value::Null),
            ("4900".into(), Value::Null, json!("34.56")),
            ("5000".into(), Value::Null, json!("400.10")),
            ("3900".into(), Value::Null, json!("799.90")),
        ]
    );
    let (_, settings) = books.call("GET", "/api/settings", Some(&token), None).await;
    assert_eq!(settings["lock_date"], "2025-12-31");
    let history = books.list("/api/settings/history", &token).await;
    assert_eq!(history.last().unwrap()["reason"], "closed");

    // The closed year: revenue and expenses are zero, retained earnings
    // hold the result, the books still balance, and the year's income
    // statement is what it was (closing entries are left out of it).
    let trial = books.trial_balance(&token, "2025-12-31").await;
    let side = |code: &str| {
        let row = trial["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["code"] == code)
            .cloned()
            .unwrap_or(Value::Null);
        (row["debit"].clone(), row["credit"].clone())
    };
    for code in ["4000", "4900", "5000"] {
        assert_eq!(side(code), (json!("0.00"), json!("0.00")), "{code}");
    }
    assert_eq!(side("3900"), (json!("0.00"), json!("799.90")));
    assert_eq!(trial["total_debit"], trial["total_credit"], "{trial}");
    let (status, sheet) = books
        .call(
            "GET",
            "/api/reports/balance-sheet?as_of=2025-12-31",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{sheet}");
    let totals = &sheet["totals"][0];
    assert_eq!(
        totals["assets"], totals["liabilities_and_equity"],
        "{sheet}"
    );
    assert_eq!(totals["current_earnings"], "0.00", "{sheet}");
    assert_eq!(statement("2025-01-01", "2025-12-31").await, year_2025);
    // The next year starts from zero.
    let year_2026 = statement("2026-01-01", "2026-12-31").await;
    assert_eq!(year_2026["totals"][0]["net_income"], "100.00");

    // Closed twice, posted into, reversed: refused.
    refused(
        close(&token, "2025-12-31").await,
        "PERIOD_ALREADY_CLOSED",
        "a second close",
    );
    refused(
        books
            .call(
                "POST",
                "/api/journal-entries",
                Some(&token),
                Some(entry("2025-12-31", "5000", "1000", "1.00")),
            )
            .await,
        "PERIOD_LOCKED",
        "an entry in the closed year",
    );
    refused(
        books
            .call(
                "POST",
                &format!("/api/journal-entries/{}/reverse", closing["id"]),
                Some(&token),
                Some(json!({"date": "2026-02-01"})),
            )
            .await,
        "CANNOT_REVERSE_CLOSING",
        "a reversal of the closing entry",
    );

    // Reopened, corrected and closed again: the new close moves only the
    // correction.
    let (status, _) = lock(&books, &token, json!("2025-11-30")).await;
    assert_eq!(status, StatusCode::OK);
    books
        .post(&token, "2025-12-20", moved("5000", "1000", "10.00"))
        .await;
    let (status, again) = close(&token, "2025-12-31").await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    let lines: Vec<(Value, Value, Value)> = again["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["account"].clone(),
                l["debit"].clone(),
                l["credit"].clone(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            (json!("5000"), Value::Null, json!("10.00")),
            (json!("3900"), json!("10.00"), Value::Null),
        ]
    );
    assert_eq!(books.balance(&token, "3900").await, "-789.90");
}

/// The lock date holds from the moment its change is answered: postings
/// racing it either committed before (and count in the balance read right
/// after the answer) or are refused; none commits under it afterwards.
async fn no_posting_commits_under_a_lock_date_once_it_is_answered(store: Store) {
    let books = Books::start(store).await;
    let token = books.register("race@acme.test", "USD").await;
    let day = "2026-05-31";
    let stop = std::sync::atomic::AtomicBool::new(false);
    let posters = (0..6).map(|_| async {
        let (mut posted, mut refused) = (0, 0);
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let (status, body) = books
                .call(
                    "POST",
                    "/api/journal-entries",
                    Some(&token),
                    Some(entry(day, "1000", "4000", "1.00")),
                )
                .await;
            match status {
                StatusCode::CREATED => posted += 1,
                StatusCode::CONFLICT if body["code"] == "PERIOD_LOCKED" => refused += 1,
                other => panic!("{other}: {body}"),
            }
        }
        (posted, refused)
    });
    let balance = async || {
        let (status, body) = books
            .call(
                "GET",
                &format!("/api/accounts/1000/balance?as_of={day}"),
                Some(&token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["balance"].as_str().unwrap().to_owned()
    };
    let locker = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let (status, body) = lock(&books, &token, json!(day)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let at_lock = balance().await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        at_lock
    };
    let (at_lock, counts) = tokio::join!(locker, futures::future::join_all(posters));
    let posted: i64 = counts.iter().map(|c| c.0).sum();
    let refused: i64 = counts.iter().map(|c| c.1).sum();
    assert!(posted > 0 && refused > 0, "{counts:?}");
    assert_eq!(
        balance().await,
        at_lock,
        "a posting committed under the lock"
    );
    assert_eq!(at_lock, format!("{posted}.00"));
}

on_every_store!(
    no_posting_commits_under_a_lock_date_once_it_is_answered,
    a_locked_period_refuses_each_kind_of_change,
    a_year_end_close_moves_the_result_into_retained_earnings,
);

//! Customers, invoices, payments, credit notes and AR aging over HTTP, on
//! PostgreSQL and on SQLite, through the axum and the warp host.

use http::StatusCode;
use serde_json::{Value, json};

use crate::books::{Books, Door};

async fn setup(door: Door) -> (Books, String, i64) {
    let books = Books::start(door).await;
    let token = books
        .register(&format!("inv-{}@acme.test", uuid::Uuid::new_v4()), "USD")
        .await;
    let (status, customer) = books
        .call(
            "POST",
            "/api/customers",
            Some(&token),
            Some(json!({"name": "Globex", "email": "ap@globex.test"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{customer}");
    let id = customer["id"].as_i64().unwrap();
    (books, token, id)
}

async fn invoice(books: &Books, token: &str, customer: i64, due: &str, lines: Value) -> Value {
    let (status, invoice) = books
        .call(
            "POST",
            "/api/invoices",
            Some(token),
            Some(json!({"customer_id": customer, "due_date": due, "lines": lines})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invoice}");
    invoice
}

async fn act(
    books: &Books,
    token: &str,
    id: &Value,
    action: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    books
        .call(
            "POST",
            &format!("/api/invoices/{id}/{action}"),
            Some(token),
            body,
        )
        .await
}

on_every_door!(
    an_invoice_goes_from_draft_to_paid_and_posts_each_step,
    voiding_reverses_an_unpaid_invoice,
    credit_notes_reduce_what_is_owed,
    document_rounding_is_an_organization_setting,
    ar_aging_buckets_by_days_past_due,
    invoices_are_private_to_their_organization,
    concurrent_retries_with_one_key_write_once,
    concurrent_credit_notes_for_the_whole_amount_issue_one,
);

async fn an_invoice_goes_from_draft_to_paid_and_posts_each_step(door: Door) {
    let (books, token, customer) = setup(door).await;
    let draft = invoice(
        &books,
        &token,
        customer,
        "2026-02-28",
        json!([
            {"description": "Widgets", "quantity": "2.5", "unit_price": "19.99", "tax_rate": "0.0825"},
            {"description": "Support", "quantity": "1", "unit_price": "100.00"},
        ]),
    )
    .await;
    assert_eq!(draft["status"], "draft");
    // 2.5 × 19.99 = 49.975 → 49.98, tax 4.12; support 100.00, no tax.
    assert_eq!(
        (
            draft["subtotal"].as_str(),
            draft["tax"].as_str(),
            draft["total"].as_str()
        ),
        (Some("149.98"), Some("4.12"), Some("154.10"))
    );
    assert_eq!(draft["lines"][0]["amount"], "49.98");
    assert_eq!(
        books.balance(&token, "1100").await,
        "0.00",
        "a draft posts nothing"
    );

    let id = &draft["id"];
    let (status, issued) = act(
        &books,
        &token,
        id,
        "issue",
        Some(json!({"date": "2026-02-01"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{issued}");
    assert_eq!(issued["status"], "issued");
    assert_eq!(books.balance(&token, "1100").await, "154.10");
    assert_eq!(books.balance(&token, "4000").await, "-149.98");
    assert_eq!(books.balance(&token, "2100").await, "-4.12");
    // The invoice's total equals its posting to the cent.
    let (_, entry) = books
        .call(
            "GET",
            &format!("/api/journal-entries/{}", issued["issue_entry_id"]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        entry["lines"][0],
        json!({"account": "1100", "debit": "154.10"})
    );
    let (status, again) = act(&books, &token, id, "issue", None).await;
    assert_eq!(
        (status, again["code"].as_str()),
        (StatusCode::CONFLICT, Some("INVOICE_NOT_DRAFT"))
    );

    let (status, partly) = act(
        &books,
        &token,
        id,
        "payments",
        Some(json!({"amount": "54.10", "date": "2026-02-10"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{partly}");
    assert_eq!(
        (partly["status"].as_str(), partly["outstanding"].as_str()),
        (Some("partially_paid"), Some("100.00"))
    );
    let (status, over) = act(
        &books,
        &token,
        id,
        "payments",
        Some(json!({"amount": "100.01"})),
    )
    .await;
    assert_eq!(
        (status, over["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("OVERPAYMENT"))
    );
    let (status, float) = act(
        &books,
        &token,
        id,
        "payments",
        Some(json!({"amount": 100.0})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{float}");
    let (_, paid) = act(
        &books,
        &token,
        id,
        "payments",
        Some(json!({"amount": "100.00", "date": "2026-02-20"})),
    )
    .await;
    assert_eq!(
        (
            paid["status"].as_str(),
            paid["outstanding"].as_str(),
            paid["paid"].as_str()
        ),
        (Some("paid"), Some("0.00"), Some("154.10"))
    );
    assert_eq!(books.balance(&token, "1100").await, "0.00");
    assert_eq!(books.balance(&token, "1000").await, "154.10");
    let (status, _) = act(
        &books,
        &token,
        id,
        "payments",
        Some(json!({"amount": "1.00"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let tb = books.trial_balance(&token, "2026-12-31").await;
    assert_eq!(tb["total_debit"], tb["total_credit"]);
}

async fn voiding_reverses_an_unpaid_invoice(door: Door) {
    let (books, token, customer) = setup(door).await;
    let lines = json!([{"description": "Consulting", "quantity": "3", "unit_price": "80.00", "tax_rate": "0.2"}]);
    let draft = invoice(&books, &token, customer, "2026-03-31", lines.clone()).await;
    let (status, voided) = act(&books, &token, &draft["id"], "void", None).await;
    assert_eq!(
        (status, voided["status"].as_str()),
        (StatusCode::OK, Some("void"))
    );

    let second = invoice(&books, &token, customer, "2026-03-31", lines.clone()).await;
    act(
        &books,
        &token,
        &second["id"],
        "issue",
        Some(json!({"date": "2026-03-01"})),
    )
    .await;
    assert_eq!(books.balance(&token, "1100").await, "288.00");
    let (status, voided) = act(
        &books,
        &token,
        &second["id"],
        "void",
        Some(json!({"date": "2026-03-02"})),
    )
    .await;
    assert_eq!(
        (status, voided["status"].as_str()),
        (StatusCode::OK, Some("void")),
        "{voided}"
    );
    assert_eq!(books.balance(&token, "1100").await, "0.00");
    assert_eq!(books.balance(&token, "4000").await, "0.00");

    let third = invoice(&books, &token, customer, "2026-03-31", lines).await;
    act(&books, &token, &third["id"], "issue", None).await;
    act(
        &books,
        &token,
        &third["id"],
        "payments",
        Some(json!({"amount": "1.00"})),
    )
    .await;
    let (status, refused) = act(&books, &token, &third["id"], "void", None).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (StatusCode::CONFLICT, Some("INVOICE_NOT_VOIDABLE"))
    );
}

async fn credit_notes_reduce_what_is_owed(door: Door) {
    let (books, token, customer) = setup(door).await;
    let draft = invoice(
        &books,
        &token,
        customer,
        "2026-04-30",
        json!([{"description": "Chairs", "quantity": "10", "unit_price": "50.00", "tax_rate": "0.1"}]),
    )
    .await;
    act(
        &books,
        &token,
        &draft["id"],
        "issue",
        Some(json!({"date": "2026-04-01"})),
    )
    .await;
    let (status, note) = act(
        &books,
        &token,
        &draft["id"],
        "credit-notes",
        Some(json!({"date": "2026-04-05", "lines": [{"description": "2 chairs returned", "quantity": "2", "unit_price": "50.00", "tax_rate": "0.1"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    assert_eq!(
        (
            note["kind"].as_str(),
            note["total"].as_str(),
            note["status"].as_str()
        ),
        (Some("credit_note"), Some("110.00"), Some("issued"))
    );
    let (_, updated) = books
        .call(
            "GET",
            &format!("/api/invoices/{}", draft["id"]),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (
            updated["credited"].as_str(),
            updated["outstanding"].as_str()
        ),
        (Some("110.00"), Some("440.00"))
    );
    assert_eq!(books.balance(&token, "1100").await, "440.00");
    assert_eq!(books.balance(&token, "4900").await, "100.00");
    assert_eq!(books.balance(&token, "2100").await, "-40.00");
    let (status, too_much) = act(
        &books,
        &token,
        &draft["id"],
        "credit-notes",
        Some(json!({"lines": [{"description": "everything", "quantity": "9", "unit_price": "50.00", "tax_rate": "0.1"}]})),
    )
    .await;
    assert_eq!(
        (status, too_much["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("INVALID_CREDIT"))
    );
    let (_, all) = books.call("GET", "/api/invoices", Some(&token), None).await;
    assert_eq!(
        all.as_array().unwrap().len(),
        2,
        "the refused credit note left no draft behind"
    );
}

async fn document_rounding_is_an_organization_setting(door: Door) {
    let (books, token, customer) = setup(door).await;
    let lines = json!([
        {"description": "a", "quantity": "1", "unit_price": "0.10", "tax_rate": "0.05"},
        {"description": "b", "quantity": "1", "unit_price": "0.10", "tax_rate": "0.05"},
        {"description": "c", "quantity": "1", "unit_price": "0.10", "tax_rate": "0.05"},
    ]);
    let per_line = invoice(&books, &token, customer, "2026-05-31", lines.clone()).await;
    assert_eq!(per_line["tax"], "0.03");
    let (status, settings) = books
        .call(
            "PUT",
            "/api/settings",
            Some(&token),
            Some(json!({"tax_rounding": "document"})),
        )
        .await;
    assert_eq!(
        (status, settings),
        (
            StatusCode::OK,
            json!({"tax_rounding": "document", "timezone": "UTC", "lock_date": null})
        )
    );
    let per_document = invoice(&books, &token, customer, "2026-05-31", lines).await;
    assert_eq!(
        (
            per_document["tax"].as_str(),
            per_document["tax_rounding"].as_str()
        ),
        (Some("0.02"), Some("document"))
    );
    let line_taxes: Vec<&str> = per_document["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["tax"].as_str().unwrap())
        .collect();
    assert_eq!(
        line_taxes,
        ["0.01", "0.01", "0.00"],
        "split by largest remainder"
    );
    let (status, _) = books
        .call(
            "PUT",
            "/api/settings",
            Some(&token),
            Some(json!({"tax_rounding": "banker"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn ar_aging_buckets_by_days_past_due(door: Door) {
    let (books, token, customer) = setup(door).await;
    let line = |amount: &str| json!([{"description": "x", "quantity": "1", "unit_price": amount}]);
    for (due, amount) in [
        ("2026-06-30", "100.00"),
        ("2026-06-10", "200.00"),
        ("2026-05-01", "300.00"),
        ("2026-02-01", "400.00"),
    ] {
        let draft = invoice(&books, &token, customer, due, line(amount)).await;
        let (status, body) = act(
            &books,
            &token,
            &draft["id"],
            "issue",
            Some(json!({"date": "2026-01-15"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, aging) = books
        .call(
            "GET",
            "/api/reports/ar-aging?as_of=2026-06-20",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{aging}");
    let totals = &aging["totals"][0];
    // Due 06-30: current; 06-10: 10 days; 05-01: 50 days; 02-01: 139 days.
    assert_eq!(
        (
            totals["current"].as_str(),
            totals["days_1_30"].as_str(),
            totals["days_31_60"].as_str(),
            totals["days_61_90"].as_str(),
            totals["over_90"].as_str(),
            totals["total"].as_str()
        ),
        (
            Some("100.00"),
            Some("200.00"),
            Some("300.00"),
            Some("0.00"),
            Some("400.00"),
            Some("1000.00")
        )
    );
    assert_eq!(aging["customers"][0]["customer"], "Globex");
    // Before they were issued, nothing was owed.
    let (_, early) = books
        .call(
            "GET",
            "/api/reports/ar-aging?as_of=2026-01-01",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(early["totals"], json!([]));
}

async fn invoices_are_private_to_their_organization(door: Door) {
    let (books, token, customer) = setup(door).await;
    let draft = invoice(
        &books,
        &token,
        customer,
        "2026-07-31",
        json!([{"description": "x", "quantity": "1", "unit_price": "1.00"}]),
    )
    .await;
    let stranger = books.register("stranger@other.test", "USD").await;
    assert_eq!(
        books
            .call(
                "GET",
                &format!("/api/invoices/{}", draft["id"]),
                Some(&stranger),
                None
            )
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        act(&books, &stranger, &draft["id"], "issue", None).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = books
        .call("POST", "/api/invoices", Some(&stranger), Some(json!({"customer_id": customer, "due_date": "2026-07-31", "lines": [{"description": "x", "quantity": "1", "unit_price": "1.00"}]})))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("UNKNOWN_CUSTOMER"))
    );
    let (_, customers) = books
        .call("GET", "/api/customers", Some(&stranger), None)
        .await;
    assert_eq!(customers, json!([]));
}

/// The same request sent many times at once with one Idempotency-Key (a
/// client retrying over a flaky network) creates one customer, one invoice
/// and one payment, and every copy gets the first answer.
async fn concurrent_retries_with_one_key_write_once(door: Door) {
    let (books, token, customer) = setup(door).await;
    let books = std::sync::Arc::new(books);
    let token = std::sync::Arc::new(token);
    let send_copies = |path: String, body: Value, key: &'static str| {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (books, token, body, path) =
                    (books.clone(), token.clone(), body.clone(), path.clone());
                tokio::spawn(async move {
                    books
                        .call_with(
                            "POST",
                            &path,
                            Some(&token),
                            Some(body),
                            &[("Idempotency-Key", key)],
                        )
                        .await
                })
            })
            .collect();
        async move {
            let mut answers = Vec::new();
            for task in tasks {
                let (status, body) = task.await.unwrap();
                assert!(status.is_success(), "{status} {body}");
                answers.push(body);
            }
            answers
        }
    };

    let answers = send_copies(
        "/api/customers".into(),
        json!({"name": "Initech"}),
        "cust-1",
    )
    .await;
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    let (_, customers) = books
        .call("GET", "/api/customers", Some(&token), None)
        .await;
    let initech = customers
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == "Initech")
        .count();
    assert_eq!(initech, 1, "{customers}");

    let body = json!({"customer_id": customer, "due_date": "2026-03-01",
                      "lines": [{"description": "Work", "quantity": "1", "unit_price": "10.00", "tax_rate": "0"}]});
    let answers = send_copies("/api/invoices".into(), body, "inv-1").await;
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    let (_, invoices) = books.call("GET", "/api/invoices", Some(&token), None).await;
    assert_eq!(invoices.as_array().unwrap().len(), 1, "{invoices}");

    // Money moves once however many copies of a payment arrive together.
    let id = &answers[0]["id"];
    let answers = send_copies(
        format!("/api/invoices/{id}/issue"),
        json!({"date": "2026-02-01"}),
        "issue-1",
    )
    .await;
    assert!(
        answers.iter().all(|a| a["status"] == "issued"),
        "{answers:?}"
    );
    let payment = json!({"amount": "4.00", "date": "2026-02-10"});
    let answers = send_copies(format!("/api/invoices/{id}/payments"), payment, "pay-1").await;
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(answers[0]["paid"], "4.00");
    assert_eq!(books.balance(&token, "1000").await, "4.00");
    assert_eq!(books.balance(&token, "1100").await, "6.00");
}

/// Four credit notes for the whole open amount at once: one is issued with
/// its posting; the others change nothing and leave no credit note behind
/// (the note, its posting and the credit are one transaction).
async fn concurrent_credit_notes_for_the_whole_amount_issue_one(door: Door) {
    let (books, token, customer) = setup(door).await;
    let draft = invoice(
        &books,
        &token,
        customer,
        "2026-04-30",
        json!([{"description": "Desk", "quantity": "1", "unit_price": "200.00", "tax_rate": "0"}]),
    )
    .await;
    let (status, _) = act(&books, &token, &draft["id"], "issue", None).await;
    assert_eq!(status, StatusCode::OK);
    let whole = json!({"lines": [{"description": "returned", "quantity": "1", "unit_price": "200.00", "tax_rate": "0"}]});
    let attempts = (0..4).map(|_| {
        act(
            &books,
            &token,
            &draft["id"],
            "credit-notes",
            Some(whole.clone()),
        )
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(attempts)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s.as_u16(), 201 | 409 | 422)),
        "{statuses:?}"
    );
    let (_, all) = books.call("GET", "/api/invoices", Some(&token), None).await;
    let notes: Vec<_> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] == "credit_note")
        .collect();
    assert_eq!(notes.len(), 1, "{all}");
    assert_eq!(notes[0]["status"], "issued");
    assert_eq!(books.balance(&token, "1100").await, "0.00");
    assert_eq!(books.balance(&token, "4900").await, "200.00");
}

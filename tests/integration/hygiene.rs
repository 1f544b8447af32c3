//! No organization can hurt another, or the people who open its files:
//! report CSVs a spreadsheet opens as text, not formulas, and that say
//! what the JSON says; Stripe's webhook that no flood turns into a burden;
//! answers that list methods and a document that say what the server does.

use chrono::{Days, Utc};
use http::StatusCode;
use serde_json::{Value, json};

use crate::books::{Books, Store};
use crate::jobs::{create_customer, report_result};
use crate::support::saas::WEBHOOK_SECRET;
use crate::support::saas::stripe::signature;

/// A customer name that a spreadsheet would run as a formula.
const HYPERLINK: &str = "=HYPERLINK(\"http://evil.example\",\"x\")";

/// Whether a spreadsheet would read a cell as the start of a formula.
fn starts_formula(cell: &str) -> bool {
    cell.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// Whether a cell is wholly a decimal number (`-12.50`).
fn is_decimal(cell: &str) -> bool {
    let digits = cell.strip_prefix('-').unwrap_or(cell);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    [whole, fraction]
        .iter()
        .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// Every report's CSV (asked for as a job) has the rows and amounts of its
/// JSON (from its route), in the same order; cells that a spreadsheet would
/// run as formulas are text (a leading `'`), negative amounts stay numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_csv_says_what_its_json_says_and_runs_no_formula() {
    let books =
        Books::start_with(Store::Postgres, &[("JOB_TRANSPORT", "database".to_owned())]).await;
    let token = books
        .register(&format!("csv-{}@acme.test", uuid::Uuid::new_v4()), "USD")
        .await;
    let token = token.as_str();
    let evil = create_customer(&books, token, HYPERLINK).await;
    let plain = create_customer(&books, token, "Initech").await;
    let today = Utc::now().date_naive();
    let overdue = today.checked_sub_days(Days::new(45)).unwrap();
    for (customer, due, price) in [
        (
            evil,
            today.checked_add_days(Days::new(30)).unwrap(),
            "120.00",
        ),
        (evil, overdue, "30.50"),
        (plain, overdue, "7.25"),
    ] {
        let (status, invoice) = books
            .call(
                "POST",
                "/api/invoices",
                Some(token),
                Some(json!({"customer_id": customer, "due_date": due.to_string(),
                    "lines": [{"description": "@SUM(A1:A9)", "quantity": "1", "unit_price": price}]})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{invoice}");
        let (status, body) = books
            .call(
                "POST",
                &format!("/api/invoices/{}/issue", invoice["id"]),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Memos that start formulas, and cash that goes below zero: the general
    // ledger's running balance is negative.
    let day = today.to_string();
    for (memo, lines) in [
        (
            "-2+3+cmd|' /C calc'!A0",
            json!([{"account": "5000", "debit": "80.00"}, {"account": "1000", "credit": "80.00"}]),
        ),
        (
            "+1 owner's capital",
            json!([{"account": "1000", "debit": "30.00"}, {"account": "3000", "credit": "30.00"}]),
        ),
    ] {
        let (status, entry) = books
            .call(
                "POST",
                "/api/journal-entries",
                Some(token),
                Some(json!({"date": day, "memo": memo, "lines": lines})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{entry}");
    }

    let year = format!(
        "from={}&to={day}",
        today.checked_sub_days(Days::new(365)).unwrap()
    );
    let reports: [(&str, String, Value, &[&str]); 5] = [
        (
            "trial-balance",
            format!("as_of={day}"),
            json!({"as_of": day}),
            &["accounts"],
        ),
        (
            "balance-sheet",
            format!("as_of={day}"),
            json!({"as_of": day}),
            &["assets", "liabilities", "equity"],
        ),
        (
            "income-statement",
            year.clone(),
            json!({"from": today.checked_sub_days(Days::new(365)).unwrap().to_string(), "to": day}),
            &["revenue", "expenses"],
        ),
        (
            "general-ledger",
            format!("account=1000&{year}"),
            json!({"account": "1000", "from": today.checked_sub_days(Days::new(365)).unwrap().to_string(), "to": day}),
            &["rows"],
        ),
        (
            "ar-aging",
            format!("as_of={day}"),
            json!({"as_of": day}),
            &["customers"],
        ),
    ];
    let mut seen = Vec::new();
    for (report, query, params, sections) in reports {
        let (status, json) = books
            .call(
                "GET",
                &format!("/api/reports/{report}?{query}"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{report}: {json}");
        let (status, job) = books
            .call(
                "POST",
                "/api/report-jobs",
                Some(token),
                Some(json!({"report": report, "params": params, "format": "csv"})),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{report}: {job}");
        let (_, text) = report_result(&books, token, &job).await;
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let rows: Vec<(&str, &Value)> = sections
            .iter()
            .flat_map(|s| {
                json[*s]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(move |row| (*s, row))
            })
            .collect();
        assert!(!rows.is_empty(), "{report}: no rows to compare: {json}");
        assert_eq!(records.len(), rows.len(), "{report}: {text}\n{json}");
        for (record, (section, row)) in records.iter().zip(&rows) {
            for (name, cell) in header.iter().zip(record.iter()) {
                let expected = match (name.as_str(), &row[name]) {
                    ("section", _) => (*section).to_owned(),
                    (_, Value::Null) => String::new(),
                    (_, Value::String(text)) => text.clone(),
                    (_, Value::Object(_) | Value::Array(_)) => {
                        panic!("{report}: column {name} is not a field: {row}")
                    }
                    (_, other) => other.to_string(),
                };
                if starts_formula(&expected) && !is_decimal(&expected) {
                    assert_eq!(cell, format!("'{expected}"), "{report}.{name}");
                } else {
                    assert_eq!(cell, expected, "{report}.{name}");
                }
                seen.push(cell.to_owned());
            }
        }
        // Every field of a row is a column: no amount is left out.
        for field in rows[0].1.as_object().unwrap().keys() {
            assert!(
                header.contains(field),
                "{report}: the CSV has no column {field}: {header:?}"
            );
        }
    }
    for must in [
        format!("'{HYPERLINK}"),
        "'-2+3+cmd|' /C calc'!A0".to_owned(),
        "'+1 owner's capital".to_owned(),
        "-50.00".to_owned(),
        "30.50".to_owned(),
    ] {
        assert!(seen.contains(&must), "no cell {must:?} in {seen:?}");
    }
    assert!(
        seen.iter()
            .all(|cell| !starts_formula(cell) || is_decimal(cell)),
        "{seen:?}"
    );
}

/// A static segment is not a parameter: `/api/journal-entries/batch` serves
/// POST only (not the GET of `/api/journal-entries/{id}`), and every
/// answer that lists methods says so. The OpenAPI document says what the
/// server does with `X-Request-Id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_and_the_openapi_document_say_what_the_server_serves() {
    let books = Books::start_with(
        Store::Postgres,
        &[("FRONTEND_URL", "https://books.example.com".to_owned())],
    )
    .await;
    let token = books
        .register(&format!("allow-{}@acme.test", uuid::Uuid::new_v4()), "USD")
        .await;
    let server = &books.server;
    let send = |method: &str, path: &str, headers: &[(&str, &str)]| {
        let mut request = server
            .client
            .request(method.parse().unwrap(), format!("{}{path}", server.base))
            .bearer_auth(&token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    for (method, path, allow) in [
        ("OPTIONS", "/api/journal-entries/batch", "POST"),
        ("GET", "/api/journal-entries/batch", "POST"),
        ("OPTIONS", "/api/journal-entries/7", "GET"),
    ] {
        let response = send(method, path, &[]).await.unwrap();
        assert_eq!(
            (
                response.status(),
                response.headers()["allow"].to_str().unwrap()
            ),
            (StatusCode::METHOD_NOT_ALLOWED, allow),
            "{method} {path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "METHOD_NOT_ALLOWED", "{method} {path}");
    }
    let preflight = send(
        "OPTIONS",
        "/api/journal-entries/batch",
        &[
            ("Origin", "https://books.example.com"),
            ("Access-Control-Request-Method", "POST"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(preflight.headers()["access-control-allow-methods"], "POST");

    // X-Request-Id: a value the server keeps is echoed, any other is
    // replaced, not refused; the document declares no pattern it would
    // break and says so.
    let kept = send(
        "GET",
        "/api/accounts",
        &[("X-Request-Id", "trace-42.a:b_c")],
    )
    .await
    .unwrap();
    assert_eq!(kept.status(), StatusCode::OK);
    assert_eq!(kept.headers()["x-request-id"], "trace-42.a:b_c");
    let replaced = send(
        "GET",
        "/api/accounts",
        &[("X-Request-Id", "no spaces, please")],
    )
    .await
    .unwrap();
    assert_eq!(replaced.status(), StatusCode::OK);
    let generated = replaced.headers()["x-request-id"].to_str().unwrap();
    assert!(!generated.is_empty() && generated != "no spaces, please");
    let (_, document) = books.call("GET", "/api/openapi.json", None, None).await;
    let parameter = document["paths"]["/api/accounts"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "X-Request-Id")
        .unwrap()
        .clone();
    assert!(parameter["schema"].get("pattern").is_none(), "{parameter}");
    assert!(
        parameter["description"]
            .as_str()
            .unwrap()
            .contains("replaced by a generated id"),
        "{parameter}"
    );
}

/// One POST to Stripe's webhook as if from `from` (the server trusts the
/// loopback proxy's `X-Forwarded-For`): status, `Retry-After`, JSON body.
async fn webhook_from(
    books: &Books,
    from: &str,
    payload: Vec<u8>,
    signature: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = books
        .server
        .client
        .post(format!("{}/api/webhooks/stripe", books.server.base))
        .header("content-type", "application/json")
        .header("x-forwarded-for", from)
        .body(payload);
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// Stripe's webhook cannot be used to burn the server: a body over its
/// limit is 413 unread, bad signatures spend their address's budget (valid
/// ones never do) and, past it, are refused 429 before any HMAC, counted in
/// metrics; Stripe's own correctly signed events from its address still land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_webhook_signatures_is_refused_and_stripes_events_still_land() {
    let s = crate::payments::start(
        Store::Postgres,
        &[("TRUSTED_PROXIES", "127.0.0.1/32".to_owned())],
    )
    .await;
    let (books, token) = (&s.books, s.token.as_str());
    let (flood, stripe) = ("203.0.113.9", "198.51.100.7");
    let signed = |event: &Value| {
        let payload = serde_json::to_vec(event).unwrap();
        let header = signature(&[WEBHOOK_SECRET], Utc::now().timestamp(), &payload);
        (payload, header)
    };

    // Valid signatures spend nothing: more of them than the budget, from
    // the address that floods next, all land.
    for n in 0..30 {
        let (payload, header) = signed(&json!({"id": format!("evt_other_{n}"),
            "type": "customer.created", "created": Utc::now().timestamp(),
            "data": {"object": {"id": "cus_1"}}}));
        let (status, _, body) = webhook_from(books, flood, payload, Some(&header)).await;
        assert_eq!(
            (status, body["outcome"].clone()),
            (StatusCode::OK, json!("ignored")),
            "{n}: {body}"
        );
    }

    // Stripe's events are a few KiB: 300 KiB, even signed, is refused,
    // unread (the answer comes to the head alone).
    let (payload, header) = signed(&json!({"id": "evt_big", "type": "customer.created",
        "created": Utc::now().timestamp(), "data": {"object": {"pad": "x".repeat(300 * 1024)}}}));
    let head = format!(
        "POST /api/webhooks/stripe HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
         X-Forwarded-For: {stripe}\r\nStripe-Signature: {header}\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    );
    let answer = books.server.raw_exchange(head.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["code"], "PAYLOAD_TOO_LARGE", "{body}");
    assert!(body["error"].as_str().unwrap().contains("262144"), "{body}");

    // The flood: forged signatures from one address.
    let invoice = crate::payments::issued(books, token, s.customer, "42.00").await;
    let (_, first) = crate::payments::intent(books, token, invoice).await;
    let id = first["payment_intent_id"].as_str().unwrap().to_owned();
    let event = s.saas.stripe.succeeded_event("evt_paid", &id);
    let payload = serde_json::to_vec(&event).unwrap();
    let forged = signature(&["whsec_guess"], Utc::now().timestamp(), &payload);
    let budget = accubooks_core::throttle::WEBHOOK_SIGNATURE_FAILURES;
    for n in 0..budget {
        let (status, _, body) = webhook_from(books, flood, payload.clone(), Some(&forged)).await;
        assert_eq!(
            (status, body["code"].clone()),
            (StatusCode::BAD_REQUEST, json!("INVALID_SIGNATURE")),
            "{n}: {body}"
        );
    }
    for n in 0..10 {
        let (status, retry_after, body) =
            webhook_from(books, flood, payload.clone(), Some(&forged)).await;
        assert_eq!(
            (status, body["code"].clone()),
            (StatusCode::TOO_MANY_REQUESTS, json!("RATE_LIMITED")),
            "{n}: {body}"
        );
        assert!(
            retry_after.unwrap().parse::<u64>().unwrap() >= 1,
            "{n}: Retry-After"
        );
    }
    // The flooding address is refused as a whole, before its signatures are
    // checked; Stripe's address is not, and its event is posted.
    let (good, header) = signed(&event);
    let (status, _, _) = webhook_from(books, flood, good.clone(), Some(&header)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _, body) = webhook_from(books, stripe, good, Some(&header)).await;
    assert_eq!(
        (status, body["outcome"].clone()),
        (StatusCode::OK, json!("queued")),
        "{body}"
    );
    crate::payments::settled_jobs(books, token).await;
    assert_eq!(
        crate::payments::invoice_of(books, token, invoice).await["status"],
        "paid"
    );

    let metrics = books
        .server
        .get("/api/monitoring/metrics")
        .await
        .text()
        .await
        .unwrap();
    let count = |reason: &str| -> u64 {
        let series =
            format!("accubooks_webhook_refused_total{{provider=\"stripe\",reason=\"{reason}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
            .parse()
            .unwrap()
    };
    // The forged signatures within the budget were checked; the ten past it
    // and the flooding address's good one were refused unchecked.
    assert_eq!(
        [
            count("forged"),
            count("rate_limited"),
            count("too_large"),
            count("missing")
        ],
        [u64::from(budget), 11, 1, 0]
    );
}

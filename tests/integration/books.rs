//! The books over HTTP, the same cases on PostgreSQL and on SQLite, through
//! the axum and the warp host (the Python API runs its own books suites in
//! `accubooks-py/tests`, on the same use cases).

use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};

use crate::support::server::{Host, TestServer, base_vars, set};
use crate::support::services::Postgres;

/// Where the books are kept.
#[derive(Debug, Clone, Copy)]
pub enum Store {
    /// A private PostgreSQL server.
    Postgres,
    /// An SQLite file in a temp dir.
    Sqlite,
}

/// A store behind a host: the door a suite runs through.
#[derive(Debug, Clone, Copy)]
pub struct Door {
    /// Where the books are kept.
    pub store: Store,
    /// Which host serves them.
    pub host: Host,
}

impl From<Store> for Door {
    /// The store behind the axum host.
    fn from(store: Store) -> Self {
        Door {
            store,
            host: Host::Axum,
        }
    }
}

/// The URL of a `Link: <URL>; rel="next"` header value.
pub fn next_of(link: &str) -> String {
    let (url, rel) = link
        .split_once(';')
        .unwrap_or_else(|| panic!("a Link without parameters: {link}"));
    assert_eq!(rel.trim(), "rel=\"next\"", "{link}");
    url.trim()
        .strip_prefix('<')
        .and_then(|u| u.strip_suffix('>'))
        .unwrap_or_else(|| panic!("a Link without <URL>: {link}"))
        .to_owned()
}

/// A server on a fresh store, with what keeps the store alive.
pub struct Books {
    /// The server.
    pub server: TestServer,
    _pg: Option<Postgres>,
    _dir: tempfile::TempDir,
}

impl Books {
    /// Starts a server on a fresh store, connected.
    pub async fn start(door: impl Into<Door>) -> Books {
        Self::start_with(door, &[]).await
    }

    /// [`Books::start`] with more variables (or others) than the base ones.
    pub async fn start_with(door: impl Into<Door>, extra: &[(&str, String)]) -> Books {
        let Door { store, host } = door.into();
        let dir = tempfile::tempdir().unwrap();
        let mut vars = base_vars();
        let pg = match store {
            Store::Postgres => {
                let pg = Postgres::start().await;
                set(&mut vars, "DATABASE_URL", pg.url());
                Some(pg)
            }
            Store::Sqlite => {
                set(
                    &mut vars,
                    "DATABASE_URL",
                    format!("sqlite://{}/books.db", dir.path().display()),
                );
                None
            }
        };
        for (name, value) in extra {
            set(&mut vars, name, value.clone());
        }
        let server = TestServer::start(host, vars).await;
        server
            .wait_for_dependency("database", "connected", Duration::from_secs(10))
            .await;
        Books {
            server,
            _pg: pg,
            _dir: dir,
        }
    }

    /// Books around a server started elsewhere (its stores are the caller's).
    pub fn around(server: TestServer) -> Books {
        Books {
            server,
            _pg: None,
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    /// The PostgreSQL server, on that store.
    pub fn postgres(&self) -> Option<&Postgres> {
        self._pg.as_ref()
    }

    /// Registers a new USD organization; returns the owner's token and the
    /// organization's id.
    pub async fn register_organization(&self, email: &str) -> (String, String) {
        let (status, body) = self
            .call("POST", "/api/auth/register", None, Some(json!({
                "email": email, "password": "correct horse battery", "organization": "Acme", "currency": "USD"
            })))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let text = |field: &str| body[field].as_str().unwrap().to_owned();
        (text("token"), text("organization_id"))
    }

    /// Adds a user with `role` to the owner's organization and answers the
    /// token the user gets by logging in.
    pub async fn member_token(&self, owner: &str, email: &str, role: &str) -> String {
        let password = "member password";
        let (status, body) = self
            .call(
                "POST",
                "/api/users",
                Some(owner),
                Some(json!({"email": email, "password": password, "role": role})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, login) = self
            .call(
                "POST",
                "/api/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{login}");
        login["token"].as_str().unwrap().to_owned()
    }

    /// Registers a new organization and returns the owner's token.
    pub async fn register(&self, email: &str, currency: &str) -> String {
        let (status, body) = self
            .call("POST", "/api/auth/register", None, Some(json!({
                "email": email, "password": "correct horse battery", "organization": "Acme", "currency": currency
            })))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// One request; returns status and JSON body (Null when empty).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(method, path, token, body, &[]).await
    }

    /// One request with extra headers.
    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let method = http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .server
            .client
            .request(method, format!("{}{path}", self.server.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// One page of a list: status, JSON body, and the path of the next page
    /// from the `Link` header (`rel="next"`), if any.
    pub async fn page(&self, path: &str, token: &str) -> (StatusCode, Value, Option<String>) {
        let response = self
            .server
            .client
            .get(format!("{}{path}", self.server.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let next = response
            .headers()
            .get(http::header::LINK)
            .map(|link| next_of(link.to_str().unwrap()));
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            next,
        )
    }

    /// Every item of a list, following its `Link` headers from `path` as a
    /// client would; each page must answer 200.
    pub async fn list(&self, path: &str, token: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut path = path.to_owned();
        loop {
            let (status, page, next) = self.page(&path, token).await;
            assert_eq!(status, StatusCode::OK, "{path}: {page}");
            let page = page.as_array().unwrap_or_else(|| panic!("{path}: {page}"));
            assert!(page.len() <= 500, "{path}: a page of {}", page.len());
            items.extend(page.iter().cloned());
            match next {
                Some(next) => path = next,
                None => return items,
            }
        }
    }

    /// Every event of the organization of these `types` (comma-separated),
    /// in commit order.
    pub async fn events(&self, token: &str, types: &str) -> Vec<Value> {
        self.list(&format!("/api/events?types={types}&limit=500"), token)
            .await
    }

    /// Runs one statement past row-level security (as the superuser on
    /// PostgreSQL, through the server's own pool on SQLite): what a test
    /// sets up or reads behind the API's back. Answers the rows affected.
    pub async fn execute_as_admin(&self, sql: &str) -> u64 {
        let sql = || sqlx::AssertSqlSafe(sql.to_owned());
        match self.postgres() {
            Some(pg) => {
                let admin = sqlx::PgPool::connect(&pg.admin_url()).await.unwrap();
                let done = sqlx::query(sql()).execute(&admin).await.unwrap();
                admin.close().await;
                done.rows_affected()
            }
            None => sqlx::query(sql())
                .execute(self.sqlite_pool())
                .await
                .unwrap()
                .rows_affected(),
        }
    }

    /// One count read past row-level security, as [`Books::execute_as_admin`].
    pub async fn count_as_admin(&self, sql: &str) -> i64 {
        let sql = || sqlx::AssertSqlSafe(sql.to_owned());
        match self.postgres() {
            Some(pg) => {
                let admin = sqlx::PgPool::connect(&pg.admin_url()).await.unwrap();
                let count = sqlx::query_scalar(sql()).fetch_one(&admin).await.unwrap();
                admin.close().await;
                count
            }
            None => sqlx::query_scalar(sql())
                .fetch_one(self.sqlite_pool())
                .await
                .unwrap(),
        }
    }

    fn sqlite_pool(&self) -> &sqlx::SqlitePool {
        match self.server.app.database().pool() {
            accubooks_core::db::Pool::Sqlite(pool) => pool,
            accubooks_core::db::Pool::Postgres(_) => panic!("a store without PostgreSQL is SQLite"),
        }
    }

    /// Creates a USD account with the organization's token.
    pub async fn create_account(&self, token: &str, code: &str, name: &str, kind: &str) {
        let (status, body) = self
            .call(
                "POST",
                "/api/accounts",
                Some(token),
                Some(json!({"code": code, "name": name, "type": kind, "currency": "USD"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Logs a user in with the suites' password; answers the token.
    pub async fn login(&self, email: &str) -> String {
        let (status, body) = self
            .call(
                "POST",
                "/api/auth/login",
                None,
                Some(json!({"email": email, "password": "correct horse battery"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    /// Posts an entry; returns its id.
    pub async fn post(&self, token: &str, date: &str, lines: Value) -> i64 {
        let (status, body) = self
            .call(
                "POST",
                "/api/journal-entries",
                Some(token),
                Some(json!({"date": date, "memo": "test", "lines": lines})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_i64().unwrap()
    }

    /// Posts `entries` (JSON entry inputs) in one batch; answers their ids.
    pub async fn post_batch(&self, token: &str, entries: Vec<Value>) -> Vec<i64> {
        let (status, body) = self
            .call(
                "POST",
                "/api/journal-entries/batch",
                Some(token),
                Some(json!({ "entries": entries })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_i64().unwrap())
            .collect()
    }

    /// Balance of an account by code.
    pub async fn balance(&self, token: &str, code: &str) -> String {
        let (_, accounts) = self.call("GET", "/api/accounts", Some(token), None).await;
        accounts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["code"] == code)
            .unwrap_or_else(|| panic!("no account {code}"))["balance"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The trial balance body.
    pub async fn trial_balance(&self, token: &str, as_of: &str) -> Value {
        let (status, body) = self
            .call(
                "GET",
                &format!("/api/reports/trial-balance?as_of={as_of}"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

fn sale(amount: &str) -> Value {
    json!([{"account": "1000", "debit": amount}, {"account": "4000", "credit": amount}])
}

on_every_door!(
    registration_login_and_the_default_chart,
    posting_moves_balances_and_every_report_agrees,
    reversal_mirrors_an_entry_once,
    idempotency_keys_replay_the_first_answer,
    concurrent_duplicates_of_one_key_post_once,
    bad_input_is_refused_and_changes_nothing,
    tokens_roles_and_organizations_are_walls,
    reports_as_of_past_dates,
    batches_post_atomically,
    currencies_follow_iso_4217,
    parallel_posts_to_hot_accounts_keep_exact_balances,
);

async fn registration_login_and_the_default_chart(door: Door) {
    let books = Books::start(door).await;
    let token = books.register("owner@acme.test", "USD").await;
    let (status, accounts) = books.call("GET", "/api/accounts", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    let codes: Vec<&str> = accounts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "1000", "1100", "2000", "2100", "3000", "3900", "4000", "4900", "5000"
        ]
    );
    assert!(
        accounts
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["balance"] == "0.00" && a["currency"] == "USD")
    );

    let login = |password: &'static str| {
        let books = &books;
        async move {
            books
                .call(
                    "POST",
                    "/api/auth/login",
                    None,
                    Some(json!({"email": "Owner@Acme.test", "password": password})),
                )
                .await
        }
    };
    let (status, body) = login("correct horse battery").await;
    assert_eq!(status, StatusCode::OK);
    let fresh = body["token"].as_str().unwrap();
    assert_eq!(
        books
            .call("GET", "/api/accounts", Some(fresh), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        login("wrong horse battery").await.0,
        StatusCode::UNAUTHORIZED
    );

    let (status, body) = books
        .call("POST", "/api/auth/register", None, Some(json!({"email": "owner@acme.test", "password": "another password", "organization": "Copy"})))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("EMAIL_TAKEN"))
    );
    let (status, body) = books
        .call(
            "POST",
            "/api/auth/register",
            None,
            Some(json!({"email": "x@acme.test", "password": "short", "organization": "X"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("WEAK_PASSWORD"))
    );

    // Guessing is slowed down: the budget of this e-mail from this address
    // runs out.
    let mut limited = None;
    for _ in 0..12 {
        let (status, _) = login("not the password").await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(status);
            break;
        }
    }
    assert_eq!(limited, Some(StatusCode::TOO_MANY_REQUESTS));
}

async fn posting_moves_balances_and_every_report_agrees(door: Door) {
    let books = Books::start(door).await;
    let token = books.register("a@acme.test", "USD").await;
    let id = books.post(&token, "2026-01-31", sale("100.00")).await;
    books
        .post(
            &token,
            "2026-01-31",
            json!([{"account": "5000", "debit": "30.25"}, {"account": "1000", "credit": "30.25"}]),
        )
        .await;
    let (status, entry) = books
        .call(
            "GET",
            &format!("/api/journal-entries/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        entry["lines"],
        json!([{"account": "1000", "debit": "100.00"}, {"account": "4000", "credit": "100.00"}])
    );
    assert_eq!(entry["date"], "2026-01-31");
    assert_eq!(books.balance(&token, "1000").await, "69.75");
    assert_eq!(books.balance(&token, "4000").await, "-100.00");

    let tb = books.trial_balance(&token, "2026-12-31").await;
    assert_eq!(
        (tb["total_debit"].as_str(), tb["total_credit"].as_str()),
        (Some("100.00"), Some("100.00"))
    );
    let cash = tb["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["code"] == "1000")
        .unwrap();
    assert_eq!(
        (cash["debit"].as_str(), cash["credit"].as_str()),
        (Some("69.75"), Some("0.00"))
    );

    let (_, sheet) = books
        .call(
            "GET",
            "/api/reports/balance-sheet?as_of=2026-12-31",
            Some(&token),
            None,
        )
        .await;
    let totals = &sheet["totals"][0];
    assert_eq!(totals["assets"], "69.75");
    assert_eq!(totals["current_earnings"], "69.75");
    assert_eq!(totals["liabilities_and_equity"], totals["assets"]);

    let (_, income) = books
        .call(
            "GET",
            "/api/reports/income-statement?from=2026-01-01&to=2026-12-31",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        income["totals"][0],
        json!({"currency": "USD", "revenue": "100.00", "expenses": "30.25", "net_income": "69.75"})
    );

    let (_, ledger) = books
        .call(
            "GET",
            "/api/reports/general-ledger?account=1000&from=2026-01-01&to=2026-12-31",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(ledger["opening_balance"], "0.00");
    let running: Vec<&str> = ledger["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["balance"].as_str().unwrap())
        .collect();
    assert_eq!(running, ["100.00", "69.75"]);
    assert_eq!(ledger["closing_balance"], "69.75");
}

async fn reversal_mirrors_an_entry_once(door: Door) {
    let books = Books::start(door).await;
    let token = books.register("r@acme.test", "USD").await;
    let id = books.post(&token, "2026-03-01", sale("42.10")).await;
    let (status, reversal) = books
        .call(
            "POST",
            &format!("/api/journal-entries/{id}/reverse"),
            Some(&token),
            Some(json!({"date": "2026-03-05"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{reversal}");
    assert_eq!(reversal["reverses"], id);
    assert_eq!(
        reversal["lines"],
        json!([{"account": "1000", "credit": "42.10"}, {"account": "4000", "debit": "42.10"}])
    );
    let (_, original) = books
        .call(
            "GET",
            &format!("/api/journal-entries/{id}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(original["reversed_by"], reversal["id"]);
    assert_eq!(books.balance(&token, "1000").await, "0.00");
    let (status, again) = books
        .call(
            "POST",
            &format!("/api/journal-entries/{id}/reverse"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (status, again["code"].as_str()),
        (StatusCode::CONFLICT, Some("ALREADY_REVERSED"))
    );
    let reversal_id = reversal["id"].as_i64().unwrap();
    let (status, _) = books
        .call(
            "POST",
            &format!("/api/journal-entries/{reversal_id}/reverse"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Between the two dates the sale still shows.
    let tb = books.trial_balance(&token, "2026-03-02").await;
    assert_eq!(tb["total_debit"], "42.10");
}

async fn idempotency_keys_replay_the_first_answer(door: Door) {
    let books = Books::start(door).await;
    let token = books.register("i@acme.test", "USD").await;
    let body = json!({"date": "2026-01-02", "lines": sale("10.00")});
    let key = [("Idempotency-Key", "order-17")];
    let (first_status, first) = books
        .call_with(
            "POST",
            "/api/journal-entries",
            Some(&token),
            Some(body.clone()),
            &key,
        )
        .await;
    let (second_status, second) = books
        .call_with(
            "POST",
            "/api/journal-entries",
            Some(&token),
            Some(body),
            &key,
        )
        .await;
    assert_eq!(
        (first_status, second_status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(first, second);
    assert_eq!(books.balance(&token, "1000").await, "10.00", "posted once");
    let other = json!({"date": "2026-01-02", "lines": sale("11.00")});
    let (status, err) = books
        .call_with(
            "POST",
            "/api/journal-entries",
            Some(&token),
            Some(other),
            &key,
        )
        .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("IDEMPOTENCY_KEY_REUSED")
        )
    );
    // Keys also guard account creation.
    let account = json!({"code": "1010", "name": "Petty cash", "type": "asset", "currency": "USD"});
    let akey = [("Idempotency-Key", "acct-1")];
    let (s1, a1) = books
        .call_with(
            "POST",
            "/api/accounts",
            Some(&token),
            Some(account.clone()),
            &akey,
        )
        .await;
    let (s2, a2) = books
        .call_with(
            "POST",
            "/api/accounts",
            Some(&token),
            Some(account.clone()),
            &akey,
        )
        .await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(a1, a2);
    let (s3, dup) = books
        .call("POST", "/api/accounts", Some(&token), Some(account))
        .await;
    assert_eq!(
        (s3, dup["code"].as_str()),
        (StatusCode::CONFLICT, Some("ACCOUNT_EXISTS"))
    );
    // Another organization's identical key is its own.
    let token2 = books.register("i2@acme.test", "USD").await;
    let body = json!({"date": "2026-01-02", "lines": sale("10.00")});
    let (status, theirs) = books
        .call_with(
            "POST",
            "/api/journal-entries",
            Some(&token2),
            Some(body),
            &key,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(theirs["id"], first["id"]);
}

async fn concurrent_duplicates_of_one_key_post_once(door: Door) {
    let books = std::sync::Arc::new(Books::start(door).await);
    let token = std::sync::Arc::new(books.register("c@acme.test", "USD").await);
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (books, token) = (books.clone(), token.clone());
            tokio::spawn(async move {
                books
                    .call_with(
                        "POST",
                        "/api/journal-entries",
                        Some(&token),
                        Some(json!({"date": "2026-01-02", "lines": sale("5.00")})),
                        &[("Idempotency-Key", "same-key")],
                    )
                    .await
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{body}");
        ids.push(body["id"].as_i64().unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every duplicate got the same entry");
    assert_eq!(books.balance(&token, "1000").await, "5.00");
}

async fn bad_input_is_refused_and_changes_nothing(door: Door) {
    let books = Books::start(door).await;
    let token = books.register("b@acme.test", "USD").await;
    let (status, _) = books
        .call(
            "POST",
            "/api/accounts",
            Some(&token),
            Some(json!({"code": "1500", "name": "Euro cash", "type": "asset", "currency": "EUR"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    books.post(&token, "2026-01-01", sale("1.00")).await;
    let before = books.trial_balance(&token, "2026-12-31").await;

    let evil = "'; DROP TABLE journal_entries; --";
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"date": "2026-01-01", "lines": [{"account": "1000", "debit": 10.5}, {"account": "4000", "credit": "10.50"}]}),
            "INVALID_FIELD",
        ),
        (
            json!({"date": "2026-01-01", "lines": [{"account": "1000", "debit": "10.555"}, {"account": "4000", "credit": "10.555"}]}),
            "INVALID_AMOUNT",
        ),
        (
            json!({"date": "2026-01-01", "lines": [{"account": "9999", "debit": "1.00"}, {"account": "4000", "credit": "1.00"}]}),
            "UNKNOWN_ACCOUNT",
        ),
        (
            json!({"date": "2026-01-01", "lines": [{"account": "1500", "debit": "1.00"}, {"account": "4000", "credit": "1.00"}]}),
            "UNBALANCED_ENTRY",
        ),
        (json!({"date": "2026-01-01", "lines": []}), "TOO_FEW_LINES"),
        (
            json!({"date": "2026-01-01", "lines": [{"account": "1000", "debit": "1.00"}]}),
            "TOO_FEW_LINES",
        ),
        (
            json!({"date": "2026-01-01", "lines": [{"account": "1000", "debit": "-1.00"}, {"account": "4000", "debit": "1.00"}]}),
            "INVALID_AMOUNT",
        ),
        (
            json!({"date": "2026-01-01", "lines": [{"account": "1000", "debit": "1.00"}, {"account": "4000", "credit": "0.99"}]}),
            "UNBALANCED_ENTRY",
        ),
        (json!({"lines": sale("1.00")}), "INVALID_FIELD"),
        (
            json!({"date": "2026-01-01", "lines": sale("1.00"), "approved": true}),
            "INVALID_FIELD",
        ),
        (json!({"date": evil, "lines": sale("1.00")}), "INVALID_DATE"),
        (
            json!({"date": "2026-01-01", "memo": evil, "lines": [{"account": evil, "debit": "1.00"}, {"account": "4000", "credit": "1.00"}]}),
            "UNKNOWN_ACCOUNT",
        ),
        (
            json!({"date": "2026-01-01", "lines": [{"account": "1000", "debit": evil}, {"account": "4000", "credit": "1.00"}]}),
            "INVALID_AMOUNT",
        ),
    ];
    for (body, code) in cases {
        let (status, answer) = books
            .call(
                "POST",
                "/api/journal-entries",
                Some(&token),
                Some(body.clone()),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} -> {answer}"
        );
        assert_eq!(answer["code"], code, "{body} -> {answer}");
        assert!(answer["error"].as_str().unwrap().len() > 10);
    }
    let (status, answer) = books
        .call(
            "POST",
            "/api/accounts",
            Some(&token),
            Some(json!({"code": evil, "name": "x", "type": "asset", "currency": "USD"})),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("INVALID_ACCOUNT_CODE")
        )
    );
    let (status, answer) = books
        .call(
            "POST",
            "/api/accounts",
            Some(&token),
            Some(json!({"code": "1600", "name": evil, "type": "asset", "currency": "XYZ"})),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("UNKNOWN_CURRENCY"))
    );
    // A memo full of SQL is just text.
    let (status, stored) = books
        .call(
            "POST",
            "/api/journal-entries",
            Some(&token),
            Some(json!({"date": "2026-01-01", "memo": evil, "lines": sale("0.01")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(stored["memo"], evil);
    let (status, _) = books
        .call(
            "POST",
            "/api/journal-entries/9999999/reverse",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Malformed JSON is a 400; a huge body a 413.
    let response = books
        .server
        .client
        .post(format!("{}/api/journal-entries", books.server.base))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"date\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let huge = format!("{{\"memo\": \"{}\"}}", "x".repeat(10 << 20));
    let response = books
        .server
        .client
        .post(format!("{}/api/journal-entries", books.server.base))
        .bearer_auth(&token)
        .body(huge)
        .send()
        .await;
    if let Ok(response) = response {
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    let after = books.trial_balance(&token, "2026-12-31").await;
    // Two currencies: the totals are per currency.
    assert_eq!(after["total_debit"], Value::Null);
    assert_eq!(
        before["totals"][1],
        json!({"currency": "USD", "debit": "1.00", "credit": "1.00"})
    );
    assert_eq!(
        after["totals"][1],
        json!({"currency": "USD", "debit": "1.01", "credit": "1.01"}),
        "only the SQL-memo entry was added"
    );
}

async fn tokens_roles_and_organizations_are_walls(door: Door) {
    let books = Books::start(door).await;
    let owner = books.register("o@acme.test", "USD").await;
    let id = books.post(&owner, "2026-01-01", sale("3.00")).await;
    assert_eq!(
        books.call("GET", "/api/accounts", None, None).await.0,
        StatusCode::UNAUTHORIZED
    );
    // A viewer reads but cannot write.
    let viewer = books.member_token(&owner, "v@acme.test", "viewer").await;
    assert_eq!(
        books
            .call(
                "GET",
                &format!("/api/journal-entries/{id}"),
                Some(&viewer),
                None
            )
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = books
        .call(
            "POST",
            "/api/journal-entries",
            Some(&viewer),
            Some(json!({"date": "2026-01-01", "lines": sale("1.00")})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("FORBIDDEN"))
    );
    let (status, _) = books
        .call(
            "POST",
            "/api/users",
            Some(&viewer),
            Some(json!({"email": "w@acme.test", "password": "viewer password", "role": "owner"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Another organization sees none of it.
    let stranger = books.register("s@other.test", "USD").await;
    assert_eq!(
        books
            .call(
                "GET",
                &format!("/api/journal-entries/{id}"),
                Some(&stranger),
                None
            )
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        books
            .call(
                "POST",
                &format!("/api/journal-entries/{id}/reverse"),
                Some(&stranger),
                None
            )
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(books.balance(&stranger, "1000").await, "0.00");
    assert_eq!(books.balance(&owner, "1000").await, "3.00");
}

async fn reports_as_of_past_dates(door: Door) {
    let books = Books::start(door).await;
    let token = books.register("d@acme.test", "USD").await;
    books.post(&token, "2026-01-10", sale("100.00")).await;
    books.post(&token, "2026-02-10", sale("50.00")).await;
    books.post(&token, "2026-03-10", sale("25.00")).await;
    for (as_of, total) in [
        ("2026-01-09", "0.00"),
        ("2026-01-31", "100.00"),
        ("2026-02-10", "150.00"),
        ("2027-01-01", "175.00"),
    ] {
        assert_eq!(
            books.trial_balance(&token, as_of).await["total_debit"],
            total,
            "as of {as_of}"
        );
    }
    let (_, income) = books
        .call(
            "GET",
            "/api/reports/income-statement?from=2026-02-01&to=2026-02-28",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(income["totals"][0]["revenue"], "50.00");
    let (_, ledger) = books
        .call(
            "GET",
            "/api/reports/general-ledger?account=4000&from=2026-02-01&to=2026-03-31",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(ledger["opening_balance"], "-100.00");
    assert_eq!(ledger["closing_balance"], "-175.00");
    assert_eq!(ledger["rows"].as_array().unwrap().len(), 2);
    let (status, body) = books
        .call(
            "GET",
            "/api/reports/trial-balance?as_of=yesterday",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("INVALID_DATE"))
    );
}

async fn batches_post_atomically(door: Door) {
    let books = Books::start(door).await;
    let token = books.register("batch@acme.test", "USD").await;
    let entries: Vec<Value> = (0..200)
        .map(|i| json!({"date": "2026-04-01", "memo": format!("sale {i}"), "lines": sale("1.25")}))
        .collect();
    assert_eq!(books.post_batch(&token, entries).await.len(), 200);
    assert_eq!(books.balance(&token, "1000").await, "250.00");
    // One bad entry refuses the whole batch and names it.
    let mut entries: Vec<Value> = (0..5)
        .map(|_| json!({"date": "2026-04-01", "lines": sale("1.00")}))
        .collect();
    entries[3] = json!({"date": "2026-04-01", "lines": [{"account": "1000", "debit": "1.00"}, {"account": "4000", "credit": "2.00"}]});
    let (status, body) = books
        .call(
            "POST",
            "/api/journal-entries/batch",
            Some(&token),
            Some(json!({"entries": entries})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"].as_str().unwrap().starts_with("Entry 4:"),
        "{body}"
    );
    assert_eq!(books.balance(&token, "1000").await, "250.00");
}

async fn currencies_follow_iso_4217(door: Door) {
    let books = Books::start(door).await;
    let yen = books.register("jp@acme.test", "JPY").await;
    books.post(&yen, "2026-01-01", sale("1500")).await;
    assert_eq!(books.balance(&yen, "1000").await, "1500");
    let (status, body) = books
        .call(
            "POST",
            "/api/journal-entries",
            Some(&yen),
            Some(json!({"date": "2026-01-01", "lines": sale("1500.5")})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("INVALID_AMOUNT"))
    );
    let dinar = books.register("kw@acme.test", "KWD").await;
    books.post(&dinar, "2026-01-01", sale("1.005")).await;
    assert_eq!(books.balance(&dinar, "4000").await, "-1.005");
}

async fn parallel_posts_to_hot_accounts_keep_exact_balances(door: Door) {
    let books = std::sync::Arc::new(Books::start(door).await);
    let token = std::sync::Arc::new(books.register("hot@acme.test", "USD").await);
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let (books, token) = (books.clone(), token.clone());
            tokio::spawn(async move {
                for i in 0..40 {
                    // Alternate directions so locks are taken from both sides.
                    let lines = if (client + i) % 2 == 0 {
                        json!([{"account": "1000", "debit": "0.07"}, {"account": "4000", "credit": "0.07"}])
                    } else {
                        json!([{"account": "4000", "debit": "0.03"}, {"account": "1000", "credit": "0.03"}])
                    };
                    books.post(&token, "2026-05-01", lines).await;
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    // 8 clients x 40 posts, half +0.07 and half -0.03: 160 x 0.04 = 6.40.
    assert_eq!(books.balance(&token, "1000").await, "6.40");
    assert_eq!(books.balance(&token, "4000").await, "-6.40");
    let tb = books.trial_balance(&token, "2026-12-31").await;
    assert_eq!(tb["total_debit"], tb["total_credit"]);
}

/// Row-level security on PostgreSQL: even a query that forgets its
/// `organization_id` condition, made with the application's own role, sees
/// and touches only the organization its transaction names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_is_a_second_wall_on_postgres() {
    use sqlx::{Connection as _, PgConnection};

    let books = std::sync::Arc::new(Books::start(Store::Postgres).await);
    let (a, org_a) = books.register_organization("a@wall.test").await;
    let (b, org_b) = books.register_organization("b@wall.test").await;
    // Both organizations post at once, so the committer's groups mix them.
    let clients: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .flat_map(|token| (0..4).map(move |_| token.clone()))
        .map(|token| {
            let books = books.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    books.post(&token, "2026-05-01", sale("1.00")).await;
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(books.balance(&a, "1000").await, "40.00");
    assert_eq!(books.balance(&b, "1000").await, "40.00");
    let (status, _) = books
        .call(
            "POST",
            "/api/customers",
            Some(&b),
            Some(json!({"name": "Bea"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let pg = books.postgres().unwrap();
    let mut app = PgConnection::connect(&pg.url()).await.unwrap();
    let count = |table: &str| format!("SELECT count(*) FROM {table}");

    // The rows exist: the superuser, whom no policy binds, sees both organizations.
    let mut admin = PgConnection::connect(&pg.admin_url()).await.unwrap();
    let lines: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count("journal_lines")))
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(lines, 160);

    // Outside a scoped transaction the application's role sees nothing.
    for table in [
        "organizations",
        "users",
        "accounts",
        "journal_entries",
        "journal_lines",
        "account_days",
        "customers",
    ] {
        let seen: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count(table)))
            .fetch_one(&mut app)
            .await
            .unwrap();
        assert_eq!(seen, 0, "{table} is visible without a scope");
    }

    // Scoped to A, even a query naming B's rows finds none of them.
    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('accubooks.organization', $1, true)")
        .bind(&org_a)
        .execute(&mut *tx)
        .await
        .unwrap();
    let orgs: Vec<String> = sqlx::query_scalar("SELECT DISTINCT organization_id FROM accounts")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(orgs, vec![org_a.clone()]);
    let lines: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count("journal_lines")))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(lines, 80, "A's own lines only");
    let customers: i64 =
        sqlx::query_scalar("SELECT count(*) FROM customers WHERE organization_id = $1")
            .bind(&org_b)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    assert_eq!(customers, 0);
    let moved = sqlx::query("UPDATE accounts SET balance = 0 WHERE organization_id = $1")
        .bind(&org_b)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(moved, 0, "B's balances cannot be touched from A's scope");
    // Writing a row for B from A's scope is refused by the policy.
    let refused = sqlx::query(
        "INSERT INTO accounts (organization_id, code, name, type, currency) VALUES ($1, '9999', 'x', 'asset', 'USD')",
    )
    .bind(&org_b)
    .execute(&mut *tx)
    .await
    .unwrap_err();
    assert!(
        refused.to_string().contains("row-level security"),
        "{refused}"
    );
    tx.rollback().await.unwrap();

    // Posted entries are immutable in the database itself, scope or not.
    for sql in [
        "UPDATE journal_lines SET amount = amount * 2",
        "DELETE FROM journal_entries",
    ] {
        let refused = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut admin)
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("immutable"),
            "{sql}: {refused}"
        );
    }

    // An entry of A that names one of B's accounts (no route lets one; this
    // goes round them) is refused (here by the policy on journal_lines,
    // before the committer's own account check), and nothing of it is written.
    let b_cash: i64 =
        sqlx::query_scalar("SELECT id FROM accounts WHERE organization_id = $1 AND code = '1000'")
            .bind(&org_b)
            .fetch_one(&mut admin)
            .await
            .unwrap();
    let smuggled = raw_entry(&org_a, b_cash, b_cash);
    let refused = books
        .server
        .app
        .ledger()
        .committer()
        .post(vec![smuggled], None)
        .await
        .unwrap_err();
    assert!(
        format!("{refused:?}").contains("row-level security"),
        "{refused:?}"
    );
    let entries: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count("journal_entries")))
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert_eq!(entries, 80);

    // Nothing above changed B's books.
    assert_eq!(books.balance(&b, "1000").await, "40.00");
}

/// Journal lines have no foreign key to accounts (migration 0003 dropped it
/// for speed); the committer's own check stands in for it. On SQLite it is
/// the only guard (PostgreSQL's row policy refuses such a line too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committer_refuses_lines_on_missing_accounts() {
    let books = Books::start(Store::Sqlite).await;
    let (token, org) = books.register_organization("ghost@acme.test").await;
    let ghost = raw_entry(&org, 999_999, 999_998);
    let refused = books
        .server
        .app
        .ledger()
        .committer()
        .post(vec![ghost], None)
        .await
        .unwrap_err();
    assert!(
        format!("{refused:?}").contains("UNKNOWN_ACCOUNT"),
        "{refused:?}"
    );
    let tb = books.trial_balance(&token, "2026-12-31").await;
    assert_eq!(tb["total_debit"], "0.00", "{tb}");
}

/// A 1.00 entry of `organization` from `debit` to `credit` (account ids),
/// built past the validation every route applies, to test the walls behind it.
fn raw_entry(organization: &str, debit: i64, credit: i64) -> accubooks_core::ledger::ValidEntry {
    let line = |account_id, amount| accubooks_core::ledger::ValidLine {
        account_id,
        account_code: "1000".to_owned(),
        currency: "USD".to_owned(),
        amount,
    };
    accubooks_core::ledger::ValidEntry {
        organization: accubooks_core::OrganizationId::parse(organization).unwrap(),
        date: chrono::NaiveDate::from_ymd_opt(2026, 5, 2).unwrap(),
        memo: "raw".to_owned(),
        reverses: None,
        lines: vec![line(debit, 100), line(credit, -100)],
        metadata: Default::default(),
        kind: Default::default(),
    }
}

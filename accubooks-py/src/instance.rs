//! The operations behind every Python handle, as plain async Rust.
//!
//! They follow the rules of the HTTP routes of the core (the same ledger
//! functions, the same dependency guard and request timeout, the same role
//! checks, login limiter and `Idempotency-Key` semantics), so the Python API
//! and the HTTP API cannot disagree. Nothing here touches Python.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accubooks_core::auth::{Principal, Role};
use accubooks_core::http::{ApiError, DATABASE_UNAVAILABLE};
use accubooks_core::ledger::idempotency::{self, IdempotencyKey, Stored};
use accubooks_core::ledger::{
    self, Account, AccountType, Credentials, EntryInput, ExportFormat, LedgerError, NewAccount,
    NewUser, Registration,
};
use accubooks_core::limits::Work;
use accubooks_core::{AccuBooks, Config, Phase, deps};
use chrono::NaiveDate;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::{Failure, Outcome, invalid};
use crate::server::ServerTask;

/// How long a token from [`Instance::token`] is valid, as the HTTP login's.
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Most entries one batch may carry, as over HTTP.
const MAX_BATCH: usize = 10_000;

/// The paths whose `Idempotency-Key` namespace the Python calls share.
const ENTRY_PATH: &str = "/api/journal-entries";
const BATCH_PATH: &str = "/api/journal-entries/batch";

/// One AccuBooks instance and what the bindings keep beside it.
pub(crate) struct Instance {
    app: AccuBooks,
    closed: AtomicBool,
    servers: Mutex<Vec<Arc<ServerTask>>>,
}

/// The organization a handle works for, and who opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Org {
    /// The organization.
    pub(crate) id: Uuid,
    /// The user who registered or logged in; `None` when opened by id.
    pub(crate) user: Option<Uuid>,
    /// What the handle may do.
    pub(crate) role: Role,
}

impl Org {
    fn from_principal(principal: Principal) -> Self {
        Org {
            id: principal.organization,
            user: Some(principal.user),
            role: principal.role,
        }
    }

    fn require(&self, min: Role) -> Outcome<()> {
        if self.role < min {
            return Err(ApiError::Forbidden("Your role may not do this.").into());
        }
        Ok(())
    }

    fn key(&self) -> String {
        self.id.to_string()
    }
}

/// The lowercase name of a role.
pub(crate) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Accountant => "accountant",
        Role::Viewer => "viewer",
    }
}

fn parse_role(text: &str) -> Outcome<Role> {
    match text {
        "owner" => Ok(Role::Owner),
        "accountant" => Ok(Role::Accountant),
        "viewer" => Ok(Role::Viewer),
        _ => Err(invalid(
            "INVALID_FIELD",
            format!("{text:?} is not a role: use owner, accountant or viewer."),
        )),
    }
}

fn parse_date(text: &str) -> Outcome<NaiveDate> {
    Ok(ledger::parse_date(text)?)
}

fn date_or_today(text: Option<&str>) -> Outcome<NaiveDate> {
    match text {
        Some(text) => parse_date(text),
        None => Ok(chrono::Utc::now().date_naive()),
    }
}

/// An account as `GET /api/accounts` shows it.
fn account_json(account: &Account) -> Value {
    json!({
        "id": account.id,
        "code": account.code,
        "name": account.name,
        "type": account.kind,
        "currency": account.currency,
        "parent": account.parent,
        "balance": account.balance_text(),
    })
}

fn to_value<T: serde::Serialize>(value: &T) -> Outcome<Value> {
    serde_json::to_value(value).map_err(|_| Failure::Api(ApiError::Internal))
}

fn created<T: serde::Serialize>(body: &T) -> (u16, String) {
    (201, serde_json::to_string(body).unwrap_or_default())
}

impl Instance {
    /// Builds and starts an instance; must run on the shared runtime. Never
    /// waits on a dependency.
    pub(crate) async fn start(config: Config) -> Outcome<Arc<Instance>> {
        let app = AccuBooks::builder(config).build().await?;
        Ok(Arc::new(Instance {
            app,
            closed: AtomicBool::new(false),
            servers: Mutex::new(Vec::new()),
        }))
    }

    /// The core's handle.
    pub(crate) fn app(&self) -> &AccuBooks {
        &self.app
    }

    /// Whether [`Instance::close`] was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Runs one operation like the HTTP pipeline runs a route that needs the
    /// database: refused at once while the database is known to be down (or
    /// the handle is closed), and bounded by `REQUEST_TIMEOUT_MS`.
    async fn guarded<T, F>(&self, operation: F) -> Outcome<T>
    where
        F: Future<Output = Outcome<T>>,
    {
        if self.is_closed() {
            return Err(closed());
        }
        if let Some(db) = self.app.registry().get(deps::DATABASE)
            && !db.is_available()
        {
            return Err(DATABASE_UNAVAILABLE.into());
        }
        let limit = self.app.config().request_timeout;
        tokio::time::timeout(limit, operation)
            .await
            .unwrap_or_else(|_| {
                Err(ApiError::Timeout {
                    timeout_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                }
                .into())
            })
    }

    // ---- monitoring: kept state only, never a dependency ----

    /// The body of `GET /api/monitoring/health`.
    pub(crate) fn health(&self) -> Value {
        serde_json::to_value(self.app.health().body).expect("the health body serializes")
    }

    /// The Prometheus text of `GET /api/monitoring/metrics`.
    pub(crate) fn metrics(&self) -> String {
        self.app.render_metrics()
    }

    /// The lifecycle phase: `starting`, `ready` or `draining`.
    pub(crate) fn phase(&self) -> &'static str {
        self.app.phase().as_str()
    }

    /// Whether `/ready` would answer 200.
    pub(crate) fn ready(&self) -> bool {
        self.app.phase() == Phase::Ready
    }

    /// Whether `/live` would answer 200: until the handle is closed.
    pub(crate) fn live(&self) -> bool {
        !self.is_closed()
    }

    /// Waits until ready (`true`), or until `timeout` passes or the instance
    /// drains (`false`).
    pub(crate) async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.app.phase() {
                Phase::Ready => return true,
                Phase::Draining => return false,
                Phase::Starting if Instant::now() >= deadline => return false,
                Phase::Starting => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    /// Adds a server to stop on [`Instance::close`].
    pub(crate) fn track(&self, server: Arc<ServerTask>) {
        let mut servers = self.servers.lock().unwrap_or_else(|e| e.into_inner());
        servers.retain(|s| !s.is_finished());
        servers.push(server);
    }

    /// Drains and stops the servers, then stops the monitors and closes the
    /// pools. Idempotent.
    pub(crate) async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.app.begin_drain();
        let servers = std::mem::take(&mut *self.servers.lock().unwrap_or_else(|e| e.into_inner()));
        let limit = self.app.config().drain_timeout + Duration::from_secs(1);
        for server in servers {
            // Errors of a server that failed were the caller's to see from
            // stop(); closing goes on regardless.
            let _ = server.stop(limit).await;
        }
        self.app.close().await;
    }

    // ---- identity ----

    /// Creates an organization, its owner and its default chart.
    pub(crate) async fn register(&self, registration: Registration) -> Outcome<Org> {
        self.guarded(async {
            let principal = ledger::register(
                self.app.database(),
                self.app.password_hashing(),
                registration,
            )
            .await?;
            Ok(Org::from_principal(principal))
        })
        .await
    }

    /// Checks credentials, with the attempt budgets of the HTTP route (per
    /// e-mail address; an in-process caller has no client address).
    pub(crate) async fn login(&self, credentials: Credentials) -> Outcome<Org> {
        self.guarded(async {
            let principal = ledger::login(
                self.app.database(),
                self.app.password_hashing(),
                self.app.auth_limits(),
                None,
                credentials,
            )
            .await?;
            Ok(Org::from_principal(principal))
        })
        .await
    }

    /// Opens an existing organization by id, with owner rights (the host
    /// itself is calling). Every organization has its default chart, so one
    /// without accounts does not exist.
    pub(crate) async fn organization(&self, id: &str) -> Outcome<Org> {
        let missing = || {
            Failure::from(ApiError::NotFound(format!(
                "There is no organization {id:?}."
            )))
        };
        let uuid: Uuid = id.trim().parse().map_err(|_| missing())?;
        self.guarded(async {
            let accounts = ledger::list_accounts(self.app.database(), &uuid.to_string()).await?;
            if accounts.is_empty() {
                return Err(missing());
            }
            Ok(Org {
                id: uuid,
                user: None,
                role: Role::Owner,
            })
        })
        .await
    }

    /// A bearer token for the user who opened `org`, for the HTTP API.
    pub(crate) fn token(&self, org: &Org) -> Outcome<String> {
        let user = org.user.ok_or(ApiError::Forbidden(
            "This organization was opened by id, not by a user: register or log in to get a token.",
        ))?;
        let principal = Principal {
            user,
            organization: org.id,
            role: org.role,
        };
        Ok(self.app.tokens().issue(principal, TOKEN_LIFETIME))
    }

    /// Adds a user to the organization (owners only).
    pub(crate) async fn create_user(
        &self,
        org: &Org,
        email: String,
        password: String,
        role: &str,
    ) -> Outcome<Value> {
        org.require(Role::Owner)?;
        let role = parse_role(role)?;
        self.guarded(async {
            let new = NewUser {
                email,
                password,
                role,
            };
            let user = ledger::create_user(
                self.app.database(),
                self.app.password_hashing(),
                org.id,
                new,
            )
            .await?;
            to_value(&user)
        })
        .await
    }

    // ---- the chart of accounts ----

    /// Opens an account.
    pub(crate) async fn create_account(
        &self,
        org: &Org,
        code: String,
        name: String,
        kind: &str,
        currency: String,
        parent: Option<String>,
    ) -> Outcome<Value> {
        org.require(Role::Accountant)?;
        let kind = AccountType::parse(kind).ok_or_else(|| {
            invalid(
                "INVALID_FIELD",
                format!("{kind:?} is not an account type: use asset, liability, equity, revenue or expense."),
            )
        })?;
        self.guarded(async {
            let new = NewAccount {
                code,
                name,
                kind,
                currency,
                parent,
            };
            let account =
                ledger::create_account(self.app.database(), &org.key(), new, None).await?;
            Ok(account_json(&account))
        })
        .await
    }

    /// The accounts with their balances, by code.
    pub(crate) async fn accounts(&self, org: &Org) -> Outcome<Value> {
        self.guarded(async {
            let accounts = ledger::list_accounts(self.app.database(), &org.key()).await?;
            Ok(Value::Array(accounts.iter().map(account_json).collect()))
        })
        .await
    }

    // ---- the journal ----

    /// Looks an `Idempotency-Key` up: `Ok(Err(answer))` replays a stored
    /// answer, `Ok(Ok(key))` is a new key for the write.
    async fn check_key(
        &self,
        org: &Org,
        key: Option<String>,
        path: &str,
        body: &Value,
    ) -> Outcome<Result<Option<IdempotencyKey>, Value>> {
        let Some(key) = key else { return Ok(Ok(None)) };
        if !IdempotencyKey::is_valid_key(&key) {
            return Err(ApiError::malformed(
                "An Idempotency-Key has 1 to 200 visible ASCII characters.",
            )
            .into());
        }
        let bytes = serde_json::to_vec(body).map_err(|_| Failure::Api(ApiError::Internal))?;
        let key = IdempotencyKey::new(&org.key(), &key, "POST", path, &bytes);
        match idempotency::lookup(self.app.database(), &key).await? {
            Stored::Absent => Ok(Ok(Some(key))),
            stored => replayed(stored).map(Err),
        }
    }

    /// Replays the answer stored under `key` by a concurrent call that
    /// committed first.
    async fn replay(&self, key: &IdempotencyKey) -> Outcome<Value> {
        replayed(idempotency::lookup(self.app.database(), key).await?)
    }

    /// Validates and posts one entry; answers it as posted.
    pub(crate) async fn post_entry(
        &self,
        org: &Org,
        input: EntryInput,
        key: Option<String>,
    ) -> Outcome<Value> {
        org.require(Role::Accountant)?;
        self.guarded(async {
            let body = to_value(&input)?;
            let key = match self.check_key(org, key, ENTRY_PATH, &body).await? {
                Ok(key) => key,
                Err(answer) => return Ok(answer),
            };
            let entry = ledger::prepare(self.app.database(), &org.key(), &input).await?;
            let shown = entry.clone();
            let idempotency = key.clone().map(|key| {
                let render: ledger::Render =
                    Box::new(move |ids: &[i64]| created(&shown.posted(ids[0])));
                (key, render)
            });
            match self
                .app
                .committer()
                .post(vec![entry.clone()], idempotency)
                .await
            {
                Ok(ids) => to_value(&entry.posted(ids[0])),
                Err(err) => self.lost_race(err, key).await,
            }
        })
        .await
    }

    /// Validates every entry, then posts them all or none in one job of the
    /// committer; answers their ids in order.
    pub(crate) async fn post_entries(
        &self,
        org: &Org,
        inputs: Vec<EntryInput>,
        key: Option<String>,
    ) -> Outcome<Vec<i64>> {
        org.require(Role::Accountant)?;
        if inputs.is_empty() || inputs.len() > MAX_BATCH {
            return Err(invalid(
                "INVALID_BATCH",
                format!("A batch carries 1 to {MAX_BATCH} entries."),
            ));
        }
        let answer = self
            .guarded(async {
                let body = json!({ "entries": to_value(&inputs)? });
                let key = match self.check_key(org, key, BATCH_PATH, &body).await? {
                    Ok(key) => key,
                    Err(answer) => return Ok(answer),
                };
                let _slot = self
                    .app
                    .work_limits()
                    .acquire_batch(&org.key(), inputs.len())
                    .map_err(ApiError::from)?;
                let entries = ledger::prepare_batch(self.app.database(), &org.key(), &inputs)
                    .await
                    .map_err(|(index, err)| match ApiError::from(err) {
                        ApiError::Invalid { code, message } => ApiError::Invalid {
                            code,
                            message: format!("Entry {}: {message}", index + 1),
                        },
                        other => other,
                    })?;
                let idempotency = key.clone().map(|key| {
                    let render: ledger::Render =
                        Box::new(|ids: &[i64]| created(&json!({ "ids": ids })));
                    (key, render)
                });
                match self.app.committer().post(entries, idempotency).await {
                    Ok(ids) => Ok(json!({ "ids": ids })),
                    Err(err) => self.lost_race(err, key).await,
                }
            })
            .await?;
        serde_json::from_value::<Vec<i64>>(answer["ids"].clone())
            .map_err(|_| Failure::Api(ApiError::Internal))
    }

    /// A write failed: when another call with the same key committed first,
    /// answer what it answered, as the HTTP pipeline does.
    async fn lost_race(&self, err: LedgerError, key: Option<IdempotencyKey>) -> Outcome<Value> {
        match (err, key) {
            (
                LedgerError::Conflict {
                    code: "IDEMPOTENCY_KEY_IN_USE",
                    ..
                },
                Some(key),
            ) => self.replay(&key).await,
            (err, _) => Err(err.into()),
        }
    }

    /// One entry of the organization.
    pub(crate) async fn entry(&self, org: &Org, id: i64) -> Outcome<Value> {
        self.guarded(async {
            to_value(&ledger::get_entry(self.app.database(), &org.key(), id).await?)
        })
        .await
    }

    /// Posts the mirror of an entry, dated `date` (default: the entry's).
    pub(crate) async fn reverse_entry(
        &self,
        org: &Org,
        id: i64,
        date: Option<String>,
        key: Option<String>,
    ) -> Outcome<Value> {
        org.require(Role::Accountant)?;
        let date = date.as_deref().map(parse_date).transpose()?;
        self.guarded(async {
            let body = json!({ "date": date });
            let path = format!("{ENTRY_PATH}/{id}/reverse");
            let key = match self.check_key(org, key, &path, &body).await? {
                Ok(key) => key,
                Err(answer) => return Ok(answer),
            };
            let render: ledger::RenderEntry = created::<ledger::Entry>;
            let reversal = ledger::post_reversal(
                self.app.database(),
                self.app.committer(),
                &org.key(),
                id,
                date,
                key.clone().map(|key| (key, render)),
            )
            .await;
            match reversal {
                Ok(entry) => to_value(&entry),
                Err(err) => self.lost_race(err, key).await,
            }
        })
        .await
    }

    // ---- reports ----

    /// The trial balance at the end of `as_of` (default: today, UTC).
    pub(crate) async fn trial_balance(&self, org: &Org, as_of: Option<String>) -> Outcome<Value> {
        let as_of = date_or_today(as_of.as_deref())?;
        self.guarded(async {
            to_value(&ledger::trial_balance(self.app.database(), &org.key(), as_of).await?)
        })
        .await
    }

    /// The balance sheet at the end of `as_of` (default: today, UTC).
    pub(crate) async fn balance_sheet(&self, org: &Org, as_of: Option<String>) -> Outcome<Value> {
        let as_of = date_or_today(as_of.as_deref())?;
        self.guarded(async {
            to_value(&ledger::balance_sheet(self.app.database(), &org.key(), as_of).await?)
        })
        .await
    }

    /// Revenue and expenses between two dates, inclusive.
    pub(crate) async fn income_statement(
        &self,
        org: &Org,
        from: String,
        to: String,
    ) -> Outcome<Value> {
        let (from, to) = (parse_date(&from)?, parse_date(&to)?);
        self.guarded(async {
            to_value(&ledger::income_statement(self.app.database(), &org.key(), from, to).await?)
        })
        .await
    }

    /// The books up to the end of `as_of` (default: today, UTC) as an
    /// hledger or beancount journal, with a balance assertion per account.
    pub(crate) async fn export_ledger(
        &self,
        org: &Org,
        format: &str,
        as_of: Option<String>,
    ) -> Outcome<String> {
        let format = ExportFormat::parse(format).ok_or_else(|| {
            invalid(
                "INVALID_FORMAT",
                format!("{format:?} is not an export format: use \"hledger\" or \"beancount\"."),
            )
        })?;
        let as_of = date_or_today(as_of.as_deref())?;
        self.guarded(async {
            let _slot = self
                .app
                .work_limits()
                .acquire(Work::Export, &org.key())
                .map_err(ApiError::from)?;
            Ok(ledger::export_ledger(self.app.database(), &org.key(), format, as_of).await?)
        })
        .await
    }

    /// One account's postings between two dates, with running balances.
    pub(crate) async fn general_ledger(
        &self,
        org: &Org,
        account: String,
        from: String,
        to: String,
    ) -> Outcome<Value> {
        let (from, to) = (parse_date(&from)?, parse_date(&to)?);
        self.guarded(async {
            let report =
                ledger::general_ledger(self.app.database(), &org.key(), &account, from, to).await?;
            to_value(&report)
        })
        .await
    }
}

fn replayed(stored: Stored) -> Outcome<Value> {
    match stored {
        Stored::Replay { body, .. } => {
            serde_json::from_str(&body).map_err(|_| Failure::Api(ApiError::Internal))
        }
        Stored::Mismatch => Err(invalid(
            "IDEMPOTENCY_KEY_REUSED",
            "This Idempotency-Key was used with a different request; use a new key.",
        )),
        // Entries store their answer with their write: never pending here.
        Stored::Absent | Stored::Pending => Err(Failure::Api(ApiError::Internal)),
    }
}

/// The failure of any call on a closed handle.
pub(crate) fn closed() -> Failure {
    ApiError::Unavailable {
        code: "HANDLE_CLOSED",
        message: "This AccuBooks handle is closed; open a new one.",
        retry_after: 1,
    }
    .into()
}

impl Drop for Instance {
    fn drop(&mut self) {
        // A handle dropped without close(): stop its monitors and pools
        // rather than leaving them running for the life of the process.
        if !self.is_closed() {
            let app = self.app.clone();
            crate::runtime::runtime().spawn(async move { app.close().await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use accubooks_core::ledger::LineInput;
    use accubooks_core::money::AmountText;

    fn line(account: &str, debit: Option<&str>, credit: Option<&str>) -> LineInput {
        LineInput {
            account: account.to_owned(),
            debit: debit.map(|d| AmountText(d.to_owned())),
            credit: credit.map(|c| AmountText(c.to_owned())),
        }
    }

    fn sale(amount: &str) -> EntryInput {
        EntryInput {
            date: "2026-01-31".to_owned(),
            memo: "sale".to_owned(),
            lines: vec![
                line("1000", Some(amount), None),
                line("4000", None, Some(amount)),
            ],
        }
    }

    fn code(failure: Failure) -> &'static str {
        match failure {
            Failure::Api(err) => err.code(),
            other => panic!("expected an API failure, got {other:?}"),
        }
    }

    async fn sqlite() -> (tempfile::TempDir, Arc<Instance>) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/books.db", dir.path().display());
        let config = Config::from_vars([
            ("DATABASE_URL", url.as_str()),
            ("ACCUBOOKS_ENV", "test"),
            // A closed port: Redis is optional.
            ("REDIS_URL", "redis://127.0.0.1:9"),
            ("DB_INIT_TIMEOUT_MS", "3000"),
        ])
        .unwrap();
        let instance = Instance::start(config).await.unwrap();
        assert!(instance.wait_ready(Duration::from_secs(10)).await);
        (dir, instance)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn books_follow_the_http_rules() {
        let (_dir, books) = sqlite().await;
        let registration = Registration {
            email: "Owner@Example.com".to_owned(),
            password: "correct horse battery".to_owned(),
            organization: "Acme".to_owned(),
            currency: None,
        };
        let org = books.register(registration.clone()).await.unwrap();
        assert_eq!(org.role, Role::Owner);
        assert_eq!(
            code(books.register(registration).await.unwrap_err()),
            "EMAIL_TAKEN"
        );

        let posted = books
            .post_entry(&org, sale("12.50"), Some("k1".into()))
            .await
            .unwrap();
        assert_eq!(posted["lines"][0]["debit"], "12.50");
        let again = books
            .post_entry(&org, sale("12.50"), Some("k1".into()))
            .await
            .unwrap();
        assert_eq!(
            again["id"], posted["id"],
            "same key, same body: the first answer"
        );
        let reused = books
            .post_entry(&org, sale("1.00"), Some("k1".into()))
            .await;
        assert_eq!(code(reused.unwrap_err()), "IDEMPOTENCY_KEY_REUSED");

        let unbalanced = EntryInput {
            lines: vec![
                line("1000", Some("1.00"), None),
                line("4000", None, Some("2.00")),
            ],
            ..sale("1.00")
        };
        assert_eq!(
            code(books.post_entry(&org, unbalanced, None).await.unwrap_err()),
            "UNBALANCED_ENTRY"
        );

        let ids = books
            .post_entries(&org, vec![sale("1.00"), sale("2.00")], None)
            .await
            .unwrap();
        assert_eq!(ids.len(), 2);
        let id = posted["id"].as_i64().unwrap();
        let key = || Some("reverse-once".to_owned());
        let first = books.reverse_entry(&org, id, None, key()).await.unwrap();
        // The same key again replays the first answer; without one, the
        // entry is already reversed.
        assert_eq!(
            books.reverse_entry(&org, id, None, key()).await.unwrap(),
            first
        );
        assert_eq!(
            code(books.reverse_entry(&org, id, None, None).await.unwrap_err()),
            "ALREADY_REVERSED"
        );
        let trial = books
            .trial_balance(&org, Some("2026-12-31".into()))
            .await
            .unwrap();
        assert_eq!(trial["total_debit"], "3.00");

        let viewer = books
            .create_user(
                &org,
                "viewer@example.com".into(),
                "long enough pw".into(),
                "viewer",
            )
            .await
            .unwrap();
        assert_eq!(viewer["role"], "viewer");
        let viewer = books
            .login(Credentials {
                email: "viewer@example.com".into(),
                password: "long enough pw".into(),
            })
            .await
            .unwrap();
        assert_eq!(
            code(
                books
                    .post_entry(&viewer, sale("1.00"), None)
                    .await
                    .unwrap_err()
            ),
            "FORBIDDEN"
        );
        assert!(books.token(&viewer).is_ok());

        let by_id = books.organization(&org.id.to_string()).await.unwrap();
        assert!(books.token(&by_id).is_err());
        assert_eq!(
            code(
                books
                    .organization(&Uuid::new_v4().to_string())
                    .await
                    .unwrap_err()
            ),
            "NOT_FOUND"
        );

        books.close().await;
        assert_eq!(
            code(books.accounts(&org).await.unwrap_err()),
            "HANDLE_CLOSED"
        );
        assert!(!books.live());
    }
}

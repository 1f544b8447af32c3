//! The instance behind every Python handle, and the steps all its book
//! calls share: the handle must be open, and the caller is the user as the
//! books know them now. Everything else (role checks, the dependency guard,
//! time limits, `Idempotency-Key` replay) is the core's use-case layer,
//! [`accubooks_core::usecases`], which the HTTP routes call too. Nothing
//! here touches Python.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accubooks_core::http::ApiError;
use accubooks_core::identity::{Credentials, Registration};
use accubooks_core::identity::{Principal, Role};
use accubooks_core::usecases::{self, Books, Client, ClientKey};
use accubooks_core::{AccuBooks, Config, Phase};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::convert::{Payload, Typed};
use crate::error::{Failure, Outcome, invalid};
use crate::schema::Schema;
use crate::server::ServerTask;

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
    /// The role it was opened with.
    pub(crate) role: Role,
}

impl Org {
    fn from_principal(principal: Principal) -> Self {
        Org {
            id: principal.organization,
            user: (!principal.user.is_nil()).then_some(principal.user),
            role: principal.role,
        }
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

/// A role from its name.
pub(crate) fn parse_role(text: &str) -> Outcome<Role> {
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

/// An optional `Idempotency-Key` argument.
pub(crate) fn key(text: Option<String>) -> Option<ClientKey> {
    text.map(ClientKey::new)
}

/// A page of a list as the JSON the HTTP API would send, with the cursor
/// of the next page (the HTTP API's `Link` header).
pub(crate) fn paged<T: serde::Serialize + ToSchema + 'static>(
    result: usecases::Result<accubooks_core::paging::Page<Vec<T>>>,
) -> Outcome<Payload> {
    page_of(result, Schema::list_of::<T>())
}

/// A page of a report (the report with this page's rows).
pub(crate) fn report_page<T: serde::Serialize + ToSchema + 'static>(
    result: usecases::Result<accubooks_core::paging::Page<T>>,
) -> Outcome<Payload> {
    page_of(result, Schema::of::<T>())
}

fn page_of<T: serde::Serialize>(
    result: usecases::Result<accubooks_core::paging::Page<T>>,
    schema: Arc<Schema>,
) -> Outcome<Payload> {
    let page = result.map_err(ApiError::from)?;
    let value = serde_json::to_value(page.items).map_err(|_| Failure::Api(ApiError::Internal))?;
    Ok(Payload::Page(
        Typed { value, schema },
        page.next.map(|next| next.to_string()),
    ))
}

/// A use case's answer as the JSON value the HTTP API would send, with the
/// schema of its type.
pub(crate) fn json<T: serde::Serialize + ToSchema + 'static>(
    result: usecases::Result<T>,
) -> Outcome<Typed> {
    let value = result.map_err(ApiError::from)?;
    let value = serde_json::to_value(value).map_err(|_| Failure::Api(ApiError::Internal))?;
    Ok(Typed {
        value,
        schema: Schema::of::<T>(),
    })
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

    /// The use cases.
    pub(crate) fn books(&self) -> Books<'_> {
        self.app.books()
    }

    /// The caller behind a handle, as the books know them now: a user's
    /// current role (a demotion applies at once), or the embedding program
    /// with owner rights for a handle opened by id.
    pub(crate) async fn caller(&self, org: &Org) -> Outcome<Principal> {
        if self.is_closed() {
            return Err(closed());
        }
        let claimed = Principal {
            user: org.user.unwrap_or_else(Uuid::nil),
            organization: org.id,
            role: org.role,
        };
        match org.user {
            Some(_) => Ok(self
                .books()
                .current_principal(claimed)
                .await
                .map_err(ApiError::from)?),
            None => Ok(claimed),
        }
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
        self.open()?;
        let principal = self.books().register(registration, Client::Host).await;
        Ok(Org::from_principal(principal.map_err(ApiError::from)?))
    }

    /// Checks credentials, within the e-mail address's attempt budget (an
    /// in-process caller has no client address).
    pub(crate) async fn login(&self, credentials: Credentials) -> Outcome<Org> {
        self.open()?;
        let principal = self.books().login(credentials, Client::Host).await;
        Ok(Org::from_principal(principal.map_err(ApiError::from)?))
    }

    /// Opens an existing organization by id, with owner rights (the host
    /// itself is calling).
    pub(crate) async fn organization(&self, id: &str) -> Outcome<Org> {
        self.open()?;
        let missing = || ApiError::NotFound(format!("There is no organization {id:?}."));
        let uuid: Uuid = id.trim().parse().map_err(|_| missing())?;
        let principal = self.books().open_organization(uuid).await;
        Ok(Org::from_principal(principal.map_err(ApiError::from)?))
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
        Ok(self.books().token(principal))
    }

    fn open(&self) -> Outcome<()> {
        if self.is_closed() {
            return Err(closed());
        }
        Ok(())
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

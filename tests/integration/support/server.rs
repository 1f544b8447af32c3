//! AccuBooks served in-process over real HTTP, on the host under test.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use accubooks_core::http::{Access, ApiError, Request, Response, Route, json_response};
use accubooks_core::identity::{Principal, Role};
use accubooks_core::{AccuBooks, Config};
use http::{Method, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The HTTP host adapters under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// `accubooks-axum`.
    Axum,
    /// `accubooks-warp`.
    Warp,
}

/// Variables every test server starts from: nothing reachable unless the
/// test says so (closed ports for PostgreSQL and Redis), test environment.
pub fn base_vars() -> Vec<(String, String)> {
    let closed = super::services::free_port();
    vec![
        ("ACCUBOOKS_ENV".into(), "test".into()),
        (
            "DATABASE_URL".into(),
            format!("postgres://postgres@127.0.0.1:{closed}/postgres"),
        ),
        ("REDIS_URL".into(), format!("redis://127.0.0.1:{closed}")),
        (
            "JWT_SECRET".into(),
            "test-s3cr3t-test-s3cr3t-test-s3cr3t-0123".into(),
        ),
        (
            "SESSION_SECRET".into(),
            "test-session-s3cr3t-test-session-s3cr3t".into(),
        ),
        // Every test calls from 127.0.0.1; the limits have their own tests.
        ("REGISTRATIONS_PER_HOUR".into(), "1000000".into()),
        ("RATE_LIMIT_PER_ADDRESS".into(), "100000000".into()),
        ("RATE_LIMIT_PER_TOKEN".into(), "100000000".into()),
    ]
}

/// Replaces or adds `name=value` in `vars`.
pub fn set(vars: &mut Vec<(String, String)>, name: &str, value: impl Into<String>) {
    vars.retain(|(k, _)| k != name);
    vars.push((name.to_owned(), value.into()));
}

/// Routes a test host adds to the core's table; they run through the same
/// pipeline as the core's own.
fn test_routes() -> Vec<Route> {
    vec![
        Route::new(Method::POST, "/api/test/echo", echo).access(Access::Public),
        Route::new(Method::GET, "/api/test/panic", panics).access(Access::Public),
        Route::new(Method::GET, "/api/test/sleep/{ms}", sleep).access(Access::Public),
    ]
}

async fn echo(_: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let bytes = request.body.len();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({"bytes": bytes}),
    ))
}

async fn panics(_: AccuBooks, _: Request) -> Result<Response, ApiError> {
    panic!("a handler bug")
}

async fn sleep(_: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let ms: u64 = request
        .param("ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({"slept_ms": ms}),
    ))
}

/// The kind of job a test host adds (on `report-generation`): it does
/// nothing, so tests of the job machinery itself can record many.
pub const TEST_JOB_KIND: &str = "test-noop";

fn test_job<'a>(
    _: &'a accubooks_core::jobs::JobEnv,
    _: &'a accubooks_core::jobs::JobContext,
) -> futures::future::BoxFuture<'a, Result<(), accubooks_core::jobs::JobFailure>> {
    Box::pin(async { Ok(()) })
}

/// One AccuBooks instance served over HTTP on 127.0.0.1.
pub struct TestServer {
    /// The instance.
    pub app: AccuBooks,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// A client without connection reuse surprises: short timeouts.
    pub client: reqwest::Client,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Builds an instance from `vars` plus the test routes and serves it on
    /// `host`, the way an embedding application would mount it.
    pub async fn start(host: Host, vars: Vec<(String, String)>) -> TestServer {
        init_logs();
        let config = Config::from_vars(vars).expect("test configuration is valid");
        let mut builder = AccuBooks::builder(config).job_handler(
            TEST_JOB_KIND,
            accubooks_core::reporting::QUEUE,
            test_job,
        );
        for route in test_routes() {
            builder = builder.route(route);
        }
        let app = builder.build().await.expect("the instance builds");
        Self::serve(host, app).await
    }

    /// Like [`TestServer::start`], but mounted the way an embedding host
    /// mounts AccuBooks beside its own routes (`router`/`filter` under the
    /// framework's plain server): the host's server, not the instance,
    /// decides when to stop, so a draining instance is still seen answering.
    pub async fn start_mounted(host: Host, vars: Vec<(String, String)>) -> TestServer {
        init_logs();
        let config = Config::from_vars(vars).expect("test configuration is valid");
        let app = AccuBooks::builder(config)
            .build()
            .await
            .expect("the instance builds");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let task = match host {
            Host::Axum => {
                let service = accubooks_axum::standalone(app.clone())
                    .into_make_service_with_connect_info::<SocketAddr>();
                tokio::spawn(async move {
                    axum::serve(listener, service).await.unwrap();
                })
            }
            Host::Warp => {
                let filter = accubooks_warp::standalone(app.clone());
                tokio::spawn(async move {
                    warp::serve(filter).incoming(listener).run().await;
                })
            }
        };
        TestServer {
            app,
            base: format!("http://{addr}"),
            client: client(),
            task,
        }
    }

    /// Serves an already built instance with the host adapter's own
    /// `serve`, as the standalone servers do (connection bounds included).
    pub async fn serve(host: Host, app: AccuBooks) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let served = app.clone();
        let task = tokio::spawn(async move {
            match host {
                Host::Axum => accubooks_axum::serve(served, listener).await.unwrap(),
                Host::Warp => accubooks_warp::serve(served, listener).await.unwrap(),
            }
        });
        TestServer {
            app,
            base: format!("http://{addr}"),
            client: client(),
            task,
        }
    }

    /// Writes `request` (raw HTTP/1.1 bytes, perhaps a head announcing a
    /// body that never follows) on a new connection and answers the reply's
    /// head and body as text: what a client gets before it has sent a body.
    pub async fn raw_exchange(&self, request: &[u8]) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        // The server may answer and close before reading all of it.
        let _ = stream.write_all(request).await;
        let mut answer = Vec::new();
        let mut buffer = vec![0u8; 4096];
        // Until the head and as much body as it announces have come.
        while !whole_reply(&answer) {
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
                .await
                .expect("the server answers without waiting for the rest of the body")
                .unwrap();
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buffer[..n]);
        }
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// A GET request.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// A GET request with a bearer token.
    pub async fn get_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// The parsed `/health` body.
    pub async fn health(&self) -> Value {
        self.get("/api/monitoring/health")
            .await
            .json()
            .await
            .unwrap()
    }

    /// A token of a fresh organization with `role` whose user exists in
    /// the books (created through the core, as registration does).
    pub async fn user_token(&self, role: Role) -> String {
        let app = &self.app;
        let registration = serde_json::from_value(serde_json::json!({
            "email": format!("owner-{}@example.com", Uuid::new_v4().simple()),
            "password": "correct horse battery",
            "organization": "Test Books",
        }))
        .unwrap();
        let owner = accubooks_core::identity::register(
            app.database(),
            app.password_hashing(),
            registration,
        )
        .await
        .expect("registration succeeds (is the database up?)");
        let principal = if role == Role::Owner {
            owner
        } else {
            let new = serde_json::from_value(serde_json::json!({
                "email": format!("user-{}@example.com", Uuid::new_v4().simple()),
                "password": "correct horse battery",
                "role": role,
            }))
            .unwrap();
            let user = accubooks_core::identity::create_user(
                app.database(),
                app.password_hashing(),
                owner.organization,
                new,
            )
            .await
            .unwrap();
            Principal {
                user: user.id,
                role,
                ..owner
            }
        };
        app.tokens().issue(principal, Duration::from_secs(600))
    }

    /// A validly signed token of a user who does not exist: enough where
    /// the answer comes before the user is looked up (a 503 during a
    /// database outage), and answered 401 everywhere else.
    pub fn token_of_nobody(&self, role: Role) -> String {
        self.app.tokens().issue(
            Principal {
                user: Uuid::new_v4(),
                organization: Uuid::new_v4(),
                role,
            },
            Duration::from_secs(600),
        )
    }

    /// Polls `/health` until `dependency` has `status`; returns how long it took.
    pub async fn wait_for_dependency(
        &self,
        dependency: &str,
        status: &str,
        limit: Duration,
    ) -> Duration {
        let started = Instant::now();
        loop {
            let health = self.health().await;
            if health["dependencies"][dependency]["status"] == status {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "{dependency} did not become {status} within {limit:?}: {health}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until `/ready` answers 200.
    pub async fn wait_ready(&self) {
        let started = Instant::now();
        while self.get("/api/monitoring/ready").await.status() != StatusCode::OK {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never became ready"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Sends warnings and errors to the test's captured output, so a failing
/// test shows what the server logged. When `ACCUBOOKS_TEST_LOG_DIR` is set
/// (`scripts/test` sets it), every event of the servers down to debug level
/// also goes, as JSON lines with their spans, to a file there, which
/// `scripts/scan-logs` then searches for the suite's secrets.
pub fn init_logs() {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::prelude::*;
    let captured = tracing_subscriber::fmt::layer()
        .with_test_writer()
        .with_filter(EnvFilter::new(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
        ));
    let kept = std::env::var_os("ACCUBOOKS_TEST_LOG_DIR").map(|dir| {
        let path =
            std::path::Path::new(&dir).join(format!("integration-{}.log", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::sync::Mutex::new(file))
            .with_filter(EnvFilter::new(
                "info,accubooks_core=debug,accubooks_axum=debug,accubooks_warp=debug",
            ))
    });
    let _ = tracing_subscriber::registry()
        .with(captured)
        .with(kept)
        .try_init();
}

/// An HTTP client for tests: no proxy, bounded waits. Idle pooled
/// connections are dropped after 5 s, before the server closes a silent one
/// (`HEADER_READ_TIMEOUT_MS`, 10 s): reusing one the server is closing at
/// that moment fails the request with a broken pipe (seen once in a full
/// run, `bank::link_flow::sqlite::plaid_webhooks_…`).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_idle_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Median of a set of durations.
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Whether `reply` holds an HTTP/1.1 head and the whole body its
/// `Content-Length` announces.
fn whole_reply(reply: &[u8]) -> bool {
    let text = String::from_utf8_lossy(reply);
    let Some(end) = text.find("\r\n\r\n") else {
        return false;
    };
    let length = text[..end]
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    reply.len() >= end + 4 + length
}

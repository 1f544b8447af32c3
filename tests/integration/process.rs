//! The standalone servers as processes: start-up time, configuration errors,
//! signals and draining.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;

use crate::support::server::{Host, TestServer, base_vars, client};

/// An example binary that `cargo test` built next to this test binary.
pub(crate) fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let path = deps
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with cargo test, which builds examples",
        path.display()
    );
    path
}

/// Runs an example with exactly `vars` (plus PATH), in a temp dir, its
/// output piped.
fn spawn(name: &str, vars: &[(String, String)], dir: &std::path::Path) -> std::process::Child {
    spawn_to(name, vars, dir, (Stdio::piped(), Stdio::piped()))
}

/// Runs an example with exactly `vars` (plus PATH, and `RUST_LOG=warn`
/// unless `vars` say otherwise) in `dir`, its stdout and stderr to `output`.
pub(crate) fn spawn_to(
    name: &str,
    vars: &[(String, String)],
    dir: &std::path::Path,
    (stdout, stderr): (Stdio, Stdio),
) -> std::process::Child {
    Command::new(example(name))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Sends `signal` to the child.
pub(crate) fn signal(child: &std::process::Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    #[allow(unsafe_code)]
    // SAFETY: kill(2) with a plain pid and signal number touches no memory.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0);
}

/// Waits for the child's exit; panics after `limit`.
pub(crate) async fn wait_exit(
    child: &mut std::process::Child,
    limit: Duration,
) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < limit,
            "the process did not exit within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_servers_start_at_once_with_everything_down_and_exit_0_on_sigterm() {
    for name in ["server", "warp_server"] {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::support::services::free_port();
        let mut vars = base_vars();
        vars.push(("PORT".into(), port.to_string()));
        vars.push(("HOSTNAME".into(), "127.0.0.1".into()));
        let http = client();
        let exec = Instant::now();
        let mut child = spawn(name, &vars, dir.path());
        let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
        let live = loop {
            if let Ok(r) = http.get(url("/api/monitoring/live")).send().await {
                assert_eq!(r.status(), StatusCode::OK);
                break exec.elapsed();
            }
            assert!(
                exec.elapsed() < Duration::from_secs(10),
                "{name} never answered /live"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let ready = loop {
            let r = http.get(url("/api/monitoring/ready")).send().await.unwrap();
            if r.status() == StatusCode::OK {
                break exec.elapsed();
            }
            assert!(
                exec.elapsed() < Duration::from_secs(10),
                "{name} never became ready"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        eprintln!(
            "figure: {name} with every dependency down: exec to /live 200 in {live:?}, to /ready 200 in {ready:?}"
        );
        let health: Value = http
            .get(url("/api/monitoring/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["status"], "degraded");

        signal(&child, libc::SIGTERM);
        let status = wait_exit(&mut child, Duration::from_secs(10)).await;
        assert_eq!(status.code(), Some(0), "{name} exits 0 after SIGTERM");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_configuration_serves_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::services::free_port();
    let vars = vec![
        ("PORT".to_owned(), port.to_string()),
        ("HOSTNAME".to_owned(), "127.0.0.1".to_owned()),
        (
            "REDIS_PORT".to_owned(),
            crate::support::services::free_port().to_string(),
        ),
    ];
    let mut child = spawn("server", &vars, dir.path());
    let http = client();
    let started = Instant::now();
    let health = loop {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/api/monitoring/health"))
            .send()
            .await
        {
            let health: Value = r.json().await.unwrap();
            if health["dependencies"]["database"]["status"] == "connected" {
                break health;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "SQLite never connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(health["environment"], "development");
    assert!(
        dir.path().join("accubooks.db").exists(),
        "the embedded database file is created"
    );
    signal(&child, libc::SIGINT);
    assert_eq!(
        wait_exit(&mut child, Duration::from_secs(10)).await.code(),
        Some(0)
    );
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("listening on http://127.0.0.1:{port}")),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_configuration_errors_exit_2_naming_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let vars = vec![
        ("ACCUBOOKS_ENV".to_owned(), "production".to_owned()),
        ("JWT_SECRET".to_owned(), "hunter2-is-too-short".to_owned()),
        (
            "DATABASE_URL".to_owned(),
            "mysql://admin:pa55word@db/books".to_owned(),
        ),
        (
            "FRONTEND_URL".to_owned(),
            "http://insecure.example".to_owned(),
        ),
        ("DB_POOL_MAX".to_owned(), "lots".to_owned()),
        ("DB_POOL_JOBS".to_owned(), "20".to_owned()),
    ];
    let child = spawn("server", &vars, dir.path());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for variable in [
        "DATABASE_URL",
        "JWT_SECRET",
        "SESSION_SECRET",
        "FRONTEND_URL",
        "DB_POOL_MAX",
        "DB_POOL_JOBS",
    ] {
        assert!(
            stderr.contains(variable),
            "{variable} not named in:\n{stderr}"
        );
    }
    for secret in ["hunter2", "pa55word"] {
        assert!(!stderr.contains(secret), "secret echoed in:\n{stderr}");
    }
    assert!(stderr.contains("6 problems"), "{stderr}");
}

/// In-flight requests finish during a graceful shutdown; new connections
/// are refused; `serve` returns once drained.
async fn drains_in_flight_requests(host: Host) {
    let template = TestServer::start(host, base_vars()).await;
    let app = template.app.clone();
    drop(template);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn({
        let app = app.clone();
        async move {
            match host {
                Host::Axum => accubooks_axum::serve(app, listener).await,
                Host::Warp => accubooks_warp::serve(app, listener).await,
            }
        }
    });
    let http = client();
    let in_flight = tokio::spawn({
        let http = http.clone();
        async move {
            http.get(format!("http://{addr}/api/test/sleep/600"))
                .send()
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    app.begin_drain();
    let answer = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(answer.status(), StatusCode::OK);
    tokio::time::timeout(Duration::from_secs(5), serving)
        .await
        .expect("serve returns after draining")
        .unwrap()
        .unwrap();
    assert!(
        http.get(format!("http://{addr}/api/monitoring/live"))
            .send()
            .await
            .is_err()
    );
    assert_eq!(
        app.render_metrics()
            .lines()
            .find(|l| l.starts_with("accubooks_up ")),
        Some("accubooks_up 0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_drains_in_flight_requests() {
    drains_in_flight_requests(Host::Axum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warp_drains_in_flight_requests() {
    drains_in_flight_requests(Host::Warp).await;
}

/// The standalone server at `RUST_LOG=debug` through a whole card payment
/// (a PaymentIntent, signed and forged webhooks, Stripe stopped): no secret
/// of Stripe's, no client secret and no bearer token reaches its output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_secrets_never_reach_the_logs() {
    use crate::support::saas::stripe::signature;
    use crate::support::saas::{FakeSaas, STRIPE_KEY, WEBHOOK_SECRET};
    use serde_json::json;

    let mut saas = FakeSaas::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::services::free_port();
    let mut vars = base_vars();
    for (name, value) in [
        ("PORT", port.to_string()),
        ("HOSTNAME", "127.0.0.1".to_owned()),
        ("RUST_LOG", "debug".to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}/books.db", dir.path().display()),
        ),
        ("JOB_TRANSPORT", "database".to_owned()),
        ("STRIPE_SECRET_KEY", STRIPE_KEY.to_owned()),
        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned()),
        ("STRIPE_API_BASE", saas.base()),
    ] {
        crate::support::server::set(&mut vars, name, value);
    }
    // Debug logs are plenty: into a file, so a full pipe never stalls the server.
    let log_path = dir.path().join("server.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(example("server"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(dir.path())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let (http, base) = (client(), format!("http://127.0.0.1:{port}"));
    let started = Instant::now();
    loop {
        if let Ok(r) = http
            .get(format!("{base}/api/monitoring/health"))
            .send()
            .await
        {
            let health: Value = r.json().await.unwrap();
            if health["dependencies"]["stripe"]["status"] == "connected"
                && health["dependencies"]["database"]["status"] == "connected"
            {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(10), "never ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let call = |method: &str, path: &str, token: Option<&str>, body: Option<Value>| {
        let mut request = http.request(method.parse().unwrap(), format!("{base}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, owner) = call("POST", "/api/auth/register", None, Some(json!({
        "email": "secrets@acme.test", "password": "correct horse battery", "organization": "Acme"})))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{owner}");
    let token = owner["token"].as_str().unwrap().to_owned();
    let (_, customer) = call(
        "POST",
        "/api/customers",
        Some(&token),
        Some(json!({"name": "Globex"})),
    )
    .await;
    let (_, invoice) = call(
        "POST",
        "/api/invoices",
        Some(&token),
        Some(json!({
        "customer_id": customer["id"], "due_date": "2026-12-31",
        "lines": [{"description": "Consulting", "quantity": "1", "unit_price": "10.00"}]})),
    )
    .await;
    let id = invoice["id"].as_i64().unwrap();
    call(
        "POST",
        &format!("/api/invoices/{id}/issue"),
        Some(&token),
        None,
    )
    .await;
    let (status, intent) = call(
        "POST",
        &format!("/api/invoices/{id}/payment-intent"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{intent}");
    let client_secret = intent["client_secret"].as_str().unwrap().to_owned();
    let event = saas
        .stripe
        .succeeded_event("evt_logs", intent["payment_intent_id"].as_str().unwrap());
    let payload = serde_json::to_vec(&event).unwrap();
    let now = chrono::Utc::now().timestamp();
    for secret in ["whsec_forged", WEBHOOK_SECRET] {
        let response = http
            .post(format!("{base}/api/webhooks/stripe"))
            .header("content-type", "application/json")
            .header("stripe-signature", signature(&[secret], now, &payload))
            .body(payload.clone())
            .send()
            .await
            .unwrap();
        let body = response.text().await.unwrap();
        assert!(
            !body.contains(WEBHOOK_SECRET) && !body.contains("whsec_forged"),
            "{body}"
        );
    }
    let paid = loop {
        let (_, invoice) = call("GET", &format!("/api/invoices/{id}"), Some(&token), None).await;
        if invoice["status"] == "paid" || started.elapsed() > Duration::from_secs(20) {
            break invoice;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(paid["status"], "paid");
    saas.stop();
    let (status, _) = call(
        "POST",
        &format!("/api/invoices/{id}/payment-intent"),
        Some(&token),
        None,
    )
    .await;
    assert!(status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::CONFLICT);
    let (_, health) = call("GET", "/api/monitoring/health", None, None).await;
    let health = health.to_string();

    signal(&child, libc::SIGINT);
    wait_exit(&mut child, Duration::from_secs(10)).await;
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        logs.contains("DEBUG") || logs.contains("debug"),
        "debug logs were on"
    );
    for (what, secret) in [
        ("the Stripe key", STRIPE_KEY),
        ("the webhook secret", WEBHOOK_SECRET),
        ("the client secret", client_secret.as_str()),
        ("the bearer token", token.as_str()),
    ] {
        assert!(!logs.contains(secret), "{what} is in the logs");
        assert!(!health.contains(secret), "{what} is in /health");
    }
}

/// A taken port ends the standalone servers with exit code 3 and a sentence
/// naming the address and the fix, not a debug print of the I/O error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_port_is_explained_with_exit_code_3() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    for name in ["server", "warp_server"] {
        let dir = tempfile::tempdir().unwrap();
        let vars = vec![
            ("PORT".to_owned(), port.to_string()),
            ("HOSTNAME".to_owned(), "127.0.0.1".to_owned()),
        ];
        let mut child = spawn(name, &vars, dir.path());
        let status = wait_exit(&mut child, Duration::from_secs(10)).await;
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(status.code(), Some(3), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains("already in use"),
            "{name}: {stderr}"
        );
        assert!(!stderr.contains("Os {"), "{name}: {stderr}");
    }
    drop(taken);
}

/// A deployment by `deploy/deploy.sh --no-systemd` into a temp prefix, of
/// the server `cargo test` built; stopped when dropped.
struct Deployment {
    prefix: tempfile::TempDir,
    env_file: PathBuf,
    port: u16,
}

impl Deployment {
    /// An env file with a production configuration on SQLite (relative to
    /// the prefix's var/) and Redis at a closed port, plus `extra` lines.
    fn new(extra: &[&str]) -> Self {
        let prefix = tempfile::tempdir().unwrap();
        let port = crate::support::services::free_port();
        let closed = crate::support::services::free_port();
        let env_file = prefix.path().join("given.env");
        let mut lines = vec![
            "# the contract's variables".to_owned(),
            "ACCUBOOKS_ENV=production".to_owned(),
            format!("PORT={port}"),
            "HOSTNAME=127.0.0.1".to_owned(),
            "DATABASE_URL=sqlite://books.db".to_owned(),
            "JWT_SECRET=deploy-s3cr3t-Jq8v2LmZx0Rt5Yw9Pb3Nc7Hd1K".to_owned(),
            "SESSION_SECRET=deploy-s3cr3t-Tz5Qm1Xc8Vb3Nl7Kj2Hg9Fd4S".to_owned(),
            "FRONTEND_URL=https://books.example.com".to_owned(),
            format!("REDIS_URL=redis://127.0.0.1:{closed}"),
        ];
        lines.extend(extra.iter().map(|line| (*line).to_owned()));
        std::fs::write(&env_file, lines.join("\n") + "\n").unwrap();
        Deployment {
            prefix,
            env_file,
            port,
        }
    }

    /// Runs deploy.sh with `args` after the prefix: its output and time.
    fn run(&self, args: &[&str]) -> (std::process::Output, Duration) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/deploy.sh");
        let started = Instant::now();
        let output = Command::new("bash")
            .arg(script)
            .args(["--no-systemd", "--prefix"])
            .arg(self.prefix.path().join("opt"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (output, started.elapsed())
    }

    fn deploy(&self) -> (std::process::Output, Duration) {
        let binary = example("server");
        self.run(&[
            "--env-file",
            self.env_file.to_str().unwrap(),
            "--binary",
            binary.to_str().unwrap(),
        ])
    }

    /// The pids of the servers running from this prefix.
    fn servers(&self) -> Vec<u32> {
        let binary = self.prefix.path().join("opt/bin/server");
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == binary)
            })
            .collect()
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        let _ = self.run(&["--stop"]);
    }
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_sh_installs_starts_and_redeploys_to_one_server() {
    let deployment = Deployment::new(&[]);
    let (first, first_took) = deployment.deploy();
    let said = text(&first);
    assert!(first.status.success(), "{said}");
    // Redis is down: degraded is a success, and each dependency is named.
    assert!(said.contains(": degraded"), "{said}");
    for (dependency, status) in [
        ("database", "connected"),
        ("redis", "unavailable"),
        ("stripe", "disabled"),
        ("reportsDatabase", "disabled"),
    ] {
        let line = format!("deploy:   {dependency:<16} {status}");
        assert!(said.contains(&line), "{line:?} in {said}");
    }
    let installed = deployment.prefix.path().join("opt/etc/accubooks.env");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&installed).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the installed env file holds secrets");
    let running = deployment.servers();
    assert_eq!(running.len(), 1, "{running:?}");

    let http = client();
    let registered = http
        .post(format!("{}/api/auth/register", deployment.base()))
        .json(&serde_json::json!({
            "email": "deploy@example.com", "password": "correct horse battery", "organization": "Deployed"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);

    // Again: the old server drains and exits, one new one runs, and the
    // books (in the prefix's var/) are still there.
    let (second, second_took) = deployment.deploy();
    assert!(second.status.success(), "{}", text(&second));
    let after = deployment.servers();
    assert_eq!(after.len(), 1, "one server after a redeploy: {after:?}");
    assert_ne!(after, running, "the server was restarted");
    let login = http
        .post(format!("{}/api/auth/login", deployment.base()))
        .json(&serde_json::json!({"email": "deploy@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    eprintln!(
        "figure: deploy.sh --no-systemd: first deploy {first_took:?}, redeploy {second_took:?}"
    );

    let (stopped, _) = deployment.run(&["--stop"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert!(deployment.servers().is_empty());
    assert!(
        http.get(format!("{}/api/monitoring/live", deployment.base()))
            .send()
            .await
            .is_err(),
        "nothing answers after --stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_sh_failures_show_the_log_and_exit_non_zero() {
    // A configuration error: the server exits 2, the supervisor does not
    // restart it, and deploy.sh shows why.
    let broken = Deployment::new(&["DATABASE_URL="]);
    let (output, took) = broken.deploy();
    let said = text(&output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(said.contains("FAILED: the server exited"), "{said}");
    assert!(
        said.contains("DATABASE_URL: is required in production"),
        "{said}"
    );
    assert!(said.contains("not restarting"), "{said}");
    assert!(broken.servers().is_empty());
    eprintln!("figure: deploy.sh with a configuration error failed in {took:?}");

    // Its port is taken by a listener that never answers: the server says
    // which address is busy (exit 3), and that is what deploy.sh shows.
    let busy = Deployment::new(&[]);
    let _squatter = std::net::TcpListener::bind(("127.0.0.1", busy.port)).unwrap();
    let (output, _) = busy.deploy();
    let said = text(&output);
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&format!("127.0.0.1:{}", busy.port)) && said.contains("already in use"),
        "{said}"
    );
    assert!(said.contains("exited with 3"), "{said}");
    assert!(busy.servers().is_empty());

    // A bad invocation changes nothing.
    let (output, _) = busy.run(&["--env-file", "/nonexistent/accubooks.env"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}

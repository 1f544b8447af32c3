//! The standalone servers as processes: start-up time, configuration errors,
//! signals and draining.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::Value;

use crate::support::server::{Host, TestServer, base_vars, client};

/// An example binary that `cargo test` built next to this test binary.
fn example(name: &str) -> PathBuf {
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

/// Runs an example with exactly `vars` (plus PATH), in a temp dir.
fn spawn(name: &str, vars: &[(String, String)], dir: &std::path::Path) -> std::process::Child {
    Command::new(example(name))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn signal(child: &std::process::Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    #[allow(unsafe_code)]
    // SAFETY: kill(2) with a plain pid and signal number touches no memory.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0);
}

async fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
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
    ] {
        assert!(
            stderr.contains(variable),
            "{variable} not named in:\n{stderr}"
        );
    }
    for secret in ["hunter2", "pa55word"] {
        assert!(!stderr.contains(secret), "secret echoed in:\n{stderr}");
    }
    assert!(stderr.contains("5 problems"), "{stderr}");
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

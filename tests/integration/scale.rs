//! Several instances of the standalone server over one PostgreSQL, behind
//! HAProxy with `deploy/haproxy/haproxy.cfg` as shipped: only ready
//! instances get traffic, and a rolling restart under load fails no request
//! and loses no entry.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::process::{signal, spawn_to, wait_exit};
use crate::support::server::client;
use crate::support::services::{Postgres, free_port};

/// How long an instance keeps serving after `/ready` turned `draining`:
/// above HAProxy's time to notice (one check every 500 ms, one failure).
const SHUTDOWN_DELAY_MS: &str = "2000";

/// One standalone server process.
struct Instance {
    port: u16,
    vars: Vec<(String, String)>,
    /// Its working directory.
    dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Instance {
    fn new(port: u16, database_url: &str, dir: &Path) -> Self {
        let closed = free_port();
        let vars = [
            ("ACCUBOOKS_ENV", "production".to_owned()),
            ("PORT", port.to_string()),
            ("HOSTNAME", "127.0.0.1".to_owned()),
            ("DATABASE_URL", database_url.to_owned()),
            ("REDIS_URL", format!("redis://127.0.0.1:{closed}")),
            ("JOB_TRANSPORT", "database".to_owned()),
            (
                "JWT_SECRET",
                "scale-s3cr3t-Jq8v2LmZx0Rt5Yw9Pb3Nc7Hd1K".to_owned(),
            ),
            (
                "SESSION_SECRET",
                "scale-s3cr3t-Tz5Qm1Xc8Vb3Nl7Kj2Hg9Fd4S".to_owned(),
            ),
            ("FRONTEND_URL", "https://books.example.com".to_owned()),
            ("TRUSTED_PROXIES", "127.0.0.1".to_owned()),
            ("SHUTDOWN_DELAY_MS", SHUTDOWN_DELAY_MS.to_owned()),
            ("RATE_LIMIT_PER_ADDRESS", "0".to_owned()),
            ("RATE_LIMIT_PER_TOKEN", "0".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ];
        Instance {
            port,
            vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            // Kept with the suite's logs when scripts/test collects them
            // (scanned for secrets at the end).
            log: std::env::var_os("ACCUBOOKS_TEST_LOG_DIR")
                .map_or_else(|| dir.to_owned(), PathBuf::from)
                .join(format!("scale-instance-{port}.log")),
            dir: dir.to_owned(),
            child: None,
        }
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let output = (log.try_clone().unwrap().into(), log.into());
        self.child = Some(spawn_to("server", &self.vars, &self.dir, output));
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn ready(&self) -> Option<StatusCode> {
        let url = format!("{}/api/monitoring/ready", self.base());
        client().get(url).send().await.ok().map(|r| r.status())
    }

    async fn wait_ready(&mut self) {
        let started = Instant::now();
        while self.ready().await != Some(StatusCode::OK) {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && started.elapsed() < Duration::from_secs(30),
                "instance {} not ready ({exited:?}): {}",
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM: it drains; returns its exit status.
    async fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(&child, libc::SIGTERM);
        wait_exit(&mut child, Duration::from_secs(30)).await
    }

    /// Requests this instance answered on `route` (from its own metrics).
    async fn served(&self, route: &str) -> f64 {
        let text = client()
            .get(format!("{}/api/monitoring/metrics", self.base()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let needle = format!("route=\"{route}\"");
        text.lines()
            .filter(|line| {
                line.starts_with("accubooks_http_request_duration_seconds_count{")
                    && line.contains(&needle)
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// HAProxy with the shipped configuration, in the foreground (`-db`).
struct Haproxy {
    port: u16,
    socket: PathBuf,
    child: Child,
}

impl Haproxy {
    fn start(dir: &Path, instances: &[&Instance]) -> Self {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy/haproxy.cfg");
        let port = free_port();
        let socket = dir.join("haproxy.sock");
        let log = std::fs::File::create(dir.join("haproxy.log")).unwrap();
        let mut command = Command::new("haproxy");
        command
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .env("ACCUBOOKS_LISTEN", format!("127.0.0.1:{port}"))
            .env("ACCUBOOKS_HAPROXY_SOCKET", &socket)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (n, instance) in instances.iter().enumerate() {
            command.env(
                format!("ACCUBOOKS_{}", n + 1),
                format!("127.0.0.1:{}", instance.port),
            );
        }
        let child = command
            .spawn()
            .expect("haproxy (Debian's package haproxy; scripts/test installs it)");
        Haproxy {
            port,
            socket,
            child,
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Each server's status (`UP`, `DOWN`, …) from the runtime API's `show stat`.
    async fn states(&self) -> Vec<(String, String)> {
        let Ok(mut stream) = tokio::net::UnixStream::connect(&self.socket).await else {
            return Vec::new();
        };
        stream.write_all(b"show stat\n").await.unwrap();
        let mut csv = String::new();
        stream.read_to_string(&mut csv).await.unwrap();
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let column = |name: &str| header.iter().position(|h| *h == name);
        let (Some(proxy), Some(server), Some(status)) =
            (column("pxname"), column("svname"), column("status"))
        else {
            return Vec::new();
        };
        lines
            .map(|line| line.split(',').collect::<Vec<_>>())
            .filter(|fields| fields.get(proxy) == Some(&"instances"))
            .filter(|fields| !matches!(fields.get(server), Some(&"BACKEND")))
            .map(|fields| (fields[server].to_owned(), fields[status].to_owned()))
            .collect()
    }

    async fn state(&self, server: &str) -> String {
        self.states()
            .await
            .into_iter()
            .find(|(name, _)| name == server)
            .map(|(_, status)| status)
            .unwrap_or_default()
    }

    async fn wait_state(&self, server: &str, wanted: &str) -> Duration {
        let started = Instant::now();
        loop {
            let state = self.state(server).await;
            if state.starts_with(wanted) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{server} is {state:?}, not {wanted}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the load saw.
#[derive(Default)]
struct Seen {
    /// Acknowledged entries, with when each answer came.
    posted: Vec<(i64, Instant)>,
    reads: usize,
    failures: Vec<String>,
}

/// Clients until `stop`: `posters` posting 1.00 entries (each with its own
/// Idempotency-Key, never retried: a failure is kept, as the client would
/// retry it later) and `readers` reading the trial balance.
fn load(
    base: &str,
    token: &str,
    (readers, posters): (usize, usize),
    stop: &Arc<AtomicBool>,
    seen: &Arc<Mutex<Seen>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..readers + posters)
        .map(|worker| {
            let (base, token, stop, seen) = (
                base.to_owned(),
                token.to_owned(),
                stop.clone(),
                seen.clone(),
            );
            let reader = worker < readers;
            tokio::spawn(async move {
                let http = client();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let result = if reader {
                        http.get(format!("{base}/api/reports/trial-balance?as_of=2026-12-31"))
                            .bearer_auth(&token)
                            .send()
                            .await
                    } else {
                        http.post(format!("{base}/api/journal-entries"))
                            .bearer_auth(&token)
                            .header("idempotency-key", format!("w{worker}-{n}"))
                            .json(&json!({"date": "2026-01-31", "lines": [
                                {"account": "1000", "debit": "1.00"},
                                {"account": "4000", "credit": "1.00"}]}))
                            .send()
                            .await
                    };
                    let outcome = match result {
                        Ok(response) => match response.status() {
                            StatusCode::OK if reader => Ok(None),
                            StatusCode::CREATED => {
                                let entry: Value = response.json().await.unwrap();
                                Ok(Some(entry["id"].as_i64().expect("an entry id")))
                            }
                            status => Err(format!(
                                "{status}: {}",
                                response.text().await.unwrap_or_default()
                            )),
                        },
                        Err(err) => Err(format!("transport: {err}")),
                    };
                    let failed = outcome.is_err();
                    {
                        let mut seen = seen.lock().unwrap();
                        match outcome {
                            Ok(Some(id)) => seen.posted.push((id, Instant::now())),
                            Ok(None) => seen.reads += 1,
                            Err(failure) => seen.failures.push(failure),
                        }
                    }
                    if failed {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect()
}

/// Registers an organization at `base`; its owner's token.
async fn register(base: &str, email: &str) -> String {
    let registered = client()
        .post(format!("{base}/api/auth/register"))
        .json(
            &json!({"email": email, "password": "correct horse battery", "organization": "Scaled"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::CREATED);
    registered.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Whether an instance that began to drain (`/ready` 503) still accepts
/// connections and answers, as `SHUTDOWN_DELAY_MS` promises.
async fn serves_while_draining(base: &str) -> bool {
    let http = client();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        let ready = http
            .get(format!("{base}/api/monitoring/ready"))
            .send()
            .await;
        if ready.is_ok_and(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            // A new connection, as a load balancer's next request would be.
            let live = client()
                .get(format!("{base}/api/monitoring/live"))
                .send()
                .await;
            return live.is_ok_and(|r| r.status() == StatusCode::OK);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_behind_haproxy_fails_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let pg = Postgres::start().await;
    let mut instances: Vec<Instance> = (0..3)
        .map(|_| Instance::new(free_port(), &pg.url(), dir.path()))
        .collect();
    for instance in &mut instances {
        instance.start();
        instance.wait_ready().await;
    }
    let haproxy = Haproxy::start(dir.path(), &instances.iter().collect::<Vec<_>>());
    for name in ["a1", "a2", "a3"] {
        haproxy.wait_state(name, "UP").await;
    }

    let http = client();
    let token = register(&haproxy.base(), "scale@example.com").await;

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let clients = load(&haproxy.base(), &token, (1, 5), &stop, &seen);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let started = Instant::now();
    for (n, name) in ["a1", "a2", "a3"].into_iter().enumerate() {
        let instance = &mut instances[n];
        let base = instance.base();
        // Draining: HAProxy takes it out while it still serves.
        let terminating = instance.terminate();
        let (status, out_after, served_while_draining) = tokio::join!(
            terminating,
            haproxy.wait_state(name, "DOWN"),
            serves_while_draining(&base)
        );
        assert!(status.success(), "{name} exited with {status}");
        assert!(
            served_while_draining,
            "{name} stopped accepting as soon as /ready said draining"
        );
        assert!(
            out_after < Duration::from_millis(2000),
            "{name} was taken out only after {out_after:?}, past its shutdown delay"
        );
        // Starting: no traffic until its /ready says so, twice.
        instance.start();
        while instance.ready().await.is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let state = haproxy.state(name).await;
        assert!(
            state.starts_with("DOWN"),
            "{name} is {state} while starting"
        );
        instance.wait_ready().await;
        haproxy.wait_state(name, "UP").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let restart_took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        seen.failures.is_empty(),
        "{} of {} requests failed, e.g. {:?}",
        seen.failures.len(),
        seen.failures.len() + seen.posted.len() + seen.reads,
        &seen.failures[..seen.failures.len().min(5)]
    );
    assert!(
        seen.posted.len() > 50 && seen.reads > 10,
        "{} posted, {} reads",
        seen.posted.len(),
        seen.reads
    );
    // Every acknowledged entry is in the books, once.
    let tb: Value = http
        .get(format!(
            "{}/api/reports/trial-balance?as_of=2026-12-31",
            haproxy.base()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        tb["total_debit"],
        format!("{}.00", seen.posted.len()),
        "{tb}"
    );
    let mut ids: Vec<i64> = seen.posted.iter().map(|(id, _)| *id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), seen.posted.len(), "each entry acknowledged once");
    // Each restarted instance took its share afterwards.
    for instance in &instances {
        let served = instance.served("/api/journal-entries").await;
        assert!(
            served > 0.0,
            "instance {} served no posting after its restart",
            instance.port
        );
    }
    eprintln!(
        "figure: rolling restart of 3 instances behind HAProxy in {restart_took:?}: {} entries posted \
         and {} reports read, 0 failed",
        seen.posted.len(),
        seen.reads
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_follow_a_promoted_standby_and_keep_every_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut primary = Postgres::start().await;
    let standby = Postgres::standby_of(&primary).await;
    // Synchronous replication: a commit is acknowledged once the standby
    // has it, so promoting the standby loses no acknowledged entry.
    let admin = sqlx::PgPool::connect(&primary.admin_url()).await.unwrap();
    sqlx::query("ALTER SYSTEM SET synchronous_standby_names = '*'")
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&admin)
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let sync: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
        )
        .fetch_one(&admin)
        .await
        .unwrap();
        if sync == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the standby never became synchronous"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    admin.close().await;

    let url = format!(
        "postgres://accubooks@127.0.0.1:{},127.0.0.1:{}/accubooks?target_session_attrs=read-write",
        primary.port(),
        standby.port()
    );
    let mut instance = Instance::new(free_port(), &url, dir.path());
    instance.start();
    instance.wait_ready().await;
    let token = register(&instance.base(), "failover@example.com").await;

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let clients = load(&instance.base(), &token, (0, 4), &stop, &seen);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The primary dies; the standby is promoted (by hand, as a failover
    // manager such as Patroni or the cloud's would).
    let killed = Instant::now();
    primary.kill();
    let promote = sqlx::PgPool::connect(&standby.admin_url()).await.unwrap();
    let promoted: bool = sqlx::query_scalar("SELECT pg_promote(true, 60)")
        .fetch_one(&promote)
        .await
        .unwrap();
    assert!(promoted);
    let promoted_at = Instant::now();
    let promoted_after = promoted_at.duration_since(killed);
    // The first write acknowledged by the promoted standby (an answer just
    // after the kill may still come from the old primary).
    let first_write = loop {
        let after = seen
            .lock()
            .unwrap()
            .posted
            .iter()
            .find(|(_, at)| *at > promoted_at)
            .map(|(_, at)| at.duration_since(killed));
        if let Some(after) = after {
            break after;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no write was acknowledged after the failover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    // What failed was refused as the contract says, with nothing half-done.
    assert!(
        seen.failures.iter().all(|r| r.starts_with("503")),
        "{:?}",
        &seen.failures[..seen.failures.len().min(5)]
    );
    let ids: Vec<i64> = seen.posted.iter().map(|(id, _)| *id).collect();
    let before = seen.posted.iter().filter(|(_, at)| *at <= killed).count();
    let found: i64 = sqlx::query_scalar("SELECT count(*) FROM journal_entries WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_one(&promote)
        .await
        .unwrap();
    assert_eq!(
        found as usize,
        ids.len(),
        "every acknowledged entry is on the promoted standby"
    );
    assert!(
        before > 10 && ids.len() > before,
        "{before} before, {} in all",
        ids.len()
    );
    eprintln!(
        "figure: failover: primary killed, standby promoted after {promoted_after:?}; first acknowledged \
         write {first_write:?} after the kill; {} entries acknowledged ({before} before), 0 lost, {} refused 503",
        ids.len(),
        seen.failures.len()
    );
}

/// The trial balance's total debit as `base` answers it (entries of 1.00:
/// the number of entries it sees).
async fn total_debit(base: &str, token: &str) -> String {
    let response = client()
        .get(format!("{base}/api/reports/trial-balance?as_of=2026-12-31"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    report["total_debit"].as_str().unwrap_or("0.00").to_owned()
}

async fn post_entry(base: &str, token: &str, key: &str) {
    let response = client()
        .post(format!("{base}/api/journal-entries"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(&json!({"date": "2026-01-31", "lines": [
            {"account": "1000", "debit": "1.00"},
            {"account": "4000", "credit": "1.00"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

/// Waits until `base`'s health shows `dependency` in `status`.
async fn wait_for_status(base: &str, dependency: &str, status: &str) -> Duration {
    let started = Instant::now();
    loop {
        let health: Value = client()
            .get(format!("{base}/api/monitoring/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if health["dependencies"][dependency]["status"] == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{dependency} never became {status}: {health}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `DATABASE_REPORTS_URL` names a streaming standby: reports read from it
/// (seen by pausing its replay: a report then misses the newest entry),
/// until it lags by more than `REPORTS_MAX_LAG_MS` or dies, when they read
/// from the primary; once it has caught up they read from it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_read_from_the_standby_until_it_lags_or_dies() {
    let dir = tempfile::tempdir().unwrap();
    let primary = Postgres::start().await;
    let mut standby = Postgres::standby_of(&primary).await;
    let url = |port: u16| format!("postgres://accubooks@127.0.0.1:{port}/accubooks");
    let mut instance = Instance::new(free_port(), &url(primary.port()), dir.path());
    instance.vars.extend([
        ("DATABASE_REPORTS_URL".to_owned(), url(standby.port())),
        ("REPORTS_MAX_LAG_MS".to_owned(), "2000".to_owned()),
    ]);
    instance.start();
    instance.wait_ready().await;
    let base = instance.base();
    wait_for_status(&base, "reportsDatabase", "connected").await;
    let token = register(&base, "reports@example.com").await;

    post_entry(&base, &token, "first").await;
    let started = Instant::now();
    while total_debit(&base, &token).await != "1.00" {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the standby never replayed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let admin = sqlx::PgPool::connect(&standby.admin_url()).await.unwrap();
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(&admin)
        .await
        .unwrap();
    post_entry(&base, &token, "second").await;
    assert_eq!(
        total_debit(&base, &token).await,
        "1.00",
        "the report came from the paused standby"
    );
    let left = wait_for_status(&base, "reportsDatabase", "unavailable").await;
    assert_eq!(
        total_debit(&base, &token).await,
        "2.00",
        "a lagging standby is not read: the primary is"
    );
    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    wait_for_status(&base, "reportsDatabase", "connected").await;
    assert_eq!(total_debit(&base, &token).await, "2.00");

    standby.kill();
    wait_for_status(&base, "reportsDatabase", "unavailable").await;
    post_entry(&base, &token, "third").await;
    assert_eq!(
        total_debit(&base, &token).await,
        "3.00",
        "with the standby dead, reports read from the primary"
    );
    eprintln!(
        "figure: a standby paused mid-replay was left for the primary {left:?} after the pause"
    );
}

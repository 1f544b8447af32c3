//! Private PostgreSQL 15 and Redis servers for integration tests.
//!
//! How a server is started (initdb flags, server settings, running as `postgres`
//! when root, the socket dir, the application role and database, redis-server
//! flags) is decided in one place shared with the scripts and the Python tests: the
//! launcher `scripts/lib/services.py` ([`LAUNCHER`]). This module spawns its command
//! line, which execs into the server, so the spawned pid is the server's own (or
//! setpriv's, which execs too).
//!
//! What stays here is the process handling: every server gets its own temporary
//! directory, a free loopback port and its own process group, so a test can kill,
//! pause, resume and restart it without touching the servers of other tests running
//! in parallel; readiness polling; retrying on another port when the chosen one was
//! taken. The servers are plain `std::process` children (not tokio handles) so they
//! can be created in one tokio runtime and dropped in another.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The launcher that starts private servers (run with `python3`).
pub const LAUNCHER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lib/services.py");

/// Where Debian installs the PostgreSQL 15 binaries (for `pg_isready`).
pub const PG_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// How often readiness is polled while a server starts.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How long a server may take to accept connections before start/restart panics.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// How many fresh ports `start()` tries when the chosen one was taken in the meantime.
const START_ATTEMPTS: usize = 5;

/// How long `kill()` waits for orphaned group members (postgres backends) to die.
const GROUP_EXIT_TIMEOUT: Duration = Duration::from_secs(5);

/// A free TCP port on 127.0.0.1 (bind :0, read the port, drop the listener).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("binding 127.0.0.1:0 to find a free port")
        .port()
}

/// A free port for a Redis Cluster node: its bus listens 10000 higher, so
/// the port must be at most 55535 and that one free too.
fn cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port <= 55535 && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10000)).is_ok() {
            return port;
        }
    }
}

/// A private PostgreSQL 15 server (trust auth, superuser `postgres`) for one test.
pub struct Postgres {
    server: Server,
    port: u16,
    /// Server settings (`-c NAME=VALUE`) beyond the launcher's.
    settings: Vec<String>,
    // Declared last so the server is killed before its directory is removed.
    dir: TempDir,
}

impl Postgres {
    /// Creates a fresh cluster in a temp dir and starts it on a free loopback port.
    ///
    /// Panics (with the server log tail) if the server does not accept connections
    /// within [`READY_TIMEOUT`].
    pub async fn start() -> Postgres {
        Self::start_with(&[]).await
    }

    /// Like [`Postgres::start`], with server `settings` (`NAME=VALUE`).
    pub async fn start_with(settings: &[&str]) -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("accubooks-pg-")
            .tempdir()
            .expect("creating the postgres temp dir");
        // The cluster goes to dir/data (owned by `postgres` when we are root) before
        // the first spawn, so READY_TIMEOUT times the server start alone.
        run_launcher(launcher("init-postgres").arg("--dir").arg(dir.path()));
        let pg = Self::spawn(dir, settings).await;
        pg.create_application_role();
        pg
    }

    /// A streaming standby of `primary` (a base backup, then the server in
    /// recovery), with the application's role and database from the primary.
    pub async fn standby_of(primary: &Postgres) -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("accubooks-pg-standby-")
            .tempdir()
            .expect("creating the postgres temp dir");
        run_launcher(
            launcher("init-standby")
                .arg("--dir")
                .arg(dir.path())
                .arg("--primary-port")
                .arg(primary.port.to_string()),
        );
        Self::spawn(dir, &[]).await
    }

    async fn spawn(dir: TempDir, settings: &[&str]) -> Postgres {
        let settings: Vec<String> = settings.iter().map(|s| (*s).to_owned()).collect();
        let log = dir.path().join("postgres.log");
        let mut attempt = 1;
        loop {
            let port = free_port();
            let spawned = spawn_and_wait(
                &log,
                Self::command(dir.path(), port, &settings),
                port,
                pg_isready,
            )
            .await;
            match spawned {
                Ok(server) => {
                    return Postgres {
                        server,
                        port,
                        settings,
                        dir,
                    };
                }
                // Another process may grab the port between free_port() and bind().
                Err(e) if e.port_in_use && attempt < START_ATTEMPTS => attempt += 1,
                Err(e) => panic!("postgres on port {port} did not start: {}", e.message),
            }
        }
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL the application connects with:
    /// `postgres://accubooks@127.0.0.1:PORT/accubooks`, an ordinary role
    /// owning its database, as in production, so row-level security binds it.
    pub fn url(&self) -> String {
        format!("postgres://{APP_ROLE}@127.0.0.1:{}/{APP_ROLE}", self.port)
    }

    /// The superuser's URL, for tests that inspect the database from outside.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{APP_ROLE}", self.port)
    }

    /// Creates the application's role (no superuser, no BYPASSRLS) and its
    /// database.
    fn create_application_role(&self) {
        run_launcher(
            launcher("create-app-database")
                .arg("--port")
                .arg(self.port.to_string()),
        );
    }

    /// SIGKILLs the postmaster and its backends and waits until they are gone.
    pub fn kill(&mut self) {
        if self.server.kill() {
            // A killed postmaster leaves its small SysV segment behind; over many test
            // runs these would exhaust the system-wide segment limit.
            remove_pg_shmem(&self.dir.path().join("data"));
        }
    }

    /// SIGSTOPs the whole server: TCP connects still succeed but nothing answers.
    /// Does nothing while the server is killed.
    pub fn pause(&self) {
        self.server.pause();
    }

    /// SIGCONTs the server after [`Postgres::pause`].
    pub fn resume(&self) {
        self.server.resume();
    }

    /// Starts the server again on the same port and data dir, killing it first if it
    /// still runs; postgres performs crash recovery. Panics like [`Postgres::start`].
    pub async fn restart(&mut self) {
        self.kill();
        // The postmaster is known dead; a leftover lock file whose pid got reused would
        // make postgres refuse to start.
        let data = self.dir.path().join("data");
        remove_if_exists(&data.join("postmaster.pid"));
        remove_if_exists(&self.dir.path().join(format!(".s.PGSQL.{}.lock", self.port)));

        let (dir, port, settings) = (self.dir.path(), self.port, &self.settings);
        let log = dir.join("postgres.log");
        self.server = restart_on_same_port(
            &log,
            || Self::command(dir, port, settings),
            port,
            pg_isready,
        )
        .await
        .unwrap_or_else(|message| panic!("postgres on port {port} did not restart: {message}"));
    }

    /// The server of `dir` on `port` in the foreground; `--fast` turns fsync and
    /// full-page writes off, so a restart after SIGKILL recovers quickly.
    fn command(dir: &Path, port: u16, settings: &[String]) -> Command {
        let mut command = launcher("postgres");
        command
            .arg("--dir")
            .arg(dir)
            .arg("--port")
            .arg(port.to_string())
            .arg("--fast");
        for setting in settings {
            command.arg("-c").arg(setting);
        }
        command
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private Redis server without persistence for one test.
pub struct Redis {
    server: Server,
    port: u16,
    /// Whether it is a Redis Cluster node.
    cluster: bool,
    // Declared last so the server is killed before its directory is removed.
    dir: TempDir,
}

impl Redis {
    /// Starts `redis-server` on a free loopback port in a fresh temp dir.
    ///
    /// Panics (with the server log tail) if it does not answer PING within
    /// [`READY_TIMEOUT`].
    pub async fn start() -> Redis {
        Self::start_node(false).await
    }

    async fn start_node(cluster: bool) -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("accubooks-redis-")
            .tempdir()
            .expect("creating the redis temp dir");
        let log = dir.path().join("redis.log");
        let mut attempt = 1;
        loop {
            let port = if cluster { cluster_port() } else { free_port() };
            let command = Self::command(dir.path(), port, cluster);
            match spawn_and_wait(&log, command, port, redis_ping).await {
                Ok(server) => {
                    return Redis {
                        server,
                        port,
                        cluster,
                        dir,
                    };
                }
                // Another process may grab the port between free_port() and bind().
                Err(e) if e.port_in_use && attempt < START_ATTEMPTS => attempt += 1,
                Err(e) => panic!("redis on port {port} did not start: {}", e.message),
            }
        }
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection URL: `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILLs the server and waits until it is reaped.
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// SIGSTOPs the server: TCP connects still succeed but nothing answers.
    /// Does nothing while the server is killed.
    pub fn pause(&self) {
        self.server.pause();
    }

    /// SIGCONTs the server after [`Redis::pause`].
    pub fn resume(&self) {
        self.server.resume();
    }

    /// Starts the server again on the same port (empty, as nothing is persisted),
    /// killing it first if it still runs. Panics like [`Redis::start`]. A
    /// cluster node keeps its `nodes.conf`, so it rejoins its cluster.
    pub async fn restart(&mut self) {
        self.server.kill();
        let (dir, port, cluster) = (self.dir.path(), self.port, self.cluster);
        let log = dir.join("redis.log");
        let command = || Self::command(dir, port, cluster);
        self.server = restart_on_same_port(&log, command, port, redis_ping)
            .await
            .unwrap_or_else(|message| panic!("redis on port {port} did not restart: {message}"));
    }

    fn command(dir: &Path, port: u16, cluster: bool) -> Command {
        let mut command = launcher("redis");
        command
            .arg("--dir")
            .arg(dir)
            .arg("--port")
            .arg(port.to_string());
        if cluster {
            command.arg("--cluster");
        }
        command
    }
}

/// A private Redis Cluster: nodes made by the launcher's
/// `create-redis-cluster`, which notice a dead peer within a second.
pub struct RedisCluster {
    /// Every node, masters first as created (a failover changes roles).
    pub nodes: Vec<Redis>,
    replicas: usize,
}

impl RedisCluster {
    /// Starts the nodes of `masters` masters with `replicas` replicas each,
    /// not yet joined: until [`RedisCluster::join`], every node answers
    /// `CLUSTERDOWN`.
    pub async fn start(masters: usize, replicas: usize) -> RedisCluster {
        let nodes = futures::future::join_all(
            (0..masters * (1 + replicas)).map(|_| Redis::start_node(true)),
        )
        .await;
        RedisCluster { nodes, replicas }
    }

    /// Joins the nodes into one cluster and waits until every node reports
    /// it ok and every replica is in sync.
    pub async fn join(&self) {
        let mut create = launcher("create-redis-cluster");
        create.arg("--replicas").arg(self.replicas.to_string());
        for node in &self.nodes {
            create.arg(node.port.to_string());
        }
        let output = tokio::task::spawn_blocking(move || create.output())
            .await
            .expect("the cluster creation task")
            .expect("running create-redis-cluster");
        assert!(
            output.status.success(),
            "create-redis-cluster failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Every node's URL, comma-separated (`REDIS_URL` with `REDIS_MODE=cluster`).
    pub fn urls(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(Redis::url).collect();
        urls.join(",")
    }

    /// The index in [`RedisCluster::nodes`] of the master serving `key`, as
    /// the nodes other than `except` see it (`None` while no master that
    /// they consider alive serves it).
    pub fn master_of(&self, key: &str, except: Option<usize>) -> Option<usize> {
        let asked = (0..self.nodes.len()).find(|i| Some(*i) != except)?;
        let port = self.nodes[asked].port;
        let slot: u16 = redis_cli(port, &["cluster", "keyslot", key])
            .trim()
            .parse()
            .ok()?;
        let view = redis_cli(port, &["cluster", "nodes"]);
        view.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (address, flags) = (fields.get(1)?, fields.get(2)?);
            let alive_master = flags.contains("master") && !flags.contains("fail");
            let serves = fields.iter().skip(8).any(|range| {
                let (low, high) = range.split_once('-').unwrap_or((range, range));
                matches!((low.parse::<u16>(), high.parse::<u16>()), (Ok(l), Ok(h)) if (l..=h).contains(&slot))
            });
            if !alive_master || !serves {
                return None;
            }
            let node_port: u16 = address.split(['@']).next()?.rsplit(':').next()?.parse().ok()?;
            self.nodes.iter().position(|node| node.port == node_port)
        })
    }
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running redis-cli");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A server process that leads its own process group, so signals reach its children.
struct Server {
    child: Option<Child>,
    paused: AtomicBool,
}

impl Server {
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Returns whether there was a running process to kill.
    fn kill(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let pgid = child.id();
        let orphans = children(pgid);
        if self.paused.swap(false, Ordering::SeqCst) {
            let _ = signal_group(pgid, libc::SIGCONT);
            for child in &orphans {
                let _ = signal_pid(*child, libc::SIGCONT);
            }
        }
        let _ = signal_group(pgid, libc::SIGKILL);
        // Backends left the group (setsid); a crash kills them too.
        for child in &orphans {
            let _ = signal_pid(*child, libc::SIGKILL);
        }
        let _ = child.wait();
        // Postgres backends are orphaned once the postmaster is reaped; a restart fails
        // while any of them still holds the old shared memory segment.
        let deadline = Instant::now() + GROUP_EXIT_TIMEOUT;
        while group_has_live_members(pgid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    fn pause(&self) {
        if let Some(pid) = self.pid() {
            signal_group(pid, libc::SIGSTOP).expect("SIGSTOP to the server process group");
            // Postgres backends call setsid(), leaving the group: without
            // stopping them too, open connections would keep answering.
            for child in children(pid) {
                let _ = signal_pid(child, libc::SIGSTOP);
            }
            self.paused.store(true, Ordering::SeqCst);
        }
    }

    fn resume(&self) {
        if let Some(pid) = self.pid() {
            for child in children(pid) {
                let _ = signal_pid(child, libc::SIGCONT);
            }
            signal_group(pid, libc::SIGCONT).expect("SIGCONT to the server process group");
            self.paused.store(false, Ordering::SeqCst);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Also covers servers that never became ready, e.g. when a start panics.
        self.kill();
    }
}

/// Why a server did not become ready.
struct StartError {
    message: String,
    port_in_use: bool,
}

/// Spawns `command` in its own process group with output appended to `log` and polls
/// `ready(port)` until it succeeds, the process exits or [`READY_TIMEOUT`] passes.
async fn spawn_and_wait(
    log: &Path,
    mut command: Command,
    port: u16,
    ready: fn(u16) -> bool,
) -> Result<Server, StartError> {
    let log_start = fs::metadata(log).map(|m| m.len()).unwrap_or(0);
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| panic!("opening {}: {e}", log.display()));
    let err = out.try_clone().expect("cloning the log file handle");
    let program = format!("{command:?}");
    let child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {program}: {e}"));
    let mut server = Server {
        child: Some(child),
        paused: AtomicBool::new(false),
    };

    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let exited = server
            .child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten());
        if let Some(status) = exited {
            server.child = None;
            let new_output = read_from(log, log_start);
            return Err(StartError {
                port_in_use: new_output.contains("Address already in use"),
                message: format!(
                    "{program} exited with {status}; log {}:\n{}",
                    log.display(),
                    tail(&new_output)
                ),
            });
        }
        if ready(port) {
            return Ok(server);
        }
        if Instant::now() >= deadline {
            server.kill();
            return Err(StartError {
                port_in_use: false,
                message: format!(
                    "{program} not ready after {READY_TIMEOUT:?}; log {}:\n{}",
                    log.display(),
                    tail(&read_from(log, log_start))
                ),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Like [`spawn_and_wait`], but retries while the fixed port is briefly taken (for
/// example by a client socket that happened to get it as its ephemeral port).
async fn restart_on_same_port(
    log: &Path,
    command: impl Fn() -> Command,
    port: u16,
    ready: fn(u16) -> bool,
) -> Result<Server, String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match spawn_and_wait(log, command(), port, ready).await {
            Ok(server) => return Ok(server),
            Err(e) if e.port_in_use && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.message),
        }
    }
}

/// The role and database the application uses in tests (made by the launcher).
const APP_ROLE: &str = "accubooks";

/// A [`LAUNCHER`] subcommand. `-S`: the launcher needs the standard library only,
/// so the interpreter skips site-packages and their start-up hooks.
fn launcher(subcommand: &str) -> Command {
    let mut command = Command::new(python());
    command.arg("-S").arg(LAUNCHER).arg(subcommand);
    command
}

/// The interpreter of `python3` on PATH, resolved once to the real executable: a
/// version manager's shim (pyenv) costs about a quarter second per run.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let output = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .stdin(Stdio::null())
            .output()
            .expect("running python3, which the launcher needs");
        let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(
            output.status.success() && !path.is_empty(),
            "python3 does not name its executable: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        PathBuf::from(path)
    })
}

/// Runs a one-shot launcher subcommand; panics with its output when it fails.
fn run_launcher(command: &mut Command) {
    let program = format!("{command:?}");
    let output = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

fn pg_isready(port: u16) -> bool {
    Command::new(Path::new(PG_BIN_DIR).join("pg_isready"))
        .args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-t", "1", "-p"])
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn redis_ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let mut reply = [0_u8; 5];
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .is_ok()
        && stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG"
}

fn remove_if_exists(path: &Path) {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            panic!("removing {}: {e}", path.display())
        }
        _ => {}
    }
}

/// The contents of `path` from byte `offset` on (what the latest spawn wrote).
fn read_from(path: &Path, offset: u64) -> String {
    let mut text = Vec::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.seek(SeekFrom::Start(offset));
        let _ = file.read_to_end(&mut text);
    }
    String::from_utf8_lossy(&text).into_owned()
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Whether any process of group `pgid` is still alive (zombies do not count: whoever
/// inherited them may never reap them, and they no longer hold resources).
fn group_has_live_members(pgid: u32) -> bool {
    let Ok(entries) = fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // The command name may contain spaces and parentheses; fields follow the last ')'.
        let Some((_, fields)) = stat.rsplit_once(')') else {
            return false;
        };
        let mut fields = fields.split_whitespace();
        let state = fields.next();
        let group = fields.nth(1).and_then(|g| g.parse::<u32>().ok());
        group == Some(pgid) && !matches!(state, Some("Z" | "X"))
    })
}

/// Live direct children of `parent` (read from `/proc`).
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            let (_, fields) = stat.rsplit_once(')')?;
            let mut fields = fields.split_whitespace();
            let state = fields.next()?;
            let ppid = fields.next()?.parse::<u32>().ok()?;
            (ppid == parent && !matches!(state, "Z" | "X")).then_some(pid)
        })
        .collect()
}

#[allow(unsafe_code)]
fn signal_pid(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).expect("pid fits in pid_t");
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Removes the SysV shared memory segment named in the data dir's `postmaster.pid`
/// (line 7 holds the key and the segment id), ignoring an absent file or segment.
fn remove_pg_shmem(data: &Path) {
    let Ok(pid_file) = fs::read_to_string(data.join("postmaster.pid")) else {
        return;
    };
    let shmid = pid_file
        .lines()
        .nth(6)
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|id| id.parse::<libc::c_int>().ok());
    if let Some(shmid) = shmid {
        let _ = remove_shm_segment(shmid);
    }
}

#[allow(unsafe_code)]
fn remove_shm_segment(shmid: libc::c_int) -> io::Result<()> {
    // SAFETY: IPC_RMID ignores the buffer argument, so a null pointer is allowed; the id
    // comes from the lock file of a server whose processes are all dead.
    let rc = unsafe { libc::shmctl(shmid, libc::IPC_RMID, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[allow(unsafe_code)]
fn signal_group(pgid: u32, signal: libc::c_int) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid).expect("pid fits in pid_t");
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; the negated
    // pid addresses the process group the server was spawned into.
    let rc = unsafe { libc::kill(-pgid, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

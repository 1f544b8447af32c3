#!/usr/bin/env python3
"""The launcher of private PostgreSQL 15 and Redis servers, and the process
helpers of scripts/bench, scripts/chaos and scripts/fuzz (Python 3 standard
library only).

This file is the one place that knows how a private server is started: the
initdb flags, the postgresql.conf settings, running PostgreSQL as the
`postgres` user when we are root, the socket dir, the application role and
database `accubooks` (an ordinary role owning its database, so row-level
security binds it, as in production) and the redis-server flags. Its users:

- tests/integration/support/services.rs (the Rust integration tests) runs the
  command line below and keeps the processes (process groups, kill, SIGSTOP,
  restart) and readiness polling in Rust;
- accubooks-py/tests/conftest.py (the Python package's tests) imports this file
  and uses `Postgres`;
- scripts/bench, scripts/chaos and scripts/fuzz import it as `services as sv`.

Command line (`python3 scripts/lib/services.py SUBCOMMAND --help`):

  postgres --dir DIR --port PORT [--fast] [-c NAME=VALUE ...]
      initdb's DIR/data when it is not a cluster yet, then execs (as
      `postgres` through setpriv when root) into the server in the
      foreground: the pid that was spawned becomes the postmaster's, so the
      caller's SIGKILL, SIGSTOP and SIGCONT reach it. The socket is in DIR.
  init-postgres --dir DIR
      only the initdb part (for callers that time the server start apart).
  create-app-database --port PORT [--database NAME]
      creates the role `accubooks` and the database NAME (default
      `accubooks`) owned by it, unless they exist; prints the URL.
  redis --dir DIR --port PORT [--cluster]
      execs into redis-server (no persistence) with DIR as its dir; with
      --cluster, as a Redis Cluster node (its nodes.conf in DIR).
  create-redis-cluster --replicas N PORT...
      joins the cluster nodes on PORT... into one cluster (the first ones
      masters, N replicas each) and waits until every node reports it ok.

The Python API: every server gets its own temporary directory, a free loopback
port and its own process group, so a script can kill, pause, resume and
restart it. Backends call setsid() and leave the postmaster's group, so
signals also go to each child found through /proc/*/stat. Every process
started here is registered and killed by `cleanup()`, which runs at exit and
on SIGINT/SIGTERM once `install_cleanup()` was called: a script never leaves a
server behind.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
READY_TIMEOUT = 15.0
LAUNCHER = Path(__file__).resolve()
REPO = LAUNCHER.parents[2]
SECRET = "bench-s3cr3t-bench-s3cr3t-bench-s3cr3t-0123456789"

# The role the application connects as, and its database.
APP_ROLE = "accubooks"
APP_DATABASE = "accubooks"

# Settings of every private PostgreSQL.
BASE_SETTINGS = {"listen_addresses": "127.0.0.1", "max_connections": "200"}
# `--fast`, for tests: without fsync a restart after SIGKILL recovers in a
# fraction of a second instead of syncing the data dir; a killed process (not
# a crashed machine) loses nothing either way.
FAST_SETTINGS = {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "on"}

# How many fresh ports a first start tries when the chosen one was taken.
START_ATTEMPTS = 5

_processes: list[Process] = []
_dirs: list[Path] = []
_clusters: list[Postgres] = []


def log(message: str) -> None:
    """A progress line on stderr, with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A port nobody listens on right now (bind :0, read it, close)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_root() -> bool:
    return os.geteuid() == 0


def cluster_port() -> int:
    """A free port for a Redis Cluster node: its bus listens 10000 higher,
    so the port must be at most 55535 and that one free too."""
    while True:
        port = free_port()
        if port <= 55535:
            try:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port + 10000))
                return port
            except OSError:
                pass


def make_dir(prefix: str) -> Path:
    """A temp dir removed by `cleanup()`."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    _dirs.append(path)
    return path


# ---------------------------------------------------------------------------
# How a private server is started (the single source of truth).
# ---------------------------------------------------------------------------


def pg_argv(binary: str, *args: str) -> list[str]:
    """The command of a PostgreSQL binary, dropped to the `postgres` user when
    we are root (initdb and postgres refuse to run as root). setpriv execs, so
    the pid is the binary's own."""
    path = str(PG_BIN / binary)
    if is_root():
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", path, *args]
    return [path, *args]


def init_postgres(directory: Path) -> Path:
    """Makes `directory` a server dir: the cluster in `directory/data` (initdb'd
    unless it already is a cluster), the socket in `directory`. As root both
    belong to `postgres`, which must also be able to traverse every parent.
    Returns the data dir; raises RuntimeError when initdb fails."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    data = directory / "data"
    data.mkdir(mode=0o700, exist_ok=True)
    if is_root():
        import pwd

        entry = pwd.getpwnam("postgres")
        for path in (directory, data):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    if (data / "PG_VERSION").exists():
        return data
    r = subprocess.run(
        # Fixed locale and encoding keep the cluster independent of the environment.
        pg_argv("initdb", "-D", str(data), "--auth=trust", "--no-sync", "-U", "postgres",
                "--encoding=UTF8", "--locale=C"),
        # The postgres user may not be able to enter our working directory.
        cwd=directory, stdin=subprocess.DEVNULL, capture_output=True, text=True,
    )
    if r.returncode != 0:
        raise RuntimeError(f"initdb failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return data


def init_standby(directory: Path, primary_port: int) -> Path:
    """Makes `directory` the server dir of a streaming standby of the primary on
    `primary_port`: a base backup into `directory/data` with the replication
    settings written (`pg_basebackup -R`), as `postgres` when we are root.
    Returns the data dir; raises RuntimeError when the backup fails."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    data = directory / "data"
    if is_root():
        import pwd

        entry = pwd.getpwnam("postgres")
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    r = subprocess.run(
        pg_argv("pg_basebackup", "-h", "127.0.0.1", "-p", str(primary_port), "-U", "postgres",
                "-D", str(data), "-R", "-X", "stream", "--no-sync", "--checkpoint=fast"),
        cwd=directory, stdin=subprocess.DEVNULL, capture_output=True, text=True,
    )
    if r.returncode != 0:
        raise RuntimeError(f"pg_basebackup failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return data


def postgres_settings(fast: bool = False, settings: dict[str, str] | None = None) -> dict[str, str]:
    """BASE_SETTINGS, FAST_SETTINGS when `fast`, then `settings` (later wins)."""
    merged = dict(BASE_SETTINGS)
    if fast:
        merged.update(FAST_SETTINGS)
    merged.update(settings or {})
    return merged


def postgres_argv(directory: Path, port: int, settings: dict[str, str]) -> list[str]:
    """The server of `init_postgres(directory)` on `port`, in the foreground."""
    args = ["-D", str(directory / "data"), "-p", str(port), "-k", str(directory)]
    for name, value in settings.items():
        args += ["-c", f"{name}={value}"]
    return pg_argv("postgres", *args)


def redis_argv(directory: Path, port: int, cluster: bool = False) -> list[str]:
    """A Redis without persistence on `port`, in the foreground; with
    `cluster`, a Redis Cluster node that notices a dead peer within a second."""
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(directory)]
    if cluster:
        argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--cluster-node-timeout", "1000", "--repl-diskless-sync-delay", "0"]
    return argv


def redis_cli(port: int, *args: str, timeout: float = 30) -> str:
    """`redis-cli -p PORT ARGS...`; returns its output, raises on failure."""
    r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), *args],
                       capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError(f"redis-cli {' '.join(args)} failed: {(r.stderr or r.stdout).strip()}")
    return r.stdout


def create_redis_cluster(ports: list[int], replicas: int, timeout: float = 60) -> None:
    """Joins the cluster nodes on `ports` into one cluster, with `replicas`
    replicas per master, and waits until every node says `cluster_state:ok`
    and knows all of them, and every replica is in sync with its master."""
    nodes = [f"127.0.0.1:{port}" for port in ports]
    r = subprocess.run(["redis-cli", "--cluster", "create", *nodes,
                        "--cluster-replicas", str(replicas), "--cluster-yes"],
                       capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if r.returncode != 0 or "[OK]" not in r.stdout:
        raise RuntimeError(f"redis-cli --cluster create failed: {(r.stderr or r.stdout).strip()[-2000:]}")
    deadline = time.time() + timeout
    while True:
        pending = []
        for port in ports:
            info = dict(line.strip().partition(":")[::2]
                        for line in redis_cli(port, "cluster", "info").splitlines())
            replication = dict(line.strip().partition(":")[::2]
                               for line in redis_cli(port, "info", "replication").splitlines())
            # A replica that has not synchronised yet could not take over.
            synced = replication.get("role") == "master" or replication.get("master_link_status") == "up"
            if info.get("cluster_state") != "ok" or info.get("cluster_known_nodes") != str(len(ports)) \
                    or not synced:
                pending.append(port)
        if not pending:
            return
        if time.time() > deadline:
            raise RuntimeError(f"the cluster is not ok on ports {pending} after {timeout} s")
        time.sleep(0.1)


def psql(port: int, sql: str, database: str = "postgres", timeout: float = 600) -> str:
    """Runs `sql` as the superuser; returns the unaligned tuples-only output."""
    r = subprocess.run(
        [str(PG_BIN / "psql"), "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", str(port),
         "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1"],
        input=sql, capture_output=True, text=True, timeout=timeout,
    )
    if r.returncode != 0:
        raise RuntimeError(f"psql failed: {r.stderr.strip()}")
    return r.stdout


def app_url(port: int, database: str = APP_DATABASE) -> str:
    """The URL the application connects with to `database`."""
    return f"postgres://{APP_ROLE}@127.0.0.1:{port}/{database}"


def create_app_database(port: int, database: str = APP_DATABASE) -> str:
    """Creates the ordinary role `accubooks` (no superuser, no BYPASSRLS) and
    `database` owned by it, unless they exist, so PostgreSQL's row-level
    security binds the application as in production. Returns its URL."""
    name = database.replace("'", "''")
    # One psql run; \gexec runs each generated statement on its own, outside a
    # transaction, as CREATE DATABASE needs.
    psql(port, f"""
        SELECT 'CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS'
        WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') \\gexec
        SELECT format('CREATE DATABASE %I OWNER {APP_ROLE}', '{name}')
        WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}') \\gexec
    """)
    return app_url(port, database)


def launcher_argv(*args: str) -> list[str]:
    """This file's command line, run by the interpreter running us (-S: it
    needs the standard library only, so site-packages are skipped)."""
    return [sys.executable, "-S", str(LAUNCHER), *args]


def _exec(argv: list[str], directory: Path) -> None:
    os.chdir(directory)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(argv[0], argv)


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docs)."""
    parser = argparse.ArgumentParser(
        prog="services.py", description="Starts private PostgreSQL 15 and Redis servers for tests.")
    commands = parser.add_subparsers(dest="command", required=True)

    pg = commands.add_parser("postgres", help="initdb DIR when needed, then exec into the server")
    pg.add_argument("--dir", type=Path, required=True, help="server dir: cluster in DIR/data, socket in DIR")
    pg.add_argument("--port", type=int, required=True)
    pg.add_argument("--fast", action="store_true", help="fsync and full_page_writes off (for tests)")
    pg.add_argument("-c", dest="settings", type=_setting, action="append", default=[],
                    metavar="NAME=VALUE", help="a server setting (repeatable; later wins)")

    init = commands.add_parser("init-postgres", help="initdb DIR/data unless it is a cluster")
    init.add_argument("--dir", type=Path, required=True)

    standby = commands.add_parser("init-standby", help="a streaming standby's DIR/data from a primary")
    standby.add_argument("--dir", type=Path, required=True)
    standby.add_argument("--primary-port", type=int, required=True)

    app = commands.add_parser("create-app-database", help="the role accubooks and its database")
    app.add_argument("--port", type=int, required=True)
    app.add_argument("--database", default=APP_DATABASE)

    redis = commands.add_parser("redis", help="exec into redis-server without persistence")
    redis.add_argument("--dir", type=Path, required=True)
    redis.add_argument("--port", type=int, required=True)
    redis.add_argument("--cluster", action="store_true", help="as a Redis Cluster node")

    cluster = commands.add_parser("create-redis-cluster", help="join cluster nodes into one cluster")
    cluster.add_argument("--replicas", type=int, default=0, help="replicas per master")
    cluster.add_argument("ports", type=int, nargs="+")

    args = parser.parse_args(argv)
    try:
        if args.command == "postgres":
            directory = args.dir.resolve()
            init_postgres(directory)
            settings = postgres_settings(args.fast, dict(args.settings))
            _exec(postgres_argv(directory, args.port, settings), directory)
        elif args.command == "init-postgres":
            init_postgres(args.dir.resolve())
        elif args.command == "init-standby":
            init_standby(args.dir.resolve(), args.primary_port)
        elif args.command == "create-app-database":
            print(create_app_database(args.port, args.database))
        elif args.command == "redis":
            directory = args.dir.resolve()
            directory.mkdir(parents=True, exist_ok=True)
            _exec(redis_argv(directory, args.port, args.cluster), directory)
        elif args.command == "create-redis-cluster":
            create_redis_cluster(args.ports, args.replicas)
    except (RuntimeError, OSError) as e:
        print(f"services.py {args.command}: {e}", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------------------
# Processes and servers for Python callers.
# ---------------------------------------------------------------------------


def children(parent: int) -> list[int]:
    """Live direct children of `parent`, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and fields[0] not in ("Z", "X") and int(fields[1]) == parent:
            found.append(int(entry))
    return found


def group_alive(pgid: int) -> bool:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if len(fields) > 3 and int(fields[3]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def rss_kb(pid: int) -> int | None:
    """VmRSS of `pid` in kB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


# Python 3.11 has process_group; setsid also makes the child a group leader.
_NEW_GROUP = {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}


class Process:
    """A child in its own process group, output appended to a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env=None, cwd=None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self.paused = False
        self.spawned_at = 0.0
        self.log_offset = 0
        self.expected_exit = False
        _processes.append(self)

    def spawn(self) -> None:
        out = open(self.log_path, "ab")
        self.log_offset = out.tell()
        self.spawned_at = time.time()
        self.expected_exit = False
        self.paused = False
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            **_NEW_GROUP,
        )
        out.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self):
        return self.proc.poll() if self.proc else None

    def kill(self) -> bool:
        """SIGKILLs the group and orphaned children; waits until they are gone.
        Returns whether there was a process (alive or not yet reaped)."""
        if self.proc is None:
            return False
        self.expected_exit = True
        pid = self.proc.pid
        orphans = children(pid)
        if self.paused:
            _signal(-pid, signal.SIGCONT)
            for c in orphans:
                _signal(c, signal.SIGCONT)
            self.paused = False
        _signal(-pid, signal.SIGKILL)
        for c in orphans:
            _signal(c, signal.SIGKILL)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.time() + 5
        while group_alive(pid) and time.time() < deadline:
            time.sleep(0.005)
        return True

    def terminate(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`."""
        if not self.alive():
            return
        assert self.proc is not None  # alive
        self.expected_exit = True
        _signal(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def pause(self) -> None:
        if not self.alive():
            return
        assert self.proc is not None  # alive
        pid = self.proc.pid
        _signal(-pid, signal.SIGSTOP)
        for c in children(pid):
            _signal(c, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.proc is None:
            return
        pid = self.proc.pid
        for c in children(pid):
            _signal(c, signal.SIGCONT)
        _signal(-pid, signal.SIGCONT)
        self.paused = False

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def log_since_spawn(self) -> str:
        """What the latest spawn wrote to the log."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""


def _pg_ready(port: int) -> bool:
    r = subprocess.run(
        [str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-U", "postgres", "-t", "1", "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return r.returncode == 0


def _redis_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.settimeout(0.5)
            s.sendall(b"PING\r\n")
            return s.recv(5) == b"+PONG"
    except OSError:
        return False


class _PortInUse(RuntimeError):
    pass


def _wait_ready(process: Process, ready, port: int) -> None:
    deadline = time.time() + READY_TIMEOUT
    while time.time() < deadline:
        if not process.alive():
            output = process.log_since_spawn()
            error = _PortInUse if "Address already in use" in output else RuntimeError
            tail = "\n".join(output.splitlines()[-30:])
            raise error(f"{process.name} on port {port} exited ({process.exit_code()}); "
                        f"log {process.log_path}:\n{tail}")
        if ready(port):
            return
        time.sleep(0.02)
    process.kill()
    raise RuntimeError(f"{process.name} on port {port} not ready after {READY_TIMEOUT}s; "
                       f"log {process.log_path}:\n{process.log_tail()}")


def _start(process: Process, argv, ready, port: int, first: bool) -> int:
    """Spawns `argv(port)` and waits until `ready(port)`; returns the port.
    While the port is taken (another process may grab it between free_port()
    and bind(), or a client socket hold it for a moment), a first start tries
    fresh ports and a restart tries the same port again for READY_TIMEOUT."""
    deadline = time.time() + READY_TIMEOUT
    attempt = 1
    while True:
        process.argv = argv(port)
        process.spawn()
        try:
            _wait_ready(process, ready, port)
            return port
        except _PortInUse:
            if first and attempt < START_ATTEMPTS:
                attempt += 1
                port = free_port()
            elif not first and time.time() < deadline:
                time.sleep(0.1)
            else:
                raise


class Postgres:
    """A private PostgreSQL 15 server (trust auth, superuser `postgres`) with
    the application role and database `accubooks`, started through this
    file's `postgres` command line."""

    def __init__(self, settings: dict[str, str] | None = None, log_dir: Path | None = None,
                 fast: bool = False, prefix: str = "accubooks-pg-", standby_of: Postgres | None = None):
        """With `standby_of`, a streaming standby of that primary (a base
        backup taken now, `pg_basebackup -R`), which has its database."""
        self.dir = make_dir(prefix)
        self.data = init_standby(self.dir, standby_of.port) if standby_of else init_postgres(self.dir)
        self.settings = postgres_settings(fast, settings)
        self.port: int = free_port()
        name = "postgres-standby" if standby_of else "postgres"
        self.process = Process(name, [], (log_dir or self.dir) / f"{name}.log")
        self._started = False
        _clusters.append(self)
        self.start()
        if not standby_of:
            create_app_database(self.port)

    def make_standbys_synchronous(self, timeout: float = 30) -> None:
        """Makes every standby synchronous (a commit waits for one) and waits
        until one is."""
        self.psql("ALTER SYSTEM SET synchronous_standby_names = '*'; SELECT pg_reload_conf();")
        deadline = time.time() + timeout
        while self.psql("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'").strip() != "1":
            if time.time() > deadline:
                raise RuntimeError("no standby became synchronous")
            time.sleep(0.05)

    def promote(self) -> None:
        """Promotes a standby and waits until it accepts writes."""
        self.psql("SELECT pg_promote(true, 60)")

    def _argv(self, port: int) -> list[str]:
        args = ["postgres", "--dir", str(self.dir), "--port", str(port)]
        for name, value in self.settings.items():
            args += ["-c", f"{name}={value}"]
        return launcher_argv(*args)

    def start(self) -> None:
        """Starts the server unless it runs (the constructor already did)."""
        if self.process.alive():
            return
        self.port = _start(self.process, self._argv, _pg_ready, self.port, first=not self._started)
        self._started = True

    @property
    def url(self) -> str:
        """`postgres://accubooks@127.0.0.1:PORT/accubooks`: an ordinary role
        owning its database, as in production, so row-level security binds it."""
        return app_url(self.port)

    @property
    def admin_url(self) -> str:
        """The superuser's URL of the `accubooks` database (no row-level security binds it)."""
        return f"postgres://postgres@127.0.0.1:{self.port}/{APP_DATABASE}"

    def create_app_database(self, database: str) -> str:
        """Creates `database` owned by the role `accubooks` unless it exists
        and returns the URL the application connects with."""
        return create_app_database(self.port, database)

    def app_url(self, database: str) -> str:
        """The URL of a database made by `create_app_database`."""
        return app_url(self.port, database)

    def kill(self) -> None:
        """SIGKILLs the postmaster and its backends and waits until they are gone."""
        shmid = None
        try:
            line = (self.data / "postmaster.pid").read_text().splitlines()[6]
            shmid = line.split()[1]
        except (OSError, IndexError):
            pass
        if self.process.kill() and shmid and shutil.which("ipcrm"):
            # A killed postmaster leaves its SysV segment behind; over many
            # runs these would exhaust the system-wide limit.
            subprocess.run(["ipcrm", "-m", shmid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.process.proc = None

    def restart(self) -> None:
        """Starts again on the same port and data dir (crash recovery), killing
        the server first if it still runs."""
        self.kill()
        # The postmaster is known dead; a leftover lock file whose pid got
        # reused would make postgres refuse to start.
        for stale in (self.data / "postmaster.pid", self.dir / f".s.PGSQL.{self.port}.lock"):
            try:
                stale.unlink()
            except FileNotFoundError:
                pass
        self.start()

    def pause(self) -> None:
        """SIGSTOPs the server: TCP connects still succeed but nothing answers."""
        self.process.pause()

    def resume(self) -> None:
        self.process.resume()

    def psql(self, sql: str, database: str = "postgres", timeout: float = 600) -> str:
        return psql(self.port, sql, database, timeout)

    def close(self) -> None:
        """Kills the server and removes its directory (as `cleanup()` would)."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
        if self in _clusters:
            _clusters.remove(self)
        if self.process in _processes:
            _processes.remove(self.process)
        if self.dir in _dirs:
            _dirs.remove(self.dir)


class Redis:
    """A private Redis without persistence, started through this file's
    `redis` command line; with `cluster`, a Redis Cluster node."""

    def __init__(self, log_dir: Path | None = None, cluster: bool = False):
        self.dir = make_dir("accubooks-redis-")
        self.port = cluster_port() if cluster else free_port()
        self.cluster = cluster
        self.process = Process("redis", [], (log_dir or self.dir) / f"redis-{self.port}.log")
        self._started = False
        self.start()

    def _argv(self, port: int) -> list[str]:
        return launcher_argv("redis", "--dir", str(self.dir), "--port", str(port),
                             *(["--cluster"] if self.cluster else []))

    def start(self) -> None:
        """Starts the server unless it runs (the constructor already did)."""
        if self.process.alive():
            return
        self.port = _start(self.process, self._argv, _redis_ready, self.port, first=not self._started)
        self._started = True

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def kill(self) -> None:
        self.process.kill()

    def restart(self) -> None:
        """Starts again on the same port (empty: nothing is persisted)."""
        self.kill()
        self.start()

    def pause(self) -> None:
        self.process.pause()

    def resume(self) -> None:
        self.process.resume()


class RedisCluster:
    """A private Redis Cluster: `masters` masters with `replicas` replicas
    each, joined by `create_redis_cluster` (every replica in sync)."""

    def __init__(self, masters: int = 3, replicas: int = 1, log_dir: Path | None = None):
        self.nodes = [Redis(log_dir, cluster=True) for _ in range(masters * (1 + replicas))]
        create_redis_cluster([node.port for node in self.nodes], replicas)

    def urls(self) -> str:
        """Every node's URL, comma-separated (REDIS_URL with REDIS_MODE=cluster)."""
        return ",".join(node.url() for node in self.nodes)

    def master_of(self, key: str, asked: Redis | None = None) -> Redis | None:
        """The node that `asked` (default: the first node that answers) sees
        as the live master serving `key`."""
        for node in [asked] if asked else self.nodes:
            try:
                slot = int(redis_cli(node.port, "cluster", "keyslot", key, timeout=5))
                view = redis_cli(node.port, "cluster", "nodes", timeout=5)
            except (RuntimeError, ValueError, subprocess.TimeoutExpired):
                continue
            for line in view.splitlines():
                fields = line.split()
                if len(fields) < 8 or "master" not in fields[2] or "fail" in fields[2]:
                    continue
                for slots in fields[8:]:
                    low, _, high = slots.partition("-")
                    if low.isdigit() and int(low) <= slot <= int(high or low):
                        port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
                        return next((n for n in self.nodes if n.port == port), None)
            return None
        return None

    def wait_failover(self, key: str, dead: Redis, timeout: float = 30) -> float:
        """Waits until a node other than `dead` serves `key` as a live master
        (as another node sees it); returns the wait."""
        started = time.time()
        witness = next(n for n in self.nodes if n is not dead)
        while time.time() - started < timeout:
            master = self.master_of(key, witness)
            if master is not None and master is not dead:
                return time.time() - started
            time.sleep(0.05)
        raise RuntimeError(f"no replica took over {key} within {timeout} s")


class Haproxy:
    """HAProxy with deploy/haproxy/haproxy.cfg as shipped, in front of the
    instances on `ports` (up to three; the others point at a closed port)."""

    CONFIG = REPO / "deploy" / "haproxy" / "haproxy.cfg"

    def __init__(self, ports: list[int], log_dir: Path):
        if not 1 <= len(ports) <= 3:
            raise ValueError("the shipped configuration has three servers")
        self.port = free_port()
        self.socket = log_dir / f"haproxy-{self.port}.sock"
        closed = free_port()
        env = dict(os.environ)
        env["ACCUBOOKS_LISTEN"] = f"127.0.0.1:{self.port}"
        env["ACCUBOOKS_HAPROXY_SOCKET"] = str(self.socket)
        for i in range(3):
            env[f"ACCUBOOKS_{i + 1}"] = f"127.0.0.1:{ports[i] if i < len(ports) else closed}"
        self.servers = len(ports)
        self.process = Process("haproxy", ["haproxy", "-db", "-f", str(self.CONFIG)],
                               log_dir / f"haproxy-{self.port}.log", env=env)
        self.process.spawn()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def states(self) -> dict[str, str]:
        """Each server's status in `show stat` (UP, DOWN, ...), by name."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(str(self.socket))
                s.sendall(b"show stat\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
        except OSError:
            return {}
        lines = data.decode(errors="replace").splitlines()
        if not lines:
            return {}
        header = lines[0].lstrip("# ").split(",")
        states = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("svname") not in (None, "FRONTEND", "BACKEND"):
                states[row["svname"]] = row.get("status", "")
        return states

    def wait_state(self, server: int, state: str, timeout: float = 30) -> float:
        """Waits until server `server` (1-based) shows `state`; returns the wait."""
        started = time.time()
        while time.time() - started < timeout:
            current = [v for k, v in sorted(self.states().items())]
            if len(current) >= server and current[server - 1].startswith(state):
                return time.time() - started
            time.sleep(0.05)
        raise RuntimeError(f"HAProxy server {server} not {state} after {timeout} s: {self.states()}")

    def wait_up(self, timeout: float = 30) -> None:
        """Waits until every configured instance is UP."""
        for server in range(1, self.servers + 1):
            self.wait_state(server, "UP", timeout)

    def kill(self) -> None:
        self.process.kill()


def server_env(port: int, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "RUST_LOG")}
    env.update(
        ACCUBOOKS_ENV="production",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        JWT_SECRET=SECRET,
        SESSION_SECRET=SECRET + "-session",
        FRONTEND_URL="https://books.example.com",
        PORT=str(port),
        HOSTNAME="127.0.0.1",
        RUST_LOG="warn",
        # One loopback client is the whole load here: the request budgets
        # of one address would be the figure, not the server.
        RATE_LIMIT_PER_ADDRESS="0",
        RATE_LIMIT_PER_TOKEN="0",
    )
    env.update(extra)
    return env


class Server:
    """An HTTP server binary (an AccuBooks example or hello_axum) on a fixed port."""

    def __init__(self, name: str, binary: Path, env: dict[str, str], log_dir: Path,
                 live_path: str = "/api/monitoring/live"):
        self.name = name
        self.port = int(env["PORT"])
        self.env = env
        self.live_path = live_path
        self.process = Process(name, [str(binary)], log_dir / f"{name}.log", env=env, cwd=log_dir)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.process.pid

    def start(self, wait: bool = True) -> None:
        for attempt in range(50):
            self.process.spawn()
            if not wait:
                return
            try:
                self.wait_live()
                return
            except RuntimeError as e:
                # A client socket may hold the fixed port for a moment after a kill.
                if "Address already in use" in str(e) and attempt < 49:
                    time.sleep(0.1)
                    continue
                raise

    def wait_live(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.process.alive():
                raise RuntimeError(f"{self.name} exited ({self.process.exit_code()}):\n{self.process.log_tail()}")
            status, _ = request("GET", self.base + self.live_path, timeout=1)
            if status == 200:
                return
            time.sleep(0.01)
        raise RuntimeError(f"{self.name} not live after {timeout}s:\n{self.process.log_tail()}")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, _ = request("GET", self.base + "/api/monitoring/ready", timeout=1)
            if status == 200:
                return
            time.sleep(0.01)
        raise RuntimeError(f"{self.name} not ready after {timeout}s")

    def wait_dependency(self, name: str, state: str, timeout: float = 20.0) -> float:
        """Waits until /health shows dependency `name` in `state`; returns the wait."""
        started = time.time()
        while time.time() - started < timeout:
            status, body = request("GET", self.base + "/api/monitoring/health", timeout=1)
            if isinstance(body, dict) and body.get("dependencies", {}).get(name, {}).get("status") == state:
                return time.time() - started
            time.sleep(0.01)
        raise RuntimeError(f"{self.name}: {name} not {state} after {timeout}s")

    def rss_kb(self):
        return rss_kb(self.process.pid) if self.process.alive() else None

    def kill(self) -> None:
        self.process.kill()

    def stop(self) -> None:
        self.process.terminate()


def request(method: str, url: str, body=None, token: str | None = None, headers: dict | None = None,
            timeout: float = 10.0):
    """One request on a fresh connection: (status or None on a transport error, parsed body)."""
    # Imported here: the command line, which every test server start runs, does not need them.
    import http.client
    import json

    assert url.startswith("http://")
    hostport, _, path = url[len("http://"):].partition("/")
    host, _, port = hostport.partition(":")
    conn = http.client.HTTPConnection(host, int(port or 80), timeout=timeout)
    hdrs = dict(headers or {})
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        hdrs["Content-Type"] = "application/json"
    try:
        conn.request(method, "/" + path, body=data, headers=hdrs)
        response = conn.getresponse()
        raw = response.read()
    except (OSError, http.client.HTTPException):
        return None, None
    finally:
        conn.close()
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return response.status, parsed


def register(base: str, timeout: float = 30.0) -> str:
    """Registers a fresh organization and returns its owner's token (retries on 503)."""
    email = f"bench-{os.getpid()}-{time.time_ns()}@example.com"
    body = {"email": email, "password": "bench-password-0123456789", "organization": "Bench Books"}
    deadline = time.time() + timeout
    while True:
        status, answer = request("POST", base + "/api/auth/register", body=body, timeout=10)
        if status == 201:
            return answer["token"]
        if status == 409:
            status, answer = request("POST", base + "/api/auth/login",
                                     body={"email": email, "password": body["password"]}, timeout=10)
            if status == 200:
                return answer["token"]
        if time.time() > deadline:
            raise RuntimeError(f"registration at {base} answered {status}: {answer}")
        time.sleep(0.2)


def cleanup() -> None:
    """Kills every process started here (servers first) and removes temp dirs."""
    for cluster in _clusters:
        try:
            # Also removes the SysV segment a killed postmaster leaves behind.
            cluster.kill()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
    _clusters.clear()
    for p in reversed(_processes):
        try:
            if p.alive():
                p.kill()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
    for d in _dirs:
        shutil.rmtree(d, ignore_errors=True)
    _processes.clear()
    _dirs.clear()


def _on_signal(signum, _frame):
    cleanup()
    sys.exit(128 + signum)


def install_cleanup() -> None:
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)


if __name__ == "__main__":
    sys.exit(main())

"""Private PostgreSQL 15, Redis and AccuBooks server processes for scripts/bench
and scripts/chaos (Python 3 standard library only).

The approach is that of tests/integration/support/services.rs: every server gets
its own temporary directory, a free loopback port and its own process group, so
a script can kill, pause, resume and restart it. PostgreSQL runs as the
`postgres` user (through setpriv, which execs, so the pid is the server's own)
when we are root. Backends call setsid() and leave the postmaster's group, so
signals also go to each child found through /proc/*/stat.

Every process started here is registered and killed by `cleanup()`, which runs
at exit and on SIGINT/SIGTERM: a script never leaves a server behind.
"""

from __future__ import annotations

import atexit
import http.client
import json
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
REPO = Path(__file__).resolve().parents[2]
SECRET = "bench-secret-bench-secret-bench-secret-0123456789"

_processes: list["Process"] = []
_dirs: list[Path] = []
_clusters: list["Postgres"] = []


def log(message: str) -> None:
    """A progress line on stderr, with the time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_root() -> bool:
    return os.geteuid() == 0


def make_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    _dirs.append(path)
    return path


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
        self.expected_exit = False
        _processes.append(self)

    def spawn(self) -> None:
        out = open(self.log_path, "ab")
        self.spawned_at = time.time()
        self.expected_exit = False
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            process_group=0,
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
        """SIGKILLs the group and orphaned children; waits until they are gone."""
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
        self.expected_exit = True
        _signal(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def pause(self) -> None:
        if not self.alive():
            return
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


def pg_argv(binary: str, *args: str) -> list[str]:
    path = str(PG_BIN / binary)
    if is_root():
        return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", path, *args]
    return [path, *args]


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


def _wait_ready(process: Process, ready, port: int) -> None:
    deadline = time.time() + READY_TIMEOUT
    while time.time() < deadline:
        if not process.alive():
            raise RuntimeError(f"{process.name} exited ({process.exit_code()}):\n{process.log_tail()}")
        if ready(port):
            return
        time.sleep(0.02)
    process.kill()
    raise RuntimeError(f"{process.name} not ready after {READY_TIMEOUT}s:\n{process.log_tail()}")


class Postgres:
    """A private PostgreSQL 15 cluster (trust auth, superuser `postgres`)."""

    def __init__(self, settings: dict[str, str] | None = None, log_dir: Path | None = None):
        self.dir = make_dir("accubooks-pg-")
        os.chmod(self.dir, 0o755)
        self.data = self.dir / "data"
        self.data.mkdir(mode=0o700)
        if is_root():
            import pwd

            entry = pwd.getpwnam("postgres")
            for p in (self.dir, self.data):
                os.chown(p, entry.pw_uid, entry.pw_gid)
        r = subprocess.run(
            pg_argv("initdb", "-D", str(self.data), "--auth=trust", "--no-sync", "-U", "postgres",
                    "--encoding=UTF8", "--locale=C"),
            cwd=self.dir, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        )
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{r.stdout}{r.stderr}")
        self.settings = {"listen_addresses": "127.0.0.1", "max_connections": "200"}
        self.settings.update(settings or {})
        self.port = free_port()
        self.process = Process("postgres", [], (log_dir or self.dir) / "postgres.log", cwd=self.dir)
        _clusters.append(self)
        self.start()

    def _argv(self) -> list[str]:
        args = ["-D", str(self.data), "-p", str(self.port), "-k", str(self.dir)]
        for k, v in self.settings.items():
            args += ["-c", f"{k}={v}"]
        return pg_argv("postgres", *args)

    def start(self) -> None:
        for attempt in range(50):
            self.process.argv = self._argv()
            self.process.spawn()
            try:
                _wait_ready(self.process, _pg_ready, self.port)
                return
            except RuntimeError as e:
                # A client socket may hold the port for a moment.
                if "Address already in use" in str(e) and attempt < 49:
                    time.sleep(0.1)
                    continue
                raise

    def url(self, database: str = "postgres") -> str:
        """The superuser's URL (no row-level security binds it)."""
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_app_database(self, database: str) -> str:
        """Creates `database` owned by the ordinary role `accubooks` (as in
        production, so PostgreSQL's row-level security binds the server) and
        returns the URL the server connects with."""
        exists = self.psql("SELECT 1 FROM pg_roles WHERE rolname = 'accubooks'").strip()
        if not exists:
            self.psql("CREATE ROLE accubooks LOGIN NOSUPERUSER NOBYPASSRLS")
        self.psql(f"CREATE DATABASE {database} OWNER accubooks")
        return self.app_url(database)

    def app_url(self, database: str) -> str:
        """The URL of a database made by `create_app_database`."""
        return f"postgres://accubooks@127.0.0.1:{self.port}/{database}"

    def kill(self) -> None:
        shmid = None
        try:
            line = (self.data / "postmaster.pid").read_text().splitlines()[6]
            shmid = line.split()[1]
        except (OSError, IndexError):
            pass
        if self.process.kill() and shmid and shutil.which("ipcrm"):
            # A killed postmaster leaves its SysV segment behind.
            subprocess.run(["ipcrm", "-m", shmid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def restart(self) -> None:
        """Starts again on the same port and data dir (crash recovery)."""
        self.kill()
        for stale in (self.data / "postmaster.pid", self.dir / f".s.PGSQL.{self.port}.lock"):
            try:
                stale.unlink()
            except FileNotFoundError:
                pass
        self.start()

    def pause(self) -> None:
        self.process.pause()

    def resume(self) -> None:
        self.process.resume()

    def psql(self, sql: str, database: str = "postgres", timeout: float = 600) -> str:
        r = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", database, "-v", "ON_ERROR_STOP=1"],
            input=sql, capture_output=True, text=True, timeout=timeout,
        )
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr.strip()}")
        return r.stdout


class Redis:
    """A private Redis without persistence."""

    def __init__(self, log_dir: Path | None = None):
        self.dir = make_dir("accubooks-redis-")
        self.port = free_port()
        self.process = Process("redis", [], (log_dir or self.dir) / "redis.log", cwd=self.dir)
        self.start()

    def start(self) -> None:
        for attempt in range(50):
            self.process.argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no", "--dir", str(self.dir)]
            self.process.spawn()
            try:
                _wait_ready(self.process, _redis_ready, self.port)
                return
            except RuntimeError as e:
                if "Address already in use" in str(e) and attempt < 49:
                    time.sleep(0.1)
                    continue
                raise

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def kill(self) -> None:
        self.process.kill()

    def restart(self) -> None:
        self.kill()
        self.start()

    def pause(self) -> None:
        self.process.pause()

    def resume(self) -> None:
        self.process.resume()


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

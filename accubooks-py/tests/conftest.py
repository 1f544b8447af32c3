"""Shared fixtures: private PostgreSQL 15 servers, free and closed ports, and
AccuBooks handles that are always closed.

A private PostgreSQL runs in its own temp dir on a free loopback port, as the
Rust integration tests do (tests/integration/support/services.rs): as root,
initdb and postgres run as the ``postgres`` user through ``setpriv``. A test can
kill it and restart it on the same port and data dir.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import pytest

import accubooks

PG_BIN = Path("/usr/lib/postgresql/15/bin")
READY_TIMEOUT = 15.0
JWT_SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct horse battery"


def free_port() -> int:
    """A port nobody listens on right now (bind :0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_email(tag: str = "user") -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


def _is_root() -> bool:
    return os.geteuid() == 0


def _postgres_ids() -> Tuple[int, int]:
    import pwd

    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def _children(parent: int) -> List[int]:
    """Live direct children of ``parent``, from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[0] not in ("Z", "X") and int(fields[1]) == parent:
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


class PrivatePostgres:
    """A PostgreSQL 15 server of one test (or session): trust auth, user postgres."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="accubooks-py-pg-"))
        self.dir.chmod(0o755)
        self.data = self.dir / "data"
        self.data.mkdir(mode=0o700)
        self.log = self.dir / "postgres.log"
        if _is_root():
            uid, gid = _postgres_ids()
            for path in (self.dir, self.data):
                os.chown(path, uid, gid)
        initdb = subprocess.run(
            self._command("initdb")
            + ["-D", str(self.data), "--auth=trust", "--no-sync", "-U", "postgres"]
            + ["--encoding=UTF8", "--locale=C"],
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
        )
        assert initdb.returncode == 0, f"initdb failed:\n{initdb.stdout}{initdb.stderr}"
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.port = 0
        for _ in range(5):
            self.port = free_port()
            if self._spawn():
                self._create_application_role()
                return
        raise AssertionError(f"postgres did not start:\n{self._log_tail()}")

    @property
    def url(self) -> str:
        """An ordinary role owning its database, as in production, so
        PostgreSQL's row-level security binds the bindings too."""
        return f"postgres://accubooks@127.0.0.1:{self.port}/accubooks"

    def _create_application_role(self) -> None:
        for sql in (
            "CREATE ROLE accubooks LOGIN NOSUPERUSER NOBYPASSRLS",
            "CREATE DATABASE accubooks OWNER accubooks",
        ):
            done = subprocess.run(
                [str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"]
                + ["-U", "postgres", "-d", "postgres", "-p", str(self.port), "-c", sql],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
            )
            assert done.returncode == 0, f"{sql} failed: {done.stderr}"

    def _command(self, binary: str) -> List[str]:
        program = str(PG_BIN / binary)
        if _is_root():
            # setpriv execs, so the child's pid is the server's own.
            return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", program]
        return [program]

    def _spawn(self) -> bool:
        """Starts the server on self.port; whether it became ready."""
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self._command("postgres")
                + ["-D", str(self.data), "-p", str(self.port), "-k", str(self.dir)]
                + ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
                + ["-c", "full_page_writes=off", "-c", "max_connections=200"],
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                return False
            ready = subprocess.run(
                [str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-U", "postgres"]
                + ["-t", "1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if ready.returncode == 0:
                return True
            time.sleep(0.02)
        self.kill()
        return False

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILLs the postmaster and its backends, and waits until they are gone."""
        process, self.process = self.process, None
        if process is None:
            return
        # Backends call setsid(): they leave the group, so find them by parent.
        backends = _children(process.pid)
        for pid in [process.pid, *backends]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in backends) and time.monotonic() < deadline:
            time.sleep(0.005)
        self._remove_shared_memory()

    def _remove_shared_memory(self) -> None:
        # A killed postmaster leaves its SysV segment behind; over many runs
        # these would exhaust the system-wide limit.
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
            shmid = lines[6].split()[1]
        except (OSError, IndexError):
            return
        subprocess.run(["ipcrm", "-m", shmid], capture_output=True)

    def restart(self) -> None:
        """Starts it again on the same port and data dir (crash recovery)."""
        self.kill()
        (self.data / "postmaster.pid").unlink(missing_ok=True)
        (self.dir / f".s.PGSQL.{self.port}.lock").unlink(missing_ok=True)
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._spawn():
            # A client socket may hold the port for a moment.
            if time.monotonic() > deadline:
                raise AssertionError(f"postgres did not restart:\n{self._log_tail()}")
            time.sleep(0.1)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL shared by the tests that do not stop it."""
    server = PrivatePostgres()
    yield server
    server.close()


@pytest.fixture
def own_postgres() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL for one test, which may kill and restart it."""
    server = PrivatePostgres()
    yield server
    server.close()


@pytest.fixture
def closed_port() -> int:
    return free_port()


def settings(closed_port: int, **overrides: Any) -> Dict[str, Any]:
    """Test configuration: Redis is a closed port (optional anyway)."""
    config: Dict[str, Any] = {
        "accubooks_env": "test",
        "jwt_secret": JWT_SECRET,
        "session_secret": JWT_SECRET,
        "redis_url": f"redis://127.0.0.1:{closed_port}",
        "db_init_timeout_ms": 5000,
    }
    config.update(overrides)
    return config


@pytest.fixture
def open_books(closed_port: int) -> Iterator[Callable[..., accubooks.AccuBooks]]:
    """Opens AccuBooks handles that are closed when the test ends."""
    handles: List[accubooks.AccuBooks] = []

    def open_(database_url: str, **overrides: Any) -> accubooks.AccuBooks:
        books = accubooks.AccuBooks(database_url, **settings(closed_port, **overrides))
        handles.append(books)
        assert books.wait_ready(15), books.health()
        return books

    yield open_
    for books in handles:
        books.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each books test runs on SQLite and on the private PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path}/books.db"
    server: PrivatePostgres = request.getfixturevalue("postgres")
    return server.url


def http(
    method: str,
    url: str,
    body: Optional[Mapping[str, Any]] = None,
    headers: Optional[Mapping[str, str]] = None,
) -> Tuple[int, Dict[str, str], bytes]:
    """One HTTP exchange with urllib: (status, headers, body); never raises on 4xx/5xx."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers.items()), error.read()

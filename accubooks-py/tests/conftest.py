"""Shared fixtures: private PostgreSQL 15 servers, free and closed ports, and
AccuBooks handles that are always closed.

A private PostgreSQL comes from the launcher all tests share,
scripts/lib/services.py (imported from the repository checkout): it runs in its
own temp dir on a free loopback port, as the postgres user when we are root,
with the ordinary role ``accubooks`` owning the database ``accubooks``, so
row-level security binds the bindings too. A test can kill it and restart it on
the same port and data dir.
"""

from __future__ import annotations

import atexit
import json
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import pytest

import accubooks

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts" / "lib"))
import services  # noqa: E402

# Whatever a test left running (for example after an interrupted fixture).
atexit.register(services.cleanup)

JWT_SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct horse battery"

free_port = services.free_port


def unique_email(tag: str = "user") -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


class PrivatePostgres(services.Postgres):
    """A PostgreSQL 15 server of one test (or session): trust auth, superuser
    postgres; ``url`` is the application's (``accubooks`` on its database),
    ``kill()``, ``restart()`` and ``close()`` as in services.Postgres."""

    def __init__(self) -> None:
        # fsync and full_page_writes off: a restart after a kill recovers fast.
        super().__init__(fast=True, prefix="accubooks-py-pg-")


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
    body: Optional[Union[Mapping[str, Any], str]] = None,
    headers: Optional[Mapping[str, str]] = None,
) -> Tuple[int, Dict[str, str], bytes]:
    """One HTTP exchange with urllib: (status, headers, body); never raises on 4xx/5xx.

    A ``str`` body is sent as it is (JSON text spaced as the caller wants)."""
    text = body if isinstance(body, str) else None if body is None else json.dumps(body)
    data = None if text is None else text.encode()
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

"""Case 1: the HTTP contract, served from Python by ``AccuBooks.serve()``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable, Dict

import accubooks
from conftest import PASSWORD, PrivatePostgres, http, settings, unique_email

SERIES = [
    "accubooks_up",
    "accubooks_database_available",
    "accubooks_redis_available",
    "accubooks_uptime_seconds",
    "accubooks_memory_used_bytes",
    "accubooks_memory_total_bytes",
]


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def test_monitoring_and_api_conventions(tmp_path: Path, closed_port: int) -> None:
    books = accubooks.AccuBooks(f"sqlite://{tmp_path}/books.db", **settings(closed_port))
    with books, books.serve() as server:
        assert server.running and server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"

        status, _, body = http("GET", server.url + "/api/monitoring/live")
        assert (status, json.loads(body)) == (200, {"status": "alive"})

        # /ready answers 503 "starting" until the first probes finish, then 200.
        answers = []

        def ready() -> bool:
            status, _, body = http("GET", server.url + "/api/monitoring/ready")
            answers.append((status, json.loads(body)))
            return status == 200

        assert wait_for(ready), answers
        assert answers[-1] == (200, {"status": "ready"})
        assert all(a in ((503, {"status": "starting"}), (200, {"status": "ready"})) for a in answers)

        # Health: the contract's shape, degraded because Redis is a closed port.
        status, headers, body = http("GET", server.url + "/api/monitoring/health")
        report: Dict[str, Any] = json.loads(body)
        assert status == 200
        assert report["status"] == "degraded"
        assert report["service"] == "accubooks"
        assert report["version"] == accubooks.__version__
        assert report["environment"] == "test"
        assert report["timestamp"].endswith("Z") and isinstance(report["uptime"], int)
        deps = report["dependencies"]
        assert deps["database"]["status"] == "connected" and deps["database"]["initialized"] is True
        assert deps["redis"]["status"] == "unavailable"
        assert deps["jobQueues"]["status"] in ("unavailable", "degraded")
        assert set(deps["jobQueues"]["queues"]) == {
            "recurring-invoices",
            "payroll-processing",
            "report-generation",
            "payments",
            "bank-feeds",
            "webhooks",
        }
        assert deps["stripe"] == {"status": "disabled", "initialized": False}
        assert deps["plaid"] == {"status": "disabled", "initialized": False}
        assert report["resources"]["memory"]["unit"] == "MB"
        assert "usage_percent" in report["resources"]["cpu"]
        text = body.decode()
        assert "127.0.0.1" not in text and str(closed_port) not in text, "no hosts or ports"

        # health() is the same body, from the same kept state.
        local = books.health()
        assert set(local) == set(report)
        assert {k: v["status"] for k, v in local["dependencies"].items()} == {
            k: v["status"] for k, v in deps.items()
        }

        # Metrics: Prometheus text, served to loopback peers.
        status, headers, body = http("GET", server.url + "/api/monitoring/metrics")
        assert status == 200
        assert headers["content-type"].startswith("text/plain; version=0.0.4")
        lines = body.decode().splitlines()
        assert "accubooks_up 1" in lines
        for series in SERIES:
            assert any(line.startswith(series + " ") for line in lines), series
        assert "accubooks_up 1" in books.metrics().splitlines()

        # Unknown paths: a JSON 404 with a request id; X-Request-Id is echoed.
        status, headers, body = http(
            "GET", server.url + "/api/nowhere", headers={"X-Request-Id": "py-req-42"}
        )
        error = json.loads(body)
        assert status == 404 and error["code"] == "NOT_FOUND" and error["error"]
        assert error["request_id"] == "py-req-42"
        assert headers["x-request-id"] == "py-req-42"
        status, headers, _ = http("GET", server.url + "/api/monitoring/live")
        assert headers["x-request-id"]

        # The API itself: register over HTTP, then read with the token; a
        # token issued from Python works the same.
        email = unique_email("http")
        status, _, body = http(
            "POST",
            server.url + "/api/auth/register",
            {"email": email, "password": PASSWORD, "organization": "Over HTTP"},
        )
        assert status == 201, body
        token = json.loads(body)["token"]
        status, _, body = http(
            "GET", server.url + "/api/accounts", headers={"Authorization": f"Bearer {token}"}
        )
        assert status == 200 and len(json.loads(body)) == 9
        org = books.login(email, PASSWORD)
        status, _, body = http(
            "POST",
            server.url + "/api/journal-entries",
            {
                "date": "2026-01-31",
                "lines": [
                    {"account": "1000", "debit": "10.00"},
                    {"account": "4000", "credit": "10.00"},
                ],
            },
            headers={"Authorization": f"Bearer {org.token()}"},
        )
        assert status == 201, body
        assert org.entry(json.loads(body)["id"])["lines"][0]["account"] == "1000"
        status, _, body = http(
            "GET", server.url + "/api/accounts", headers={"Authorization": "Bearer nope"}
        )
        assert status == 401 and json.loads(body)["code"] == "UNAUTHORIZED"

    # Stopping the server drained and closed the handle.
    assert not server.running
    assert books.phase() == "draining" and books.closed and not books.live()


def test_database_down_answers_503_at_once(
    own_postgres: PrivatePostgres, open_books: Callable[..., accubooks.AccuBooks]
) -> None:
    books = open_books(own_postgres.url)
    with books.serve() as server:
        status, _, body = http(
            "POST",
            server.url + "/api/auth/register",
            {"email": unique_email("down"), "password": PASSWORD, "organization": "Down"},
        )
        assert status == 201, body
        auth = {"Authorization": "Bearer " + json.loads(body)["token"]}
        assert http("GET", server.url + "/api/accounts", headers=auth)[0] == 200

        own_postgres.kill()
        answers = []

        def unavailable() -> bool:
            started = time.monotonic()
            answer = http("GET", server.url + "/api/accounts", headers=auth)
            answers.append((answer[0], time.monotonic() - started))
            return answer[0] == 503

        assert wait_for(unavailable, timeout=10), answers
        status, headers, body = http("GET", server.url + "/api/accounts", headers=auth)
        assert status == 503
        assert json.loads(body) == {
            "error": "Database unavailable. Server running in degraded mode.",
            "code": "DATABASE_UNAVAILABLE",
            "request_id": headers["x-request-id"],
        }
        assert headers["retry-after"]
        # Known outage: answered at once, no pool or connect timeout.
        started = time.monotonic()
        assert http("GET", server.url + "/api/accounts", headers=auth)[0] == 503
        assert time.monotonic() - started < 0.5

        status, _, body = http("GET", server.url + "/api/monitoring/health")
        report = json.loads(body)
        assert status == 200 and report["status"] == "degraded"
        assert report["dependencies"]["database"]["status"] == "unavailable"
        assert http("GET", server.url + "/api/monitoring/live")[0] == 200

        # Back by itself once PostgreSQL is, with no restart of anything.
        own_postgres.restart()
        assert wait_for(
            lambda: http("GET", server.url + "/api/accounts", headers=auth)[0] == 200, timeout=10
        )

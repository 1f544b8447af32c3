"""Case 3: errors, configuration and static types."""

from __future__ import annotations

import datetime
import pickle
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Callable

import pytest

import accubooks
from conftest import PASSWORD, unique_email

HERE = Path(__file__).parent


def test_production_without_secrets_lists_every_problem() -> None:
    with pytest.raises(accubooks.ConfigError) as raised:
        accubooks.AccuBooks(accubooks_env="production", jwt_secret="short-secret-value", port="eighty")
    error = raised.value
    assert error.variables == [
        "PORT",
        "DATABASE_URL",
        "JWT_SECRET",
        "SESSION_SECRET",
        "FRONTEND_URL",
    ]
    message = str(error)
    assert "5 problems" in message
    for variable in error.variables:
        assert variable in message
    assert "short-secret-value" not in message, "secrets are never repeated"
    assert isinstance(error, accubooks.AccuBooksError)
    assert error.code == "INVALID_CONFIGURATION"


def test_configuration_keywords_are_checked() -> None:
    with pytest.raises(TypeError, match="jwt_secert"):
        accubooks.AccuBooks(jwt_secert="x" * 40)
    with pytest.raises(TypeError, match="str or an int"):
        accubooks.AccuBooks(db_pool_max=2.5)
    with pytest.raises(accubooks.ConfigError) as bad_url:
        accubooks.AccuBooks("mysql://root:hunter2@db/books")
    assert bad_url.value.variables == ["DATABASE_URL"]
    assert "hunter2" not in str(bad_url.value)


def test_every_variable_the_core_reads_is_a_keyword() -> None:
    # Variables the binding's own list once lacked: the core owns the list
    # now, so they reach the core (which names their bad values).
    with pytest.raises(accubooks.ConfigError) as raised:
        accubooks.AccuBooks(
            trusted_proxies="haproxy",
            shutdown_delay_ms="soon",
            rate_limit_per_address="many",
            jwt_secret_file="/nonexistent/accubooks-jwt",
        )
    assert sorted(raised.value.variables) == [
        "JWT_SECRET_FILE",
        "RATE_LIMIT_PER_ADDRESS",
        "SHUTDOWN_DELAY_MS",
        "TRUSTED_PROXIES",
    ]
    with pytest.raises(TypeError, match="TRUSTED_PROXIES"):
        accubooks.AccuBooks(TRUSTED_PROXIES="10.0.0.0/8")


def test_errors_are_a_hierarchy_and_pickle() -> None:
    assert issubclass(accubooks.DatabaseUnavailable, accubooks.ServiceUnavailable)
    for cls in (
        accubooks.ValidationError,
        accubooks.AuthenticationError,
        accubooks.PermissionDeniedError,
        accubooks.NotFoundError,
        accubooks.ConflictError,
        accubooks.RateLimitedError,
        accubooks.ServiceUnavailable,
        accubooks.ConfigError,
    ):
        assert issubclass(cls, accubooks.AccuBooksError)
    error = accubooks.DatabaseUnavailable(
        "Database unavailable.", code="DATABASE_UNAVAILABLE", status=503, retry_after=1
    )
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is accubooks.DatabaseUnavailable
    assert (copy.code, copy.status, copy.retry_after, str(copy)) == (
        "DATABASE_UNAVAILABLE",
        503,
        1,
        "Database unavailable.",
    )
    assert copy.temporary
    config = pickle.loads(pickle.dumps(accubooks.ConfigError("bad", problems=[("PORT", "no")])))
    assert config.problems == [("PORT", "no")]


def test_argument_types(open_books: Callable[..., accubooks.AccuBooks], tmp_path: Path) -> None:
    books = open_books(f"sqlite://{tmp_path}/books.db")
    org = books.register(unique_email(), PASSWORD, "Types")
    lines = [{"account": "1000", "debit": "1.00"}, {"account": "4000", "credit": "1.00"}]
    with pytest.raises(TypeError, match="datetime.datetime"):
        org.post_entry(datetime.datetime(2026, 1, 31, 12), lines)
    with pytest.raises(accubooks.ValidationError) as bad_date:
        org.post_entry("31/01/2026", lines)
    assert bad_date.value.code == "INVALID_DATE"
    with pytest.raises(TypeError):
        org.post_entry(datetime.date(2026, 1, 31), "1000 debit 1.00")
    with pytest.raises(TypeError, match="Line 2"):
        org.post_entry(datetime.date(2026, 1, 31), [lines[0], ("4000", "1.00")])
    with pytest.raises(accubooks.ValidationError) as extra:
        org.post_entry(
            datetime.date(2026, 1, 31),
            [lines[0], {"account": "4000", "credit": "1.00", "amount": "1.00"}],
        )
    assert extra.value.code == "INVALID_FIELD"
    with pytest.raises(accubooks.ValidationError) as both:
        org.post_entry(
            datetime.date(2026, 1, 31),
            [lines[0], {"account": "4000", "credit": "1.00", "debit": "1.00"}],
        )
    assert both.value.code == "INVALID_LINE"
    # Decimal in any notation is exact: 1E+1 is 10.
    posted = org.post_entry(
        "2026-01-31",
        [{"account": "1000", "debit": Decimal("1E+1")}, {"account": "4000", "credit": "10.00"}],
    )
    assert posted["lines"][0]["debit"] == Decimal("10.00")
    with pytest.raises(ValueError):
        books.wait_ready(timeout=-1)
    books.close()
    with pytest.raises(accubooks.ServiceUnavailable) as closed:
        books.serve()
    assert closed.value.code == "HANDLE_CLOSED"


def test_mypy_strict_accepts_the_typed_usage(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            str(HERE / "typed_usage.py"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_rejects_float_money(tmp_path: Path) -> None:
    script = tmp_path / "floats.py"
    script.write_text(
        "import datetime\n"
        "import accubooks\n"
        "def post(org: accubooks.Organization) -> None:\n"
        "    org.post_entry(datetime.date(2026, 1, 31), [{'account': '1000', 'debit': 1.5}])\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), str(script)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "floats.py:4" in result.stdout, result.stdout


def test_the_typed_usage_runs(tmp_path: Path) -> None:
    import typed_usage

    typed_usage.main(f"sqlite://{tmp_path}/typed.db")

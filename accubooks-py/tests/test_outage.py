"""Case 5: PostgreSQL goes down and comes back while Python holds the handle."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Callable

import pytest

import accubooks
from accubooks.aio import AsyncAccuBooks
from conftest import PASSWORD, PrivatePostgres, settings, unique_email

JAN = "2026-01-31"
LINES = [{"account": "1000", "debit": "5.00"}, {"account": "4000", "credit": "5.00"}]


def test_database_outage_and_recovery(
    own_postgres: PrivatePostgres,
    open_books: Callable[..., accubooks.AccuBooks],
    closed_port: int,
) -> None:
    books = open_books(own_postgres.url)
    org = books.register(unique_email("outage"), PASSWORD, "Outage")
    org.post_entry(JAN, LINES)
    assert books.health()["dependencies"]["database"]["status"] == "connected"

    own_postgres.kill()

    # The first call finds the dead connections and fails fast; from then
    # on the outage is known and every call is refused at once.
    started = time.monotonic()
    with pytest.raises(accubooks.DatabaseUnavailable) as down:
        org.accounts()
    assert time.monotonic() - started < 5
    assert down.value.code == "DATABASE_UNAVAILABLE" and down.value.status == 503
    assert down.value.temporary and down.value.retry_after == 1
    assert isinstance(down.value, accubooks.ServiceUnavailable)
    for call in (
        org.accounts,
        lambda: org.post_entry(JAN, LINES),
        lambda: org.trial_balance("2026-12-31"),
        lambda: books.login("nobody@example.com", PASSWORD),
    ):
        started = time.monotonic()
        with pytest.raises(accubooks.DatabaseUnavailable):
            call()
        assert time.monotonic() - started < 0.5, "a known outage is answered at once"

    report = books.health()
    assert report["status"] == "degraded"
    assert report["dependencies"]["database"]["status"] == "unavailable"
    assert "accubooks_database_available 0" in books.metrics().splitlines()
    assert books.live() and books.ready(), "the handle keeps serving in degraded mode"

    async def async_call() -> None:
        async with AsyncAccuBooks(own_postgres.url, **settings(closed_port)) as other:
            await other.wait_ready(10)
            with pytest.raises(accubooks.DatabaseUnavailable):
                await other.organization(org.id)

    asyncio.run(async_call())

    # Back: the same handle works again within a few seconds.
    own_postgres.restart()
    restarted = time.monotonic()
    while True:
        try:
            accounts = org.accounts()
            break
        except accubooks.DatabaseUnavailable:
            assert time.monotonic() - restarted < 5, "not back within 5 s"
            time.sleep(0.05)
    cash = next(a for a in accounts if a["code"] == "1000")
    assert cash["balance"] == Decimal("5.00"), "nothing committed was lost"
    org.post_entry(JAN, LINES)
    assert org.trial_balance("2026-12-31")["total_debit"] == Decimal("10.00")
    assert books.health()["dependencies"]["database"]["status"] == "connected"
    assert "accubooks_database_available 1" in books.metrics().splitlines()

"""Closing a period through Python: the lock date, its history and the year-end close.

The same use cases as ``PUT /api/settings``, ``GET /api/settings/history`` and
``POST /api/periods/close``; dates come back as ``datetime.date``, money as
``Decimal``.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Callable, Dict, List

import pytest

import accubooks
from conftest import PASSWORD, unique_email

Open = Callable[..., accubooks.AccuBooks]
DEC_31 = datetime.date(2025, 12, 31)


def moved(amount: str, debit: str, credit: str) -> List[Dict[str, object]]:
    return [{"account": debit, "debit": amount}, {"account": credit, "credit": amount}]


def test_a_lock_refuses_a_change_and_a_close_moves_the_result(open_books: Open, database_url: str) -> None:
    books = open_books(database_url)
    org = books.register(unique_email("close"), PASSWORD, "Closing Co")
    org.post_entry("2025-04-01", moved("500.25", "1000", "4000"))
    org.post_entry("2025-09-30", moved("120.05", "5000", "1000"))

    assert org.set_lock_date(datetime.date(2025, 6, 30))["lock_date"] == datetime.date(2025, 6, 30)
    with pytest.raises(accubooks.ConflictError) as refused:
        org.post_entry("2025-06-30", moved("1.00", "1000", "4000"))
    assert refused.value.code == "PERIOD_LOCKED"
    assert org.set_lock_date(None)["lock_date"] is None

    closing = org.close_period(DEC_31)
    assert closing["kind"] == "closing" and closing["date"] == DEC_31
    assert [(line["account"], line.get("debit"), line.get("credit")) for line in closing["lines"]] == [
        ("4000", Decimal("500.25"), None),
        ("5000", None, Decimal("120.05")),
        ("3900", None, Decimal("380.20")),
    ]
    assert org.settings()["lock_date"] == DEC_31
    with pytest.raises(accubooks.ConflictError) as again:
        org.close_period(DEC_31)
    assert again.value.code == "PERIOD_ALREADY_CLOSED"
    # The closed year's income statement is what it was.
    assert org.income_statement("2025-01-01", DEC_31)["totals"][0]["net_income"] == Decimal("380.20")

    history = list(accubooks.iterate(org.settings_history, limit=2))
    assert [(c["from"], c["to"], c["reason"]) for c in history] == [
        (None, "2025-06-30", "locked"),
        ("2025-06-30", None, "unlocked"),
        (None, "2025-12-31", "closed"),
    ]
    assert {c["changed_by"] for c in history} == {org.user_id}


def test_events_follow_the_changes_in_commit_order(open_books: Open, database_url: str) -> None:
    books = open_books(database_url)
    org = books.register(unique_email("events"), PASSWORD, "Events Co")
    first = org.post_entry("2025-04-01", moved("10.00", "1000", "4000"))
    org.set_lock_date(datetime.date(2025, 4, 30))

    events = list(accubooks.iterate(org.events, limit=1))
    assert [(e["sequence"], e["type"]) for e in events] == [(1, "entry.posted"), (2, "period.locked")]
    # The data is the JSON the HTTP API answers: money and dates as strings.
    assert events[0]["data"]["id"] == first["id"]
    assert events[0]["data"]["lines"][0] == {"account": "1000", "debit": "10.00"}
    assert events[1]["data"]["to"] == "2025-04-30"
    # From the last cursor: only what followed.
    org.set_lock_date(None)
    after = org.events(["period.locked"], after=events[1]["cursor"])
    assert [e["data"]["reason"] for e in after] == ["unlocked"]
    with pytest.raises(accubooks.ValidationError) as refused:
        org.events(["entry.exploded"])  # type: ignore[list-item]
    assert refused.value.code == "UNKNOWN_EVENT_TYPE"

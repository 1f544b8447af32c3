"""Outgoing webhook endpoints through Python: the same use cases as
``/api/webhook-endpoints`` (delivery itself is tested end to end, with a
``standardwebhooks`` receiver, in tests/integration/webhooks.rs)."""

from __future__ import annotations

from typing import Callable

import pytest

import accubooks
from conftest import PASSWORD, unique_email

Open = Callable[..., accubooks.AccuBooks]
PUBLIC = "https://93.184.216.34/hook"


def test_endpoints_are_created_listed_rotated_and_deleted(open_books: Open, database_url: str) -> None:
    books = open_books(database_url)
    org = books.register(unique_email("hooks"), PASSWORD, "Hooks Co")

    created = org.create_webhook_endpoint(PUBLIC, ["invoice.paid", "entry.posted"], "ours")
    assert created["secret"].startswith("whsec_") and len(created["secret"]) == 50
    assert created["status"] == "enabled" and created["events"] == ["invoice.paid", "entry.posted"]
    again = org.create_webhook_endpoint(PUBLIC, ["*"], idempotency_key="py-hook-1")
    assert org.create_webhook_endpoint(PUBLIC, ["*"], idempotency_key="py-hook-1") == again

    listed = org.webhook_endpoints(limit=1)
    assert [e["id"] for e in listed] == [created["id"]] and "secret" not in listed[0]
    assert listed.next_cursor is not None

    rotated = org.rotate_webhook_secret(created["id"])
    assert rotated["id"] == created["id"] and rotated["secret"] != created["secret"]
    assert list(org.webhook_deliveries(created["id"])) == []

    assert org.delete_webhook_endpoint(created["id"]) is None
    assert [e["id"] for e in org.webhook_endpoints()] == [again["id"]]
    with pytest.raises(accubooks.NotFoundError):
        org.webhook_deliveries(created["id"])


def test_forbidden_urls_and_unknown_types_are_refused(open_books: Open, database_url: str) -> None:
    books = open_books(database_url)
    org = books.register(unique_email("ssrf"), PASSWORD, "Guarded Co")
    for url in ["https://127.0.0.1/", "https://2130706433/", "https://[::1]/", "http://93.184.216.34/"]:
        with pytest.raises(accubooks.ValidationError) as refused:
            org.create_webhook_endpoint(url, ["*"])
        assert refused.value.code == "WEBHOOK_URL_FORBIDDEN", url
    with pytest.raises(accubooks.ValidationError) as refused:
        org.create_webhook_endpoint(PUBLIC, ["invoice.payed"])
    assert refused.value.code == "UNKNOWN_EVENT_TYPE"

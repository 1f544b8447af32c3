"""Bank feeds through Python: link a bank, map its account, sync, and
reconcile a line against an invoice, on both classes, against the small fake
Plaid of scripts/lib/fake_plaid.py. The Rust integration tests cover paging,
changes, removals, concurrent matches and Plaid's outages over HTTP."""

from __future__ import annotations

import asyncio
import datetime
import time
from decimal import Decimal
from typing import Any, Callable, Iterator

import pytest

import accubooks
from accubooks.aio import AsyncAccuBooks
from conftest import PASSWORD, settings, unique_email
from fake_plaid import CLIENT_ID, SECRET, FakePlaid  # scripts/lib, on the path by conftest


@pytest.fixture
def plaid() -> Iterator[FakePlaid]:
    fake = FakePlaid()
    yield fake
    fake.stop()


def config(plaid: FakePlaid) -> dict:
    return {"job_transport": "database", "plaid_client_id": CLIENT_ID, "plaid_secret": SECRET,
            "plaid_api_base": plaid.base}


def wait_until(check: Callable[[], Any], seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


LINES = [{"description": "Consulting", "quantity": "1", "unit_price": Decimal("120.00")}]


def test_link_sync_and_reconcile(open_books: Callable[..., accubooks.AccuBooks], tmp_path: Any, plaid: FakePlaid) -> None:
    books = open_books(f"sqlite://{tmp_path}/books.db", **config(plaid))
    wait_until(lambda: books.health()["dependencies"]["plaid"]["status"] == "connected")
    org = books.register(unique_email("bank"), PASSWORD, "Bank")
    customer = org.create_customer("Globex")
    invoice = org.create_invoice(customer["id"], "2026-12-31", LINES)
    org.issue_invoice(invoice["id"])

    public_token = plaid.issue_public_token([("acc-checking", "Checking", "0000")])
    linked = org.link_bank(public_token)
    assert "access" not in str(linked)
    [account] = linked["accounts"]
    assert (account["name"], account["mask"], account["ledger_account"]) == ("Checking", "0000", None)
    with pytest.raises(accubooks.ValidationError) as used:
        org.link_bank(public_token)
    assert used.value.code == "INVALID_PUBLIC_TOKEN"
    assert org.map_bank_account(account["id"], "1000")["ledger_account"] == "1000"

    today = datetime.date.today().isoformat()
    plaid.add_transaction("acc-checking", "-120.00", today, f"ACH GLOBEX {invoice['number']}")
    plaid.add_transaction("acc-checking", "12.50", today, "Coffee")
    job = org.sync_banks()
    wait_until(lambda: org.job(job["job_id"])["status"] == "succeeded")
    lines = org.bank_transactions()
    assert len(lines) == 2
    incoming = next(line for line in lines if line["direction"] == "in")
    assert incoming["amount"] == Decimal("-120.00")
    assert incoming["suggestions"][0]["kind"] == "invoice"
    assert incoming["suggestions"][0]["invoice_id"] == invoice["id"]

    matched = org.match_bank_transaction(incoming["id"], invoice_id=invoice["id"])
    assert matched["status"] == "matched"
    with pytest.raises(accubooks.ConflictError) as twice:
        org.match_bank_transaction(incoming["id"], invoice_id=invoice["id"])
    assert twice.value.code == "BANK_TRANSACTION_MATCHED"
    assert org.invoice(invoice["id"])["status"] == "paid"
    coffee = next(line for line in org.bank_transactions() if line["direction"] == "out")
    org.match_bank_transaction(coffee["id"], account="5000")
    assert [line["status"] for line in org.bank_transactions("matched")] == ["matched", "matched"]
    cash = next(a for a in org.accounts() if a["code"] == "1000")
    assert cash["balance"] == Decimal("107.50")

    # A second sync imports nothing twice.
    job = org.sync_banks()
    wait_until(lambda: org.job(job["job_id"])["status"] == "succeeded")
    assert org.bank_transactions() == [] and len(org.bank_transactions("matched")) == 2


def test_lines_that_cannot_be_booked_are_set_aside_and_dismissed(
        open_books: Callable[..., accubooks.AccuBooks], tmp_path: Any, plaid: FakePlaid) -> None:
    books = open_books(f"sqlite://{tmp_path}/books.db", **config(plaid))
    wait_until(lambda: books.health()["dependencies"]["plaid"]["status"] == "connected")
    org = books.register(unique_email("review"), PASSWORD, "Review")
    org.link_bank(plaid.issue_public_token([("acc-review", "Checking", "0001")]))
    today = datetime.date.today().isoformat()
    plaid.add_transaction("acc-review", "0.123", today, "FX fee")
    plaid.add_transaction("acc-review", "0.00012", today, "Coin", iso_currency_code=None,
                          unofficial_currency_code="BTC")
    plaid.add_transaction("acc-review", "12.5", today, "Coffee")
    job = org.sync_banks()
    wait_until(lambda: org.job(job["job_id"])["status"] == "succeeded")
    [coffee] = org.bank_transactions()
    assert coffee["amount"] == Decimal("12.50")
    review = {line["name"]: line for line in org.bank_transactions("review")}
    assert {name: (line["review_reason"], line["amount"], line["currency"]) for name, line in review.items()} == {
        "FX fee": ("INEXACT_AMOUNT", Decimal("0.123"), "USD"),
        "Coin": ("UNOFFICIAL_CURRENCY", Decimal("0.00012"), "BTC"),
    }
    with pytest.raises(accubooks.ConflictError) as in_review:
        org.match_bank_transaction(review["FX fee"]["id"], account="5000")
    assert in_review.value.code == "BANK_TRANSACTION_IN_REVIEW"
    assert org.dismiss_bank_transaction(review["FX fee"]["id"])["status"] == "dismissed"
    assert [line["name"] for line in org.bank_transactions("dismissed")] == ["FX fee"]
    assert [line["name"] for line in org.bank_transactions("review")] == ["Coin"]

WEBHOOK_URL = "https://books.example.test/api/webhooks/plaid"


def test_link_tokens_update_mode_items_and_removal(
    open_books: Callable[..., accubooks.AccuBooks], tmp_path: Any, plaid: FakePlaid
) -> None:
    books = open_books(f"sqlite://{tmp_path}/books.db", plaid_webhook_url=WEBHOOK_URL, **config(plaid))
    wait_until(lambda: books.health()["dependencies"]["plaid"]["status"] == "connected")
    org = books.register(unique_email("link"), PASSWORD, "Link")

    # A Link token for a new bank, made server side with the webhook URL.
    issued = org.bank_link_token()
    assert issued["link_token"].startswith("link-") and issued["expiration"]
    [asked] = plaid.link_token_requests
    assert asked["products"] == ["transactions"] and asked["webhook"] == WEBHOOK_URL
    assert asked["user"]["client_user_id"] and "access_token" not in asked

    public_token = plaid.issue_public_token([("acc-link", "Checking", "0001")])
    item = plaid.item_of(public_token)
    linked = org.link_bank(public_token)
    org.map_bank_account(linked["accounts"][0]["id"], "1000")
    plaid.add_transaction("acc-link", "-10.00", datetime.date.today().isoformat(), "DEPOSIT")
    job = org.sync_banks()
    wait_until(lambda: org.job(job["job_id"])["status"] == "succeeded")
    [listed] = org.bank_items()
    assert (listed["id"], listed["status"], listed["institution"]) == (item, "active", "ins_109508")
    assert listed["last_synced_at"]

    # The bank asks the user to log in again: the sync ends once, the item says so.
    plaid.fail(item, "ITEM_LOGIN_REQUIRED")
    job = org.sync_banks()
    dead = wait_until(lambda: (found := org.job(job["job_id"]))["status"] == "dead" and found)
    assert dead["error"]["code"] == "BANK_ITEM_LOGIN_REQUIRED"
    assert org.bank_items()[0]["status"] == "login_required"

    # Update mode: a Link token made with the item's access token, never answered.
    update = org.bank_link_token(item)
    access_token = plaid.items[item]["access_token"]
    assert plaid.link_token_requests[-1]["access_token"] == access_token
    assert "products" not in plaid.link_token_requests[-1] and access_token not in str(update)
    with pytest.raises(accubooks.ConflictError) as still:
        org.bank_item_reconnected(item)
    assert still.value.code == "BANK_ITEM_LOGIN_REQUIRED"
    plaid.fail(item, None)
    back = org.bank_item_reconnected(item)
    assert (back["status"], back["status_code"]) == ("active", None)
    assert org.bank_accounts()[0]["ledger_account"] == "1000"

    # Removed at Plaid; its lines stay.
    assert org.remove_bank_item(item) is None
    assert plaid.items[item]["removed"]
    assert org.bank_items() == [] and len(org.bank_transactions()) == 1
    with pytest.raises(accubooks.NotFoundError):
        org.remove_bank_item(item)


def test_without_plaid_bank_routes_are_unavailable(open_books: Callable[..., accubooks.AccuBooks], tmp_path: Any) -> None:
    books = open_books(f"sqlite://{tmp_path}/books.db", job_transport="database")
    org = books.register(unique_email("noplaid"), PASSWORD, "No Plaid")
    with pytest.raises(accubooks.ServiceUnavailable) as unavailable:
        org.link_bank("public-sandbox-x")
    assert unavailable.value.code == "BANK_INTEGRATION_NOT_CONFIGURED"
    assert org.bank_transactions() == []


def test_the_asyncio_class_links_too(closed_port: int, tmp_path: Any, plaid: FakePlaid) -> None:
    async def main() -> None:
        async with AsyncAccuBooks(f"sqlite://{tmp_path}/books.db", **settings(closed_port, **config(plaid))) as books:
            assert await books.wait_ready(15)
            for _ in range(200):
                if books.health()["dependencies"]["plaid"]["status"] == "connected":
                    break
                await asyncio.sleep(0.05)
            org = await books.register(unique_email("aio-bank"), PASSWORD, "Async Bank")
            linked = await org.link_bank(plaid.issue_public_token([("acc-1", "Savings", "1111")]))
            assert [a["name"] for a in await org.bank_accounts()] == ["Savings"]
            assert linked["accounts"][0]["mask"] == "1111"
            assert (await org.bank_link_token())["link_token"].startswith("link-")
            [item] = await org.bank_items()
            assert item["id"] == linked["item_id"] and item["status"] == "active"
            assert (await org.bank_item_reconnected(item["id"]))["status"] == "active"
            assert await org.remove_bank_item(item["id"]) is None
            assert await org.bank_items() == []

    asyncio.run(main())

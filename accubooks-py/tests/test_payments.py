"""Card payments through Python: a PaymentIntent for an invoice and Stripe's
webhook handed over by the host's own web framework (here: called directly
with the raw body and the header), against the fake Stripe of
scripts/lib/fake_stripe.py (loopback, Stripe's form-encoded wire format).

The Rust integration tests cover the webhook's refusals, replays and orders,
and Stripe's outages, through HTTP on both stores; these tests check that the
same use cases answer the same through both Python classes.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any, Callable, Dict, Iterator, List

import pytest

import accubooks
from accubooks.aio import AsyncAccuBooks
from conftest import PASSWORD, settings, unique_email
from fake_stripe import KEY, RESTRICTED_KEY, WEBHOOK_SECRET, FakeStripe, sign  # scripts/lib, on the path by conftest


@pytest.fixture
def stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe()
    yield fake
    fake.stop()


def config(stripe: FakeStripe, key: str = KEY) -> Dict[str, Any]:
    return {
        "job_transport": "database",
        "stripe_secret_key": key,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_api_base": stripe.base,
    }


def wait_until(check: Callable[[], Any], seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


LINES: List[Dict[str, Any]] = [{"description": "Consulting", "quantity": "1", "unit_price": Decimal("80.00")}]


def test_a_card_payment_through_python(open_books: Callable[..., accubooks.AccuBooks], tmp_path: Any, stripe: FakeStripe) -> None:
    books = open_books(f"sqlite://{tmp_path}/books.db", **config(stripe))
    wait_until(lambda: books.health()["dependencies"]["stripe"]["status"] == "connected")
    org = books.register(unique_email("stripe"), PASSWORD, "Stripe")
    customer = org.create_customer("Globex")
    invoice = org.create_invoice(customer["id"], "2026-12-31", LINES)
    org.issue_invoice(invoice["id"])

    intent = org.payment_intent(invoice["id"])
    assert intent["amount"] == Decimal("80.00") and intent["currency"] == "USD"
    assert intent["client_secret"] == stripe.intents[intent["payment_intent_id"]]["client_secret"]
    assert org.payment_intent(invoice["id"]) == intent
    assert len(stripe.intents) == 1

    payload = stripe.succeeded(intent["payment_intent_id"])
    with pytest.raises(accubooks.ValidationError) as refused:
        books.stripe_webhook(payload, sign(payload, ["whsec_forged"]))
    assert refused.value.code == "INVALID_SIGNATURE" and refused.value.status == 400
    with pytest.raises(accubooks.ValidationError):
        books.stripe_webhook(payload)

    receipts = [books.stripe_webhook(payload, sign(payload)) for _ in range(3)]
    assert {r["outcome"] for r in receipts} == {"queued"}
    assert len({r["job_id"] for r in receipts}) == 1
    paid = wait_until(lambda: (i := org.invoice(invoice["id"]))["status"] == "paid" and i)
    assert paid["paid"] == Decimal("80.00")
    wait_until(lambda: all(j["status"] == "succeeded" for j in org.jobs(queue="payments")))
    cash = next(a for a in org.accounts() if a["code"] == "1000")
    assert cash["balance"] == Decimal("80.00")


def test_without_stripe_payments_are_unavailable(open_books: Callable[..., accubooks.AccuBooks], tmp_path: Any) -> None:
    books = open_books(f"sqlite://{tmp_path}/books.db", job_transport="database")
    org = books.register(unique_email("nostripe"), PASSWORD, "No Stripe")
    customer = org.create_customer("Globex")
    invoice = org.create_invoice(customer["id"], "2026-12-31", LINES)
    org.issue_invoice(invoice["id"])
    with pytest.raises(accubooks.ServiceUnavailable) as unavailable:
        org.payment_intent(invoice["id"])
    assert unavailable.value.code == "PAYMENTS_NOT_CONFIGURED"


def test_the_asyncio_class_takes_webhooks_too(closed_port: int, tmp_path: Any, stripe: FakeStripe) -> None:
    async def main() -> None:
        async with AsyncAccuBooks(f"sqlite://{tmp_path}/books.db", **settings(closed_port, **config(stripe))) as books:
            assert await books.wait_ready(15)
            org = await books.register(unique_email("aio-stripe"), PASSWORD, "Async Stripe")
            customer = await org.create_customer("Globex")
            invoice = await org.create_invoice(customer["id"], "2026-12-31", LINES)
            await org.issue_invoice(invoice["id"])
            for _ in range(200):
                if books.health()["dependencies"]["stripe"]["status"] == "connected":
                    break
                await asyncio.sleep(0.05)
            intent = await org.payment_intent(invoice["id"])
            payload = stripe.succeeded(intent["payment_intent_id"])
            receipt = await books.stripe_webhook(payload, sign(payload))
            assert receipt["outcome"] == "queued" and isinstance(receipt["job_id"], int)
            for _ in range(400):
                if (await org.invoice(invoice["id"]))["status"] == "paid":
                    break
                await asyncio.sleep(0.05)
            assert (await org.invoice(invoice["id"]))["paid"] == Decimal("80.00")

    asyncio.run(main())


def issued(org: Any) -> Any:
    customer = org.create_customer("Globex")
    invoice = org.create_invoice(customer["id"], "2026-12-31", LINES)
    org.issue_invoice(invoice["id"])
    return invoice


def stripe_connected(books: accubooks.AccuBooks) -> bool:
    return bool(books.health()["dependencies"]["stripe"]["status"] == "connected")


def test_a_restricted_key_and_a_stripe_5xx_through_python(
    open_books: Callable[..., accubooks.AccuBooks], tmp_path: Any, stripe: FakeStripe
) -> None:
    # The README's minimal key: connected, and it makes intents.
    books = open_books(f"sqlite://{tmp_path}/books.db", **config(stripe, RESTRICTED_KEY))
    wait_until(lambda: stripe_connected(books))
    org = books.register(unique_email("rk"), PASSWORD, "Restricted")
    invoice = issued(org)

    # Stripe answers 500 and keeps that answer under the key: the next
    # request asks under a new key and gets its intent.
    stripe.fail_next(1)
    with pytest.raises(accubooks.ServiceUnavailable) as unavailable:
        org.payment_intent(invoice["id"])
    assert unavailable.value.code == "PAYMENTS_UNAVAILABLE"
    failed = list(stripe.keys)
    assert len(failed) == 3 and len(set(failed)) == 1 and not stripe.intents
    wait_until(lambda: stripe_connected(books))
    intent = org.payment_intent(invoice["id"])
    assert stripe.keys[-1] != failed[0]
    assert list(stripe.intents) == [intent["payment_intent_id"]]
    assert org.payment_intent(invoice["id"]) == intent


def test_a_failed_refund_is_reversed_once_through_python(
    open_books: Callable[..., accubooks.AccuBooks], tmp_path: Any, stripe: FakeStripe
) -> None:
    books = open_books(f"sqlite://{tmp_path}/books.db", **config(stripe))
    wait_until(lambda: stripe_connected(books))
    org = books.register(unique_email("refund"), PASSWORD, "Refunds")
    invoice = issued(org)
    intent_id = org.payment_intent(invoice["id"])["payment_intent_id"]

    def settled() -> bool:
        return all(j["status"] in ("succeeded", "dead") for j in org.jobs(queue="payments"))

    for payload in [stripe.succeeded(intent_id), stripe.refunded(intent_id, 3000)]:
        books.stripe_webhook(payload, sign(payload))
        wait_until(settled)
    assert org.invoice(invoice["id"])["paid"] == Decimal("50.00")
    kinds = ("charge.refund.updated", "refund.updated")
    failures = [stripe.refund_failed(intent_id, "re_py_1", 3000, kind) for kind in kinds]
    for payload in failures * 2:
        assert books.stripe_webhook(payload, sign(payload))["outcome"] == "queued"
    wait_until(settled)
    assert all(j["status"] == "succeeded" for j in org.jobs(queue="payments"))
    paid = org.invoice(invoice["id"])
    assert paid["status"] == "paid" and paid["paid"] == Decimal("80.00")
    cash = next(a for a in org.accounts() if a["code"] == "1000")
    assert cash["balance"] == Decimal("80.00")

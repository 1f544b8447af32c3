"""Case 3: invoices, users and settings through Python, and one request through two doors.

Every method calls the core's use cases, which the HTTP routes call too, so an
``Idempotency-Key`` used over HTTP replays through Python and back, and a role
change applies to a Python handle at once, as to a token.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Callable, Dict, List, Set

import pytest

import accubooks
from accubooks.aio import AsyncAccuBooks, AsyncOrganization
from conftest import PASSWORD, http, settings, unique_email

JAN = datetime.date(2026, 1, 31)
Open = Callable[..., accubooks.AccuBooks]
PACKAGE = Path(__file__).resolve().parent.parent


def consulting(quantity: str = "2", price: str = "150.00", rate: str = "0.1") -> List[Dict[str, object]]:
    return [
        {
            "description": "Consulting",
            "quantity": Decimal(quantity),
            "unit_price": price,
            "tax_rate": Decimal(rate),
        }
    ]


def test_invoices_payments_credit_notes_and_aging(open_books: Open, database_url: str) -> None:
    books = open_books(database_url)
    org = books.register(unique_email("owner"), PASSWORD, "Invoicer")

    customer = org.create_customer("Globex", "ap@globex.example", idempotency_key="c1")
    assert org.create_customer("Globex", "ap@globex.example", idempotency_key="c1") == customer
    assert org.customers() == [customer]

    draft = org.create_invoice(customer["id"], "2026-02-28", consulting())
    assert draft["status"] == "draft" and draft["kind"] == "invoice"
    assert (draft["subtotal"], draft["tax"], draft["total"]) == (
        Decimal("300.00"),
        Decimal("30.00"),
        Decimal("330.00"),
    )
    assert draft["due_date"] == datetime.date(2026, 2, 28)
    assert draft["lines"][0]["amount"] == Decimal("300.00")

    issued = org.issue_invoice(draft["id"], JAN, idempotency_key="issue-1")
    assert issued["status"] == "issued" and issued["issue_date"] == JAN
    # A retry with the key answers the first answer; without it, the state refuses.
    assert org.issue_invoice(draft["id"], JAN, idempotency_key="issue-1") == issued
    with pytest.raises(accubooks.ConflictError) as again:
        org.issue_invoice(draft["id"], JAN)
    assert again.value.code == "INVOICE_NOT_DRAFT"

    paid = org.pay_invoice(draft["id"], Decimal("100.00"), "2026-02-01", idempotency_key="p1")
    assert paid["status"] == "partially_paid" and paid["outstanding"] == Decimal("230.00")
    assert org.pay_invoice(draft["id"], "100.00", "2026-02-01", idempotency_key="p1") == paid
    with pytest.raises(accubooks.ValidationError) as over:
        org.pay_invoice(draft["id"], "1000.00")
    assert over.value.code == "OVERPAYMENT"
    with pytest.raises(TypeError, match="float"):
        org.pay_invoice(draft["id"], 1.5)

    note = org.credit_note(draft["id"], consulting("1", "50.00"), "2026-02-02")
    assert note["kind"] == "credit_note" and note["credits_invoice"] == draft["id"]
    assert note["total"] == Decimal("55.00")
    assert org.invoice(draft["id"])["outstanding"] == Decimal("175.00")

    aging = org.ar_aging("2026-03-31")
    assert aging["as_of"] == datetime.date(2026, 3, 31)
    assert aging["totals"][0]["total"] == Decimal("175.00")
    assert aging["totals"][0]["days_31_60"] == Decimal("175.00")
    # Receivables in the books agree with the invoices.
    trial = {a["code"]: a for a in org.trial_balance("2026-12-31")["accounts"]}
    assert trial["1100"]["debit"] == Decimal("175.00")

    other = org.create_invoice(customer["id"], "2026-03-31", consulting())
    assert org.void_invoice(other["id"])["status"] == "void"
    assert {i["id"] for i in org.invoices()} == {draft["id"], note["id"], other["id"]}
    with pytest.raises(accubooks.NotFoundError):
        org.invoice(10**12)

    assert org.settings() == {"tax_rounding": "line", "timezone": "UTC", "lock_date": None}
    assert org.put_settings("document") == {"tax_rounding": "document", "timezone": "UTC", "lock_date": None}
    with pytest.raises(accubooks.ValidationError):
        org.put_settings("upwards")


def test_users_and_a_demotion_that_applies_at_once(open_books: Open, database_url: str) -> None:
    books = open_books(database_url)
    owner_email = unique_email("owner")
    owner = books.register(owner_email, PASSWORD, "Team")
    email = unique_email("clerk")
    clerk_user = owner.create_user(email, PASSWORD, "accountant")
    clerk = books.login(email, PASSWORD)
    assert clerk.post_entry(JAN, [{"account": "1000", "debit": "1"}, {"account": "4000", "credit": "1"}])
    with pytest.raises(accubooks.PermissionDeniedError):
        clerk.users()

    assert {(u["email"], u["role"]) for u in owner.users()} == {
        (owner_email, "owner"),
        (email, "accountant"),
    }
    assert owner.set_role(clerk_user["id"], "viewer")["role"] == "viewer"
    # The handle was opened as an accountant; the books now say viewer.
    with pytest.raises(accubooks.PermissionDeniedError):
        clerk.post_entry(JAN, [{"account": "1000", "debit": "1"}, {"account": "4000", "credit": "1"}])
    assert clerk.accounts()

    owner_id = owner.user_id
    assert owner_id is not None
    with pytest.raises(accubooks.ConflictError) as last:
        owner.set_role(owner_id, "viewer")
    assert last.value.code == "LAST_OWNER"
    with pytest.raises(accubooks.ValidationError):
        owner.set_role(clerk_user["id"], "emperor")

    assert owner.remove_user(clerk_user["id"]) is None
    with pytest.raises(accubooks.AuthenticationError):
        clerk.accounts()
    assert [u["id"] for u in owner.users()] == [owner_id]


def test_one_request_is_the_same_through_every_door(open_books: Open, database_url: str) -> None:
    books = open_books(database_url)
    org = books.register(unique_email("doors"), PASSWORD, "Doors")
    entry = {
        "date": "2026-01-31",
        "memo": "door",
        "lines": [{"account": "1000", "debit": "5.00"}, {"account": "4000", "credit": "5.00"}],
    }
    with books.serve() as server:
        auth = {"Authorization": f"Bearer {org.token()}", "Idempotency-Key": "cross-door"}
        # Spacing and key order are the client's; the request is the same.
        spaced = json.dumps(dict(reversed(list(entry.items()))), indent=4)
        status, _, body = http("POST", server.url + "/api/journal-entries", spaced, auth)
        assert status == 201, body
        over_http = json.loads(body)

        through_python = org.post_entry(
            JAN,
            [{"account": "1000", "debit": Decimal("5.00")}, {"account": "4000", "credit": "5.00"}],
            "door",
            idempotency_key="cross-door",
        )
        assert through_python["id"] == over_http["id"]
        assert len(org.general_ledger("1000", JAN, JAN)["rows"]) == 1
        with pytest.raises(accubooks.ValidationError) as reused:
            org.post_entry(JAN, entry["lines"], "another memo", idempotency_key="cross-door")  # type: ignore[arg-type]
        assert reused.value.code == "IDEMPOTENCY_KEY_REUSED"

        # And back: a reversal through Python replays over HTTP.
        reversal = org.reverse_entry(over_http["id"], idempotency_key="undo")
        status, headers, body = http(
            "POST",
            f"{server.url}/api/journal-entries/{over_http['id']}/reverse",
            {},
            {"Authorization": auth["Authorization"], "Idempotency-Key": "undo"},
        )
        assert status == 201 and json.loads(body)["id"] == reversal["id"]
        assert headers.get("idempotent-replayed") == "true"

    # The use cases count their work whichever door called them: two posts
    # (one over HTTP, one replayed from Python), one refused reuse.
    metrics = books.metrics()
    series = "accubooks_operation_duration_seconds_count"
    assert f'{series}{{operation="post_entry",outcome="ok"}} 2' in metrics
    assert f'{series}{{operation="post_entry",outcome="refused"}} 1' in metrics
    assert f'{series}{{operation="reverse_entry",outcome="ok"}} 2' in metrics


def test_asyncio_invoices(database_url: str, closed_port: int) -> None:
    async def run() -> None:
        async with AsyncAccuBooks(database_url, **settings(closed_port)) as books:
            assert await books.wait_ready(15)
            org = await books.register(unique_email("async"), PASSWORD, "Async invoices")
            customer = await org.create_customer("Initech")
            drafts = await asyncio.gather(
                *(org.create_invoice(customer["id"], "2026-02-28", consulting()) for _ in range(5))
            )
            issued = await asyncio.gather(*(org.issue_invoice(d["id"], JAN) for d in drafts))
            assert {i["status"] for i in issued} == {"issued"}
            aging = await org.ar_aging("2026-01-31")
            assert aging["totals"][0]["current"] == Decimal("1650.00")
            assert (await org.settings())["tax_rounding"] == "line"

    asyncio.run(run())


def public_methods(cls: type) -> Set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def test_twins_and_stubs_are_one_list() -> None:
    # The runtime classes come from one macro: the same methods.
    assert public_methods(accubooks.Organization) == public_methods(AsyncOrganization)
    # The asyncio stub is generated from the blocking one, and both stubs name
    # exactly the runtime's methods.
    check = subprocess.run(
        [sys.executable, str(PACKAGE / "stubgen.py"), "--check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    stub = (PACKAGE / "python" / "accubooks" / "__init__.pyi").read_text()
    import ast

    tree = ast.parse(stub)
    organization = next(
        n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Organization"
    )
    stubbed = {
        n.name
        for n in organization.body
        if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")
    }
    assert stubbed == public_methods(accubooks.Organization)

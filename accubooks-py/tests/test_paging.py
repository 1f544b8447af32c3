"""Lists page in Python as over HTTP: ``limit``/``after`` keywords, a ``Page``
(a list with ``next_cursor``), and ``accubooks.iterate`` that reads every page.
Records added while a client pages are never read twice, and none that
existed is skipped."""

from __future__ import annotations

import asyncio
import datetime
from decimal import Decimal
from typing import Callable, List

import pytest

import accubooks
from accubooks.aio import AsyncAccuBooks
from accubooks.aio import iterate as aiterate
from accubooks.types import InvoiceLineInput, Page
from conftest import PASSWORD, settings, unique_email

Open = Callable[..., accubooks.AccuBooks]


def test_lists_page_and_iterate_reads_every_page(open_books: Open, database_url: str) -> None:
    books = open_books(database_url)
    org = books.register(unique_email("pages"), PASSWORD, "Pages")
    existing: List[int] = [org.create_customer(f"Customer {i}")["id"] for i in range(230)]

    first = org.customers()
    assert isinstance(first, Page) and isinstance(first, list)
    assert len(first) == 100 and first.next_cursor is not None
    assert [c["id"] for c in first] == existing[:100]
    second = org.customers(limit=100, after=first.next_cursor)
    assert [c["id"] for c in second] == existing[100:200]

    # Reading on while more are added: each existing one once, in order.
    seen: List[int] = []
    for customer in accubooks.iterate(org.customers, limit=50):
        seen.append(customer["id"])
        if len(seen) % 50 == 0:
            org.create_customer("Added meanwhile")
    assert len(seen) == len(set(seen))
    assert seen[:230] == existing
    assert seen == sorted(seen)

    last = org.customers(limit=500)
    assert last.next_cursor is None


def test_limits_and_cursors_are_checked(open_books: Open, database_url: str) -> None:
    books = open_books(database_url)
    org = books.register(unique_email("limits"), PASSWORD, "Limits")
    for bad in (0, 501, -1):
        with pytest.raises(accubooks.ValidationError) as refused:
            org.invoices(limit=bad)
        assert refused.value.code == "INVALID_LIMIT" and refused.value.status == 422
        assert "limit" in str(refused.value)
    for cursor in ("zz", "", "5b5d"):
        with pytest.raises(accubooks.ValidationError) as refused:
            org.customers(after=cursor)
        assert refused.value.code == "INVALID_CURSOR"


def test_filtered_invoices_and_the_general_ledger_page(open_books: Open, database_url: str) -> None:
    books = open_books(database_url)
    org = books.register(unique_email("filters"), PASSWORD, "Filters")
    buyer = org.create_customer("Buyer")
    lines: List[InvoiceLineInput] = [{"description": "Work", "quantity": "1", "unit_price": "10.00"}]
    drafts = [org.create_invoice(buyer["id"], "2026-12-31", lines)["id"] for _ in range(25)]
    issued = drafts[::2]
    for id in issued:
        org.issue_invoice(id, "2026-06-01")
    page = org.invoices(status="issued", limit=5)
    assert len(page) == 5 and page.next_cursor is not None
    read = [i["id"] for i in accubooks.iterate(org.invoices, status="issued", limit=5)]
    assert sorted(read) == sorted(issued) and read == sorted(read, reverse=True)

    # The ledger's rows page the same way; the running balance goes on.
    rows = list(
        accubooks.iterate(
            org.general_ledger, "1100", datetime.date(2026, 1, 1), datetime.date(2026, 12, 31), limit=4
        )
    )
    assert len(rows) == len(issued)
    assert rows[-1]["balance"] == sum(r["debit"] for r in rows)
    one = org.general_ledger("1100", "2026-01-01", "2026-12-31", limit=4)
    assert one["truncated"] and one["next_cursor"] is not None and len(one["rows"]) == 4


def test_asyncio_lists_page(tmp_path: object, closed_port: int) -> None:
    async def main() -> None:
        async with AsyncAccuBooks(f"sqlite://{tmp_path}/pages.db", **settings(closed_port)) as books:
            assert await books.wait_ready(15)
            org = await books.register(unique_email("async-pages"), PASSWORD, "Async pages")
            made = [(await org.create_customer(f"C{i}"))["id"] for i in range(12)]
            page = await org.customers(limit=5)
            assert len(page) == 5 and page.next_cursor is not None
            seen = [c["id"] async for c in aiterate(org.customers, limit=5)]
            assert seen == made

    asyncio.run(main())


def test_the_journal_and_an_account_history_page(open_books: Open, database_url: str) -> None:
    books = open_books(database_url)
    org = books.register(unique_email("journal"), PASSWORD, "Journal")
    dates = [datetime.date(2026, 1 + i % 12, 1 + i % 28) for i in range(60)]
    ids = org.post_entries(
        [
            {
                "date": day,
                "memo": f"sale {i}",
                "lines": [
                    {"account": "1000", "debit": f"{i + 1}.00"},
                    {"account": "5000" if i % 3 == 0 else "4000", "credit": f"{i + 1}.00"},
                ],
            }
            for i, day in enumerate(dates)
        ]
    )
    entries = list(accubooks.iterate(org.entries, limit=7))
    assert sorted(e["id"] for e in entries) == sorted(ids)
    keys = [(e["date"], e["id"]) for e in entries]
    assert keys == sorted(keys) and isinstance(entries[0]["date"], datetime.date)
    newest = [e["id"] for e in accubooks.iterate(org.entries, order="newest", limit=9)]
    assert newest == [e["id"] for e in reversed(entries)]
    expenses = list(accubooks.iterate(org.entries, account="5000", from_="2026-02-01", to=datetime.date(2026, 6, 30)))
    assert len(expenses) == sum(1 for i, d in enumerate(dates) if i % 3 == 0 and 2 <= d.month <= 6)
    assert all(any(line["account"] == "5000" for line in e["lines"]) for e in expenses)

    rows = list(accubooks.iterate(org.account_history, "1000", limit=8))
    assert len(rows) == 60
    running = Decimal(0)
    for row in rows:
        running += row["debit"]
        assert row["balance"] == running
    assert org.account_balance("1000", as_of="2026-12-31")["balance"] == Decimal(sum(range(1, 61)))
    march = org.account_balance("1000", as_of="2026-03-31")
    assert march["as_of"] == datetime.date(2026, 3, 31)
    assert march["balance"] == sum(Decimal(i + 1) for i, d in enumerate(dates) if d <= datetime.date(2026, 3, 31))

    with pytest.raises(accubooks.ValidationError) as refused:
        org.entries(order="oldest")
    assert refused.value.code == "INVALID_QUERY"
    with pytest.raises(accubooks.NotFoundError):
        org.account_balance("9999")


def test_entries_carry_metadata_and_are_found_by_it(open_books: Open, database_url: str) -> None:
    books = open_books(database_url)
    org = books.register(unique_email("tags"), PASSWORD, "Tags")
    lines = [{"account": "1000", "debit": "5.00"}, {"account": "4000", "credit": "5.00"}]
    one = org.post_entry("2026-03-01", lines, "tagged", metadata={"order": "A-1", "region.eu": "fr"})
    assert one["metadata"] == {"order": "A-1", "region.eu": "fr"}
    [two] = org.post_entries([{"date": "2026-03-02", "lines": lines, "metadata": {"order": "A-2"}}])
    assert org.entry(two)["metadata"] == {"order": "A-2"}
    assert org.post_entry("2026-03-03", lines)["metadata"] == {}
    found = [e["id"] for e in accubooks.iterate(org.entries, metadata={"order": "A-1"})]
    assert found == [one["id"]]
    with pytest.raises(accubooks.ValidationError) as refused:
        org.post_entry("2026-03-04", lines, metadata={"Order": "x"})
    assert refused.value.code == "INVALID_FIELD"
    assert len(org.entries(from_="2026-03-04", to="2026-03-04")) == 0


def test_accounts_carry_replaceable_metadata(open_books: Open, database_url: str) -> None:
    books = open_books(database_url)
    org = books.register(unique_email("chart"), PASSWORD, "Chart")
    opened = org.create_account("1010", "Bank EU", "asset", "USD", metadata={"region": "eu"})
    assert opened["metadata"] == {"region": "eu"}
    assert [a["code"] for a in org.accounts(metadata={"region": "eu"})] == ["1010"]
    assert org.set_account_metadata("1010", {"region": "us", "bank": "x"})["metadata"] == {"bank": "x", "region": "us"}
    assert org.accounts(metadata={"region": "eu"}) == []
    with pytest.raises(accubooks.NotFoundError):
        org.set_account_metadata("9999", {})


def test_customers_carry_replaceable_metadata(open_books: Open, database_url: str) -> None:
    books = open_books(database_url)
    org = books.register(unique_email("crm"), PASSWORD, "CRM")
    ann = org.create_customer("Ann", metadata={"crm.id": "c-1"})
    org.create_customer("Bob")
    assert ann["metadata"] == {"crm.id": "c-1"}
    assert [c["id"] for c in org.customers(metadata={"crm.id": "c-1"})] == [ann["id"]]
    assert org.set_customer_metadata(ann["id"], {})["metadata"] == {}
    assert org.customers(metadata={"crm.id": "c-1"}) == []


def test_invoices_carry_metadata_and_numbers_follow_issue_dates(open_books: Open, database_url: str) -> None:
    books = open_books(database_url)
    org = books.register(unique_email("numbers"), PASSWORD, "Numbers")
    customer = org.create_customer("Globex")
    lines: List[InvoiceLineInput] = [{"description": "Hosting", "quantity": "1", "unit_price": "10.00"}]
    tagged = org.create_invoice(customer["id"], "2026-12-31", lines, metadata={"order": "A-1"})
    plain = org.create_invoice(customer["id"], "2026-12-31", lines)
    assert (tagged["metadata"], plain["metadata"]) == ({"order": "A-1"}, {})
    assert tagged["number"] is None
    found = [i["id"] for i in accubooks.iterate(org.invoices, metadata={"order": "A-1"})]
    assert found == [tagged["id"]]

    first = org.issue_invoice(plain["id"], "2026-03-02")
    assert first["number"] == "INV-000001"
    with pytest.raises(accubooks.ConflictError) as backdated:
        org.issue_invoice(tagged["id"], "2026-03-01")
    assert backdated.value.code == "INVOICE_DATE_ORDER"
    assert "2026-03-02" in str(backdated.value)
    assert org.invoice(tagged["id"])["number"] is None
    second = org.issue_invoice(tagged["id"], "2026-03-02")
    assert (second["number"], second["metadata"]) == ("INV-000002", {"order": "A-1"})
    note = org.credit_note(plain["id"], lines, "2026-03-03")
    assert (note["number"], note["metadata"]) == ("CN-000001", {})

    with pytest.raises(accubooks.ValidationError) as refused:
        org.create_invoice(customer["id"], "2026-12-31", lines, metadata={f"k{i}": "v" for i in range(21)})
    assert refused.value.code == "INVALID_FIELD"

"""Background work through Python: recurring invoices, report jobs and pay runs.

The jobs run on the database transport (``job_transport="database"``): the
test configuration's Redis is a closed port, and the embedded default without
Redis is what a Python user gets first. The same use cases run over Redis in
the Rust integration tests.
"""

from __future__ import annotations

import asyncio
import csv
import datetime
import io
import json
import time
from decimal import Decimal
from typing import Any, Callable, List

import pytest

import accubooks
from accubooks.aio import AsyncAccuBooks
from conftest import PASSWORD, settings, unique_email

Open = Callable[..., accubooks.AccuBooks]
QUICK = {"job_transport": "database", "recurring_scan_ms": 200}
HOSTING = [{"description": "Hosting", "quantity": "1", "unit_price": Decimal("49.90"), "tax_rate": "0.1"}]


def wait_until(check: Callable[[], Any], seconds: float = 20.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_recurring_invoices_are_caught_up_once(open_books: Open, database_url: str) -> None:
    books = open_books(database_url, **QUICK)
    org = books.register(unique_email("recurring"), PASSWORD, "Recurring")
    customer = org.create_customer("Initech")
    today = datetime.date.today()
    start = today - datetime.timedelta(weeks=8)
    template = org.create_recurring_invoice(
        customer["id"],
        HOSTING,
        {"frequency": "weekly", "start": start},
        due_days=14,
        auto_issue=True,
        idempotency_key="tmpl-1",
    )
    assert template["occurrences"] == 9
    assert template["next_date"] == today + datetime.timedelta(weeks=1)
    # A retry with the key answers the first answer and creates nothing.
    assert org.create_recurring_invoice(
        customer["id"], HOSTING, {"frequency": "weekly", "start": start}, due_days=14, auto_issue=True,
        idempotency_key="tmpl-1",
    ) == template

    def generated() -> List[Any]:
        found = [i for i in org.invoices() if i["recurring_id"] == template["id"]]
        return found if len(found) == 9 and all(i["status"] == "issued" for i in found) else []

    invoices = wait_until(generated)
    assert sorted(i["period"] for i in invoices) == [start + datetime.timedelta(weeks=w) for w in range(9)]
    assert {i["total"] for i in invoices} == {Decimal("54.89")}
    assert len(org.recurring_invoices()) == 1
    assert org.preview_recurring_invoice(template["id"], 2)["dates"] == [
        str(today + datetime.timedelta(weeks=w)) for w in (1, 2)
    ]
    # Numbered in the order of their dates: the catch-up is one job, which
    # issues its occurrences oldest first.
    by_number = sorted(invoices, key=lambda i: i["number"] or "")
    assert [i["number"] for i in by_number] == [f"INV-{n:06d}" for n in range(1, 10)]
    assert [i["period"] for i in by_number] == sorted(i["period"] for i in invoices)
    # The job is recorded succeeded just after its last invoice is issued.
    jobs = wait_until(lambda: (js := org.jobs(queue="recurring-invoices")) and all(j["status"] == "succeeded" for j in js) and js)
    assert len(jobs) == 1
    assert org.job(jobs[0]["id"]) == jobs[0]
    with pytest.raises(accubooks.ConflictError) as not_dead:
        org.retry_job(jobs[0]["id"])
    assert not_dead.value.code == "JOB_NOT_DEAD"
    with pytest.raises(accubooks.ValidationError) as bad:
        org.create_recurring_invoice(customer["id"], HOSTING, {"frequency": "daily", "start": start})
    assert bad.value.code == "INVALID_FIELD"
    with pytest.raises(accubooks.ValidationError) as zone:
        org.put_settings(timezone="Atlantis/Capital")
    assert zone.value.code == "INVALID_TIMEZONE"
    assert org.put_settings(timezone="Asia/Kathmandu")["timezone"] == "Asia/Kathmandu"
    health = books.health()["dependencies"]["jobQueues"]
    assert health["transport"] == "database" and health["queues"]["recurring-invoices"] is True


def test_reports_and_pay_runs_as_jobs(open_books: Open, database_url: str) -> None:
    books = open_books(database_url, **QUICK)
    org = books.register(unique_email("payroll"), PASSWORD, "Payroll")
    org.create_account("5100", "Wages", "expense", "USD")
    org.create_account("2200", "Withholding payable", "liability", "USD")
    org.put_payroll_rules(
        [{"name": "Income tax", "kind": "deduction", "rate": Decimal("0.1"), "account": "2200"}]
    )
    ada = org.create_employee(
        "Ada", {"type": "salary", "annual": Decimal("52000.00")}, "weekly", "2026-01-05"
    )
    assert ada["pay"] == {"type": "salary", "annual": Decimal("52000.00")}
    run = org.create_payroll_run("2026-03-02", "2026-03-08", "2026-03-09")
    assert run["status"] == "pending" and run["job_id"] > 0
    posted = wait_until(lambda: (r := org.payroll_run(run["id"]))["status"] == "posted" and r)
    slip = posted["payslips"][0]
    assert (slip["gross"], slip["deductions"][0]["amount"], slip["net"]) == (
        Decimal("1000.00"),
        Decimal("100.00"),
        Decimal("900.00"),
    )
    entry = org.entry(posted["entry_id"])
    assert {(l["account"], l.get("debit"), l.get("credit")) for l in entry["lines"]} == {
        ("5100", Decimal("1000.00"), None),
        ("2200", None, Decimal("100.00")),
        ("1000", None, Decimal("900.00")),
    }
    with pytest.raises(accubooks.ConflictError) as overlap:
        org.create_payroll_run("2026-03-08", "2026-03-14", "2026-03-16")
    assert overlap.value.code == "PAYROLL_PERIOD_OVERLAP"

    job = org.create_report_job("trial-balance", {"as_of": "2026-12-31"}, "csv")
    wait_until(lambda: org.report_job(job["id"])["status"] == "succeeded")
    rows = list(csv.reader(io.StringIO(org.report_result(job["id"]))))
    assert rows[0] == [
        "code",
        "name",
        "type",
        "currency",
        "debit",
        "credit",
        "parent",
        "level",
        "subtotal_debit",
        "subtotal_credit",
    ]
    assert ["5100", "Wages", "expense", "USD", "1000.00", "0.00", "", "0", "", ""] in rows
    as_json = org.create_report_job("trial-balance", {"as_of": datetime.date(2026, 12, 31)})
    wait_until(lambda: org.report_job(as_json["id"])["status"] == "succeeded")
    assert json.loads(org.report_result(as_json["id"]))["total_debit"] == "1000.00"
    with pytest.raises(accubooks.ValidationError):
        org.create_report_job("income-statement", {"from": "2026-01-01"})


def test_asyncio_jobs(tmp_path: Any, closed_port: int) -> None:
    async def main() -> None:
        books = AsyncAccuBooks(f"sqlite://{tmp_path}/async.db", **settings(closed_port, **QUICK))
        try:
            assert await books.wait_ready(15)
            org = await books.register(unique_email("async-jobs"), PASSWORD, "Async jobs")
            job = await org.create_report_job("balance-sheet")
            for _ in range(400):
                if (await org.report_job(job["id"]))["status"] == "succeeded":
                    break
                await asyncio.sleep(0.05)
            result = json.loads(await org.report_result(job["id"]))
            assert "assets" in result
            assert [j["kind"] for j in await org.jobs()] == ["report"]
        finally:
            await books.close()

    asyncio.run(main())

"""The whole public API, fully annotated: ``mypy --strict`` must accept it
(test_errors_and_types.py runs mypy on this file) and it must run (the same
test calls ``main``)."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from decimal import Decimal
from typing import Callable, List, Optional

import accubooks
from accubooks import (
    AccuBooks,
    AccuBooksError,
    AuthenticationError,
    ConfigError,
    ConflictError,
    DatabaseUnavailable,
    NotFoundError,
    Organization,
    PermissionDeniedError,
    RateLimitedError,
    Server,
    ServiceUnavailable,
    ValidationError,
)
from accubooks.aio import AsyncAccuBooks, AsyncOrganization
from accubooks.types import (
    Account,
    BalanceSheet,
    CashFlowStatement,
    Entry,
    EntryInput,
    GeneralLedger,
    Health,
    IncomeStatement,
    LineInput,
    TrialBalance,
    User,
)

PASSWORD = "correct horse battery"


def email() -> str:
    return f"typed-{uuid.uuid4().hex[:12]}@example.com"


def books_api(books: AccuBooks) -> Decimal:
    version: str = accubooks.__version__
    assert version
    health: Health = books.health()
    status: str = health["status"]
    ready: bool = books.wait_ready(timeout=5.0) and books.ready() and books.live()
    text: str = books.metrics()
    phase: str = books.phase()
    assert status and ready and text and phase and not books.closed

    org: Organization = books.register(email(), PASSWORD, "Typed Co", currency="USD")
    org_id: str = org.id
    user_id: Optional[str] = org.user_id
    token: str = org.token()
    assert org_id and user_id and token and org.role == "owner"
    user: User = org.create_user(email(), PASSWORD, role="accountant")
    again: Organization = books.login(user["email"], PASSWORD)
    same: Organization = books.organization(org.id)
    assert again.id == same.id == org.id

    account: Account = org.create_account("1010", "Bank", "asset", "USD", parent="1000")
    accounts: List[Account] = org.accounts()
    balance: Decimal = accounts[0]["balance"]
    assert account["code"] == "1010" and balance == Decimal("0.00")

    lines: List[LineInput] = [
        {"account": "1010", "debit": Decimal("10.00")},
        {"account": "4000", "credit": "10.00"},
    ]
    entry: Entry = org.post_entry(datetime.date(2026, 1, 31), lines, "typed", idempotency_key="t-1")
    day: datetime.date = entry["date"]
    batch: List[EntryInput] = [{"date": "2026-02-01", "lines": lines, "memo": "batch"}]
    ids: List[int] = org.post_entries(batch, idempotency_key="t-2")
    fetched: Entry = org.entry(ids[0])
    reversal: Entry = org.reverse_entry(entry["id"], date=day)
    assert fetched["memo"] == "batch" and reversal["reverses"] == entry["id"]

    trial: TrialBalance = org.trial_balance(as_of=datetime.date(2026, 12, 31))
    sheet: BalanceSheet = org.balance_sheet("2026-12-31")
    income: IncomeStatement = org.income_statement(datetime.date(2026, 1, 1), "2026-12-31")
    flow: CashFlowStatement = org.cash_flow("2026-01-01", datetime.date(2026, 12, 31))
    closing: Optional[Decimal] = flow["closing_cash"]
    subtotal: Optional[Decimal] = trial["accounts"][0]["subtotal_debit"]
    assert closing is not None and trial["accounts"][0]["level"] == 0 and subtotal is not None
    ledger: GeneralLedger = org.general_ledger("1010", "2026-01-01", datetime.date(2026, 12, 31))
    journal: str = org.export_ledger("beancount", as_of=datetime.date(2026, 12, 31))
    assert sheet["totals"] and income["from"] and ledger["rows"] and journal

    errors: List[type[AccuBooksError]] = [
        ValidationError,
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        ConflictError,
        RateLimitedError,
        ServiceUnavailable,
        DatabaseUnavailable,
        ConfigError,
    ]
    try:
        org.entry(10**12)
    except AccuBooksError as error:
        code: str = error.code
        http_status: int = error.status
        retry: Optional[int] = error.retry_after
        assert isinstance(error, errors[3]) and code and http_status == 404 and retry is None
        assert not error.temporary

    total: Optional[Decimal] = trial["total_debit"]
    assert total is not None
    return total


def serve_api(books: AccuBooks) -> None:
    server: Server = books.serve(host="127.0.0.1", port=0)
    with server:
        url: str = server.url
        port: int = server.port
        host: str = server.host
        assert url.endswith(str(port)) and host == "127.0.0.1" and server.running
    server.stop(timeout=1.0)


async def async_api(database_url: str) -> Decimal:
    async with AsyncAccuBooks(database_url, accubooks_env="test", redis_url="redis://127.0.0.1:9") as books:
        ready: bool = await books.wait_ready(5.0)
        health: Health = books.health()
        assert ready and health["service"] == "accubooks" and books.metrics() and books.live()
        org: AsyncOrganization = await books.register(email(), PASSWORD, "Async Co")
        same: AsyncOrganization = await books.organization(org.id)
        user: User = await org.create_user(email(), PASSWORD)
        viewer: AsyncOrganization = await books.login(user["email"], PASSWORD)
        assert same.id == viewer.id and viewer.token() and viewer.user_id
        account: Account = await org.create_account("1010", "Bank", "asset", "USD")
        accounts: List[Account] = await org.accounts()
        lines: List[LineInput] = [
            {"account": account["code"], "debit": "2.50"},
            {"account": "4000", "credit": Decimal("2.50")},
        ]
        entries: List[Entry] = list(
            await asyncio.gather(*(org.post_entry("2026-01-31", lines) for _ in range(4)))
        )
        ids: List[int] = await org.post_entries([{"date": "2026-01-31", "lines": lines}])
        entry: Entry = await org.entry(ids[0])
        reversal: Entry = await org.reverse_entry(entries[0]["id"])
        trial: TrialBalance = await org.trial_balance("2026-12-31")
        sheet: BalanceSheet = await org.balance_sheet()
        income: IncomeStatement = await org.income_statement("2026-01-01", "2026-12-31")
        flow: CashFlowStatement = await org.cash_flow("2026-01-01", "2026-12-31")
        assert flow["totals"] is not None
        ledger: GeneralLedger = await org.general_ledger("1010", "2026-01-01", "2026-12-31")
        journal: str = await org.export_ledger("hledger")
        assert accounts and entry and reversal and sheet and income and ledger and journal
        server: Server = await books.serve()
        await server.astop(timeout=1.0)
        total: Optional[Decimal] = trial["total_debit"]
        assert total is not None and books.closed
        await books.close()
        return total


def main(database_url: str) -> None:
    with AccuBooks(
        database_url,
        accubooks_env="test",
        redis_url="redis://127.0.0.1:9",
        db_init_timeout_ms=5000,
    ) as books:
        assert books_api(books) == Decimal("10.00")
        serve_api(books)
    assert asyncio.run(async_api(database_url)) == Decimal("10.00")
    from_env: Callable[[], AccuBooks] = AccuBooks.from_env
    async_from_env: Callable[[], AsyncAccuBooks] = AsyncAccuBooks.from_env
    assert callable(from_env) and callable(async_from_env)
    try:
        AccuBooks(accubooks_env="production", jwt_secret="too short")
    except ConfigError as error:
        problems: List[tuple[str, str]] = error.problems
        variables: List[str] = error.variables
        assert problems and variables


if __name__ == "__main__":
    import sys

    main(sys.argv[1] if len(sys.argv) > 1 else "sqlite://typed-usage.db")

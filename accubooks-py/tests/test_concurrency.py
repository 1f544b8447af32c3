"""Case 4: one handle shared by Python threads, and asyncio."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Callable, Dict, List

import pytest

import accubooks
from accubooks.aio import AsyncAccuBooks, AsyncOrganization
from conftest import PASSWORD, settings, unique_email

THREADS = 8
POSTS = 25
JAN = "2026-01-31"


def lines(amount: object) -> List[Dict[str, object]]:
    return [{"account": "1000", "debit": amount}, {"account": "4000", "credit": amount}]


def test_threads_share_one_handle(
    open_books: Callable[..., accubooks.AccuBooks], database_url: str
) -> None:
    books = open_books(database_url)
    org = books.register(unique_email("threads"), PASSWORD, "Threads")
    ids: List[int] = []
    failures: List[BaseException] = []
    start = threading.Barrier(THREADS)

    def post(worker: int) -> None:
        try:
            start.wait()
            for n in range(POSTS):
                entry = org.post_entry(JAN, lines("1.25"), f"worker {worker} #{n}")
                ids.append(entry["id"])
        except BaseException as error:  # reported below
            failures.append(error)

    threads = [threading.Thread(target=post, args=(w,)) for w in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    assert len(ids) == len(set(ids)) == THREADS * POSTS
    expected = Decimal("1.25") * THREADS * POSTS
    cash = next(a for a in org.accounts() if a["code"] == "1000")
    assert cash["balance"] == expected == Decimal("250.00")
    trial = org.trial_balance("2026-12-31")
    assert trial["total_debit"] == trial["total_credit"] == expected


def test_blocking_calls_release_the_gil(
    open_books: Callable[..., accubooks.AccuBooks], tmp_path: Path
) -> None:
    books = open_books(f"sqlite://{tmp_path}/books.db")
    org = books.register(unique_email("gil"), PASSWORD, "GIL")
    batch = [{"date": JAN, "lines": lines("0.01")} for _ in range(1500)]
    done = threading.Event()
    result: List[List[int]] = []
    failures: List[BaseException] = []

    def post() -> None:
        try:
            result.append(org.post_entries(batch))
        except BaseException as error:  # reported below
            failures.append(error)
        finally:
            done.set()

    thread = threading.Thread(target=post)
    spins = 0
    started = time.monotonic()
    thread.start()
    # While the worker thread waits inside Rust, this thread keeps running.
    while not done.is_set():
        spins += 1
    thread.join()
    assert not failures, failures
    assert len(result[0]) == 1500
    assert spins > 100, f"only {spins} iterations in {time.monotonic() - started:.3f}s"


def test_asyncio_gather(database_url: str, closed_port: int) -> None:
    async def run() -> None:
        async with AsyncAccuBooks(database_url, **settings(closed_port)) as books:
            assert await books.wait_ready(15)
            assert books.ready() and books.health()["service"] == "accubooks"
            org = await books.register(unique_email("async"), PASSWORD, "Async")
            assert isinstance(org, AsyncOrganization) and org.role == "owner"
            entries = await asyncio.gather(
                *(org.post_entry(JAN, lines("0.10"), f"#{n}") for n in range(60))
            )
            assert len({e["id"] for e in entries}) == 60
            trial = await org.trial_balance("2026-12-31")
            assert trial["total_debit"] == Decimal("6.00")

            with pytest.raises(accubooks.ValidationError) as unbalanced:
                await org.post_entry(
                    JAN, [{"account": "1000", "debit": "1"}, {"account": "4000", "credit": "2"}]
                )
            assert unbalanced.value.code == "UNBALANCED_ENTRY"
            with pytest.raises(TypeError):
                await org.post_entry(JAN, lines(0.1))
            with pytest.raises(accubooks.NotFoundError):
                await org.entry(10**12)

            # The event loop keeps running while the runtime works.
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0)

            ticker = asyncio.ensure_future(tick())
            ids = await org.post_entries([{"date": JAN, "lines": lines("0.01")}] * 500)
            ticker.cancel()
            assert len(ids) == 500 and ticks > 10

            server = await books.serve()
            assert server.running
            await server.astop()
            assert books.closed and not server.running

    asyncio.run(run())

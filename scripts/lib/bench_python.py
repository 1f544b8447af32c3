"""The Python-binding half of row 7 of scripts/bench: the same posting and report
calls as the HTTP runs, made in-process through `accubooks` (run with the
interpreter of /work/main/.venv).

Usage: python bench_python.py '{"database_url": ..., "redis_url": ..., "secret": ...,
                                "seconds": 5, "sequential": 1000, "threads": 32}'
Prints one JSON line; its `token` lets the HTTP half post to the same organization.
"""

import json
import statistics
import sys
import threading
import time
from decimal import Decimal
from typing import Any

import accubooks
from accubooks.types import EntryInput, LineInput

LINES: list[LineInput] = [{"account": "1000", "debit": Decimal("1.00")}, {"account": "4000", "credit": Decimal("1.00")}]


def percentile(samples, p):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered))) - 1))]


def main() -> None:
    cfg = json.loads(sys.argv[1])
    seconds = float(cfg["seconds"])
    books = accubooks.AccuBooks(
        cfg["database_url"],
        accubooks_env="production",
        jwt_secret=cfg["secret"],
        session_secret=cfg["secret"] + "-session",
        frontend_url="https://books.example.com",
        redis_url=cfg["redis_url"],
    )
    out: dict[str, Any] = {}
    with books:
        if not books.wait_ready(15):
            raise SystemExit("the instance did not become ready")
        deadline = time.time() + 15
        while books.health()["dependencies"]["database"]["status"] != "connected":
            if time.time() > deadline:
                raise SystemExit("the database did not connect")
            time.sleep(0.05)
        org = books.register(f"py-{time.time_ns()}@example.com", "bench-password-0123456789", "Py Books")
        out["token"] = org.token()

        # One caller, one call at a time: the cost of a call.
        latencies = []
        started = time.perf_counter()
        for _ in range(int(cfg["sequential"])):
            t = time.perf_counter()
            org.post_entry("2026-01-31", LINES)
            latencies.append((time.perf_counter() - t) * 1000)
        elapsed = time.perf_counter() - started
        out["sequential"] = {"entries_per_s": len(latencies) / elapsed, "p50_ms": percentile(latencies, 50),
                             "p99_ms": percentile(latencies, 99)}

        # Many threads: the calls release the GIL, so the group commit can batch them.
        def poster(counts, lats, stop):
            n = 0
            while not stop.is_set():
                t = time.perf_counter()
                org.post_entry("2026-01-31", LINES)
                lats.append((time.perf_counter() - t) * 1000)
                n += 1
            counts.append(n)

        counts: list[int] = []
        lats: list[float] = []
        stop = threading.Event()
        threads = [threading.Thread(target=poster, args=(counts, lats, stop)) for _ in range(int(cfg["threads"]))]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        out["threads"] = {"entries_per_s": sum(counts) / elapsed, "p50_ms": percentile(lats, 50),
                          "p99_ms": percentile(lats, 99), "threads": len(threads)}

        # Batches of 100 entries from one caller.
        batch: list[EntryInput] = [{"date": "2026-01-31", "lines": LINES}] * 100
        n = 0
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            org.post_entries(batch)
            n += 1
        elapsed = time.perf_counter() - started
        out["batch"] = {"postings_per_s": n * 200 / elapsed}

        tb = []
        for _ in range(20):
            t = time.perf_counter()
            org.trial_balance()
            tb.append((time.perf_counter() - t) * 1000)
        out["trial_balance_ms"] = statistics.median(tb)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reading the journal back at scale (issue 24): the entries list and an
account's history, first page and a deep cursor, next to the trial balance,
in one run on one server.

Starts a private PostgreSQL 15 and one `examples/server` on it, registers an
organization, writes ENTRIES entries of two lines (cash 1000 against revenue
4000, dates spread over five years) straight into its tables as the
superuser (the API's batch posting would take minutes; the rows are the ones
the committer writes, balances and day movements included), then times
sequential requests and prints p50/p99 per request.

  python3 scripts/lib/bench_journal.py                      # 500,000 entries (1M postings), debug build
  python3 scripts/lib/bench_journal.py --release            # target/release/examples/server
  python3 scripts/lib/bench_journal.py --entries 100000 --rounds 50
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import services as sv  # noqa: E402

REPO = Path(__file__).resolve().parent.parent.parent


def cursor(key: list) -> str:
    """The list's cursor after an item whose sort key is `key` (the hex of its JSON)."""
    return json.dumps(key, separators=(",", ":")).encode().hex()


def timed(base: str, path: str, token: str, rounds: int) -> tuple[float, float, int]:
    """p50 and p99 in ms of `rounds` sequential GETs of `path`, and the items of the last."""
    times, items = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        status, body = sv.request("GET", base + path, token=token, timeout=60)
        times.append((time.perf_counter() - started) * 1000)
        assert status == 200, f"{path}: {status} {str(body)[:300]}"
        items = len(body) if isinstance(body, list) else len(body.get("accounts", body.get("rows", [body])))
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))], items


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--release", action="store_true")
    args = parser.parse_args()

    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    binary = target / ("release" if args.release else "debug") / "examples" / "server"
    log_dir = sv.make_dir("accubooks-bench-journal-")
    pg = sv.Postgres(log_dir=log_dir, fast=True)
    env = sv.server_env(sv.free_port(), pg.url, f"redis://127.0.0.1:{sv.free_port()}",
                        JOB_TRANSPORT="database", REGISTRATIONS_PER_HOUR="1000")
    server = sv.Server("server", binary, env, log_dir)
    server.start()
    server.wait_ready()
    token = sv.register(server.base)
    org = pg.psql("SELECT organization_id FROM accounts LIMIT 1", sv.APP_DATABASE).strip()

    started = time.perf_counter()
    pg.psql(f"""
        CREATE TEMP TABLE gen AS
            SELECT g AS n, DATE '2022-01-01' + (g * 1826 / {args.entries}) AS day
            FROM generate_series(1, {args.entries}) g;
        INSERT INTO journal_entries (id, organization_id, entry_date, memo)
            SELECT nextval(pg_get_serial_sequence('journal_entries', 'id')), '{org}', day, 'sale ' || n
            FROM gen ORDER BY n;
        INSERT INTO journal_lines (entry_id, line_no, account_id, amount, entry_date)
            SELECT e.id, x.line_no, a.id, x.sign * 100, e.entry_date
            FROM journal_entries e
            CROSS JOIN (VALUES (1, '1000', 1), (2, '4000', -1)) AS x(line_no, code, sign)
            JOIN accounts a ON a.organization_id = e.organization_id AND a.code = x.code
            WHERE e.organization_id = '{org}';
        INSERT INTO account_days (account_id, day, delta)
            SELECT account_id, entry_date, SUM(amount) FROM journal_lines GROUP BY 1, 2;
        UPDATE accounts a SET balance = s.total
            FROM (SELECT account_id, SUM(amount) AS total FROM journal_lines GROUP BY 1) s
            WHERE s.account_id = a.id;
        VACUUM ANALYZE journal_entries, journal_lines, account_days, accounts;
    """, sv.APP_DATABASE)
    sv.log(f"bench-journal: {args.entries:,} entries ({2 * args.entries:,} postings) written in "
           f"{time.perf_counter() - started:.0f} s")
    middle = pg.psql(f"SELECT entry_date || ',' || id FROM journal_entries "
                     f"ORDER BY entry_date, id OFFSET {args.entries // 2} LIMIT 1", sv.APP_DATABASE).strip()
    day, entry = middle.split(",")
    deep_entries = cursor([day, int(entry)])
    deep_lines = cursor([day, int(entry), 1])

    rows = [
        ("trial balance", "/api/reports/trial-balance?as_of=2026-12-31"),
        ("trial balance, as of 2024-06-30", "/api/reports/trial-balance?as_of=2024-06-30"),
        ("entries, first page (100)", "/api/journal-entries"),
        ("entries, deep cursor (middle)", f"/api/journal-entries?after={deep_entries}"),
        ("entries, newest first", "/api/journal-entries?order=newest"),
        ("entries of account 4000, deep cursor", f"/api/journal-entries?account=4000&after={deep_entries}"),
        ("account 1000 history, first page (100)", "/api/accounts/1000/entries"),
        ("account 1000 history, deep cursor (middle)", f"/api/accounts/1000/entries?after={deep_lines}"),
        ("account 1000 balance as of 2024-06-30", "/api/accounts/1000/balance?as_of=2024-06-30"),
        ("general ledger 2024, deep cursor",
         f"/api/reports/general-ledger?account=1000&from=2024-01-01&to=2024-12-31&after={deep_lines}"),
    ]
    build = binary.parent.parent.name
    print(f"| request ({args.entries:,} entries, {2 * args.entries:,} postings; {build} build) "
          "| p50 ms | p99 ms | items |")
    print("|---|---|---|---|")
    for name, path in rows:
        p50, p99, items = timed(server.base, path, token, args.rounds)
        print(f"| {name} | {p50:.1f} | {p99:.1f} | {items} |")
    server.stop()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        sv.cleanup()

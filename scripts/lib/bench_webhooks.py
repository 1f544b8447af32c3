"""Stripe webhook throughput, for `BENCH_ONLY=webhooks scripts/bench` (stdlib only).

A release `examples/server` on a private PostgreSQL 15 (fsync on) and Redis, with
Stripe configured against the fake Stripe of fake_stripe.py. BENCH_WEBHOOK_INVOICES
issued invoices each get a PaymentIntent; then every intent's signed
`payment_intent.succeeded` is delivered three times (Stripe's retries), shuffled,
by `loadgen post-file` at concurrency 32. Figures: signed events accepted per
second (replays included), the time until every payment is posted (the
`payments` jobs, read from `accubooks_jobs_total`), and, for scale, the same
server's rate of plain journal entries (`loadgen post-entries`) in the same run.
The books are checked afterwards: cash holds each payment once.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import re
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import services as sv
from bench_sections import write_section
from fake_stripe import KEY, WEBHOOK_SECRET, FakeStripe, sign
from services import log

HEADING = "## Stripe webhooks (issue 11)"
INVOICES = int(os.environ.get("BENCH_WEBHOOK_INVOICES", "1000"))
REPLAYS = 3
PRICE = Decimal("25.00")


def succeeded_jobs(base: str) -> int:
    """The payment jobs succeeded so far, from `accubooks_jobs_total`."""
    with urllib.request.urlopen(base + "/api/monitoring/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(r'accubooks_jobs_total\{outcome="succeeded",queue="payments"\} (\d+)', text)
    if match is None:
        raise RuntimeError("accubooks_jobs_total of the payments queue is missing from /metrics")
    return int(match.group(1))


def run(bin_dir: Path, log_dir: Path, loadgen) -> dict:
    """Measures the row; `loadgen(name, *args)` runs examples/loadgen and answers its JSON."""
    pg = sv.Postgres(log_dir=log_dir)
    redis = sv.Redis(log_dir=log_dir)
    stripe = FakeStripe()
    server = sv.Server("webhooks", bin_dir / "server", sv.server_env(
        sv.free_port(), pg.url, redis.url(), JOB_TRANSPORT="redis", STRIPE_SECRET_KEY=KEY,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_API_BASE=stripe.base), log_dir)
    server.start()
    server.wait_ready()
    server.wait_dependency("database", "connected")
    server.wait_dependency("stripe", "connected")
    token = sv.register(server.base)
    status, customer = sv.request("POST", server.base + "/api/customers", token=token, body={"name": "Globex"})
    assert status == 201, (status, customer)
    log(f"webhooks: {INVOICES} invoices with a PaymentIntent each")
    started = time.time()
    intents = []
    for _ in range(INVOICES):
        status, invoice = sv.request("POST", server.base + "/api/invoices", token=token, body={
            "customer_id": customer["id"], "due_date": "2030-01-01",
            "lines": [{"description": "Subscription", "quantity": "1", "unit_price": str(PRICE)}]})
        assert status == 201, (status, invoice)
        status, body = sv.request("POST", f"{server.base}/api/invoices/{invoice['id']}/issue", token=token)
        assert status == 200, (status, body)
        status, intent = sv.request("POST", f"{server.base}/api/invoices/{invoice['id']}/payment-intent",
                                    token=token)
        assert status == 201, (status, intent)
        intents.append(intent["payment_intent_id"])
    setup_s = time.time() - started

    lines = []
    for intent in intents:
        payload = stripe.succeeded(intent)
        line = json.dumps({"headers": {"Stripe-Signature": sign(payload)}, "body": payload.decode()})
        lines += [line] * REPLAYS
    random.shuffle(lines)
    events_file = log_dir / "webhook-events.jsonl"
    events_file.write_text("\n".join(lines) + "\n")

    before = succeeded_jobs(server.base)
    started = time.time()
    intake = loadgen("webhooks", "post-file", server.base, "/api/webhooks/stripe", str(events_file),
                     "--requests", len(lines), "--concurrency", 32)
    while succeeded_jobs(server.base) - before < INVOICES and time.time() < started + 600:
        time.sleep(0.05)
    posted_s = time.time() - started
    posted = succeeded_jobs(server.base) - before

    status, accounts = sv.request("GET", server.base + "/api/accounts", token=token)
    cash = next(Decimal(a["balance"]) for a in accounts if a["code"] == "1000")
    entries = loadgen("webhooks-entries", "post-entries", server.base, token, "--duration", 5,
                      "--concurrency", 32)
    server.stop()
    stripe.stop()
    return {"invoices": INVOICES, "deliveries": len(lines), "replays": REPLAYS, "setup_s": setup_s,
            "intake": intake, "posted": posted, "posted_s": posted_s, "cash": str(cash),
            "cash_expected": str(PRICE * INVOICES), "entries": entries}


def section(r: dict, when: str) -> str:
    intake, entries = r["intake"], r["entries"]
    ok = r["cash"] == r["cash_expected"] and r["posted"] == r["invoices"]
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(intake.get("statuses", {}).items()))
    return f"""{HEADING}

- Measured {when}; `BENCH_ONLY=webhooks scripts/bench` reruns it and rewrites only this section.
- A release `examples/server` on PostgreSQL 15 (fsync on) and Redis 7 (`JOB_TRANSPORT=redis`), Stripe
  configured against the fake Stripe of `scripts/lib/fake_stripe.py`. {r['invoices']:,} issued invoices
  each got a PaymentIntent ({r['setup_s']:.0f} s, untimed); then each intent's signed
  `payment_intent.succeeded` was delivered {r['replays']} times, shuffled, by
  `loadgen post-file $BASE /api/webhooks/stripe events.jsonl --requests {r['deliveries']:,} --concurrency 32`.

| figure | value |
|---|---|
| signed events accepted (HMAC verified, job recorded or found), replays included | {intake['rps']:,.0f} /s (p50 {intake['p50_ms']:.1f} ms, p99 {intake['p99_ms']:.1f} ms; {statuses}) |
| every payment posted (one job per event id), from the first delivery | {r['posted']:,} of {r['invoices']:,} in {r['posted_s']:.1f} s ({r['posted'] / max(r['posted_s'], 1e-9):,.0f} payments/s) |
| for scale: plain journal entries on the same server, same run | {entries['rps']:,.0f} /s |
| cash after the run (each payment once: {r['cash_expected']}) | {r['cash']} {"✅" if ok else "❌"} |
"""


def main_only(bin_dir: Path, log_dir: Path, out: str, loadgen) -> int:
    started = time.time()
    r = run(bin_dir, log_dir, loadgen)
    when = f"on {datetime.date.today().isoformat()} in {(time.time() - started) / 60:.1f} min"
    text = section(r, when)
    print(text)
    (log_dir / "webhooks.json").write_text(json.dumps(r, indent=2))
    if write_section(out, HEADING, text):
        log(f"wrote the webhook section of {out}")
    return 0 if r["cash"] == r["cash_expected"] else 1

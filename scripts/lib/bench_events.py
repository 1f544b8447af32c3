"""Outgoing webhooks' throughput and delay, for `BENCH_ONLY=events scripts/bench`
(standard library only).

A release `examples/server` on a private PostgreSQL 15 (fsync on) and Redis 7
(`JOB_TRANSPORT=redis`, `WEBHOOK_ALLOW_PRIVATE=1`), and a fast receiver on
loopback (asyncio, keep-alive, checking each signature with the standard
library's HMAC as a Standard Webhooks receiver does, answering 204 at once).
One endpoint subscribes to `entry.posted`. Three figures, in one run:

- the posting rate of plain journal entries with no endpoint (`loadgen
  post-entries`, 5 s, concurrency 32): the scale the others are read against;
- throughput: BENCH_EVENTS entries posted as fast as they go with the endpoint
  subscribed; events delivered per second from the first delivery to the last,
  and the time until the last is delivered;
- delay: entries posted at a steady BENCH_EVENTS_RATE per second for 10 s; the
  time from each event's commit (its `timestamp`) to its arrival, p50 and p99.

Every event must arrive, verified, exactly once per `webhook-id`.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import json
import os
import statistics
import threading
import time
from pathlib import Path

import services as sv
from bench_sections import write_section
from services import log

HEADING = "## Outgoing webhooks (issue 25)"
EVENTS = int(os.environ.get("BENCH_EVENTS", "20000"))
RATE = int(os.environ.get("BENCH_EVENTS_RATE", "200"))


class Receiver:
    """An HTTP/1.1 receiver on loopback that verifies each delivery and keeps
    (webhook-id, arrival time, event timestamp); counts what it refused."""

    def __init__(self) -> None:
        self.port = sv.free_port()
        self.secret = b""
        self.arrivals: dict[str, list[float]] = {}
        self.commits: dict[str, float] = {}
        self.refused = 0
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            await asyncio.start_server(self._client, "127.0.0.1", self.port, backlog=1024)
            ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self._received(headers, body)
                writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            writer.close()
        except asyncio.CancelledError:
            # Stopped by `stop`: ended here, so asyncio (3.11) does not log the
            # cancelled handler of each keep-alive connection as an error.
            writer.close()

    def _received(self, headers: dict, body: bytes) -> None:
        now = time.time()
        msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
        signed = f"{msg_id}.{stamp}.".encode() + body
        expected = base64.b64encode(hmac.new(self.secret, signed, hashlib.sha256).digest()).decode()
        offered = [s.split(",", 1)[-1] for s in headers.get("webhook-signature", "").split()]
        if not any(hmac.compare_digest(expected, s) for s in offered):
            with self.lock:
                self.refused += 1
            return
        event = json.loads(body)
        commit = datetime.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
        with self.lock:
            self.arrivals.setdefault(msg_id, []).append(now)
            self.commits[msg_id] = commit

    def delivered(self) -> int:
        with self.lock:
            return len(self.arrivals)

    def reset(self) -> None:
        with self.lock:
            self.arrivals.clear()
            self.commits.clear()

    def wait_for(self, count: int, limit: float) -> float:
        started = time.time()
        while self.delivered() < count and time.time() < started + limit:
            time.sleep(0.05)
        return time.time() - started

    def stop(self) -> None:
        async def shutdown() -> None:
            current = asyncio.current_task()
            for task in asyncio.all_tasks():
                if task is not current:
                    task.cancel()
            await asyncio.sleep(0.05)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def run(bin_dir: Path, log_dir: Path, loadgen) -> dict:
    """Measures the section; `loadgen(name, *args)` runs examples/loadgen and answers its JSON."""
    pg = sv.Postgres(log_dir=log_dir)
    redis = sv.Redis(log_dir=log_dir)
    server = sv.Server("events", bin_dir / "server", sv.server_env(
        sv.free_port(), pg.url, redis.url(), JOB_TRANSPORT="redis", WEBHOOK_ALLOW_PRIVATE="1"), log_dir)
    server.start()
    server.wait_ready()
    server.wait_dependency("database", "connected")
    token = sv.register(server.base)
    posting = loadgen("events-posting", "post-entries", server.base, token, "--duration", 5,
                      "--concurrency", 32)

    receiver = Receiver()
    status, endpoint = sv.request("POST", server.base + "/api/webhook-endpoints", token=token,
                                  body={"url": receiver.url, "events": ["entry.posted"]})
    assert status == 201, (status, endpoint)
    receiver.secret = base64.b64decode(endpoint["secret"].removeprefix("whsec_"))

    log(f"events: {EVENTS} entries as fast as they go, delivered to one endpoint")
    started = time.time()
    burst = loadgen("events-burst", "post-entries", server.base, token, "--requests", EVENTS,
                    "--concurrency", 32)
    posted = burst["ok"]
    waited = receiver.wait_for(posted, 600)
    with receiver.lock:
        firsts = [times[0] for times in receiver.arrivals.values()]
        repeats = sum(len(times) - 1 for times in receiver.arrivals.values())
    throughput = {
        "posted": posted, "delivered": len(firsts), "repeats": repeats, "refused": receiver.refused,
        "posting_rps": burst["rps"], "all_delivered_after_s": time.time() - started,
        "delivered_per_s": len(firsts) / max(max(firsts) - min(firsts), 1e-9) if firsts else 0.0,
        "drained_after_posting_s": waited,
    }

    receiver.reset()
    concurrency, interval_ms = 4, int(4000 / max(RATE, 1))
    log(f"events: {RATE} entries/s for 10 s, the delay from commit to delivery")
    steady = loadgen("events-steady", "post-entries", server.base, token, "--duration", 10,
                     "--concurrency", concurrency, "--interval-ms", interval_ms)
    receiver.wait_for(steady["ok"], 120)
    with receiver.lock:
        delays = [(times[0] - receiver.commits[i]) * 1000 for i, times in receiver.arrivals.items()]
    delay = {
        "rate": steady["rps"], "events": len(delays), "expected": steady["ok"],
        "p50_ms": statistics.median(delays) if delays else 0.0,
        "p99_ms": percentile(delays, 0.99), "max_ms": max(delays, default=0.0),
    }
    receiver.stop()
    server.stop()
    return {"posting": posting, "throughput": throughput, "delay": delay}


def section(r: dict, when: str) -> str:
    p, t, d = r["posting"], r["throughput"], r["delay"]
    ok = (t["delivered"] == t["posted"] and t["repeats"] == 0 and t["refused"] == 0
          and d["events"] == d["expected"])
    once = f"{t['delivered']:,} of {t['posted']:,}; repeats {t['repeats']}, refused {t['refused']}"
    drained = f"{t['all_delivered_after_s']:.1f} s ({t['drained_after_posting_s']:.1f} s after the last post)"
    delays = f"{d['p50_ms']:,.0f} / {d['p99_ms']:,.0f} / {d['max_ms']:,.0f} ms"
    return f"""{HEADING}

- Measured {when}; `BENCH_ONLY=events scripts/bench` reruns it and rewrites only this section.
- A release `examples/server` on PostgreSQL 15 (fsync on) and Redis 7 (`JOB_TRANSPORT=redis`,
  `WEBHOOK_ALLOW_PRIVATE=1`); one endpoint subscribed to `entry.posted`, pointing at an asyncio
  receiver on loopback that checks every Standard Webhooks signature (HMAC-SHA256) and answers 204
  (`scripts/lib/bench_events.py`). One two-line journal entry is one event.

| figure | value |
|---|---|
| for scale: journal entries posted, no endpoint (`loadgen post-entries`, 5 s, c=32) | {p['rps']:,.0f} /s |
| {t['posted']:,} entries posted as fast as they go (c=32), with the endpoint | {t['posting_rps']:,.0f} /s |
| events delivered, first delivery to last | {t['delivered_per_s']:,.0f} /s |
| every event delivered, from the start of posting | {drained} |
| delivered once each, signature verified ({once}) | {"✅" if ok else "❌"} |
| delay from commit to delivery at {d['rate']:,.0f} entries/s (p50 / p99 / max) | {delays} |
"""


def main_only(bin_dir: Path, log_dir: Path, out: str, loadgen) -> int:
    started = time.time()
    r = run(bin_dir, log_dir, loadgen)
    when = f"on {datetime.date.today().isoformat()} in {(time.time() - started) / 60:.1f} min"
    text = section(r, when)
    print(text)
    (log_dir / "events.json").write_text(json.dumps(r, indent=2))
    if write_section(out, HEADING, text):
        log(f"wrote the events section of {out}")
    t = r["throughput"]
    return 0 if t["delivered"] == t["posted"] and t["repeats"] == 0 and t["refused"] == 0 else 1

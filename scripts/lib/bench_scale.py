"""Scale-out figures (row 10), for `BENCH_ONLY=scale scripts/bench` and the full run
(Python 3 standard library only).

Three parts, one after the other, each on private servers of its own:

1. Posting throughput: `loadgen post-entries` (c=32) through HAProxy with the shipped
   deploy/haproxy/haproxy.cfg in front of 1, 2 and 3 release `examples/server`
   instances on one PostgreSQL 15 (fsync on), and to one instance directly (no HAProxy),
   interleaved by bench.py's `interleaved` (the median of BENCH_ROUNDS rounds of
   BENCH_SECONDS each). Three HAProxy processes run side by side (in front of a1; a1
   and a2; a1, a2 and a3), so nothing restarts between rounds. The instances run
   `JOB_TRANSPORT=database` with REDIS_URL at a closed port, as in
   tests/integration/scale.rs. Two short runs then count the entries per write
   transaction (PostgreSQL's transaction ids), direct and through the three-instance
   HAProxy, and read each instance's share of the latter from its own /metrics.
2. PostgreSQL failover: a primary and a synchronous streaming standby, two instances
   behind HAProxy with `DATABASE_URL=postgres://accubooks@P1,P2/accubooks?
   target_session_attrs=read-write`; under posting load (c=16, an Idempotency-Key on
   each entry) the primary is SIGKILLed and the standby promoted by hand (as a failover
   manager would). Figures: the promotion's time, the first 201 after it (from the
   kill), each instance's /health, and the acknowledged entries found on the promoted
   standby (a count: every 201 must be there; a commit whose answer the kill cut off
   may be there too).
3. Redis Cluster (3 masters with a replica each; `REDIS_MODE=cluster
   REDIS_WAIT_REPLICAS=1 JOB_TRANSPORT=redis`): a trial-balance report job is asked for
   through the HTTP API every 100 ms while the master serving
   `{accubooks:report-generation}:jobs` is SIGKILLed. Figures: the time until its
   replica serves the slot, and until the first job asked for after the kill
   succeeded; every job asked for must succeed, each attempted once.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import statistics
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import services as sv
from bench_sections import write_section
from services import log

HEADING = "## Scale-out: instances behind HAProxy, failovers (row 10)"
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONCURRENCY = 32
FAILOVER_CONCURRENCY = 16
STREAM_KEY = "{accubooks:report-generation}:jobs"
JOB_EVERY_S = 0.1
# Every instance behind HAProxy runs like this (README, "Running several instances").
PROXIED = {"TRUSTED_PROXIES": "127.0.0.1", "SHUTDOWN_DELAY_MS": "2000"}


# ------------------------------------------------------------------ helpers

def now_ms() -> float:
    return time.time() * 1000


def closed_redis() -> str:
    """A Redis URL nobody listens on (the throughput and PostgreSQL parts run
    `JOB_TRANSPORT=database`, so no Redis is needed)."""
    return f"redis://127.0.0.1:{sv.free_port()}"


def start_instance(name: str, bin_dir: Path, log_dir: Path, database_url: str, redis_url: str,
                   **extra: str) -> sv.Server:
    """A release `examples/server` configured to run behind HAProxy, ready and
    connected to its database."""
    env = sv.server_env(sv.free_port(), database_url, redis_url, **PROXIED, **extra)
    server = sv.Server(name, bin_dir / "server", env, log_dir)
    server.start()
    server.wait_ready()
    server.wait_dependency("database", "connected")
    return server


def served(server: sv.Server, route: str = "/api/journal-entries") -> float:
    """Requests `server` answered on `route`, from its own /metrics (scraped
    directly: /metrics refuses forwarded requests)."""
    with urllib.request.urlopen(server.base + "/api/monitoring/metrics", timeout=10) as response:
        text = response.read().decode()
    needle = f'route="{route}"'
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("accubooks_http_request_duration_seconds_count{") and needle in line)


def with_xids(pg: sv.Postgres, measure):
    """Runs `measure()`; answers its result and the transaction ids PostgreSQL
    handed out meanwhile (write transactions: reads take none), less the one
    the second `txid_current()` takes itself."""
    xid = "SELECT txid_current()"
    first = int(pg.psql(xid, sv.APP_DATABASE).strip())
    result = measure()
    return result, int(pg.psql(xid, sv.APP_DATABASE).strip()) - first - 1


def first_at(transitions, after_ms: float, predicate):
    """ms from `after_ms` to the first transition at or after it whose state
    matches `predicate` (None when there is none)."""
    for t in transitions:
        if t["t"] >= after_ms and predicate(t["state"]):
            return t["t"] - after_ms
    return None


def state_at(transitions, at_ms: float):
    """The state a timeline was in at `at_ms`."""
    state = None
    for t in transitions:
        if t["t"] > at_ms:
            break
        state = t["state"]
    return state


def ms(value) -> str:
    return "n/a" if value is None else f"{value:,.0f} ms"


def ok(passed: bool) -> str:
    return "✅" if passed else "❌"


def epoch_s(rfc3339: str) -> float:
    return datetime.datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


# ------------------------------------------------------------------ 1. throughput

def throughput(bin_dir: Path, log_dir: Path, pg: sv.Postgres, loadgen, interleaved) -> dict:
    """Posting through HAProxy in front of 1, 2 and 3 instances, and to one
    instance directly, interleaved on one PostgreSQL."""
    closed = closed_redis()
    servers = [start_instance(f"scale-a{i}", bin_dir, log_dir, pg.url, closed, JOB_TRANSPORT="database")
               for i in (1, 2, 3)]
    proxies = [sv.Haproxy([s.port for s in servers[:n]], log_dir) for n in (1, 2, 3)]
    for proxy in proxies:
        proxy.wait_up()
    token = sv.register(servers[0].base)
    specs = [("direct", servers[0], ("post-entries", servers[0].base, token, "--concurrency", CONCURRENCY))]
    for n, proxy in enumerate(proxies, 1):
        specs.append((f"haproxy-{n}", servers[0],
                      ("post-entries", proxy.base, token, "--concurrency", CONCURRENCY)))
    log(f"row 10: posting direct and through HAProxy to 1-3 instances ({ROUNDS} rounds × {SECONDS:g} s)")
    runs = interleaved("scale", specs, "scale-out posting")
    # How leastconn spread the entries over three instances, and how many
    # entries share a write transaction (each instance groups the postings it
    # has in flight into one commit), direct and through three instances.
    direct_run, direct_xids = with_xids(pg, lambda: loadgen(
        "scale-commits-direct", "post-entries", servers[0].base, token, "--duration", 2,
        "--concurrency", CONCURRENCY))
    before = [served(s) for s in servers]
    share_run, share_xids = with_xids(pg, lambda: loadgen(
        "scale-shares", "post-entries", proxies[2].base, token, "--duration", 2, "--concurrency", CONCURRENCY))
    shares = [served(s) - b for s, b in zip(servers, before, strict=False)]
    for s in servers:
        s.stop()
    for proxy in proxies:
        proxy.kill()
    return {"runs": runs, "shares": shares, "share_run": share_run,
            "entries_per_xact": {"direct": direct_run["ok"] / max(direct_xids, 1),
                                 "haproxy-3": share_run["ok"] / max(share_xids, 1)}}


# ------------------------------------------------------------------ 2. PostgreSQL failover

def postgres_failover(bin_dir: Path, log_dir: Path, background, finish) -> dict:
    """Kills the primary under posting load through HAProxy (two instances),
    promotes the synchronous standby, and times the first acknowledged write
    on it."""
    primary = sv.Postgres(log_dir=log_dir, prefix="accubooks-primary-")
    standby = sv.Postgres(log_dir=log_dir, standby_of=primary, prefix="accubooks-standby-")
    # A commit is acknowledged once the standby has it: promoting it loses none.
    primary.make_standbys_synchronous()
    url = (f"postgres://{sv.APP_ROLE}@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/{sv.APP_DATABASE}"
           "?target_session_attrs=read-write")
    servers = [start_instance(f"failover-a{i}", bin_dir, log_dir, url, closed_redis(),
                              JOB_TRANSPORT="database") for i in (1, 2)]
    proxy = sv.Haproxy([s.port for s in servers], log_dir)
    proxy.wait_up()
    token = sv.register(proxy.base)
    count = "SELECT count(*) FROM journal_entries"
    entries_before = int(primary.psql(count, sv.APP_DATABASE).strip())

    log(f"row 10: PostgreSQL failover under posting through HAProxy (2 instances, c={FAILOVER_CONCURRENCY})")
    load = background("post-entries", proxy.base, token, "--idempotency", "--duration", 300,
                      "--concurrency", FAILOVER_CONCURRENCY, "--timeline", "--timeout-ms", 5000)
    watches = [background("watch", s.base, "/api/monitoring/health", "--duration", 300, "--interval-ms", 10,
                          "--field", "dependencies.database.status", "--timeout-ms", 2000) for s in servers]
    time.sleep(3)
    t_kill = now_ms()
    primary.kill()
    t_dead = now_ms()
    standby.promote()  # pg_promote(wait => true): returns once it accepts writes
    t_promoted = now_ms()
    time.sleep(3)
    for p in (load, *watches):
        p.terminate()
    posting = finish("scale-failover-posting", load)
    health = [finish(f"scale-failover-health-{s.name}", w) for s, w in zip(servers, watches, strict=False)]
    entries_after = int(standby.psql(count, sv.APP_DATABASE).strip())
    for s in servers:
        s.stop()
    proxy.kill()
    standby.close()
    primary.close()

    timeline = posting.get("timeline", [])
    acknowledged = posting.get("statuses", {}).get("201", 0)
    return {
        "kill_ms": t_dead - t_kill,
        "promoted_ms": t_promoted - t_kill,
        "pg_promote_ms": t_promoted - t_dead,
        "first_503_ms": first_at(timeline, t_kill, lambda s: s == "503"),
        # An answer just after the kill may still come from the old primary: the
        # first 201 that counts is one after the promotion. (When the timeline
        # still showed 201 at the promotion, that first one cannot be told apart.)
        "first_201_ms": (first_at(timeline, t_promoted, lambda s: s == "201")
                         if state_at(timeline, t_promoted) != "201" else None),
        "state_at_promotion": state_at(timeline, t_promoted),
        "health": [{"name": s.name,
                    "down_ms": first_at(h["transitions"], t_kill, lambda v: not v.endswith(":connected")),
                    "up_ms": first_at(h["transitions"], t_promoted, lambda v: v.endswith(":connected"))}
                   for s, h in zip(servers, health, strict=False)],
        "posting": {k: v for k, v in posting.items() if k != "timeline"},
        "acknowledged": acknowledged,
        "on_standby": entries_after - entries_before,
        "others": sum(v for k, v in posting.get("statuses", {}).items() if k not in ("201", "503"))
                  + sum(posting.get("errors", {}).values()),
        "count_500": posting.get("statuses", {}).get("500", 0),
    }


# ------------------------------------------------------------------ 3. Redis Cluster failover

class ReportJobs(threading.Thread):
    """Asks for a trial-balance report job every JOB_EVERY_S through the HTTP
    API (while `asking` is set) and polls the pending ones until they have
    succeeded; each job's `done` is its `finished_at` (server clock, same
    machine)."""

    def __init__(self, base: str, token: str):
        super().__init__(daemon=True)
        self.base, self.token = base, token
        self.jobs: list[dict] = []
        self.refused: list = []
        self.asking = threading.Event()
        self.asking.set()
        self.stop = threading.Event()

    def pending(self) -> list[dict]:
        return [j for j in list(self.jobs) if j["done"] is None]

    def ask(self, n: int) -> None:
        asked = time.time()
        status, body = sv.request("POST", self.base + "/api/report-jobs", token=self.token,
                                  headers={"Idempotency-Key": f"scale-report-{n}"},
                                  body={"report": "trial-balance", "params": {"as_of": "2026-12-31"},
                                        "format": "json"})
        if status == 202 and isinstance(body, dict):
            self.jobs.append({"id": body["id"], "job_id": body["job_id"], "asked": asked, "done": None,
                              "status": body.get("status")})
        else:
            self.refused.append(status)

    def poll(self) -> None:
        for job in self.pending():
            status, body = sv.request("GET", f"{self.base}/api/report-jobs/{job['id']}", token=self.token)
            if status == 200 and isinstance(body, dict):
                job["status"] = body.get("status")
                if job["status"] == "succeeded":
                    job["done"] = epoch_s(body["finished_at"]) if body.get("finished_at") else time.time()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            started = time.time()
            if self.asking.is_set():
                n += 1
                self.ask(n)
            self.poll()
            self.stop.wait(max(0.0, JOB_EVERY_S - (time.time() - started)))


def redis_failover(bin_dir: Path, log_dir: Path, pg: sv.Postgres, background, finish) -> dict:
    """SIGKILLs the Redis Cluster master of the report queue's stream while
    report jobs are asked for, and times the replica's takeover and the first
    job asked for after the kill to succeed."""
    cluster = sv.RedisCluster(3, 1, log_dir)
    server = start_instance("cluster-a1", bin_dir, log_dir, pg.create_app_database("cluster"), cluster.urls(),
                            JOB_TRANSPORT="redis", REDIS_MODE="cluster", REDIS_WAIT_REPLICAS="1")
    server.wait_dependency("redis", "connected", timeout=30)
    server.wait_dependency("jobQueues", "healthy", timeout=30)
    token = sv.register(server.base)
    master = cluster.master_of(STREAM_KEY)
    if master is None:
        raise RuntimeError(f"no master serves {STREAM_KEY}")

    log("row 10: Redis Cluster master failover under report jobs")
    jobs = ReportJobs(server.base, token)
    jobs.start()
    watch = background("watch", server.base, "/api/monitoring/health", "--duration", 300, "--interval-ms", 10,
                       "--field", "dependencies.redis.status", "--timeout-ms", 2000)
    time.sleep(2)
    t_kill = time.time()
    master.kill()
    serving_s = None
    try:
        cluster.wait_failover(STREAM_KEY, master)
        serving_s = time.time() - t_kill
    except RuntimeError as e:
        log(f"row 10: {e}")
    time.sleep(3)
    jobs.asking.clear()
    deadline = time.time() + 60
    while jobs.pending() and time.time() < deadline:
        time.sleep(0.1)
    jobs.stop.set()
    jobs.join(timeout=30)
    watch.terminate()
    health = finish("scale-cluster-health", watch)
    attempts = []
    for job in jobs.jobs:
        status, body = sv.request("GET", f"{server.base}/api/jobs/{job['job_id']}", token=token)
        attempts.append(body.get("attempts") if status == 200 and isinstance(body, dict) else None)
    server.stop()
    for node in cluster.nodes:
        node.kill()

    kill_ms = t_kill * 1000
    redis_down_ms = first_at(health["transitions"], kill_ms, lambda v: not v.endswith(":connected"))
    redis_up_ms = None
    if redis_down_ms is not None:
        back = first_at(health["transitions"], kill_ms + redis_down_ms, lambda v: v.endswith(":connected"))
        redis_up_ms = None if back is None else redis_down_ms + back
    before = [j for j in jobs.jobs if j["asked"] < t_kill and j["done"] is not None]
    after = [j for j in jobs.jobs if j["asked"] >= t_kill]
    after_done = [j for j in after if j["done"] is not None]
    return {
        "asked": len(jobs.jobs),
        "asked_after_kill": len(after),
        "refused": len(jobs.refused),
        "succeeded": sum(j["done"] is not None for j in jobs.jobs),
        "attempted_once": sum(a == 1 for a in attempts),
        "serving_ms": None if serving_s is None else 1000 * serving_s,
        "latency_before_ms": statistics.median(1000 * (j["done"] - j["asked"]) for j in before) if before else None,
        "first_after_done_ms": min(1000 * (j["done"] - t_kill) for j in after_done) if after_done else None,
        "first_asked_ms": 1000 * (after[0]["asked"] - t_kill) if after else None,
        "slowest_after_ms": max(1000 * (j["done"] - j["asked"]) for j in after_done) if after_done else None,
        "redis_down_ms": redis_down_ms,
        "redis_up_ms": redis_up_ms,
    }


# ------------------------------------------------------------------ the row

def run(bin_dir: Path, log_dir: Path, loadgen, interleaved, background, finish) -> dict:
    """Measures the three parts; the callables are bench.py's (`loadgen`,
    `interleaved`, and `background`/`finish` for loadgen runs stopped by SIGTERM)."""
    if shutil.which("haproxy") is None:
        raise RuntimeError("haproxy is missing (Debian's package haproxy)")
    started = time.time()
    pg = sv.Postgres(log_dir=log_dir)
    out: dict[str, Any] = {"throughput": throughput(bin_dir, log_dir, pg, loadgen, interleaved)}
    out["postgres"] = postgres_failover(bin_dir, log_dir, background, finish)
    out["redis"] = redis_failover(bin_dir, log_dir, pg, background, finish)
    pg.close()
    out["took_s"] = time.time() - started
    return out


def cell(r: dict) -> str:
    return f"{r['ok_rps']:,.0f} entries/s (p99 {r['p99_ms']:.1f} ms)"


def section(r: dict, when: str) -> str:
    """The markdown section of row 10, heading included."""
    t = r["throughput"]["runs"]
    direct = t["direct"]
    proxied = [t[f"haproxy-{n}"] for n in (1, 2, 3)]
    shares = r["throughput"]["shares"]
    per_xact = r["throughput"]["entries_per_xact"]
    total = sum(shares) or 1
    share_text = " / ".join(f"{100 * s / total:.0f} %" for s in shares)
    ratios = ", ".join(f"{n}: {100 * p['ok_rps'] / direct['ok_rps']:.0f} %" for n, p in enumerate(proxied, 1))
    spread = "; ".join(f"{k} {v['spread'][0]:,.0f}–{v['spread'][1]:,.0f}"
                       for k, v in t.items())
    low, high = t["direct"]["spread"], t["haproxy-1"]["spread"]
    if low[0] <= high[1] and high[0] <= low[1]:
        hop = ("Direct and one instance behind HAProxy overlap: in this run HAProxy's hop cost less than "
               "the spread between rounds (posting waits mostly on PostgreSQL's commits).")
    else:
        hop = (f"One instance behind HAProxy made {100 * proxied[0]['ok_rps'] / direct['ok_rps']:.0f} % of "
               f"the direct rate: HAProxy's own cost here.")
    rows = [
        f"| 10 | posting through HAProxy (`deploy/haproxy/haproxy.cfg`, leastconn) to 1, 2 and 3 instances on one "
        f"PostgreSQL, c={CONCURRENCY}, median of {ROUNDS} × {SECONDS:g} s, interleaved | "
        + "; ".join(f"{n} instance{'s' if n > 1 else ''}: {cell(p)}" for n, p in enumerate(proxied, 1))
        + f" | 1 instance direct (no HAProxy): {cell(direct)} | of direct: {ratios}; "
        f"3 instances' shares {share_text}; entries per write transaction: direct {per_xact['direct']:.1f}, "
        f"3 instances {per_xact['haproxy-3']:.1f} |"
    ]
    p = r["postgres"]
    health = "; ".join(f"{h['name']} unavailable {ms(h['down_ms'])} after the kill, connected "
                       f"{ms(h['up_ms'])} after the promotion" for h in p["health"])
    kept = p["on_standby"] >= p["acknowledged"]
    passed = kept and p["count_500"] == 0 and p["others"] == 0 and p["first_201_ms"] is not None
    first_201 = (f"first 201 {ms(p['first_201_ms'] + p['promoted_ms'])} after the kill "
                 f"({ms(p['first_201_ms'])} after the promotion)" if p["first_201_ms"] is not None
                 else f"first 201 after the promotion not seen (state then: {p['state_at_promotion']})")
    statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(p["posting"].get("statuses", {}).items()))
    errors = ", ".join(f"{k}: {v:,}" for k, v in sorted(p["posting"].get("errors", {}).items()))
    rows.append(
        f"| 10 | PostgreSQL primary SIGKILLed under posting through HAProxy (2 instances, c={FAILOVER_CONCURRENCY}, "
        f"an `Idempotency-Key` each), its synchronous standby promoted | {first_201}; promotion done "
        f"{ms(p['promoted_ms'])} after the kill (`pg_promote` {ms(p['pg_promote_ms'])}); first 503 "
        f"{ms(p['first_503_ms'])} after the kill; statuses {statuses}{'; errors ' + errors if errors else ''} | "
        f"/health database: {health} | {p['acknowledged']:,} acknowledged, {p['on_standby']:,} entries on the "
        f"promoted standby; {p['count_500']} × 500, {p['others']} other {ok(passed)} |")
    c = r["redis"]
    all_ok = (c["succeeded"] == c["asked"] == c["attempted_once"] and c["refused"] == 0
              and c["first_after_done_ms"] is not None)
    if c["redis_down_ms"] is None:
        redis_health = "redis stayed `connected`"
    else:
        redis_health = (f"redis unavailable {ms(c['redis_down_ms'])} after the kill, connected again "
                        f"{ms(c['redis_up_ms'])} after it")
    rows.append(
        f"| 10 | Redis Cluster (3 masters, 1 replica each, `REDIS_WAIT_REPLICAS=1`): the master serving "
        f"`{STREAM_KEY}` SIGKILLed while a report job is asked for every {1000 * JOB_EVERY_S:.0f} ms | "
        f"replica serving the slot {ms(c['serving_ms'])} after the kill; the first job asked for after the kill "
        f"succeeded {ms(c['first_after_done_ms'])} after the kill (the first was asked at "
        f"{ms(c['first_asked_ms'])}; the slowest of the {c['asked_after_kill']} asked after it waited "
        f"{ms(c['slowest_after_ms'])}) | before the kill: median {ms(c['latency_before_ms'])} from asking to "
        f"`succeeded`; /health: {redis_health} | {c['succeeded']} of {c['asked']} jobs succeeded, "
        f"{c['attempted_once']} attempted once, {c['refused']} asks refused {ok(all_ok)} |")
    table = "\n".join(rows)
    return f"""{HEADING}

- Measured {when}.
- `BENCH_ONLY=scale scripts/bench` reruns it (about 2 min) and rewrites only this section.
- Release `examples/server` instances (`TRUSTED_PROXIES=127.0.0.1 SHUTDOWN_DELAY_MS=2000`), HAProxy
  {haproxy_version()} with `deploy/haproxy/haproxy.cfg` as shipped, private PostgreSQL 15 (fsync on) and
  Redis 7, all on the same 2 cores as the client. **On 2 cores the 1/2/3-instance figures show the shape,
  not a speed-up:** HAProxy adds a hop (and its own CPU) to every request, and more instances share the
  same two cores and the one PostgreSQL, whose commits bound posting anyway. Each instance's committer
  writes the postings it has in flight as one transaction (group commit), so the same 32 clients split
  over more instances make more, smaller transactions, and all of them lock the same two account rows
  (one organization posting to 1000 and 4000, as in row 5), so the instances' groups wait for each
  other's flush: the entries per write transaction (transaction ids PostgreSQL handed out, over a 2 s
  run each) show it. The scale-out gain is availability (the rolling restart of
  `tests/integration/scale.rs`, the failovers below), and throughput only once instances have cores
  of their own and the load spreads over more accounts and organizations.
- Throughput: three instances on one PostgreSQL (`JOB_TRANSPORT=database`, Redis unused) and three
  HAProxy processes side by side (in front of a1; a1, a2; a1, a2, a3), the four targets run interleaved
  ({ROUNDS} rounds after a 1 s warm-up each, the median round reported). The rounds ranged, in req/s:
  {spread}.
  {hop}
  The shares are each instance's own `accubooks_http_request_duration_seconds_count` of
  `/api/journal-entries` over a further 2 s run through the three-instance HAProxy.
- PostgreSQL failover: `DATABASE_URL=postgres://accubooks@127.0.0.1:$PRIMARY,127.0.0.1:$STANDBY/accubooks?target_session_attrs=read-write`,
  the standby a `pg_basebackup -R` streaming standby made synchronous (`synchronous_standby_names = '*'`);
  the primary is SIGKILLed 3 s into the load and the standby promoted at once with
  `SELECT pg_promote(true, 60)` (by hand, as a failover manager would). Times are from the client
  (`loadgen --timeline`, through HAProxy) and from each instance's /health (polled every 10 ms). The
  entries check counts rows: every acknowledged entry must be on the promoted standby; more may be,
  when the kill cut off the answer to a commit the standby already had (its client saw a 503 or an error
  and would retry with its `Idempotency-Key`).
- Redis Cluster failover: `REDIS_MODE=cluster REDIS_URL=<the six nodes> REDIS_WAIT_REPLICAS=1
  JOB_TRANSPORT=redis`; `POST /api/report-jobs` (trial balance, JSON) every 100 ms, each job polled with
  `GET /api/report-jobs/{{id}}` until `succeeded` (its `finished_at` is the time taken); the slot's master
  is found with `CLUSTER KEYSLOT`/`CLUSTER NODES` and SIGKILLed 2 s in, the takeover timed as another
  node sees it; asking goes on for 3 s after it. Attempts are read from `GET /api/jobs/{{job_id}}`.

```sh
loadgen post-entries http://127.0.0.1:$PORT $TOKEN --duration {SECONDS:g} --concurrency {CONCURRENCY}      # direct, and via $HAPROXY_1..3
loadgen post-entries $HAPROXY $TOKEN --idempotency --duration 300 --concurrency {FAILOVER_CONCURRENCY} --timeline --timeout-ms 5000   # until 3 s after the promotion
loadgen watch http://127.0.0.1:$PORT /api/monitoring/health --field dependencies.database.status --interval-ms 10
```

| # | comparison | AccuBooks | reference | ratio / aim |
|---|---|---|---|---|
{table}
"""


def haproxy_version() -> str:
    import subprocess

    try:
        out = subprocess.run(["haproxy", "-v"], capture_output=True, text=True, timeout=10).stdout
        return out.split()[2]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def main_only(bin_dir: Path, log_dir: Path, out: str, loadgen, interleaved, background, finish) -> int:
    """`BENCH_ONLY=scale`: row 10 alone; replaces only its section of `out`."""
    for name in ("server", "loadgen"):
        if not (bin_dir / name).exists():
            raise SystemExit(f"missing {bin_dir / name}: run BENCH_ONLY=scale scripts/bench (it builds it)")
    started = time.time()
    with open("/proc/loadavg") as f:
        load_at_start = " ".join(f.read().split()[:3])
    r = run(bin_dir, log_dir, loadgen, interleaved, background, finish)
    when = (f"alone (`BENCH_ONLY=scale`) on {datetime.date.today().isoformat()} in "
            f"{(time.time() - started) / 60:.1f} min; load average at start {load_at_start} (the machine is shared)")
    text = section(r, when)
    print(text)
    (log_dir / "scale.json").write_text(json.dumps(r, indent=2))
    if write_section(out, HEADING, text):
        log(f"wrote the row-10 section of {out}")
    return 0

"""The whole-server benchmark behind scripts/bench (Python 3 standard library only).

Starts a private PostgreSQL 15 and Redis, the AccuBooks servers on axum and warp,
and bare axum (hello_axum), measures every comparison of BENCHMARKS.md in one run
with examples/loadgen, prints the markdown table and writes BENCHMARKS.md.

Environment:
  BENCH_SECONDS    length of each measured load run (default 5)
  BENCH_ROUNDS     rounds of the interleaved comparisons of rows 1 and 2 (default 3;
                   the median round is reported)
  BENCH_POSTINGS   postings loaded for the trial-balance row (default 1000000)
  BENCH_BIN_DIR    where the release examples are (default target-bench/release/examples)
  BENCH_LOG_DIR    where logs and raw JSON results go (default a new /tmp dir)
  BENCH_OUT        the markdown file to write (default BENCHMARKS.md at the repo root;
                   empty to skip)
  BENCH_ONLY       `jobs`: run only row 9 side by side (scripts/lib/bench_jobs.py: both
                   transports, graphile-worker and BullMQ at concurrency 24, 10,000 and
                   50,000 jobs, three rounds) on a private PostgreSQL and Redis, and
                   rewrite only its section of BENCH_OUT;
                   `webhooks`: only the Stripe webhook figures (scripts/lib/bench_webhooks.py);
                   `events`: only outgoing webhooks' throughput and delay (scripts/lib/bench_events.py);
                   `scale`: only row 10, instances behind HAProxy and the PostgreSQL and Redis
                   Cluster failovers (scripts/lib/bench_scale.py; needs haproxy)
  BENCH_WEBHOOK_INVOICES  invoices (one PaymentIntent, three deliveries each) of `webhooks` (1000)
  BENCH_JOBS       no-op jobs of row 9's enqueue runs, AccuBooks and BullMQ (default 10000)
  BENCH_JOB_BACKLOG  jobs recorded while Redis is down in row 9 (default 10000)
  BENCH_JOB_CONCURRENCY  JOB_CONCURRENCY of row 9's AccuBooks (default 100, BullMQ's own)
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_bullmq  # noqa: E402
import bench_events  # noqa: E402
import bench_jobs  # noqa: E402
import bench_scale  # noqa: E402
import bench_webhooks  # noqa: E402
import services as sv  # noqa: E402
from bench_sections import write_section  # noqa: E402
from services import log  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
POSTINGS = int(os.environ.get("BENCH_POSTINGS", "1000000"))
BIN = Path(os.environ.get("BENCH_BIN_DIR", sv.REPO / "target-bench/release/examples"))
LOG_DIR = Path(os.environ.get("BENCH_LOG_DIR") or tempfile.mkdtemp(prefix="accubooks-bench-"))
OUT = os.environ.get("BENCH_OUT", str(sv.REPO / "BENCHMARKS.md"))
LOADGEN = BIN / "loadgen"
CONCURRENCY = 32
ENTRY_BATCH = 2500
ONLY = os.environ.get("BENCH_ONLY", "")
JOBS = int(os.environ.get("BENCH_JOBS", "10000"))
JOB_BACKLOG = int(os.environ.get("BENCH_JOB_BACKLOG", "10000"))
JOB_CONCURRENCY = int(os.environ.get("BENCH_JOB_CONCURRENCY", str(bench_bullmq.CONCURRENCY)))
JOB_BATCH = 50  # BullMQ's bulk-add: addBulk of 50
BACKLOG_AIM_S = 5.0
CATCH_UP_AIM_S = 1.0

results: dict = {}
memory: dict[str, dict[str, int]] = {}
notes: list[str] = []
commands: list[str] = []


# ------------------------------------------------------------------ helpers

class RssSampler:
    """Samples VmRSS of servers every 100 ms and keeps the peak per label."""

    def __init__(self, label: str, servers):
        self.label, self.servers = label, [s for s in servers if s is not None]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            for s in self.servers:
                rss = s.rss_kb()
                if rss:
                    slot = memory.setdefault(s.name, {})
                    slot[self.label] = max(slot.get(self.label, 0), rss)
            self.stop.wait(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def loadgen_argv(*args) -> list[str]:
    return [str(LOADGEN), *map(str, args)]


def parse_json_line(out: str, argv) -> dict:
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no JSON from {shlex.join(argv)}: {out[-500:]}")


def record(name: str, result: dict) -> dict:
    results[name] = result
    with open(LOG_DIR / "results.jsonl", "a") as f:
        f.write(json.dumps({"name": name, **result}) + "\n")
    return result


def loadgen(name: str, *args, sample=(), label: str | None = None, timeout: float = 900) -> dict:
    """Runs one loadgen, sampling the RSS of `sample` servers under `label`."""
    argv = loadgen_argv(*args)
    with RssSampler(label or name, sample):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed: {r.stderr.strip()}")
    return record(name, parse_json_line(r.stdout, argv))


def background(*args) -> subprocess.Popen:
    return subprocess.Popen(loadgen_argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(name: str, p: subprocess.Popen) -> dict:
    out, err = p.communicate(timeout=300)
    if p.returncode != 0:
        # background() starts it from loadgen_argv(), a list of strings.
        raise RuntimeError(f"{shlex.join(cast(list[str], p.args))} failed: {err.strip()}")
    return record(name, parse_json_line(out, p.args))


def rps(r: dict) -> str:
    return f"{r['rps']:,.0f} req/s (p99 {r['p99_ms']:.2f} ms)"


def pct(a: float, b: float) -> str:
    return f"{100 * a / b:.0f} %" if b else "n/a"


def ms(value) -> str:
    return "n/a" if value is None else f"{value:,.0f} ms"


def now_ms() -> float:
    return time.time() * 1000


def statuses(r: dict) -> str:
    parts = [f"{k}: {v:,}" for k, v in sorted(r.get("statuses", {}).items())]
    parts += [f"{k}: {v:,}" for k, v in sorted(r.get("errors", {}).items())]
    return ", ".join(parts) or "none"


def others(r: dict, allowed: set[str]) -> int:
    n = sum(v for k, v in r.get("statuses", {}).items() if k not in allowed)
    return n + sum(r.get("errors", {}).values())


def ok_verdict(passed: bool) -> str:
    return "✅" if passed else "❌"


def machine() -> str:
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    return f"{os.cpu_count()} × {model}, {mem_kb / 1048576:.0f} GiB RAM, Linux {platform.release()}"


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def psql_timing(pg: sv.Postgres, sql: str, database: str, repeat: int) -> float:
    script = "\\o /dev/null\n\\timing on\n" + (sql.rstrip(";") + ";\n") * repeat
    r = subprocess.run(
        ["psql", "-X", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-d", database],
        input=script, capture_output=True, text=True, timeout=600,
    )
    times = [float(t) for t in re.findall(r"Time: ([0-9.]+) ms", r.stdout + r.stderr)]
    if not times:
        raise RuntimeError(f"psql gave no timings: {r.stdout[-300:]} {r.stderr[-300:]}")
    return statistics.median(times)


def set_fsync(pg: sv.Postgres, value: str) -> None:
    pg.psql(f"ALTER SYSTEM SET fsync = {value}")
    pg.psql("SELECT pg_reload_conf()")
    deadline = time.time() + 10
    while pg.psql("SHOW fsync").strip() != value:
        if time.time() > deadline:
            raise RuntimeError(f"fsync did not turn {value}")
        time.sleep(0.1)


# ------------------------------------------------------------------ the rows

def interleaved(name: str, specs, label: str) -> dict:
    """Runs every spec (key, server, loadgen args) once per round, in order, so
    that background noise on a shared machine hits all of them alike; answers
    the median-rps run of each key, with the spread of the rounds."""
    runs: dict[str, list] = {}
    for rnd in range(ROUNDS):
        for key, server, args in specs:
            if rnd == 0:
                loadgen(f"{name}-{key}-warmup", *args, "--duration", 1)
            runs.setdefault(key, []).append(
                loadgen(f"{name}-{key}-r{rnd + 1}", *args, "--duration", SECONDS, sample=[server], label=label))
    out = {}
    for key, rs in runs.items():
        ordered = sorted(rs, key=lambda r: r["rps"])
        out[key] = dict(ordered[len(ordered) // 2], spread=(ordered[0]["rps"], ordered[-1]["rps"]))
    return out


def row_throughput(axum, warp, hello):
    """Row 1: monitoring routes on both hosts next to bare axum."""
    out = {}
    for label, path in (("live", "/api/monitoring/live"), ("health", "/api/monitoring/health"),
                        ("metrics", "/api/monitoring/metrics")):
        specs = [(s.name, s, ("get", url, "--concurrency", CONCURRENCY))
                 for s, url in ((hello, hello.base + "/"), (axum, axum.base + path), (warp, warp.base + path))]
        out[label] = interleaved(label, specs, "monitoring load")
    return out


def row_fail_fast(pg, axum, warp, token):
    """Row 2: the database is down; routes that need it must answer 503 at once."""
    pg.kill()
    for s in (axum, warp):
        s.wait_dependency("database", "unavailable")
    specs = []
    for s in (axum, warp):
        specs.append((f"accounts-{s.name}", s,
                      ("get", s.base + "/api/accounts", "--token", token, "--concurrency", CONCURRENCY)))
        specs.append((f"live-{s.name}", s, ("get", s.base + "/api/monitoring/live", "--concurrency", CONCURRENCY)))
    before = {s.name: count_lines(s.process.log_path, "request failed") for s in (axum, warp)}
    runs = interleaved("pgdown", specs, "database down (503 load)")
    for s in (axum, warp):
        logged = count_lines(s.process.log_path, "request failed") - before[s.name]
        answered = sum(r["statuses"].get("503", 0) for k, r in results.items()
                       if k.startswith(f"pgdown-accounts-{s.name}"))
        if logged:
            notes.append(f"Row 2 ({s.name}): every 503 of the outage logged a WARN line `request failed` "
                         f"({logged:,} lines for {answered:,} answers of the measured rounds and warm-up): "
                         f"during an outage the log volume grows with the request rate.")
    pg.restart()
    for s in (axum, warp):
        s.wait_dependency("database", "connected")
    return {s.name: {"accounts": runs[f"accounts-{s.name}"], "live": runs[f"live-{s.name}"]} for s in (axum, warp)}


def first_at(transitions, after_ms: float, predicate):
    for t in transitions:
        if t["t"] >= after_ms and predicate(t["state"]):
            return t["t"] - after_ms
    return None


def row_outage(kind: str, dep, server, token):
    """Row 3: kill a dependency under posting load, restart it, and time the
    first 503 and the first 2xx after its return from the client's view."""
    name = "database" if kind == "postgres" else "redis"
    # Long enough for any restart: both are stopped with SIGTERM once the
    # dependency has been back for 4 s.
    load = background("post-entries", server.base, token, "--duration", 300, "--concurrency", 16,
                      "--timeline", "--timeout-ms", 5000)
    watch = background("watch", server.base, "/api/monitoring/health", "--duration", 300,
                       "--interval-ms", 10, "--field", f"dependencies.{name}.status", "--timeout-ms", 2000)
    with RssSampler(f"{kind} outage under posting", [server]):
        time.sleep(3)
        t_kill = now_ms()
        dep.kill()
        time.sleep(3)
        t_restart = now_ms()
        dep.restart()
        t_back = now_ms()
        time.sleep(4)
        for p in (load, watch):
            p.terminate()
        posting = finish(f"outage-{kind}-{server.name}-posting", load)
        health = finish(f"outage-{kind}-{server.name}-health", watch)
    timeline = posting.get("timeline", [])
    tr = health["transitions"]
    out = {
        "dependency_restart_ms": t_back - t_restart,
        "health_down_ms": first_at(tr, t_kill, lambda s: not s.endswith(":connected")),
        "health_up_ms": first_at(tr, t_back, lambda s: s.endswith(":connected")),
        "posting": posting,
    }
    if kind == "postgres":
        out["first_503_ms"] = first_at(timeline, t_kill, lambda s: s == "503")
        out["first_2xx_ms"] = first_at(timeline, t_back, lambda s: s.startswith("2"))
        last_503 = posting.get("first_last", {}).get("503", [None, None])[1]
        out["last_503_ms"] = (last_503 - t_back) if last_503 else None
        out["others"] = others(posting, {"201", "503"})
    else:
        out["others"] = others(posting, {"201"})
    out["count_500"] = posting.get("statuses", {}).get("500", 0)
    return out


def measure_startup(binary: Path, env: dict, name: str) -> tuple[float | None, float | None]:
    """exec → first /live 200 and → first /ready 200, in ms."""
    port = sv.free_port()
    env = dict(env, PORT=str(port))
    server = sv.Server(name, binary, env, LOG_DIR)
    started = time.perf_counter()
    server.start(wait=False)
    live = ready = None
    deadline = started + 30
    while time.perf_counter() < deadline and ready is None:
        path = "/api/monitoring/live" if live is None else "/api/monitoring/ready"
        status, _ = sv.request("GET", server.base + path, timeout=2)
        elapsed = (time.perf_counter() - started) * 1000
        if status == 200:
            if live is None:
                live = elapsed
            else:
                ready = elapsed
        else:
            time.sleep(0.001)
    server.stop()
    return live, ready


def row_startup(pg, redis, axum_bin, warp_bin):
    """Row 4: start-up with every dependency down, hanging, and up."""
    closed = sv.free_port()
    down = sv.server_env(0, f"postgres://postgres@127.0.0.1:{closed}/accubooks", f"redis://127.0.0.1:{closed}")
    up = sv.server_env(0, pg.app_url("accubooks"), redis.url())
    out = {}
    for label, env in (("down", down), ("up", up)):
        for host, binary in (("axum", axum_bin), ("warp", warp_bin)):
            runs = [measure_startup(binary, env, f"startup-{label}-{host}") for _ in range(3)]
            out[(label, host)] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
    # PostgreSQL accepts the connection but never answers: ready waits at most DB_INIT_TIMEOUT_MS.
    pg.pause()
    try:
        out[("hanging", "axum")] = measure_startup(axum_bin, up, "startup-hanging-axum")
    finally:
        pg.resume()
    return out


def pgbench(pg) -> dict:
    pg.psql("CREATE DATABASE pgbench")
    base = ["-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres"]
    init = ["pgbench", *base, "-i", "-s", "10", "-q", "pgbench"]
    run = ["pgbench", *base, "-N", "-c", "8", "-j", "2", "-T", "10", "pgbench"]
    subprocess.run(init, capture_output=True, text=True, check=True, timeout=600)
    r = subprocess.run(run, capture_output=True, text=True, check=True, timeout=120)
    found = re.search(r"tps = ([0-9.]+)", r.stdout)
    assert found, f"pgbench printed no tps: {r.stdout}"
    tps = float(found.group(1))
    lat = re.search(r"latency average = ([0-9.]+) ms", r.stdout)
    commands.append(shlex.join(init).replace(str(pg.port), "$PGPORT"))
    commands.append(shlex.join(run).replace(str(pg.port), "$PGPORT"))
    return {"tps": tps, "latency_ms": float(lat.group(1)) if lat else None}


def posting_runs(prefix: str, server, token) -> dict:
    out = {}
    for c in (32, 64):
        loadgen(f"{prefix}-warmup", "post-entries", server.base, token, "--duration", 1, "--concurrency", c)
        out[f"single-c{c}"] = loadgen(f"{prefix}-single-c{c}", "post-entries", server.base, token,
                                      "--duration", SECONDS, "--concurrency", c, sample=[server],
                                      label="posting load")
    out["batch"] = loadgen(f"{prefix}-batch100-c4", "post-batch", server.base, token, 100,
                           "--duration", SECONDS, "--concurrency", 4, sample=[server], label="posting load")
    # 2,500 entries (~0.4 MB) fit the default 1 MiB body limit.
    out["batch2500"] = loadgen(f"{prefix}-batch2500-c2", "post-batch", server.base, token, 2500,
                               "--duration", SECONDS, "--concurrency", 2, "--timeout-ms", 120000,
                               sample=[server], label="posting load")
    return out


def row_trial_balance(pg, redis, server_bin):
    """Row 6: BENCH_POSTINGS postings in a database of their own, then the
    trial balance next to the plain SQL sum and hledger."""
    pg.create_app_database("tb")
    tb = sv.Server("tb-axum", server_bin, sv.server_env(sv.free_port(), pg.app_url("tb"), redis.url(),
                                                       BODY_LIMIT_BYTES="8388608"), LOG_DIR)
    tb.start()
    tb.wait_ready()
    tb.wait_dependency("database", "connected")
    token = sv.register(tb.base)
    types = ["asset", "liability", "equity", "revenue", "expense"]
    codes = []
    for i in range(20):
        code = str(7000 + i)
        status, body = sv.request("POST", tb.base + "/api/accounts", token=token, body={
            "code": code, "name": f"Bench {code}", "type": types[i % 5], "currency": "USD"})
        if status != 201:
            raise RuntimeError(f"creating account {code}: {status} {body}")
        codes.append(code)
    entries = max(POSTINGS // 2, 1)
    per_request = min(ENTRY_BATCH, entries)
    requests = max(entries // per_request, 1)
    out = {"postings": requests * per_request * 2, "requests": requests, "per_request": per_request}
    load = loadgen("tb-load", "post-batch", tb.base, token, per_request, "--requests", requests,
                   "--concurrency", 2, "--days", 365, "--start-date", "2025-01-01",
                   "--accounts", ",".join(codes), "--timeout-ms", 300000,
                   sample=[tb], label=f"loading {POSTINGS:,} postings", timeout=3600)
    out["load"] = load
    commands.append(f"loadgen post-batch $BASE $TOKEN {per_request} --requests {requests} --concurrency 2 "
                    f"--days 365 --start-date 2025-01-01 --accounts 7000,...,7019")
    with RssSampler("trial balance", [tb]):
        status, body = sv.request("GET", tb.base + "/api/reports/trial-balance?as_of=2026-12-31", token=token)
        out["balanced"] = status == 200 and body.get("total_debit") == body.get("total_credit")
        out["tb_body_totals"] = (body or {}).get("total_debit") if isinstance(body, dict) else None
        out["tb"] = loadgen("tb-now", "get", tb.base + "/api/reports/trial-balance", "--token", token,
                            "--requests", 20, "--concurrency", 1)
        out["tb_as_of"] = loadgen("tb-as-of", "get", tb.base + "/api/reports/trial-balance?as_of=2025-07-01",
                                  "--token", token, "--requests", 20, "--concurrency", 1)
    sql = "SELECT account_id, SUM(amount) FROM journal_lines GROUP BY account_id"
    out["sql_ms"] = psql_timing(pg, sql, "tb", 5)
    out["lines_in_table"] = int(pg.psql("SELECT count(*) FROM journal_lines", "tb").strip())

    # hledger on the export, when the export route exists.
    started = time.perf_counter()
    status, exported = export_ledger(tb.base, token)
    out["export_s"] = time.perf_counter() - started
    if status != 200:
        out["hledger"] = f"skipped: GET /api/export/ledger?format=hledger answered {status}"
    else:
        path = LOG_DIR / "export.journal"
        path.write_bytes(exported)
        started = time.perf_counter()
        r = subprocess.run(["hledger", "-f", str(path), "bal"], capture_output=True, text=True, timeout=1200)
        out["hledger_s"] = time.perf_counter() - started
        out["hledger"] = "ok" if r.returncode == 0 else f"hledger failed: {r.stderr.strip()[:200]}"
    memory.setdefault(tb.name, {})["idle after load"] = tb.rss_kb() or 0
    tb.stop()
    return out


def export_ledger(base: str, token: str):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=1200)
    try:
        conn.request("GET", "/api/export/ledger?format=hledger", headers={"Authorization": f"Bearer {token}"})
        r = conn.getresponse()
        return r.status, r.read()
    except OSError as e:
        return f"error {e}", b""
    finally:
        conn.close()


def row_python(pg, redis, server_bin):
    """Row 7: the same posting and report calls in-process from Python and over
    HTTP (an axum server on the same database and organization)."""
    python = sv.REPO / ".venv/bin/python"
    if not python.exists():
        return {"skipped": "skipped: there is no /work/main/.venv"}
    r = subprocess.run([str(python), "-c", "import accubooks"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        return {"skipped": f"skipped: `accubooks` is not importable from .venv ({last})"}
    pg.create_app_database("py")
    cfg = {"database_url": pg.app_url("py"), "redis_url": redis.url(), "secret": sv.SECRET, "seconds": SECONDS,
           "sequential": 1000, "threads": 32}
    argv = [str(python), str(Path(__file__).resolve().parent / "bench_python.py"), json.dumps(cfg)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=LOG_DIR)
    if r.returncode != 0:
        return {"skipped": f"failed: {r.stderr.strip()[-300:]}"}
    py = record("python", parse_json_line(r.stdout, argv))
    server = sv.Server("py-http-axum", server_bin, sv.server_env(sv.free_port(), pg.app_url("py"), redis.url()), LOG_DIR)
    server.start()
    server.wait_ready()
    server.wait_dependency("database", "connected")
    token = py["token"]
    http = {
        "sequential": loadgen("py-http-sequential", "post-entries", server.base, token, "--requests", 1000,
                              "--concurrency", 1),
        "threads": loadgen("py-http-c32", "post-entries", server.base, token, "--duration", SECONDS,
                           "--concurrency", 32),
        "batch": loadgen("py-http-batch", "post-batch", server.base, token, 100, "--duration", SECONDS,
                         "--concurrency", 1),
        "tb": loadgen("py-http-tb", "get", server.base + "/api/reports/trial-balance", "--token", token,
                      "--requests", 20, "--concurrency", 1),
    }
    server.stop()
    # The module the venv really imports (an installed wheel or a `maturin develop` build).
    r = subprocess.run([str(python), "-c", "import accubooks._accubooks as m; print(m.__file__)"],
                       capture_output=True, text=True, timeout=60)
    ext = Path(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip() else None
    if ext and ext.exists():
        # Compiler-inserted overflow checks (and their messages) exist only in debug builds.
        profile = "debug build" if b"attempt to add with overflow" in ext.read_bytes() else "release build"
        built = (f"{ext.name} from {ext.parent.parent.name}/, {profile}, {ext.stat().st_size / 1e6:.0f} MB, "
                 f"built {time.strftime('%Y-%m-%d %H:%M', time.localtime(ext.stat().st_mtime))}")
    else:
        built = "extension not located"
    return {"python": py, "http": http, "built": built}


def run_jobs_bench(pg, redis, database: str) -> dict:
    """examples/jobs_bench on `database` and `redis`: it asks for Redis to be
    stopped and started again around its backlog step (one line each on its
    stdout, answered on its stdin once done)."""
    env = sv.server_env(0, pg.app_url(database), redis.url(), JOB_TRANSPORT="redis",
                        JOB_CONCURRENCY=str(JOB_CONCURRENCY))
    argv = [str(BIN / "jobs_bench"), "--jobs", str(JOBS), "--batch", str(JOB_BATCH),
            "--backlog", str(JOB_BACKLOG)]
    with open(LOG_DIR / "jobs_bench.log", "ab") as err:
        p = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
    assert p.stdin is not None and p.stdout is not None  # PIPEs
    result = None
    try:
        for line in p.stdout:
            line = line.strip()
            if line == "jobs_bench: stop redis":
                redis.kill()
            elif line == "jobs_bench: start redis":
                redis.start()  # returns once it answers PING, on the same port
            elif line.startswith("{"):
                result = json.loads(line)
                continue
            else:
                continue
            p.stdin.write("done\n")
            p.stdin.flush()
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
        redis.start()
    if p.returncode != 0 or result is None:
        raise RuntimeError(f"{shlex.join(argv)} failed ({p.returncode}); log {LOG_DIR / 'jobs_bench.log'}")
    return record("jobs-accubooks", result)


def row_jobs(pg, redis):
    """Row 9: background jobs next to BullMQ's own benchmark, on the same Redis
    in the same run: enqueue (batches of 50, like addBulk) and completion, a
    backlog recorded while Redis is down, and a year of recurring invoices."""
    out = {"jobs": JOBS, "concurrency": JOB_CONCURRENCY}
    try:
        bull = bench_bullmq.bullmq(redis.port, JOBS)
        out["bullmq"] = {k: record(f"jobs-bullmq-{k}", v) for k, v in bull.items()}
    except RuntimeError as e:
        out["bullmq_skipped"] = str(e).strip().splitlines()[-1][:200]
    pg.create_app_database("jobs")
    out["accubooks"] = run_jobs_bench(pg, redis, "jobs")
    return out


def render_jobs(r9) -> str:
    """The rows of row 9 (the same table columns as the other rows)."""
    a = r9["accubooks"]
    enq, both = a["enqueue"], a["enqueue_complete"]
    bull = r9.get("bullmq")
    conc = f"JOB_CONCURRENCY={a['concurrency']}"
    rows = []
    b = a.get("backlog")
    # While Redis is down nothing runs alongside the enqueue, as in BullMQ's bulk-add.
    alone = b["jobs"] / b["recorded_s"] if b else None
    alone_cell = f"; with no worker running (Redis down): {alone:,.0f} jobs/s" if alone else ""
    if bull:
        add, work = bull["bulk-add"], bull["worker"]
        alone_ratio = f" (alone {pct(alone, add['jobs_per_second'])})" if alone else ""
        rows.append(
            f"| 9 | jobs: enqueue {enq['jobs']:,} no-op jobs in batches of {a['batch']} (one transaction each) | "
            f"{enq['jobs_per_second']:,.0f} jobs/s with the workers running{alone_cell} | BullMQ {add['bullmq']} "
            f"`addBulk` of {add['batch']}: {add['jobs_per_second']:,.0f} jobs/s | "
            f"{pct(enq['jobs_per_second'], add['jobs_per_second'])} of BullMQ{alone_ratio} |")
        rows.append(
            f"| 9 | jobs: enqueue + run to `succeeded`, {both['jobs']:,} no-op jobs ({conc}) | "
            f"{both['jobs_per_second']:,.0f} jobs/s | BullMQ worker, concurrency {work['concurrency']}, jobs "
            f"pre-added: {work['jobs_per_second']:,.0f} jobs/s | {pct(both['jobs_per_second'], work['jobs_per_second'])} "
            f"of BullMQ's worker |")
    else:
        rows.append(f"| 9 | jobs: enqueue {enq['jobs']:,} no-op jobs in batches of {a['batch']} | "
                    f"{enq['jobs_per_second']:,.0f} jobs/s{alone_cell}; with completion "
                    f"{both['jobs_per_second']:,.0f} jobs/s ({conc}) | BullMQ {r9.get('bullmq_skipped', 'skipped')} | |")
    if b:
        all_s = b["all_succeeded_s"]
        ref = ""
        ratio = ""
        if bull:
            ref = f"BullMQ worker drains {b['jobs']:,} in {b['jobs'] / bull['worker']['jobs_per_second']:.2f} s (from its rate)"
            ratio = f"drain {pct(b['drain_jobs_per_second'], bull['worker']['jobs_per_second'])} of BullMQ's worker; "
        rows.append(
            f"| 9 | jobs: {b['jobs']:,} recorded while Redis was down, then Redis started ({conc}) | "
            f"all succeeded {all_s:.2f} s after Redis answered (Redis seen connected after "
            f"{1000 * b['redis_connected_s']:,.0f} ms, first job done at {1000 * b['first_succeeded_s']:,.0f} ms; "
            f"drained at {b['drain_jobs_per_second']:,.0f} jobs/s) | {ref} | {ratio}aim < {BACKLOG_AIM_S:g} s "
            f"{ok_verdict(all_s < BACKLOG_AIM_S)} |")
    c = a["catch_up"]
    passed = c["invoices"] == c["occurrences"] and c["all_invoices_s"] < CATCH_UP_AIM_S
    rows.append(
        f"| 9 | recurring catch-up: a weekly template started 52 weeks ago ({c['occurrences']} occurrences, issued) | "
        f"{c['invoices']} invoices {1000 * c['all_invoices_s']:,.0f} ms after the create call (which itself took "
        f"{1000 * c['template_created_s']:,.0f} ms) | | aim < {CATCH_UP_AIM_S:g} s {ok_verdict(passed)} |")
    return "\n".join(rows)


JOBS_HEADING = "## Background jobs next to BullMQ (row 9)"


def jobs_section(r9, when: str) -> str:
    """The markdown section of row 9, heading included; `scripts/bench` writes it
    in a full run, and `BENCH_ONLY=jobs` replaces just this section."""
    a = r9["accubooks"]
    bull = r9.get("bullmq")
    versions = (f"BullMQ {bull['worker']['bullmq']} on Node {bull['worker']['node']}" if bull
                else f"BullMQ: {r9.get('bullmq_skipped', 'skipped')}")
    table = render_jobs(r9)
    missed = [r.split(" | ")[1] for r in table.splitlines() if "❌" in r]
    misses = "".join(f"\n- Aim missed in this run: {m.strip()}." for m in missed)
    return f"""{JOBS_HEADING}

- Measured {when}.
- `examples/jobs_bench` (release) and `bench/bullmq/bench.mjs` ({versions}, the
  `queue-add-bulk` and `worker-concurrent` scenarios of BullMQ's own suite) run one after the other on
  the same private Redis 7 (no persistence) and the same 2 cores; AccuBooks's outbox is a PostgreSQL 15
  table with `fsync` on, so every AccuBooks job is durable before it is acknowledged and each
  state change (recorded, relayed, claimed, succeeded) is a committed row change; BullMQ keeps its
  jobs only in Redis' memory. AccuBooks runs `JOB_TRANSPORT=redis JOB_CONCURRENCY={a['concurrency']}`
  (BullMQ's worker runs at its suite's concurrency 100), the default `DB_POOL_MAX=20`, and a no-op
  handler registered with `Builder::job_handler` on the `report-generation` queue; {a['warmup']:,}
  jobs warm up first, untimed, as in BullMQ's suite.
- Run this row alone: `BENCH_ONLY=jobs scripts/bench` (rewrites only this section). It issues:

```sh
node bench/bullmq/bench.mjs --port $REDISPORT --jobs {r9['jobs']} --scenario bulk-add
node bench/bullmq/bench.mjs --port $REDISPORT --jobs {r9['jobs']} --scenario worker --concurrency {bench_bullmq.CONCURRENCY}
DATABASE_URL=postgres://accubooks@127.0.0.1:$PGPORT/jobs REDIS_URL=redis://127.0.0.1:$REDISPORT \\
  JOB_TRANSPORT=redis JOB_CONCURRENCY={a['concurrency']} target-bench/release/examples/jobs_bench \\
  --jobs {a['enqueue']['jobs']} --batch {a['batch']} --backlog {a.get('backlog', {}).get('jobs', 0)}   # kills and restarts Redis when it asks
```

| # | comparison | AccuBooks | reference | ratio / aim |
|---|---|---|---|---|
{table}
{misses}
How to read: the enqueue rate is `AccuBooks::enqueue` of {a['batch']} jobs per call, one
transaction each, awaited one after the other like BullMQ's `addBulk` loop, first with the
relay and workers running the jobs alongside on the same 2 cores and PostgreSQL, then (the
backlog's recording) with Redis down, so with nothing running alongside, as in BullMQ's
bulk-add, which starts no worker. "Enqueue + run" runs from the first enqueue until the last
job's `succeeded` row has committed (read from `accubooks_jobs_total`), whereas BullMQ's worker
figure times only the processing of jobs added beforehand. The backlog
is recorded while Redis is killed, then timed from the moment the restarted Redis answers PING:
it includes noticing Redis again (the health probe), re-creating the streams' group, relaying
the outbox and running every job; its drain rate (first to last job done) is the figure to
set beside BullMQ's worker. The catch-up time runs from the call that creates the template (its
53 jobs are recorded in the same transaction) until its 53 invoices are listed.
AccuBooks's figures are bound by PostgreSQL commits (each waits for a WAL flush with `fsync`
on), not by CPU: a job's row is inserted with its batch (one multi-row `INSERT`), relayed in
batches of up to 1,000, claimed in batches of up to `JOB_CONCURRENCY` (the free slots of one
stream read), and finished in batches (the endings that arrive while the previous commit
runs share the next one), so its rates grow with `JOB_CONCURRENCY`.
"""


# ------------------------------------------------------------------ main

def main_only_jobs() -> int:
    """`BENCH_ONLY=jobs`: row 9 alone on its own PostgreSQL (fsync on) and Redis;
    replaces only its section of BENCH_OUT."""
    if not (BIN / "jobs_bench").exists():
        raise SystemExit(f"missing {BIN / 'jobs_bench'}: run BENCH_ONLY=jobs scripts/bench (it builds it)")
    started = time.time()
    load_at_start = loadavg()
    pg = sv.Postgres(log_dir=LOG_DIR)
    redis = sv.Redis(log_dir=LOG_DIR)
    log(f"postgres on {pg.port}, redis on {redis.port}; row 9: durable job queues side by side "
        f"(scripts/lib/bench_jobs.py)")
    r9 = bench_jobs.row9(pg, redis)
    when = (f"alone (`BENCH_ONLY=jobs`) on {datetime.date.today().isoformat()} in "
            f"{(time.time() - started) / 60:.1f} min; load average at start {load_at_start} (the machine "
            f"is shared)")
    section = bench_jobs.section(r9, when)
    print(section)
    if write_section(OUT, bench_jobs.HEADING, section):
        log(f"wrote the row-9 section of {OUT}")
    return 0


def main() -> int:
    sv.install_cleanup()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log(f"logs and raw results in {LOG_DIR}")
    if ONLY == "jobs":
        return main_only_jobs()
    if ONLY == "webhooks":
        return bench_webhooks.main_only(BIN, LOG_DIR, OUT, loadgen)
    if ONLY == "events":
        return bench_events.main_only(BIN, LOG_DIR, OUT, loadgen)
    if ONLY == "scale":
        return bench_scale.main_only(BIN, LOG_DIR, OUT, loadgen, interleaved, background, finish)
    if ONLY:
        raise SystemExit(f"BENCH_ONLY={ONLY!r}: only `jobs`, `webhooks`, `events` and `scale` are known")
    started = time.time()
    load_at_start = loadavg()
    for name in ("loadgen", "server", "warp_server", "hello_axum", "jobs_bench"):
        if not (BIN / name).exists():
            raise SystemExit(f"missing {BIN / name}: run scripts/bench (it builds them)")

    # The fault rows (2-4) run without fsync, like the integration tests, so a
    # restarted PostgreSQL accepts connections in a fraction of a second instead
    # of first syncing its data directory: they measure how fast AccuBooks
    # notices the database's return, not the disk. fsync is turned on (a reload
    # suffices) before the throughput rows.
    # (Set with ALTER SYSTEM, not on the command line, which would win over it.)
    pg = sv.Postgres(log_dir=LOG_DIR)
    set_fsync(pg, "off")
    redis = sv.Redis(log_dir=LOG_DIR)
    # (The launcher made the application's role and database `accubooks`.)
    log(f"postgres on {pg.port}, redis on {redis.port}")

    env = lambda: sv.server_env(sv.free_port(), pg.app_url("accubooks"), redis.url())  # noqa: E731
    axum = sv.Server("axum", BIN / "server", env(), LOG_DIR)
    warp = sv.Server("warp", BIN / "warp_server", env(), LOG_DIR)
    hello = sv.Server("hello_axum", BIN / "hello_axum", env(), LOG_DIR, live_path="/")
    for s in (axum, warp, hello):
        s.start()
    for s in (axum, warp):
        s.wait_ready()
        s.wait_dependency("database", "connected")
        s.wait_dependency("redis", "connected")
    token = sv.register(axum.base)
    time.sleep(1)
    for s in (axum, warp, hello):
        memory.setdefault(s.name, {})["idle"] = s.rss_kb()

    log("row 1: monitoring throughput vs hello_axum")
    r1 = row_throughput(axum, warp, hello)
    log("row 2: fail-fast with the database down")
    r2 = row_fail_fast(pg, axum, warp, token)
    log("row 3: outages under posting load")
    r3 = {}
    for s in (axum, warp):
        r3[("postgres", s.name)] = row_outage("postgres", pg, s, token)
        s.wait_dependency("database", "connected")
        r3[("redis", s.name)] = row_outage("redis", redis, s, token)
        s.wait_dependency("redis", "connected")
    log("row 4: start-up")
    r4 = row_startup(pg, redis, BIN / "server", BIN / "warp_server")
    for s in (axum, warp):
        s.wait_dependency("database", "connected")

    log("row 5: posting throughput (PostgreSQL, pgbench, SQLite)")
    set_fsync(pg, "on")
    r5 = {"pg-axum": posting_runs("post-pg-axum", axum, token)}
    r5["pg-warp"] = {"single-c32": loadgen("post-pg-warp-single-c32", "post-entries", warp.base, token,
                                           "--duration", SECONDS, "--concurrency", 32, sample=[warp],
                                           label="posting load")}
    r5["pgbench"] = pgbench(pg)
    sqlite_dir = sv.make_dir("accubooks-sqlite-")
    sqlite = sv.Server("sqlite-axum", BIN / "server",
                       sv.server_env(sv.free_port(), f"sqlite://{sqlite_dir}/x.db", redis.url()), LOG_DIR)
    sqlite.start()
    sqlite.wait_ready()
    sqlite.wait_dependency("database", "connected")
    memory.setdefault(sqlite.name, {})["idle"] = sqlite.rss_kb()
    r5["sqlite"] = posting_runs("post-sqlite", sqlite, sv.register(sqlite.base))
    sqlite.stop()

    # The servers are done; the trial-balance row has its own.
    for s in (axum, warp, hello):
        s.stop()
    log(f"row 6: trial balance at {POSTINGS:,} postings")
    r6 = row_trial_balance(pg, redis, BIN / "server")
    log("row 7: Python binding")
    r7 = row_python(pg, redis, BIN / "server")
    log("row 9: background jobs next to BullMQ")
    r9 = row_jobs(pg, redis)

    table = render(r1, r2, r3, r4, r5, r6, r7)
    # After render: its instances' memory is not row 8's.
    log("row 10: scale-out (HAProxy, PostgreSQL and Redis Cluster failovers)")
    try:
        scale = bench_scale.section(bench_scale.run(BIN, LOG_DIR, loadgen, interleaved, background, finish),
                                    "in this run, after row 9")
    except Exception as e:  # noqa: BLE001 - a failed row 10 must not lose the whole run
        # The section of an earlier run stays (kept_sections), marked as such.
        scale = ""
        notes.append(f"Row 10 was not measured in this run ({str(e).strip().splitlines()[0][:200]}); "
                     f"its section is an earlier run's.")
    elapsed = time.time() - started
    section = jobs_section(r9, "in this run, after row 7") + "\n" + scale
    print(table)
    print(section)
    if OUT:
        write_markdown(table, load_at_start, elapsed, section)
        log(f"wrote {OUT}")
    log(f"done in {elapsed / 60:.1f} min")
    return 0


def render(r1, r2, r3, r4, r5, r6, r7) -> str:
    rows = ["| # | comparison | AccuBooks | reference | ratio / aim |", "|---|---|---|---|---|"]
    aims = {"live": 90, "health": 80, "metrics": None}
    for label, runs in r1.items():
        h = runs["hello_axum"]
        ratio = ", ".join(f"{n} {pct(runs[n]['rps'], h['rps'])}" for n in ("axum", "warp"))
        aim = aims[label]
        if aim:
            passed = all(100 * runs[n]["rps"] / h["rps"] >= aim for n in ("axum", "warp"))
            ratio += f" (aim ≥ {aim} %) {ok_verdict(passed)}"
        path = "/api/monitoring/" + label
        rows.append(f"| 1 | `GET {path}`, c={CONCURRENCY}, median of {ROUNDS} × {SECONDS:g} s | axum {rps(runs['axum'])}; "
                    f"warp {rps(runs['warp'])} | hello_axum `GET /` {rps(h)} | {ratio} |")
    for host, r in r2.items():
        a, live = r["accounts"], r["live"]
        all503 = a["statuses"].keys() == {"503"} and not a["errors"]
        rows.append(f"| 2 | database down: `GET /api/accounts` ({host}) | {rps(a)}, {statuses(a)} | "
                    f"`/live` in the same outage: {rps(live)} | {pct(a['rps'], live['rps'])} of /live; "
                    f"all 503: {ok_verdict(all503)} |")
    for (kind, host), r in r3.items():
        p = r["posting"]
        if kind == "postgres":
            passed = (r["first_503_ms"] is not None and r["first_503_ms"] < 1000 and r["first_2xx_ms"] is not None
                      and r["first_2xx_ms"] < 1000 and r["count_500"] == 0)
            rows.append(
                f"| 3 | PostgreSQL killed under posting load (c=16), restarted 3 s later ({host}) | "
                f"first 503 {ms(r['first_503_ms'])} after the kill; first 201 {ms(r['first_2xx_ms'])} after "
                f"PostgreSQL accepted connections again (its crash recovery took {ms(r['dependency_restart_ms'])}; "
                f"last 503 at {ms(r['last_503_ms'])}); "
                f"statuses {statuses(p)} | /health: database down after {ms(r['health_down_ms'])}, "
                f"connected {ms(r['health_up_ms'])} after the return | aim < 1 s each, 0 × 500: "
                f"{r['count_500']} × 500, {r['others']} other {ok_verdict(passed)} |")
        else:
            passed = (r["others"] == 0 and r["health_down_ms"] is not None and r["health_down_ms"] < 1000
                      and r["health_up_ms"] is not None and r["health_up_ms"] < 1000)
            rows.append(
                f"| 3 | Redis killed under posting load (c=16), restarted 3 s later ({host}) | posting went on: "
                f"{p['ok_rps']:,.0f} entries/s, statuses {statuses(p)} | /health: redis down after "
                f"{ms(r['health_down_ms'])}, connected {ms(r['health_up_ms'])} after the return | "
                f"aim < 1 s each, 0 failed posts: {r['others']} {ok_verdict(passed)} |")
    for host in ("axum", "warp"):
        dl, dr = r4[("down", host)]
        ul, ur = r4[("up", host)]
        rows.append(f"| 4 | start-up ({host}), median of 3: exec → `/live` 200 / → `/ready` 200 | "
                    f"all dependencies down: {ms(dl)} / {ms(dr)} | all up: {ms(ul)} / {ms(ur)} | "
                    f"never waits on a dependency: {ok_verdict(dr is not None and dr < 1000)} |")
    hl, hr = r4[("hanging", "axum")]
    rows.append(f"| 4 | start-up (axum) with PostgreSQL hanging (SIGSTOP) | {ms(hl)} / {ms(hr)} | "
                f"bounded by DB_INIT_TIMEOUT_MS = 5000 | {ok_verdict(hr is not None and hr <= 5500)} |")
    pb = r5["pgbench"]
    for key, label in (("pg-axum", "PostgreSQL, axum"), ("sqlite", "SQLite, axum")):
        runs = r5[key]
        cells = []
        for name in ("single-c32", "single-c64"):
            r = runs[name]
            cells.append(f"single c={name[-2:]}: {r['ok_rps']:,.0f} entries/s (p99 {r['p99_ms']:.1f} ms)")
        b, b2 = runs["batch"], runs["batch2500"]
        cells.append(f"batches of 100, c=4: {b['postings_per_s']:,.0f} postings/s; "
                     f"batches of 2,500, c=2: {b2['postings_per_s']:,.0f} postings/s")
        best = max(runs["single-c32"]["ok_rps"], runs["single-c64"]["ok_rps"])
        rows.append(f"| 5 | posting ({label}) | {'; '.join(cells)} | pgbench -N -c 8: {pb['tps']:,.0f} tps "
                    f"(same PostgreSQL) | single entries {best / pb['tps']:.2f} × pgbench tps |")
    batch = max(r5["pg-axum"]["batch"]["postings_per_s"], r5["pg-axum"]["batch2500"]["postings_per_s"])
    rows.append(f"| 5 | batch posting path (PostgreSQL, axum) | best of the batch runs above: {batch:,.0f} "
                f"postings/s | aim 100,000 postings/s | {pct(batch, 100000)} of the aim "
                f"{ok_verdict(batch >= 100000)} |")
    w = r5["pg-warp"]["single-c32"]
    rows.append(f"| 5 | posting (PostgreSQL, warp) | single c=32: {w['ok_rps']:,.0f} entries/s "
                f"(p99 {w['p99_ms']:.1f} ms) | axum: {r5['pg-axum']['single-c32']['ok_rps']:,.0f} entries/s | "
                f"{pct(w['ok_rps'], r5['pg-axum']['single-c32']['ok_rps'])} of axum |")
    load = r6["load"]
    hledger = (f"`hledger bal` on the export: {r6['hledger_s']:.1f} s (export {r6['export_s']:.1f} s)"
               if "hledger_s" in r6 else r6["hledger"])
    rows.append(f"| 6 | trial balance at {r6['postings']:,} postings ({r6['lines_in_table']:,} rows; loaded at "
                f"{load['postings_per_s']:,.0f} postings/s) | median of 20: {r6['tb']['p50_ms']:.2f} ms "
                f"(as of a past date: {r6['tb_as_of']['p50_ms']:.2f} ms); balanced {ok_verdict(r6['balanced'])} | "
                f"psql `SELECT account_id, SUM(amount) FROM journal_lines GROUP BY account_id`: "
                f"{r6['sql_ms']:,.1f} ms (median of 5); {hledger} | "
                f"{r6['sql_ms'] / r6['tb']['p50_ms']:,.0f} × faster than the SQL sum |")
    if "skipped" in r7:
        rows.append(f"| 7 | Python binding vs HTTP | {r7['skipped']} | | |")
    else:
        py, h = r7["python"], r7["http"]
        rows.append(
            f"| 7 | Python binding (in-process, {r7['built']}) vs HTTP (axum, same database and organization) | "
            f"one caller: {py['sequential']['entries_per_s']:,.0f} entries/s (p50 {py['sequential']['p50_ms']:.2f} ms); "
            f"32 threads: {py['threads']['entries_per_s']:,.0f} entries/s; batches of 100: "
            f"{py['batch']['postings_per_s']:,.0f} postings/s; trial balance {py['trial_balance_ms']:.2f} ms | "
            f"one client: {h['sequential']['ok_rps']:,.0f} entries/s (p50 {h['sequential']['p50_ms']:.2f} ms); "
            f"c=32: {h['threads']['ok_rps']:,.0f} entries/s; batches of 100: "
            f"{h['batch']['postings_per_s']:,.0f} postings/s; trial balance {h['tb']['p50_ms']:.2f} ms | "
            f"Python/HTTP: one caller {pct(py['sequential']['entries_per_s'], h['sequential']['ok_rps'])}, "
            f"32 {pct(py['threads']['entries_per_s'], h['threads']['ok_rps'])}, batches "
            f"{pct(py['batch']['postings_per_s'], h['batch']['postings_per_s'])} |")
    for name, slots in memory.items():
        sizes = ", ".join(f"{k}: {v / 1024:.0f} MB" for k, v in slots.items() if v)
        rows.append(f"| 8 | RSS (VmRSS, peak per phase) of `{name}` | {sizes} | | |")
    missed = [r.split(" | ")[1] for r in rows[2:] if "❌" in r]
    for m in missed:
        notes.append(f"Aim missed in this run: {m.strip()}.")
    return "\n".join(rows)


def notes_md() -> str:
    if not notes:
        return ""
    return "## Observations of this run\n\n" + "\n".join(f"- {n}" for n in notes) + "\n\n"


def count_lines(path: Path, needle: str) -> int:
    try:
        with open(path, errors="replace") as f:
            return sum(needle in line for line in f)
    except OSError:
        return 0


def write_markdown(table: str, load_at_start: str, elapsed: float, jobs_md: str) -> None:
    today = datetime.date.today().isoformat()
    text = f"""# Benchmarks

Whole-server figures of AccuBooks, measured side by side in one run of
`scripts/bench` (in-process micro-benchmarks of the core are in `benches/core.rs`:
`cargo bench --bench core`).

- Date: {today}; the run took {elapsed / 60:.1f} min.
- Machine: {machine()}; load average at start {load_at_start} (the machine is
  shared, so other work may have run at the same time).
- Servers: release builds of `examples/server` (axum), `examples/warp_server` (warp) and
  `examples/hello_axum` (bare axum answering `GET /` with `hello`: the ceiling), with
  `ACCUBOOKS_ENV=production RUST_LOG=warn`, on a private PostgreSQL 15 and Redis 7 on
  loopback. PostgreSQL runs with default settings (`max_connections=200`), except that the
  fault rows 2-4 run with `fsync=off`, like the integration tests, so that a restarted
  PostgreSQL accepts connections in about 0.2 s instead of first syncing its data directory
  (seconds on this disk): they measure AccuBooks, not the disk. `fsync` is switched back on
  (`ALTER SYSTEM` + reload) before the throughput rows 5-7.
- Client: `examples/loadgen` (keep-alive HTTP/1.1, one connection per concurrent worker) on
  the same 2 cores as the server, so every figure includes the client's cost; ratios
  measured in the same run are the meaningful part. Each load run lasts {SECONDS:g} s; rows 1
  and 2 run their contenders interleaved ({ROUNDS} rounds after a 1 s warm-up each) and report
  the median round, so background load on the shared machine hits all of them alike.

## Results

{table}

{notes_md()}{jobs_md}
## Commands

```sh
scripts/bench                              # the whole run (about 10-15 min here)
BENCH_POSTINGS=20000 BENCH_SECONDS=3 scripts/bench   # a quick run
BENCH_ONLY=jobs scripts/bench              # row 9 alone; rewrites only its section
BENCH_ONLY=webhooks scripts/bench          # the Stripe webhook figures alone; rewrites only their section
BENCH_ONLY=scale scripts/bench             # row 10 (HAProxy, failovers) alone; rewrites only its section
```

`scripts/bench` builds with `CARGO_TARGET_DIR=target-bench cargo build --release --example server
--example warp_server --example hello_axum --example loadgen --example jobs_bench`, then runs `scripts/lib/bench.py`,
which issues (ports vary; `loadgen` is `target-bench/release/examples/loadgen`):

```sh
loadgen get http://127.0.0.1:$PORT/api/monitoring/live --duration {SECONDS:g} --concurrency {CONCURRENCY}
loadgen get http://127.0.0.1:$PORT/api/accounts --token $TOKEN --duration {SECONDS:g} --concurrency {CONCURRENCY}   # PostgreSQL killed
# row 3: both run until SIGTERM, 4 s after the killed dependency is back
loadgen post-entries http://127.0.0.1:$PORT $TOKEN --duration 300 --concurrency 16 --timeline --timeout-ms 5000
loadgen watch http://127.0.0.1:$PORT /api/monitoring/health --field dependencies.database.status --interval-ms 10
loadgen post-entries http://127.0.0.1:$PORT $TOKEN --duration {SECONDS:g} --concurrency 32   # and 64
loadgen post-batch http://127.0.0.1:$PORT $TOKEN 100 --duration {SECONDS:g} --concurrency 4
loadgen post-batch http://127.0.0.1:$PORT $TOKEN 2500 --duration {SECONDS:g} --concurrency 2 --timeout-ms 120000
{chr(10).join(commands)}
loadgen get http://127.0.0.1:$PORT/api/reports/trial-balance --token $TOKEN --requests 20 --concurrency 1
psql -c '\\timing on' -c 'SELECT account_id, SUM(amount) FROM journal_lines GROUP BY account_id'   # 5 times
curl -H "Authorization: Bearer $TOKEN" 'http://127.0.0.1:$PORT/api/export/ledger?format=hledger' > export.journal
hledger -f export.journal bal
```

## How to read the rows

1. Monitoring routes go through the whole pipeline (routing, request id, metrics,
   logging) yet should stay close to bare axum: aims are `/live` ≥ 90 % and `/health` ≥ 80 %
   of hello_axum's requests per second.
2. With PostgreSQL killed, routes that need it answer 503 from the guard without touching a
   pool, so their rate should be close to `/live`'s.
3. Times are measured from the client: from the SIGKILL to the first 503 seen by the
   posting traffic, and from the moment the restarted PostgreSQL accepts connections
   (`pg_isready`) to the first 201. Other statuses are what the posting clients saw besides
   201 and 503 (transport errors included); a 500 is a bug. For Redis, posting must go on
   untouched while `/health` reports it `unavailable`, then `connected` again.
4. Start-up is measured from `exec` with a 1 ms poll.
5. Entries are two-line journal entries posted over HTTP, so one entry is two postings;
   pgbench `-N` runs a three-statement transaction per "tps" against the same server.
6. The trial balance reads the running balances kept by the posting transaction, so its
   cost grows with the number of accounts, not postings; "as of a past date" adds the
   per-day movements after that date.
7. The Python row posts and reads through the `accubooks` extension in `.venv` (in-process,
   no HTTP) and through HTTP to an axum server on the same database and organization. A debug
   build of the extension (as `maturin develop` makes) is far slower than the release servers.
8. RSS is sampled every 100 ms from `/proc/PID/status` during each phase; "idle" is after
   start-up and registration.
9. Background jobs: see their section above.
10. Scale-out (instances behind HAProxy, PostgreSQL and Redis Cluster failovers): see its section above.

Raw JSON of every run: `results.jsonl` in the log directory printed by the script.
"""
    path = Path(OUT)
    if path.exists():
        text += kept_sections(path.read_text(), text)
    path.write_text(text)


def kept_sections(old: str, new: str) -> str:
    """The `## ` sections of `old` that `new` does not write (figures measured by
    other scripts, such as `scripts/abuse`, and written by hand): a full run keeps
    them, in their order, after its own."""
    # The headings this script writes (some only in some runs) are its own.
    written = {line for line in new.splitlines() if line.startswith("## ")} | {
        "## Results",
        "## Observations of this run",
        JOBS_HEADING,
        "## Commands",
        "## How to read the rows",
    }
    kept = []
    for part in old.split("\n## ")[1:]:
        heading = "## " + part.splitlines()[0]
        if heading not in written:
            kept.append("\n## " + part.rstrip("\n") + "\n")
    return "".join(kept)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Row 9 of scripts/bench, the durable job queues side by side (Python 3
standard library only): AccuBooks's `examples/jobs_bench` on both transports
(`JOB_TRANSPORT=database` and `redis`), graphile-worker 0.17 in its documented
fast configuration, and BullMQ's worker, all at concurrency 24 on one private
PostgreSQL 15 (fsync on) and Redis 7, in interleaved rounds (medians).

For each contender and size (10,000 and 50,000 no-op jobs, after 1,000 untimed
warm-up jobs):

- enqueue + run: jobs recorded in batches of 50 (one transaction each, awaited
  one after the other) while the workers run, until the last has finished;
- drain (50,000): the jobs recorded while nothing runs them, then the time
  until all have finished once the workers may take them (AccuBooks: its
  no-op handler holds the jobs already taken until a gate opens;
  graphile-worker: its runner starts; BullMQ: its worker scenario, jobs
  pre-added);
- commits per job: the delta of `pg_stat_database.xact_commit` of the
  contender's own database over the timed part (read 1.2 s after it ends,
  once the backends have flushed their statistics), divided by the jobs.

graphile-worker is installed with npm into `target/bench-graphile/` (kept, so
reruns are fast); the script it runs is written there from GRAPHILE_SCRIPT.

    BENCH_ONLY=jobs scripts/bench            # through bench.py, rewrites row 9's section
    python3 scripts/lib/bench_jobs.py        # alone: prints the section
    BENCH_ROUNDS=1 BENCH_JOB_SIZES=10000 python3 scripts/lib/bench_jobs.py

Environment: BENCH_ROUNDS (3), BENCH_JOB_SIZES (`10000,50000`), BENCH_JOB_DRAIN
(50000; 0 skips the drains), BENCH_JOB_CONCURRENCY (24), BENCH_BIN_DIR (where
`jobs_bench` is), BENCH_JOB_CONTENDERS (all of `graphile,database,redis,bullmq`).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_bullmq  # noqa: E402
import services as sv  # noqa: E402
from services import log  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SIZES = [int(s) for s in os.environ.get("BENCH_JOB_SIZES", "10000,50000").split(",") if s]
DRAIN = int(os.environ.get("BENCH_JOB_DRAIN", "50000"))
CONCURRENCY = int(os.environ.get("BENCH_JOB_CONCURRENCY", "24"))
CONTENDERS = os.environ.get("BENCH_JOB_CONTENDERS", "graphile,database,redis,bullmq").split(",")
BIN = Path(os.environ.get("BENCH_BIN_DIR", sv.REPO / "target-bench/release/examples"))
LOG_DIR = Path(os.environ.get("BENCH_LOG_DIR") or tempfile.mkdtemp(prefix="accubooks-bench-jobs-"))
BATCH = 50
WARMUP = 1000
GRAPHILE_VERSION = "0.17.3"
GRAPHILE_DIR = sv.REPO / "target" / "bench-graphile"
# Statistics of a backend reach pg_stat_database at most a second after its
# last transaction (PostgreSQL 15 flushes them when idle, at most once a second).
STATS_FLUSH_S = 1.2
TIMEOUT_S = 900

# graphile-worker's side, in its documented fast configuration (the options of
# its perfTest and of "Performance" in its docs). Marks are answered on stdin.
GRAPHILE_SCRIPT = r"""
const { run, makeWorkerUtils } = require("graphile-worker");
const readline = require("readline");

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, v, i, a) =>
  (i % 2 === 0 ? acc.concat([[v.replace(/^--/, ""), a[i + 1]]]) : acc), []));
const url = args.url, jobs = Number(args.jobs), scenario = args.scenario;
const warmup = Number(args.warmup || 1000), batch = Number(args.batch || 50);
const concurrency = Number(args.concurrency || 24);
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function mark(what) {
  process.stdout.write(`graphile: mark ${what}\n`);
  const line = await lines.next();
  if (line.done) throw new Error(`stdin closed: nobody answered the mark ${what}`);
}
const { Logger } = require("graphile-worker");
const logger = new Logger(() => (level, message) => { if (level === "error") console.error(message); });
let done = 0;
const options = () => ({
  connectionString: url, noHandleSignals: true, logger,
  preset: { worker: {
    concurrentJobs: concurrency, maxPoolSize: concurrency + 1,
    localQueue: { size: 500 }, completeJobBatchDelay: 0, failJobBatchDelay: 0,
  } },
  taskList: { noop: async () => { done += 1; } },
});
const payload = { [require("crypto").randomUUID()]: {} };
async function add(utils, n) {
  for (let i = 0; i < n; i += batch) {
    const specs = [];
    for (let j = i; j < Math.min(n, i + batch); j++) specs.push({ identifier: "noop", payload });
    await utils.addJobs(specs);
  }
}
async function finished(utils, target) {
  const deadline = Date.now() + 900000;
  while (done < target) {
    if (Date.now() > deadline) throw new Error(`${done} of ${target} ran`);
    await new Promise((r) => setTimeout(r, 1));
  }
  // A job is finished once its row is deleted (completions are batched).
  for (;;) {
    const { rows } = await utils.withPgClient((c) =>
      c.query("select count(*)::int as n from graphile_worker._private_jobs"));
    if (rows[0].n === 0) return;
    if (Date.now() > deadline) throw new Error(`${rows[0].n} jobs left`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
(async () => {
  const utils = await makeWorkerUtils({ connectionString: url, logger });
  await utils.migrate();
  let runner = await run(options());
  await add(utils, warmup);
  await finished(utils, warmup);
  let out;
  if (scenario === "enqueue_run") {
    await mark("enqueue_run start");
    const t0 = process.hrtime.bigint();
    await add(utils, jobs);
    await finished(utils, warmup + jobs);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    await mark("enqueue_run end");
    out = { scenario, jobs, seconds: s, jobs_per_second: Math.round(jobs / s) };
    await runner.stop();
  } else {
    await runner.stop();
    done = 0;
    const r0 = process.hrtime.bigint();
    await add(utils, jobs);
    const recorded = Number(process.hrtime.bigint() - r0) / 1e9;
    await mark("drain start");
    const t0 = process.hrtime.bigint();
    runner = await run(options());
    await finished(utils, jobs);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    await mark("drain end");
    out = { scenario, jobs, recorded_s: recorded, seconds: s, jobs_per_second: Math.round(jobs / s) };
    await runner.stop();
  }
  await utils.release();
  out.graphile_worker = require("graphile-worker/package.json").version;
  out.node = process.version;
  out.concurrency = concurrency;
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(0);
})().catch((e) => { console.error(e); process.exit(1); });
"""


def ensure_graphile() -> Path:
    """graphile-worker GRAPHILE_VERSION under target/bench-graphile (npm, once);
    answers the script's path."""
    GRAPHILE_DIR.mkdir(parents=True, exist_ok=True)
    package = GRAPHILE_DIR / "node_modules" / "graphile-worker" / "package.json"
    if not package.exists() or json.loads(package.read_text())["version"] != GRAPHILE_VERSION:
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("bench_jobs: `npm` is not on PATH; graphile-worker cannot be installed")
        (GRAPHILE_DIR / "package.json").write_text(json.dumps({
            "name": "accubooks-bench-graphile", "version": "0.0.0", "private": True,
            "dependencies": {"graphile-worker": GRAPHILE_VERSION}}, indent=2))
        log(f"bench_jobs: npm install graphile-worker@{GRAPHILE_VERSION} in {GRAPHILE_DIR}")
        r = subprocess.run([npm, "install", "--silent", "--no-audit", "--no-fund"], cwd=GRAPHILE_DIR,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"bench_jobs: npm install failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    script = GRAPHILE_DIR / "bench.cjs"
    script.write_text(GRAPHILE_SCRIPT)
    return script


def xact_commit(pg, database: str) -> int:
    time.sleep(STATS_FLUSH_S)
    return int(pg.psql(f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{database}'").strip())


def drive(argv, env, pg, database: str, on_line=None) -> dict:
    """Runs a contender that prints `<name>: mark <step> start|end` lines and
    waits for an answer to each; answers its JSON result with `commits` per
    step (the xact_commit delta of `database`)."""
    with open(LOG_DIR / "jobs.log", "ab") as err:
        p = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                             text=True)
    assert p.stdin is not None and p.stdout is not None
    result: Any = None
    marks: dict[str, Any] = {}
    try:
        for line in p.stdout:
            line = line.strip()
            if line.startswith("{"):
                result = json.loads(line)
                continue
            if ": mark " in line:
                step, edge = line.split(": mark ", 1)[1].rsplit(" ", 1)
                marks.setdefault(step, {})[edge] = xact_commit(pg, database)
            elif on_line is None or not on_line(line):
                continue
            p.stdin.write("done\n")
            p.stdin.flush()
        p.wait(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    if p.returncode != 0 or result is None:
        raise RuntimeError(f"{shlex.join(argv)} failed ({p.returncode}); log {LOG_DIR / 'jobs.log'}")
    result["commits"] = {step: m["end"] - m["start"] for step, m in marks.items()}
    return result


def run_graphile(pg, script: Path, database: str, scenario: str, jobs: int) -> dict:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("bench_jobs: `node` is not on PATH")
    argv = [node, str(script), "--url", pg.app_url(database), "--jobs", str(jobs), "--scenario", scenario,
            "--warmup", str(WARMUP), "--batch", str(BATCH), "--concurrency", str(CONCURRENCY)]
    r = drive(argv, dict(os.environ), pg, database)
    r["commits_per_job"] = r["commits"][scenario] / jobs
    return r


def run_accubooks(pg, redis, database: str, transport: str, jobs: int, drain: int) -> dict:
    env = sv.server_env(0, pg.app_url(database), redis.url(), JOB_TRANSPORT=transport,
                        JOB_CONCURRENCY=str(CONCURRENCY))
    argv = [str(BIN / "jobs_bench"), "--jobs", str(jobs), "--batch", str(BATCH), "--warmup", str(WARMUP),
            "--backlog", "0", "--drain", str(drain), "--marks", "--no-catch-up"]
    r = drive(argv, env, pg, database)
    r["enqueue_complete"]["commits_per_job"] = r["commits"]["enqueue_run"] / jobs
    if "drain" in r:
        r["drain"]["commits_per_job"] = r["commits"]["drain"] / drain
    return r


def row9(pg, redis) -> dict:
    """Every contender, ROUNDS interleaved rounds: {"runs": [...], "medians": {...}}."""
    runs = []
    script = ensure_graphile() if "graphile" in CONTENDERS else None
    for name in ("graphile", "database", "redis"):
        if name in CONTENDERS:
            pg.create_app_database(f"jobs_{name}")
    for round_ in range(ROUNDS):
        for size in SIZES:
            drain = DRAIN if size == max(SIZES) else 0
            for name in CONTENDERS:
                log(f"bench_jobs: round {round_ + 1}/{ROUNDS}, {size:,} jobs, {name}")
                if name == "graphile":
                    assert script is not None
                    r = run_graphile(pg, script, "jobs_graphile", "enqueue_run", size)
                    runs.append({"round": round_, "contender": name, "size": size, "step": "enqueue_run",
                                 "jobs_per_second": r["jobs_per_second"],
                                 "commits_per_job": r["commits_per_job"], "raw": r})
                    if drain:
                        r = run_graphile(pg, script, "jobs_graphile", "drain", drain)
                        runs.append({"round": round_, "contender": name, "size": drain, "step": "drain",
                                     "jobs_per_second": r["jobs_per_second"],
                                     "commits_per_job": r["commits_per_job"], "raw": r})
                elif name in ("database", "redis"):
                    r = run_accubooks(pg, redis, f"jobs_{name}", name, size, drain)
                    e = r["enqueue_complete"]
                    runs.append({"round": round_, "contender": name, "size": size, "step": "enqueue_run",
                                 "jobs_per_second": e["jobs_per_second"],
                                 "commits_per_job": e["commits_per_job"], "raw": r})
                    if "drain" in r:
                        d = r["drain"]
                        runs.append({"round": round_, "contender": name, "size": drain, "step": "drain",
                                     "jobs_per_second": d["jobs_per_second"],
                                     "commits_per_job": d["commits_per_job"], "raw": r})
                elif name == "bullmq":
                    bench_bullmq.ensure_installed()
                    r = bench_bullmq.run_scenario(redis.port, drain or size, "worker", CONCURRENCY)
                    runs.append({"round": round_, "contender": name, "size": drain or size, "step": "drain",
                                 "jobs_per_second": r["jobs_per_second"], "commits_per_job": None, "raw": r})
                log(f"bench_jobs: {json.dumps(runs[-1]['raw'])}")
    with open(LOG_DIR / "jobs_runs.json", "w") as f:
        json.dump(runs, f, indent=1)
    medians: dict[Any, Any] = {}
    for run in runs:
        key = (run["contender"], run["step"], run["size"])
        medians.setdefault(key, []).append(run)
    out = {}
    for (contender, step, size), rs in medians.items():
        rates = [r["jobs_per_second"] for r in rs]
        commits = [r["commits_per_job"] for r in rs if r["commits_per_job"] is not None]
        out[f"{contender}/{step}/{size}"] = {
            "jobs_per_second": statistics.median(rates), "all": rates,
            "commits_per_job": statistics.median(commits) if commits else None}
    return {"rounds": ROUNDS, "concurrency": CONCURRENCY, "medians": out}


HEADING = "## Durable job queues side by side (row 9)"
LABELS = {"graphile": f"graphile-worker {GRAPHILE_VERSION}", "database": "AccuBooks, `JOB_TRANSPORT=database`",
          "redis": "AccuBooks, `JOB_TRANSPORT=redis`", "bullmq": "BullMQ worker (jobs pre-added)"}


def section(r9: dict, when: str) -> str:
    m = r9["medians"]
    def cell(contender, step, size):
        v = m.get(f"{contender}/{step}/{size}")
        if not v:
            return "–"
        c = f", {v['commits_per_job']:.3f} commits/job" if v["commits_per_job"] is not None else ""
        return f"{v['jobs_per_second']:,.0f}/s{c}"
    sizes = sorted({int(k.split("/")[2]) for k in m if "/enqueue_run/" in k})
    head = f"| contender, concurrency {r9['concurrency']} | " + " | ".join(
        f"enqueue + run {s:,}" for s in sizes) + f" | drain of {DRAIN:,} |"
    rows = [head, "|---" * (len(sizes) + 2) + "|"]
    for name in CONTENDERS:
        rows.append(f"| {LABELS[name]} | " + " | ".join(cell(name, "enqueue_run", s) for s in sizes)
                    + f" | {cell(name, 'drain', DRAIN)} |")
    return f"""{HEADING}

- Measured {when}; medians of {r9['rounds']} interleaved rounds (each contender in turn, then the
  next size), one private PostgreSQL 15 (fsync on) and Redis 7, the same 2 cores.
- `scripts/lib/bench_jobs.py` (its docstring says what each figure times); graphile-worker in
  its documented fast configuration (`concurrency: 24`, `maxPoolSize: 25`,
  `localQueue: {{size: 500}}`, `completeJobBatchDelay: 0`), jobs added with `addJobs` in
  batches of 50, as AccuBooks's `enqueue` of 50; commits per job from
  `pg_stat_database.xact_commit` of the contender's own database over the timed part.
- Run it: `BENCH_ONLY=jobs scripts/bench`, or with `jobs_bench` built
  (`cargo build --release --example jobs_bench`):
  `BENCH_BIN_DIR=$CARGO_TARGET_DIR/release/examples python3 scripts/lib/bench_jobs.py`.

{chr(10).join(rows)}
"""


def main() -> int:
    sv.install_cleanup()
    if {"database", "redis"} & set(CONTENDERS) and not (BIN / "jobs_bench").exists():
        raise SystemExit(f"missing {BIN / 'jobs_bench'}: cargo build --release --example jobs_bench")
    pg = sv.Postgres(log_dir=LOG_DIR)
    redis = sv.Redis(log_dir=LOG_DIR)
    log(f"bench_jobs: postgres on {pg.port}, redis on {redis.port}, logs in {LOG_DIR}")
    started = time.time()
    r9 = row9(pg, redis)
    print(json.dumps(r9, indent=1))
    print(section(r9, f"in {(time.time() - started) / 60:.1f} min"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

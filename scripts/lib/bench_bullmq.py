#!/usr/bin/env python3
"""The BullMQ peer of scripts/bench (Python 3 standard library only): the two
scenarios of BullMQ's own benchmark suite, taskforcesh/bullmq-bench
(src/bullmq-suite.ts: "queue-add-bulk" and "worker-concurrent"), run by
bench/bullmq/bench.mjs with Node against a Redis on loopback.

    import bench_bullmq
    bench_bullmq.bullmq(redis.port, 10000)
    # {"bulk-add": {"scenario": "bulk-add", "jobs": 10000, "seconds": ..., "jobs_per_second": ...,
    #               "warmup": 1000, "batch": 50, "bullmq": "6.7.0", "node": "v20..."},
    #  "worker":   {"scenario": "worker", ..., "concurrency": 100, "pre_add_batch": 100, ...}}

`bullmq()` installs bench/bullmq's locked dependencies (`npm ci --silent`) when
its node_modules is missing. Each scenario obliterates its own queue before and
after it runs, so calls are independent; the Redis must be a private one (see
services.Redis), never a shared or system Redis.

Command line: `python3 scripts/lib/bench_bullmq.py [--jobs N] [--concurrency C]`
starts a private Redis through services.py on a free loopback port, runs both
scenarios (10000 jobs by default) and prints their results as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import services as sv  # noqa: E402
from services import log  # noqa: E402

BENCH_DIR = sv.REPO / "bench" / "bullmq"
SCRIPT = BENCH_DIR / "bench.mjs"
SCENARIOS = ("bulk-add", "worker")
# The worker-concurrent benchmark of bullmq-bench runs its Worker with concurrency 100.
CONCURRENCY = 100
TIMEOUT_S = 600


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("bench_bullmq: `node` is not on PATH (Node 20 or newer is needed)")
    return node


def ensure_installed() -> None:
    """`npm ci --silent` in bench/bullmq unless its node_modules exists."""
    if (BENCH_DIR / "node_modules").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("bench_bullmq: `npm` is not on PATH and bench/bullmq/node_modules is missing")
    log("bench_bullmq: npm ci --silent in bench/bullmq")
    r = subprocess.run([npm, "ci", "--silent", "--no-audit", "--no-fund"], cwd=BENCH_DIR,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"bench_bullmq: npm ci failed ({r.returncode}):\n{r.stdout}{r.stderr}")


def run_scenario(redis_port: int, jobs: int, scenario: str, concurrency: int = CONCURRENCY) -> dict:
    """One run of bench.mjs; returns its JSON line as a dict."""
    argv = [_node(), str(SCRIPT), "--port", str(redis_port), "--jobs", str(jobs), "--scenario", scenario,
            "--timeout-s", str(TIMEOUT_S)]
    if scenario == "worker":
        argv += ["--concurrency", str(concurrency)]
    r = subprocess.run(argv, cwd=BENCH_DIR, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=TIMEOUT_S + 120)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    if len(lines) != 1:
        raise RuntimeError(f"{' '.join(argv)}: expected one JSON line, got:\n{r.stdout}")
    return json.loads(lines[0])


def bullmq(redis_port: int, jobs: int, *, concurrency: int = CONCURRENCY) -> dict:
    """Both scenarios of BullMQ's benchmark against the Redis on 127.0.0.1:redis_port:
    {"bulk-add": {...}, "worker": {...}}, each with scenario, jobs, seconds and
    jobs_per_second (plus warmup, batch or concurrency, and the bullmq and node versions)."""
    ensure_installed()
    return {scenario: run_scenario(redis_port, jobs, scenario, concurrency) for scenario in SCENARIOS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_bullmq.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY, help="the worker scenario's concurrency")
    args = parser.parse_args(argv)
    sv.install_cleanup()
    redis = sv.Redis()
    log(f"bench_bullmq: private Redis on 127.0.0.1:{redis.port}")
    try:
        results = bullmq(redis.port, args.jobs, concurrency=args.concurrency)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    finally:
        redis.kill()
    for r in results.values():
        log(f"bench_bullmq: {r['scenario']}: {r['jobs']} jobs in {r['seconds']:.3f} s = "
            f"{r['jobs_per_second']:,.0f} jobs/s")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

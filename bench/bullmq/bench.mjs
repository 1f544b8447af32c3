#!/usr/bin/env node
// The BullMQ peer of scripts/bench: one scenario of BullMQ's own benchmark suite
// against a Redis on 127.0.0.1:PORT, reported as one JSON line on stdout.
//
//   node bench/bullmq/bench.mjs --port P --jobs N --scenario bulk-add|worker [--concurrency C]
//        [--batch B] [--warmup W] [--host H] [--timeout-s S]
//
//   {"scenario":"bulk-add","jobs":N,"seconds":...,"jobs_per_second":...,...}
//
// The scenarios follow taskforcesh/bullmq-bench (github.com/taskforcesh/bullmq-bench, commit
// fd3766f1d0c7081d5b4124512064d7bd05f1b45e), the suite BullMQ's authors use to compare BullMQ
// versions, runtimes and Redis setups. Its src/bullmq-suite.ts defines four benchmarks; the two
// reproduced here are:
//
//   bulk-add  = "queue-add-bulk"    (src/bullmq-queue-add.ts, runBulk): warmupJobsNum 1000,
//               benchmarkJobsNum 10000, bulkSize 50, job data
//               generateSampleDataObject(widthFactor 1, depthFactor 1), name "test", opts {}.
//   worker    = "worker-concurrent" (src/bullmq-worker.ts): warmupJobsNum 1000,
//               benchmarkJobsNum 10000, all pre-added with addBulk in bulks of
//               QUEUE_ADD_BULK_SIZE = 100, workerOptions { concurrency: 100 }, job data and the
//               processor's return value generateSampleDataObject(1, 1), no failures.
//
// generateSampleDataObject(1, 1) (src/util.ts) is an object with one key, a random UUID, whose
// value is {}; like the suite, one such object is made per run and used as every job's data.
// The connection is the suite's src/connection.ts: plain ioredis options, auto-pipelining off.
//
// Where this differs from the suite, on purpose:
// - N (--jobs) replaces benchmarkJobsNum; --warmup (default 1000, as in the suite) jobs go
//   first, untimed, so connection set-up, script loading and the JIT stay out of the figure.
// - The suite starts its stopwatch while filling the bulk that holds the last warm-up job and
//   stops it before the last bulk is sent, then divides warmup+benchmark jobs by that time
//   (about 10 % high). Here the clock covers exactly the N timed jobs: for bulk-add from after
//   the last warm-up addBulk resolved to after the last timed addBulk resolved; for the worker
//   from the W-th to the (W+N)-th 'completed' event (the suite counts processor calls, i.e.
//   job starts); jobs_per_second = N / seconds.
// - The suite uses a random queue name and deletes its keys afterwards with SCAN + DEL; here
//   the queue has a fixed name per scenario and is obliterated (force) before the run, so a
//   run never sees an earlier one's jobs, and again afterwards so Redis is left empty.
// - After the run it checks that Redis holds W+N completed (worker) or waiting (bulk-add) jobs.

import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { createConnection } from "node:net";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";

import { Queue, Worker } from "bullmq";

const require = createRequire(import.meta.url);
const BULLMQ_VERSION = require("bullmq/package.json").version;

// src/bullmq-suite.ts and src/bullmq-worker.ts of taskforcesh/bullmq-bench.
const SUITE = {
  warmup: 1000,
  bulkAddBatch: 50, // "queue-add-bulk": bulkSize
  workerPreAddBatch: 100, // bullmq-worker.ts: QUEUE_ADD_BULK_SIZE
  workerConcurrency: 100, // "worker-concurrent": workerOptions.concurrency
};
const JOB_NAME = "test";

function usage(message) {
  if (message) console.error(`bench.mjs: ${message}`);
  console.error(
    "usage: node bench.mjs --port P --jobs N --scenario bulk-add|worker [--concurrency C] " +
      "[--batch B] [--warmup W] [--host H] [--timeout-s S]",
  );
  process.exit(2);
}

function positiveInt(name, text, { zero = false } = {}) {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < (zero ? 0 : 1)) usage(`--${name} must be an integer ≥ ${zero ? 0 : 1}, got ${text}`);
  return n;
}

function options() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        port: { type: "string" },
        host: { type: "string", default: "127.0.0.1" },
        jobs: { type: "string" },
        scenario: { type: "string" },
        concurrency: { type: "string" },
        batch: { type: "string" },
        warmup: { type: "string" },
        "timeout-s": { type: "string", default: "600" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (e) {
    usage(e.message);
  }
  if (values.help) usage();
  const port = positiveInt("port", values.port);
  const jobs = positiveInt("jobs", values.jobs);
  if (port === undefined) usage("--port is required (the Redis to use; there is no default)");
  if (jobs === undefined) usage("--jobs is required");
  if (values.scenario !== "bulk-add" && values.scenario !== "worker") {
    usage(`--scenario must be bulk-add or worker, got ${values.scenario}`);
  }
  const worker = values.scenario === "worker";
  if (!worker && values.concurrency !== undefined) usage("--concurrency applies to the worker scenario only");
  return {
    scenario: values.scenario,
    host: values.host,
    port,
    jobs,
    warmup: positiveInt("warmup", values.warmup, { zero: true }) ?? SUITE.warmup,
    batch: positiveInt("batch", values.batch) ?? (worker ? SUITE.workerPreAddBatch : SUITE.bulkAddBatch),
    concurrency: positiveInt("concurrency", values.concurrency) ?? SUITE.workerConcurrency,
    timeoutMs: (positiveInt("timeout-s", values["timeout-s"]) ?? 600) * 1000,
  };
}

// src/util.ts generateSampleDataObject(widthFactor = 1, depthFactor = 1).
function sampleDataObject(widthFactor = 1, depthFactor = 1) {
  const result = {};
  for (let i = 0; i < widthFactor; i++) {
    let object = {};
    result[randomUUID()] = object;
    for (let j = 1; j < depthFactor; j++) {
      const inner = {};
      object[randomUUID()] = inner;
      object = inner;
    }
  }
  return result;
}

// src/connection.ts: ioredis options, auto-pipelining off unless asked for.
function connection(opts) {
  return { host: opts.host, port: opts.port, enableAutoPipelining: false };
}

// Fails fast when nothing answers PING on host:port (ioredis would retry forever).
function preflight(opts, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: opts.host, port: opts.port });
    let reply = "";
    const fail = (why) => {
      socket.destroy();
      reject(new Error(`no Redis answers PING on ${opts.host}:${opts.port}: ${why}`));
    };
    socket.setTimeout(timeoutMs, () => fail(`no answer in ${timeoutMs} ms`));
    socket.on("error", (e) => fail(e.message));
    socket.on("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      reply += chunk;
      if (!reply.includes("\r\n")) return;
      socket.destroy();
      if (reply.startsWith("+PONG")) resolve();
      else reject(new Error(`${opts.host}:${opts.port} answered PING with ${JSON.stringify(reply.trim())}`));
    });
  });
}

async function addInBatches(queue, count, batch, data) {
  for (let added = 0; added < count; ) {
    const bulk = [];
    for (let i = 0; i < batch && added < count; i++, added++) {
      bulk.push({ name: JOB_NAME, data, opts: {} });
    }
    await queue.addBulk(bulk);
  }
}

async function bulkAdd(opts, queue) {
  const data = sampleDataObject(1, 1);
  await addInBatches(queue, opts.warmup, opts.batch, data);
  const start = performance.now();
  await addInBatches(queue, opts.jobs, opts.batch, data);
  const seconds = (performance.now() - start) / 1000;
  const counts = await queue.getJobCounts("waiting", "prioritized", "delayed");
  const total = counts.waiting + counts.prioritized + counts.delayed;
  if (total !== opts.warmup + opts.jobs) {
    throw new Error(`expected ${opts.warmup + opts.jobs} queued jobs, Redis holds ${JSON.stringify(counts)}`);
  }
  return { seconds, extra: { batch: opts.batch } };
}

async function worker(opts, queue) {
  const data = sampleDataObject(1, 1);
  const result = sampleDataObject(1, 1);
  const total = opts.warmup + opts.jobs;
  await addInBatches(queue, total, opts.batch, data);

  let completed = 0;
  let start = 0;
  let end = 0;
  let w;
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`only ${completed} of ${total} jobs completed in ${opts.timeoutMs / 1000} s`)),
      opts.timeoutMs,
    );
    const finish = (error) => {
      clearTimeout(timer);
      if (error) reject(error);
      else resolve();
    };
    if (opts.warmup === 0) start = performance.now();
    w = new Worker(queue.name, async () => result, {
      connection: connection(opts),
      concurrency: opts.concurrency,
    });
    w.on("completed", () => {
      completed++;
      if (completed === opts.warmup) {
        start = performance.now();
      } else if (completed === total) {
        end = performance.now();
        finish();
      }
    });
    w.on("failed", (job, error) => finish(new Error(`job ${job?.id} failed: ${error?.message}`)));
    w.on("error", (error) => finish(error));
  });
  try {
    await done;
  } finally {
    await w.close();
  }
  const counts = await queue.getJobCounts("completed", "failed", "waiting", "active");
  if (counts.completed !== total) {
    throw new Error(`expected ${total} completed jobs, Redis holds ${JSON.stringify(counts)}`);
  }
  return { seconds: (end - start) / 1000, extra: { concurrency: opts.concurrency, pre_add_batch: opts.batch } };
}

async function main() {
  const opts = options();
  // A last resort (unref'd, so it never keeps the process alive): a run that hangs ends.
  setTimeout(() => {
    console.error(`bench.mjs ${opts.scenario}: still running after ${opts.timeoutMs / 1000 + 60} s; giving up`);
    process.exit(1);
  }, opts.timeoutMs + 60_000).unref();
  try {
    await preflight(opts);
  } catch (e) {
    console.error(`bench.mjs ${opts.scenario}: ${e.message}`);
    process.exitCode = 1;
    return;
  }
  const queue = new Queue(`accubooks-bench-${opts.scenario}`, { connection: connection(opts) });
  // Without a listener an 'error' event would throw; connection errors are reported, and
  // whatever they break fails the run below.
  queue.on("error", (e) => console.error(`bench.mjs ${opts.scenario}: queue error: ${e?.message ?? e}`));
  let exitCode = 0;
  try {
    await queue.waitUntilReady();
    // A clean queue, so repeated runs are independent.
    await queue.obliterate({ force: true });
    const run = opts.scenario === "bulk-add" ? bulkAdd : worker;
    const { seconds, extra } = await run(opts, queue);
    await queue.obliterate({ force: true });
    console.log(
      JSON.stringify({
        scenario: opts.scenario,
        jobs: opts.jobs,
        seconds: Number(seconds.toFixed(6)),
        jobs_per_second: Number((opts.jobs / seconds).toFixed(1)),
        warmup: opts.warmup,
        ...extra,
        bullmq: BULLMQ_VERSION,
        node: process.version,
      }),
    );
  } catch (e) {
    console.error(`bench.mjs ${opts.scenario}: ${e?.stack ?? e}`);
    exitCode = 1;
  } finally {
    await queue.close();
  }
  process.exitCode = exitCode;
}

await main();

//! Throughput and recovery of the background jobs (row 9 of `scripts/bench`,
//! next to BullMQ's own benchmark on the same Redis).
//!
//! Builds an instance from the environment (`DATABASE_URL` of PostgreSQL,
//! `REDIS_URL`, `JOB_TRANSPORT=redis`, `JOB_CONCURRENCY`, …) with a no-op job
//! kind on the `report-generation` queue, registers an organization, and
//! measures:
//!
//! 1. **enqueue**: `--jobs` no-op jobs recorded through the outbox with
//!    [`AccuBooks::enqueue`] in batches of `--batch` (one transaction each,
//!    like BullMQ's `addBulk`), then the time until all have succeeded;
//! 2. **drain**: `--drain` jobs recorded while the no-op handler holds the
//!    jobs the workers took (a gate), then the time from the gate's opening
//!    until all have succeeded (either transport);
//! 3. **backlog**: `--backlog` jobs recorded while Redis is down, then the
//!    time from Redis being back until all have succeeded (aim: under 5 s);
//! 4. **catch-up** (unless `--no-catch-up`): a weekly recurring invoice starting 52 weeks ago
//!    (53 occurrences, issued), the time until its 53 invoices exist
//!    (aim: under 1 s).
//!
//! Step 2 needs someone to stop and start Redis: the example prints
//! `jobs_bench: stop redis` and waits for a line on stdin (sent once Redis
//! is down), then `jobs_bench: start redis` and waits for a line sent once
//! Redis answers again; `scripts/lib/bench.py` does both (`--backlog 0`
//! skips the step). With `--marks` it also prints `jobs_bench: mark <step>
//! start|end` around the timed parts of steps 1 and 2 and waits for a line
//! (the driver reads `pg_stat_database.xact_commit` there). Completions are read from `accubooks_jobs_total` of
//! `render_metrics()`, which counts an attempt once its `succeeded` row has
//! committed. The results are one JSON line on stdout.
//!
//! ```text
//! DATABASE_URL=postgres://accubooks@127.0.0.1:5432/accubooks REDIS_URL=redis://127.0.0.1:6379 \
//!   JOB_TRANSPORT=redis JOB_CONCURRENCY=100 JWT_SECRET=… SESSION_SECRET=… \
//!   cargo run --release --example jobs_bench -- --jobs 10000 --backlog 10000
//! ```

use std::time::{Duration, Instant};

use accubooks_core::jobs::{JobContext, JobEnv, JobFailure, NewJob, Queue};
use accubooks_core::usecases::Answer;
use accubooks_core::{AccuBooks, Config, telemetry};
use futures::future::BoxFuture;
use serde_json::json;

const KIND: &str = "bench-noop";
const QUEUE: Queue = accubooks_core::reporting::QUEUE;
/// How long any wait may last before the run gives up.
const LIMIT: Duration = Duration::from_secs(600);

/// Whether the no-op handler may return: closed while a drain's backlog
/// is recorded, so the jobs the workers already took wait in the handler
/// and the rest wait in the queue.
fn gate() -> &'static tokio::sync::watch::Sender<bool> {
    static GATE: std::sync::OnceLock<tokio::sync::watch::Sender<bool>> = std::sync::OnceLock::new();
    GATE.get_or_init(|| tokio::sync::watch::channel(true).0)
}

fn noop<'a>(_: &'a JobEnv, _: &'a JobContext) -> BoxFuture<'a, Result<(), JobFailure>> {
    Box::pin(async {
        let mut open = gate().subscribe();
        if !*open.borrow() {
            let _ = open.wait_for(|open| *open).await;
        }
        Ok(())
    })
}

struct Args {
    jobs: usize,
    batch: usize,
    warmup: usize,
    backlog: usize,
    drain: usize,
    marks: bool,
    catch_up: bool,
}

fn args() -> Args {
    let mut args = Args {
        jobs: 10_000,
        batch: 50,
        warmup: 1_000,
        backlog: 10_000,
        drain: 0,
        marks: false,
        catch_up: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let slot = match flag.as_str() {
            "--jobs" => &mut args.jobs,
            "--batch" => &mut args.batch,
            "--warmup" => &mut args.warmup,
            "--backlog" => &mut args.backlog,
            "--drain" => &mut args.drain,
            "--marks" => {
                args.marks = true;
                continue;
            }
            "--no-catch-up" => {
                args.catch_up = false;
                continue;
            }
            _ => usage(&flag),
        };
        *slot = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage(&flag));
    }
    args.batch = args.batch.max(1);
    args
}

fn usage(flag: &str) -> ! {
    eprintln!("jobs_bench: bad argument {flag}");
    eprintln!(
        "usage: jobs_bench [--jobs N] [--batch B] [--warmup W] [--backlog N] [--drain N] \
         [--marks] [--no-catch-up]"
    );
    std::process::exit(2)
}

/// Attempts of the no-op kind's queue that succeeded in this process.
fn succeeded(app: &AccuBooks) -> u64 {
    let queue = format!("queue=\"{}\"", QUEUE.as_str());
    app.render_metrics()
        .lines()
        .filter(|l| l.starts_with("accubooks_jobs_total{"))
        .filter(|l| l.contains("outcome=\"succeeded\"") && l.contains(&queue))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Waits until `target` attempts have succeeded; answers when the first of
/// them (after `from`) and the last were seen.
async fn wait_succeeded(app: &AccuBooks, from: u64, target: u64) -> (Instant, Instant) {
    let started = Instant::now();
    let mut first = None;
    loop {
        let n = succeeded(app);
        if n > from && first.is_none() {
            first = Some(Instant::now());
        }
        if n >= target {
            let now = Instant::now();
            return (first.unwrap_or(now), now);
        }
        assert!(
            started.elapsed() < LIMIT,
            "{n} of {target} succeeded after {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Records `count` no-op jobs in batches; answers the time it took.
async fn enqueue(
    app: &AccuBooks,
    organization: &accubooks_core::OrganizationId,
    tag: &str,
    count: usize,
    batch: usize,
) -> Duration {
    let data = json!({ uuid::Uuid::new_v4().to_string(): {} });
    let started = Instant::now();
    let mut i = 0;
    while i < count {
        let jobs = (i..count.min(i + batch))
            .map(|n| NewJob {
                queue: QUEUE,
                kind: KIND,
                unique_key: format!("{tag}-{n}"),
                payload: data.clone(),
            })
            .collect::<Vec<_>>();
        i += jobs.len();
        app.enqueue(organization, jobs).await.expect("enqueue");
    }
    started.elapsed()
}

fn per_second(count: usize, d: Duration) -> u128 {
    (count as u128 * 1_000_000) / d.as_micros().max(1)
}

/// Prints `say` for the driver and waits for its answer line on stdin.
async fn handshake(say: &str) -> Instant {
    println!("jobs_bench: {say}");
    let read = tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new()));
    let read = read.await.expect("the stdin reader").expect("stdin");
    assert!(read > 0, "stdin closed: nobody answered `{say}`");
    Instant::now()
}

/// With `--marks`, prints `jobs_bench: mark <what>` and waits for the
/// driver's answer (it reads PostgreSQL's commit counter there).
async fn mark(marks: bool, what: &str) {
    if marks {
        handshake(&format!("mark {what}")).await;
    }
}

async fn available(app: &AccuBooks, name: &str, up: bool) -> Instant {
    let started = Instant::now();
    while app.registry().get(name).is_some_and(|d| d.is_available()) != up {
        assert!(started.elapsed() < LIMIT, "{name} never turned {up}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Instant::now()
}

#[tokio::main]
async fn main() {
    let args = args();
    let config = Config::from_env_or_exit();
    telemetry::init(config.environment);
    let concurrency = config.jobs.concurrency;
    let transport = config.jobs.transport.as_str();
    let app = AccuBooks::builder(config)
        .job_handler(KIND, QUEUE, noop)
        .build()
        .await
        .expect("the instance builds");
    available(&app, "database", true).await;
    if transport == "redis" {
        available(&app, "redis", true).await;
    }
    while !app.database().is_migrated() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let registration = serde_json::from_value(json!({
        "email": format!("jobs-bench-{}@example.com", uuid::Uuid::new_v4().simple()),
        "password": "correct horse battery",
        "organization": "Jobs Bench",
    }))
    .expect("a registration");
    let owner =
        accubooks_core::identity::register(app.database(), app.password_hashing(), registration)
            .await
            .expect("registration succeeds");
    let org = accubooks_core::OrganizationId::from(owner.organization);
    let run = uuid::Uuid::new_v4().simple().to_string();

    // Warm-up (connections, prepared statements, the streams and group).
    let mut done = succeeded(&app);
    enqueue(
        &app,
        &org,
        &format!("{run}-warmup"),
        args.warmup,
        args.batch,
    )
    .await;
    wait_succeeded(&app, done, done + args.warmup as u64).await;

    // 1. Enqueue, then all succeeded.
    mark(args.marks, "enqueue_run start").await;
    done = succeeded(&app);
    let started = Instant::now();
    let enqueued = enqueue(&app, &org, &format!("{run}-a"), args.jobs, args.batch).await;
    let (_, last) = wait_succeeded(&app, done, done + args.jobs as u64).await;
    let completed = last - started;
    mark(args.marks, "enqueue_run end").await;
    let mut out = json!({
        "transport": transport,
        "concurrency": concurrency,
        "batch": args.batch,
        "warmup": args.warmup,
        "enqueue": {"jobs": args.jobs, "seconds": enqueued.as_secs_f64(),
                    "jobs_per_second": per_second(args.jobs, enqueued)},
        "enqueue_complete": {"jobs": args.jobs, "seconds": completed.as_secs_f64(),
                             "jobs_per_second": per_second(args.jobs, completed)},
    });

    // 2. A backlog recorded while the handler holds the jobs the workers
    // took, then drained: from the gate's opening until all succeeded.
    if args.drain > 0 {
        gate().send_replace(false);
        done = succeeded(&app);
        let recorded = enqueue(&app, &org, &format!("{run}-d"), args.drain, args.batch).await;
        mark(args.marks, "drain start").await;
        let opened = Instant::now();
        gate().send_replace(true);
        let (_, last) = wait_succeeded(&app, done, done + args.drain as u64).await;
        mark(args.marks, "drain end").await;
        out["drain"] = json!({
            "jobs": args.drain,
            "recorded_s": recorded.as_secs_f64(),
            "seconds": (last - opened).as_secs_f64(),
            "jobs_per_second": per_second(args.drain, last - opened),
        });
    }

    // 3. A backlog recorded while Redis is down.
    if args.backlog > 0 {
        handshake("stop redis").await;
        let noticed = Instant::now();
        available(&app, "redis", false).await;
        let noticed = noticed.elapsed();
        done = succeeded(&app);
        let recorded = enqueue(&app, &org, &format!("{run}-b"), args.backlog, args.batch).await;
        let back = handshake("start redis").await;
        let connected = available(&app, "redis", true).await - back;
        let (first, last) = wait_succeeded(&app, done, done + args.backlog as u64).await;
        out["backlog"] = json!({
            "jobs": args.backlog,
            "redis_down_noticed_s": noticed.as_secs_f64(),
            "recorded_s": recorded.as_secs_f64(),
            "redis_connected_s": connected.as_secs_f64(),
            "first_succeeded_s": (first - back).as_secs_f64(),
            "all_succeeded_s": (last - back).as_secs_f64(),
            "drain_jobs_per_second": per_second(args.backlog, last - first),
        });
    }

    // 4. A year of a weekly recurring invoice, caught up.
    if !args.catch_up {
        println!("{out}");
        app.close().await;
        return;
    }
    let books = app.books();
    let customer = serde_json::from_value(json!({"name": "Initech"})).expect("a customer");
    let Answer::Done(customer) = books
        .create_customer(&owner, customer, None)
        .await
        .expect("customer")
    else {
        unreachable!("no idempotency key, no replay")
    };
    let start = chrono::Utc::now().date_naive() - chrono::Days::new(7 * 52);
    let template = serde_json::from_value(json!({
        "customer_id": customer.id,
        "lines": [{"description": "Hosting", "quantity": "1", "unit_price": "49.90", "tax_rate": "0.1"}],
        "schedule": {"frequency": "weekly", "interval": 1, "start": start.to_string()},
        "due_days": 14,
        "auto_issue": true,
    }))
    .expect("a template");
    let started = Instant::now();
    let Answer::Done(template) = books
        .create_recurring_invoice(&owner, template, None)
        .await
        .expect("the template")
    else {
        unreachable!("no idempotency key, no replay")
    };
    let created = started.elapsed();
    let expected = template.occurrences as usize;
    let invoices = loop {
        // Every page of the list, as a client would read it.
        let mut found = 0;
        let mut page = accubooks_core::paging::PageRequest {
            limit: accubooks_core::paging::Limit::MAX,
            after: None,
        };
        loop {
            let filter = accubooks_core::invoicing::InvoiceFilter::default();
            let read = books
                .invoices(&owner, filter, page.clone())
                .await
                .expect("invoices");
            found += read
                .items
                .iter()
                .filter(|i| i.recurring_id == Some(template.id))
                .count();
            match (read.next, read.items.last()) {
                (Some(_), Some(last)) => page.after = Some(last.id),
                _ => break,
            }
        }
        if found >= expected || started.elapsed() > LIMIT {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let caught_up = started.elapsed();
    out["catch_up"] = json!({
        "occurrences": expected,
        "invoices": invoices,
        "template_created_s": created.as_secs_f64(),
        "all_invoices_s": caught_up.as_secs_f64(),
    });
    println!("{out}");
    app.close().await;
}

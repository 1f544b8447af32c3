//! A small HTTP/1.1 load generator for whole-server figures (`scripts/bench`
//! and `scripts/chaos` drive it).
//!
//! It speaks just enough HTTP/1.1 over keep-alive connections (one per
//! concurrent worker) to stay cheap: on a 2-core machine the client shares the
//! CPU with the server under test, and a heavy client would measure itself.
//! Every run prints one JSON line.
//!
//! ```text
//! loadgen get URL                      [--token T] [common options]
//! loadgen post-entries BASE TOKEN      [--idempotency] [--accounts 1000,4000] [--days N]
//! loadgen post-batch BASE TOKEN N      (N entries per request; postings/s = lines/s)
//! loadgen register BASE                (prints the new owner's token)
//! loadgen watch BASE PATH              [--token T] [--field a.b.c] [--interval-ms 10]
//! loadgen post-file BASE PATH FILE     (FILE: one JSON object per line, {"headers":
//!                                       {"Name": "value"}, "body": "…"}, posted in turn)
//!
//! common: --duration SECONDS (default 10) | --requests N, --concurrency C (default 32),
//!         --timeout-ms MS (default 10000), --header 'Name: value' (repeatable),
//!         --timeline (record status transitions with wall-clock times)
//! ```
//!
//! `BASE` is `http://HOST:PORT`. Any status is counted by code; transport
//! failures are counted under `errors`. SIGTERM or SIGINT ends a run early and
//! still prints its results, so a script can stop a `watch` when it is done.

// Only timings and rates are floating point here; no money is computed.
#![allow(clippy::float_arithmetic)]

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chrono::NaiveDate;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Headers larger than this are a broken peer, not a response.
const MAX_HEAD: usize = 64 * 1024;

/// Most transitions one run keeps; a flapping service would otherwise grow
/// the list without bound.
const MAX_TRANSITIONS: usize = 10_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (scenario, options) = match parse_args(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("loadgen: {message}\n\n{}", usage());
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let code = runtime.block_on(async move {
        match run(scenario, options).await {
            Ok(()) => 0,
            Err(message) => {
                eprintln!("loadgen: {message}");
                1
            }
        }
    });
    std::process::exit(code);
}

fn usage() -> &'static str {
    "usage: loadgen get URL | post-entries BASE TOKEN | post-batch BASE TOKEN N | register BASE | watch BASE PATH\n\
     options: --duration S | --requests N, --concurrency C, --timeout-ms MS, --token T, --header 'K: V',\n\
     --idempotency, --accounts CODE,CODE,..., --days N, --start-date YYYY-MM-DD, --amount 1.00,\n\
     --field a.b.c, --interval-ms MS, --timeline, --email E"
}

// ---------------------------------------------------------------- arguments

enum Scenario {
    Get {
        target: Target,
    },
    PostEntries {
        target: Target,
        token: String,
    },
    PostBatch {
        target: Target,
        token: String,
        per_request: u64,
    },
    Register {
        target: Target,
    },
    Watch {
        target: Target,
    },
    PostFile {
        target: Target,
        /// Extra header lines (CRLF-terminated) and body of each request.
        requests: Vec<(String, String)>,
    },
}

impl Scenario {
    fn name(&self) -> &'static str {
        match self {
            Scenario::Get { .. } => "get",
            Scenario::PostEntries { .. } => "post-entries",
            Scenario::PostBatch { .. } => "post-batch",
            Scenario::Register { .. } => "register",
            Scenario::Watch { .. } => "watch",
            Scenario::PostFile { .. } => "post-file",
        }
    }

    fn target(&self) -> &Target {
        match self {
            Scenario::Get { target }
            | Scenario::PostEntries { target, .. }
            | Scenario::PostBatch { target, .. }
            | Scenario::Register { target }
            | Scenario::Watch { target }
            | Scenario::PostFile { target, .. } => target,
        }
    }
}

struct Options {
    duration: Option<Duration>,
    requests: Option<u64>,
    concurrency: usize,
    timeout: Duration,
    token: Option<String>,
    headers: Vec<String>,
    idempotency: bool,
    accounts: Vec<String>,
    days: u32,
    start_date: NaiveDate,
    amount: String,
    field: Option<String>,
    interval: Duration,
    timeline: bool,
    email: Option<String>,
}

/// Where requests go: a resolved address, the `Host` header and the path.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    host: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url:?}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| {
            p.chars().all(|c| c.is_ascii_digit()) && !authority.ends_with(']')
        }) {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{url:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("{url:?}: no address"))?;
        Ok(Target {
            addr,
            host: authority.to_owned(),
            path: path.to_owned(),
        })
    }

    fn with_path(&self, path: &str) -> Target {
        let base = self.path.trim_end_matches('/');
        Target {
            path: format!("{base}{path}"),
            ..self.clone()
        }
    }
}

fn parse_args(args: &[String]) -> Result<(Scenario, Options), String> {
    let mut positional = Vec::new();
    let mut options = Options {
        duration: None,
        requests: None,
        concurrency: 32,
        timeout: Duration::from_millis(10_000),
        token: None,
        headers: Vec::new(),
        idempotency: false,
        accounts: vec!["1000".to_owned(), "4000".to_owned()],
        days: 1,
        start_date: NaiveDate::from_ymd_opt(2026, 1, 31).expect("a valid date"),
        amount: "1.00".to_owned(),
        field: None,
        interval: Duration::from_millis(10),
        timeline: false,
        email: None,
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = |name: &str| {
            iter.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        fn number<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, String> {
            text.parse()
                .map_err(|_| format!("{name}: {text:?} is not a valid number"))
        }
        match arg.as_str() {
            "--duration" => {
                let text = value(arg)?;
                let seconds: f64 = number(arg, text.trim_end_matches('s'))?;
                options.duration = Some(
                    Duration::try_from_secs_f64(seconds)
                        .map_err(|_| format!("--duration: {text:?} is not a duration"))?,
                );
            }
            "--requests" => options.requests = Some(number(arg, &value(arg)?)?),
            "--concurrency" => options.concurrency = number::<usize>(arg, &value(arg)?)?.max(1),
            "--timeout-ms" => options.timeout = Duration::from_millis(number(arg, &value(arg)?)?),
            "--interval-ms" => options.interval = Duration::from_millis(number(arg, &value(arg)?)?),
            "--token" => options.token = Some(value(arg)?),
            "--header" => options.headers.push(value(arg)?),
            "--idempotency" => options.idempotency = true,
            "--timeline" => options.timeline = true,
            "--accounts" => {
                options.accounts = value(arg)?.split(',').map(str::to_owned).collect();
                if options.accounts.len() < 2 {
                    return Err("--accounts needs at least two codes".to_owned());
                }
            }
            "--days" => options.days = number::<u32>(arg, &value(arg)?)?.max(1),
            "--start-date" => {
                let text = value(arg)?;
                options.start_date = NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                    .map_err(|_| format!("--start-date: {text:?} is not YYYY-MM-DD"))?;
            }
            "--amount" => options.amount = value(arg)?,
            "--field" => options.field = Some(value(arg)?),
            "--email" => options.email = Some(value(arg)?),
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            other => positional.push(other.to_owned()),
        }
    }
    let arg = |i: usize, what: &str| {
        positional
            .get(i)
            .cloned()
            .ok_or_else(|| format!("missing {what}"))
    };
    let scenario = match arg(0, "scenario")?.as_str() {
        "get" => Scenario::Get {
            target: Target::parse(&arg(1, "URL")?)?,
        },
        "post-entries" => Scenario::PostEntries {
            target: Target::parse(&arg(1, "BASE")?)?.with_path("/api/journal-entries"),
            token: arg(2, "TOKEN")?,
        },
        "post-batch" => Scenario::PostBatch {
            target: Target::parse(&arg(1, "BASE")?)?.with_path("/api/journal-entries/batch"),
            token: arg(2, "TOKEN")?,
            per_request: arg(3, "N")?
                .parse::<u64>()
                .map_err(|_| "N must be a positive number".to_owned())?
                .max(1),
        },
        "register" => Scenario::Register {
            target: Target::parse(&arg(1, "BASE")?)?.with_path("/api/auth/register"),
        },
        "watch" => Scenario::Watch {
            target: Target::parse(&arg(1, "BASE")?)?.with_path(&arg(2, "PATH")?),
        },
        "post-file" => Scenario::PostFile {
            target: Target::parse(&arg(1, "BASE")?)?.with_path(&arg(2, "PATH")?),
            requests: read_requests(&arg(3, "FILE")?)?,
        },
        other => return Err(format!("unknown scenario {other:?}")),
    };
    if options.duration.is_none() && options.requests.is_none() {
        options.duration = Some(Duration::from_secs(10));
    }
    Ok((scenario, options))
}

/// The requests of a `post-file` run: each line's headers (as header lines)
/// and body.
fn read_requests(path: &str) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let requests = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(n, line)| {
            let value: Value =
                serde_json::from_str(line).map_err(|e| format!("{path}:{}: {e}", n + 1))?;
            let body = value["body"]
                .as_str()
                .ok_or_else(|| format!("{path}:{}: no \"body\" string", n + 1))?;
            let headers = value["headers"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, v)| format!("{name}: {}\r\n", v.as_str().unwrap_or_default()))
                .collect();
            Ok((headers, body.to_owned()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if requests.is_empty() {
        return Err(format!("{path}: no requests"));
    }
    Ok(requests)
}

// ---------------------------------------------------------------- HTTP/1.1

/// One answer: status, body (when asked for) and whether the server closes.
struct Reply {
    status: u16,
    body: Vec<u8>,
    close: bool,
}

/// One keep-alive connection with its read buffer.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: vec![0; 16 * 1024],
            start: 0,
            end: 0,
        })
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() - self.end < 4096 {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < 4096 {
                let grown = self.buf.len() * 2;
                self.buf.resize(grown, 0);
            }
        }
        let n = self.stream.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        self.end += n;
        Ok(())
    }

    /// Makes sure `n` unread bytes are buffered.
    async fn want(&mut self, n: usize) -> io::Result<()> {
        while self.end - self.start < n {
            self.fill().await?;
        }
        Ok(())
    }

    /// Reads up to and including the next CRLF; returns the line without it.
    async fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = find(&self.buf[self.start..self.end], b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[self.start..self.start + i]).into();
                self.start += i + 2;
                return Ok(line);
            }
            if self.end - self.start > MAX_HEAD {
                return Err(io::Error::other("line too long"));
            }
            self.fill().await?;
        }
    }

    fn take(&mut self, n: usize, keep: bool, body: &mut Vec<u8>) {
        if keep {
            body.extend_from_slice(&self.buf[self.start..self.start + n]);
        }
        self.start += n;
    }

    async fn roundtrip(&mut self, request: &[u8], keep_body: bool) -> io::Result<Reply> {
        self.stream.write_all(request).await?;
        let head_end = loop {
            if let Some(i) = find(&self.buf[self.start..self.end], b"\r\n\r\n") {
                break self.start + i + 4;
            }
            if self.end - self.start > MAX_HEAD {
                return Err(io::Error::other("response head too large"));
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[self.start..head_end])
            .map_err(|_| io::Error::other("response head is not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line {status_line:?}")))?;
        let mut close = status_line.starts_with("HTTP/1.0");
        let (mut length, mut chunked) = (None, false);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        self.start = head_end;
        let mut body = Vec::new();
        if chunked {
            loop {
                let size_line = self.line().await?;
                let size_text = size_line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size_text, 16)
                    .map_err(|_| io::Error::other("bad chunk size"))?;
                if size == 0 {
                    // Trailers, then the empty line.
                    while !self.line().await?.is_empty() {}
                    break;
                }
                self.want(size + 2).await?;
                self.take(size, keep_body, &mut body);
                self.start += 2;
            }
        } else if let Some(length) = length {
            self.want(length).await?;
            self.take(length, keep_body, &mut body);
        } else if !(status == 204 || status == 304 || (100..200).contains(&status)) {
            // No length: the body runs to the end of the connection.
            loop {
                let available = self.end - self.start;
                self.take(available, keep_body, &mut body);
                if self.fill().await.is_err() {
                    break;
                }
            }
            close = true;
        }
        Ok(Reply {
            status,
            body,
            close,
        })
    }
}

fn epoch_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// Builds one request. `extra` holds complete header lines.
fn request(method: &str, target: &Target, options: &Options, extra: &str, body: &str) -> Vec<u8> {
    let mut text = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\n",
        target.path, target.host
    );
    if let Some(token) = &options.token {
        text.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    for header in &options.headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str(extra);
    if method != "GET" {
        text.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text.into_bytes()
}

// ---------------------------------------------------------------- load runs

/// What a request carries, made afresh for each request.
struct Work {
    bytes: Vec<u8>,
    /// Journal lines the request posts (for postings/s).
    lines: u64,
}

/// Writes the JSON of entry number `seq`: two lines over the account list,
/// dates spread over `--days` days from `--start-date`.
fn entry_json(out: &mut String, seq: u64, options: &Options) {
    let accounts = &options.accounts;
    let k = accounts.len() as u64;
    // With two accounts every entry reads like the contract's example (debit
    // the first, credit the second); with more, pairs rotate over the list.
    let (debit, credit) = if k == 2 {
        (0, 1)
    } else {
        let debit = seq % k;
        (debit, (debit + 1 + (seq / k) % (k - 1)) % k)
    };
    let date = options.start_date + chrono::Days::new(seq % u64::from(options.days));
    out.push_str(&format!(
        r#"{{"date":"{}","memo":"loadgen {seq}","lines":[{{"account":"{}","debit":"{}"}},{{"account":"{}","credit":"{}"}}]}}"#,
        date.format("%Y-%m-%d"),
        accounts[debit as usize],
        options.amount,
        accounts[credit as usize],
        options.amount,
    ));
}

struct Shared {
    scenario: Scenario,
    options: Options,
    stop: AtomicBool,
    budget: AtomicI64,
    sequence: AtomicU64,
    run_id: String,
    timeline: Mutex<(String, Vec<Value>)>,
}

impl Shared {
    fn next_work(&self) -> Work {
        let options = &self.options;
        match &self.scenario {
            Scenario::Get { target } | Scenario::Watch { target } => Work {
                bytes: request("GET", target, options, "", ""),
                lines: 0,
            },
            Scenario::PostEntries { target, token } => {
                let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
                let mut body = String::with_capacity(200);
                entry_json(&mut body, seq, options);
                let mut extra = format!("Authorization: Bearer {token}\r\n");
                if options.idempotency {
                    extra.push_str(&format!("Idempotency-Key: {}-{seq}\r\n", self.run_id));
                }
                Work {
                    bytes: request("POST", target, options, &extra, &body),
                    lines: 2,
                }
            }
            Scenario::PostBatch {
                target,
                token,
                per_request,
            } => {
                let first = self.sequence.fetch_add(*per_request, Ordering::Relaxed);
                let mut body = String::with_capacity(*per_request as usize * 160 + 16);
                body.push_str(r#"{"entries":["#);
                for seq in first..first + per_request {
                    if seq > first {
                        body.push(',');
                    }
                    entry_json(&mut body, seq, options);
                }
                body.push_str("]}");
                let mut extra = format!("Authorization: Bearer {token}\r\n");
                if options.idempotency {
                    extra.push_str(&format!("Idempotency-Key: {}-b{first}\r\n", self.run_id));
                }
                Work {
                    bytes: request("POST", target, options, &extra, &body),
                    lines: 2 * per_request,
                }
            }
            Scenario::PostFile { target, requests } => {
                let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
                let (extra, body) = &requests[(seq % requests.len() as u64) as usize];
                Work {
                    bytes: request("POST", target, options, extra, body),
                    lines: 0,
                }
            }
            Scenario::Register { .. } => unreachable!("register is not a load run"),
        }
    }

    fn take_ticket(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        if self.options.requests.is_some() && self.budget.fetch_sub(1, Ordering::Relaxed) <= 0 {
            self.stop.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn note(&self, state: String) {
        if !self.options.timeline {
            return;
        }
        let mut timeline = self.timeline.lock().unwrap_or_else(|e| e.into_inner());
        if timeline.0 != state && timeline.1.len() < MAX_TRANSITIONS {
            timeline.1.push(json!({"t": epoch_ms(), "state": state}));
            timeline.0 = state;
        }
    }
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<&'static str, u64>,
    postings: u64,
    first_last: BTreeMap<String, (f64, f64)>,
}

impl Tally {
    fn seen(&mut self, state: String) {
        let now = epoch_ms();
        self.first_last
            .entry(state)
            .and_modify(|(_, last)| *last = now)
            .or_insert((now, now));
    }

    fn merge(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.postings += other.postings;
        for (k, (first, last)) in other.first_last {
            self.first_last
                .entry(k)
                .and_modify(|(f, l)| {
                    *f = f.min(first);
                    *l = l.max(last);
                })
                .or_insert((first, last));
        }
    }
}

async fn worker(shared: Arc<Shared>) -> Tally {
    let mut tally = Tally::default();
    let addr = shared.scenario.target().addr;
    let timeout = shared.options.timeout;
    let mut conn: Option<Conn> = None;
    while shared.take_ticket() {
        let work = shared.next_work();
        let started = Instant::now();
        let outcome = tokio::time::timeout(timeout, async {
            if conn.is_none() {
                conn = Some(Conn::connect(addr).await.map_err(|e| ("connect", e))?);
            }
            let c = conn.as_mut().expect("connected");
            c.roundtrip(&work.bytes, false).await.map_err(|e| ("io", e))
        })
        .await;
        let elapsed = started.elapsed();
        match outcome {
            Ok(Ok(reply)) => {
                tally
                    .latencies_us
                    .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
                *tally.statuses.entry(reply.status).or_default() += 1;
                if (200..300).contains(&reply.status) {
                    tally.postings += work.lines;
                }
                if reply.close {
                    conn = None;
                }
                let state = reply.status.to_string();
                shared.note(state.clone());
                tally.seen(state);
            }
            Ok(Err((kind, _))) => {
                conn = None;
                *tally.errors.entry(kind).or_default() += 1;
                shared.note(kind.to_owned());
                tally.seen(kind.to_owned());
                if kind == "connect" {
                    // Nobody listens: do not spin.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            Err(_) => {
                conn = None;
                *tally.errors.entry("timeout").or_default() += 1;
                shared.note("timeout".to_owned());
                tally.seen("timeout".to_owned());
            }
        }
    }
    tally
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64)).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// Stops the run on SIGTERM, SIGINT or when the duration has passed.
fn arm_stop(shared: &Arc<Shared>) {
    let stopper = Arc::clone(shared);
    let duration = shared.options.duration;
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        let limit = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = limit => {}
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        stopper.stop.store(true, Ordering::Relaxed);
    });
}

async fn load(shared: Arc<Shared>) -> Value {
    arm_stop(&shared);
    let started = Instant::now();
    let started_epoch = epoch_ms();
    let workers: Vec<_> = (0..shared.options.concurrency)
        .map(|_| tokio::spawn(worker(Arc::clone(&shared))))
        .collect();
    let mut tally = Tally::default();
    for w in workers {
        if let Ok(t) = w.await {
            tally.merge(t);
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    tally.latencies_us.sort_unstable();
    let answered = tally.latencies_us.len() as u64;
    let ok: u64 = tally
        .statuses
        .iter()
        .filter(|(s, _)| (200..300).contains(*s))
        .map(|(_, n)| n)
        .sum();
    let timeline = std::mem::take(&mut shared.timeline.lock().unwrap_or_else(|e| e.into_inner()).1);
    let first_last: BTreeMap<String, Value> = tally
        .first_last
        .iter()
        .map(|(k, (f, l))| (k.clone(), json!([round(*f, 1), round(*l, 1)])))
        .collect();
    let l = &tally.latencies_us;
    let mut out = json!({
        "scenario": shared.scenario.name(),
        "path": shared.scenario.target().path,
        "concurrency": shared.options.concurrency,
        "started": round(started_epoch, 1),
        "duration_s": round(elapsed, 3),
        "requests": answered,
        "ok": ok,
        "rps": round(answered as f64 / elapsed, 1),
        "ok_rps": round(ok as f64 / elapsed, 1),
        "p50_ms": round(percentile(l, 50.0), 3),
        "p90_ms": round(percentile(l, 90.0), 3),
        "p99_ms": round(percentile(l, 99.0), 3),
        "max_ms": round(percentile(l, 100.0), 3),
        "statuses": tally.statuses.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "errors": tally.errors,
        "first_last": first_last,
    });
    if tally.postings > 0
        || matches!(
            shared.scenario,
            Scenario::PostEntries { .. } | Scenario::PostBatch { .. }
        )
    {
        out["postings"] = json!(tally.postings);
        out["postings_per_s"] = json!(round(tally.postings as f64 / elapsed, 1));
        out["entries_per_s"] = json!(round(tally.postings as f64 / 2.0 / elapsed, 1));
    }
    if shared.options.timeline {
        out["timeline"] = Value::Array(timeline);
    }
    out
}

// ---------------------------------------------------------------- one-offs

fn field<'a>(body: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(body, |v, key| v.get(key))
}

/// Polls one path and records every change of its state (the status, plus a
/// JSON field of the body with `--field`), with wall-clock times.
async fn watch(shared: Arc<Shared>) -> Value {
    arm_stop(&shared);
    let Scenario::Watch { target } = &shared.scenario else {
        unreachable!()
    };
    let options = &shared.options;
    let bytes = request("GET", target, options, "", "");
    let mut conn: Option<Conn> = None;
    let mut last = String::new();
    let mut transitions = Vec::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut slowest = Duration::ZERO;
    let started = epoch_ms();
    while shared.take_ticket() {
        let begun = Instant::now();
        let at = epoch_ms();
        let outcome = tokio::time::timeout(options.timeout, async {
            if conn.is_none() {
                conn = Some(Conn::connect(target.addr).await?);
            }
            conn.as_mut()
                .expect("connected")
                .roundtrip(&bytes, options.field.is_some())
                .await
        })
        .await;
        let took = begun.elapsed();
        let state = match outcome {
            Ok(Ok(reply)) => {
                if reply.close {
                    conn = None;
                }
                slowest = slowest.max(took);
                match &options.field {
                    Some(path) => {
                        let value = serde_json::from_slice::<Value>(&reply.body)
                            .ok()
                            .and_then(|body| field(&body, path).cloned())
                            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                            .unwrap_or_else(|| "-".to_owned());
                        format!("{}:{value}", reply.status)
                    }
                    None => reply.status.to_string(),
                }
            }
            Ok(Err(err)) => {
                conn = None;
                if err.kind() == io::ErrorKind::ConnectionRefused {
                    "refused".to_owned()
                } else {
                    "error".to_owned()
                }
            }
            Err(_) => {
                conn = None;
                "timeout".to_owned()
            }
        };
        *counts.entry(state.clone()).or_default() += 1;
        if state != last {
            if transitions.len() < MAX_TRANSITIONS {
                transitions.push(json!({
                    "t": round(at, 1),
                    "state": state,
                    "latency_ms": round(took.as_secs_f64() * 1000.0, 3),
                }));
            }
            last = state;
        }
        if let Some(rest) = options.interval.checked_sub(begun.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    json!({
        "scenario": "watch",
        "path": target.path,
        "started": round(started, 1),
        "ended": round(epoch_ms(), 1),
        "polls": counts.values().sum::<u64>(),
        "counts": counts,
        "slowest_answer_ms": round(slowest.as_secs_f64() * 1000.0, 3),
        "transitions": transitions,
    })
}

async fn register(target: &Target, options: &Options) -> Result<(), String> {
    let email = options
        .email
        .clone()
        .unwrap_or_else(|| format!("bench-{}@example.com", uuid::Uuid::new_v4().simple()));
    let body = json!({
        "email": email,
        "password": "bench-password-0123456789",
        "organization": "Bench Books",
    })
    .to_string();
    let bytes = request("POST", target, options, "", &body);
    let mut conn = Conn::connect(target.addr)
        .await
        .map_err(|e| format!("connecting to {}: {e}", target.addr))?;
    let reply = tokio::time::timeout(options.timeout, conn.roundtrip(&bytes, true))
        .await
        .map_err(|_| "registration timed out".to_owned())?
        .map_err(|e| format!("registration failed: {e}"))?;
    let text = String::from_utf8_lossy(&reply.body);
    if reply.status != 201 {
        return Err(format!("registration answered {}: {text}", reply.status));
    }
    let token = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v["token"].as_str().map(str::to_owned))
        .ok_or_else(|| format!("no token in {text}"))?;
    println!("{token}");
    Ok(())
}

async fn run(scenario: Scenario, options: Options) -> Result<(), String> {
    if let Scenario::Register { target } = &scenario {
        return register(target, &options).await;
    }
    let is_watch = matches!(scenario, Scenario::Watch { .. });
    let budget = options
        .requests
        .map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX));
    let shared = Arc::new(Shared {
        scenario,
        options,
        stop: AtomicBool::new(false),
        budget: AtomicI64::new(budget),
        sequence: AtomicU64::new(0),
        run_id: uuid::Uuid::new_v4().simple().to_string(),
        timeline: Mutex::new((String::new(), Vec::new())),
    });
    let result = if is_watch {
        watch(shared).await
    } else {
        load(shared).await
    };
    println!("{result}");
    Ok(())
}

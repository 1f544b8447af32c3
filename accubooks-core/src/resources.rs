//! Process memory and CPU, sampled in the background so that health and
//! metrics requests only read a kept value.

use std::sync::Mutex;
use std::time::Instant;

/// One sample of the process's resource use.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ResourceSample {
    /// Resident set size of the process.
    pub memory_used_bytes: u64,
    /// Physical memory of the machine.
    pub memory_total_bytes: u64,
    /// CPU time used over the last sampling interval, as a percentage of one core.
    pub cpu_usage_percent: f64,
}

/// Keeps the latest sample and what is needed to compute the next one.
#[derive(Debug, Default)]
pub struct Resources {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    latest: ResourceSample,
    last_cpu: Option<(Instant, u64)>,
}

impl Resources {
    /// The latest sample.
    pub fn latest(&self) -> ResourceSample {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).latest
    }

    /// Reads `/proc` and updates the kept sample. On systems without `/proc`
    /// the sample stays at zero.
    pub fn sample(&self) {
        let now = Instant::now();
        let memory_used_bytes = read_rss_bytes().unwrap_or(0);
        let memory_total_bytes = read_mem_total_bytes().unwrap_or(0);
        let cpu_ticks = read_cpu_ticks();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let cpu_usage_percent = match (inner.last_cpu, cpu_ticks) {
            (Some((then, before)), Some(after)) => {
                let wall = now.duration_since(then).as_secs_f64();
                #[allow(clippy::float_arithmetic)] // a percentage, not money
                let percent = if wall > 0.0 {
                    let cpu = after.saturating_sub(before) as f64 / CLOCK_TICKS_PER_SECOND;
                    (cpu / wall * 1000.0).round() / 10.0
                } else {
                    0.0
                };
                percent
            }
            _ => inner.latest.cpu_usage_percent,
        };
        if let Some(ticks) = cpu_ticks {
            inner.last_cpu = Some((now, ticks));
        }
        inner.latest = ResourceSample {
            memory_used_bytes,
            memory_total_bytes,
            cpu_usage_percent,
        };
    }
}

/// `sysconf(_SC_CLK_TCK)` is 100 on every Linux platform we target.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

fn read_rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn read_mem_total_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn read_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may contain spaces; fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_process() {
        let resources = Resources::default();
        resources.sample();
        let sample = resources.latest();
        if cfg!(target_os = "linux") {
            assert!(sample.memory_used_bytes > 0);
            assert!(sample.memory_total_bytes > sample.memory_used_bytes);
        }
    }
}

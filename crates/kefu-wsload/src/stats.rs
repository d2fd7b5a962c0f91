//! Latency percentiles (nearest rank, as in kefu-bench) and the server's
//! memory from /proc.

use serde_json::{Value, json};

/// Latencies in microseconds, sorted.
#[derive(Debug, Default)]
pub struct Latencies(Vec<u64>);

impl Latencies {
    pub fn new(mut micros: Vec<u64>) -> Latencies {
        micros.sort_unstable();
        Latencies(micros)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Nearest-rank percentile, in milliseconds; 0 when there is no sample.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.0.len()) - 1;
        self.0[i] as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.0.last().map_or(0.0, |m| *m as f64 / 1000.0)
    }

    pub fn mean_ms(&self) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.iter().sum::<u64>() as f64 / self.0.len() as f64 / 1000.0
    }

    /// `p50 1.23  p90 …` for the readable line.
    pub fn summary(&self) -> String {
        format!(
            "p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2} ms",
            self.percentile_ms(50.0),
            self.percentile_ms(90.0),
            self.percentile_ms(99.0),
            self.percentile_ms(99.9),
            self.max_ms()
        )
    }

    /// The same figures as JSON fields, prefixed (`delivery_p50_ms`, …).
    pub fn json(&self, prefix: &str) -> Value {
        json!({
            format!("{prefix}samples"): self.len(),
            format!("{prefix}p50_ms"): round(self.percentile_ms(50.0)),
            format!("{prefix}p90_ms"): round(self.percentile_ms(90.0)),
            format!("{prefix}p99_ms"): round(self.percentile_ms(99.0)),
            format!("{prefix}p999_ms"): round(self.percentile_ms(99.9)),
            format!("{prefix}max_ms"): round(self.max_ms()),
            format!("{prefix}mean_ms"): round(self.mean_ms()),
        })
    }
}

pub fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Adds the fields of `more` (an object) to `into` (an object).
pub fn merge(into: &mut Value, more: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), more) {
        a.extend(b);
    }
}

/// Resident memory of a process in KiB (`VmRSS` of /proc/PID/status).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    vm_rss(&status)
}

fn vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()
}

/// Resident memory of this process in KiB.
pub fn own_rss_kib() -> Option<u64> {
    rss_kib(std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let l = Latencies::new((1..=100).rev().map(|ms| ms * 1000).collect());
        assert_eq!(l.percentile_ms(50.0), 50.0);
        assert_eq!(l.percentile_ms(99.0), 99.0);
        assert_eq!(l.percentile_ms(100.0), 100.0);
        assert_eq!(l.max_ms(), 100.0);
        assert_eq!(Latencies::new(vec![]).percentile_ms(99.0), 0.0);
        assert_eq!(Latencies::new(vec![5000]).percentile_ms(1.0), 5.0);
        let j = l.json("d_");
        assert_eq!(j["d_p99_ms"], 99.0);
        assert_eq!(j["d_samples"], 100);
    }

    #[test]
    fn vm_rss_lines() {
        let status = "Name:\tkefu\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(vm_rss(status), Some(12345));
        assert_eq!(vm_rss("Name:\tx\n"), None);
        assert_eq!(vm_rss("VmRSS:\tlots\n"), None);
        assert!(own_rss_kib().is_some_and(|k| k > 0));
    }
}

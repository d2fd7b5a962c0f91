//! Latency percentiles and the two output forms: a line for people and a
//! JSON line (starting with `{`) for scripts collecting results.

use serde_json::{Value, json};
use std::time::Duration;

/// Latencies of the measured requests, in microseconds, sorted.
pub struct Latencies(Vec<u64>);

impl Latencies {
    pub fn new(mut micros: Vec<u64>) -> Latencies {
        micros.sort_unstable();
        Latencies(micros)
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
}

/// What one load run measured.
pub struct Report {
    pub bench: &'static str,
    pub label: String,
    pub concurrency: usize,
    pub requests: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub latencies: Latencies,
}

impl Report {
    pub fn per_second(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            (self.requests - self.errors) as f64 / s
        } else {
            0.0
        }
    }

    pub fn print(&self) {
        let l = &self.latencies;
        println!(
            "{} [{}]: {} requests ({} errors) at concurrency {} in {:.2} s: {:.0} req/s; \
             latency ms p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  mean {:.2}",
            self.bench,
            self.label,
            self.requests,
            self.errors,
            self.concurrency,
            self.elapsed.as_secs_f64(),
            self.per_second(),
            l.percentile_ms(50.0),
            l.percentile_ms(90.0),
            l.percentile_ms(99.0),
            l.max_ms(),
            l.mean_ms(),
        );
        println!("{}", self.json());
    }

    pub fn json(&self) -> Value {
        let l = &self.latencies;
        json!({
            "bench": self.bench,
            "label": self.label,
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": self.errors,
            "seconds": round(self.elapsed.as_secs_f64()),
            "per_second": round(self.per_second()),
            "p50_ms": round(l.percentile_ms(50.0)),
            "p90_ms": round(l.percentile_ms(90.0)),
            "p99_ms": round(l.percentile_ms(99.0)),
            "max_ms": round(l.max_ms()),
            "mean_ms": round(l.mean_ms()),
        })
    }
}

pub fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
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
    }
}

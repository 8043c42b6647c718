//! Shared by the benchmarks: latency summaries, the machine description and the JSON report.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

/// Percentiles of a set of latencies.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub n: usize,
    pub p50: Duration,
    pub p95: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Summary {
    pub fn of(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
        let total: Duration = samples.iter().sum();
        Self {
            n: samples.len(),
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: at(1.0),
            mean: total / samples.len() as u32,
        }
    }

    pub fn to_json(self) -> Value {
        json!({
            "n": self.n, "p50_ms": ms(self.p50), "p95_ms": ms(self.p95), "p99_ms": ms(self.p99),
            "max_ms": ms(self.max), "mean_ms": ms(self.mean),
        })
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn verdict(met: bool) -> &'static str {
    if met { "MET" } else { "MISSED" }
}

/// Cores, CPU model, kernel and load average when the run started.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "machine: {cores} cores, {model}, load average {}",
        loadavg.trim()
    );
    json!({
        "cores": cores, "cpu": model, "kernel": kernel.trim(),
        "loadavg_at_start": loadavg.trim(),
    })
}

/// Writes `<target-dir>/bench/<name>` and returns its path.
pub fn write_report(name: &str, report: &Value) -> std::io::Result<PathBuf> {
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = target.parent().map_or(target.clone(), |p| p.join("bench"));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(report)?)?;
    Ok(path)
}

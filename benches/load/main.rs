//! Load benchmark (issue 8): the real gateway under WebSocket load, against a fake streaming LLM,
//! with three baselines measured in the same run: (a) the same load straight to the fake LLM,
//! (b) the same gateway storing into plain SQLite, (c) a bare tokio-tungstenite server sending
//! the same frames. Plus 10,000 idle sockets → server RSS, and cold vs warm tenants among
//! 10,000. Servers run as child processes of this binary so their RSS and CPU are their own.
//!
//! `cargo bench --bench load` (full) or `cargo bench --bench load -- --quick` (CI-size).
//! Options: `--tokens N` (20), `--token-delay-us N` (0), `--connections N` (256),
//! `--messages N`, `--gather-us N` (1000: extra gateway runs with a commit gather; 0 skips),
//! `--rounds N` (3; peak runs rotate over the variants N times and the half-load run repeats N
//! times, medians reported), `--only …`,
//! `--durability full|normal` (tenant commits fsynced one by one, the default, or not),
//! `--think-ms N` (0: each peak client's pause between a reply and its next submit),
//! `--half-rate N` (the paced run at N msg/s instead of half the measured peak),
//! `--server-env K=V` (repeatable: added to the server children's environment only),
//! `--cold-gap-ms N` (0: the cold probes' pause between `hello` and submit, a round trip). Prints
//! tables and writes `<target-dir>/bench/load.json`. Numbers only.

#[path = "../support/stats.rs"]
mod stats;

mod children;
mod client;
mod roles;
mod scenarios;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use roles::arg;

/// What a run does; `--quick` shrinks every count.
pub struct Plan {
    pub tokens: usize,
    pub token_delay_us: u64,
    pub connections: usize,
    pub messages: usize,
    pub peak_tenants: usize,
    pub idle_sockets: usize,
    pub tenants: usize,
    pub max_open: usize,
    pub probes: usize,
    /// The cold scenario's pause between a probe's `hello` and its submit (`--cold-gap-ms`): on a
    /// real network the submit reaches the server a round trip after the upgrade, on loopback
    /// at once.
    pub cold_gap: std::time::Duration,
    /// A second pair of gateway runs with this commit gather (µs); 0 skips them.
    pub gather_us: u64,
    /// Rounds of the peak runs (each variant once per round; the median is reported).
    pub rounds: usize,
    /// Tenant commit durability in the server children: `full` (the default) or `normal`.
    pub durability: String,
    /// Each peak-run client waits this long after a reply before its next submit.
    pub think_ms: u64,
    /// Extra environment for the server children only (`--server-env K=V`, repeatable): an A/B
    /// of allocator settings such as `GLIBC_TUNABLES` that leaves the other processes alone.
    pub server_env: Vec<(String, String)>,
    pub dir: std::path::PathBuf,
}

/// Every `--server-env K=V` pair, in order.
fn server_env(args: &[String]) -> Result<Vec<(String, String)>> {
    args.windows(2)
        .filter(|w| w[0] == "--server-env")
        .map(|w| {
            w[1].split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--server-env wants KEY=VALUE, not {:?}", w[1]))
        })
        .collect()
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(role) = args.iter().skip_while(|a| *a != "--role").nth(1) {
        return roles::run(role, &args);
    }
    let quick = args.iter().any(|a| a == "--quick");
    // `--only half|idle|cold|none`: one scenario besides the peak runs. Only the half-load run
    // needs the peak (its rate is derived from it), so `idle` and `cold` run alone.
    let only = args
        .iter()
        .skip_while(|a| *a != "--only")
        .nth(1)
        .map(String::as_str);
    let tmp = tempfile::tempdir()?;
    let plan = Plan {
        tokens: arg(&args, "--tokens", 20),
        token_delay_us: arg(&args, "--token-delay-us", 0),
        connections: arg(&args, "--connections", 256),
        messages: arg(&args, "--messages", if quick { 4 } else { 20 }),
        peak_tenants: 16,
        idle_sockets: arg(&args, "--idle", if quick { 1_000 } else { 10_000 }),
        tenants: arg(&args, "--tenants", if quick { 1_000 } else { 10_000 }),
        max_open: 256,
        probes: if quick { 100 } else { 500 },
        cold_gap: std::time::Duration::from_millis(arg(&args, "--cold-gap-ms", 0)),
        gather_us: arg(&args, "--gather-us", 1_000),
        rounds: arg(&args, "--rounds", if quick { 1 } else { 3 }),
        durability: arg(&args, "--durability", "full".to_owned()),
        think_ms: arg(&args, "--think-ms", 0),
        server_env: server_env(&args)?,
        dir: tmp.path().to_owned(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mode = if quick { "quick" } else { "full" };
    println!(
        "chatvault load benchmark ({mode}, durability {})",
        plan.durability
    );
    let machine = stats::machine();
    let report = runtime.block_on(async {
        // `--half-rate N` fixes the paced run's rate (an A/B of two builds at the same load) and,
        // with `--only half`, skips the peak runs it would otherwise be derived from.
        let fixed_rate: f64 = arg(&args, "--half-rate", 0.0);
        let peak_needed = match only {
            Some("half") => fixed_rate <= 0.0,
            Some("idle" | "cold") => false,
            _ => true,
        };
        let peak = if !peak_needed {
            Value::Null
        } else {
            scenarios::peak(&plan).await?
        };
        let peak_rate = if fixed_rate > 0.0 {
            fixed_rate * 2.0
        } else {
            peak["gateway_sqlcipher"]["throughput"]
                .as_f64()
                .unwrap_or(0.0)
        };
        let half = if only.is_none_or(|o| o == "half") {
            scenarios::half_load(&plan, peak_rate).await?
        } else {
            Value::Null
        };
        let idle = if only.is_none_or(|o| o == "idle") {
            scenarios::idle(&plan).await?
        } else {
            Value::Null
        };
        let cold = if only.is_none_or(|o| o == "cold") {
            scenarios::cold(&plan).await?
        } else {
            Value::Null
        };
        Ok::<_, anyhow::Error>(json!({
            "benchmark": "load", "mode": mode, "machine": machine,
            "plan": {"tokens": plan.tokens, "token_delay_us": plan.token_delay_us,
                "connections": plan.connections, "messages": plan.messages,
                "peak_tenants": plan.peak_tenants, "idle_sockets": plan.idle_sockets,
                "tenants": plan.tenants, "max_open_tenants": plan.max_open, "probes": plan.probes,
                "durability": plan.durability, "think_ms": plan.think_ms,
                "cold_gap_ms": plan.cold_gap.as_millis(),
                "server_env": plan.server_env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>()},
            "peak": peak, "half_load": half, "idle": idle, "cold": cold,
        }))
    })?;
    scenarios::print_summary(&report);
    let path = stats::write_report("load.json", &report)?;
    println!("\nJSON: {}", path.display());
    Ok(())
}

//! The scenarios of a load run, each returning its JSON and printing its table.

use std::time::Duration;

use anyhow::Result;
use serde_json::{Value, json};

use crate::Plan;
use crate::children::{Process, Usage};
use crate::client::{self, Load, Outcome};
use crate::roles::ORIGIN;
use crate::stats::{Summary, ms, verdict};

const START_WAIT: Duration = Duration::from_secs(60);

fn llm(plan: &Plan) -> Result<Process> {
    let args = [
        "--tokens".to_owned(),
        plan.tokens.to_string(),
        "--token-delay-us".to_owned(),
        plan.token_delay_us.to_string(),
    ];
    Process::spawn("fake LLM", "llm", &args, &[], START_WAIT)
}

/// Starts a chatvault server child with `tenants` tenants; returns it and the widget socket URLs.
fn server(
    plan: &Plan,
    name: &str,
    store: &str,
    tenants: usize,
    llm_url: &str,
) -> Result<(Process, Vec<String>)> {
    server_gathering(plan, name, store, tenants, llm_url, 0)
}

/// [`server`] whose tenant writers wait up to `gather_us` for more writes per commit.
fn server_gathering(
    plan: &Plan,
    name: &str,
    store: &str,
    tenants: usize,
    llm_url: &str,
    gather_us: u64,
) -> Result<(Process, Vec<String>)> {
    let data = plan.dir.join(name);
    let keys = plan.dir.join(format!("{name}.keys"));
    let args = [
        "--store",
        store,
        "--tenants",
        &tenants.to_string(),
        "--llm",
        llm_url,
        "--max-open",
        &plan.max_open.to_string(),
        "--data",
        &data.display().to_string(),
        "--keys",
        &keys.display().to_string(),
        "--gather-us",
        &gather_us.to_string(),
        "--durability",
        &plan.durability,
    ]
    .map(str::to_owned);
    // Creating 10,000 tenants (a file, a DEK and catalog rows each) takes a while.
    let process = Process::spawn(
        name,
        "server",
        &args,
        &plan.server_env,
        Duration::from_secs(900),
    )?;
    let urls = std::fs::read_to_string(&keys)?
        .lines()
        .map(|key| format!("ws://{}/v1/widget/ws?key={key}", process.addr))
        .collect();
    Ok((process, urls))
}

/// The latencies and totals of one run, as JSON and as a printed row.
/// A server's CPU over a run: all of it, and its tenant writer threads' part.
struct ServerCpu<'a> {
    process: &'a Process,
    cores: f64,
    writer_cores: f64,
}

fn summarise(
    name: &str,
    outcome: &Outcome,
    server: Option<ServerCpu<'_>>,
    llm_cores: f64,
) -> Value {
    let pick = |f: fn(&client::Sample) -> Option<Duration>| {
        Summary::of(outcome.measured().filter_map(f).collect())
    };
    let warmup_first = Summary::of(outcome.warmups().filter_map(|s| s.first_delta).collect());
    let (accepted, first, done) = (
        pick(|s| s.accepted),
        pick(|s| s.first_delta),
        pick(|s| s.done),
    );
    let (rss, hwm, cores, writer_cores) = server.map_or((0, 0, 0.0, 0.0), |cpu| {
        let (rss, hwm) = cpu.process.memory_kib();
        (rss, hwm, cpu.cores, cpu.writer_cores)
    });
    println!(
        "{name:<22} {:>6} {:>5} {:>9.0} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>6.2} {:>6.2} {:>5.2} {:>6.0}",
        outcome.completed(),
        outcome.errors.values().sum::<usize>(),
        outcome.throughput(),
        ms(accepted.p50),
        ms(accepted.p99),
        ms(first.p50),
        ms(first.p99),
        ms(done.p50),
        ms(done.p99),
        cores,
        writer_cores,
        llm_cores,
        rss as f64 / 1024.0,
    );
    if !outcome.errors.is_empty() {
        println!("{:<22} errors: {:?}", "", outcome.errors);
    }
    if warmup_first.n > 0 {
        println!(
            "{:<22} warm-up (each socket's first submit, not in the percentiles): first delta p50 {:.2} ms, p99 {:.2} ms",
            "",
            ms(warmup_first.p50),
            ms(warmup_first.p99)
        );
    }
    json!({
        "completed": outcome.completed(), "errors": outcome.errors, "wall_s": outcome.wall.as_secs_f64(),
        "throughput": outcome.throughput(), "accepted": accepted.to_json(),
        "first_delta": first.to_json(), "done": done.to_json(),
        "warmup_first_delta": warmup_first.to_json(),
        "server_cores": cores, "server_writer_cores": writer_cores, "llm_cores": llm_cores,
        "server_rss_mib": rss as f64 / 1024.0, "server_hwm_mib": hwm as f64 / 1024.0,
    })
}

/// "1 round", "3 rounds".
fn rounds(n: usize) -> String {
    if n == 1 {
        "1 round".to_owned()
    } else {
        format!("{n} rounds")
    }
}

fn header(title: &str) {
    println!("\n## {title}");
    println!(
        "{:<22} {:>6} {:>5} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>6} {:>5} {:>6}",
        "",
        "done",
        "errs",
        "msg/s",
        "acc50",
        "acc99",
        "1st50",
        "1st99",
        "done50",
        "done99",
        "srvCPU",
        "wrtCPU",
        "llmCPU",
        "RSS MiB"
    );
}

/// Runs `load` through a widget-protocol server (gateway or echo) on fresh sockets.
async fn through_sockets(
    p: &Process,
    urls: &[String],
    origin: Option<&str>,
    load: &Load,
    llm: Option<&Process>,
    name: &str,
) -> Value {
    let (sockets, mut handshake_errors) =
        client::connect_many(urls, load.connections, origin, 64).await;
    let (usage, llm_usage) = (Usage::start(p), llm.map(Usage::start));
    let tag: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
    let mut outcome = client::run_sockets(sockets, load, &tag).await;
    let cpu = ServerCpu {
        process: p,
        cores: usage.cores(p),
        writer_cores: usage.writer_cores(p),
    };
    let llm_cores = llm.zip(llm_usage).map_or(0.0, |(l, u)| u.cores(l));
    outcome.errors.append(&mut handshake_errors);
    summarise(name, &outcome, Some(cpu), llm_cores)
}

/// 20-token replies at 256 sockets, closed loop (think time `--think-ms`, 0 by default): the gateway at peak next to
/// its three baselines, and with a commit gather. The runs rotate (every variant once per round,
/// `plan.rounds` rounds) so a change in background load hits all of them alike; each variant
/// reports its median-throughput round.
pub async fn peak(plan: &Plan) -> Result<Value> {
    let load = Load {
        connections: plan.connections,
        messages: plan.messages,
        think: Duration::from_millis(plan.think_ms),
        pace: None,
        warmup: 0,
    };
    header(&format!(
        "Peak: {} sockets × {} submits, {}-token replies, {} µs/token, think {} ms, {} tenants, {} (latencies in ms)",
        load.connections,
        load.messages,
        plan.tokens,
        plan.token_delay_us,
        plan.think_ms,
        plan.peak_tenants,
        rounds(plan.rounds)
    ));
    let llm = llm(plan)?;
    let gather = plan.gather_us;
    let variants = [
        ("direct", "", 0, "(a) direct to LLM"),
        ("echo", "", 0, "(c) tungstenite echo"),
        ("gateway_sqlcipher", "enc", 0, "gateway (SQLCipher)"),
        ("gateway_plain", "plain", 0, "(b) gateway plain"),
        (
            "gateway_sqlcipher_gather",
            "enc",
            gather,
            "SQLCipher + gather",
        ),
        (
            "gateway_plain_gather",
            "plain",
            gather,
            "(b) plain + gather",
        ),
    ];
    let mut results: Vec<Vec<Value>> = vec![Vec::new(); variants.len()];
    for round in 0..plan.rounds {
        for (i, &(name, store, gather_us, label)) in variants.iter().enumerate() {
            if gather == 0 && name.ends_with("_gather") {
                continue;
            }
            let run = match name {
                "direct" => {
                    let usage = Usage::start(&llm);
                    let outcome = client::run_direct(&llm.addr, &load).await?;
                    summarise(label, &outcome, None, usage.cores(&llm))
                }
                "echo" => {
                    let args = ["--tokens".into(), plan.tokens.to_string()];
                    let echo = Process::spawn("echo", "echo", &args, &[], START_WAIT)?;
                    let url = [format!("ws://{}/", echo.addr)];
                    through_sockets(&echo, &url, None, &load, None, label).await
                }
                _ => {
                    let dir = format!("{name}-{round}");
                    let (server, urls) = server_gathering(
                        plan,
                        &dir,
                        store,
                        plan.peak_tenants,
                        &llm.addr,
                        gather_us,
                    )?;
                    through_sockets(&server, &urls, Some(ORIGIN), &load, Some(&llm), label).await
                }
            };
            results[i].push(run);
        }
    }
    let rate = |v: &Value| v["throughput"].as_f64().unwrap_or(0.0);
    let mut runs = serde_json::Map::new();
    for ((name, ..), mut rounds) in variants.iter().zip(results) {
        if rounds.is_empty() {
            continue;
        }
        let all: Vec<f64> = rounds.iter().map(rate).collect();
        rounds.sort_by(|x, y| rate(x).total_cmp(&rate(y)));
        let mut median = rounds.swap_remove(rounds.len() / 2);
        median["throughput_rounds"] = json!(all);
        runs.insert((*name).into(), median);
    }
    let (enc, plain) = (
        rate(&runs["gateway_sqlcipher"]),
        rate(&runs["gateway_plain"]),
    );
    let vs_direct = enc / rate(&runs["direct"]).max(1e-9);
    let vs_echo = enc / rate(&runs["echo"]).max(1e-9);
    let encryption_cost = 1.0 - enc / plain.max(1e-9);
    println!(
        "medians: gateway {enc:.0} msg/s, plain {plain:.0}, direct {:.0}, echo {:.0}",
        rate(&runs["direct"]),
        rate(&runs["echo"])
    );
    println!(
        "gateway / direct-to-LLM throughput = {vs_direct:.2} (target ≥ 0.50: {})",
        verdict(vs_direct >= 0.5)
    );
    println!("gateway / echo floor throughput   = {vs_echo:.2}");
    println!(
        "encryption cost at load           = {:.1}% fewer msg/s than plain SQLite (target ≤ 15%: {})",
        encryption_cost * 100.0,
        verdict(encryption_cost <= 0.15)
    );
    if gather > 0 {
        let enc_g = rate(&runs["gateway_sqlcipher_gather"]);
        let cost_g = 1.0 - enc_g / rate(&runs["gateway_plain_gather"]).max(1e-9);
        let gain = enc_g / enc.max(1e-9) - 1.0;
        println!(
            "commit gather {gather} µs: SQLCipher {enc_g:.0} vs {enc:.0} msg/s without ({:+.1}%); encryption cost with it {:.1}%",
            100.0 * gain,
            100.0 * cost_g
        );
        runs.insert(
            "gather".into(),
            json!({"gather_us": gather, "encryption_cost_with": cost_g, "sqlcipher_gain": gain}),
        );
    }
    runs.insert("ratios".into(), json!({
        "gateway_over_direct": vs_direct, "gateway_over_echo": vs_echo,
        "encryption_cost": encryption_cost,
        "met_gateway_over_direct": vs_direct >= 0.5, "met_encryption_cost": encryption_cost <= 0.15,
    }));
    Ok(Value::Object(runs))
}

/// The same sockets paced to half of the gateway's peak rate: time to first delta through the
/// gateway vs straight from the LLM, in `plan.rounds` rounds (each a direct run, then the gateway
/// on a fresh server), so one disturbed run does not decide it. The verdicts are on the median
/// round of each percentile; every round is printed and kept in the JSON.
pub async fn half_load(plan: &Plan, peak_rate: f64) -> Result<Value> {
    let rate = (peak_rate / 2.0).max(1.0);
    let pace = Duration::from_secs_f64(plan.connections as f64 / rate);
    let load = Load {
        connections: plan.connections,
        messages: plan.messages,
        think: Duration::ZERO,
        pace: Some(pace),
        // Each socket's first submit: a fresh server's first burst is not the steady state the
        // target speaks of. Its latencies are printed and kept in the JSON, apart.
        warmup: 1,
    };
    header(&format!(
        "Half of peak: {rate:.0} msg/s offered ({} sockets, one submit per {:.0} ms each, the first a warm-up), {}",
        plan.connections,
        ms(pace),
        rounds(plan.rounds)
    ));
    let llm = llm(plan)?;
    let at = |v: &Value, q: &str| v["first_delta"][q].as_f64().unwrap_or(f64::NAN);
    let mut rounds = Vec::new();
    for round in 0..plan.rounds {
        let usage = Usage::start(&llm);
        let direct = client::run_direct(&llm.addr, &load).await?;
        let direct = summarise("(a) direct to LLM", &direct, None, usage.cores(&llm));
        let dir = format!("half_sqlcipher-{round}");
        let (server, urls) = server(plan, &dir, "enc", plan.peak_tenants, &llm.addr)?;
        let gateway = through_sockets(
            &server,
            &urls,
            Some(ORIGIN),
            &load,
            Some(&llm),
            "gateway (SQLCipher)",
        )
        .await;
        let (over50, over99) = (
            at(&gateway, "p50_ms") - at(&direct, "p50_ms"),
            at(&gateway, "p99_ms") - at(&direct, "p99_ms"),
        );
        println!(
            "{:<22} overhead p50 +{over50:.2} ms, p99 +{over99:.2} ms",
            ""
        );
        rounds.push(json!({
            "direct": direct, "gateway_sqlcipher": gateway,
            "ttfd_overhead_p50_ms": over50, "ttfd_overhead_p99_ms": over99,
        }));
    }
    let median = |key: &str| {
        let mut values: Vec<f64> = rounds.iter().filter_map(|r| r[key].as_f64()).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let (over50, over99) = (
        median("ttfd_overhead_p50_ms"),
        median("ttfd_overhead_p99_ms"),
    );
    println!(
        "time-to-first-delta overhead, median of {}: p50 +{over50:.2} ms (target ≤ 1: {}), p99 +{over99:.2} ms (target ≤ 5: {})",
        self::rounds(rounds.len()),
        verdict(over50 <= 1.0),
        verdict(over99 <= 5.0)
    );
    Ok(json!({
        "offered_rate": rate, "rounds": rounds,
        "ttfd_overhead_p50_ms": over50, "ttfd_overhead_p99_ms": over99,
        "met_p50": over50 <= 1.0, "met_p99": over99 <= 5.0,
    }))
}

/// Soft limit on open files of this process.
fn open_file_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// Many idle widget sockets: server RSS before and after.
pub async fn idle(plan: &Plan) -> Result<Value> {
    let limit = open_file_limit();
    let count = plan.idle_sockets.min(limit.saturating_sub(200));
    println!(
        "\n## Idle sockets ({count} requested {}; open-file limit {limit})",
        plan.idle_sockets
    );
    if count < plan.idle_sockets {
        println!(
            "  fewer sockets than asked: raise it with `ulimit -n {}`",
            plan.idle_sockets + 1000
        );
    }
    let (server, urls) = server(plan, "idle", "enc", 1, "http://127.0.0.1:9/v1")?;
    let (before, _) = server.memory_kib();
    let (sockets, errors) = client::connect_many(&urls, count, Some(ORIGIN), 100).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (after, hwm) = server.memory_kib();
    let open = sockets.len();
    let per_socket = (after.saturating_sub(before)) as f64 / open.max(1) as f64;
    let rss_mib = after as f64 / 1024.0;
    println!(
        "open {open} (errors {errors:?}): server RSS {:.1} MiB before → {rss_mib:.1} MiB after (peak {:.1}), {per_socket:.1} KiB per socket, {} fds",
        before as f64 / 1024.0,
        hwm as f64 / 1024.0,
        server.open_fds()
    );
    let scaled = before as f64 / 1024.0 + per_socket * 10_000.0 / 1024.0;
    println!(
        "target ≤ 150 MiB at 10,000 sockets: {} ({:.1} MiB{})",
        verdict(scaled <= 150.0),
        scaled,
        if open < 10_000 { ", extrapolated" } else { "" }
    );
    drop(sockets);
    Ok(json!({
        "sockets": open, "errors": errors, "rss_before_mib": before as f64 / 1024.0, "rss_after_mib": rss_mib,
        "hwm_mib": hwm as f64 / 1024.0, "kib_per_socket": per_socket, "rss_at_10k_mib": scaled,
        "extrapolated": open < 10_000, "met": scaled <= 150.0,
    }))
}

/// First message to a cold tenant (file closed, among many) vs a warm one; both on a new socket
/// and a new conversation, so the only difference is opening the tenant file.
pub async fn cold(plan: &Plan) -> Result<Value> {
    println!(
        "\n## {} tenants, open-file LRU {}: first message to a cold vs a warm tenant{}",
        plan.tenants,
        plan.max_open,
        if plan.cold_gap.is_zero() {
            String::new()
        } else {
            format!(
                ", each submit {} ms after its hello",
                plan.cold_gap.as_millis()
            )
        }
    );
    let llm = llm(plan)?;
    let started = std::time::Instant::now();
    let (server, urls) = server(plan, "cold", "enc", plan.tenants, &llm.addr)?;
    println!(
        "created {} tenants in {:.1} s",
        urls.len(),
        started.elapsed().as_secs_f64()
    );
    // The probes measure a server at rest, not the disk still writing back the new files.
    let _ = std::process::Command::new("sync").status();
    tokio::time::sleep(Duration::from_secs(2)).await;
    const WARM: usize = 32;
    anyhow::ensure!(
        urls.len() > WARM,
        "the cold scenario needs --tenants above {WARM}"
    );
    let warm_set: Vec<String> = urls[..WARM].to_vec();
    probes(&warm_set, "warmup", CONCURRENT, plan.cold_gap).await;
    // Cold and warm probes alternate, so whatever else the machine is doing (evicted files
    // closing, writeback) weighs on both alike. Cold ones spread over every tenant outside the
    // warm set in a fixed shuffled order (each cold tenant is probed once: the stride is prime
    // to the count); the warm set is revisited often enough to stay open. First one visitor at
    // a time (the latency a lone visitor sees), then `CONCURRENT` at once (the verdict).
    if urls.len() - WARM < 2 * plan.probes {
        println!(
            "note: {} tenants outside the warm set for {} cold probes; some \"cold\" tenants are probed twice",
            urls.len() - WARM,
            2 * plan.probes
        );
    }
    let cold_tenant = |k: usize| urls[WARM + (k * 7919) % (urls.len() - WARM)].clone();
    let mixed = |from: usize| -> Vec<String> {
        (0..2 * plan.probes)
            .map(|i| match i % 2 {
                0 => cold_tenant(from + i / 2),
                _ => warm_set[i / 2 % WARM].clone(),
            })
            .collect()
    };
    println!(
        "{:<34} {:>6} {:>10} {:>10} {:>10}",
        "submit→accepted (ms)", "n", "p50", "p95", "p99"
    );
    let (alone, alone_errors) = probes(&mixed(0), "alone", 1, plan.cold_gap).await;
    let alone = cold_vs_warm(&alone, "one at a time");
    let (together, errors) = probes(&mixed(plan.probes), "mixed", CONCURRENT, plan.cold_gap).await;
    let together = cold_vs_warm(&together, &format!("{CONCURRENT} at once"));
    let fds_after_spread = server.open_fds();
    let over = together["cold_over_warm_p50_ms"]
        .as_f64()
        .unwrap_or(f64::NAN);
    // The target is the loopback reading; with a gap the open at the handshake gets a head start.
    let met = plan.cold_gap.is_zero().then_some(over <= 2.0);
    println!(
        "cold over warm p50, {CONCURRENT} at once: +{over:.2} ms (target ≤ 2: {}); one at a time: +{:.2} ms; server fds after the spread: {fds_after_spread}; errors {errors:?} / {alone_errors:?}",
        met.map_or("not judged with --cold-gap-ms", verdict),
        alone["cold_over_warm_p50_ms"].as_f64().unwrap_or(f64::NAN),
    );
    Ok(json!({
        "tenants": urls.len(), "concurrent_probes": CONCURRENT,
        "cold": together["cold"], "warm": together["warm"], "cold_over_warm_p50_ms": over,
        "one_at_a_time": alone,
        "server_fds_after_spread": fds_after_spread, "errors": errors,
        "gap_ms": plan.cold_gap.as_millis(), "met": met,
    }))
}

/// Probes in flight at once in the cold-tenant verdict.
const CONCURRENT: usize = 8;

/// Prints the cold and warm rows of alternating probes (cold first) and returns their summary.
fn cold_vs_warm(samples: &[client::Sample], how: &str) -> Value {
    let accepted = |parity: usize| -> Vec<Duration> {
        samples
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == parity)
            .filter_map(|(_, s)| s.accepted)
            .collect()
    };
    let (c, w) = (Summary::of(accepted(0)), Summary::of(accepted(1)));
    for (what, s) in [("cold", &c), ("warm", &w)] {
        println!(
            "{:<34} {:>6} {:>10.2} {:>10.2} {:>10.2}",
            format!("{what} tenant, {how}"),
            s.n,
            ms(s.p50),
            ms(s.p95),
            ms(s.p99)
        );
    }
    json!({"cold": c.to_json(), "warm": w.to_json(), "cold_over_warm_p50_ms": ms(c.p50) - ms(w.p50)})
}

/// One new socket and one submit per URL, `parallel` at a time; the samples in the order of
/// `urls`.
async fn probes(
    urls: &[String],
    tag: &str,
    parallel: usize,
    gap: Duration,
) -> (
    Vec<client::Sample>,
    std::collections::BTreeMap<String, usize>,
) {
    use futures_util::StreamExt;
    let results: Vec<client::Sample> = futures_util::stream::iter(urls.iter().enumerate())
        .map(|(i, url)| async move {
            match client::connect(url, Some(ORIGIN)).await {
                Ok(mut ws) => {
                    if !gap.is_zero() {
                        tokio::time::sleep(gap).await;
                    }
                    client::exchange(
                        &mut ws,
                        &format!("{tag}-{i}"),
                        "Is the store open on Sunday?",
                    )
                    .await
                }
                Err(_) => client::Sample {
                    error: Some("handshake_failed".into()),
                    ..Default::default()
                },
            }
        })
        .buffered(parallel)
        .collect()
        .await;
    let mut errors = std::collections::BTreeMap::new();
    for e in results.iter().filter_map(|s| s.error.clone()) {
        *errors.entry(e).or_default() += 1;
    }
    (results, errors)
}

/// The headline numbers, one line each, for the README table.
pub fn print_summary(report: &Value) {
    let peak = &report["peak"];
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let count = |v: &Value, default: &str| {
        if v.is_null() {
            default.to_string()
        } else {
            v.to_string()
        }
    };
    println!("\n## Summary (markdown, for the README)\n");
    println!("| measure | result | target | verdict |\n|---|---|---|---|");
    // A scenario left out with `--only` has no section in the report: its row says so rather
    // than judging NaN.
    let row =
        |what: &str, section: &Value, result: &dyn Fn() -> String, target: &str, met: &Value| {
            if section.is_null() {
                println!("| {what} | not run | {target} | — |");
            } else {
                // A null `met`: measured under conditions the target does not name.
                let judged = met.as_bool().map_or("—", verdict);
                println!("| {what} | {} | {target} | {judged} |", result());
            }
        };
    row(
        "gateway throughput / direct-to-LLM (256 sockets, 20-token replies)",
        peak,
        &|| {
            format!(
                "{:.0} / {:.0} msg/s = {:.2}",
                f(&peak["gateway_sqlcipher"]["throughput"]),
                f(&peak["direct"]["throughput"]),
                f(&peak["ratios"]["gateway_over_direct"])
            )
        },
        "≥ 0.50",
        &peak["ratios"]["met_gateway_over_direct"],
    );
    row(
        "encryption cost at load (vs same gateway on plain SQLite)",
        peak,
        &|| {
            format!(
                "{:.1}% ({:.0} vs {:.0} msg/s)",
                100.0 * f(&peak["ratios"]["encryption_cost"]),
                f(&peak["gateway_sqlcipher"]["throughput"]),
                f(&peak["gateway_plain"]["throughput"])
            )
        },
        "≤ 15%",
        &peak["ratios"]["met_encryption_cost"],
    );
    let half = &report["half_load"];
    row(
        "time-to-first-delta overhead p50 at half of peak (median round)",
        half,
        &|| format!("+{:.2} ms", f(&half["ttfd_overhead_p50_ms"])),
        "≤ 1 ms",
        &half["met_p50"],
    );
    row(
        "time-to-first-delta overhead p99 at half of peak (median round)",
        half,
        &|| format!("+{:.2} ms", f(&half["ttfd_overhead_p99_ms"])),
        "≤ 5 ms",
        &half["met_p99"],
    );
    let idle = &report["idle"];
    row(
        &format!(
            "server RSS with {} idle sockets",
            count(&idle["sockets"], "10,000")
        ),
        idle,
        &|| {
            format!(
                "{:.1} MiB ({:.1} KiB/socket){}",
                f(&idle["rss_after_mib"]),
                f(&idle["kib_per_socket"]),
                // The verdict is on 10,000 sockets; a smaller run is judged by its extrapolation.
                if idle["extrapolated"].as_bool().unwrap_or(false) {
                    format!(
                        ", {:.1} MiB extrapolated to 10,000",
                        f(&idle["rss_at_10k_mib"])
                    )
                } else {
                    String::new()
                }
            )
        },
        "≤ 150 MiB at 10,000",
        &idle["met"],
    );
    let cold = &report["cold"];
    row(
        &format!(
            "cold tenant first message over warm ({} tenants)",
            count(&cold["tenants"], "10,000")
        ),
        cold,
        &|| {
            format!(
                "+{:.2} ms p50, {} at once (cold {:.2}, warm {:.2}); one at a time +{:.2} ms{}",
                f(&cold["cold_over_warm_p50_ms"]),
                cold["concurrent_probes"],
                f(&cold["cold"]["p50_ms"]),
                f(&cold["warm"]["p50_ms"]),
                f(&cold["one_at_a_time"]["cold_over_warm_p50_ms"]),
                match cold["gap_ms"].as_u64() {
                    Some(gap) if gap > 0 => format!("; each submit {gap} ms after its hello"),
                    _ => String::new(),
                }
            )
        },
        "≤ 2 ms",
        &cold["met"],
    );
    if let Some(g) = peak.get("gather") {
        println!(
            "| commit gather ({} µs, adaptive) vs none, SQLCipher msg/s | {:+.1}% (encryption cost with it {:.1}%) | — | — |",
            g["gather_us"],
            100.0 * f(&g["sqlcipher_gain"]),
            100.0 * f(&g["encryption_cost_with"])
        );
    }
    if !peak.is_null() {
        println!(
            "| gateway / bare tungstenite echo (same frames) | {:.2} | — | — |",
            f(&peak["ratios"]["gateway_over_echo"])
        );
    }
}

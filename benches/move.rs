//! Moving a tenant between nodes (issue 9): `chatvault tenant move` between two real
//! `chatvault serve` processes on loopback, for tenants of 10k / 100k / 1M messages. Reports how
//! long the tenant paused (frozen on the old node until the new one serves it) and the whole
//! move's time (which also destroys the old copy), next to the floor
//! measured in the same run: copying the same file and fsyncing it (what the disk allows).
//!
//! Each size is moved back and forth a few times (A→B, B→A, …) and the medians are reported.
//! `cargo bench --bench move` or `-- --quick` (10k only). Prints a table and writes
//! `<target-dir>/bench/move.json`. Numbers, never assertions.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chatvault::crypto::MasterKey;
use chatvault::datadir::DataDir;
use chatvault::db::{self, OpenMode};
use chatvault::domain::{Origin, TenantId};
use chatvault::store::Store;
use serde_json::{Value, json};

#[path = "support/fill.rs"]
mod fill;
// Shared with the other benches; `verdict` goes unused (issue 9 sets no target for a move).
#[allow(dead_code)]
#[path = "support/stats.rs"]
mod stats;
#[path = "support/text.rs"]
mod text;

use stats::{Summary, ms};

const BIN: &str = env!("CARGO_BIN_EXE_chatvault");

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes: &[usize] = if quick {
        &[10_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    let machine = stats::machine();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let secret = MasterKey::generate().to_hex();
    let mut rows = Vec::new();
    println!(
        "\n{:>10} {:>8} {:>5} {:>14} {:>14} {:>15} {:>9}",
        "messages", "MB", "moves", "paused p50 ms", "whole p50 ms", "cp+fsync p50 ms", "paused/cp"
    );
    for &size in sizes {
        let reps = if size >= 1_000_000 { 2 } else { 3 };
        let row = runtime.block_on(moves(size, reps, &secret))?;
        println!(
            "{:>10} {:>8.1} {:>5} {:>14.1} {:>14.1} {:>15.1} {:>9.1}",
            size,
            row["bytes"].as_f64().unwrap_or(0.0) / 1e6,
            reps,
            row["paused"]["p50_ms"].as_f64().unwrap_or(0.0),
            row["whole"]["p50_ms"].as_f64().unwrap_or(0.0),
            row["copy_fsync"]["p50_ms"].as_f64().unwrap_or(0.0),
            row["paused_over_copy"].as_f64().unwrap_or(0.0),
        );
        rows.push(row);
    }
    let report = json!({ "bench": "move", "quick": quick, "machine": machine, "moves": rows });
    let path = stats::write_report("move.json", &report)?;
    println!("report: {}", path.display());
    Ok(())
}

/// One tenant of `size` messages, moved `reps` times between node A and node B (A→B, B→A, …).
async fn moves(size: usize, reps: usize, secret: &str) -> Result<Value> {
    let tmp = tempfile::tempdir()?;
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (key_a, key_b) = (MasterKey::generate(), MasterKey::generate());
    let tenant = TenantId::parse("moving")?;
    seed(&dir_a, &key_a, &tenant, size).await?;

    // The floor: the same bytes copied and made durable, nothing else.
    let file = DataDir::open(&dir_a)?.tenant_path(&tenant);
    let bytes = std::fs::metadata(&file)?.len();
    let copy = tmp.path().join("copy.db");
    let mut copies = Vec::new();
    for _ in 0..reps {
        let started = Instant::now();
        std::fs::copy(&file, &copy)?;
        std::fs::File::open(&copy)?.sync_all()?;
        copies.push(started.elapsed());
        std::fs::remove_file(&copy)?;
    }

    let nodes = [
        Node::start(&dir_a, &key_a, secret)?,
        Node::start(&dir_b, &key_b, secret)?,
    ];
    let (mut paused, mut whole) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        let (from, to) = (&nodes[rep % 2], &nodes[(rep + 1) % 2]);
        let started = Instant::now();
        let out = Command::new(BIN)
            .args(["tenant", "move", "moving", "--json"])
            .args(["--from", &from.url, "--to", &to.url])
            .env("CHATVAULT_CLUSTER_SECRET", secret)
            .output()?;
        whole.push(started.elapsed());
        if !out.status.success() {
            bail!(
                "tenant move failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let report: Value = serde_json::from_slice(&out.stdout)?;
        if report["messages"].as_u64() != Some(size as u64) {
            bail!("moved {} messages, expected {size}", report["messages"]);
        }
        paused.push(Duration::from_millis(
            report["paused_ms"].as_u64().context("paused_ms")?,
        ));
    }
    let (paused, whole, copies) = (Summary::of(paused), Summary::of(whole), Summary::of(copies));
    Ok(json!({
        "messages": size,
        "bytes": bytes,
        "paused": paused.to_json(),
        "whole": whole.to_json(),
        "copy_fsync": copies.to_json(),
        "paused_over_copy": ms(paused.p50) / ms(copies.p50).max(0.001),
    }))
}

/// A data directory with one tenant holding `size` messages.
async fn seed(dir: &Path, key: &MasterKey, tenant: &TenantId, size: usize) -> Result<()> {
    let store = Store::open(DataDir::open(dir)?, key, 4)?;
    let origin = Origin::parse("https://shop.example")?;
    store
        .create_tenant(tenant, "Moving", &[origin], "bench")
        .await?;
    let (vault, id) = (store.vault.clone(), tenant.clone());
    let path = store.dir.tenant_path(tenant);
    tokio::task::spawn_blocking(move || -> Result<()> {
        let dek = vault.tenant_key_blocking(&id)?;
        let mut conn = db::open_encrypted(&path, &dek, OpenMode::Existing)?;
        fill::fill_tenant_file(&mut conn, size)?;
        conn.close().map_err(|(_, e)| e)?;
        Ok(())
    })
    .await??;
    drop(store);
    Ok(())
}

/// A `chatvault serve` child, killed on drop.
struct Node {
    child: Child,
    url: String,
}

impl Node {
    fn start(dir: &Path, key: &MasterKey, secret: &str) -> Result<Self> {
        let mut child = Command::new(BIN)
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env("CHATVAULT_MASTER_KEY", key.to_hex())
            .env("CHATVAULT_CLUSTER_SECRET", secret)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .with_context(|| format!("no listening line: {line:?}"))?;
        Ok(Self {
            url: addr.to_owned(),
            child,
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(10));
    }
}

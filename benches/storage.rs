//! Storage benchmark (issue 2): opening a tenant file with its raw key vs a passphrase, insert
//! throughput SQLCipher vs plain SQLite (same schema and pragmas, through the real `Worker`),
//! and instant purge via the real `Vault::purge` next to `DELETE … WHERE tenant = ?` on a shared
//! plain database of the same size.
//!
//! `cargo bench --bench storage` (full: 10k/100k/1M messages) or `-- --quick` (CI-size).
//! Prints a table and writes `<target-dir>/bench/storage.json`. Numbers, never assertions.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chatvault::crypto::{DbKey, MasterKey};
use chatvault::datadir::DataDir;
use chatvault::db::{self, OpenMode, Worker, WorkerHandle};
use chatvault::domain::{ConversationId, Role, TenantId};
use chatvault::keyring::Keyring;
use chatvault::vault::{Vault, repo, schema};
use rusqlite::{Connection, params};
use serde_json::{Value, json};

#[path = "support/fill.rs"]
mod fill;
#[path = "support/stats.rs"]
mod stats;
#[path = "support/text.rs"]
mod text;

use stats::{Summary, ms};

struct Plan {
    opens: usize,
    passphrase_opens: usize,
    single_inserts: usize,
    group_inserts: usize,
    purge_sizes: Vec<usize>,
    purge_reps: usize,
    shared_reps: usize,
    shared_fts_reps: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                opens: 50,
                passphrase_opens: 3,
                single_inserts: 200,
                group_inserts: 4_000,
                purge_sizes: vec![1_000, 10_000],
                purge_reps: 3,
                shared_reps: 3,
                shared_fts_reps: 1,
            }
        } else {
            Self {
                opens: 200,
                passphrase_opens: 10,
                single_inserts: 1_000,
                group_inserts: 20_000,
                purge_sizes: vec![10_000, 100_000, 1_000_000],
                purge_reps: 5,
                shared_reps: 3,
                shared_fts_reps: 1,
            }
        }
    }
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut plan = Plan::new(quick);
    if let Some(sizes) = args.iter().skip_while(|a| *a != "--sizes").nth(1) {
        plan.purge_sizes = sizes.split(',').filter_map(|s| s.parse().ok()).collect();
    }
    let tmp = tempfile::tempdir()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    println!("chatvault storage benchmark ({})", mode_name(quick));
    let machine = stats::machine();
    let open = bench_open(tmp.path(), &plan)?;
    let insert = runtime.block_on(bench_insert(tmp.path(), &plan))?;
    let cold = runtime.block_on(bench_cold_open(tmp.path()))?;
    let purge = runtime.block_on(bench_purge(tmp.path(), &plan))?;
    let report = json!({
        "benchmark": "storage",
        "mode": mode_name(quick),
        "machine": machine,
        "open": open,
        "insert": insert,
        "vault_cold_open": cold,
        "purge": purge,
    });
    let path = stats::write_report("storage.json", &report)?;
    println!("\nJSON: {}", path.display());
    Ok(())
}

fn mode_name(quick: bool) -> &'static str {
    if quick { "quick" } else { "full" }
}

// ---------------------------------------------------------------------------------------------
// Opening a file: raw key vs passphrase.

const PASSPHRASE: &str = "correct horse battery staple";

fn bench_open(dir: &Path, plan: &Plan) -> Result<Value> {
    let raw_path = dir.join("open-raw.db");
    let key = DbKey::generate();
    let mut conn = db::open_encrypted(&raw_path, &key, OpenMode::CreateIfMissing)?;
    db::migrate(&mut conn, schema::MIGRATIONS)?;
    drop(conn);
    let pass_path = dir.join("open-passphrase.db");
    let mut conn = open_with_passphrase(&pass_path)?;
    db::migrate(&mut conn, schema::MIGRATIONS)?;
    drop(conn);

    let raw = Summary::of(time_n(plan.opens, || {
        db::open_encrypted(&raw_path, &key, OpenMode::Existing).map(drop)?;
        Ok(())
    })?);
    let pass = Summary::of(time_n(plan.passphrase_opens, || {
        open_with_passphrase(&pass_path).map(drop)
    })?);
    println!("\n## Open a tenant file (open + key + verify read + pragmas)");
    println!("{:<28} {:>6} {:>12} {:>12}", "", "n", "median ms", "p95 ms");
    for (name, s) in [("raw key (x'..')", &raw), ("passphrase (PBKDF2)", &pass)] {
        println!(
            "{name:<28} {:>6} {:>12.3} {:>12.3}",
            s.n,
            ms(s.p50),
            ms(s.p95)
        );
    }
    let ratio = pass.p50.as_secs_f64() / raw.p50.as_secs_f64();
    println!(
        "passphrase / raw = {ratio:.0}x; target raw ≤ 1 ms median: {}",
        stats::verdict(ms(raw.p50) <= 1.0)
    );
    Ok(json!({
        "raw_key": raw.to_json(), "passphrase": pass.to_json(),
        "passphrase_over_raw": ratio, "target_raw_p50_ms": 1.0, "met": ms(raw.p50) <= 1.0,
    }))
}

/// `open_encrypted` with SQLCipher's default passphrase KDF instead of a raw key.
fn open_with_passphrase(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "key", PASSPHRASE)?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON; PRAGMA temp_store = MEMORY; PRAGMA cache_size = -512;",
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

fn time_n(n: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        f()?;
        out.push(started.elapsed());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Insert throughput: SQLCipher vs plain, one commit per row vs group commit.

const CONVERSATIONS: usize = 64;
const GROUP_WRITERS: usize = 64;

async fn bench_insert(dir: &Path, plan: &Plan) -> Result<Value> {
    println!(
        "\n## Insert a message (repo::insert_message through the real Worker, synchronous=FULL)"
    );
    println!(
        "{:<34} {:>8} {:>12} {:>12} {:>12}",
        "", "rows", "rows/s", "p50 ms", "p99 ms"
    );
    let mut results = serde_json::Map::new();
    for grouped in [false, true] {
        let mut pair = Vec::new();
        for encrypted in [true, false] {
            let path = dir.join(format!("insert-{encrypted}-{grouped}.db"));
            let worker = spawn_file_worker(&path, encrypted)?;
            let conversations = create_conversations(&worker).await?;
            let (rows, elapsed, latencies) = if grouped {
                insert_grouped(&worker, &conversations, plan.group_inserts).await?
            } else {
                insert_single(&worker, &conversations, plan.single_inserts).await?
            };
            let rate = rows as f64 / elapsed.as_secs_f64();
            let s = Summary::of(latencies);
            let name = format!(
                "{} {}",
                if encrypted {
                    "SQLCipher"
                } else {
                    "plain SQLite"
                },
                if grouped {
                    "group commit (64 writers)"
                } else {
                    "one commit per row"
                }
            );
            println!(
                "{name:<34} {rows:>8} {rate:>12.0} {:>12.3} {:>12.3}",
                ms(s.p50),
                ms(s.p99)
            );
            pair.push(rate);
            let key = format!(
                "{}_{}",
                if encrypted { "sqlcipher" } else { "plain" },
                if grouped { "group" } else { "single" }
            );
            results.insert(
                key,
                json!({"rows": rows, "rows_per_s": rate, "latency": s.to_json()}),
            );
        }
        let overhead = pair[1] / pair[0] - 1.0;
        println!(
            "  encryption cost ({}): plain is {:.1}% faster",
            if grouped { "group" } else { "single" },
            overhead * 100.0
        );
        let label = if grouped { "group" } else { "single" };
        results.insert(format!("encryption_overhead_{label}"), json!(overhead));
    }
    Ok(Value::Object(results))
}

fn spawn_file_worker(path: &Path, encrypted: bool) -> Result<WorkerHandle> {
    let path = path.to_owned();
    let key = DbKey::generate();
    // Batched like a tenant's writer, including its full-text indexing step.
    let batching = chatvault::vault::tenant_batching(std::time::Duration::ZERO);
    Ok(Worker::spawn_batching(
        "bench".into(),
        batching,
        move || {
            let mut conn = if encrypted {
                db::open_encrypted(&path, &key, OpenMode::CreateIfMissing)?
            } else {
                db::open_plaintext_for_benchmarks(&path, &key, OpenMode::CreateIfMissing)?
            };
            db::migrate(&mut conn, schema::MIGRATIONS)?;
            Ok(conn)
        },
    )?)
}

async fn create_conversations(worker: &WorkerHandle) -> Result<Arc<Vec<ConversationId>>> {
    let ids: Vec<ConversationId> = (0..CONVERSATIONS)
        .map(|_| ConversationId::generate())
        .collect();
    let create = ids.clone();
    worker
        .call(move |conn| {
            for id in &create {
                repo::create_conversation(conn, id, &[0u8; 32], db::now_ms())?;
            }
            Ok(())
        })
        .await?;
    Ok(Arc::new(ids))
}

async fn insert_one(worker: &WorkerHandle, conversation: ConversationId, n: usize) -> Result<()> {
    worker
        .call(move |conn| {
            let body = text::message(n as u64);
            let msg = repo::NewMessage {
                conversation: &conversation,
                role: Role::Visitor,
                text: &body,
                at: db::now_ms(),
                submit_id: None,
                reply_to: None,
                tokens: 40,
            };
            repo::insert_message(conn, &msg).map(drop)
        })
        .await?;
    Ok(())
}

async fn insert_single(
    worker: &WorkerHandle,
    conversations: &[ConversationId],
    rows: usize,
) -> Result<(usize, Duration, Vec<Duration>)> {
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(rows);
    for n in 0..rows {
        let t = Instant::now();
        insert_one(worker, conversations[n % CONVERSATIONS].clone(), n).await?;
        latencies.push(t.elapsed());
    }
    Ok((rows, started.elapsed(), latencies))
}

async fn insert_grouped(
    worker: &WorkerHandle,
    conversations: &Arc<Vec<ConversationId>>,
    rows: usize,
) -> Result<(usize, Duration, Vec<Duration>)> {
    let per_writer = rows / GROUP_WRITERS;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..GROUP_WRITERS {
        let (worker, conversations) = (worker.clone(), conversations.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_writer);
            for i in 0..per_writer {
                let n = w * per_writer + i;
                let t = Instant::now();
                insert_one(&worker, conversations[w % CONVERSATIONS].clone(), n).await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(rows);
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok((per_writer * GROUP_WRITERS, started.elapsed(), latencies))
}

// ---------------------------------------------------------------------------------------------
// A call to a tenant whose file is closed (LRU-evicted) vs one whose file is open.

const COLD_TENANTS: usize = 64;
const COLD_LRU: usize = 8;

async fn bench_cold_open(dir: &Path) -> Result<Value> {
    let data = DataDir::open(dir.join("cold"))?;
    let keyring = Keyring::open(&data, &MasterKey::generate())?;
    let vault = Vault::new(data, keyring, COLD_LRU);
    let ids: Vec<TenantId> = (0..COLD_TENANTS)
        .map(|i| TenantId::parse(&format!("cold-{i:03}")))
        .collect::<chatvault::Result<_>>()?;
    let (creator, create) = (vault.clone(), ids.clone());
    tokio::task::spawn_blocking(move || -> Result<()> {
        for id in &create {
            creator.create_tenant_blocking(id)?;
        }
        Ok(())
    })
    .await??;
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for round in 0..3 {
        // Round-robin over more tenants than the LRU holds: every call opens a closed file.
        for id in &ids {
            let started = Instant::now();
            vault.call(id, write_conversation).await?;
            if round > 0 {
                cold.push(started.elapsed());
            }
        }
    }
    for _ in 0..COLD_TENANTS * 2 {
        let started = Instant::now();
        vault.call(&ids[0], write_conversation).await?;
        warm.push(started.elapsed());
    }
    let (cold, warm) = (Summary::of(cold), Summary::of(warm));
    println!(
        "\n## Vault write (one new conversation, committed) to a closed tenant file vs an open one (LRU {COLD_LRU}, {COLD_TENANTS} tenants)"
    );
    println!("{:<28} {:>6} {:>12} {:>12}", "", "n", "median ms", "p95 ms");
    for (name, s) in [
        ("cold (keyring + open)", &cold),
        ("warm (file open)", &warm),
    ] {
        println!(
            "{name:<28} {:>6} {:>12.3} {:>12.3}",
            s.n,
            ms(s.p50),
            ms(s.p95)
        );
    }
    Ok(
        json!({"cold": cold.to_json(), "warm": warm.to_json(), "lru": COLD_LRU, "tenants": COLD_TENANTS}),
    )
}

fn write_conversation(conn: &Connection) -> chatvault::Result<()> {
    repo::create_conversation(conn, &ConversationId::generate(), &[0u8; 32], db::now_ms())
}

// ---------------------------------------------------------------------------------------------
// Purge: the real Vault::purge vs DELETE on a shared plain table.

async fn bench_purge(dir: &Path, plan: &Plan) -> Result<Value> {
    let data = DataDir::open(dir.join("tenants"))?;
    let master = MasterKey::generate();
    let keyring = Keyring::open(&data, &master)?;
    let vault = Vault::new(data.clone(), keyring.clone(), 16);
    println!("\n## Purge all of a tenant's messages");
    println!(
        "{:>10} {:>9} {:>13} {:>13} {:>17} {:>8} {:>17} {:>8}",
        "messages",
        "build s",
        "purge p50 ms",
        "purge max ms",
        "DELETE noFTS ms",
        "ratio",
        "DELETE +FTS ms",
        "ratio"
    );
    let mut rows = Vec::new();
    for &size in &plan.purge_sizes {
        let built = Instant::now();
        let tenants = build_tenants(&vault, &keyring, &data, size, plan.purge_reps).await?;
        let build_s = built.elapsed().as_secs_f64();
        let mut purges = Vec::new();
        for tenant in &tenants {
            let probe = tenant.clone();
            let before = vault.call(&probe, repo::totals).await?;
            anyhow::ensure!(
                before.messages == size as i64,
                "tenant holds {}",
                before.messages
            );
            let started = Instant::now();
            let report = vault.purge(tenant).await?;
            purges.push(started.elapsed());
            // The next purge should not queue behind this one's background unlink, nor behind
            // the filesystem's discard of the freed blocks (this VM mounts ext4 with `discard`).
            settle_trash(&data);
            let _ = std::process::Command::new("sync").status();
            tokio::time::sleep(Duration::from_millis(500)).await;
            anyhow::ensure!(
                report.messages == size as i64,
                "purge reported {}",
                report.messages
            );
            let after = vault.call(tenant, repo::totals).await?;
            anyhow::ensure!(after.messages == 0, "purged tenant still holds messages");
        }
        let purge = Summary::of(purges);
        let shared = Summary::of(shared_deletes(dir, size, plan.shared_reps, false)?);
        // With FTS5 secure-delete the shared DELETE takes ~45 s at 100k rows here and grows
        // with the row count, so it is measured only up to FTS_LIMIT.
        let shared_fts = if size <= FTS_LIMIT {
            Summary::of(shared_deletes(dir, size, plan.shared_fts_reps, true)?)
        } else {
            Summary::default()
        };
        let ratio = shared.p50.as_secs_f64() / purge.p50.as_secs_f64();
        let ratio_fts = shared_fts.p50.as_secs_f64() / purge.p50.as_secs_f64();
        let (fts_ms, fts_ratio) = if shared_fts.n == 0 {
            ("not run".to_owned(), "—".to_owned())
        } else {
            (
                format!("{:.1}", ms(shared_fts.p50)),
                format!("{ratio_fts:.0}x"),
            )
        };
        println!(
            "{size:>10} {build_s:>9.1} {:>13.3} {:>13.3} {:>17.1} {:>7.0}x {fts_ms:>17} {fts_ratio:>8}",
            ms(purge.p50),
            ms(purge.max),
            ms(shared.p50),
            ratio,
        );
        rows.push(json!({
            "messages": size, "purge": purge.to_json(), "build_s": build_s,
            "shared_delete_no_fts": shared.to_json(), "shared_over_purge": ratio,
            "shared_delete_fts": shared_fts.to_json(), "shared_fts_over_purge": ratio_fts,
        }));
        settle_trash(&data);
    }
    let largest = rows.last().cloned().unwrap_or(Value::Null);
    let purge_p50 = largest["purge"]["p50_ms"].as_f64().unwrap_or(f64::NAN);
    let ratio = largest["shared_over_purge"].as_f64().unwrap_or(0.0);
    println!(
        "target purge ≤ 10 ms median at the largest size: {}; ≥ 100x faster than the shared DELETE (no FTS, the cheaper baseline): {}",
        stats::verdict(purge_p50 <= 10.0),
        stats::verdict(ratio >= 100.0)
    );
    Ok(json!({ "sizes": rows, "target_p50_ms": 10.0, "target_ratio": 100.0 }))
}

/// `reps` tenants holding `size` messages each: one file is built, the others are byte copies
/// of it under the same DEK (the keyring holds it for each), which is far faster than building.
async fn build_tenants(
    vault: &Vault,
    keyring: &Keyring,
    data: &DataDir,
    size: usize,
    reps: usize,
) -> Result<Vec<TenantId>> {
    let ids: Vec<TenantId> = (0..reps)
        .map(|r| TenantId::parse(&format!("purge-{size}-{r}")))
        .collect::<chatvault::Result<_>>()?;
    let (first, template) = (ids[0].clone(), data.tenant_path(&ids[0]));
    let (vault_c, first_c) = (vault.clone(), first.clone());
    let dek = tokio::task::spawn_blocking(move || -> Result<DbKey> {
        vault_c.create_tenant_blocking(&first_c)?;
        let dek = vault_c.tenant_key_blocking(&first_c)?;
        let mut conn = db::open_encrypted(&template, &dek, OpenMode::Existing)?;
        fill::fill_tenant_file(&mut conn, size)?;
        conn.close().map_err(|(_, e)| e)?;
        Ok(dek)
    })
    .await??;
    let (keyring, data, copies) = (keyring.clone(), data.clone(), ids[1..].to_vec());
    tokio::task::spawn_blocking(move || -> Result<()> {
        for id in &copies {
            keyring.insert_blocking(id, &dek)?;
            std::fs::copy(data.tenant_path(&first), data.tenant_path(id)).context("copy")?;
        }
        // Flush the copies now, so their writeback does not land in the purges' fsyncs.
        for id in std::iter::once(&first).chain(&copies) {
            std::fs::File::open(data.tenant_path(id))?.sync_all()?;
        }
        Ok(())
    })
    .await??;
    Ok(ids)
}

const SHARED_TABLE: &str = "
CREATE TABLE messages (
    seq INTEGER PRIMARY KEY, tenant TEXT NOT NULL, id TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL, role TEXT NOT NULL, text TEXT NOT NULL, at INTEGER NOT NULL,
    submit_id TEXT, reply_to TEXT, tokens INTEGER NOT NULL DEFAULT 0, flags TEXT,
    UNIQUE (conversation_id, submit_id));
CREATE INDEX messages_by_tenant ON messages (tenant);
CREATE INDEX messages_by_conversation ON messages (conversation_id, seq);
CREATE INDEX messages_by_reply_to ON messages (reply_to) WHERE reply_to IS NOT NULL;
";

/// The tenant file's full-text index and its triggers, on the shared table.
const SHARED_FTS: &str = "
CREATE VIRTUAL TABLE messages_fts USING fts5 (text, content = 'messages', content_rowid = 'seq');
INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);
CREATE TRIGGER messages_after_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (NEW.seq, NEW.text); END;
CREATE TRIGGER messages_after_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', OLD.seq, OLD.text); END;
";

/// Largest shared table whose DELETE is also measured with the full-text index.
const FTS_LIMIT: usize = 100_000;

/// Other tenants' rows beside the victim's in the shared table.
const SHARED_OTHERS: usize = 1_000;

/// `DELETE FROM messages WHERE tenant = ?` on a plain shared database (same message columns,
/// indexes and pragmas as a tenant file plus a tenant column; with or without the full-text
/// index); each rep on a fresh copy.
fn shared_deletes(dir: &Path, size: usize, reps: usize, fts: bool) -> Result<Vec<Duration>> {
    let template = dir.join(format!("shared-{size}-{fts}.db"));
    let key = DbKey::generate();
    let mut conn = db::open_plaintext_for_benchmarks(&template, &key, OpenMode::CreateIfMissing)?;
    conn.execute_batch(SHARED_TABLE)?;
    if fts {
        conn.execute_batch(SHARED_FTS)?;
    }
    let tx = conn.transaction()?;
    {
        let mut msg = tx.prepare(
            "INSERT INTO messages (tenant, id, conversation_id, role, text, at, tokens)
             VALUES (?1, ?2, ?3, 'visitor', ?4, ?5, 40)",
        )?;
        let stride = size / SHARED_OTHERS + 1;
        let mut others = 0;
        for n in 0..size + SHARED_OTHERS {
            let tenant = if n % stride == 0 && others < SHARED_OTHERS {
                others += 1;
                "other"
            } else {
                "victim"
            };
            msg.execute(params![
                tenant,
                format!("m{n:08}"),
                format!("c{:08}", n / 20),
                text::message(n as u64),
                n as i64
            ])?;
        }
    }
    tx.commit()?;
    conn.close().map_err(|(_, e)| e)?;
    let mut out = Vec::new();
    for r in 0..reps {
        let copy: PathBuf = dir.join(format!("shared-{size}-{r}.db"));
        std::fs::copy(&template, &copy)?;
        let conn = db::open_plaintext_for_benchmarks(&copy, &key, OpenMode::Existing)?;
        let started = Instant::now();
        conn.execute("DELETE FROM messages WHERE tenant = ?1", ["victim"])?;
        out.push(started.elapsed());
        drop(conn);
        remove_db(&copy);
    }
    remove_db(&template);
    Ok(out)
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// Lets the background unlinks of purged files finish before the next size is built.
fn settle_trash(data: &DataDir) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline
        && std::fs::read_dir(data.trash_dir()).map_or(0, |d| d.count()) > 0
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

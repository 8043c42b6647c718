//! The one door to every SQLCipher file: opening with a raw key and our pragmas, schema
//! migrations by `user_version`, and [`Worker`], the thread that owns a connection so that no
//! rusqlite call ever runs on an async runtime thread.

mod worker;

pub use worker::{Batching, BeforeCommit, Worker, WorkerHandle};

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::crypto::DbKey;
use crate::datadir;
use crate::error::{Error, Result};

/// How a database should be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// The file must exist already.
    Existing,
    /// Create the file (mode 0600) if it is missing.
    CreateIfMissing,
}

/// Page cache per connection, in KiB (negative `cache_size`): small, because a server may hold
/// hundreds of tenant files open at once.
const CACHE_KIB: i64 = 512;

/// Prepared statements kept per connection. The hot paths (the worker's transaction control,
/// a submit's and a reply's repository statements, retrieval) use about two dozen; rusqlite's
/// default of 16 would evict them in turn and re-parse every one.
const STATEMENT_CACHE: usize = 48;

/// Opens a SQLCipher database with a raw 256-bit key and verifies that the key opens it.
pub fn open_encrypted(path: &Path, key: &DbKey, mode: OpenMode) -> Result<Connection> {
    if mode == OpenMode::CreateIfMissing && !path.exists() {
        // Pre-create the file so SQLite (and its -wal/-shm, which copy the mode) is 0600.
        datadir::create_or_open_private(path)?;
    }
    if !path.exists() {
        return Err(Error::not_found(&format!("database {}", path.display())));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    // The key must be the first statement; the x'..' form skips the passphrase KDF entirely.
    conn.execute_batch(&key.pragma_statement())?;
    // SQLCipher would print decryption failures to stderr itself; we report them as one error.
    conn.execute_batch("PRAGMA cipher_log_level = NONE;")?;
    // Until the key is known to be right, closing this connection must not checkpoint (and so
    // rewrite) a file it cannot read: a wrong key touches nothing.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| {
        row.get::<_, i64>(0)
    })
    .map_err(|_| Error::Crypto(format!("the key does not open {}", path.display())))?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        false,
    )?;
    apply_pragmas(&conn)?;
    Ok(conn)
}

/// Benchmark-only: opens a database with exactly the pragmas of [`open_encrypted`] but without
/// a key, so the benchmarks can measure what encryption costs. Nothing in the server, the CLI or
/// the configuration reaches it; the key argument exists only to match `open_encrypted`.
#[doc(hidden)]
pub fn open_plaintext_for_benchmarks(
    path: &Path,
    _key: &DbKey,
    mode: OpenMode,
) -> Result<Connection> {
    if mode == OpenMode::CreateIfMissing && !path.exists() {
        datadir::create_or_open_private(path)?;
    }
    if !path.exists() {
        return Err(Error::not_found(&format!("database {}", path.display())));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    apply_pragmas(&conn)?;
    Ok(conn)
}

/// How hard a tenant file's commits hold on to the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous = FULL`: every commit is fsynced before `accepted` is sent. Survives power
    /// loss. The default.
    #[default]
    Full,
    /// `synchronous = NORMAL` (WAL): commits reach the OS, fsynced at checkpoints. Survives a
    /// crash or kill of chatvault; a power loss or kernel crash can take the last commits (never
    /// corrupts). Opt-in, for operators who trade that for latency.
    Normal,
}

impl Durability {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "full" => Some(Self::Full),
            "normal" => Some(Self::Normal),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Normal => "normal",
        }
    }
}

fn apply_pragmas(conn: &Connection) -> Result<()> {
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA secure_delete = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -{CACHE_KIB};"
    ))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Brings a database to the newest schema: `migrations[i]` takes `user_version` i to i+1.
pub fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<()> {
    let current: usize = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current > migrations.len() {
        return Err(Error::Config(format!(
            "database schema version {current} is newer than this chatvault understands ({})",
            migrations.len()
        )));
    }
    for (version, sql) in migrations.iter().enumerate().skip(current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
    Ok(())
}

/// Tests: an in-memory database brought to the schema of `migrations`.
#[cfg(test)]
pub fn migrated_in_memory(migrations: &[&str]) -> Connection {
    let mut conn = Connection::open_in_memory().expect("an in-memory database opens");
    migrate(&mut conn, migrations).expect("the migrations apply");
    conn
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// RFC 3339 with milliseconds, UTC: how times leave the server.
pub fn format_time(ms: i64) -> String {
    let at =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(at).to_string()
}

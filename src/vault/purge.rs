//! Instant purge and delete. Both destroy the tenant's DEK first; after that the old bytes are
//! unreadable, so moving the file set aside and unlinking it later costs nothing that grows with
//! the amount of conversations.
//!
//! A purge keeps the knowledge base: before the key is switched, the documents are copied into
//! the replacement file (`<tenant>.db-carry`, under the new DEK), which then takes the old
//! file's place. Only that copy costs time, and it grows with the documents, not the history.

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::config::DbConfig;
use serde::Serialize;

use super::{Vault, repo, schema};
use crate::crypto::DbKey;
use crate::datadir::{self, DataDir};
use crate::db::{self, OpenMode};
use crate::domain::TenantId;
use crate::error::Result;
use crate::keyring::Keyring;
use crate::knowledge;

/// What a purge removed.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct PurgeReport {
    pub conversations: i64,
    pub messages: i64,
    pub purged_at: i64,
}

impl Vault {
    /// Destroys every conversation of the tenant at once: new DEK, old file set moved aside and
    /// unlinked in the background, a fresh empty file. Writes queued before the purge land in the
    /// old file (and are purged); writes after it land in the new file.
    pub async fn purge(&self, tenant: &TenantId) -> Result<PurgeReport> {
        let (dir, keyring, id) = (self.dir().clone(), self.keyring().clone(), tenant.clone());
        let open_file = self.inner.open_file;
        let outcome = self
            .exclusive(tenant, move |conn| {
                replace_file(conn, &dir, &keyring, &id, open_file)
            })
            .await;
        if outcome.is_err() {
            // The worker may hold a placeholder connection now; the next call reopens the
            // tenant, which completes the purge from the keyring's pending mark.
            self.forget(tenant);
        }
        outcome
    }

    /// Crypto-shreds the tenant: its DEK is destroyed, then its files are removed.
    pub async fn delete(&self, tenant: &TenantId) -> Result<bool> {
        let path = self.dir().tenant_path(tenant);
        let handle = self.handle(tenant).ok();
        let existed = self.keyring().remove(tenant).await?;
        if let Some(handle) = handle {
            // Close the file without a checkpoint, so nothing is written to it any more.
            let _ = handle.exclusive(close_without_checkpoint).await;
        }
        self.forget(tenant);
        datadir::remove_files(self.dir().move_to_trash(&path)?);
        Ok(existed)
    }
}

fn replace_file(
    conn: &mut Connection,
    dir: &DataDir,
    keyring: &Keyring,
    tenant: &TenantId,
    open_file: super::OpenFile,
) -> Result<PurgeReport> {
    let totals = repo::totals(conn)?;
    let dek = DbKey::generate();
    let path = dir.tenant_path(tenant);
    let carry = carry_path(&path);
    // A carry file left by a purge that failed before its key switch is unreadable: drop it.
    datadir::remove_files(dir.move_to_trash(&carry)?);
    carry_documents(conn, &carry, &dek, open_file)?;
    // From here on the carry file is complete, so a crash is finished by `finish_interrupted`.
    keyring.replace_for_purge_blocking(tenant, &dek)?;
    close_without_checkpoint(conn)?;
    let moved = dir.move_to_trash(&path)?;
    std::fs::rename(&carry, &path)?;
    datadir::sync_dir(dir.root())?;
    let mut fresh = open_file.open(&path, &dek, OpenMode::Existing)?;
    db::migrate(&mut fresh, schema::MIGRATIONS)?;
    *conn = fresh;
    keyring.clear_pending_blocking(tenant)?;
    datadir::remove_files(moved);
    Ok(PurgeReport {
        conversations: totals.conversations,
        messages: totals.messages,
        purged_at: db::now_ms(),
    })
}

/// Where a purge builds the tenant's replacement file. Not `*.db`, so nothing takes it for a
/// tenant file.
fn carry_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}-carry", path.display()))
}

/// Creates the replacement file under `dek` holding the current knowledge base, and closes it
/// (a clean close checkpoints it into one self-contained file).
fn carry_documents(
    conn: &Connection,
    carry: &Path,
    dek: &DbKey,
    open_file: super::OpenFile,
) -> Result<()> {
    let mut fresh = open_file.open(carry, dek, OpenMode::CreateIfMissing)?;
    db::migrate(&mut fresh, schema::MIGRATIONS)?;
    let tx = fresh.transaction()?;
    knowledge::repo::copy_all(conn, &tx)?;
    tx.commit()?;
    fresh.close().map_err(|(_, e)| e)?;
    Ok(())
}

/// Completes a purge that a crash interrupted after its key switch (the keyring's pending mark):
/// the file at `path` is then either the old one (unreadable under the new key), or already the
/// carried replacement; or the replacement still waits at the carry path.
pub(super) fn finish_interrupted(
    dir: &DataDir,
    path: &Path,
    dek: &DbKey,
    open_file: super::OpenFile,
) -> Result<Connection> {
    let carry = carry_path(path);
    if carry.exists() {
        datadir::remove_files(dir.move_to_trash(path)?);
        std::fs::rename(&carry, path)?;
        datadir::sync_dir(dir.root())?;
        return open_file.open(path, dek, OpenMode::Existing);
    }
    if let Ok(conn) = open_file.open(path, dek, OpenMode::Existing) {
        return Ok(conn);
    }
    datadir::remove_files(dir.move_to_trash(path)?);
    open_file.open(path, dek, OpenMode::CreateIfMissing)
}

/// Closes the connection (leaving a read-only in-memory placeholder in its place) without the
/// checkpoint SQLite normally runs on close: the file is being discarded, and a checkpoint would
/// cost time proportional to the WAL.
fn close_without_checkpoint(conn: &mut Connection) -> Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    let placeholder = Connection::open_in_memory()?;
    placeholder.execute_batch("PRAGMA query_only = ON")?;
    let old = std::mem::replace(conn, placeholder);
    old.close().map_err(|(_, e)| e)?;
    Ok(())
}

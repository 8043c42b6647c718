//! `chatvault key rotate`: the catalog and keyring move to keys derived from a new master key
//! and every DEK is re-wrapped under it; tenant files are not touched (their DEKs do not change).
//!
//! Crash safety: the new files are written beside the old ones (`*.db.next`) and synced; then a
//! marker file is written atomically. That marker is the commit point. Before it exists, the old
//! files are authoritative and leftovers are discarded; once it exists, the renames are
//! completed. [`recover`] does either, and `Store::open` runs it before opening anything, so at
//! every moment the data directory opens with exactly one of the two keys and loses nothing.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};
use serde::Serialize;

use crate::backup::copy_database;
use crate::catalog::audit::{self, NewEntry};
use crate::catalog::tenants;
use crate::crypto::{self, KeyPurpose, MasterKey};
use crate::datadir::{self, DataDir, SIDE_FILES};
use crate::db::{self, OpenMode};
use crate::domain::TenantId;
use crate::error::{Error, Result};
use crate::fault;

/// The commit marker: while it exists, the `.next` files are the data directory's truth.
const MARKER: &str = "rotation.commit";

/// What `key rotate` did.
#[derive(Debug, Serialize)]
pub struct RotationReport {
    pub rotated_at: i64,
    pub tenants: usize,
}

/// Rotates the master key from `old` to `new`. Offline: refuses while a server runs.
pub fn rotate(
    dir: &DataDir,
    old: &MasterKey,
    new: &MasterKey,
    actor: &str,
) -> Result<RotationReport> {
    recover(dir)?;
    dir.ensure_no_server()?;
    let _lock = dir.lock_for_server()?;
    if old.to_hex() == new.to_hex() {
        return Err(Error::Config(
            "the new master key is the current one".into(),
        ));
    }
    for path in [dir.catalog_path(), dir.keyring_path()] {
        if !path.exists() {
            return Err(Error::not_found(&format!("{}", path.display())));
        }
    }
    let tenants = write_keyring(dir, old, new)?;
    write_catalog(dir, old, new, actor)?;
    fault::point("rotate:before-marker");
    write_marker(dir)?;
    fault::point("rotate:after-marker");
    roll_forward(dir)?;
    Ok(RotationReport {
        rotated_at: db::now_ms(),
        tenants,
    })
}

/// Completes a rotation whose marker exists, or discards one that never reached it.
/// Needs no key. Returns true when a rotation was completed.
pub fn recover(dir: &DataDir) -> Result<bool> {
    let marker = dir.root().join(MARKER).exists();
    let leftovers = [dir.catalog_path(), dir.keyring_path()]
        .iter()
        .any(|path| next_path(path).exists());
    if !marker && !leftovers {
        return Ok(false);
    }
    // A rotation in progress holds the lock: its files are not leftovers. (A server holds it
    // too, but a server only starts after this recovery has run.)
    let Ok(_lock) = dir.lock_for_server() else {
        return Ok(false);
    };
    if marker {
        roll_forward(dir)?;
        tracing::warn!("completed a master key rotation that was interrupted");
        return Ok(true);
    }
    for path in [dir.catalog_path(), dir.keyring_path()] {
        remove_with_side_files(&next_path(&path))?;
    }
    Ok(false)
}

/// keyring.db.next: a copy under the new derived key, every DEK re-wrapped under the new master.
fn write_keyring(dir: &DataDir, old: &MasterKey, new: &MasterKey) -> Result<usize> {
    let src = open_current(&dir.keyring_path(), old, KeyPurpose::Keyring)?;
    let next = next_path(&dir.keyring_path());
    let key = crypto::derive_db_key(new, KeyPurpose::Keyring);
    let mut conn = copy_to_next(&src, &next, &key)?;
    drop(src);
    let tx = conn.transaction()?;
    let rows: Vec<(String, Vec<u8>, Option<Vec<u8>>)> = {
        let mut stmt = tx.prepare("SELECT tenant_id, wrapped, next_wrapped FROM deks")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?
    };
    for (id, wrapped, next_wrapped) in &rows {
        let tenant = TenantId::parse(id)?;
        let rewrap = |w: &[u8]| -> Result<Vec<u8>> {
            Ok(crypto::wrap_dek(
                new,
                &tenant,
                &crypto::unwrap_dek(old, &tenant, w)?,
            ))
        };
        let next_rewrapped = next_wrapped.as_deref().map(rewrap).transpose()?;
        tx.execute(
            "UPDATE deks SET wrapped = ?2, next_wrapped = ?3 WHERE tenant_id = ?1",
            params![id, rewrap(wrapped)?, next_rewrapped],
        )?;
    }
    tx.commit()?;
    finish_next(conn, &next)?;
    Ok(rows.len())
}

/// catalog.db.next: a copy under the new derived key, with the rotation in every tenant's audit.
fn write_catalog(dir: &DataDir, old: &MasterKey, new: &MasterKey, actor: &str) -> Result<()> {
    let src = open_current(&dir.catalog_path(), old, KeyPurpose::Catalog)?;
    let next = next_path(&dir.catalog_path());
    let key = crypto::derive_db_key(new, KeyPurpose::Catalog);
    let mut conn = copy_to_next(&src, &next, &key)?;
    drop(src);
    let tx = conn.transaction()?;
    for tenant in tenants::list(&tx)? {
        let entry = NewEntry {
            actor,
            action: "master_key.rotated",
            target: None,
            details: serde_json::json!({}),
        };
        audit::append(&tx, &TenantId::parse(&tenant.id)?, &entry)?;
    }
    tx.commit()?;
    finish_next(conn, &next)
}

fn open_current(path: &Path, master: &MasterKey, purpose: KeyPurpose) -> Result<Connection> {
    let key = crypto::derive_db_key(master, purpose);
    let conn = db::open_encrypted(path, &key, OpenMode::Existing).map_err(|e| match e {
        Error::Crypto(_) => Error::Crypto(format!(
            "the master key does not open {} (wrong CHATVAULT_MASTER_KEY or --master-key-file?)",
            path.display()
        )),
        other => other,
    })?;
    // Everything committed moves into the main file, so the copy below sees all of it.
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    Ok(conn)
}

fn copy_to_next(src: &Connection, next: &Path, key: &crypto::DbKey) -> Result<Connection> {
    remove_with_side_files(next)?;
    copy_database(src, next, key)?;
    db::open_encrypted(next, key, OpenMode::Existing)
}

/// Leaves the `.next` file self-contained (no WAL) and on disk.
fn finish_next(conn: Connection, next: &Path) -> Result<()> {
    conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
    drop(conn);
    std::fs::File::open(next)?.sync_all()?;
    Ok(())
}

fn write_marker(dir: &DataDir) -> Result<()> {
    datadir::sync_dir(dir.root())?;
    let tmp = dir.root().join(format!("{MARKER}.tmp"));
    let file = datadir::create_or_open_private(&tmp)?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.root().join(MARKER))?;
    datadir::sync_dir(dir.root())
}

/// Moves each `.next` file over its live name (keyring first), then removes the marker.
/// Idempotent: a rename already done is skipped.
fn roll_forward(dir: &DataDir) -> Result<()> {
    for (path, point) in [
        (dir.keyring_path(), "rotate:after-keyring"),
        (dir.catalog_path(), "rotate:after-catalog"),
    ] {
        let next = next_path(&path);
        if next.exists() {
            // The old file's WAL was checkpointed before the copy; it must not meet the new file.
            for suffix in SIDE_FILES {
                remove_if_present(&PathBuf::from(format!("{}{suffix}", path.display())))?;
            }
            std::fs::rename(&next, &path)?;
            datadir::sync_dir(dir.root())?;
        }
        fault::point(point);
    }
    remove_if_present(&dir.root().join(MARKER))?;
    datadir::sync_dir(dir.root())
}

fn next_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.next", path.display()))
}

fn remove_with_side_files(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        remove_if_present(&PathBuf::from(format!("{}{suffix}", path.display())))?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_are_kept_while_a_rotation_holds_the_directory_and_discarded_after() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path().join("tenants")).unwrap();
        let leftover = next_path(&dir.keyring_path());
        std::fs::write(&leftover, b"half-written").unwrap();
        let lock = dir.lock_for_server().unwrap();
        assert!(!recover(&dir).unwrap());
        assert!(
            leftover.exists(),
            "another process's rotation is not disturbed"
        );
        drop(lock);
        assert!(!recover(&dir).unwrap());
        assert!(
            !leftover.exists(),
            "a rotation that never committed is discarded"
        );
    }

    #[test]
    fn a_committed_rotation_is_rolled_forward_without_any_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path().join("tenants")).unwrap();
        std::fs::write(dir.keyring_path(), b"old").unwrap();
        std::fs::write(format!("{}-wal", dir.keyring_path().display()), b"old wal").unwrap();
        std::fs::write(next_path(&dir.keyring_path()), b"new").unwrap();
        std::fs::write(dir.root().join(MARKER), b"").unwrap();
        assert!(recover(&dir).unwrap());
        assert_eq!(std::fs::read(dir.keyring_path()).unwrap(), b"new");
        assert!(!PathBuf::from(format!("{}-wal", dir.keyring_path().display())).exists());
        assert!(!dir.root().join(MARKER).exists());
    }
}

//! Backups that a purge still reaches: `backup` copies the catalog and every tenant file with the
//! SQLite backup API (online, each file a consistent snapshot) but never the keyring, so a backup
//! is readable only with the keyring, and destroying a DEK there makes that tenant's copy in every
//! backup unreadable. `restore` puts a backup back; `verify` checks every file's integrity.

mod restore;
mod verify;

pub use restore::{RestoreReport, restore};
pub use verify::{FileCheck, VerifyReport, verify};

use std::path::{Path, PathBuf};

use rusqlite::Connection;
use rusqlite::backup::Backup;
use serde::Serialize;

use crate::catalog::tenants;
use crate::crypto::{self, DbKey, KeyPurpose, MasterKey};
use crate::datadir;
use crate::db::{self, OpenMode};
use crate::domain::TenantId;
use crate::error::{Error, Result};
use crate::store::{Store, blocking};

/// What `chatvault backup` wrote.
#[derive(Debug, Serialize)]
pub struct BackupReport {
    pub out: PathBuf,
    pub tenants: usize,
    pub bytes: u64,
}

/// Copies the catalog and every tenant file into `out` (created 0700; must be empty or missing).
/// The keyring is never copied.
pub async fn backup(store: &Store, master: &MasterKey, out: &Path) -> Result<BackupReport> {
    prepare_out_dir(out)?;
    let catalog_src = store.dir.catalog_path();
    let catalog_out = out.join("catalog.db");
    let key = crypto::derive_db_key(master, KeyPurpose::Catalog);
    blocking(move || {
        let src = db::open_encrypted(&catalog_src, &key, OpenMode::Existing)?;
        copy_database(&src, &catalog_out, &key)
    })
    .await?;
    // The tenants of the copied catalog; one created meanwhile is in neither copy.
    let listed = store.catalog.call(tenants::list).await?;
    let mut count = 0;
    for tenant in listed {
        let id = TenantId::parse(&tenant.id)?;
        let dest = out.join(format!("{id}.db"));
        let keyring = store.vault.keyring().clone();
        let file_id = id.clone();
        // On the tenant's own worker, so a purge or rekey cannot interleave with the copy.
        let copied = store
            .vault
            .exclusive(&id, move |conn| {
                let dek = keyring.get_blocking(&file_id)?.dek;
                copy_database(conn, &dest, &dek)
            })
            .await;
        match copied {
            Ok(()) => count += 1,
            // Deleted while the backup ran: it is rightly absent from the backup.
            Err(_) if store.tenant(&id).await.is_err() => {
                let _ = std::fs::remove_file(out.join(format!("{id}.db")));
            }
            Err(e) => return Err(e),
        }
    }
    datadir::sync_dir(out)?;
    Ok(BackupReport {
        out: out.to_path_buf(),
        tenants: count,
        bytes: dir_bytes(out),
    })
}

/// Copies `src` into a new file at `dest` keyed with `key`, as one self-contained file (no WAL).
pub(crate) fn copy_database(src: &Connection, dest: &Path, key: &DbKey) -> Result<()> {
    let mut out = db::open_encrypted(dest, key, OpenMode::CreateIfMissing)?;
    {
        let backup = Backup::new(src, &mut out)?;
        // -1: every page in one step, under one read transaction: a consistent snapshot even
        // while other connections keep writing.
        backup.step(-1)?;
    }
    out.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))?;
    drop(out);
    std::fs::File::open(dest)?.sync_all()?;
    Ok(())
}

fn prepare_out_dir(out: &Path) -> Result<()> {
    if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        return Err(Error::Conflict(format!(
            "{} is not empty; back up into a new directory",
            out.display()
        )));
    }
    datadir::create_private_dir(out)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// Tenant ids of the `<id>.db` files in a directory (catalog and keyring are not tenant ids).
pub(crate) fn tenant_files(dir: &Path) -> Result<Vec<TenantId>> {
    let mut ids = Vec::new();
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".db")) else {
            continue;
        };
        if let Ok(id) = TenantId::parse(stem) {
            ids.push(id);
        }
    }
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Ok(ids)
}

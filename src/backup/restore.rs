//! `chatvault restore`: put a backup back into a data directory whose keyring survives. A tenant
//! whose DEK was destroyed (deleted) or replaced (purged) after the backup comes back unreadable:
//! its copy is discarded, a purged tenant gets a fresh empty file under its current DEK, and a
//! deleted tenant stays deleted.

use std::path::Path;

use serde::Serialize;

use super::tenant_files;
use crate::catalog::{audit, tenants};
use crate::crypto::{self, KeyPurpose, MasterKey};
use crate::datadir::{self, DataDir};
use crate::db::{self, OpenMode};
use crate::domain::TenantId;
use crate::error::{Error, Result};
use crate::keyring::Keyring;
use crate::vault::schema;

/// What `chatvault restore` did.
#[derive(Debug, Default, Serialize)]
pub struct RestoreReport {
    /// Tenants whose files came back readable.
    pub restored: Vec<String>,
    /// Tenants whose DEK no longer exists, so their backed-up file cannot be read.
    pub unreadable: Vec<String>,
}

/// Restores the backup in `from` into `dir`. Offline: refuses while a server runs, and refuses a
/// data directory that already holds a catalog or tenant files unless `force`.
pub fn restore(
    dir: &DataDir,
    master: &MasterKey,
    from: &Path,
    force: bool,
) -> Result<RestoreReport> {
    crate::rotation::recover(dir)?;
    dir.ensure_no_server()?;
    let _lock = dir.lock_for_server()?;
    if !dir.keyring_path().exists() {
        return Err(Error::Config(format!(
            "{} has no keyring.db; a backup can only be read with the keyring it was taken \
             with (backups never contain it): copy keyring.db into the data directory first",
            dir.root().display()
        )));
    }
    if !from.join("catalog.db").exists() {
        return Err(Error::Config(format!(
            "{} is not a chatvault backup (no catalog.db)",
            from.display()
        )));
    }
    let existing = tenant_files(dir.root())?;
    if !force && (dir.catalog_path().exists() || !existing.is_empty()) {
        return Err(Error::Conflict(format!(
            "{} already holds data; pass --force to replace it with the backup",
            dir.root().display()
        )));
    }
    let staging = dir.root().join(".restore");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    datadir::create_private_dir(&staging)?;
    let outcome = stage_and_swap(dir, master, from, &staging, &existing);
    let _ = std::fs::remove_dir_all(&staging);
    dir.empty_trash();
    outcome
}

fn stage_and_swap(
    dir: &DataDir,
    master: &MasterKey,
    from: &Path,
    staging: &Path,
    existing: &[TenantId],
) -> Result<RestoreReport> {
    let catalog = staging.join("catalog.db");
    copy_private(&from.join("catalog.db"), &catalog)?;
    let catalog_key = crypto::derive_db_key(master, KeyPurpose::Catalog);
    let catalog_conn =
        db::open_encrypted(&catalog, &catalog_key, OpenMode::Existing).map_err(|_| {
            Error::Crypto(format!(
                "the master key does not open {}/catalog.db (a backup's catalog is keyed by the \
                 master key in force when it was taken)",
                from.display()
            ))
        })?;
    let keyring = Keyring::open(dir, master)?;
    let mut report = RestoreReport::default();
    for id in tenant_files(from)? {
        let staged = staging.join(format!("{id}.db"));
        copy_private(&from.join(format!("{id}.db")), &staged)?;
        match keyring.get_blocking(&id) {
            Ok(entry) if db::open_encrypted(&staged, &entry.dek, OpenMode::Existing).is_ok() => {
                report.restored.push(id.to_string());
            }
            found => {
                std::fs::remove_file(&staged)?;
                match found {
                    // Purged after the backup: the tenant stays, empty, under its current DEK.
                    Ok(entry) => {
                        let mut fresh =
                            db::open_encrypted(&staged, &entry.dek, OpenMode::CreateIfMissing)?;
                        db::migrate(&mut fresh, schema::MIGRATIONS)?;
                    }
                    // Deleted after the backup: it stays deleted.
                    Err(Error::NotFound(_)) => {
                        tenants::delete(&catalog_conn, &id)?;
                        audit::delete_tenant(&catalog_conn, &id)?;
                    }
                    Err(e) => return Err(e),
                }
                report.unreadable.push(id.to_string());
            }
        }
    }
    drop(catalog_conn);
    swap_in(dir, staging, existing)?;
    Ok(report)
}

/// Moves the current catalog and tenant files to the trash, then the staged ones into place.
fn swap_in(dir: &DataDir, staging: &Path, existing: &[TenantId]) -> Result<()> {
    let mut trashed = dir.move_to_trash(&dir.catalog_path())?;
    for id in existing {
        trashed.extend(dir.move_to_trash(&dir.tenant_path(id))?);
    }
    for entry in std::fs::read_dir(staging)?.flatten() {
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| n.ends_with(".db")) {
            std::fs::rename(entry.path(), dir.root().join(&name))?;
        }
    }
    datadir::sync_dir(dir.root())?;
    datadir::remove_files(trashed);
    Ok(())
}

fn copy_private(from: &Path, to: &Path) -> Result<()> {
    let mut src = std::fs::File::open(from)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", from.display())))?;
    let mut dest = datadir::create_or_open_private(to)?;
    std::io::copy(&mut src, &mut dest)?;
    dest.sync_all()?;
    Ok(())
}

//! A tenant file that arrived from another node (`tenant move`): already staged in the trash
//! directory and fsynced by the receiver, renamed into place under its DEK, which this node's
//! master key now wraps.

use std::path::Path;

use super::Vault;
use crate::crypto::DbKey;
use crate::datadir;
use crate::domain::TenantId;
use crate::error::Result;

impl Vault {
    /// Installs `staged` (a self-contained SQLCipher database keyed with `dek`, on the data
    /// directory's filesystem) as the tenant's file, replacing any stale file an interrupted
    /// earlier attempt left. Call from a blocking thread, and only for a tenant the catalog does
    /// not know yet.
    pub fn install_blocking(&self, tenant: &TenantId, dek: &DbKey, staged: &Path) -> Result<()> {
        let dir = self.dir();
        self.forget(tenant);
        let path = dir.tenant_path(tenant);
        datadir::remove_files(dir.move_to_trash(&path)?);
        self.keyring().insert_blocking(tenant, dek)?;
        std::fs::rename(staged, &path)?;
        datadir::sync_dir(dir.root())
    }
}

//! A tenant file that arrived from another node (`tenant move`): staged next to the data, made
//! durable, then renamed into place under its DEK, which this node's master key now wraps.

use std::io::Write;

use super::Vault;
use crate::crypto::DbKey;
use crate::datadir;
use crate::domain::TenantId;
use crate::error::Result;

impl Vault {
    /// Installs `file` (a self-contained SQLCipher database keyed with `dek`) as the tenant's
    /// file, replacing any stale file an interrupted earlier attempt left. Call from a blocking
    /// thread, and only for a tenant the catalog does not know yet.
    pub fn install_blocking(&self, tenant: &TenantId, dek: &DbKey, file: &[u8]) -> Result<()> {
        let dir = self.dir();
        let trash = dir.trash_dir();
        if !trash.exists() {
            datadir::create_private_dir(&trash)?;
        }
        let staged = trash.join(format!("{tenant}.incoming"));
        let mut out = datadir::create_or_open_private(&staged)?;
        out.set_len(0)?;
        out.write_all(file)?;
        out.sync_all()?;
        drop(out);

        self.forget(tenant);
        let path = dir.tenant_path(tenant);
        datadir::remove_files(dir.move_to_trash(&path)?);
        self.keyring().insert_blocking(tenant, dek)?;
        std::fs::rename(&staged, &path)?;
        datadir::sync_dir(dir.root())
    }
}

//! `tenant rekey`: a new DEK for one tenant, online. The file is re-encrypted in place by
//! `PRAGMA rekey` on the tenant's own worker (an exclusive job, so no write interleaves). The
//! keyring holds the old key and the staged new one while the file changes; whichever of the two
//! opens the file after a crash is the current key, and the other is destroyed.

use std::path::Path;

use rusqlite::Connection;
use zeroize::Zeroizing;

use super::Vault;
use crate::crypto::DbKey;
use crate::db::{self, OpenMode};
use crate::domain::TenantId;
use crate::error::{Error, Result};
use crate::fault;
use crate::keyring::Keyring;

impl Vault {
    /// Moves the tenant's file to a fresh DEK and destroys the old one; returns when (ms).
    pub async fn rekey(&self, tenant: &TenantId) -> Result<i64> {
        let (keyring, id) = (self.keyring().clone(), tenant.clone());
        let outcome = self
            .exclusive(tenant, move |conn| rekey_file(conn, &keyring, &id))
            .await;
        if outcome.is_err() {
            // Reopening settles the keyring from whichever key opens the file.
            self.forget(tenant);
        }
        outcome
    }
}

fn rekey_file(conn: &mut Connection, keyring: &Keyring, tenant: &TenantId) -> Result<i64> {
    let dek = DbKey::generate();
    keyring.stage_next_blocking(tenant, &dek)?;
    // Old-key page images are moved out of the WAL first, so after the rekey commits every
    // page in the file and the WAL is under the new key.
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    fault::point("rekey:after-stage");
    let statement = Zeroizing::new(format!("PRAGMA rekey = \"x'{}'\";", dek.to_hex()));
    conn.execute_batch(&statement)?;
    fault::point("rekey:after-rekey");
    keyring.settle_next_blocking(tenant, true)?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    Ok(db::now_ms())
}

/// Opens a file whose rekey was interrupted: the key that opens it becomes (or stays) current.
pub(super) fn open_settling(
    path: &Path,
    keyring: &Keyring,
    tenant: &TenantId,
    current: &DbKey,
    next: &DbKey,
) -> Result<Connection> {
    if let Ok(conn) = db::open_encrypted(path, current, OpenMode::Existing) {
        keyring.settle_next_blocking(tenant, false)?;
        return Ok(conn);
    }
    let conn = db::open_encrypted(path, next, OpenMode::Existing)?;
    keyring.settle_next_blocking(tenant, true)?;
    tracing::warn!(tenant = %tenant, "completed a tenant rekey that was interrupted");
    Ok(conn)
}

/// Maps an open failure to what an operator should read.
pub(super) fn describe(tenant: &TenantId, e: Error) -> Error {
    match e {
        Error::NotFound(_) => Error::Unavailable(format!("the file of tenant {tenant} is missing")),
        Error::Crypto(_) => Error::Unavailable(format!(
            "the file of tenant {tenant} does not open with its key (corrupted or foreign)"
        )),
        other => other,
    }
}

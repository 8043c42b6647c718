//! `chatvault verify`: `PRAGMA integrity_check` (b-tree structure) and
//! `PRAGMA cipher_integrity_check` (every page's HMAC) on the catalog, the keyring and every
//! tenant file.

use rusqlite::Connection;
use serde::Serialize;

use super::tenant_files;
use crate::catalog::tenants;
use crate::crypto::{self, KeyPurpose, MasterKey};
use crate::db::{self, OpenMode};
use crate::domain::TenantId;
use crate::error::Result;
use crate::store::{Store, blocking};

/// The result for one file.
#[derive(Debug, Serialize)]
pub struct FileCheck {
    pub file: String,
    pub ok: bool,
    pub error: Option<String>,
}

/// The result for the whole data directory.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub files: Vec<FileCheck>,
}

/// Checks every file of the data directory; never stops at the first bad one.
pub async fn verify(store: &Store, master: &MasterKey) -> Result<VerifyReport> {
    let mut files = Vec::new();
    for (name, purpose) in [
        ("catalog.db", KeyPurpose::Catalog),
        ("keyring.db", KeyPurpose::Keyring),
    ] {
        let path = store.dir.root().join(name);
        let key = crypto::derive_db_key(master, purpose);
        let checked = blocking(move || {
            let conn = db::open_encrypted(&path, &key, OpenMode::Existing)?;
            check(&conn)
        })
        .await;
        files.push(file_check(name, checked));
    }
    for id in tenant_ids(store).await? {
        let checked = store.vault.exclusive(&id, |conn| check(conn)).await;
        files.push(file_check(&format!("{id}.db"), checked));
    }
    Ok(VerifyReport {
        ok: files.iter().all(|f| f.ok),
        files,
    })
}

/// Tenants in the catalog, plus any tenant file on disk the catalog does not know.
async fn tenant_ids(store: &Store) -> Result<Vec<TenantId>> {
    let mut ids: Vec<TenantId> = store
        .catalog
        .call(tenants::list)
        .await?
        .iter()
        .filter_map(|t| TenantId::parse(&t.id).ok())
        .collect();
    for id in tenant_files(store.dir.root())? {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// `Ok(None)` when both checks pass, otherwise the first problem they report.
fn check(conn: &Connection) -> Result<Option<String>> {
    let integrity: Vec<String> = collect(conn, "PRAGMA integrity_check")?;
    if integrity != ["ok"] {
        return Ok(Some(format!("integrity_check: {}", integrity.join("; "))));
    }
    // Returns one row per page whose HMAC does not verify, and nothing when all do.
    let cipher: Vec<String> = collect(conn, "PRAGMA cipher_integrity_check")?;
    if !cipher.is_empty() {
        return Ok(Some(format!(
            "cipher_integrity_check: {}",
            cipher.join("; ")
        )));
    }
    Ok(None)
}

fn collect(conn: &Connection, sql: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn file_check(name: &str, checked: Result<Option<String>>) -> FileCheck {
    let error = match checked {
        Ok(problem) => problem,
        Err(e) => Some(e.to_string()),
    };
    FileCheck {
        file: name.to_owned(),
        ok: error.is_none(),
        error,
    }
}

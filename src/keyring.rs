//! `keyring.db`: every tenant's DEK, wrapped by the master key with AES-256-GCM (AAD = tenant
//! id). Destroying a row here is what makes a tenant's file, and every backup of it, unreadable;
//! so this file is never copied by `chatvault backup`.

use rusqlite::{Connection, OptionalExtension, params};

use crate::crypto::{self, DbKey, KeyPurpose, MasterKey};
use crate::datadir::DataDir;
use crate::db::{self, OpenMode, Worker, WorkerHandle};
use crate::domain::TenantId;
use crate::error::{Error, Result};

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE deks (
        tenant_id     TEXT PRIMARY KEY,
        wrapped       BLOB NOT NULL,
        created_at    INTEGER NOT NULL,
        -- set while a purge replaces the tenant's file; a file found with this set is stale
        purge_pending INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;",
    // set while `tenant rekey` re-encrypts the file: whichever of the two keys opens it is current
    "ALTER TABLE deks ADD COLUMN next_wrapped BLOB;",
];

/// A tenant's key as read from the keyring.
pub struct KeyEntry {
    pub dek: DbKey,
    pub purge_pending: bool,
    /// The key a `tenant rekey` was moving the file to, if one was interrupted.
    pub next: Option<DbKey>,
}

/// The keyring: a worker on `keyring.db` plus the master key that unwraps its rows.
#[derive(Clone)]
pub struct Keyring {
    worker: WorkerHandle,
    master: MasterKey,
}

impl Keyring {
    /// Opens (or creates) the keyring; fails clearly if the master key does not open it.
    pub fn open(dir: &DataDir, master: &MasterKey) -> Result<Self> {
        let path = dir.keyring_path();
        let key = crypto::derive_db_key(master, KeyPurpose::Keyring);
        let mut conn = open_with_master(&path, &key)?;
        db::migrate(&mut conn, MIGRATIONS)?;
        let worker = Worker::spawn("keyring".into(), move || Ok(conn))?;
        Ok(Self {
            worker,
            master: master.clone(),
        })
    }

    pub fn worker(&self) -> &WorkerHandle {
        &self.worker
    }

    /// Stores a new tenant's DEK, replacing a stale one left by an interrupted create.
    pub fn insert_blocking(&self, tenant: &TenantId, dek: &DbKey) -> Result<()> {
        let wrapped = crypto::wrap_dek(&self.master, tenant, dek);
        let id = tenant.as_str().to_owned();
        self.worker.call_blocking(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO deks (tenant_id, wrapped, created_at, purge_pending)
                 VALUES (?1, ?2, ?3, 0)",
                params![id, wrapped, db::now_ms()],
            )?;
            Ok(())
        })
    }

    /// The tenant's DEK, or `NotFound` when it has none (deleted, or never created).
    pub fn get_blocking(&self, tenant: &TenantId) -> Result<KeyEntry> {
        let id = tenant.as_str().to_owned();
        let row = self.worker.call_blocking(move |conn| read_row(conn, &id))?;
        let (wrapped, pending, next) =
            row.ok_or_else(|| Error::not_found(&format!("tenant {tenant}")))?;
        Ok(KeyEntry {
            dek: crypto::unwrap_dek(&self.master, tenant, &wrapped)?,
            purge_pending: pending,
            next: next
                .map(|next| crypto::unwrap_dek(&self.master, tenant, &next))
                .transpose()?,
        })
    }

    /// Replaces the tenant's DEK with `dek` and marks the file on disk as stale, in one commit.
    /// From this moment the old file is unreadable.
    pub fn replace_for_purge_blocking(&self, tenant: &TenantId, dek: &DbKey) -> Result<()> {
        let wrapped = crypto::wrap_dek(&self.master, tenant, dek);
        let id = tenant.as_str().to_owned();
        self.worker.call_blocking(move |conn| {
            let changed = conn.execute(
                "UPDATE deks SET wrapped = ?2, purge_pending = 1, next_wrapped = NULL
                 WHERE tenant_id = ?1",
                params![id, wrapped],
            )?;
            if changed == 0 {
                return Err(Error::not_found("tenant"));
            }
            Ok(())
        })
    }

    /// Marks the tenant's file as current again once a purge has created it.
    pub fn clear_pending_blocking(&self, tenant: &TenantId) -> Result<()> {
        let id = tenant.as_str().to_owned();
        self.worker.call_blocking(move |conn| {
            conn.execute(
                "UPDATE deks SET purge_pending = 0 WHERE tenant_id = ?1",
                [id],
            )?;
            Ok(())
        })
    }

    /// Records the key a rekey is about to move the tenant's file to (the current one stays).
    pub fn stage_next_blocking(&self, tenant: &TenantId, next: &DbKey) -> Result<()> {
        let wrapped = crypto::wrap_dek(&self.master, tenant, next);
        let id = tenant.as_str().to_owned();
        self.worker.call_blocking(move |conn| {
            let changed = conn.execute(
                "UPDATE deks SET next_wrapped = ?2 WHERE tenant_id = ?1",
                params![id, wrapped],
            )?;
            if changed == 0 {
                return Err(Error::not_found("tenant"));
            }
            Ok(())
        })
    }

    /// Settles a rekey: the staged key becomes current (`promote`) or is dropped. Either way
    /// the previous key is destroyed in the same commit.
    pub fn settle_next_blocking(&self, tenant: &TenantId, promote: bool) -> Result<()> {
        let id = tenant.as_str().to_owned();
        let sql = if promote {
            "UPDATE deks SET wrapped = next_wrapped, next_wrapped = NULL
             WHERE tenant_id = ?1 AND next_wrapped IS NOT NULL"
        } else {
            "UPDATE deks SET next_wrapped = NULL WHERE tenant_id = ?1"
        };
        self.worker.call_blocking(move |conn| {
            conn.execute(sql, [id])?;
            Ok(())
        })
    }

    /// Destroys the tenant's DEK (crypto-shred).
    pub async fn remove(&self, tenant: &TenantId) -> Result<bool> {
        let id = tenant.as_str().to_owned();
        self.worker
            .call(move |conn| Ok(conn.execute("DELETE FROM deks WHERE tenant_id = ?1", [id])? > 0))
            .await
    }

    /// Ids of every tenant that has a key.
    pub async fn tenant_ids(&self) -> Result<Vec<String>> {
        self.worker
            .call(|conn| {
                let mut stmt = conn.prepare("SELECT tenant_id FROM deks ORDER BY tenant_id")?;
                let ids = stmt
                    .query_map([], |row| row.get(0))?
                    .collect::<Result<_, _>>()?;
                Ok(ids)
            })
            .await
    }
}

/// Opens a master-keyed file (catalog or keyring) with the error an operator needs.
pub fn open_with_master(path: &std::path::Path, key: &DbKey) -> Result<Connection> {
    let existed = path.exists();
    db::open_encrypted(path, key, OpenMode::CreateIfMissing).map_err(|e| match e {
        Error::Crypto(_) if existed => Error::Crypto(format!(
            "the master key does not open {} (wrong CHATVAULT_MASTER_KEY or --master-key-file?)",
            path.display()
        )),
        other => other,
    })
}

type Row = (Vec<u8>, bool, Option<Vec<u8>>);

fn read_row(conn: &Connection, tenant: &str) -> Result<Option<Row>> {
    Ok(conn
        .prepare_cached(
            "SELECT wrapped, purge_pending, next_wrapped FROM deks WHERE tenant_id = ?1",
        )?
        .query_row([tenant], |row| {
            Ok((row.get(0)?, row.get::<_, i64>(1)? != 0, row.get(2)?))
        })
        .optional()?)
}

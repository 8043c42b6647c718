//! `catalog.db`: tenants, their origins, widget keys, API key hashes, settings and the audit
//! log, in one SQLCipher file keyed from the master key.

pub mod api_keys;
pub mod audit;
pub mod idempotency;
pub mod schema;
pub mod settings;
pub mod tenants;
pub mod transfer;
pub mod users;
pub mod webhooks;

use rusqlite::Connection;

use crate::crypto::{self, KeyPurpose, MasterKey};
use crate::datadir::DataDir;
use crate::db::{self, Worker, WorkerHandle};
use crate::error::Result;
use crate::keyring;

/// The catalog's worker.
#[derive(Clone)]
pub struct Catalog {
    worker: WorkerHandle,
}

impl Catalog {
    /// Opens (or creates) the catalog; fails clearly if the master key does not open it.
    pub fn open(dir: &DataDir, master: &MasterKey) -> Result<Self> {
        let key = crypto::derive_db_key(master, KeyPurpose::Catalog);
        let mut conn = keyring::open_with_master(&dir.catalog_path(), &key)?;
        db::migrate(&mut conn, schema::MIGRATIONS)?;
        Ok(Self {
            worker: Worker::spawn("catalog".into(), move || Ok(conn))?,
        })
    }

    /// Runs `f` in the catalog's next write batch.
    pub async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.worker.call(f).await
    }

    /// [`call`](Self::call) from a blocking thread.
    pub fn call_blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.worker.call_blocking(f)
    }
}

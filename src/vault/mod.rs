//! Per-tenant SQLCipher files: the bounded set of open files, creating a tenant's file, instant
//! purge and crypto-shredding delete. Every call reaches a tenant's file through that tenant's
//! single [`WorkerHandle`](crate::db::WorkerHandle), so writes and purges on one tenant are
//! strictly ordered.

mod closer;
mod erase;
pub mod history;
mod install;
mod purge;
mod rekey;
pub mod repo;
pub mod schema;

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, Weak};

use lru::LruCache;
use rusqlite::Connection;

use crate::crypto::DbKey;
use crate::datadir::{self, DataDir};
use crate::db::{self, Batching, OpenMode, Worker};
use crate::domain::TenantId;
use crate::error::Result;
use crate::keyring::Keyring;
use closer::{Closer, Exited, TenantWorker};

pub use purge::PurgeReport;

/// The tenant files of one data directory.
#[derive(Clone)]
pub struct Vault {
    inner: Arc<Inner>,
}

struct Inner {
    dir: DataDir,
    keyring: Keyring,
    handles: Mutex<Handles>,
    /// Closes the workers of evicted and forgotten tenants, off the runtime and the lock.
    closer: Arc<Closer>,
    open_file: OpenFile,
    /// How long a tenant's write batch waits for more writes to join it (0: no wait).
    commit_gather: std::time::Duration,
}

/// How long a busy tenant's write batch waits for more writes to join it. Zero: a batch takes
/// whatever queued during the previous commit and never waits; `cargo bench --bench load`
/// measures a 1 ms gather, which did not help reliably with closed-loop clients (see README).
pub const DEFAULT_COMMIT_GATHER: std::time::Duration = std::time::Duration::ZERO;

/// How long a finished reply's commit waits for another write of its tenant to share it (the
/// next visitor message's, usually: then the two pay for one fsync and one copy of the pages
/// both change). Only `done` waits; the reply has been read by then. `cargo bench --bench load`
/// at 2,400 msg/s: 1.08–1.17 server cores against 1.40–1.54 without, first-delta p99 2.9–3.4 ms
/// against 5.8–8.4, `done` p50 ~8 ms against ~2–3.
pub const REPLY_PATIENCE: std::time::Duration = std::time::Duration::from_millis(10);

/// How tenant files are opened: always [`db::open_encrypted`], except in the benchmarks'
/// plain-SQLite baseline ([`Vault::plaintext_for_benchmarks`]); then `synchronous = NORMAL` when
/// the operator chose [`db::Durability::Normal`].
#[derive(Clone, Copy)]
struct OpenFile {
    open: fn(&std::path::Path, &DbKey, OpenMode) -> Result<Connection>,
    durability: db::Durability,
}

impl OpenFile {
    fn open(self, path: &std::path::Path, key: &DbKey, mode: OpenMode) -> Result<Connection> {
        let conn = (self.open)(path, key, mode)?;
        if self.durability == db::Durability::Normal {
            conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        }
        Ok(conn)
    }
}

/// Open tenant files: an LRU of at most `capacity` handles, plus, per tenant, its latest worker:
/// a weak reference (an evicted worker still in use by a caller is taken back, not doubled) and
/// the signal of its exit (a new worker waits for it), so a tenant never has two at once.
struct Handles {
    lru: LruCache<TenantId, Arc<TenantWorker>>,
    live: HashMap<TenantId, Live>,
}

struct Live {
    worker: Weak<TenantWorker>,
    exited: Arc<Exited>,
}

impl Live {
    /// Still serving, or still closing its file.
    fn is_open(&self) -> bool {
        self.worker.strong_count() > 0 || !self.exited.is_done()
    }
}

impl Vault {
    pub fn new(dir: DataDir, keyring: Keyring, max_open: usize) -> Self {
        Self::with_opener(dir, keyring, max_open, db::open_encrypted)
    }

    /// Sets how hard tenant commits hold on to the disk (see [`db::Durability`]); every tenant
    /// file this vault opens, including after a purge, gets it. Takes effect only on a vault
    /// not yet shared.
    pub fn with_durability(mut self, durability: db::Durability) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.open_file.durability = durability;
        }
        self
    }

    /// Benchmark-only: a vault whose tenant files are plain SQLite (same schema and pragmas, no
    /// key), the baseline that shows what encryption costs. No CLI flag or configuration reaches
    /// it; the server always uses [`Vault::new`].
    #[doc(hidden)]
    pub fn plaintext_for_benchmarks(dir: DataDir, keyring: Keyring, max_open: usize) -> Self {
        Self::with_opener(dir, keyring, max_open, db::open_plaintext_for_benchmarks)
    }

    fn with_opener(
        dir: DataDir,
        keyring: Keyring,
        max_open: usize,
        open: fn(&std::path::Path, &DbKey, OpenMode) -> Result<Connection>,
    ) -> Self {
        let open_file = OpenFile {
            open,
            durability: db::Durability::Full,
        };
        let capacity = NonZeroUsize::new(max_open.max(1)).unwrap_or(NonZeroUsize::MIN);
        let handles = Handles {
            lru: LruCache::new(capacity),
            live: HashMap::new(),
        };
        Self {
            inner: Arc::new(Inner {
                dir,
                keyring,
                handles: Mutex::new(handles),
                closer: Closer::start(),
                open_file,
                commit_gather: DEFAULT_COMMIT_GATHER,
            }),
        }
    }

    /// Lets each tenant's write batch wait up to `gather` for more writes before it commits
    /// (see [`Batching`]). Takes effect only on a vault not yet shared.
    pub fn with_commit_gather(mut self, gather: std::time::Duration) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.commit_gather = gather;
        }
        self
    }

    pub fn dir(&self) -> &DataDir {
        &self.inner.dir
    }

    pub fn keyring(&self) -> &Keyring {
        &self.inner.keyring
    }

    /// Runs `f` in the tenant's next write batch and returns once it is committed.
    pub async fn call<T, F>(&self, tenant: &TenantId, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.handle(tenant)?.call(f).await
    }

    /// [`call`](Self::call) for a write whose caller can wait a little: its commit may wait up
    /// to [`REPLY_PATIENCE`] for another write of the tenant to share it (a finished reply:
    /// the visitor has read it already, only its `done` waits).
    pub async fn call_patient<T, F>(&self, tenant: &TenantId, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let worker = self.handle(tenant)?;
        let committed = worker.enqueue_patient(f)?;
        committed.await
    }

    /// [`call`](Self::call), but `f` is queued at once and the wait for its commit is returned
    /// (see [`WorkerHandle::enqueue`](crate::db::WorkerHandle::enqueue)).
    pub fn enqueue<T, F>(
        &self,
        tenant: &TenantId,
        f: F,
    ) -> Result<impl Future<Output = Result<T>> + Send + use<T, F>>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let worker = self.handle(tenant)?;
        let committed = worker.enqueue(f)?;
        // The worker stays referenced until the commit is heard, as in `call`.
        Ok(async move {
            let result = committed.await;
            drop(worker);
            result
        })
    }

    /// Starts opening the tenant's file on its worker thread, without waiting: a widget socket
    /// just connected, and its first frame will need the file.
    pub fn warm(&self, tenant: &TenantId) {
        if let Err(e) = self.handle(tenant) {
            tracing::warn!(tenant = %tenant, error = %e, "could not open the tenant file ahead");
        }
    }

    /// Runs `f` alone on the tenant's connection, outside any transaction.
    pub async fn exclusive<T, F>(&self, tenant: &TenantId, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        self.handle(tenant)?.exclusive(f).await
    }

    /// How many tenant files the vault holds open right now (a file whose worker was evicted
    /// and is being closed in the background, at most a few dozen, is not counted).
    pub fn open_files(&self) -> usize {
        let mut handles = self.lock();
        handles.live.retain(|_, live| live.is_open());
        handles
            .live
            .values()
            .filter(|live| live.worker.strong_count() > 0)
            .count()
    }

    /// Creates the tenant's file under a fresh DEK (stored wrapped in the keyring). A file left
    /// behind by an interrupted create is moved to the trash first.
    pub fn create_tenant_blocking(&self, tenant: &TenantId) -> Result<()> {
        let dek = DbKey::generate();
        let path = self.inner.dir.tenant_path(tenant);
        datadir::remove_files(self.inner.dir.move_to_trash(&path)?);
        self.inner.keyring.insert_blocking(tenant, &dek)?;
        let mut conn = self
            .inner
            .open_file
            .open(&path, &dek, OpenMode::CreateIfMissing)?;
        db::migrate(&mut conn, schema::MIGRATIONS)?;
        Ok(())
    }

    /// A separate read-only connection to the tenant's file, for long reads (export) that must
    /// not hold up the tenant's writer. Call from a blocking thread.
    pub fn open_reader_blocking(&self, tenant: &TenantId) -> Result<Connection> {
        let entry = self.inner.keyring.get_blocking(tenant)?;
        let conn = db::open_encrypted(
            &self.inner.dir.tenant_path(tenant),
            &entry.dek,
            OpenMode::Existing,
        )?;
        conn.execute_batch("PRAGMA query_only = ON")?;
        Ok(conn)
    }

    /// The tenant's DEK (for `tenant export-key`).
    pub fn tenant_key_blocking(&self, tenant: &TenantId) -> Result<DbKey> {
        let entry = self.inner.keyring.get_blocking(tenant)?;
        if entry.next.is_none() {
            return Ok(entry.dek);
        }
        // A rekey was interrupted: opening the file settles which key is current.
        self.handle(tenant)?.call_blocking(|_| Ok(()))?;
        Ok(self.inner.keyring.get_blocking(tenant)?.dek)
    }

    /// Forgets any open handle of the tenant (its worker stops once idle); the next call opens
    /// the file afresh, once that worker has closed it.
    fn forget(&self, tenant: &TenantId) {
        let forgotten = {
            let mut handles = self.lock();
            if let Some(live) = handles.live.get_mut(tenant) {
                live.worker = Weak::new();
            }
            handles.lru.pop(tenant)
        };
        // Dropped after the lock: the last handle of a worker hands it to the closer.
        drop(forgotten);
    }

    fn handle(&self, tenant: &TenantId) -> Result<Arc<TenantWorker>> {
        let mut handles = self.lock();
        if let Some(handle) = handles.lru.get(tenant).filter(|h| !h.has_failed()) {
            return Ok(handle.clone());
        }
        let (handle, evicted) = match handles
            .live
            .get(tenant)
            .and_then(|live| live.worker.upgrade())
            .filter(|h| !h.has_failed())
        {
            Some(handle) => {
                let evicted = handles.lru.push(tenant.clone(), handle.clone());
                (handle, evicted)
            }
            None => {
                let previous = handles.live.get(tenant).map(|live| live.exited.clone());
                let handle = Arc::new(self.spawn_worker(tenant, previous)?);
                let evicted = handles.lru.push(tenant.clone(), handle.clone());
                let live = Live {
                    worker: Arc::downgrade(&handle),
                    exited: handle.exited().clone(),
                };
                handles.live.insert(tenant.clone(), live);
                if handles.live.len() > 2 * handles.lru.cap().get() {
                    handles.live.retain(|_, live| live.is_open());
                }
                (handle, evicted)
            }
        };
        // Never under the lock: dropping the last handle of the evicted worker hands it to the
        // closer, and nothing else waits for that file to close.
        drop(handles);
        drop(evicted);
        Ok(handle)
    }

    /// Starts a tenant's worker; it opens the file only once `previous` (the tenant's last
    /// worker, if any) has closed it.
    fn spawn_worker(
        &self,
        tenant: &TenantId,
        previous: Option<Arc<Exited>>,
    ) -> Result<TenantWorker> {
        let (dir, keyring, id) = (
            self.inner.dir.clone(),
            self.inner.keyring.clone(),
            tenant.clone(),
        );
        let open_file = self.inner.open_file;
        let batching = tenant_batching(self.inner.commit_gather);
        let handle = Worker::spawn_batching(format!("tenant:{tenant}"), batching, move || {
            if let Some(previous) = previous {
                previous.wait();
            }
            open_tenant(&dir, &keyring, &id, open_file)
        })?;
        let exited = Arc::new(Exited::default());
        Ok(TenantWorker::new(handle, exited, self.inner.closer.clone()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Handles> {
        self.inner
            .handles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How a tenant file's writer batches: `gather` (see [`Vault::with_commit_gather`]), replies'
/// patience, and new messages indexed in groups before a commit. Public so the storage
/// benchmark's writers match.
pub fn tenant_batching(gather: std::time::Duration) -> Batching {
    Batching {
        gather,
        patience: REPLY_PATIENCE,
        before_commit: Some(repo::index_before_commit),
    }
}

/// Opens a tenant's file with its DEK, finishing a purge that a crash interrupted.
fn open_tenant(
    dir: &DataDir,
    keyring: &Keyring,
    tenant: &TenantId,
    open_file: OpenFile,
) -> Result<Connection> {
    let entry = keyring.get_blocking(tenant)?;
    let path = dir.tenant_path(tenant);
    if entry.purge_pending {
        // The key was replaced before the crash; keep the carried knowledge base if it is there.
        let mut conn = purge::finish_interrupted(dir, &path, &entry.dek, open_file)?;
        db::migrate(&mut conn, schema::MIGRATIONS)?;
        keyring.clear_pending_blocking(tenant)?;
        return Ok(conn);
    }
    let mut conn = match &entry.next {
        Some(next) => rekey::open_settling(&path, keyring, tenant, &entry.dek, next),
        None => open_file.open(&path, &entry.dek, OpenMode::Existing),
    }
    .map_err(|e| rekey::describe(tenant, e))?;
    db::migrate(&mut conn, schema::MIGRATIONS)?;
    Ok(conn)
}

#[cfg(test)]
mod tests;

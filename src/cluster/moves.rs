//! The node side of `tenant move`, one step per `/ops/` route:
//!
//! 1. **freeze** (source): no new socket or request for the tenant; sockets finish the reply they
//!    are writing and close with 1012, so widgets reconnect (and resend what was not answered)
//!    wherever the load balancer sends them next.
//! 2. **export** (source, frozen only): a consistent snapshot of the tenant's file, its DEK and
//!    catalog rows, sealed as a bundle (see [`super::bundle`]) and streamed.
//! 3. **import** (destination): the file installed under the DEK (wrapped by this node's master
//!    key), opened to prove the key, then the catalog rows in one transaction; audited.
//! 4. **release** (source, frozen only): the tenant is crypto-shredded here.
//!
//! **thaw** calls a move off: the source takes the tenant's traffic again.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Bytes;
use futures_util::{Stream, StreamExt};
use rusqlite::Connection;
use serde::Serialize;

use super::ClusterSecret;
use super::bundle::{FileDigest, Header};
use super::gates::Gates;
use crate::catalog::{audit, tenants, transfer};
use crate::crypto::DbKey;
use crate::domain::TenantId;
use crate::error::{Error, Result};
use crate::store::{Store, blocking};
use crate::vault::repo;

/// How long a freeze waits for the tenant's sockets to finish their replies.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A freeze that is neither released nor thawed within this reopens the tenant by itself (the
/// move's driver died); a release after that is refused, since the tenant took traffic again.
pub const FREEZE_LEASE: Duration = Duration::from_secs(3600);

/// What an import installed (or what a node holds of a tenant).
#[derive(Debug, Serialize)]
pub struct Imported {
    pub tenant: String,
    pub conversations: i64,
    pub messages: i64,
    pub bytes: u64,
}

/// Whether this node holds the tenant, and how much of it.
pub async fn describe(store: &Store, tenant: &TenantId) -> Result<Imported> {
    store.tenant(tenant).await?;
    let totals = store.vault.call(tenant, repo::totals).await?;
    let bytes = std::fs::metadata(store.dir.tenant_path(tenant)).map_or(0, |m| m.len());
    Ok(Imported {
        tenant: tenant.to_string(),
        conversations: totals.conversations,
        messages: totals.messages,
        bytes,
    })
}

/// Step 1: shut the tenant's gate and wait until its sockets and requests are done.
pub async fn freeze(store: &Store, gates: &Gates, tenant: &TenantId) -> Result<()> {
    store.tenant(tenant).await?;
    gates.freeze(tenant, DRAIN_TIMEOUT, FREEZE_LEASE).await?;
    tracing::info!(tenant = %tenant, "tenant frozen for a move");
    Ok(())
}

/// A frozen tenant's bundle, ready to stream: the sealed header, then the snapshot file (which
/// the sender removes once it has been sent).
pub struct Outgoing {
    pub header: Vec<u8>,
    pub snapshot: PathBuf,
    pub file_len: u64,
}

/// Step 2: the sealed bundle of a frozen tenant.
pub async fn export(
    store: &Store,
    gates: &Gates,
    secret: &ClusterSecret,
    tenant: &TenantId,
) -> Result<Outgoing> {
    require_frozen(gates, tenant)?;
    let id = tenant.clone();
    let rows = store
        .catalog
        .call(move |c| transfer::export(c, &id))
        .await?;
    let (vault, id) = (store.vault.clone(), tenant.clone());
    let dek = blocking(move || vault.tenant_key_blocking(&id)).await?;

    let snapshot = staging_path(store, tenant, "outgoing")?;
    let (out, key, live) = (snapshot.clone(), dek.clone(), store.dir.tenant_path(tenant));
    // On the tenant's own worker: no write can interleave with the copy.
    let copied = store
        .vault
        .exclusive(tenant, move |conn| snapshot_file(conn, &live, &out, &key))
        .await;
    let digest = match copied {
        Ok(digest) => digest,
        Err(e) => {
            crate::datadir::remove_files(vec![snapshot]);
            return Err(e);
        }
    };
    let header = super::bundle::seal_header(secret, tenant, &dek, &rows, &digest)?;
    tracing::info!(tenant = %tenant, bytes = digest.len(), "tenant exported for a move");
    Ok(Outgoing {
        header,
        snapshot,
        file_len: digest.len(),
    })
}

/// Step 3: receives a bundle as it arrives (the header buffered, the file streamed to a staging
/// file and fsynced) and installs it as a new tenant of this node.
pub async fn import<S, E>(
    store: &Store,
    secret: &ClusterSecret,
    tenant: &TenantId,
    body: S,
) -> Result<Imported>
where
    S: Stream<Item = std::result::Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let probe = tenant.clone();
    if store
        .catalog
        .call(move |c| tenants::exists(c, &probe))
        .await?
    {
        return Err(Error::Conflict(format!(
            "tenant {tenant} already exists here"
        )));
    }
    let staged = staging_path(store, tenant, "incoming")?;
    let received = receive(secret, tenant, body, &staged).await;
    let header = match received {
        Ok(header) => header,
        Err(e) => {
            crate::datadir::remove_files(vec![staged]);
            return Err(e);
        }
    };
    let Header {
        dek,
        rows,
        file_len,
        ..
    } = header;
    let (vault, id) = (store.vault.clone(), tenant.clone());
    let install = staged.clone();
    if let Err(e) = blocking(move || vault.install_blocking(&id, &dek, &install)).await {
        crate::datadir::remove_files(vec![staged]);
        return Err(e);
    }

    let installed = async {
        // Opening the file proves the key; the counts go into the report and the audit entry.
        let totals = store.vault.call(tenant, repo::totals).await?;
        let details = serde_json::json!({
            "conversations": totals.conversations,
            "messages": totals.messages,
            "bytes": file_len,
        });
        let id = tenant.clone();
        store
            .catalog
            .call(move |c| {
                transfer::import(c, &id, &rows)?;
                let entry = audit::NewEntry {
                    actor: "cluster",
                    action: "tenant.moved_in",
                    target: Some(id.as_str()),
                    details,
                };
                audit::append(c, &id, &entry)
            })
            .await?;
        Ok::<_, Error>(totals)
    }
    .await;
    match installed {
        Ok(totals) => {
            tracing::info!(tenant = %tenant, "tenant imported from another node");
            Ok(Imported {
                tenant: tenant.to_string(),
                conversations: totals.conversations,
                messages: totals.messages,
                bytes: file_len,
            })
        }
        Err(e) => {
            // Leave no half-installed tenant: its key and file go, the catalog never saw it.
            let _ = store.vault.delete(tenant).await;
            Err(e)
        }
    }
}

/// Reads the header, then writes the rest of `body` to `staged` on a blocking thread while
/// hashing it; the header's length and SHA-256 must match what arrived.
async fn receive<S, E>(
    secret: &ClusterSecret,
    tenant: &TenantId,
    body: S,
    staged: &Path,
) -> Result<Header>
where
    S: Stream<Item = std::result::Result<Bytes, E>>,
    E: std::fmt::Display,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let path = staged.to_path_buf();
    let writer = tokio::task::spawn_blocking(move || -> Result<FileDigest> {
        let mut file = crate::datadir::create_or_open_private(&path)?;
        file.set_len(0)?;
        let mut digest = FileDigest::default();
        while let Some(chunk) = rx.blocking_recv() {
            digest.update(&chunk);
            file.write_all(&chunk)?;
        }
        file.sync_all()?;
        Ok(digest)
    });
    let mut head = Vec::new();
    let mut header = None;
    let mut body = std::pin::pin!(body);
    let fed = async {
        while let Some(chunk) = body.next().await {
            let chunk =
                chunk.map_err(|e| Error::Unavailable(format!("the bundle stopped: {e}")))?;
            let rest = if header.is_some() {
                chunk
            } else {
                head.extend_from_slice(&chunk);
                let Some((opened, used)) = super::bundle::open_header(secret, tenant, &head)?
                else {
                    continue;
                };
                header = Some(opened);
                Bytes::from(head.split_off(used))
            };
            if tx.send(rest).await.is_err() {
                break; // the writer failed; its error is reported below
            }
        }
        Ok::<_, Error>(())
    }
    .await;
    drop(tx);
    let digest = writer
        .await
        .map_err(|e| Error::Unavailable(format!("the bundle writer failed: {e}")))??;
    fed?;
    let header = header.ok_or_else(|| {
        Error::invalid(
            "invalid_bundle",
            "not a tenant bundle: it ended before its header",
        )
    })?;
    header.check(&digest)?;
    Ok(header)
}

/// A fresh path in the data directory's trash (same filesystem, emptied at every start).
fn staging_path(store: &Store, tenant: &TenantId, what: &str) -> Result<PathBuf> {
    let trash = store.dir.trash_dir();
    if !trash.exists() {
        crate::datadir::create_private_dir(&trash)?;
    }
    let tag = hex::encode(crate::crypto::random_bytes::<8>());
    Ok(trash.join(format!("{tenant}.{what}-{tag}")))
}

/// A consistent copy of the tenant's file at `out`, hashed on the way. Fast path: once a
/// truncating checkpoint has folded the WAL in, the file on disk is the whole database, so its
/// bytes are copied as they are (already encrypted; nothing is decrypted or re-encrypted). If a
/// reader (an export in progress) keeps the checkpoint from finishing, the SQLite backup API
/// copies page by page instead.
fn snapshot_file(conn: &Connection, live: &Path, out: &Path, key: &DbKey) -> Result<FileDigest> {
    let (busy, _, _): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    if busy != 0 {
        crate::backup::copy_database(conn, out, key)?;
        return copy_hashing(out, None);
    }
    copy_hashing(live, Some(out))
}

/// Reads `from` in large pieces, hashing them, and writes them to `to` when given.
fn copy_hashing(from: &Path, to: Option<&Path>) -> Result<FileDigest> {
    let mut source = std::fs::File::open(from)?;
    let mut sink = to.map(crate::datadir::create_or_open_private).transpose()?;
    let mut digest = FileDigest::default();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = source.read(&mut buf)?;
        if n == 0 {
            return Ok(digest);
        }
        digest.update(&buf[..n]);
        if let Some(sink) = &mut sink {
            sink.write_all(&buf[..n])?;
        }
    }
}

/// Step 4: destroys the frozen tenant here, once its new node has it.
pub async fn release(store: &Store, gates: &Gates, tenant: &TenantId) -> Result<()> {
    require_frozen(gates, tenant)?;
    store.delete_tenant(tenant).await?;
    gates.thaw(tenant);
    tracing::info!(tenant = %tenant, "tenant released after a move");
    Ok(())
}

/// Calls a move off: the tenant takes traffic here again.
pub fn thaw(gates: &Gates, tenant: &TenantId) {
    gates.thaw(tenant);
    tracing::info!(tenant = %tenant, "tenant thawed; the move was called off");
}

fn require_frozen(gates: &Gates, tenant: &TenantId) -> Result<()> {
    if gates.is_frozen(tenant) {
        Ok(())
    } else {
        Err(Error::Conflict(format!(
            "tenant {tenant} is not frozen; freeze it first"
        )))
    }
}

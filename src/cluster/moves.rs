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

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Bytes;
use futures_util::Stream;
use serde::Serialize;

use super::ClusterSecret;
use super::bundle::Header;
use super::files::{receive, snapshot_file, staging_path};
use super::gates::Gates;
use crate::catalog::{audit, tenants, transfer};
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

    let installed = register(store, tenant, rows, file_len).await;
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

/// Opens the installed file (which proves the key), then records the tenant in the catalog in one
/// transaction with a `tenant.moved_in` audit entry.
async fn register(
    store: &Store,
    tenant: &TenantId,
    rows: transfer::TenantRows,
    file_len: u64,
) -> Result<repo::Totals> {
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
    Ok(totals)
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

//! The node side of `tenant move`, one step per `/ops/` route:
//!
//! 1. **freeze** (source): no new socket or request for the tenant; sockets finish the reply they
//!    are writing and close with 1012, so widgets reconnect (and resend what was not answered)
//!    wherever the load balancer sends them next.
//! 2. **export** (source, frozen only): a consistent snapshot of the tenant's file, its DEK and
//!    catalog rows, sealed as a [`Bundle`].
//! 3. **import** (destination): the file installed under the DEK (wrapped by this node's master
//!    key), opened to prove the key, then the catalog rows in one transaction; audited.
//! 4. **release** (source, frozen only): the tenant is crypto-shredded here.
//!
//! **thaw** calls a move off: the source takes the tenant's traffic again.

use std::time::Duration;

use serde::Serialize;

use super::ClusterSecret;
use super::bundle::Bundle;
use super::gates::Gates;
use crate::catalog::{audit, tenants, transfer};
use crate::domain::TenantId;
use crate::error::{Error, Result};
use crate::store::{Store, blocking};
use crate::vault::repo;

/// How long a freeze waits for the tenant's sockets to finish their replies.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What an import installed.
#[derive(Debug, Serialize)]
pub struct Imported {
    pub tenant: String,
    pub conversations: i64,
    pub messages: i64,
    pub bytes: u64,
}

/// Step 1: shut the tenant's gate and wait until its sockets and requests are done.
pub async fn freeze(store: &Store, gates: &Gates, tenant: &TenantId) -> Result<()> {
    store.tenant(tenant).await?;
    gates.freeze(tenant, DRAIN_TIMEOUT).await?;
    tracing::info!(tenant = %tenant, "tenant frozen for a move");
    Ok(())
}

/// Step 2: the sealed bundle of a frozen tenant.
pub async fn export(
    store: &Store,
    gates: &Gates,
    secret: &ClusterSecret,
    tenant: &TenantId,
) -> Result<Vec<u8>> {
    require_frozen(gates, tenant)?;
    let id = tenant.clone();
    let rows = store
        .catalog
        .call(move |c| transfer::export(c, &id))
        .await?;
    let (vault, id) = (store.vault.clone(), tenant.clone());
    let dek = blocking(move || vault.tenant_key_blocking(&id)).await?;

    let trash = store.dir.trash_dir();
    if !trash.exists() {
        crate::datadir::create_private_dir(&trash)?;
    }
    let snapshot = trash.join(format!(
        "{tenant}.outgoing-{}",
        hex::encode(crate::crypto::random_bytes::<8>())
    ));
    let (out, key) = (snapshot.clone(), dek.clone());
    // On the tenant's own worker: no write can interleave with the copy.
    let copied = store
        .vault
        .exclusive(tenant, move |conn| {
            crate::backup::copy_database(conn, &out, &key)
        })
        .await
        .and_then(|()| Ok(std::fs::read(&snapshot)?));
    crate::datadir::remove_files(vec![snapshot]);
    let bundle = Bundle {
        tenant: tenant.clone(),
        dek,
        rows,
        file: copied?,
    };
    let bytes = bundle.encode(secret)?;
    tracing::info!(tenant = %tenant, bytes = bytes.len(), "tenant exported for a move");
    Ok(bytes)
}

/// Step 3: installs a bundle as a new tenant of this node.
pub async fn import(
    store: &Store,
    secret: &ClusterSecret,
    tenant: &TenantId,
    bytes: &[u8],
) -> Result<Imported> {
    let bundle = Bundle::decode(secret, tenant, bytes)?;
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
    let Bundle {
        dek, rows, file, ..
    } = bundle;
    let size = file.len() as u64;
    let (vault, id) = (store.vault.clone(), tenant.clone());
    blocking(move || vault.install_blocking(&id, &dek, &file)).await?;

    let installed = async {
        // Opening the file proves the key; the counts go into the report and the audit entry.
        let totals = store.vault.call(tenant, repo::totals).await?;
        let details = serde_json::json!({
            "conversations": totals.conversations,
            "messages": totals.messages,
            "bytes": size,
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
                bytes: size,
            })
        }
        Err(e) => {
            // Leave no half-installed tenant: its key and file go, the catalog never saw it.
            let _ = store.vault.delete(tenant).await;
            Err(e)
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

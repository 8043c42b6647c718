//! Knowledge-base actions as the API, the portal and the CLI perform them: each reaches the
//! tenant's file through its writer, and each change is written to the tenant's audit log.
//! Removals rewrite the WAL afterwards (as conversation erasure does) so no older page image of
//! a deleted passage survives in `-wal`.

use serde_json::json;

use super::repo::{self, DocumentSummary, Removed};
use super::{DocumentId, Upload};
use crate::domain::TenantId;
use crate::error::{Error, Result};
use crate::store::{Store, blocking};

/// Reduces, cuts and stores an upload; returns the stored document.
pub async fn add(
    store: &Store,
    tenant: &TenantId,
    actor: &str,
    upload: Upload,
) -> Result<DocumentSummary> {
    let doc = blocking(move || upload.prepare()).await?;
    let stored = store
        .vault
        .call(tenant, move |c| super::store(c, &doc))
        .await?;
    let details =
        json!({ "format": stored.format, "passages": stored.passages, "chars": stored.chars });
    store
        .audit(tenant, actor, "document.added", Some(&stored.id), details)
        .await?;
    Ok(stored)
}

/// Embeds the document's passages that have no vector yet and stores the vectors in the tenant's
/// file. The endpoint call happens outside any transaction.
pub async fn embed_document(
    store: &Store,
    tenant: &TenantId,
    embedder: &super::embed::Embedder,
    document_id: &str,
) -> Result<usize> {
    let id = document_id.to_owned();
    let pending = store
        .vault
        .call(tenant, move |c| {
            super::embed::passages_without_vectors(c, &id)
        })
        .await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let texts: Vec<String> = pending.iter().map(|(_, text)| text.clone()).collect();
    let vectors = embedder.embed(&texts).await?;
    let rows: Vec<(i64, Vec<f32>)> = pending
        .into_iter()
        .map(|(seq, _)| seq)
        .zip(vectors)
        .collect();
    store
        .vault
        .call(tenant, move |c| super::embed::store_vectors(c, &rows))
        .await
}

/// Every document of the tenant, newest first.
pub async fn list(store: &Store, tenant: &TenantId) -> Result<Vec<DocumentSummary>> {
    store.vault.call(tenant, repo::list).await
}

/// One document and its reduced text; another tenant's id or a malformed one is not found.
pub async fn get(store: &Store, tenant: &TenantId, id: &str) -> Result<(DocumentSummary, String)> {
    let id = DocumentId::parse(id).ok_or_else(|| Error::not_found("document"))?;
    store
        .vault
        .call(tenant, move |c| repo::get(c, &id))
        .await?
        .ok_or_else(|| Error::not_found("document"))
}

/// Deletes one document with its passages and index entries.
pub async fn delete(store: &Store, tenant: &TenantId, actor: &str, id: &str) -> Result<Removed> {
    let id = DocumentId::parse(id).ok_or_else(|| Error::not_found("document"))?;
    let gone = id.clone();
    let removed = store
        .vault
        .call(tenant, move |c| repo::delete(c, &gone))
        .await?
        .ok_or_else(|| Error::not_found("document"))?;
    rewrite_wal(store, tenant).await?;
    let details = json!({ "passages": removed.passages });
    store
        .audit(
            tenant,
            actor,
            "document.deleted",
            Some(id.as_str()),
            details,
        )
        .await?;
    Ok(removed)
}

/// Deletes every document of the tenant (conversations stay).
pub async fn purge(store: &Store, tenant: &TenantId, actor: &str) -> Result<Removed> {
    let removed = store.vault.call(tenant, repo::delete_all).await?;
    rewrite_wal(store, tenant).await?;
    let details = json!({ "documents": removed.documents, "passages": removed.passages });
    store
        .audit(tenant, actor, "knowledge.purged", None, details)
        .await?;
    Ok(removed)
}

async fn rewrite_wal(store: &Store, tenant: &TenantId) -> Result<()> {
    store
        .vault
        .exclusive(tenant, |c| {
            Ok(c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?)
        })
        .await
}

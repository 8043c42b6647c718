//! The knowledge base over HTTP (CONTRACT §5, scope `knowledge:manage`): upload, list, read,
//! delete one, and purge all documents.

use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::catalog::api_keys::Scope;
use crate::db::format_time;
use crate::error::{Error, ErrorResponse, Result};
use crate::http::auth::Auth;
use crate::http::extract::{Path, parse_json};
use crate::knowledge::repo::DocumentSummary;
use crate::knowledge::{self, Format, Upload, ops};

/// Largest upload body: the text limit, with room for JSON escaping.
pub const MAX_UPLOAD_BODY_BYTES: usize = 2 * knowledge::MAX_DOCUMENT_BYTES + 64 * 1024;

/// A document to add to the knowledge base.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadBody {
    title: String,
    /// The document itself, reduced to plain text according to `format`.
    text: String,
    /// `text` by default.
    #[schema(value_type = Option<Format>)]
    format: Option<String>,
    /// Where the document lives, cited as a source in replies.
    url: Option<String>,
}

/// The stored document.
#[derive(Serialize, ToSchema)]
pub struct CreatedDocument {
    id: String,
    title: String,
    passages: i64,
}

/// A document as listings show it.
#[derive(Serialize, ToSchema)]
pub struct DocumentItem {
    id: String,
    title: String,
    url: Option<String>,
    #[schema(value_type = Format)]
    format: String,
    passages: i64,
    chars: i64,
    #[schema(format = DateTime)]
    created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct DocumentList {
    items: Vec<DocumentItem>,
}

/// One document with its reduced text.
#[derive(Serialize, ToSchema)]
pub struct Document {
    #[serde(flatten)]
    summary: DocumentItem,
    text: String,
}

/// What purging the knowledge base removed.
#[derive(Serialize, ToSchema)]
pub struct DocumentsPurged {
    #[schema(format = DateTime)]
    purged_at: String,
    documents: i64,
    passages: i64,
}

/// Adds a document to the knowledge base, split into passages for retrieval.
#[utoipa::path(
    post,
    path = "/v1/documents",
    tag = "knowledge",
    operation_id = "upload_document",
    request_body = UploadBody,
    security(("bearer" = ["knowledge:manage"]), ("session" = [], "csrf" = [])),
    responses(
        (status = 201, body = CreatedDocument),
        (status = 400, body = ErrorResponse),
        (
            status = 413,
            body = ErrorResponse,
            description = "the document is too large, or the knowledge base is full",
        ),
    ),
)]
pub async fn upload(
    State(app): State<AppState>,
    auth: Auth,
    body: Body,
) -> Result<(StatusCode, axum::Json<CreatedDocument>)> {
    auth.require(Scope::KnowledgeManage)?;
    // The body is read up to its own limit (not the API's), so an oversized upload gets a 413
    // that says what the limit is.
    let bytes = to_bytes(body, MAX_UPLOAD_BODY_BYTES)
        .await
        .map_err(|_| knowledge::too_large())?;
    let body: UploadBody = parse_json(&bytes)?;
    let format = match body.format.as_deref() {
        None => Format::Text,
        Some(raw) => Format::parse(raw).ok_or_else(|| {
            Error::invalid("invalid_document", "format is text, markdown or html")
        })?,
    };
    let upload = Upload {
        title: body.title,
        text: body.text,
        format,
        url: body.url,
    };
    let stored = ops::add(&app.store, &auth.tenant, &auth.actor(), upload).await?;
    if let Some(embedder) = &app.embedder
        && let Err(e) = ops::embed_document(&app.store, &auth.tenant, embedder, &stored.id).await
    {
        // The document is stored and searchable by BM25; only its vectors are missing.
        tracing::warn!(tenant = %auth.tenant, error = %e, "document embedding failed");
    }
    let created = CreatedDocument {
        id: stored.id,
        title: stored.title,
        passages: stored.passages,
    };
    Ok((StatusCode::CREATED, axum::Json(created)))
}

#[utoipa::path(
    get,
    path = "/v1/documents",
    tag = "knowledge",
    operation_id = "list_documents",
    security(("bearer" = ["knowledge:manage"]), ("session" = [])),
    responses((status = 200, body = DocumentList)),
)]
pub async fn list(State(app): State<AppState>, auth: Auth) -> Result<axum::Json<DocumentList>> {
    auth.require(Scope::KnowledgeManage)?;
    let documents = ops::list(&app.store, &auth.tenant).await?;
    let items = documents.iter().map(DocumentItem::from).collect();
    Ok(axum::Json(DocumentList { items }))
}

/// One document with its reduced text (what the portal previews).
#[utoipa::path(
    get,
    path = "/v1/documents/{id}",
    tag = "knowledge",
    operation_id = "get_document",
    params(("id" = String, Path)),
    security(("bearer" = ["knowledge:manage"]), ("session" = [])),
    responses((status = 200, body = Document), (status = 404, body = ErrorResponse)),
)]
pub async fn get(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<Document>> {
    auth.require(Scope::KnowledgeManage)?;
    let (summary, text) = ops::get(&app.store, &auth.tenant, &id).await?;
    Ok(axum::Json(Document {
        summary: DocumentItem::from(&summary),
        text,
    }))
}

#[utoipa::path(
    delete,
    path = "/v1/documents/{id}",
    tag = "knowledge",
    operation_id = "delete_document",
    params(("id" = String, Path)),
    security(("bearer" = ["knowledge:manage"]), ("session" = [], "csrf" = [])),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorResponse)),
)]
pub async fn delete_one(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    auth.require(Scope::KnowledgeManage)?;
    ops::delete(&app.store, &auth.tenant, &auth.actor(), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Purges the whole knowledge base; conversations are untouched.
#[utoipa::path(
    delete,
    path = "/v1/documents",
    tag = "knowledge",
    operation_id = "purge_documents",
    security(("bearer" = ["knowledge:manage"]), ("session" = [], "csrf" = [])),
    responses((status = 200, body = DocumentsPurged)),
)]
pub async fn purge(State(app): State<AppState>, auth: Auth) -> Result<axum::Json<DocumentsPurged>> {
    auth.require(Scope::KnowledgeManage)?;
    let removed = ops::purge(&app.store, &auth.tenant, &auth.actor()).await?;
    Ok(axum::Json(DocumentsPurged {
        purged_at: format_time(crate::db::now_ms()),
        documents: removed.documents,
        passages: removed.passages,
    }))
}

impl From<&DocumentSummary> for DocumentItem {
    fn from(d: &DocumentSummary) -> Self {
        DocumentItem {
            id: d.id.clone(),
            title: d.title.clone(),
            url: d.url.clone(),
            format: d.format.clone(),
            passages: d.passages,
            chars: d.chars,
            created_at: format_time(d.created_at),
        }
    }
}

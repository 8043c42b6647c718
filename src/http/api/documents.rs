//! The knowledge base over HTTP (CONTRACT §5, scope `knowledge:manage`): upload, list, read,
//! delete one, and purge all documents.

use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::catalog::api_keys::Scope;
use crate::db::format_time;
use crate::error::{Error, Result};
use crate::http::auth::Auth;
use crate::http::extract::{Path, parse_json};
use crate::knowledge::repo::DocumentSummary;
use crate::knowledge::{self, Format, Upload, ops};

/// Largest upload body: the text limit, with room for JSON escaping.
pub const MAX_UPLOAD_BODY_BYTES: usize = 2 * knowledge::MAX_DOCUMENT_BYTES + 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadBody {
    title: String,
    text: String,
    format: Option<String>,
    url: Option<String>,
}

/// Takes the body as a stream read up to its own limit (not the API's), so an oversized upload
/// gets a 413 that says what the limit is.
pub async fn upload(State(app): State<AppState>, auth: Auth, body: Body) -> Result<Response> {
    auth.require(Scope::KnowledgeManage)?;
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
    let body = json!({ "id": stored.id, "title": stored.title, "passages": stored.passages });
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

pub async fn list(State(app): State<AppState>, auth: Auth) -> Result<Response> {
    auth.require(Scope::KnowledgeManage)?;
    let documents = ops::list(&app.store, &auth.tenant).await?;
    let items: Vec<Value> = documents.iter().map(summary_json).collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

/// One document with its reduced text (what the portal previews).
pub async fn get(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    auth.require(Scope::KnowledgeManage)?;
    let (summary, text) = ops::get(&app.store, &auth.tenant, &id).await?;
    let mut body = summary_json(&summary);
    body["text"] = json!(text);
    Ok(axum::Json(body).into_response())
}

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
pub async fn purge(State(app): State<AppState>, auth: Auth) -> Result<Response> {
    auth.require(Scope::KnowledgeManage)?;
    let removed = ops::purge(&app.store, &auth.tenant, &auth.actor()).await?;
    let body = json!({
        "purged_at": format_time(crate::db::now_ms()),
        "documents": removed.documents,
        "passages": removed.passages,
    });
    Ok(axum::Json(body).into_response())
}

fn summary_json(d: &DocumentSummary) -> Value {
    json!({
        "id": d.id,
        "title": d.title,
        "url": d.url,
        "format": d.format,
        "passages": d.passages,
        "chars": d.chars,
        "created_at": format_time(d.created_at),
    })
}

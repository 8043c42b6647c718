//! History: list, search, read, export (NDJSON or CSV, streamed), delete one, purge all.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::app::AppState;
use crate::catalog::api_keys::Scope;
use crate::db::format_time;
use crate::domain::{ConversationId, Role};
use crate::error::{Error, ErrorResponse, Result};
use crate::http::auth::Auth;
use crate::http::extract::{Path, Query};
use crate::vault::history::{self, FullConversation, ListQuery};
use crate::vault::repo;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, clamped to 1-200; 50 by default.
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Full-text search: words that must all appear in one message.
    q: Option<String>,
    /// Only conversations active at or after this time: RFC 3339 or YYYY-MM-DD.
    from: Option<String>,
    /// Only conversations started at or before this time: RFC 3339 or YYYY-MM-DD (the whole day).
    to: Option<String>,
}

/// A page of conversations, newest-active first.
#[derive(Serialize, ToSchema)]
pub struct ConversationPage {
    items: Vec<ConversationItem>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ConversationItem {
    id: String,
    #[schema(format = DateTime)]
    started_at: String,
    #[schema(format = DateTime)]
    last_at: String,
    message_count: i64,
}

/// One conversation with every message, oldest first.
#[derive(Serialize, ToSchema)]
pub struct Conversation {
    id: String,
    #[schema(format = DateTime)]
    started_at: String,
    messages: Vec<Message>,
}

#[derive(Serialize, ToSchema)]
pub struct Message {
    id: String,
    role: Role,
    text: String,
    #[schema(format = DateTime)]
    at: String,
    /// Advisory content-safety flags, when the tenant's floor raised any.
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<Vec<String>>,
}

/// What an instant purge destroyed.
#[derive(Serialize, ToSchema)]
pub struct Purged {
    #[schema(format = DateTime)]
    purged_at: String,
    conversations: i64,
    messages: i64,
}

/// Lists or searches the tenant's conversations, one page at a time.
#[utoipa::path(
    get,
    path = "/v1/conversations",
    tag = "history",
    operation_id = "list_conversations",
    params(ListParams),
    security(("bearer" = ["history:read"]), ("session" = [])),
    responses((status = 200, body = ConversationPage), (status = 400, body = ErrorResponse)),
)]
pub async fn list(
    State(app): State<AppState>,
    auth: Auth,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<ConversationPage>> {
    auth.require(Scope::HistoryRead)?;
    let query = ListQuery {
        limit: params.limit.unwrap_or(50).clamp(1, 200),
        after: params.cursor.as_deref().map(parse_cursor).transpose()?,
        search: params.q.filter(|q| !q.trim().is_empty()),
        from: params.from.as_deref().map(parse_time).transpose()?,
        to: params
            .to
            .as_deref()
            .map(|t| parse_time(t).map(|ms| if t.len() == 10 { ms + 86_399_999 } else { ms }))
            .transpose()?,
    };
    let limit = query.limit as usize;
    let page = app
        .store
        .vault
        .call(&auth.tenant, move |c| {
            history::list_conversations(c, &query)
        })
        .await?;
    let next_cursor = (page.len() == limit)
        .then(|| page.last().map(|c| format!("{}.{}", c.last_at, c.id)))
        .flatten();
    let items = page
        .iter()
        .map(|c| ConversationItem {
            id: c.id.clone(),
            started_at: format_time(c.started_at),
            last_at: format_time(c.last_at),
            message_count: c.message_count,
        })
        .collect();
    Ok(axum::Json(ConversationPage { items, next_cursor }))
}

#[utoipa::path(
    get,
    path = "/v1/conversations/{id}",
    tag = "history",
    operation_id = "get_conversation",
    params(("id" = String, Path)),
    security(("bearer" = ["history:read"]), ("session" = [])),
    responses((status = 200, body = Conversation), (status = 404, body = ErrorResponse)),
)]
pub async fn get(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<Conversation>> {
    auth.require(Scope::HistoryRead)?;
    let id = ConversationId::parse(&id).ok_or_else(|| Error::not_found("conversation"))?;
    let conversation = app
        .store
        .vault
        .call(&auth.tenant, move |c| history::full_conversation(c, &id))
        .await?;
    let conversation = conversation.ok_or_else(|| Error::not_found("conversation"))?;
    Ok(axum::Json(Conversation::from(&conversation)))
}

/// Erases one conversation from the tenant file.
#[utoipa::path(
    delete,
    path = "/v1/conversations/{id}",
    tag = "history",
    operation_id = "delete_conversation",
    params(("id" = String, Path)),
    security(("bearer" = ["history:delete"]), ("session" = [], "csrf" = [])),
    responses((status = 204, description = "erased"), (status = 404, body = ErrorResponse)),
)]
pub async fn delete_one(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    auth.require(Scope::HistoryDelete)?;
    let id = ConversationId::parse(&id).ok_or_else(|| Error::not_found("conversation"))?;
    let gone = id.clone();
    if !app
        .store
        .vault
        .call(&auth.tenant, move |c| repo::delete_conversation(c, &gone))
        .await?
    {
        return Err(Error::not_found("conversation"));
    }
    // Rewrite the WAL so the deleted pages' old images do not linger in `-wal`.
    app.store
        .vault
        .exclusive(&auth.tenant, |c| {
            Ok(c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?)
        })
        .await?;
    app.store
        .audit(
            &auth.tenant,
            &auth.actor(),
            "conversation.deleted",
            Some(id.as_str()),
            json!({}),
        )
        .await?;
    app.webhooks.emit(
        &auth.tenant,
        crate::webhooks::Event::Erased {
            conversation: id.to_string(),
        },
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Instant purge of every conversation.
#[utoipa::path(
    delete,
    path = "/v1/conversations",
    tag = "history",
    operation_id = "purge_conversations",
    security(("bearer" = ["history:delete"]), ("session" = [], "csrf" = [])),
    responses((status = 200, body = Purged)),
)]
pub async fn purge(State(app): State<AppState>, auth: Auth) -> Result<axum::Json<Purged>> {
    auth.require(Scope::HistoryDelete)?;
    let report = app.store.purge_tenant(&auth.tenant, &auth.actor()).await?;
    Ok(axum::Json(Purged {
        purged_at: format_time(report.purged_at),
        conversations: report.conversations,
        messages: report.messages,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `ndjson` (one conversation per line) by default.
    #[param(inline)]
    format: Option<ExportFormat>,
}

#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Ndjson,
    Csv,
}

/// Exports every conversation, as NDJSON or CSV, streamed.
#[utoipa::path(
    get,
    path = "/v1/export",
    tag = "history",
    operation_id = "export",
    params(ExportParams),
    security(("bearer" = ["history:read"]), ("session" = [])),
    responses(
        (
            status = 200,
            description = "NDJSON: one `Conversation` per line; CSV: one message per row",
            content((Conversation = "application/x-ndjson"), (String = "text/csv")),
        ),
        (status = 400, body = ErrorResponse),
    ),
)]
pub async fn export(
    State(app): State<AppState>,
    auth: Auth,
    Query(params): Query<ExportParams>,
) -> Result<Response> {
    // Every conversation goes, one at a time, through a bounded channel: memory stays flat
    // whatever the size of the history.
    auth.require(Scope::HistoryRead)?;
    let csv = matches!(params.format, Some(ExportFormat::Csv));
    app.store
        .audit(
            &auth.tenant,
            &auth.actor(),
            "history.exported",
            None,
            json!({"format": if csv { "csv" } else { "ndjson" }}),
        )
        .await?;
    // Open the reader before answering, so a tenant that cannot be read gets a proper error
    // status instead of a stream that breaks after its headers.
    let (vault, tenant) = (app.store.vault.clone(), auth.tenant.clone());
    let reader = crate::store::blocking(move || vault.open_reader_blocking(&tenant)).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let tenant = auth.tenant.clone();
    tokio::task::spawn_blocking(move || {
        if csv
            && tx
                .blocking_send(Ok(Bytes::from_static(
                    b"conversation_id,message_id,role,at,text\n",
                )))
                .is_err()
        {
            return;
        }
        let mut conn = reader;
        let outcome = history::for_each_conversation(&mut conn, |conversation| {
            let chunk = if csv {
                csv_rows(&conversation)
            } else {
                let line = serde_json::to_string(&Conversation::from(&conversation));
                line.expect("a conversation serializes") + "\n"
            };
            tx.blocking_send(Ok(Bytes::from(chunk))).is_ok()
        });
        if let Err(e) = outcome {
            tracing::warn!(tenant = %tenant, error = %e, "export stopped early");
            let _ = tx.blocking_send(Err(std::io::Error::other("export failed")));
        }
    });
    let stream = tokio_stream_from(rx);
    let (content_type, name) = if csv {
        ("text/csv; charset=utf-8", "conversations.csv")
    } else {
        ("application/x-ndjson", "conversations.ndjson")
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

impl From<&FullConversation> for Conversation {
    fn from(c: &FullConversation) -> Self {
        let messages = c
            .messages
            .iter()
            .map(|m| Message {
                id: m.id.clone(),
                role: m.role,
                text: m.text.clone(),
                at: format_time(m.at),
                flags: m.flags.clone(),
            })
            .collect();
        Conversation {
            id: c.id.clone(),
            started_at: format_time(c.started_at),
            messages,
        }
    }
}

fn csv_rows(c: &FullConversation) -> String {
    c.messages
        .iter()
        .map(|m| {
            format!(
                "{},{},{},{},{}\n",
                c.id,
                m.id,
                m.role.as_str(),
                format_time(m.at),
                csv_field(&m.text)
            )
        })
        .collect()
}

/// Quotes a CSV field, and defuses spreadsheet formulas (a leading `=`, `+`, `-`, `@`).
pub fn csv_field(text: &str) -> String {
    let defused = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    format!("\"{}\"", defused.replace('"', "\"\""))
}

fn parse_cursor(raw: &str) -> Result<(i64, String)> {
    let bad = || Error::invalid("invalid_cursor", "that cursor did not come from this API");
    let (at, id) = raw.split_once('.').ok_or_else(bad)?;
    let id = ConversationId::parse(id).ok_or_else(bad)?;
    Ok((at.parse().map_err(|_| bad())?, id.to_string()))
}

/// Milliseconds from RFC 3339 or a bare `YYYY-MM-DD` (midnight UTC).
pub fn parse_time(raw: &str) -> Result<i64> {
    let full = if raw.len() == 10 {
        format!("{raw}T00:00:00Z")
    } else {
        raw.to_owned()
    };
    let at = humantime::parse_rfc3339_weak(&full).map_err(|_| {
        Error::invalid(
            "invalid_time",
            "times are RFC 3339, e.g. 2026-11-25 or 2026-11-25T10:00:00Z",
        )
    })?;
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| Error::invalid("invalid_time", "times before 1970 are not supported"))?
        .as_millis();
    Ok(i64::try_from(ms).unwrap_or(i64::MAX))
}

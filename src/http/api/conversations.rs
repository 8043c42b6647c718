//! History: list, search, read, export (NDJSON or CSV, streamed), delete one, purge all.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::catalog::api_keys::Scope;
use crate::db::format_time;
use crate::domain::ConversationId;
use crate::error::{Error, Result};
use crate::http::auth::Auth;
use crate::http::extract::{Path, Query};
use crate::vault::history::{self, FullConversation, ListQuery};
use crate::vault::repo;

#[derive(Deserialize)]
pub struct ListParams {
    limit: Option<u32>,
    cursor: Option<String>,
    q: Option<String>,
    /// RFC 3339 or YYYY-MM-DD.
    from: Option<String>,
    to: Option<String>,
}

pub async fn list(
    State(app): State<AppState>,
    auth: Auth,
    Query(params): Query<ListParams>,
) -> Result<Response> {
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
    let items: Vec<Value> = page
        .iter()
        .map(|c| json!({"id": c.id, "started_at": format_time(c.started_at), "last_at": format_time(c.last_at), "message_count": c.message_count}))
        .collect();
    Ok(axum::Json(json!({ "items": items, "next_cursor": next_cursor })).into_response())
}

pub async fn get(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    auth.require(Scope::HistoryRead)?;
    let id = ConversationId::parse(&id).ok_or_else(|| Error::not_found("conversation"))?;
    let conversation = app
        .store
        .vault
        .call(&auth.tenant, move |c| history::full_conversation(c, &id))
        .await?;
    let conversation = conversation.ok_or_else(|| Error::not_found("conversation"))?;
    Ok(axum::Json(conversation_json(&conversation)).into_response())
}

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

pub async fn purge(State(app): State<AppState>, auth: Auth) -> Result<Response> {
    auth.require(Scope::HistoryDelete)?;
    let report = app.store.purge_tenant(&auth.tenant, &auth.actor()).await?;
    let body = json!({"purged_at": format_time(report.purged_at), "conversations": report.conversations, "messages": report.messages});
    Ok(axum::Json(body).into_response())
}

#[derive(Deserialize)]
pub struct ExportParams {
    format: Option<String>,
}

/// Streams every conversation, one at a time, through a bounded channel: memory stays flat
/// whatever the size of the history.
pub async fn export(
    State(app): State<AppState>,
    auth: Auth,
    Query(params): Query<ExportParams>,
) -> Result<Response> {
    auth.require(Scope::HistoryRead)?;
    let csv = match params.format.as_deref() {
        None | Some("ndjson") => false,
        Some("csv") => true,
        Some(_) => return Err(Error::invalid("invalid_format", "format is ndjson or csv")),
    };
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
                format!("{}\n", conversation_json(&conversation))
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

fn conversation_json(c: &FullConversation) -> Value {
    let messages: Vec<Value> = c
        .messages
        .iter()
        .map(|m| {
            let mut message =
                json!({"id": m.id, "role": m.role, "text": m.text, "at": format_time(m.at)});
            if let Some(flags) = &m.flags {
                message["flags"] = json!(flags);
            }
            message
        })
        .collect();
    json!({"id": c.id, "started_at": format_time(c.started_at), "messages": messages})
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

//! Node-to-node routes for `tenant move` (see [`crate::cluster::moves`]), under `/ops/`. They
//! exist only when the node has a cluster secret, and answer only its bearer token. They are
//! meant for the operator's network, not the load balancer's public side.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::app::AppState;
use crate::cluster::{ClusterSecret, moves};
use crate::domain::TenantId;
use crate::error::{Error, Result};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ops/tenants/{id}", get(describe))
        .route("/ops/tenants/{id}/freeze", post(freeze))
        .route("/ops/tenants/{id}/export", post(export))
        // The bundle streams to disk: no body limit beyond the disk's.
        .route(
            "/ops/tenants/{id}/import",
            post(import).layer(DefaultBodyLimit::disable()),
        )
        .route("/ops/tenants/{id}/release", post(release))
        .route("/ops/tenants/{id}/thaw", post(thaw))
}

/// A caller holding the cluster's bearer token.
struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self> {
        // Without a cluster secret the routes do not exist.
        let secret: &ClusterSecret = app
            .cluster
            .as_ref()
            .ok_or_else(|| Error::not_found("route"))?;
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if secret.accepts(presented.trim()) {
            Ok(Operator)
        } else {
            Err(Error::Unauthorized(
                "this route needs the cluster token".into(),
            ))
        }
    }
}

fn tenant(raw: &str) -> Result<TenantId> {
    TenantId::parse(raw)
}

fn secret(app: &AppState) -> Result<&ClusterSecret> {
    app.cluster
        .as_ref()
        .ok_or_else(|| Error::not_found("route"))
}

async fn describe(
    _: Operator,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = tenant(&id)?;
    Ok(axum::Json(moves::describe(&app.store, &id).await?).into_response())
}

async fn freeze(
    _: Operator,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = tenant(&id)?;
    moves::freeze(&app.store, &app.gates, &id).await?;
    Ok(axum::Json(serde_json::json!({ "tenant": id.as_str(), "frozen": true })).into_response())
}

/// Streams the sealed header, then the snapshot file from a blocking reader through a bounded
/// channel; the snapshot is removed once sent (or once the receiver goes away).
async fn export(
    _: Operator,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = tenant(&id)?;
    let outgoing = moves::export(&app.store, &app.gates, secret(&app)?, &id).await?;
    let length = outgoing.header.len() as u64 + outgoing.file_len;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    let (header, snapshot) = (Bytes::from(outgoing.header), outgoing.snapshot);
    tokio::task::spawn_blocking(move || {
        if tx.blocking_send(Ok(header)).is_ok()
            && let Err(e) = send_file(&snapshot, &tx)
        {
            let _ = tx.blocking_send(Err(e));
        }
        crate::datadir::remove_files(vec![snapshot]);
    });
    let body = Body::from_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        body,
    )
        .into_response())
}

fn send_file(
    path: &std::path::Path,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) -> std::io::Result<()> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    loop {
        let mut chunk = vec![0u8; 256 * 1024];
        let n = file.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        chunk.truncate(n);
        if tx.blocking_send(Ok(Bytes::from(chunk))).is_err() {
            return Ok(()); // the receiver went away
        }
    }
}

async fn import(
    _: Operator,
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response> {
    let id = tenant(&id)?;
    let stream = body.into_data_stream();
    let imported = moves::import(&app.store, secret(&app)?, &id, stream).await?;
    Ok((StatusCode::CREATED, axum::Json(imported)).into_response())
}

async fn release(
    _: Operator,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = tenant(&id)?;
    moves::release(&app.store, &app.gates, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn thaw(
    _: Operator,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = tenant(&id)?;
    moves::thaw(&app.gates, &id);
    Ok(StatusCode::NO_CONTENT)
}

//! Node-to-node routes for `tenant move` (see [`crate::cluster::moves`]), under `/ops/`. They
//! exist only when the node has a cluster secret, and answer only its bearer token. They are
//! meant for the operator's network, not the load balancer's public side.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::app::AppState;
use crate::cluster::{ClusterSecret, moves};
use crate::domain::TenantId;
use crate::error::{Error, Result};

/// Largest bundle an import accepts (it is held in memory while it is installed).
pub const MAX_BUNDLE_BYTES: usize = 4 << 30;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ops/tenants/{id}/freeze", post(freeze))
        .route("/ops/tenants/{id}/export", post(export))
        .route(
            "/ops/tenants/{id}/import",
            post(import).layer(DefaultBodyLimit::max(MAX_BUNDLE_BYTES)),
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

async fn freeze(
    _: Operator,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = tenant(&id)?;
    moves::freeze(&app.store, &app.gates, &id).await?;
    Ok(axum::Json(serde_json::json!({ "tenant": id.as_str(), "frozen": true })).into_response())
}

async fn export(
    _: Operator,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = tenant(&id)?;
    let bundle = moves::export(&app.store, &app.gates, secret(&app)?, &id).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bundle).into_response())
}

async fn import(
    _: Operator,
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let id = tenant(&id)?;
    let imported = moves::import(&app.store, secret(&app)?, &id, &body).await?;
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

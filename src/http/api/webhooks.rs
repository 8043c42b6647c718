//! The tenant's webhook endpoint (the signing secret is shown once) and its delivery log.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::catalog::api_keys::Scope;
use crate::catalog::webhooks::{self, Endpoint};
use crate::crypto;
use crate::db::format_time;
use crate::error::{Error, ErrorResponse, Result};
use crate::http::auth::Auth;
use crate::http::extract::parse_json;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointBody {
    /// `https://`, or `http://` to this machine; at most 2000 characters.
    url: String,
    /// Also send message text in events; `false` by default.
    #[serde(default)]
    include_content: bool,
}

/// Where the tenant's events are delivered.
#[derive(Serialize, ToSchema)]
pub struct Webhook {
    url: String,
    include_content: bool,
    /// The signing secret; only in the answer to `PUT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

/// One delivery of an event.
#[derive(Serialize, ToSchema)]
pub struct DeliveryItem {
    id: String,
    event: String,
    status: String,
    attempts: i64,
    /// The receiver's last HTTP status, if it answered.
    last_status: Option<i64>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    finished_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryLog {
    deliveries: Vec<DeliveryItem>,
}

/// Sets (or replaces) the endpoint and returns a new signing secret, shown only here.
#[utoipa::path(
    put,
    path = "/v1/webhook",
    tag = "webhook",
    operation_id = "set_webhook",
    request_body = EndpointBody,
    security(("bearer" = ["settings:write"]), ("session" = [], "csrf" = [])),
    responses((status = 200, body = Webhook), (status = 400, body = ErrorResponse)),
)]
pub async fn set(
    State(app): State<AppState>,
    auth: Auth,
    body: Bytes,
) -> Result<axum::Json<Webhook>> {
    auth.require(Scope::SettingsWrite)?;
    let body: EndpointBody = parse_json(&body)?;
    let url = validate_url(&body.url)?;
    let endpoint = Endpoint {
        url: url.clone(),
        secret: format!("whsec_{}", crypto::random_token()),
        include_content: body.include_content,
    };
    let (tenant, stored) = (auth.tenant.clone(), endpoint.clone());
    app.store
        .catalog
        .call(move |c| webhooks::set(c, &tenant, &stored))
        .await?;
    app.webhooks.endpoint_set(&auth.tenant);
    app.store
        .audit(
            &auth.tenant,
            &auth.actor(),
            "webhook.set",
            None,
            json!({"url": url, "include_content": body.include_content}),
        )
        .await?;
    Ok(axum::Json(Webhook {
        url: endpoint.url,
        include_content: endpoint.include_content,
        secret: Some(endpoint.secret),
    }))
}

#[utoipa::path(
    get,
    path = "/v1/webhook",
    tag = "webhook",
    operation_id = "get_webhook",
    security(("bearer" = ["settings:write"]), ("session" = [])),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorResponse)),
)]
pub async fn get(State(app): State<AppState>, auth: Auth) -> Result<axum::Json<Webhook>> {
    auth.require(Scope::SettingsWrite)?;
    let tenant = auth.tenant.clone();
    let endpoint = app
        .store
        .catalog
        .call(move |c| webhooks::get(c, &tenant))
        .await?
        .ok_or_else(|| Error::not_found("webhook"))?;
    Ok(axum::Json(Webhook {
        url: endpoint.url,
        include_content: endpoint.include_content,
        secret: None,
    }))
}

#[utoipa::path(
    delete,
    path = "/v1/webhook",
    tag = "webhook",
    operation_id = "remove_webhook",
    security(("bearer" = ["settings:write"]), ("session" = [], "csrf" = [])),
    responses((status = 204, description = "removed"), (status = 404, body = ErrorResponse)),
)]
pub async fn remove(State(app): State<AppState>, auth: Auth) -> Result<StatusCode> {
    auth.require(Scope::SettingsWrite)?;
    let tenant = auth.tenant.clone();
    if !app
        .store
        .catalog
        .call(move |c| webhooks::remove(c, &tenant))
        .await?
    {
        return Err(Error::not_found("webhook"));
    }
    app.store
        .audit(
            &auth.tenant,
            &auth.actor(),
            "webhook.removed",
            None,
            json!({}),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The latest 200 deliveries, newest first.
#[utoipa::path(
    get,
    path = "/v1/webhook/deliveries",
    tag = "webhook",
    operation_id = "webhook_deliveries",
    security(("bearer" = ["settings:write"]), ("session" = [])),
    responses((status = 200, body = DeliveryLog)),
)]
pub async fn deliveries(
    State(app): State<AppState>,
    auth: Auth,
) -> Result<axum::Json<DeliveryLog>> {
    auth.require(Scope::SettingsWrite)?;
    let tenant = auth.tenant.clone();
    let log = app
        .store
        .catalog
        .call(move |c| webhooks::deliveries(c, &tenant, 200))
        .await?;
    let deliveries = log
        .into_iter()
        .map(|d| DeliveryItem {
            id: d.id,
            event: d.event,
            status: d.status,
            attempts: d.attempts,
            last_status: d.last_status,
            created_at: format_time(d.created_at),
            finished_at: d.finished_at.map(format_time),
        })
        .collect();
    Ok(axum::Json(DeliveryLog { deliveries }))
}

/// `https://` anywhere; plain `http://` only to this machine (for local receivers and tests).
fn validate_url(raw: &str) -> Result<String> {
    let bad = || {
        Error::invalid(
            "invalid_url",
            "the webhook URL must be https:// (or http:// to localhost)",
        )
    };
    let url = url::Url::parse(raw.trim()).map_err(|_| bad())?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    let allowed = url.username().is_empty()
        && url.password().is_none()
        && (url.scheme() == "https" || (url.scheme() == "http" && loopback));
    if !allowed || raw.len() > 2000 {
        return Err(bad());
    }
    Ok(url.to_string())
}

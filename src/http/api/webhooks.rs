//! The tenant's webhook endpoint (the signing secret is shown once) and its delivery log.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::catalog::api_keys::Scope;
use crate::catalog::webhooks::{self, Endpoint};
use crate::crypto;
use crate::db::format_time;
use crate::error::{Error, Result};
use crate::http::auth::Auth;
use crate::http::extract::parse_json;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointBody {
    url: String,
    #[serde(default)]
    include_content: bool,
}

/// Sets (or replaces) the endpoint and returns a new signing secret, shown only here.
pub async fn set(State(app): State<AppState>, auth: Auth, body: Bytes) -> Result<Response> {
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
    Ok(axum::Json(json!({"url": endpoint.url, "include_content": endpoint.include_content, "secret": endpoint.secret})).into_response())
}

pub async fn get(State(app): State<AppState>, auth: Auth) -> Result<Response> {
    auth.require(Scope::SettingsWrite)?;
    let tenant = auth.tenant.clone();
    let endpoint = app
        .store
        .catalog
        .call(move |c| webhooks::get(c, &tenant))
        .await?
        .ok_or_else(|| Error::not_found("webhook"))?;
    Ok(
        axum::Json(json!({"url": endpoint.url, "include_content": endpoint.include_content}))
            .into_response(),
    )
}

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

pub async fn deliveries(State(app): State<AppState>, auth: Auth) -> Result<Response> {
    auth.require(Scope::SettingsWrite)?;
    let tenant = auth.tenant.clone();
    let log = app
        .store
        .catalog
        .call(move |c| webhooks::deliveries(c, &tenant, 200))
        .await?;
    let log: Vec<_> = log
        .iter()
        .map(|d| json!({"id": d.id, "event": d.event, "status": d.status, "attempts": d.attempts, "last_status": d.last_status,
            "created_at": format_time(d.created_at), "finished_at": d.finished_at.map(format_time)}))
        .collect();
    Ok(axum::Json(json!({ "deliveries": log })).into_response())
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

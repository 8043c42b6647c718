//! Settings, usage counters, the audit log and API keys.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::conversations::csv_field;
use crate::app::AppState;
use crate::catalog::api_keys::{self, NewApiKey, Scope};
use crate::catalog::settings::TenantSettings;
use crate::catalog::{audit, tenants};
use crate::db::{self, format_time};
use crate::domain::Origin;
use crate::error::{Error, Result};
use crate::http::auth::Auth;
use crate::http::extract::{Path, Query, parse_json};
use crate::vault::repo;

pub async fn get_settings(State(app): State<AppState>, auth: Auth) -> Result<Response> {
    auth.require(Scope::HistoryRead)?;
    let tenant = app.store.tenant(&auth.tenant).await?;
    let id = auth.tenant.clone();
    let widget_key = app
        .store
        .catalog
        .call(move |c| tenants::widget_keys(c, &id))
        .await?
        .into_iter()
        .next();
    let mut body = settings_json(&tenant);
    body["widget_key"] = json!(widget_key);
    Ok(axum::Json(body).into_response())
}

fn settings_json(tenant: &tenants::Tenant) -> Value {
    let mut body = serde_json::to_value(&tenant.settings).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut body {
        map.insert("name".into(), json!(tenant.name));
        map.insert("allowed_origins".into(), json!(tenant.origins));
    }
    body
}

/// Takes any subset of the fields `GET /v1/settings` returns; unknown fields are refused.
pub async fn patch_settings(
    State(app): State<AppState>,
    auth: Auth,
    body: Bytes,
) -> Result<Response> {
    auth.require(Scope::SettingsWrite)?;
    let patch: Map<String, Value> = parse_json(&body)?;
    let tenant = app.store.tenant(&auth.tenant).await?;
    let mut name = tenant.name.clone();
    let mut origins = None;
    let Value::Object(mut current) =
        serde_json::to_value(&tenant.settings).unwrap_or_else(|_| json!({}))
    else {
        return Err(Error::Unavailable("settings are unreadable".into()));
    };
    for (key, value) in &patch {
        match key.as_str() {
            "name" => {
                name = value
                    .as_str()
                    .filter(|n| (1..=200).contains(&n.chars().count()))
                    .ok_or_else(|| Error::invalid("invalid_settings", "name is 1-200 characters"))?
                    .to_owned()
            }
            "allowed_origins" => origins = Some(parse_origins(value)?),
            _ if current.contains_key(key) => {
                current.insert(key.clone(), value.clone());
            }
            _ => {
                return Err(Error::invalid(
                    "invalid_settings",
                    format!("unknown setting {key:?}"),
                ));
            }
        }
    }
    let settings: TenantSettings = serde_json::from_value(Value::Object(current))
        .map_err(|e| Error::invalid("invalid_settings", e.to_string()))?;
    settings.validate()?;
    let id = auth.tenant.clone();
    let changed: Vec<&String> = patch.keys().collect();
    let details = json!({ "fields": changed });
    app.store
        .catalog
        .call(move |c| {
            tenants::update_settings(c, &id, &name, &settings)?;
            if let Some(origins) = origins {
                tenants::replace_origins(c, &id, &origins)?;
            }
            Ok(())
        })
        .await?;
    app.store
        .audit(
            &auth.tenant,
            &auth.actor(),
            "settings.changed",
            None,
            details,
        )
        .await?;
    let tenant = app.store.tenant(&auth.tenant).await?;
    Ok(axum::Json(settings_json(&tenant)).into_response())
}

fn parse_origins(value: &Value) -> Result<Vec<Origin>> {
    let list = value
        .as_array()
        .filter(|l| (1..=50).contains(&l.len()))
        .ok_or_else(|| {
            Error::invalid(
                "invalid_origin",
                "allowed_origins is a list of 1-50 origins",
            )
        })?;
    list.iter()
        .map(|o| {
            o.as_str()
                .ok_or_else(|| Error::invalid("invalid_origin", "origins are strings"))
                .and_then(Origin::parse)
        })
        .collect()
}

pub async fn get_usage(State(app): State<AppState>, auth: Auth) -> Result<Response> {
    auth.require(Scope::HistoryRead)?;
    let tenant = app.store.tenant(&auth.tenant).await?;
    let today = crate::gateway::utc_day(db::now_ms());
    let (days, totals) = app
        .store
        .vault
        .call(&auth.tenant, move |c| {
            Ok((repo::usage_days(c, 90)?, repo::totals(c)?))
        })
        .await?;
    let today_usage = days
        .iter()
        .find(|d| d.day == today)
        .cloned()
        .unwrap_or_else(|| repo::DailyUsage {
            day: today,
            ..Default::default()
        });
    let body = json!({
        "today": today_usage,
        "daily_token_budget": tenant.settings.daily_token_budget,
        "days": days,
        "stored": { "conversations": totals.conversations, "messages": totals.messages },
    });
    Ok(axum::Json(body).into_response())
}

pub async fn reset_usage(State(app): State<AppState>, auth: Auth) -> Result<StatusCode> {
    auth.require(Scope::HistoryDelete)?;
    app.store
        .vault
        .call(&auth.tenant, repo::reset_usage)
        .await?;
    app.store
        .audit(&auth.tenant, &auth.actor(), "usage.reset", None, json!({}))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct AuditParams {
    format: Option<String>,
    days: Option<u32>,
}

pub async fn get_audit(
    State(app): State<AppState>,
    auth: Auth,
    Query(params): Query<AuditParams>,
) -> Result<Response> {
    auth.require(Scope::SettingsWrite)?;
    let days = i64::from(params.days.unwrap_or(90).clamp(1, 3650));
    let since = db::now_ms() - days * 86_400_000;
    let id = auth.tenant.clone();
    let entries = app
        .store
        .catalog
        .call(move |c| audit::entries(c, &id, since, 100_000))
        .await?;
    match params.format.as_deref() {
        None | Some("json") => {
            let entries: Vec<Value> = entries
                .iter()
                .map(|e| json!({"seq": e.seq, "at": format_time(e.at), "actor": e.actor, "action": e.action, "target": e.target, "details": e.details}))
                .collect();
            Ok(axum::Json(json!({ "entries": entries })).into_response())
        }
        Some("csv") => {
            let mut csv = String::from("seq,at,actor,action,target,details\n");
            for e in &entries {
                let target = e.target.as_deref().unwrap_or_default();
                csv.push_str(&format!(
                    "{},{},{},{},{},{}\n",
                    e.seq,
                    format_time(e.at),
                    csv_field(&e.actor),
                    csv_field(&e.action),
                    csv_field(target),
                    csv_field(&e.details.to_string())
                ));
            }
            Ok((
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"audit.csv\"",
                    ),
                ],
                csv,
            )
                .into_response())
        }
        Some(_) => Err(Error::invalid("invalid_format", "format is json or csv")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    name: Option<String>,
    scopes: Vec<String>,
}

/// Creates a key with at most the caller's own scopes; the secret is in this response only.
pub async fn create_key(State(app): State<AppState>, auth: Auth, body: Bytes) -> Result<Response> {
    auth.require(Scope::KeysManage)?;
    let body: NewKeyBody = parse_json(&body)?;
    let mut scopes = Vec::new();
    for raw in &body.scopes {
        let scope = Scope::parse(raw)
            .ok_or_else(|| Error::invalid("invalid_scope", format!("unknown scope {raw:?}")))?;
        auth.require(scope)?;
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() {
        return Err(Error::invalid(
            "invalid_scope",
            "a key needs at least one scope",
        ));
    }
    let name = body.name.unwrap_or_else(|| "api key".into());
    if name.chars().count() > 100 {
        return Err(Error::invalid(
            "invalid_name",
            "names are at most 100 characters",
        ));
    }
    let key = NewApiKey::generate(&auth.tenant);
    let (id, token) = (key.id.clone(), key.token());
    let (tenant, stored_name, stored_scopes) = (auth.tenant.clone(), name.clone(), scopes.clone());
    app.store
        .catalog
        .call(move |c| api_keys::insert(c, &tenant, &key, &stored_name, &stored_scopes))
        .await?;
    let scope_names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    app.store
        .audit(
            &auth.tenant,
            &auth.actor(),
            "api_key.created",
            Some(&id),
            json!({ "scopes": scope_names }),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "id": id, "key": token, "name": name, "scopes": scope_names })),
    )
        .into_response())
}

pub async fn list_keys(State(app): State<AppState>, auth: Auth) -> Result<Response> {
    auth.require(Scope::KeysManage)?;
    let tenant = auth.tenant.clone();
    let keys = app
        .store
        .catalog
        .call(move |c| api_keys::list(c, &tenant))
        .await?;
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| json!({"id": k.id, "name": k.name, "scopes": k.scopes, "created_at": format_time(k.created_at),
            "last_used_at": k.last_used_at.map(format_time), "revoked_at": k.revoked_at.map(format_time)}))
        .collect();
    Ok(axum::Json(json!({ "keys": keys })).into_response())
}

pub async fn revoke_key(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    auth.require(Scope::KeysManage)?;
    let (tenant, key_id) = (auth.tenant.clone(), id.clone());
    if !app
        .store
        .catalog
        .call(move |c| api_keys::revoke(c, &tenant, &key_id))
        .await?
    {
        return Err(Error::not_found("API key"));
    }
    app.store
        .audit(
            &auth.tenant,
            &auth.actor(),
            "api_key.revoked",
            Some(&id),
            json!({}),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

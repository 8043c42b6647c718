//! Settings, usage counters and the audit log.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use super::conversations::csv_field;
use crate::app::AppState;
use crate::catalog::api_keys::Scope;
use crate::catalog::settings::TenantSettings;
use crate::catalog::{audit, tenants};
use crate::db::{self, format_time};
use crate::domain::Origin;
use crate::error::{Error, ErrorResponse, Result};
use crate::http::auth::Auth;
use crate::http::extract::{Query, parse_json};
use crate::vault::repo;
use crate::vault::repo::{DailyUsage, Totals};

/// The tenant's settings; more fields may follow (CONTRACT §5).
#[derive(Serialize, ToSchema)]
pub struct Settings {
    name: String,
    allowed_origins: Vec<String>,
    /// The public key the widget script sends (`data-key`).
    widget_key: Option<String>,
    #[serde(flatten)]
    settings: TenantSettings,
}

/// Any subset of the fields `GET /v1/settings` returns, except `widget_key`; unknown fields are
/// refused.
#[derive(Deserialize, ToSchema)]
pub struct SettingsPatch {
    /// 1-200 characters.
    name: Option<String>,
    /// 1-50 origins, each `scheme://host[:port]`.
    allowed_origins: Option<Vec<String>>,
    /// Merged onto the current settings, then checked as a whole.
    #[serde(flatten)]
    #[schema(value_type = TenantSettings)]
    settings: Map<String, Value>,
}

#[utoipa::path(
    get,
    path = "/v1/settings",
    tag = "account",
    operation_id = "get_settings",
    security(("bearer" = ["history:read"]), ("session" = [])),
    responses((status = 200, body = Settings)),
)]
pub async fn get_settings(State(app): State<AppState>, auth: Auth) -> Result<axum::Json<Settings>> {
    auth.require(Scope::HistoryRead)?;
    Ok(axum::Json(current_settings(&app, &auth).await?))
}

async fn current_settings(app: &AppState, auth: &Auth) -> Result<Settings> {
    let tenant = app.store.tenant(&auth.tenant).await?;
    let id = auth.tenant.clone();
    let widget_key = app
        .store
        .catalog
        .call(move |c| tenants::widget_keys(c, &id))
        .await?
        .into_iter()
        .next();
    Ok(Settings {
        name: tenant.name,
        allowed_origins: tenant.origins,
        widget_key,
        settings: tenant.settings,
    })
}

/// Takes any subset of the fields `GET /v1/settings` returns; unknown fields are refused.
#[utoipa::path(
    patch,
    path = "/v1/settings",
    tag = "account",
    operation_id = "patch_settings",
    request_body = SettingsPatch,
    security(("bearer" = ["settings:write"]), ("session" = [], "csrf" = [])),
    responses((status = 200, body = Settings), (status = 400, body = ErrorResponse)),
)]
pub async fn patch_settings(
    State(app): State<AppState>,
    auth: Auth,
    body: Bytes,
) -> Result<axum::Json<Settings>> {
    auth.require(Scope::SettingsWrite)?;
    let patch: SettingsPatch = parse_json(&body)?;
    let tenant = app.store.tenant(&auth.tenant).await?;
    let mut changed: Vec<&str> = Vec::new();
    let name = match &patch.name {
        Some(name) if (1..=200).contains(&name.chars().count()) => {
            changed.push("name");
            name.clone()
        }
        Some(_) => {
            return Err(Error::invalid(
                "invalid_settings",
                "name is 1-200 characters",
            ));
        }
        None => tenant.name.clone(),
    };
    let origins = match &patch.allowed_origins {
        Some(list) => {
            changed.push("allowed_origins");
            Some(parse_origins(list)?)
        }
        None => None,
    };
    let Value::Object(mut current) =
        serde_json::to_value(&tenant.settings).unwrap_or_else(|_| json!({}))
    else {
        return Err(Error::Unavailable("settings are unreadable".into()));
    };
    for (key, value) in &patch.settings {
        if !current.contains_key(key) {
            return Err(Error::invalid(
                "invalid_settings",
                format!("unknown setting {key:?}"),
            ));
        }
        current.insert(key.clone(), value.clone());
        changed.push(key);
    }
    let settings: TenantSettings = serde_json::from_value(Value::Object(current))
        .map_err(|e| Error::invalid("invalid_settings", e.to_string()))?;
    settings.validate()?;
    let id = auth.tenant.clone();
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
    Ok(axum::Json(current_settings(&app, &auth).await?))
}

fn parse_origins(list: &[String]) -> Result<Vec<Origin>> {
    if !(1..=50).contains(&list.len()) {
        return Err(Error::invalid(
            "invalid_origin",
            "allowed_origins is a list of 1-50 origins",
        ));
    }
    list.iter().map(|o| Origin::parse(o)).collect()
}

/// Usage counters: today, the last 90 days, and what is stored now.
#[derive(Serialize, ToSchema)]
pub struct Usage {
    today: DailyUsage,
    /// Tokens in + out per UTC day; 0 means no budget.
    daily_token_budget: u64,
    days: Vec<DailyUsage>,
    stored: Totals,
}

#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "account",
    operation_id = "get_usage",
    security(("bearer" = ["history:read"]), ("session" = [])),
    responses((status = 200, body = Usage)),
)]
pub async fn get_usage(State(app): State<AppState>, auth: Auth) -> Result<axum::Json<Usage>> {
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
    Ok(axum::Json(Usage {
        today: today_usage,
        daily_token_budget: tenant.settings.daily_token_budget,
        days,
        stored: totals,
    }))
}

#[utoipa::path(
    delete,
    path = "/v1/usage",
    tag = "account",
    operation_id = "reset_usage",
    security(("bearer" = ["history:delete"]), ("session" = [], "csrf" = [])),
    responses((status = 204, description = "counters reset")),
)]
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// `json` by default.
    #[param(inline)]
    format: Option<AuditFormat>,
    /// How many days back, clamped to 1-3650; 90 by default.
    days: Option<u32>,
}

#[derive(Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditFormat {
    Json,
    Csv,
}

#[derive(Serialize, ToSchema)]
pub struct AuditLog {
    entries: Vec<AuditEntry>,
}

/// One audit entry; never carries conversation content.
#[derive(Serialize, ToSchema)]
pub struct AuditEntry {
    seq: i64,
    #[schema(format = DateTime)]
    at: String,
    /// `api_key:<id>`, `user:<email>` or `anonymous`.
    actor: String,
    action: String,
    target: Option<String>,
    #[schema(value_type = Object)]
    details: Value,
}

#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "account",
    operation_id = "get_audit",
    params(AuditParams),
    security(("bearer" = ["settings:write"]), ("session" = [])),
    responses(
        (
            status = 200,
            description = "the audit log, oldest first",
            content((AuditLog = "application/json"), (String = "text/csv")),
        ),
        (status = 400, body = ErrorResponse),
    ),
)]
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
    match params.format.unwrap_or(AuditFormat::Json) {
        AuditFormat::Json => {
            let entries = entries
                .into_iter()
                .map(|e| AuditEntry {
                    seq: e.seq,
                    at: format_time(e.at),
                    actor: e.actor,
                    action: e.action,
                    target: e.target,
                    details: e.details,
                })
                .collect();
            Ok(axum::Json(AuditLog { entries }).into_response())
        }
        AuditFormat::Csv => {
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
    }
}

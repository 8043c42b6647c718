//! API keys: create (the secret is shown once), list, revoke.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::catalog::api_keys::{self, NewApiKey, Scope};
use crate::db::format_time;
use crate::error::{Error, ErrorResponse, Result};
use crate::http::auth::Auth;
use crate::http::extract::{Path, parse_json};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    /// At most 100 characters; `api key` by default.
    #[schema(max_length = 100)]
    name: Option<String>,
    /// At least one, each held by the caller.
    #[schema(value_type = Vec<Scope>, min_items = 1)]
    scopes: Vec<String>,
}

/// A new key: the secret is in this response only.
#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    id: String,
    /// `cvk_<id>_<secret>`, sent as `Authorization: Bearer <key>`; stored only as a hash.
    key: String,
    name: String,
    scopes: Vec<Scope>,
}

/// A key's public record.
#[derive(Serialize, ToSchema)]
pub struct KeyItem {
    id: String,
    name: String,
    scopes: Vec<Scope>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    last_used_at: Option<String>,
    #[schema(format = DateTime)]
    revoked_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    keys: Vec<KeyItem>,
}

/// Creates a key with at most the caller's own scopes; the secret is in this response only.
#[utoipa::path(
    post,
    path = "/v1/api-keys",
    tag = "keys",
    operation_id = "create_key",
    request_body = NewKeyBody,
    security(("bearer" = ["keys:manage"]), ("session" = [], "csrf" = [])),
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorResponse)),
)]
pub async fn create_key(
    State(app): State<AppState>,
    auth: Auth,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<CreatedKey>)> {
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
    let created = CreatedKey {
        id,
        key: token,
        name,
        scopes,
    };
    Ok((StatusCode::CREATED, axum::Json(created)))
}

#[utoipa::path(
    get,
    path = "/v1/api-keys",
    tag = "keys",
    operation_id = "list_keys",
    security(("bearer" = ["keys:manage"]), ("session" = [])),
    responses((status = 200, body = KeyList)),
)]
pub async fn list_keys(State(app): State<AppState>, auth: Auth) -> Result<axum::Json<KeyList>> {
    auth.require(Scope::KeysManage)?;
    let tenant = auth.tenant.clone();
    let keys = app
        .store
        .catalog
        .call(move |c| api_keys::list(c, &tenant))
        .await?;
    let keys = keys
        .into_iter()
        .map(|k| KeyItem {
            id: k.id,
            name: k.name,
            scopes: k.scopes,
            created_at: format_time(k.created_at),
            last_used_at: k.last_used_at.map(format_time),
            revoked_at: k.revoked_at.map(format_time),
        })
        .collect();
    Ok(axum::Json(KeyList { keys }))
}

#[utoipa::path(
    delete,
    path = "/v1/api-keys/{id}",
    tag = "keys",
    operation_id = "revoke_key",
    params(("id" = String, Path)),
    security(("bearer" = ["keys:manage"]), ("session" = [], "csrf" = [])),
    responses((status = 204, description = "revoked"), (status = 404, body = ErrorResponse)),
)]
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

//! The owner's user management and tenant deletion.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::catalog::users::{self, Role};
use crate::error::{Error, ErrorResponse, Result};
use crate::http::auth::Auth;
use crate::http::extract::{Path, parse_json};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    email: String,
    #[schema(value_type = Role)]
    role: String,
}

/// A new portal user with the one-time password they must change at first sign-in.
#[derive(Serialize, ToSchema)]
pub struct CreatedUser {
    email: String,
    role: Role,
    password: String,
}

/// A portal user.
#[derive(Serialize, ToSchema)]
pub struct UserItem {
    email: String,
    role: Role,
    must_change_password: bool,
    #[schema(format = DateTime)]
    created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct UserList {
    users: Vec<UserItem>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    #[schema(value_type = Role)]
    role: String,
}

/// Adds a portal user (owner only).
#[utoipa::path(
    post,
    path = "/v1/users",
    tag = "users",
    operation_id = "add_user",
    request_body = NewUserBody,
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 201, body = CreatedUser),
        (status = 400, body = ErrorResponse),
        (status = 409, body = ErrorResponse, description = "the user exists"),
    ),
)]
pub async fn add_user(
    State(app): State<AppState>,
    auth: Auth,
    body: Bytes,
) -> Result<(StatusCode, axum::Json<CreatedUser>)> {
    auth.require_owner()?;
    let body: NewUserBody = parse_json(&body)?;
    let (email, role) = (
        users::normalize_email(&body.email)?,
        Role::parse(&body.role)?,
    );
    let password = app
        .store
        .add_user(&auth.tenant, &email, role, &auth.actor())
        .await?;
    let created = CreatedUser {
        email,
        role,
        password,
    };
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// The tenant's portal users (owner only).
#[utoipa::path(
    get,
    path = "/v1/users",
    tag = "users",
    operation_id = "list_users",
    security(("session" = [])),
    responses((status = 200, body = UserList)),
)]
pub async fn list_users(State(app): State<AppState>, auth: Auth) -> Result<axum::Json<UserList>> {
    auth.require_owner()?;
    let tenant = auth.tenant.clone();
    let list = app
        .store
        .catalog
        .call(move |c| users::list(c, &tenant))
        .await?;
    let users = list
        .into_iter()
        .map(|u| UserItem {
            email: u.email,
            role: u.role,
            must_change_password: u.must_change_password,
            created_at: crate::db::format_time(u.created_at),
        })
        .collect();
    Ok(axum::Json(UserList { users }))
}

/// Changes a user's role (owner only).
#[utoipa::path(
    patch,
    path = "/v1/users/{email}",
    tag = "users",
    operation_id = "set_role",
    params(("email" = String, Path)),
    request_body = RoleBody,
    security(("session" = [], "csrf" = [])),
    responses(
        (status = 204, description = "changed"),
        (status = 400, body = ErrorResponse),
        (status = 404, body = ErrorResponse),
    ),
)]
pub async fn set_role(
    State(app): State<AppState>,
    auth: Auth,
    Path(email): Path<String>,
    body: Bytes,
) -> Result<StatusCode> {
    auth.require_owner()?;
    let body: RoleBody = parse_json(&body)?;
    let (email, role) = (
        users::normalize_email(&email).map_err(|_| Error::not_found("user"))?,
        Role::parse(&body.role)?,
    );
    let (t, e) = (auth.tenant.clone(), email.clone());
    if !app
        .store
        .catalog
        .call(move |c| users::set_role(c, &t, &e, role))
        .await?
    {
        return Err(Error::not_found("user"));
    }
    app.store
        .audit(
            &auth.tenant,
            &auth.actor(),
            "user.role_changed",
            Some(&email),
            json!({ "role": role }),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a user and ends their sessions (owner only).
#[utoipa::path(
    delete,
    path = "/v1/users/{email}",
    tag = "users",
    operation_id = "remove_user",
    params(("email" = String, Path)),
    security(("session" = [], "csrf" = [])),
    responses((status = 204, description = "removed"), (status = 404, body = ErrorResponse)),
)]
pub async fn remove_user(
    State(app): State<AppState>,
    auth: Auth,
    Path(email): Path<String>,
) -> Result<StatusCode> {
    auth.require_owner()?;
    let email = users::normalize_email(&email).map_err(|_| Error::not_found("user"))?;
    let (t, e) = (auth.tenant.clone(), email.clone());
    if !app
        .store
        .catalog
        .call(move |c| users::remove(c, &t, &e))
        .await?
    {
        return Err(Error::not_found("user"));
    }
    app.store
        .audit(
            &auth.tenant,
            &auth.actor(),
            "user.removed",
            Some(&email),
            json!({}),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Crypto-shreds the caller's own tenant (owner only).
#[utoipa::path(
    delete,
    path = "/v1/tenant",
    tag = "users",
    operation_id = "delete_tenant",
    security(("session" = [], "csrf" = [])),
    responses((status = 204, description = "the tenant is gone")),
)]
pub async fn delete_tenant(State(app): State<AppState>, auth: Auth) -> Result<StatusCode> {
    auth.require_owner()?;
    app.store.delete_tenant(&auth.tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! Portal sign-in (rate limited, generic failures), sign-out and password change.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::catalog::users::{self, Role};
use crate::domain::TenantId;
use crate::error::{Error, ErrorResponse, Result};
use crate::http::auth::{self, Auth, Principal};
use crate::http::client_ip::client_ip;
use crate::http::extract::Json;
use crate::store::blocking;

/// Verified against when the account does not exist, so both paths cost one argon2 run.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$0yVYv7Y3EoTfJLo1vY8b8m9bTzQXq0nX6WmHfR4V8sA";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    tenant: String,
    email: String,
    password: String,
}

/// The signed-in portal user; `csrf_token` goes in the `X-CSRF-Token` header of every mutation.
#[derive(Serialize, ToSchema)]
pub struct Session {
    tenant: String,
    email: String,
    role: Role,
    csrf_token: String,
    /// A one-time password is in use: only `/v1/session` routes work until it is changed.
    must_change_password: bool,
}

/// Signs in to the portal: sets the `cv_session` cookie. Failures are generic and rate limited.
#[utoipa::path(
    post,
    path = "/v1/session",
    tag = "session",
    operation_id = "login",
    request_body = LoginBody,
    security(()),
    responses(
        (
            status = 200,
            body = Session,
            headers(("set-cookie" = String, description = "the session cookie")),
        ),
        (status = 400, body = ErrorResponse),
        (status = 401, body = ErrorResponse, description = "wrong tenant, e-mail or password"),
    ),
)]
pub async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<LoginBody>,
) -> Result<Response> {
    let ip = client_ip(peer.ip(), &headers, &app.config.trusted_proxies);
    let account = format!("{}/{}", body.tenant, body.email.trim().to_lowercase());
    let keys = [format!("ip:{ip}"), format!("account:{account}")];
    for key in &keys {
        if let Err(wait) = app.login_failures.check(key) {
            return Err(Error::RateLimited {
                retry_after_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            });
        }
    }
    let refused = || Error::Unauthorized("wrong tenant, e-mail or password".into());
    let tenant = TenantId::parse(&body.tenant).ok();
    let email = users::normalize_email(&body.email).ok();
    let credentials = match (&tenant, &email) {
        (Some(t), Some(e)) => {
            let (t, e) = (t.clone(), e.clone());
            app.store
                .catalog
                .call(move |c| users::credentials(c, &t, &e))
                .await?
        }
        _ => None,
    };
    let stored = credentials
        .as_ref()
        .map(|c| c.password_hash.clone())
        .unwrap_or_else(|| DUMMY_HASH.to_owned());
    let password = body.password;
    let verified = blocking(move || Ok(users::verify_password(&password, &stored))).await?
        && credentials.is_some();
    let (Some(tenant), Some(email), Some(credentials)) =
        (tenant, email, credentials.filter(|_| verified))
    else {
        if let Some(t) = TenantId::parse(&body.tenant)
            .ok()
            .filter(|_| !body.email.is_empty())
        {
            let _ = app
                .store
                .audit(
                    &t,
                    "anonymous",
                    "login.failed",
                    None,
                    json!({ "ip": ip.to_string() }),
                )
                .await;
        }
        keys.iter().for_each(|key| app.login_failures.record(key));
        tracing::info!(client_ip = %ip, "portal login refused");
        return Err(refused());
    };
    // A tenant being moved takes no new sessions here (its new node will).
    let _pass = app.gates.enter(&tenant)?;
    // A session id presented at login is never reused (no fixation): it is ended and replaced.
    let old = auth::session_cookie(&headers);
    let (t, e) = (tenant.clone(), email.clone());
    let (session_id, csrf) = app
        .store
        .catalog
        .call(move |c| {
            if let Some(old) = old {
                users::delete_session(c, &old)?;
            }
            users::create_session(c, &t, &e)
        })
        .await?;
    app.store
        .audit(
            &tenant,
            &format!("user:{email}"),
            "login",
            None,
            json!({ "ip": ip.to_string() }),
        )
        .await?;
    let body = Session {
        tenant: tenant.to_string(),
        email,
        role: credentials.role,
        csrf_token: csrf,
        must_change_password: credentials.must_change_password,
    };
    Ok(with_cookie(
        axum::Json(body).into_response(),
        &auth::session_set_cookie(
            &session_id,
            app.config.session_absolute.as_secs(),
            !app.config.demo,
        ),
    ))
}

/// The caller's own portal session.
#[utoipa::path(
    get,
    path = "/v1/session",
    tag = "session",
    operation_id = "get_session",
    security(("session" = [])),
    responses(
        (status = 200, body = Session),
        (status = 400, body = ErrorResponse, description = "not a portal session"),
    ),
)]
pub async fn me(auth: Auth) -> Result<axum::Json<Session>> {
    // The session was loaded (and its last-seen time touched) when `auth` was checked.
    let Principal::User {
        email,
        role,
        csrf_token,
        must_change_password,
    } = auth.principal
    else {
        return Err(Error::invalid(
            "not_a_session",
            "this endpoint is for portal sessions",
        ));
    };
    Ok(axum::Json(Session {
        tenant: auth.tenant.to_string(),
        email,
        role,
        csrf_token,
        must_change_password,
    }))
}

/// Signs out: ends the session and clears its cookie.
#[utoipa::path(
    delete,
    path = "/v1/session",
    tag = "session",
    operation_id = "logout",
    security(("session" = [], "csrf" = []), ("bearer" = [])),
    responses((status = 204, description = "signed out")),
)]
pub async fn logout(
    State(app): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
) -> Result<Response> {
    if let Some(id) = auth::session_cookie(&headers) {
        app.store
            .catalog
            .call(move |c| users::delete_session(c, &id))
            .await?;
    }
    app.store
        .audit(&auth.tenant, &auth.actor(), "logout", None, json!({}))
        .await?;
    Ok(with_cookie(
        StatusCode::NO_CONTENT.into_response(),
        &auth::session_set_cookie("", 0, !app.config.demo),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    current: String,
    /// 12-512 characters, different from the current one.
    new: String,
}

/// Changes the caller's password, ends all their sessions and starts a fresh one.
#[utoipa::path(
    post,
    path = "/v1/session/password",
    tag = "session",
    operation_id = "change_password",
    request_body = PasswordBody,
    security(("session" = [], "csrf" = [])),
    responses(
        (
            status = 200,
            body = Session,
            headers(("set-cookie" = String, description = "the new session cookie")),
        ),
        (status = 400, body = ErrorResponse),
    ),
)]
pub async fn change_password(
    State(app): State<AppState>,
    auth: Auth,
    Json(body): Json<PasswordBody>,
) -> Result<Response> {
    let Principal::User { email, role, .. } = auth.principal.clone() else {
        return Err(Error::invalid(
            "not_a_session",
            "this endpoint is for portal sessions",
        ));
    };
    if body.new.chars().count() < 12 || body.new.len() > 512 || body.new == body.current {
        return Err(Error::invalid(
            "weak_password",
            "the new password must be 12-512 characters and differ from the current one",
        ));
    }
    let (t, e) = (auth.tenant.clone(), email.clone());
    let stored = app
        .store
        .catalog
        .call(move |c| users::credentials(c, &t, &e))
        .await?
        .ok_or_else(|| Error::Unauthorized("unknown user".into()))?;
    let (current, new) = (body.current, body.new);
    let hash = blocking(move || {
        if !users::verify_password(&current, &stored.password_hash) {
            return Err(Error::Forbidden("the current password is wrong".into()));
        }
        users::hash_password(&new)
    })
    .await?;
    let (t, e) = (auth.tenant.clone(), email.clone());
    let (session_id, csrf) = app
        .store
        .catalog
        .call(move |c| {
            users::set_password(c, &t, &e, &hash)?;
            users::delete_sessions_of(c, &t, &e)?;
            users::create_session(c, &t, &e)
        })
        .await?;
    app.store
        .audit(
            &auth.tenant,
            &auth.actor(),
            "password.changed",
            None,
            json!({}),
        )
        .await?;
    let body = Session {
        tenant: auth.tenant.to_string(),
        email,
        role,
        csrf_token: csrf,
        must_change_password: false,
    };
    Ok(with_cookie(
        axum::Json(body).into_response(),
        &auth::session_set_cookie(
            &session_id,
            app.config.session_absolute.as_secs(),
            !app.config.demo,
        ),
    ))
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

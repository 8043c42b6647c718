//! Who is calling: an API key (`Authorization: Bearer cvk_…`, scoped) or a portal session (cookie,
//! plus the CSRF header and a same-origin `Origin` on every state-changing request).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::app::AppState;
use crate::catalog::api_keys::{self, Scope};
use crate::catalog::users::{self, Role};
use crate::cluster::gates::Pass;
use crate::domain::TenantId;
use crate::error::{Error, Result};

/// The portal's session cookie.
pub const SESSION_COOKIE: &str = "cv_session";
/// The header that must carry the session's CSRF token on mutations.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authenticated caller, bound to exactly one tenant.
#[derive(Clone, Debug)]
pub struct Auth {
    pub tenant: TenantId,
    pub principal: Principal,
    /// Holds the tenant's gate for as long as the request is handled, so a move waits for it.
    pub pass: Arc<Pass>,
}

#[derive(Clone, Debug)]
pub enum Principal {
    ApiKey {
        id: String,
        scopes: Vec<Scope>,
    },
    User {
        email: String,
        role: Role,
        /// The session's CSRF token and first-login state, as loaded when it was checked.
        csrf_token: String,
        must_change_password: bool,
    },
}

impl Auth {
    /// Fails with 403 unless the caller holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<()> {
        if self.scopes().contains(&scope) {
            Ok(())
        } else {
            Err(Error::Forbidden(format!(
                "this needs the {} permission",
                scope.as_str()
            )))
        }
    }

    /// Fails with 403 unless the caller is a portal owner.
    pub fn require_owner(&self) -> Result<()> {
        match &self.principal {
            Principal::User {
                role: Role::Owner, ..
            } => Ok(()),
            _ => Err(Error::Forbidden(
                "only an owner of this tenant can do this".into(),
            )),
        }
    }

    pub fn scopes(&self) -> Vec<Scope> {
        match &self.principal {
            Principal::ApiKey { scopes, .. } => scopes.clone(),
            Principal::User { role, .. } => role_scopes(*role),
        }
    }

    /// How the audit log names the caller.
    pub fn actor(&self) -> String {
        match &self.principal {
            Principal::ApiKey { id, .. } => format!("api_key:{id}"),
            Principal::User { email, .. } => format!("user:{email}"),
        }
    }
}

/// Member reads history; admin also deletes, purges, edits settings, keys and knowledge; owner
/// also manages users and can delete the tenant (checked with [`Auth::require_owner`]).
pub fn role_scopes(role: Role) -> Vec<Scope> {
    match role {
        Role::Member => vec![Scope::HistoryRead],
        Role::Admin | Role::Owner => Scope::ALL.to_vec(),
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self> {
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .unwrap_or_default()
                .to_owned();
            let (tenant, scopes) = app
                .store
                .catalog
                .call(move |c| api_keys::authenticate(c, &token))
                .await?;
            let id = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer cvk_"))
                .and_then(|v| v.split('_').next())
                .unwrap_or_default()
                .to_owned();
            return Ok(Auth {
                pass: Arc::new(app.gates.enter(&tenant)?),
                tenant,
                principal: Principal::ApiKey { id, scopes },
            });
        }
        let Some(session_id) = session_cookie(&parts.headers) else {
            return Err(Error::Unauthorized("sign in or send an API key".into()));
        };
        let (idle, absolute) = (
            app.config.session_idle.as_millis() as i64,
            app.config.session_absolute.as_millis() as i64,
        );
        let session = app
            .store
            .catalog
            .call(move |c| users::session(c, &session_id, idle, absolute))
            .await?
            .ok_or_else(|| Error::Unauthorized("the session has ended; sign in again".into()))?;
        if is_mutation(&parts.method) {
            check_csrf(&parts.headers, &session.csrf_token)?;
        }
        if session.must_change_password && !parts.uri.path().starts_with("/v1/session") {
            return Err(Error::PasswordChangeRequired);
        }
        Ok(Auth {
            pass: Arc::new(app.gates.enter(&session.tenant)?),
            tenant: session.tenant,
            principal: Principal::User {
                email: session.email,
                role: session.role,
                csrf_token: session.csrf_token,
                must_change_password: session.must_change_password,
            },
        })
    }
}

pub fn is_mutation(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The CSRF header must equal the session's token, and `Origin` must be this server's own.
fn check_csrf(headers: &HeaderMap, expected: &str) -> Result<()> {
    let token = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !bool::from(token.as_bytes().ct_eq(expected.as_bytes())) {
        return Err(Error::Forbidden("missing or wrong CSRF token".into()));
    }
    if !same_origin(headers) {
        return Err(Error::Forbidden("cross-origin request refused".into()));
    }
    Ok(())
}

/// True when `Origin` names the host the request was sent to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host)) => {
            let origin = origin.trim_end_matches('/');
            origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(|o| o.eq_ignore_ascii_case(host))
        }
        _ => false,
    }
}

/// The session id from the `Cookie` header, if any.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| {
            crate::domain::split_routed(v).is_some_and(|(_, random)| {
                random.len() == 64 && random.bytes().all(|b| b.is_ascii_hexdigit())
            })
        })
}

/// `Set-Cookie` for a new session; `Secure` unless the server runs in demo mode on plain HTTP.
pub fn session_set_cookie(id: &str, max_age_secs: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}")
}

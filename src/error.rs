//! One error type for the whole crate. It knows its HTTP status and its stable error code; 5xx
//! bodies are opaque and their cause is logged once, here.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input from a caller; `code` is stable, `message` is safe to show.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// Signed in with a one-time password that must be changed before anything else.
    #[error("change your one-time password first")]
    PasswordChangeRequired,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("too many requests")]
    RateLimited { retry_after_ms: u64 },
    /// Operator configuration (flags, env, files) is unusable.
    #[error("{0}")]
    Config(String),
    /// A key does not open what it should (wrong master key, foreign or corrupted file).
    #[error("{0}")]
    Crypto(String),
    #[error("storage error: {0}")]
    Storage(#[from] rusqlite::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The process is shutting down or a worker thread is gone.
    #[error("{0}")]
    Unavailable(String),
    /// The tenant is being moved to another node; retry shortly (the load balancer will send
    /// the retry to the tenant's new node).
    #[error("this tenant is moving to another server; try again in a moment")]
    TenantMoving,
}

impl Error {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        Error::NotFound(format!("{what} not found"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Error::Invalid { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) | Error::PasswordChangeRequired => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable(_) | Error::Storage(_) | Error::Io(_) | Error::TenantMoving => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Error::Config(_) | Error::Crypto(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code sent to clients.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { code, .. } => code,
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::PasswordChangeRequired => "password_change_required",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::TooLarge(_) => "too_large",
            Error::RateLimited { .. } => "rate_limited",
            Error::Unavailable(_) | Error::Storage(_) | Error::Io(_) => "storage_unavailable",
            Error::TenantMoving => "tenant_moving",
            Error::Config(_) | Error::Crypto(_) => "internal",
        }
    }

    /// True when the database reported that the disk or quota is full.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::Storage(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DiskFull)
    }
}

/// The body of every error response: `{"error":{"code","message"}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

/// What went wrong: a stable machine-readable code and a message safe to show (opaque on 5xx).
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: &'static str,
    pub message: String,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error() && !matches!(self, Error::TenantMoving) {
            tracing::error!(error = %self, code = self.code(), "request failed");
            "the server could not complete the request".to_owned()
        } else {
            self.to_string()
        };
        let body = ErrorResponse {
            error: ErrorDetail {
                code: self.code(),
                message,
            },
        };
        let mut response = (status, Json(body)).into_response();
        let retry_after_ms = match self {
            Error::RateLimited { retry_after_ms } => Some(retry_after_ms),
            Error::TenantMoving => Some(crate::cluster::gates::RETRY_AFTER_MS),
            _ => None,
        };
        if let Some(retry_after_ms) = retry_after_ms {
            let secs = retry_after_ms.div_ceil(1000).max(1);
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

//! `Idempotency-Key` on mutations: the first response (status, type, body) is stored per
//! credential and key, and a repeat gets it back instead of acting again.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::catalog::idempotency::{self, Stored};
use crate::crypto;
use crate::error::Error;
use crate::http::auth::{self, is_mutation};

/// Responses bigger than this are not stored (and so not replayable).
const MAX_STORED_BODY: usize = 1024 * 1024;

pub async fn replay_or_record(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let key = request
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(key) = key.filter(|_| is_mutation(request.method())) else {
        return next.run(request).await;
    };
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Error::invalid(
            "invalid_idempotency_key",
            "Idempotency-Key is 1-255 visible ASCII characters",
        )
        .into_response();
    }
    // Scoped to the credential and the route, so one caller can never replay another's response.
    let credential = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| auth::session_cookie(request.headers()));
    let Some(credential) = credential else {
        return next.run(request).await;
    };
    let scope = crypto::hash_secret(&format!(
        "{credential}\n{} {}",
        request.method(),
        request.uri().path()
    ))
    .to_vec();
    let (lookup_scope, lookup_key) = (scope.clone(), key.clone());
    match app
        .store
        .catalog
        .call(move |c| idempotency::find(c, &lookup_scope, &lookup_key))
        .await
    {
        Ok(Some(stored)) => return replayed(stored),
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    let response = next.run(request).await;
    if response.status().is_server_error() {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_STORED_BODY).await else {
        return Error::Unavailable(
            "the response was too large to record for Idempotency-Key".into(),
        )
        .into_response();
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let stored = Stored {
        status: parts.status.as_u16(),
        content_type,
        body: bytes.to_vec(),
    };
    if let Err(e) = app
        .store
        .catalog
        .call(move |c| idempotency::store(c, &scope, &key, &stored))
        .await
    {
        tracing::warn!(error = %e, "could not record an idempotent response");
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn replayed(stored: Stored) -> Response {
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    if let Ok(value) = HeaderValue::from_str(&stored.content_type)
        && !stored.content_type.is_empty()
    {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
        .headers_mut()
        .insert("idempotent-replayed", HeaderValue::from_static("true"));
    response
}

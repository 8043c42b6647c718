//! Observability at the HTTP edge: a request id on every request (taken from a well-formed
//! incoming `x-request-id`, else made fresh), a tracing span carrying it, one log line per
//! request (method, path, status, duration, client IP — never a query string or a body), the
//! response counters, and `GET /metrics`.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;

use crate::app::AppState;
use crate::metrics::Gauges;

/// The header that carries the request id both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// Middleware: request id, span, log line, response counters.
pub async fn observe(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_safe_id(v))
        .map_or_else(fresh_id, str::to_owned);
    let value = HeaderValue::from_str(&id).expect("request ids are visible ASCII");
    request.headers_mut().insert(REQUEST_ID, value.clone());
    let client_ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_string())
        .unwrap_or_default();
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    app.metrics.http_response(status);
    span.in_scope(|| {
        tracing::info!(
            status,
            duration_ms = started.elapsed().as_millis() as u64,
            client_ip,
            "request"
        );
    });
    response.headers_mut().insert(REQUEST_ID, value);
    response
}

/// `GET /metrics`: Prometheus text format, version 0.0.4.
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let sweeper = app.sweeper.status(app.config.retention.stall_after);
    let gauges = Gauges {
        sockets_open: app.sockets.open(),
        open_tenant_files: app.store.vault.open_files(),
        sweeper_stalled: sweeper.stalled,
        sweeper_last_run: sweeper
            .last_run
            .as_deref()
            .and_then(|at| humantime::parse_rfc3339_weak(at).ok())
            .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64()),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(&gauges),
    )
}

/// 1–64 characters of `[A-Za-z0-9._-]`: safe to echo and to log.
fn is_safe_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn fresh_id() -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    hex::encode(bytes)
}

//! The HTTP surface: health, the widget script, the demo page and the widget socket, with the
//! security headers and rate limits every response gets.

mod api;
pub mod auth;
pub mod client_ip;
pub mod extract;
mod health;
mod idempotency;
mod pages;
mod portal;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::get;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;

use crate::app::AppState;
use crate::gateway;
use client_ip::ClientIpKey;

/// Every route of the server.
pub fn router(app: AppState) -> Router {
    let key = ClientIpKey {
        trusted: Arc::new(app.config.trusted_proxies.clone()),
    };
    let per_minute = u64::from(app.config.handshakes_per_minute.max(1));
    let handshake_limit = GovernorConfigBuilder::default()
        .per_millisecond((60_000 / per_minute).max(1))
        .burst_size(u32::try_from(per_minute).unwrap_or(u32::MAX))
        .key_extractor(key)
        .finish()
        .expect("the handshake rate limit is non-zero");
    let handshake_limiter = handshake_limit.limiter().clone();
    tokio::spawn(async move {
        // Bound the per-IP map: forget IPs whose buckets have refilled.
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            handshake_limiter.retain_recent();
        }
    });

    let widget_socket = Router::new()
        .route("/v1/widget/ws", get(gateway::handshake))
        .layer(GovernorLayer::new(handshake_limit));

    let mut router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/portal", get(portal::page))
        .route("/portal/portal.js", get(portal::script))
        .route("/portal/portal.css", get(portal::stylesheet))
        .route("/widget.js", get(pages::widget_js))
        .merge(widget_socket)
        .merge(api::router(app.clone()))
        .fallback(not_found);
    if app.config.demo {
        router = router.route("/", get(pages::demo_page));
    }
    router
        .layer(axum::middleware::map_response(security_headers))
        .with_state(app)
}

async fn not_found() -> crate::error::Error {
    crate::error::Error::not_found("route")
}

async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; frame-ancestors 'none'",
        ));
    response
}

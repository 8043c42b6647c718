//! The HTTP surface: health, the widget script, the demo page and the widget socket, with the
//! security headers and rate limits every response gets.

mod api;
pub mod auth;
pub mod client_ip;
pub mod extract;
mod health;
mod idempotency;
pub mod observe;
mod openapi;
mod ops;
mod pages;
mod portal;
pub mod server;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
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
    let handshake_limit = per_ip_limit(key.clone(), app.config.handshakes_per_minute);
    let request_limit = per_ip_limit(key, app.config.http_requests_per_minute);

    let widget_socket = Router::new()
        .route("/v1/widget/ws", get(gateway::handshake))
        .layer(limit_layer(handshake_limit));

    let mut router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(observe::metrics))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/portal", get(portal::page))
        .route("/portal/portal.js", get(portal::script))
        .route("/portal/portal.css", get(portal::stylesheet))
        .route("/widget.js", get(pages::widget_js))
        .merge(widget_socket)
        .merge(api::router(app.clone()))
        .merge(ops::router())
        .fallback(not_found);
    if app.config.demo {
        router = router.route("/", get(pages::demo_page));
    }
    if app.config.tls.is_some() {
        router = router.layer(axum::middleware::map_response(strict_transport_security));
    }
    router
        .layer(limit_layer(request_limit))
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            observe::observe,
        ))
        .with_state(app)
}

type IpLimit = Arc<
    tower_governor::governor::GovernorConfig<
        ClientIpKey,
        governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>,
    >,
>;

/// A per-client-IP limit of `per_minute` requests (also the burst), whose key map is pruned of
/// refilled buckets every minute so it stays bounded.
fn per_ip_limit(key: ClientIpKey, per_minute: u32) -> IpLimit {
    let per_minute = u64::from(per_minute.max(1));
    let config = GovernorConfigBuilder::default()
        .per_millisecond((60_000 / per_minute).max(1))
        .burst_size(u32::try_from(per_minute).unwrap_or(u32::MAX))
        .key_extractor(key)
        .finish()
        .expect("a per-minute limit of at least 1 is valid");
    let limiter = config.limiter().clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            limiter.retain_recent();
        }
    });
    Arc::new(config)
}

/// The limit as a layer that answers in our error shape with `Retry-After`.
fn limit_layer(
    config: IpLimit,
) -> GovernorLayer<
    ClientIpKey,
    governor::middleware::NoOpMiddleware<governor::clock::QuantaInstant>,
    axum::body::Body,
> {
    GovernorLayer::new(config).error_handler(|error| match error {
        tower_governor::GovernorError::TooManyRequests { wait_time, .. } => {
            crate::error::Error::RateLimited {
                retry_after_ms: wait_time.saturating_mul(1000).max(1000),
            }
            .into_response()
        }
        _ => crate::error::Error::Unauthorized("the client address could not be determined".into())
            .into_response(),
    })
}

/// Served over TLS: browsers keep to HTTPS for this host for a year.
async fn strict_transport_security(
    mut response: axum::response::Response,
) -> axum::response::Response {
    response.headers_mut().insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    response
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

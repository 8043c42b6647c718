//! The widget WebSocket (CONTRACT §3): the handshake checks (key, origin, rate) before any
//! upgrade, then one [`session`] per socket that accepts only submitted messages.

pub mod capacity;
pub mod frames;
mod reply;
mod session;

pub use reply::utc_day;

use std::net::SocketAddr;

use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::catalog::tenants;
use crate::domain::{Origin, WidgetKey};
use crate::error::Error;
use crate::http::client_ip::client_ip;

/// Largest message a widget may send; a bigger one gets `too_large` and a 1009 close.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// The transport's own hard limit. Twice the protocol limit, so a slightly oversized message is
/// still read whole and refused with a clean close handshake; beyond this the socket is dropped.
const TRANSPORT_LIMIT_BYTES: usize = 2 * MAX_FRAME_BYTES;

/// `GET /v1/widget/ws?key=…`: 401 for an unknown key, 403 for a missing or foreign `Origin`,
/// then the upgrade with small buffers and a bounded write queue.
pub async fn handshake(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let key = query
        .as_deref()
        .and_then(|q| url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "key"))
        .and_then(|(_, v)| WidgetKey::parse(&v));
    let Some(key) = key else {
        return Error::Unauthorized("unknown widget key".into()).into_response();
    };
    let tenant = match app
        .store
        .catalog
        .call(move |c| tenants::tenant_for_widget_key(c, &key))
        .await
    {
        Ok(Some(tenant)) => tenant,
        Ok(None) => return Error::Unauthorized("unknown widget key".into()).into_response(),
        Err(e) => return e.into_response(),
    };
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Origin::parse(v).ok());
    let allowed =
        origin.is_some_and(|o| tenant.origins.iter().any(|allowed| allowed == o.as_str()));
    if !allowed {
        tracing::info!(tenant = %tenant.id, "widget handshake refused: origin not allowed");
        return Error::Forbidden("this origin is not allowed for this widget key".into())
            .into_response();
    }
    let tenant_id = match crate::domain::TenantId::parse(&tenant.id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let pass = match app.gates.enter(&tenant_id) {
        Ok(pass) => pass,
        Err(e) => return e.into_response(),
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let ip = client_ip(peer.ip(), &headers, &app.config.trusted_proxies);
    let slot = match app
        .sockets
        .acquire(ip, app.config.max_sockets, app.config.max_sockets_per_ip)
    {
        Ok(slot) => slot,
        Err(refused) => {
            tracing::warn!(tenant = %tenant.id, client_ip = %ip, reason = ?refused, "widget handshake refused: socket limit");
            return match refused {
                capacity::Refused::ServerFull => {
                    Error::Unavailable("the server is at its socket limit".into()).into_response()
                }
                capacity::Refused::TooManyFromClient => Error::RateLimited {
                    retry_after_ms: 10_000,
                }
                .into_response(),
            };
        }
    };
    // The widget connects only when the visitor sends, so the first frame is on its way: open the
    // tenant's file while the upgrade and the hello travel.
    app.store.vault.warm(&tenant_id);
    let sessions = app.sessions.clone();
    upgrade
        .max_message_size(TRANSPORT_LIMIT_BYTES)
        .max_frame_size(TRANSPORT_LIMIT_BYTES)
        .read_buffer_size(4 * 1024)
        // Frames fed without a flush (a burst of deltas) collect up to this before a write.
        .write_buffer_size(4 * 1024)
        .max_write_buffer_size(256 * 1024)
        .on_upgrade(move |socket| {
            sessions.track_future(async move {
                session::run(socket, app, tenant, ip, pass).await;
                drop(slot);
            })
        })
}

//! The customer HTTP API under `/v1` (CONTRACT §5). Every route authenticates with an API key or
//! a portal session, acts only inside the caller's tenant, and answers errors in one shape.

mod account;
mod conversations;
mod documents;
mod session;
mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::routing::{delete, get, patch, post, put};

use crate::app::AppState;

/// Largest request body the API accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn router(app: AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/v1/conversations",
            get(conversations::list).delete(conversations::purge),
        )
        .route(
            "/v1/conversations/{id}",
            get(conversations::get).delete(conversations::delete_one),
        )
        .route("/v1/export", get(conversations::export))
        .route(
            "/v1/usage",
            get(account::get_usage).delete(account::reset_usage),
        )
        .route(
            "/v1/settings",
            get(account::get_settings).patch(account::patch_settings),
        )
        .route("/v1/audit", get(account::get_audit))
        .route(
            "/v1/api-keys",
            post(account::create_key).get(account::list_keys),
        )
        .route("/v1/api-keys/{id}", delete(account::revoke_key))
        .route(
            "/v1/session",
            post(session::login)
                .get(session::me)
                .delete(session::logout),
        )
        .route("/v1/session/password", post(session::change_password))
        .route(
            "/v1/users",
            post(session::add_user).get(session::list_users),
        )
        .route(
            "/v1/users/{email}",
            patch(session::set_role).delete(session::remove_user),
        )
        .route("/v1/tenant", delete(session::delete_tenant))
        .route(
            "/v1/webhook",
            put(webhooks::set)
                .get(webhooks::get)
                .delete(webhooks::remove),
        )
        .route("/v1/webhook/deliveries", get(webhooks::deliveries))
        .route(
            "/v1/documents",
            post(documents::upload)
                .get(documents::list)
                .delete(documents::purge),
        )
        .route(
            "/v1/documents/{id}",
            get(documents::get).delete(documents::delete_one),
        )
        .layer(axum::middleware::from_fn_with_state(
            app,
            crate::http::idempotency::replay_or_record,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(no_store))
}

/// History and settings must never sit in a shared or browser cache.
async fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

//! The customer HTTP API under `/v1` (CONTRACT §5). Every route authenticates with an API key or
//! a portal session, acts only inside the caller's tenant, and answers errors in one shape.

pub mod account;
pub mod conversations;
pub mod documents;
pub mod keys;
pub mod session;
pub mod users;
pub mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{HeaderValue, header};
use axum::routing::{MethodFilter, on};
use utoipa::openapi::HttpMethod;

use crate::app::AppState;

/// Largest request body the API accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn router(app: AppState) -> Router<AppState> {
    routes()
        .router
        .layer(axum::middleware::from_fn_with_state(
            app,
            crate::http::idempotency::replay_or_record,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(no_store))
}

/// Every operation of the API. Each is routed at the method and path of its `#[utoipa::path]`
/// (the `__path_*` type that attribute generates), so the router serves what the OpenAPI
/// document says; `openapi.rs` tests that the document lists each of them.
pub(crate) fn routes() -> Routes {
    use webhooks as w;
    use {account as a, conversations as c, documents as d, keys as k, session as s, users as u};
    Routes::default()
        .add(c::__path_list, c::list)
        .add(c::__path_purge, c::purge)
        .add(c::__path_get, c::get)
        .add(c::__path_delete_one, c::delete_one)
        .add(c::__path_export, c::export)
        .add(a::__path_get_usage, a::get_usage)
        .add(a::__path_reset_usage, a::reset_usage)
        .add(a::__path_get_settings, a::get_settings)
        .add(a::__path_patch_settings, a::patch_settings)
        .add(a::__path_get_audit, a::get_audit)
        .add(k::__path_create_key, k::create_key)
        .add(k::__path_list_keys, k::list_keys)
        .add(k::__path_revoke_key, k::revoke_key)
        .add(s::__path_login, s::login)
        .add(s::__path_me, s::me)
        .add(s::__path_logout, s::logout)
        .add(s::__path_change_password, s::change_password)
        .add(u::__path_add_user, u::add_user)
        .add(u::__path_list_users, u::list_users)
        .add(u::__path_set_role, u::set_role)
        .add(u::__path_remove_user, u::remove_user)
        .add(u::__path_delete_tenant, u::delete_tenant)
        .add(w::__path_set, w::set)
        .add(w::__path_get, w::get)
        .add(w::__path_remove, w::remove)
        .add(w::__path_deliveries, w::deliveries)
        .add(d::__path_upload, d::upload)
        .add(d::__path_list, d::list)
        .add(d::__path_purge, d::purge)
        .add(d::__path_get, d::get)
        .add(d::__path_delete_one, d::delete_one)
}

/// The API's router and its table of `(method, path)` pairs, built together.
#[derive(Default)]
pub(crate) struct Routes {
    router: Router<AppState>,
    /// `(method, path)` of each route, the method in lower case as OpenAPI spells it.
    pub table: Vec<(&'static str, String)>,
}

impl Routes {
    /// Routes `handler` where the operation `_doc` documents it.
    fn add<P: utoipa::Path, H: Handler<T, AppState>, T: 'static>(
        mut self,
        _doc: P,
        handler: H,
    ) -> Self {
        let path = P::path();
        let methods: Vec<_> = P::methods().iter().map(method).collect();
        let filter = methods
            .iter()
            .map(|(filter, _)| *filter)
            .reduce(MethodFilter::or)
            .expect("every documented operation has a method");
        self.router = self.router.route(&path, on(filter, handler));
        self.table
            .extend(methods.into_iter().map(|(_, name)| (name, path.clone())));
        self
    }
}

fn method(method: &HttpMethod) -> (MethodFilter, &'static str) {
    match method {
        HttpMethod::Get => (MethodFilter::GET, "get"),
        HttpMethod::Post => (MethodFilter::POST, "post"),
        HttpMethod::Put => (MethodFilter::PUT, "put"),
        HttpMethod::Delete => (MethodFilter::DELETE, "delete"),
        HttpMethod::Options => (MethodFilter::OPTIONS, "options"),
        HttpMethod::Head => (MethodFilter::HEAD, "head"),
        HttpMethod::Patch => (MethodFilter::PATCH, "patch"),
        HttpMethod::Trace => (MethodFilter::TRACE, "trace"),
    }
}

/// History and settings must never sit in a shared or browser cache.
async fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

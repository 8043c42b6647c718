//! The customer portal: one HTML page, its script and its stylesheet, compiled into the binary.
//! The page holds no data itself; it reads everything from `/v1` with the session cookie.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("portal/index.html");
const PORTAL_JS: &str = include_str!("portal/portal.js");
const PORTAL_CSS: &str = include_str!("portal/portal.css");

/// Only this server's own script, styles and API: no inline code, no third party, no framing.
const PORTAL_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
    img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// `GET /portal`.
pub async fn page() -> Response {
    let mut response = asset(INDEX_HTML, "text/html; charset=utf-8");
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PORTAL_CSP),
    );
    response
}

/// `GET /portal/portal.js`.
pub async fn script() -> Response {
    asset(PORTAL_JS, "text/javascript; charset=utf-8")
}

/// `GET /portal/portal.css`.
pub async fn stylesheet() -> Response {
    asset(PORTAL_CSS, "text/css; charset=utf-8")
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The page shows history once signed in; never let a shared or browser cache keep any of it.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

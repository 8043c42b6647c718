//! Static assets compiled into the binary: the widget script and the demo customer page.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};

use crate::app::AppState;

/// The embeddable widget (`widget/chatvault.js`), served verbatim.
pub const WIDGET_JS: &str = include_str!("../../widget/chatvault.js");

pub async fn widget_js() -> Response {
    let mut response = WIDGET_JS.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    // Host pages on other origins load this script; it must not be blocked by CORP.
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    response
}

/// A sample customer page embedding the widget for the demo tenant (demo mode only).
pub async fn demo_page(State(app): State<AppState>) -> Response {
    let key = demo_widget_key(&app).await.unwrap_or_default();
    let page = DEMO_PAGE.replace("{{WIDGET_KEY}}", &key);
    let mut response = Html(page).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"),
    );
    response
}

async fn demo_widget_key(app: &AppState) -> Option<String> {
    let id = crate::domain::TenantId::parse(crate::cli::demo::DEMO_TENANT).ok()?;
    app.store
        .catalog
        .call(move |c| crate::catalog::tenants::widget_keys(c, &id))
        .await
        .ok()?
        .into_iter()
        .next()
}

const DEMO_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Acme Outdoor Supply — chatvault demo</title>
<style>
  body { font: 16px/1.6 system-ui, sans-serif; margin: 0; color: #1f2937; background: #f8fafc; }
  header { background: #14532d; color: #fff; padding: 2rem 1.5rem; }
  main { max-width: 44rem; margin: 0 auto; padding: 1.5rem; }
  code { background: #e5e7eb; padding: .1rem .3rem; border-radius: 4px; }
  .note { border-left: 4px solid #14532d; background: #fff; padding: .75rem 1rem; }
</style>
</head>
<body>
<header><h1>Acme Outdoor Supply</h1><p>Tents, stoves and trail gear since 1998.</p></header>
<main>
  <p class="note">This is a sample customer page served by <code>chatvault demo</code>. The chat
  button in the corner is the whole widget: one <code>&lt;script&gt;</code> tag. Nothing is sent
  to the server until you press send; your conversation is stored encrypted in this tenant's own
  SQLCipher file.</p>
  <h2>Our store</h2>
  <p>Free shipping on orders over $50. Returns accepted within 30 days with receipt.</p>
  <p>Open Monday to Saturday, 9am to 6pm.</p>
</main>
<script src="/widget.js" data-key="{{WIDGET_KEY}}" data-title="Acme help" data-greeting="Hi! Ask me anything about our store." async></script>
</body>
</html>
"#;

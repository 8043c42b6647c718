//! `/healthz` (the process answers) and `/readyz` (the catalog can be read).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::app::AppState;

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    let catalog = app
        .store
        .catalog
        .call(|c| Ok(c.query_row("SELECT count(*) FROM tenants", [], |r| r.get::<_, i64>(0))?))
        .await;
    match catalog {
        Ok(tenants) => (
            StatusCode::OK,
            Json(
                serde_json::json!({ "ready": true, "tenants": tenants, "open_tenant_files": app.store.vault.open_files() }),
            ),
        ),
        Err(e) => {
            tracing::error!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "ready": false, "catalog": "unreadable" })),
            )
        }
    }
}

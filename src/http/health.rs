//! `/healthz` (the process answers) and `/readyz` (the catalog can be read, and the retention
//! sweeper has completed a pass recently).

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
    let retention = app.sweeper.status(app.config.retention.stall_after);
    match catalog {
        Ok(tenants) => (
            if retention.stalled {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            },
            Json(
                serde_json::json!({ "ready": !retention.stalled, "tenants": tenants, "open_tenant_files": app.store.vault.open_files(), "retention": retention }),
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

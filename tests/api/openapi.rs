//! The OpenAPI 3.1 document at `/v1/openapi.json` describes the live API: schemathesis (PyPI,
//! installed by `scripts/test`) fuzzes every documented operation with a real API key and finds
//! no server error and no response that breaks the schema.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn the_document_is_openapi_3_1_and_lists_the_customer_api() {
    let app = spawn_app_with(|_| {}).await;
    let doc: Value = reqwest::get(app.http("/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/v1/conversations",
        "/v1/conversations/{id}",
        "/v1/export",
        "/v1/settings",
        "/v1/usage",
        "/v1/audit",
        "/v1/api-keys",
        "/v1/documents",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["session"]["in"],
        "cookie"
    );
    assert_eq!(doc["components"]["securitySchemes"]["csrf"]["in"], "header");
    app.stop().await;
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let app = spawn_app_with(|c| c.http_requests_per_minute = 1_000_000).await;
    let mut widget = app.widget().await;
    widget
        .exchange("seed", "a conversation so reads find something")
        .await;
    drop(widget);
    let base = format!("http://{}", app.addr);
    let report = tempfile::tempdir().unwrap();
    let mut command = Command::new("schemathesis");
    command
        .arg("run")
        .arg(format!("{base}/v1/openapi.json"))
        .args(["--url", &base])
        .args([
            "--header",
            &format!("Authorization: Bearer {}", app.acme.api_key),
        ])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
        ])
        .args([
            "--max-examples",
            "25",
            "--seed",
            "20261125",
            "--workers",
            "1",
            "--no-color",
        ])
        // One worker: with two, an export racing a purge was once cut off mid-stream (reported),
        // and hypothesis on CPython 3.11 can trip over its own threads (an AST SystemError).
        // Revoking keys listed by GET /v1/api-keys would revoke the fuzzer's own key.
        .args(["--exclude-operation-id", "revoke_key"])
        .args(["--request-timeout", "10", "--max-time", "40"])
        .args(["--report-dir"])
        .arg(report.path())
        .env("SCHEMATHESIS_HOOKS", "")
        .env("NO_COLOR", "1");
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("schemathesis is installed (scripts/test installs it from PyPI)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The key still works: nothing the fuzzer did broke the tenant.
    let response = reqwest::Client::new()
        .get(app.http("/v1/settings"))
        .bearer_auth(&app.acme.api_key)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    app.stop().await;
}

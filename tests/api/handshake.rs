//! Every way a widget handshake is refused before the upgrade.

use crate::helpers::{ORIGIN, spawn_app, spawn_app_with};

#[tokio::test]
async fn an_unknown_or_missing_key_is_401() {
    let app = spawn_app().await;
    let unknown = format!("wk_{}", "0".repeat(32));
    for key in [unknown.as_str(), "", "not-a-key", "wk_../../etc"] {
        assert_eq!(
            app.widget_for(key, Some(ORIGIN)).await.err(),
            Some(401),
            "key {key:?}"
        );
    }
    let plain = reqwest::get(app.http("/v1/widget/ws")).await.unwrap();
    assert_eq!(plain.status(), 401);
}

#[tokio::test]
async fn a_missing_or_foreign_origin_is_403() {
    let app = spawn_app().await;
    let key = app.acme.widget_key.clone();
    for origin in [
        None,
        Some("https://acme.example.evil.net"),
        Some("http://acme.example"),
        Some("https://acme.example:8443"),
        Some("null"),
        Some("https://evil.example"),
    ] {
        assert_eq!(
            app.widget_for(&key, origin).await.err(),
            Some(403),
            "origin {origin:?}"
        );
    }
    assert!(
        app.widget_for(&key, Some("https://acme.example:443"))
            .await
            .is_ok(),
        "default port is the same origin"
    );
}

#[tokio::test]
async fn another_tenants_origin_does_not_open_this_tenants_widget() {
    let app = spawn_app().await;
    crate::helpers::create_tenant(&app.store, "other", "https://other.example").await;
    assert_eq!(
        app.widget_for(&app.acme.widget_key, Some("https://other.example"))
            .await
            .err(),
        Some(403)
    );
}

#[tokio::test]
async fn too_many_handshakes_from_one_client_is_429() {
    let app = spawn_app_with(|c| c.handshakes_per_minute = 3).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            app.widget_for(&app.acme.widget_key, Some(ORIGIN))
                .await
                .err()
                .unwrap_or(101),
        );
    }
    assert_eq!(statuses, [101, 101, 101, 429, 429]);
}

#[tokio::test]
async fn a_refused_handshake_writes_nothing() {
    let app = spawn_app().await;
    // The retention sweeper's first pass opens every tenant file; let it finish first.
    for _ in 0..100 {
        let ready: serde_json::Value = reqwest::get(app.http("/readyz"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ready["retention"]["last_run"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let tenant_files = || {
        ["acme.db", "acme.db-wal"].map(|f| std::fs::read(app.data_dir.join(f)).unwrap_or_default())
    };
    let before = tenant_files();
    let _ = app
        .widget_for(&app.acme.widget_key, Some("https://evil.example"))
        .await;
    assert!(
        tenant_files() == before,
        "a refused handshake changed the tenant's files"
    );
}

//! Holding under hostile clients: socket caps, per-IP request limits, slow headers, oversized
//! heads and bodies.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{ORIGIN, spawn_app_with};

#[tokio::test]
async fn sockets_beyond_the_per_ip_cap_are_refused_at_the_handshake() {
    let app = spawn_app_with(|c| c.max_sockets_per_ip = 3).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(app.widget().await);
    }
    assert_eq!(
        app.widget_for(&app.acme.widget_key, Some(ORIGIN))
            .await
            .err(),
        Some(429)
    );
    drop(open.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        app.widget_for(&app.acme.widget_key, Some(ORIGIN))
            .await
            .is_ok(),
        "a closed socket frees its place"
    );
}

#[tokio::test]
async fn sockets_beyond_the_global_cap_get_503() {
    let app = spawn_app_with(|c| c.max_sockets = 2).await;
    let _a = app.widget().await;
    let _b = app.widget().await;
    assert_eq!(
        app.widget_for(&app.acme.widget_key, Some(ORIGIN))
            .await
            .err(),
        Some(503)
    );
}

#[tokio::test]
async fn every_route_is_rate_limited_per_client_ip_in_our_error_shape() {
    let app = spawn_app_with(|c| c.http_requests_per_minute = 5).await;
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(
            reqwest::get(app.http("/healthz"))
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    let limited = reqwest::get(app.http("/v1/conversations")).await.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
}

#[tokio::test]
async fn a_client_that_sends_headers_too_slowly_is_disconnected() {
    let app =
        spawn_app_with(|c| c.transport.header_read_timeout = Duration::from_millis(500)).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the server hung up on the slow client");
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
}

#[tokio::test]
async fn oversized_heads_and_bodies_are_refused() {
    let app = spawn_app_with(|_| {}).await;
    let huge_header = "x".repeat(64 * 1024);
    let response = reqwest::Client::new()
        .get(app.http("/healthz"))
        .header("x-filler", huge_header)
        .send()
        .await;
    assert!(
        response
            .map(|r| r.status().as_u16() == 431 || r.status().is_client_error())
            .unwrap_or(true),
        "a 64 KiB header is not served"
    );
    let body = "x".repeat(2 * 1024 * 1024);
    let response = reqwest::Client::new()
        .patch(app.http("/v1/settings"))
        .bearer_auth(&app.acme.api_key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

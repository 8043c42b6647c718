//! Webhooks: signed deliveries of message and erase events, content only on opt-in, retries,
//! and the delivery log.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{Value, json};

use crate::customer_api::Api;
use crate::helpers::{TestApp, spawn_app};

#[derive(Default)]
struct Received {
    requests: Mutex<Vec<(HeaderMap, Bytes)>>,
    statuses: Mutex<VecDeque<u16>>,
}

async fn receive(
    State(state): State<Arc<Received>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    state.requests.lock().unwrap().push((headers, body));
    let status = state.statuses.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

async fn receiver() -> (String, Arc<Received>) {
    let state = Arc::new(Received::default());
    let router = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, state)
}

async fn wait_for(state: &Received, n: usize) -> Vec<(HeaderMap, Bytes)> {
    for _ in 0..100 {
        if state.requests.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    state.requests.lock().unwrap().clone()
}

async fn set_webhook(app: &TestApp, url: &str, include_content: bool) -> String {
    let (status, body) = Api::new(app, &app.acme.api_key)
        .send(
            Method::PUT,
            "/v1/webhook",
            Some(json!({"url": url, "include_content": include_content})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["secret"].as_str().unwrap().to_owned()
}

fn verify(headers: &HeaderMap, body: &[u8], secret: &str) -> Value {
    let signature = headers["x-chatvault-signature"].to_str().unwrap();
    let timestamp: u64 = signature
        .split(',')
        .next()
        .unwrap()
        .strip_prefix("t=")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        signature,
        chatvault::webhooks::signature(secret, timestamp, body),
        "the signature checks out"
    );
    let payload: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        headers["x-chatvault-delivery"].to_str().unwrap(),
        payload["id"].as_str().unwrap()
    );
    payload
}

#[tokio::test]
async fn message_and_erase_events_are_signed_and_carry_no_text_by_default() {
    let app = spawn_app().await;
    let (url, received) = receiver().await;
    let secret = set_webhook(&app, &url, false).await;
    let mut widget = app.widget().await;
    widget.exchange("a", "WEBHOOK-CANARY text").await;
    widget.send(json!({"type": "erase"})).await;
    widget.next().await;
    let requests = wait_for(&received, 3).await;
    let payloads: Vec<Value> = requests
        .iter()
        .map(|(h, b)| verify(h, b, &secret))
        .collect();
    let events: Vec<(&str, Option<&str>)> = payloads
        .iter()
        .map(|p| {
            (
                p["event"].as_str().unwrap(),
                p["data"]["message"]["role"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("conversation.message", Some("visitor")),
            ("conversation.message", Some("assistant")),
            ("conversation.erased", None)
        ]
    );
    assert!(
        requests
            .iter()
            .all(|(_, b)| !String::from_utf8_lossy(b).contains("WEBHOOK-CANARY"))
    );
    assert!(
        payloads[0]["data"]["message"]["id"]
            .as_str()
            .unwrap()
            .starts_with("m_")
    );
    let (_, log) = Api::new(&app, &app.acme.api_key)
        .get("/v1/webhook/deliveries")
        .await;
    assert_eq!(log["deliveries"].as_array().unwrap().len(), 3);
    assert!(
        log["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "delivered")
    );
}

#[tokio::test]
async fn a_webhook_set_after_messages_without_one_receives_the_next_events() {
    let app = spawn_app().await;
    let (url, received) = receiver().await;
    let mut widget = app.widget().await;
    // Events of a tenant without an endpoint are dropped (and the server remembers that it
    // has none); setting one must bring its events back.
    widget.exchange("before", "no webhook yet").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let secret = set_webhook(&app, &url, false).await;
    widget.exchange("after", "with a webhook").await;
    let requests = wait_for(&received, 2).await;
    assert_eq!(requests.len(), 2, "the visitor message and the reply");
    for (headers, body) in &requests {
        assert_eq!(
            verify(headers, body, &secret)["event"],
            "conversation.message"
        );
    }
}

#[tokio::test]
async fn text_is_included_only_when_the_tenant_opts_in() {
    let app = spawn_app().await;
    let (url, received) = receiver().await;
    let secret = set_webhook(&app, &url, true).await;
    app.widget().await.exchange("a", "opted in words").await;
    let requests = wait_for(&received, 2).await;
    let first = verify(&requests[0].0, &requests[0].1, &secret);
    assert_eq!(first["data"]["message"]["text"], "opted in words");
}

#[tokio::test]
async fn a_failed_delivery_is_retried_and_logged() {
    let app = spawn_app().await;
    let (url, received) = receiver().await;
    received.statuses.lock().unwrap().push_back(500);
    set_webhook(&app, &url, false).await;
    let api = Api::new(&app, &app.acme.api_key);
    let id = crate::customer_api::chat(&app, &["x"]).await.remove(0);
    received.statuses.lock().unwrap().clear();
    api.send(Method::DELETE, &format!("/v1/conversations/{id}"), None)
        .await;
    let requests = wait_for(&received, 4).await;
    assert!(requests.len() >= 4, "the failed delivery was tried again");
    let first_id = requests[0].0["x-chatvault-delivery"].clone();
    assert_eq!(
        requests
            .iter()
            .filter(|(h, _)| h["x-chatvault-delivery"] == first_id)
            .count(),
        2,
        "same delivery id on the retry"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, log) = api.get("/v1/webhook/deliveries").await;
    let retried = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == first_id.to_str().unwrap())
        .unwrap()
        .clone();
    assert_eq!(
        (retried["status"].as_str(), retried["attempts"].as_i64()),
        (Some("delivered"), Some(2))
    );
}

#[tokio::test]
async fn only_https_or_local_urls_are_accepted_and_removal_stops_deliveries() {
    let app = spawn_app().await;
    let api = Api::new(&app, &app.acme.api_key);
    for bad in [
        "http://example.com/hook",
        "ftp://x",
        "not a url",
        "https://user:pw@example.com/",
    ] {
        assert_eq!(
            api.send(Method::PUT, "/v1/webhook", Some(json!({"url": bad})))
                .await
                .0,
            400,
            "{bad}"
        );
    }
    let (url, received) = receiver().await;
    set_webhook(&app, &url, false).await;
    assert_eq!(api.get("/v1/webhook").await.1["url"], url.as_str());
    assert_eq!(api.send(Method::DELETE, "/v1/webhook", None).await.0, 204);
    crate::customer_api::chat(&app, &["quiet"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(received.requests.lock().unwrap().is_empty());
}

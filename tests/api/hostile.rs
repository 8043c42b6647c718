//! Hostile values sent to every HTTP route and every frame type: never a 5xx or a panic, the
//! right 4xx or error code, and nothing stored.

use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{TestApp, spawn_app};

fn hostile_strings() -> Vec<String> {
    let mut values: Vec<String> = [
        "../../../../etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "' OR 1=1 --",
        "\"; DROP TABLE conversations; --",
        "\u{0000}",
        "a\u{0000}b",
        "%00",
        "${jndi:ldap://x}",
        "<script>alert(1)</script>",
        "\u{FB01}",
        "A\u{030A}",
        "\u{212B}",
        "\u{202E}evil",
        "NaN",
        "-1",
        "1e400",
        "18446744073709551616",
        "-9223372036854775809",
        "",
        " ",
        "c_00000000000000000000000000000000",
        "*",
        "\"",
        "\\",
        "💩",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    values.push("x".repeat(1024 * 1024));
    values
}

fn hostile_json() -> Vec<Value> {
    let mut values: Vec<Value> = hostile_strings().into_iter().map(Value::String).collect();
    values.extend([
        json!(null),
        json!(-1),
        json!(1e300),
        json!(u64::MAX),
        json!(i64::MIN),
        json!([]),
        json!({}),
        json!([[[[]]]]),
        json!(true),
    ]);
    values
}

/// One client for the whole table (building a client per request costs more than the request).
static CLIENT: std::sync::LazyLock<reqwest::Client> =
    std::sync::LazyLock::new(reqwest::Client::new);

async fn call(app: &TestApp, method: Method, path: &str, body: Option<Vec<u8>>) -> u16 {
    let mut request = CLIENT
        .request(method.clone(), app.http(path))
        .bearer_auth(&app.acme.api_key);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    match request.send().await {
        Ok(response) => response.status().as_u16(),
        Err(e) if e.is_request() || e.is_body() => 400, // refused before a response (e.g. an invalid URL)
        Err(e) => panic!("{method} {path}: {e}"),
    }
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[tokio::test]
async fn hostile_values_on_every_route_never_cause_a_server_error() {
    let app = spawn_app().await;
    let mut failures = Vec::new();
    let mut check = |what: String, status: u16| {
        if status >= 500 {
            failures.push(format!("{status} for {what}"));
        }
    };
    for value in hostile_strings().iter().take(25) {
        let v = encode(value);
        for path in [
            format!("/v1/conversations?q={v}"),
            format!("/v1/conversations?cursor={v}"),
            format!("/v1/conversations?limit={v}"),
            format!("/v1/conversations?from={v}&to={v}"),
            format!("/v1/conversations/{v}"),
            format!("/v1/export?format={v}"),
            format!("/v1/audit?format={v}&days={v}"),
            format!("/v1/widget/ws?key={v}"),
            format!("/{v}"),
        ] {
            check(
                format!("GET {path:.80}"),
                call(&app, Method::GET, &path, None).await,
            );
        }
        for path in [
            format!("/v1/conversations/{v}"),
            format!("/v1/api-keys/{v}"),
            format!("/v1/users/{v}"),
        ] {
            check(
                format!("DELETE {path:.80}"),
                call(&app, Method::DELETE, &path, None).await,
            );
        }
    }
    let fields = [
        "name",
        "allowed_origins",
        "system_prompt",
        "model",
        "retention_days",
        "max_message_chars",
        "messages_per_minute",
        "daily_token_budget",
        "max_reply_tokens",
    ];
    for value in hostile_json() {
        for field in fields {
            let body = serde_json::to_vec(&json!({ field: value })).unwrap();
            check(
                format!("PATCH settings {field}"),
                call(&app, Method::PATCH, "/v1/settings", Some(body)).await,
            );
        }
        for body in [
            json!({"name": value, "scopes": ["history:read"]}),
            json!({"scopes": [value]}),
            json!({"scopes": value}),
        ] {
            check(
                "POST api-keys".into(),
                call(
                    &app,
                    Method::POST,
                    "/v1/api-keys",
                    Some(serde_json::to_vec(&body).unwrap()),
                )
                .await,
            );
        }
        for body in [
            json!({"tenant": value, "email": value, "password": value}),
            json!({"tenant": "acme", "email": "a@b.example", "password": value}),
        ] {
            check(
                "POST session".into(),
                call(
                    &app,
                    Method::POST,
                    "/v1/session",
                    Some(serde_json::to_vec(&body).unwrap()),
                )
                .await,
            );
        }
        check(
            "PUT webhook".into(),
            call(
                &app,
                Method::PUT,
                "/v1/webhook",
                Some(serde_json::to_vec(&json!({"url": value})).unwrap()),
            )
            .await,
        );
    }
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes();
    let invalid_utf8 = vec![
        b'{', b'"', b'n', b'a', b'm', b'e', b'"', b':', b'"', 0xff, 0xfe, b'"', b'}',
    ];
    for body in [deep, invalid_utf8, b"{".to_vec(), vec![0u8; 1000]] {
        for (method, path) in [
            (Method::PATCH, "/v1/settings"),
            (Method::POST, "/v1/api-keys"),
            (Method::POST, "/v1/session"),
            (Method::PUT, "/v1/webhook"),
        ] {
            let status = call(&app, method.clone(), path, Some(body.clone())).await;
            check(format!("{method} {path} with a malformed body"), status);
            assert!((400..500).contains(&status), "{method} {path}: {status}");
        }
    }
    assert!(failures.is_empty(), "server errors: {failures:#?}");
    assert_eq!(
        reqwest::get(app.http("/healthz")).await.unwrap().status(),
        200,
        "still alive"
    );
}

#[tokio::test]
async fn hostile_frames_get_an_error_code_and_store_nothing() {
    let app = spawn_app().await;
    let mut widget = app.widget().await;
    let mut frames: Vec<String> = Vec::new();
    for value in hostile_json()
        .into_iter()
        .filter(|v| v.as_str().is_none_or(|s| s.len() < 60_000))
    {
        frames.push(json!({"type": "submit", "id": value, "text": "x"}).to_string());
        frames.push(json!({"type": "submit", "id": "ok", "text": value}).to_string());
        frames.push(json!({"type": "resume", "conversation": value, "token": value}).to_string());
        frames.push(json!({"type": value}).to_string());
        frames.push(json!({"type": "transcript", "extra": value}).to_string());
        frames.push(json!({"type": "erase", "conversation": value}).to_string());
    }
    frames.push(format!("{}{}", "{\"a\":".repeat(5000), "}".repeat(5000)));
    frames.push("{\"type\":\"submit\",\"id\":\"a\",\"text\":\"\\ud800\"}".into());
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    for frame in &frames {
        widget.send_raw(Message::Text(frame.clone().into())).await;
        loop {
            let reply = widget.next().await;
            let kind = reply["type"].as_str().unwrap_or_default().to_owned();
            if kind == "error" {
                *codes
                    .entry(reply["code"].as_str().unwrap().to_owned())
                    .or_default() += 1;
                break;
            }
            if kind == "done" || kind == "resumed" || kind == "transcript" || kind == "erased" {
                break;
            }
        }
    }
    assert!(
        codes.contains_key("invalid_frame") && codes.contains_key("unsupported_frame"),
        "{codes:?}"
    );
    assert!(
        !codes.contains_key("internal") && !codes.contains_key("storage_unavailable"),
        "{codes:?}"
    );
    let acme = chatvault::domain::TenantId::parse("acme").unwrap();
    let totals = app
        .store
        .vault
        .call(&acme, chatvault::vault::repo::totals)
        .await
        .unwrap();
    // Every well-formed submit reused the id "ok": at most that one message and its reply exist.
    assert!(
        totals.messages <= 2,
        "only the one well-formed submit was stored: {totals:?}"
    );
}

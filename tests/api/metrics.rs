//! `/metrics` (Prometheus text) moves with a widget exchange and carries no content or tenant
//! ids; every response has a request id, and the request log line carries it.

use crate::helpers::{captured_logs, spawn_app};

/// The value of an unlabelled or labelled sample, 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(app: &crate::helpers::TestApp) -> String {
    let response = reqwest::get(app.http("/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_move_after_a_widget_exchange_and_carry_no_content() {
    let app = spawn_app().await;
    let before = scrape(&app).await;
    assert_eq!(sample(&before, "chatvault_widget_sockets_open"), 0.0);
    assert_eq!(
        sample(
            &before,
            "chatvault_widget_messages_total{outcome=\"replied\"}"
        ),
        0.0
    );

    let mut widget = app.widget().await;
    let canary = "canary-7f3a my order number is 55512";
    let frames = widget.exchange("m1", canary).await;
    assert_eq!(frames.last().unwrap()["type"], "done", "{frames:?}");
    widget
        .send(serde_json::json!({"type": "no-such-frame"}))
        .await;
    assert_eq!(widget.next().await["type"], "error");

    let after = scrape(&app).await;
    assert_eq!(
        sample(&after, "chatvault_widget_sockets_open"),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            "chatvault_widget_messages_total{outcome=\"replied\"}"
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(
            &after,
            "chatvault_widget_errors_total{code=\"unsupported_frame\"}"
        ) + sample(
            &after,
            "chatvault_widget_errors_total{code=\"invalid_frame\"}"
        ),
        1.0,
        "{after}"
    );
    assert!(
        sample(&after, "chatvault_llm_tokens_total{direction=\"in\"}") > 0.0,
        "{after}"
    );
    assert!(
        sample(&after, "chatvault_llm_tokens_total{direction=\"out\"}") > 0.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, "chatvault_llm_first_token_seconds_count"),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, "chatvault_llm_reply_seconds_count"),
        1.0,
        "{after}"
    );
    assert_eq!(
        sample(&after, "chatvault_llm_reply_seconds_bucket{le=\"+Inf\"}"),
        1.0,
        "{after}"
    );
    assert!(
        sample(&after, "chatvault_open_tenant_files") >= 1.0,
        "{after}"
    );
    assert!(
        sample(&after, "chatvault_http_responses_total{status=\"101\"}") >= 1.0,
        "{after}"
    );
    assert!(after.contains("# TYPE chatvault_retention_sweeper_stalled gauge"));
    assert_eq!(sample(&after, "chatvault_retention_sweeper_stalled"), 0.0);

    for needle in ["canary", "55512", "acme", &app.acme.widget_key] {
        assert!(!after.contains(needle), "metrics must not carry `{needle}`");
    }
    drop(widget);
    app.stop().await;
}

#[tokio::test]
async fn rate_limit_refusals_are_counted() {
    let app = crate::helpers::spawn_app_with(|c| c.handshakes_per_minute = 1).await;
    let key = app.acme.widget_key.clone();
    let mut refused = 0;
    for _ in 0..3 {
        if let Err(429) = app.widget_for(&key, Some(crate::helpers::ORIGIN)).await {
            refused += 1;
        }
    }
    assert!(refused > 0);
    let text = scrape(&app).await;
    assert_eq!(
        sample(&text, "chatvault_rate_limited_total{scope=\"http\"}"),
        f64::from(refused),
        "{text}"
    );
    assert_eq!(
        sample(&text, "chatvault_http_responses_total{status=\"429\"}"),
        f64::from(refused),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_response_has_a_request_id_and_the_log_line_carries_it() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let response = client
        .get(app.http("/healthz"))
        .header("x-request-id", "trace-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-abc.123");

    let response = client
        .get(app.http("/readyz"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .unwrap();
    let fresh = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        fresh.len(),
        24,
        "a fresh id replaces an unsafe one: {fresh}"
    );

    let response = client
        .get(app.http("/nope?secret=q-canary-991"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let logs = captured_logs();
    let line = logs
        .lines()
        .find(|l| l.contains(&id) && l.contains("status=404"))
        .unwrap_or_else(|| panic!("no log line for {id}"));
    assert!(line.contains("path=/nope"), "{line}");
    assert!(
        !logs.contains("q-canary-991"),
        "query strings are never logged"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_widget_error_code_is_counted_once() {
    let app = spawn_app().await;
    let mut widget = app.widget().await;
    let conversation = format!("c_{}", "0".repeat(32));
    widget
        .send(serde_json::json!({"type": "resume", "conversation": conversation, "token": "nope"}))
        .await;
    assert_eq!(widget.next().await["code"], "invalid_token");
    widget.send(serde_json::json!({"type": "transcript"})).await;
    assert_eq!(widget.next().await["code"], "no_conversation");
    widget.submit("m1", "   ").await;
    assert_eq!(widget.next().await["code"], "empty_message");
    widget.send(serde_json::json!({"type": "submit"})).await;
    assert_eq!(widget.next().await["code"], "invalid_frame");

    let after = scrape(&app).await;
    for code in [
        "invalid_token",
        "no_conversation",
        "empty_message",
        "invalid_frame",
    ] {
        let series = format!("chatvault_widget_errors_total{{code=\"{code}\"}}");
        assert_eq!(sample(&after, &series), 1.0, "{code}: {after}");
    }
    drop(widget);
    app.stop().await;
}

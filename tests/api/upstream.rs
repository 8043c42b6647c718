//! Each way the upstream fails: the visitor gets the right error code, the visitor message stays
//! stored, and the next request succeeds.

use std::time::Duration;

use crate::fake_llm::Behavior;
use crate::helpers::{TestApp, reply_text, spawn_app, spawn_app_with};

async fn stored_messages(app: &TestApp) -> i64 {
    let acme = chatvault::domain::TenantId::parse("acme").unwrap();
    app.store
        .vault
        .call(&acme, chatvault::vault::repo::totals)
        .await
        .unwrap()
        .messages
}

async fn fails_then_recovers(behaviors: Vec<Behavior>, code: &str, expected_requests: usize) {
    let app = spawn_app().await;
    app.llm.script(behaviors);
    let mut widget = app.widget().await;
    let frames = widget.exchange("a", "hello").await;
    assert_eq!(frames[0]["type"], "accepted");
    let last = frames.last().unwrap();
    assert_eq!(
        (
            last["type"].as_str(),
            last["code"].as_str(),
            last["id"].as_str()
        ),
        (Some("error"), Some(code), Some("a")),
        "{frames:?}"
    );
    assert_eq!(app.llm.requests().len(), expected_requests);
    assert_eq!(
        stored_messages(&app).await,
        1,
        "the visitor message stays stored, no partial reply"
    );
    let retry = widget.exchange("a", "hello").await;
    assert_eq!(
        retry.last().unwrap()["type"],
        "done",
        "retrying the same submit id gets a whole reply"
    );
    assert_eq!(reply_text(&retry), "Hello from the fake");
    assert_eq!(stored_messages(&app).await, 2);
}

#[tokio::test]
async fn a_500_twice_is_upstream_unavailable() {
    fails_then_recovers(
        vec![
            Behavior::Status(500, "server_error"),
            Behavior::Status(500, "server_error"),
        ],
        "upstream_unavailable",
        2,
    )
    .await;
}

#[tokio::test]
async fn a_single_500_is_retried_once_before_any_text() {
    let app = spawn_app().await;
    app.llm.script([Behavior::Status(500, "server_error")]);
    let mut widget = app.widget().await;
    let frames = widget.exchange("a", "hello").await;
    assert_eq!(frames.last().unwrap()["type"], "done");
    assert_eq!(app.llm.requests().len(), 2);
}

#[tokio::test]
async fn a_rate_limited_upstream_is_retried_once_after_its_retry_after() {
    let started = std::time::Instant::now();
    fails_then_recovers(
        vec![Behavior::RateLimited(1), Behavior::RateLimited(1)],
        "upstream_unavailable",
        2,
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the retry waited for Retry-After"
    );
}

#[tokio::test]
async fn a_quota_error_is_never_retried() {
    fails_then_recovers(vec![Behavior::Quota], "upstream_unavailable", 1).await;
}

#[tokio::test]
async fn a_hanging_upstream_times_out() {
    fails_then_recovers(vec![Behavior::Hang, Behavior::Hang], "upstream_timeout", 2).await;
}

#[tokio::test]
async fn a_reply_dripping_past_the_total_deadline_times_out() {
    let drip = (0..20).map(|i| format!("w{i} ")).collect();
    fails_then_recovers(
        vec![Behavior::SlowDrip(drip, Duration::from_millis(400))],
        "upstream_timeout",
        1,
    )
    .await;
}

#[tokio::test]
async fn malformed_chunks_are_upstream_unavailable() {
    fails_then_recovers(
        vec![Behavior::Malformed, Behavior::Malformed],
        "upstream_unavailable",
        2,
    )
    .await;
}

#[tokio::test]
async fn a_connection_reset_mid_stream_is_not_retried_and_not_stored() {
    let app = spawn_app().await;
    app.llm.script([Behavior::ResetMidStream]);
    let mut widget = app.widget().await;
    let frames = widget.exchange("a", "hello").await;
    assert_eq!(
        reply_text(&frames),
        "partial reply",
        "text already shown stays shown"
    );
    assert_eq!(frames.last().unwrap()["code"], "upstream_unavailable");
    assert_eq!(
        app.llm.requests().len(),
        1,
        "no retry once text reached the visitor"
    );
    assert_eq!(stored_messages(&app).await, 1);
    assert_eq!(
        widget.exchange("b", "again").await.last().unwrap()["type"],
        "done"
    );
}

#[tokio::test]
async fn repeated_failures_open_the_circuit_and_a_probe_closes_it() {
    let app = crate::helpers::spawn_app_with(|c| {
        c.llm.breaker_threshold = 2;
        c.llm.breaker_cooldown = Duration::from_millis(500);
    })
    .await;
    app.llm
        .script((0..4).map(|_| Behavior::Status(500, "server_error")));
    let mut widget = app.widget().await;
    for id in ["a", "b"] {
        assert_eq!(
            widget.exchange(id, "hello").await.last().unwrap()["code"],
            "upstream_unavailable"
        );
    }
    assert_eq!(app.llm.requests().len(), 4);
    let fast = widget.exchange("c", "hello").await;
    assert_eq!(fast.last().unwrap()["code"], "upstream_unavailable");
    assert_eq!(
        app.llm.requests().len(),
        4,
        "an open circuit fails fast without calling upstream"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        widget.exchange("d", "hello").await.last().unwrap()["type"],
        "done",
        "the half-open probe succeeds"
    );
    assert_eq!(
        widget.exchange("e", "hello").await.last().unwrap()["type"],
        "done",
        "and the circuit is closed again"
    );
}

#[tokio::test]
async fn a_redirect_from_the_upstream_is_not_followed() {
    // A 307 asks the client to send the same body, the visitor's wrapped text, somewhere else.
    // The configured base URL is the only place a prompt may go.
    let app = spawn_app().await;
    let elsewhere = crate::fake_llm::FakeLlm::start().await;
    let target = format!("{}/chat/completions", elsewhere.base_url);
    app.llm
        .script((0..2).map(|_| Behavior::Redirect(target.clone())));
    let mut widget = app.widget().await;
    let frames = widget
        .exchange("a", "my order number is CANARY-redirect-4711")
        .await;
    assert_eq!(frames[0]["type"], "accepted");
    assert_eq!(
        frames.last().unwrap()["code"],
        "upstream_unavailable",
        "{frames:?}"
    );
    assert!(
        elsewhere.requests().is_empty(),
        "the redirect target received {:?}",
        elsewhere.requests()
    );
    assert!(
        !app.llm.requests().is_empty(),
        "the configured upstream was asked"
    );
    let logs = crate::helpers::captured_logs();
    let line = logs
        .lines()
        .find(|l| l.contains("never followed") && l.contains("status=307"))
        .unwrap_or_else(|| panic!("the operator is told about the redirect:\n{logs}"));
    assert!(line.contains("to_host=127.0.0.1"), "{line}");
    assert!(
        !logs.contains("CANARY-redirect"),
        "visitor text is never logged"
    );
}

#[tokio::test]
async fn no_upstream_client_follows_a_redirect() {
    // Moderation and the question's embedding see the visitor's text too; all three clients must
    // stay on the configured base URL.
    let app = spawn_app_with(|c| c.llm.embeddings_model = Some("fake-embed".into())).await;
    crate::safety::safety(
        &app,
        serde_json::json!({"mode": "endpoint", "block": [], "fail_closed": false}),
    )
    .await;
    let elsewhere = crate::fake_llm::FakeLlm::start().await;
    app.llm.redirect_everything_to(&elsewhere.base_url);
    let mut widget = app.widget().await;
    let frames = widget.exchange("a", "CANARY-redirect-all").await;
    assert_eq!(
        frames.last().unwrap()["code"],
        "upstream_unavailable",
        "{frames:?}"
    );
    assert!(
        app.llm.moderation_requests() > 0 && app.llm.embedding_requests() > 0,
        "moderation and embeddings were asked at the configured URL"
    );
    assert_eq!(
        (
            elsewhere.requests().len(),
            elsewhere.moderation_requests(),
            elsewhere.embedding_requests()
        ),
        (0, 0, 0),
        "the redirect target received nothing"
    );
}

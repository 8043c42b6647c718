//! Cost caps: daily token and message budgets, the per-conversation turn limit, and the
//! per-conversation rate shared by every socket that resumes it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::customer_api::Api;
use crate::helpers::{TestApp, spawn_app};

async fn set(app: &TestApp, settings: Value) {
    let (status, body) = Api::new(app, &app.acme.api_key)
        .send(Method::PATCH, "/v1/settings", Some(settings))
        .await;
    assert_eq!(status, 200, "{body}");
}

fn last(frames: &[Value]) -> &Value {
    frames.last().unwrap()
}

#[tokio::test]
async fn the_daily_message_budget_refuses_until_the_next_utc_day() {
    let app = spawn_app().await;
    set(&app, json!({"daily_message_budget": 2})).await;
    let mut widget = app.widget().await;
    assert_eq!(last(&widget.exchange("a", "one").await)["type"], "done");
    assert_eq!(last(&widget.exchange("b", "two").await)["type"], "done");
    let refused = widget.exchange("c", "three").await;
    assert_eq!(refused.len(), 1, "nothing is accepted");
    assert_eq!(refused[0]["code"], "quota_exceeded");
    let wait = refused[0]["retry_after_ms"].as_u64().unwrap();
    assert!(
        wait > 0 && wait <= 86_400_000,
        "the reset time is the next UTC midnight: {wait}"
    );
    assert_eq!(
        app.llm.requests().len(),
        2,
        "no upstream call for a refused message"
    );
}

#[tokio::test]
async fn the_daily_token_budget_refuses_once_spent() {
    let app = spawn_app().await;
    set(&app, json!({"daily_token_budget": 20})).await;
    let mut widget = app.widget().await;
    assert_eq!(
        last(&widget.exchange("a", "one").await)["type"],
        "done",
        "18 tokens spent"
    );
    assert_eq!(
        last(&widget.exchange("b", "two").await)["type"],
        "done",
        "36 tokens spent"
    );
    assert_eq!(
        last(&widget.exchange("c", "three").await)["code"],
        "quota_exceeded"
    );
    let (_, usage) = Api::new(&app, &app.acme.api_key).get("/v1/usage").await;
    assert_eq!(
        usage["today"]["tokens_in"].as_i64().unwrap()
            + usage["today"]["tokens_out"].as_i64().unwrap(),
        36
    );
}

#[tokio::test]
async fn a_conversation_stops_at_its_turn_limit_and_a_new_one_can_start() {
    let app = spawn_app().await;
    set(&app, json!({"max_turns_per_conversation": 2})).await;
    let mut widget = app.widget().await;
    widget.exchange("a", "one").await;
    widget.exchange("b", "two").await;
    let refused = widget.exchange("c", "three").await;
    assert_eq!(
        (refused[0]["code"].as_str(), refused[0]["id"].as_str()),
        (Some("quota_exceeded"), Some("c"))
    );
    let resent = widget.exchange("b", "two").await;
    assert_eq!(
        last(&resent)["type"],
        "done",
        "re-sending an accepted message still works"
    );
    assert_eq!(
        last(&app.widget().await.exchange("d", "fresh start").await)["type"],
        "done"
    );
}

#[tokio::test]
async fn sockets_resuming_one_conversation_share_its_rate() {
    let app = spawn_app().await;
    set(&app, json!({"messages_per_minute": 3})).await;
    let mut first = app.widget().await;
    let opened = first.exchange("a", "one").await;
    first.exchange("b", "two").await;
    let (conversation, token) = (
        opened[0]["conversation"].clone(),
        opened[0]["token"].clone(),
    );
    let mut second = app.widget().await;
    second
        .send(json!({"type": "resume", "conversation": conversation, "token": token}))
        .await;
    assert_eq!(second.next().await["type"], "resumed");
    assert_eq!(last(&second.exchange("c", "three").await)["type"], "done");
    assert_eq!(last(&second.exchange("d", "four").await)["type"], "done");
    let limited = second.exchange("e", "five").await;
    assert_eq!(
        limited[0]["code"], "rate_limited",
        "this socket alone has sent only 2 of its 3"
    );
}

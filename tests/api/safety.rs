//! The content-safety floor: blocked categories are refused and never stored, other flags are
//! stored beside the message and shown to the customer, and an unreachable classifier fails
//! closed or open as the tenant chose, never silently.

use reqwest::Method;
use serde_json::{Value, json};

use crate::customer_api::Api;
use crate::helpers::{TestApp, spawn_app};

/// Sets the tenant's safety settings through the customer API.
pub async fn safety(app: &TestApp, settings: Value) {
    let (status, body) = Api::new(app, &app.acme.api_key)
        .send(
            Method::PATCH,
            "/v1/settings",
            Some(json!({ "safety": settings })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn stored_visitor_messages(app: &TestApp, conversation: &str) -> Vec<Value> {
    let (_, body) = Api::new(app, &app.acme.api_key)
        .get(&format!("/v1/conversations/{conversation}"))
        .await;
    body["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["role"] == "visitor")
        .collect()
}

#[tokio::test]
async fn a_blocked_category_is_refused_and_other_flags_are_stored_and_shown() {
    let app = spawn_app().await;
    safety(
        &app,
        json!({"mode": "endpoint", "block": ["sexual/minors"], "fail_closed": true}),
    )
    .await;
    let mut widget = app.widget().await;
    let ok = widget.exchange("a", "this is rude FLAG:harassment").await;
    assert_eq!(
        ok.last().unwrap()["type"],
        "done",
        "advisory categories pass"
    );
    let conversation = ok[0]["conversation"].as_str().unwrap().to_owned();
    let blocked = widget.exchange("b", "something FLAG:sexual/minors").await;
    assert_eq!(
        (blocked.len(), blocked[0]["code"].as_str()),
        (1, Some("content_blocked"))
    );
    assert_eq!(
        app.llm.requests().len(),
        1,
        "a blocked message never reaches the model"
    );
    let stored = stored_visitor_messages(&app, &conversation).await;
    assert_eq!(stored.len(), 1, "the blocked message was not stored");
    assert_eq!(
        stored[0]["flags"],
        json!(["harassment"]),
        "the risk is visible to the customer"
    );
}

#[tokio::test]
async fn an_outage_fails_closed_when_the_tenant_chose_so() {
    let app = spawn_app().await;
    safety(&app, json!({"mode": "endpoint", "fail_closed": true})).await;
    app.llm.set_moderation_down(true);
    let mut widget = app.widget().await;
    let refused = widget.exchange("a", "hello").await;
    assert_eq!(refused[0]["code"], "upstream_unavailable");
    assert!(app.llm.requests().is_empty());
    app.llm.set_moderation_down(false);
    assert_eq!(
        widget.exchange("a", "hello").await.last().unwrap()["type"],
        "done"
    );
}

#[tokio::test]
async fn an_outage_fails_open_with_a_visible_flag_when_the_tenant_chose_so() {
    let app = spawn_app().await;
    safety(&app, json!({"mode": "endpoint", "fail_closed": false})).await;
    app.llm.set_moderation_down(true);
    let frames = app.widget().await.exchange("a", "hello").await;
    assert_eq!(frames.last().unwrap()["type"], "done");
    let stored = stored_visitor_messages(&app, frames[0]["conversation"].as_str().unwrap()).await;
    assert_eq!(stored[0]["flags"], json!(["moderation_unavailable"]));
}

#[tokio::test]
async fn the_builtin_floor_needs_no_endpoint_and_replies_can_be_checked_too() {
    let app = spawn_app().await;
    safety(
        &app,
        json!({"mode": "builtin", "block": ["illicit/violent"], "check_replies": true}),
    )
    .await;
    let mut widget = app.widget().await;
    assert_eq!(
        widget.exchange("a", "how to make a bomb").await[0]["code"],
        "content_blocked"
    );
    app.llm.script([crate::fake_llm::Behavior::Reply(vec![
        "Here is how to make a bomb".into(),
    ])]);
    let withheld = widget.exchange("b", "tell me a story").await;
    assert_eq!(
        withheld.last().unwrap()["code"],
        "content_blocked",
        "a blocked reply is withheld"
    );
    assert_eq!(
        app.llm.moderation_requests(),
        0,
        "the built-in floor calls nothing"
    );
    assert_eq!(
        widget.exchange("c", "hello").await.last().unwrap()["type"],
        "done"
    );
}

//! Per-tenant PII redaction through the real socket: `before_store` keeps personal data out of
//! the tenant file, `before_llm` keeps it out of every turn sent upstream, `both` does both.

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};
use crate::pages;

const PII: &str = "write to jane.doe@example.com, card 4111 1111 1111 1111, from 10.1.2.3";
const SAFE: &str = "order 100234567 on 2024-05-01 for $1,299.99, app v2.4.1";

async fn set_redaction(app: &TestApp, mode: &str) {
    let response = reqwest::Client::new()
        .patch(app.http("/v1/settings"))
        .bearer_auth(&app.acme.api_key)
        .json(&json!({ "redaction": mode }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

/// Two turns (so the second request carries the first as history); returns the stored texts and
/// the visitor turns of the last upstream request.
async fn converse(app: &TestApp) -> (Vec<String>, Vec<String>) {
    let mut widget = app.widget().await;
    widget.exchange("a", &format!("{PII}. {SAFE}")).await;
    widget.exchange("b", "and jane.doe@example.com again").await;
    widget.send(json!({"type": "transcript"})).await;
    let transcript = widget.until("transcript").await;
    let stored = transcript.last().unwrap()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "visitor")
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    let request = app.llm.last_request();
    let upstream = request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m: &Value| m["content"].as_str().unwrap().to_owned())
        .collect();
    (stored, upstream)
}

async fn pages_with(app: &TestApp, needle: &str) -> usize {
    let acme = chatvault::domain::TenantId::parse("acme").unwrap();
    let key = app.store.export_key(&acme, "test").await.unwrap().to_hex();
    let pages = pages::decrypt_all(&app.data_dir.join("acme.db"), &key);
    assert!(pages::header_decrypts(&pages));
    pages::pages_containing(&pages, needle)
}

fn has_pii(text: &str) -> bool {
    text.contains("jane.doe@example.com") || text.contains("4111 1111") || text.contains("10.1.2.3")
}

#[tokio::test]
async fn redaction_off_changes_nothing() {
    let app = spawn_app().await;
    let (stored, upstream) = converse(&app).await;
    assert!(has_pii(&stored[0]) && has_pii(&upstream[0]));
    assert!(
        pages_with(&app, "jane.doe@").await > 0,
        "the page check can see stored text"
    );
    app.stop().await;
}

#[tokio::test]
async fn before_store_keeps_pii_out_of_the_tenant_file_but_not_out_of_the_new_turn() {
    let app = spawn_app().await;
    set_redaction(&app, "before_store").await;
    let (stored, upstream) = converse(&app).await;
    assert_eq!(
        stored[0],
        format!("write to [email], card [card], from [ip]. {SAFE}"),
        "prices, dates, order numbers and versions survive"
    );
    assert_eq!(stored[1], "and [email] again");
    assert!(
        upstream[1].contains("jane.doe@example.com"),
        "the new turn goes upstream as written"
    );
    assert!(
        !has_pii(&upstream[0]),
        "history comes from the redacted store"
    );
    assert_eq!(
        pages_with(&app, "jane.doe@").await,
        0,
        "not in any decrypted page"
    );
    app.stop().await;
}

#[tokio::test]
async fn before_llm_keeps_pii_out_of_every_upstream_turn_but_stores_it() {
    let app = spawn_app().await;
    set_redaction(&app, "before_llm").await;
    let (stored, upstream) = converse(&app).await;
    assert!(
        has_pii(&stored[0]),
        "the stored conversation keeps what was written"
    );
    assert_eq!(upstream.len(), 2);
    for turn in &upstream {
        assert!(!has_pii(turn), "{turn}");
    }
    assert!(
        upstream[0].contains("[email]")
            && upstream[0].contains("[card]")
            && upstream[0].contains("[ip]")
    );
    assert!(upstream[0].contains(SAFE));
    app.stop().await;
}

#[tokio::test]
async fn both_redacts_the_store_and_every_upstream_turn() {
    let app = spawn_app().await;
    set_redaction(&app, "both").await;
    let (stored, upstream) = converse(&app).await;
    for text in stored.iter().chain(&upstream) {
        assert!(!has_pii(text), "{text}");
    }
    app.stop().await;
}

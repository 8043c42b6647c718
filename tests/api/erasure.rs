//! Erasing a conversation leaves no trace: not in the search index, and not in any page of the
//! tenant file or its `-wal` once decrypted with the tenant's key (see `pages.rs`).

use chatvault::domain::{ConversationId, TenantId};
use serde_json::json;

use crate::helpers::{TestApp, spawn_app};
use crate::pages;

/// Lowercase letters and digits only, so FTS5 indexes it as one token.
const CANARY: &str = "zqxerasecanary4471";
const KEEP: &str = "zqxkeepcanary9902";

/// Hits for `token` in the full-text index, after indexing every message still waiting for it
/// (the writer indexes in groups), so the canary is really in the index before the erase.
async fn fts_hits(app: &TestApp, token: &str) -> i64 {
    let token = token.to_owned();
    app.store
        .vault
        .call(&acme(), move |c| {
            chatvault::vault::repo::index_pending_messages(c)?;
            Ok(c.query_row(
                "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?1",
                [token],
                |r| r.get(0),
            )?)
        })
        .await
        .unwrap()
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

async fn decrypted_pages(app: &TestApp) -> Vec<Vec<u8>> {
    let key = app
        .store
        .export_key(&acme(), "test")
        .await
        .unwrap()
        .to_hex();
    let pages = pages::decrypt_all(&app.data_dir.join("acme.db"), &key);
    assert!(pages::header_decrypts(&pages), "the reader decrypts page 1");
    pages
}

/// Stores a conversation holding the canary (one long message, so overflow pages are used too)
/// beside one that stays; returns the socket and the canary conversation's id.
async fn store_canary(app: &TestApp) -> (crate::helpers::Widget, String) {
    let mut keeper = app.widget().await;
    keeper.exchange("k", &format!("please keep {KEEP}")).await;
    let mut widget = app.widget().await;
    let frames = widget.exchange("a", &format!("my code is {CANARY}")).await;
    let conversation = frames[0]["conversation"].as_str().unwrap().to_owned();
    // 1900 three-byte characters: more than a page, within max_message_chars.
    let long = format!("again {CANARY} {}", "€".repeat(1900));
    widget.exchange("b", &long).await;
    let before = decrypted_pages(app).await;
    assert!(
        pages::pages_containing(&before, CANARY) > 0,
        "the page reader must find text that is still stored, or its silence proves nothing"
    );
    assert_eq!(fts_hits(app, CANARY).await, 2);
    (widget, conversation)
}

async fn assert_no_trace(app: &TestApp) {
    let after = decrypted_pages(app).await;
    assert_eq!(
        pages::pages_containing(&after, CANARY),
        0,
        "canary left in a page"
    );
    assert_eq!(fts_hits(app, CANARY).await, 0, "canary left in the index");
    assert!(
        pages::pages_containing(&after, KEEP) > 0,
        "the other conversation is still readable in the decrypted pages"
    );
    assert_eq!(fts_hits(app, KEEP).await, 1);
}

#[tokio::test]
async fn a_visitor_erase_leaves_the_canary_in_no_decrypted_page_and_not_in_the_index() {
    let app = spawn_app().await;
    let (mut widget, conversation) = store_canary(&app).await;
    widget.send(json!({"type": "erase"})).await;
    let erased = widget.until("erased").await;
    assert_eq!(
        erased.last().unwrap()["conversation"],
        conversation.as_str()
    );
    assert_no_trace(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn erasing_a_conversation_through_the_vault_leaves_no_trace_either() {
    let app = spawn_app().await;
    let (_widget, conversation) = store_canary(&app).await;
    let id = ConversationId::parse(&conversation).unwrap();
    assert!(
        app.store
            .vault
            .erase_conversation(&acme(), &id)
            .await
            .unwrap()
    );
    assert_no_trace(&app).await;
    let lookup = id.clone();
    let found = app
        .store
        .vault
        .call(&acme(), move |c| {
            chatvault::vault::repo::conversation(c, &lookup)
        })
        .await
        .unwrap();
    assert!(found.is_none());
    assert!(
        !app.store
            .vault
            .erase_conversation(&acme(), &id)
            .await
            .unwrap()
    );
    app.stop().await;
}

#[tokio::test]
async fn deleting_a_conversation_through_the_api_leaves_no_trace_either() {
    let app = spawn_app().await;
    let (_widget, conversation) = store_canary(&app).await;
    let client = reqwest::Client::new();
    let url = app.http(&format!("/v1/conversations/{conversation}"));
    let deleted = client
        .delete(&url)
        .bearer_auth(&app.acme.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_no_trace(&app).await;
    let read = client
        .get(&url)
        .bearer_auth(&app.acme.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 404);
    let search = client
        .get(app.http(&format!("/v1/conversations?q={CANARY}")))
        .bearer_auth(&app.acme.api_key)
        .send()
        .await
        .unwrap();
    let page: serde_json::Value = search.json().await.unwrap();
    assert_eq!(page["items"], json!([]), "{page}");
    app.stop().await;
}

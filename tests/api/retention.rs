//! Retention: the sweeper, driven by an injected clock, deletes conversations past the tenant's
//! window in bounded batches, leaves newer ones, leaves no trace in any decrypted page, and
//! reports its heartbeat on `/readyz`, which fails once the sweeper stalls.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chatvault::domain::{ConversationId, Role, SubmitId, TenantId};
use chatvault::retention::{self, Clock};
use chatvault::vault::repo::{self, NewMessage};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::pages;

const DAY: i64 = 86_400_000;
const OLD: &str = "zqxexpiredcanary5531";
const NEW: &str = "zqxrecentcanary7719";

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

async fn insert_conversation(app: &TestApp, at: i64, text: &str) {
    let text = text.to_owned();
    app.store
        .vault
        .call(&acme(), move |conn| {
            let conversation = ConversationId::generate();
            repo::create_conversation(conn, &conversation, b"hash", at)?;
            let submit = SubmitId::parse("s").unwrap();
            repo::insert_message(
                conn,
                &NewMessage {
                    conversation: &conversation,
                    role: Role::Visitor,
                    text: &text,
                    at,
                    submit_id: Some(&submit),
                    reply_to: None,
                    tokens: 1,
                },
            )?;
            Ok(())
        })
        .await
        .unwrap();
}

async fn conversations(app: &TestApp) -> i64 {
    app.store
        .vault
        .call(&acme(), repo::totals)
        .await
        .unwrap()
        .conversations
}

async fn readyz(app: &TestApp) -> (u16, Value) {
    let response = reqwest::get(app.http("/readyz")).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn the_sweeper_deletes_expired_conversations_and_leaves_no_trace() {
    let start = chatvault::db::now_ms();
    let now = Arc::new(AtomicI64::new(start));
    let clock = now.clone();
    let app = spawn_app_with(move |config| {
        config.retention.interval = Duration::from_millis(50);
        config.retention.batch = 2;
        config.retention.clock = Clock::from_fn(move || clock.load(Ordering::SeqCst));
    })
    .await;
    let response = reqwest::Client::new()
        .patch(app.http("/v1/settings"))
        .bearer_auth(&app.acme.api_key)
        .json(&json!({ "retention_days": 7 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    for _ in 0..5 {
        insert_conversation(&app, start - DAY, OLD).await;
    }
    insert_conversation(&app, start + 3 * DAY, NEW).await;
    assert_eq!(
        retention::sweep(&app.store, start, 2).await.unwrap(),
        0,
        "nothing expired yet"
    );
    assert_eq!(conversations(&app).await, 6);
    let batch = app
        .store
        .vault
        .call(&acme(), move |c| retention::delete_expired(c, start, 2))
        .await
        .unwrap();
    assert_eq!(batch, 2, "one transaction deletes at most one batch");

    now.store(start + 8 * DAY, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while conversations(&app).await != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweeper did not delete in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Wait for the pass to finish (its checkpoint runs after the last batch).
    let expected = chatvault::db::format_time(start + 8 * DAY);
    while readyz(&app).await.1["retention"]["last_run"] != expected.as_str() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no heartbeat after the pass"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let key = app
        .store
        .export_key(&acme(), "test")
        .await
        .unwrap()
        .to_hex();
    let decrypted = pages::decrypt_all(&app.data_dir.join("acme.db"), &key);
    assert!(pages::header_decrypts(&decrypted));
    assert_eq!(
        pages::pages_containing(&decrypted, OLD),
        0,
        "expired text left in a page"
    );
    assert!(
        pages::pages_containing(&decrypted, NEW) > 0,
        "the newer conversation stays"
    );
    let (status, body) = readyz(&app).await;
    assert_eq!(
        (status, &body["retention"]["stalled"]),
        (200, &json!(false)),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test]
async fn readyz_fails_when_the_sweeper_has_not_completed_a_pass_for_too_long() {
    let app = spawn_app_with(|config| {
        config.retention.interval = Duration::from_secs(3600);
        config.retention.stall_after = Duration::from_secs(2);
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut body = readyz(&app).await.1;
    while body["retention"]["last_run"].is_null() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        body = readyz(&app).await.1;
    }
    assert!(body["retention"]["last_run"].is_string(), "{body}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["retention"]["stalled"], true);
    assert_eq!(body["ready"], false);
    app.stop().await;
}

#[tokio::test]
async fn a_pass_leaves_closed_the_files_that_cannot_hold_an_expired_conversation() {
    let start = chatvault::db::now_ms();
    let app = spawn_app_with(|config| {
        config.retention.interval = Duration::from_secs(3600);
    })
    .await;
    let quiet: Vec<TenantId> = (0..5)
        .map(|i| TenantId::parse(&format!("quiet-{i}")).unwrap())
        .collect();
    let origin = chatvault::domain::Origin::parse("https://quiet.example").unwrap();
    for id in &quiet {
        app.store
            .create_tenant(id, "Quiet", std::slice::from_ref(&origin), "test")
            .await
            .unwrap();
    }
    let open = app.store.vault.open_files();
    // Every tenant was created just now and keeps 30 days: nothing can have expired at day 29.
    assert_eq!(
        retention::sweep(&app.store, start + 29 * DAY, 200)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        app.store.vault.open_files(),
        open,
        "a pass opened a file in which nothing could have expired"
    );

    // Past the window the pass visits every file and records the floor it found there.
    let visited = chatvault::db::now_ms();
    retention::sweep(&app.store, start + 31 * DAY, 200)
        .await
        .unwrap();
    assert!(app.store.vault.open_files() >= open + quiet.len());
    let states = app
        .store
        .catalog
        .call(chatvault::catalog::tenants::retention_states)
        .await
        .unwrap();
    for id in &quiet {
        let state = states.iter().find(|s| &s.id == id).unwrap();
        let floor = state.activity_floor.unwrap();
        assert!(
            floor >= visited,
            "an empty file's floor is the time of the visit"
        );
    }
    app.stop().await;
}

//! The widget protocol over a real socket: frame order, storage, bad frames, resume, transcript,
//! erase, limits, and a canary that must never reach a log line or a file's raw bytes.

use std::time::Duration;

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::fake_llm::Behavior;
use crate::helpers::{captured_logs, reply_text, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_submit_is_accepted_streamed_and_done_in_order() {
    let app = spawn_app().await;
    let mut widget = app.widget().await;
    let frames = widget.exchange("m1", "Do you ship to Canada?").await;
    let kinds: Vec<_> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["accepted", "delta", "delta", "delta", "delta", "done"]
    );
    let accepted = &frames[0];
    assert_eq!(accepted["id"], "m1");
    assert!(accepted["conversation"].as_str().unwrap().starts_with("c_"));
    assert!(
        accepted["token"].as_str().unwrap().len() >= 32,
        "a ≥128-bit resume token"
    );
    assert_eq!(reply_text(&frames), "Hello from the fake");
    assert!(frames.iter().all(|f| f["id"] == "m1"));
    assert!(frames[5]["message"].as_str().unwrap().starts_with("m_"));

    let second = widget.exchange("m2", "And to Mexico?").await;
    assert!(
        second[0].get("token").is_none(),
        "the token is sent only with the first accept"
    );
    assert_eq!(second[0]["conversation"], accepted["conversation"]);
}

#[tokio::test]
async fn nothing_is_written_before_the_first_submit() {
    let app = spawn_app().await;
    let mut widget = app.widget().await;
    widget.send(json!({"type": "transcript"})).await;
    assert_eq!(widget.next().await["code"], "no_conversation");
    widget.send(json!({"type": "erase"})).await;
    assert_eq!(widget.next().await["code"], "no_conversation");
    let totals = app
        .store
        .vault
        .call(&"acme".parse_tenant(), chatvault::vault::repo::totals)
        .await
        .unwrap();
    assert_eq!((totals.conversations, totals.messages), (0, 0));
    assert!(app.llm.requests().is_empty());
}

#[tokio::test]
async fn bad_frames_get_their_error_code_and_leave_no_trace() {
    let app = spawn_app().await;
    let mut widget = app.widget().await;
    let cases = [
        ("not json", "invalid_frame"),
        ("[1,2]", "invalid_frame"),
        (r#"{"type":"submit","id":"a"}"#, "invalid_frame"),
        (
            r#"{"type":"submit","id":"has space","text":"CANARY-bad-frame"}"#,
            "invalid_frame",
        ),
        (
            r#"{"type":"submit","id":"a","text":"CANARY-bad-frame","extra":true}"#,
            "invalid_frame",
        ),
        (
            r#"{"type":"keystroke","text":"CANARY-bad-frame"}"#,
            "unsupported_frame",
        ),
        (r#"{"type":"typing"}"#, "unsupported_frame"),
        (
            r#"{"type":"submit","id":"a","text":"   \n\t "}"#,
            "empty_message",
        ),
    ];
    for (raw, code) in cases {
        widget.send_raw(Message::Text(raw.into())).await;
        let frame = widget.next().await;
        assert_eq!(
            (frame["type"].as_str(), frame["code"].as_str()),
            (Some("error"), Some(code)),
            "{raw}"
        );
    }
    let too_long = "x".repeat(2001);
    widget.submit("long", &too_long).await;
    assert_eq!(widget.next().await["code"], "too_large");
    // The socket still works after all of that.
    assert_eq!(
        widget.exchange("ok", "hello").await.last().unwrap()["type"],
        "done"
    );
    assert!(!captured_logs().contains("CANARY-bad-frame"));
    let totals = app
        .store
        .vault
        .call(&"acme".parse_tenant(), chatvault::vault::repo::totals)
        .await
        .unwrap();
    assert_eq!(
        totals.messages, 2,
        "only the good submit and its reply were stored"
    );
}

#[tokio::test]
async fn a_binary_frame_is_refused_and_the_socket_closed_with_1003() {
    let app = spawn_app().await;
    let mut widget = app.widget().await;
    widget.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
    assert_eq!(widget.next().await["code"], "unsupported_frame");
    match widget.next_message().await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Unsupported),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn a_frame_over_64_kib_is_refused_and_the_socket_closed_with_1009() {
    let app = spawn_app().await;
    let mut widget = app.widget().await;
    let huge = json!({"type": "submit", "id": "big", "text": "y".repeat(70 * 1024)}).to_string();
    widget.send_raw(Message::Text(huge.into())).await;
    assert_eq!(widget.next().await["code"], "too_large");
    match widget.next_message().await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn resending_an_accepted_submit_stores_it_once_and_replays_the_reply() {
    let app = spawn_app().await;
    let mut widget = app.widget().await;
    let first = widget.exchange("same-id", "What are your hours?").await;
    let again = widget.exchange("same-id", "What are your hours?").await;
    assert_eq!(reply_text(&again), reply_text(&first));
    assert_eq!(
        again.last().unwrap()["message"],
        first.last().unwrap()["message"]
    );
    assert_eq!(
        app.llm.requests().len(),
        1,
        "the stored reply is replayed, not regenerated"
    );
    let totals = app
        .store
        .vault
        .call(&"acme".parse_tenant(), chatvault::vault::repo::totals)
        .await
        .unwrap();
    assert_eq!(totals.messages, 2);
}

#[tokio::test]
async fn a_conversation_resumes_only_with_its_token() {
    let app = spawn_app().await;
    let mut widget = app.widget().await;
    let frames = widget.exchange("m1", "remember me").await;
    let conversation = frames[0]["conversation"].as_str().unwrap().to_owned();
    let token = frames[0]["token"].as_str().unwrap().to_owned();
    drop(widget);

    let mut stranger = app.widget().await;
    for bad in [
        // The real token with its last digit changed (never equal to the real one).
        format!(
            "{}{}",
            &token[..token.len() - 1],
            if token.ends_with('0') { '1' } else { '0' }
        ),
        String::new(),
        "x".repeat(64),
    ] {
        stranger
            .send(json!({"type": "resume", "conversation": conversation, "token": bad}))
            .await;
        assert_eq!(stranger.next().await["code"], "invalid_token");
    }
    stranger
        .send(json!({"type": "resume", "conversation": "c_nope", "token": token}))
        .await;
    assert_eq!(stranger.next().await["code"], "invalid_token");
    stranger.send(json!({"type": "transcript"})).await;
    assert_eq!(
        stranger.next().await["code"],
        "no_conversation",
        "a failed resume grants nothing"
    );

    let mut owner = app.widget().await;
    owner
        .send(json!({"type": "resume", "conversation": conversation, "token": token}))
        .await;
    let resumed = owner.next().await;
    assert_eq!(resumed["type"], "resumed");
    let texts: Vec<_> = resumed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        texts,
        [
            ("visitor", "remember me"),
            ("assistant", "Hello from the fake")
        ]
    );
    let next = owner.exchange("m2", "still there?").await;
    assert_eq!(next[0]["conversation"], conversation.as_str());
    let history = &app.llm.last_request()["messages"];
    assert_eq!(
        history.as_array().unwrap().len(),
        4,
        "system + earlier turn + reply + new turn"
    );
}

#[tokio::test]
async fn a_transcript_returns_the_whole_conversation() {
    let app = spawn_app().await;
    let mut widget = app.widget().await;
    widget.exchange("a", "first question").await;
    widget.exchange("b", "second question").await;
    widget.send(json!({"type": "transcript"})).await;
    let transcript = widget.next().await;
    assert_eq!(transcript["type"], "transcript");
    let messages = transcript["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[2]["text"], "second question");
    assert!(messages[0]["at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn erase_removes_the_conversation_from_the_tenant_file() {
    let app = spawn_app().await;
    let mut widget = app.widget().await;
    let frames = widget
        .exchange("a", "please forget ERASE-CANARY-7781")
        .await;
    let (conversation, token) = (
        frames[0]["conversation"].clone(),
        frames[0]["token"].clone(),
    );
    widget.send(json!({"type": "erase"})).await;
    let erased = widget.next().await;
    assert_eq!(
        (erased["type"].as_str(), &erased["conversation"]),
        (Some("erased"), &conversation)
    );
    widget.send(json!({"type": "transcript"})).await;
    assert_eq!(widget.next().await["code"], "no_conversation");

    let mut again = app.widget().await;
    again
        .send(json!({"type": "resume", "conversation": conversation, "token": token}))
        .await;
    assert_eq!(again.next().await["code"], "invalid_token");
    let totals = app
        .store
        .vault
        .call(&"acme".parse_tenant(), chatvault::vault::repo::totals)
        .await
        .unwrap();
    assert_eq!((totals.conversations, totals.messages), (0, 0));
}

#[tokio::test]
async fn a_second_submit_waits_and_a_third_beyond_the_queue_is_busy() {
    let app = spawn_app_with(|c| c.reply_queue = 1).await;
    app.llm.script([Behavior::SlowDrip(
        vec!["slow".into(), " reply".into()],
        Duration::from_millis(300),
    )]);
    let mut widget = app.widget().await;
    widget.submit("one", "first").await;
    widget.submit("two", "second").await;
    widget.submit("three", "third").await;
    let mut frames = Vec::new();
    while frames
        .iter()
        .filter(|f: &&serde_json::Value| f["type"] == "done")
        .count()
        < 2
    {
        frames.push(widget.next().await);
    }
    let busy: Vec<_> = frames.iter().filter(|f| f["code"] == "busy").collect();
    assert_eq!(busy.len(), 1);
    assert_eq!(busy[0]["id"], "three");
    let order: Vec<_> = frames
        .iter()
        .filter(|f| f["type"] == "accepted" || f["type"] == "done")
        .map(|f| {
            format!(
                "{}:{}",
                f["type"].as_str().unwrap(),
                f["id"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        order,
        ["accepted:one", "done:one", "accepted:two", "done:two"]
    );
}

#[tokio::test]
async fn messages_beyond_the_per_connection_rate_are_rate_limited_with_a_retry_time() {
    let app = spawn_app().await;
    let mut widget = app.widget().await;
    let mut limited = None;
    for i in 0..12 {
        let frames = widget.exchange(&format!("m{i}"), "hi").await;
        if let Some(error) = frames.iter().find(|f| f["code"] == "rate_limited") {
            limited = Some((i, error.clone()));
            break;
        }
    }
    let (at, error) = limited.expect("the default of 10 per minute is enforced");
    assert_eq!(at, 10);
    assert!(error["retry_after_ms"].as_u64().unwrap() > 0);
    assert_eq!(error["id"], "m10");
}

#[tokio::test]
async fn a_canary_reaches_no_log_line_and_no_raw_byte_on_disk() {
    let app = spawn_app().await;
    let canary = "CANARY-5b1e9d-visitor-secret";
    app.llm.script([Behavior::Reply(vec![
        "CANARY-77aa-reply ".into(),
        "text".into(),
    ])]);
    let mut widget = app.widget().await;
    let frames = widget
        .exchange("c1", &format!("my secret is {canary}"))
        .await;
    let token = frames[0]["token"].as_str().unwrap().to_owned();
    widget.send(json!({"type": "transcript"})).await;
    widget.next().await;
    drop(widget);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let logs = captured_logs();
    assert!(
        logs.contains("widget message"),
        "the server did log the exchange"
    );
    for secret in [
        canary,
        "CANARY-77aa-reply",
        token.as_str(),
        "sk-test-key",
        app.acme.api_key.as_str(),
    ] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
    let raw = app.raw_bytes_of_data_dir();
    for secret in [canary.as_bytes(), b"CANARY-77aa-reply", token.as_bytes()] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret),
            "plaintext found on disk"
        );
    }
}

trait ParseTenant {
    fn parse_tenant(&self) -> chatvault::domain::TenantId;
}

impl ParseTenant for &str {
    fn parse_tenant(&self) -> chatvault::domain::TenantId {
        chatvault::domain::TenantId::parse(self).unwrap()
    }
}

#[tokio::test]
async fn shutdown_lets_the_reply_in_flight_finish_then_closes_with_1001() {
    let app = spawn_app().await;
    app.llm.script([Behavior::SlowDrip(
        vec!["one".into(), " two".into(), " three".into()],
        Duration::from_millis(150),
    )]);
    let mut widget = app.widget().await;
    widget.submit("a", "hello").await;
    assert_eq!(widget.next().await["type"], "accepted");
    let stopping = tokio::spawn(app.stop());
    let frames = widget.until("done").await;
    assert_eq!(reply_text(&frames), "one two three");
    match widget.next_message().await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a close frame, got {other:?}"),
    }
    stopping.await.unwrap();
}

#[tokio::test]
async fn an_idle_socket_is_closed_and_pings_keep_it_checked() {
    let app = spawn_app_with(|c| {
        c.idle_timeout = Duration::from_millis(600);
        c.ping_interval = Duration::from_millis(200);
    })
    .await;
    let mut widget = app.widget().await;
    let mut pings = 0;
    let closed = loop {
        let message = tokio::time::timeout(
            Duration::from_secs(5),
            futures_util::StreamExt::next(&mut widget.ws),
        )
        .await
        .expect("the server acts within 5 s")
        .expect("a frame")
        .expect("a valid frame");
        match message {
            Message::Ping(_) => pings += 1,
            Message::Close(frame) => break frame,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(pings >= 1, "the server pings a quiet socket");
    assert_eq!(
        closed.map(|f| f.code),
        Some(CloseCode::Normal),
        "then closes it when idle"
    );
}

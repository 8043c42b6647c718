//! A visitor that behaves like the widget across a move.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::ORIGIN;

/// A visitor chatting through the balancer the way the widget does: when its socket is closed
/// or refused it reconnects with backoff, resumes its conversation and resends the message that
/// was not answered. Returns (conversation, messages answered, reconnects).
pub async fn visitor(
    lb: String,
    key: String,
    label: &'static str,
    messages: usize,
    progress: tokio::sync::mpsc::UnboundedSender<usize>,
) -> (String, Vec<String>, usize) {
    let mut resume: Option<(String, String)> = None;
    let mut answered = Vec::new();
    let mut reconnects = 0;
    let mut attempts = 0;
    'connect: while answered.len() < messages {
        attempts += 1;
        assert!(attempts < 400, "{label}: could not reconnect within bounds");
        let mut request = format!("ws://{lb}/v1/widget/ws?key={key}")
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("origin", ORIGIN.parse().unwrap());
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(request).await else {
            // Refused while the tenant is frozen (503): back off and try again.
            reconnects += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let next = async |ws: &mut tokio_tungstenite::WebSocketStream<_>| loop {
            match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Some(serde_json::from_str::<Value>(&text).unwrap());
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(_) => return None,
                Err(_) => panic!("{label}: no frame within 20 s"),
            }
        };
        match next(&mut ws).await {
            Some(hello) if hello["type"] == "hello" => {}
            _ => {
                reconnects += 1;
                continue;
            }
        }
        if let Some((conversation, token)) = &resume {
            let frame = json!({"type": "resume", "conversation": conversation, "token": token});
            if ws
                .send(Message::Text(frame.to_string().into()))
                .await
                .is_err()
            {
                reconnects += 1;
                continue;
            }
            match next(&mut ws).await {
                Some(f) if f["type"] == "resumed" => {}
                Some(f) => panic!("{label}: resume refused after reconnecting: {f}"),
                None => {
                    reconnects += 1;
                    continue;
                }
            }
        }
        while answered.len() < messages {
            let i = answered.len();
            let text = format!("{label} message {i}");
            let submit = json!({"type": "submit", "id": format!("{label}-{i}"), "text": text});
            if ws
                .send(Message::Text(submit.to_string().into()))
                .await
                .is_err()
            {
                reconnects += 1;
                continue 'connect;
            }
            loop {
                let Some(frame) = next(&mut ws).await else {
                    // Closed (1012 while the tenant moves): reconnect and resend.
                    reconnects += 1;
                    continue 'connect;
                };
                match frame["type"].as_str() {
                    Some("accepted") => {
                        if let Some(token) = frame["token"].as_str() {
                            let conversation = frame["conversation"].as_str().unwrap();
                            resume = Some((conversation.to_owned(), token.to_owned()));
                        }
                    }
                    Some("done") => break,
                    Some("delta") => {}
                    _ => panic!("{label}: unexpected frame {frame}"),
                }
            }
            answered.push(text);
            let _ = progress.send(answered.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let conversation = resume.expect("a conversation was started").0;
    (conversation, answered, reconnects)
}

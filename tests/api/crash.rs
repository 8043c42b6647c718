//! `accepted` means committed: under load from many sockets, the server is killed with SIGKILL at
//! a random moment (once in the middle of a purge), restarted, and every message a client saw
//! accepted is there exactly once, and every file passes `chatvault verify`.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::cli::{Cli, Server, bin};
use crate::fake_llm::FakeLlm;
use crate::helpers::visitor_texts;

const ORIGIN: &str = "https://acme.example";

fn start(cli: &Cli, llm: &FakeLlm) -> Server {
    Server::serve(
        cli,
        &[
            "--handshakes-per-minute",
            "100000",
            "--llm-base-url",
            &llm.base_url,
        ],
        &[],
    )
}

/// What the clients saw accepted: submit text → conversation.
type Accepted = Arc<Mutex<HashMap<String, String>>>;

/// One socket sending messages back to back until the server dies.
async fn client(addr: String, key: String, worker: usize, accepted: Accepted) {
    let mut request = format!("ws://{addr}/v1/widget/ws?key={key}")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", ORIGIN.parse().unwrap());
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(request).await else {
        return;
    };
    let mut pending: HashMap<String, String> = HashMap::new();
    for i in 0..10_000 {
        let id = format!("w{worker}-{i}");
        let text = format!("crash-test message {id}");
        if ws
            .send(Message::Text(
                json!({"type": "submit", "id": id, "text": text})
                    .to_string()
                    .into(),
            ))
            .await
            .is_err()
        {
            return;
        }
        pending.insert(id.clone(), text);
        loop {
            let Some(Ok(Message::Text(frame))) = ws.next().await else {
                return;
            };
            let frame: Value = serde_json::from_str(&frame).unwrap();
            match frame["type"].as_str() {
                Some("accepted") => {
                    let text = pending.remove(frame["id"].as_str().unwrap()).unwrap();
                    accepted
                        .lock()
                        .unwrap()
                        .insert(text, frame["conversation"].as_str().unwrap().to_owned());
                }
                Some("done") | Some("error") => break,
                _ => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_message_survives_a_kill_9_exactly_once() {
    let cli = Cli::new();
    let created = cli.json(&["tenant", "create", "acme", "--origin", ORIGIN]);
    let (widget_key, api_key) = (
        created["widget_key"].as_str().unwrap().to_owned(),
        created["api_key"].as_str().unwrap().to_owned(),
    );
    cli.json(&["tenant", "create", "other", "--origin", ORIGIN]);
    let llm = FakeLlm::start().await;
    let http = reqwest::Client::new();
    // Kill moments in ms after the load starts; the last round kills during a purge.
    for (round, kill_after_ms) in [(0, 350u64), (1, 800), (2, 120), (3, 500)].into_iter() {
        let mut server = start(&cli, &llm);
        let accepted: Accepted = Arc::default();
        let clients: Vec<_> = (0..12)
            .map(|w| {
                tokio::spawn(client(
                    server.addr.clone(),
                    widget_key.clone(),
                    round * 100 + w,
                    accepted.clone(),
                ))
            })
            .collect();
        let purging = round == 3;
        // Let the load get going (bounded), then kill at a moment that varies by round.
        for _ in 0..200 {
            if accepted.lock().unwrap().len() >= 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if purging {
            tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
            let addr = server.addr.clone();
            let key = api_key.clone();
            tokio::spawn(async move {
                reqwest::Client::new()
                    .delete(format!("http://{addr}/v1/conversations"))
                    .bearer_auth(key)
                    .send()
                    .await
            });
            tokio::time::sleep(Duration::from_millis(3)).await;
        } else {
            tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
        }
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        for c in clients {
            let _ = tokio::time::timeout(Duration::from_secs(10), c).await;
        }
        let seen = accepted.lock().unwrap().clone();
        assert!(
            !seen.is_empty(),
            "round {round}: the load produced accepted messages"
        );

        let mut restarted = start(&cli, &llm);
        let mut by_conversation: HashMap<&str, Vec<&str>> = HashMap::new();
        for (text, conversation) in &seen {
            by_conversation
                .entry(conversation.as_str())
                .or_default()
                .push(text.as_str());
        }
        let mut present = 0;
        for (conversation, texts) in &by_conversation {
            let stored = visitor_texts(
                &http,
                &format!("http://{}", restarted.addr),
                &api_key,
                conversation,
            )
            .await;
            for text in texts {
                let copies = stored.iter().filter(|s| s == text).count();
                assert!(copies <= 1, "round {round}: {text} stored {copies} times");
                if !purging {
                    assert_eq!(copies, 1, "round {round}: accepted message {text} was lost");
                }
                present += copies;
            }
        }
        if purging {
            // Messages accepted before the purge are gone by design; nothing is duplicated, and
            // the tenant keeps working after the restart.
            let mut widget_ok = false;
            let mut request = format!("ws://{}/v1/widget/ws?key={widget_key}", restarted.addr)
                .into_client_request()
                .unwrap();
            request
                .headers_mut()
                .insert("origin", ORIGIN.parse().unwrap());
            if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(request).await {
                ws.send(Message::Text(
                    json!({"type": "submit", "id": "after", "text": "after the crash"})
                        .to_string()
                        .into(),
                ))
                .await
                .unwrap();
                while let Some(Ok(Message::Text(frame))) = ws.next().await {
                    if frame.contains("\"done\"") {
                        widget_ok = true;
                        break;
                    }
                }
            }
            assert!(widget_ok, "the tenant works after a crash during a purge");
        } else {
            assert_eq!(present, seen.len());
        }
        restarted.child.kill().unwrap();
        restarted.child.wait().unwrap();
        let verify = Command::new(bin())
            .args(["verify", "--json", "--data-dir"])
            .arg(cli.data_dir())
            .env("CHATVAULT_MASTER_KEY", &cli.master_key)
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&verify.stdout).unwrap_or(Value::Null);
        assert_eq!(
            report["ok"],
            true,
            "round {round}: integrity after kill -9: {report} {}",
            String::from_utf8_lossy(&verify.stderr)
        );
    }
}

//! Soak: many widget sockets chatting for a long time against a fake streaming LLM, with the
//! server's RSS and open file count printed every interval. Both must stay flat.
//!
//! `cargo bench --bench soak` runs 1,000 sockets for 10 minutes, sampling every 30 s;
//! `cargo bench --bench soak -- --sockets 200 --seconds 60 --every 10` is a quick look.
//! The server is the real `chatvault serve` binary as a child process, on 127.0.0.1 only.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ORIGIN: &str = "https://soak.example";

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// 20 tokens, 2 ms apart.
async fn complete(_body: Bytes) -> Response {
    let chunks = (0..20).map(|i| {
        let chunk = json!({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "fake",
            "choices": [{"index": 0, "delta": {"content": format!("w{i} ")}, "finish_reason": null}]});
        format!("data: {chunk}\n\n")
    });
    let stream = futures_util::stream::iter(chunks.chain(["data: [DONE]\n\n".to_owned()])).then(
        |c| async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok::<_, std::io::Error>(Bytes::from(c))
        },
    );
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn proc_value(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn chatvault(args: &[&str], dir: &std::path::Path, key: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_chatvault"))
        .args(args)
        .arg("--json")
        .arg("--data-dir")
        .arg(dir)
        .env("CHATVAULT_MASTER_KEY", key)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

#[tokio::main]
async fn main() {
    let (sockets, seconds, every, think_ms) = (
        arg("--sockets", 1000) as usize,
        arg("--seconds", 600),
        arg("--every", 30),
        arg("--think-ms", 3000),
    );
    let llm = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let llm_url = format!("http://{}/v1", llm.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            llm,
            axum::Router::new().route("/v1/chat/completions", axum::routing::post(complete)),
        )
        .await
    });

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tenants");
    let key = chatvault(&["key", "generate"], &dir, "")["master_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let tenant = chatvault(
        &["tenant", "create", "soak", "--origin", ORIGIN],
        &dir,
        &key,
    );
    let (widget_key, api_key) = (
        tenant["widget_key"].as_str().unwrap().to_owned(),
        tenant["api_key"].as_str().unwrap().to_owned(),
    );
    let mut server = Command::new(env!("CARGO_BIN_EXE_chatvault"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--handshakes-per-minute",
            "1000000",
            "--llm-base-url",
            &llm_url,
        ])
        .arg("--data-dir")
        .arg(&dir)
        .env("CHATVAULT_MASTER_KEY", &key)
        // Every soak socket comes from 127.0.0.1: lift the per-IP caps, keep the global ones.
        .env("CHATVAULT_MAX_SOCKETS_PER_IP", "20000")
        .env("CHATVAULT_HTTP_REQUESTS_PER_MINUTE", "1000000")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = server.id();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap()
        .to_owned();
    // Limits high enough that the soak measures the server, not the limiter.
    let settings = json!({"messages_per_minute": 600, "tenant_messages_per_minute": 100000, "daily_token_budget": 0, "max_turns_per_conversation": 100000});
    reqwest::Client::new()
        .patch(format!("http://{addr}/v1/settings"))
        .bearer_auth(&api_key)
        .json(&settings)
        .send()
        .await
        .unwrap();

    println!(
        "# soak: {sockets} sockets, {seconds} s, a message every {think_ms} ms per socket, sampled every {every} s"
    );
    println!(
        "{:>8} {:>10} {:>10} {:>12} {:>8}",
        "t (s)", "RSS (MiB)", "open fds", "replies", "errors"
    );
    let (done, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut clients = Vec::new();
    for c in 0..sockets {
        let (addr, widget_key, done, errors) = (
            addr.clone(),
            widget_key.clone(),
            done.clone(),
            errors.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut request = format!("ws://{addr}/v1/widget/ws?key={widget_key}").into_client_request().unwrap();
            request.headers_mut().insert("origin", ORIGIN.parse().unwrap());
            let Ok((mut ws, _)) = tokio_tungstenite::connect_async(request).await else {
                errors.fetch_add(1, Ordering::Relaxed);
                return;
            };
            tokio::time::sleep(Duration::from_millis((c as u64 * 7919) % think_ms.max(1))).await;
            let mut i = 0u64;
            while Instant::now() < deadline {
                i += 1;
                let frame = json!({"type": "submit", "id": format!("s{i}"), "text": format!("soak message {i} from socket {c}")});
                if ws.send(Message::Text(frame.to_string().into())).await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                loop {
                    match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
                        Ok(Some(Ok(Message::Text(t)))) if t.contains("\"type\":\"done\"") => {
                            done.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Ok(Some(Ok(Message::Text(t)))) if t.contains("\"type\":\"error\"") => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Ok(Some(Ok(_))) => {}
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(think_ms)).await;
            }
        }));
    }
    let started = Instant::now();
    let mut samples = Vec::new();
    while Instant::now() < deadline {
        tokio::time::sleep(
            Duration::from_secs(every).min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
        let sample = (
            started.elapsed().as_secs(),
            proc_value(pid, "VmRSS:") / 1024,
            open_files(pid),
        );
        println!(
            "{:>8} {:>10} {:>10} {:>12} {:>8}",
            sample.0,
            sample.1,
            sample.2,
            done.load(Ordering::Relaxed),
            errors.load(Ordering::Relaxed)
        );
        samples.push(sample);
    }
    for client in clients {
        let _ = tokio::time::timeout(Duration::from_secs(35), client).await;
    }
    let _ = server.kill();
    let _ = server.wait();
    if let (Some(first), Some(last)) = (samples.get(1).or(samples.first()), samples.last()) {
        let rss_growth = last.1 as f64 / first.1.max(1) as f64;
        let fd_growth = last.2 as f64 / first.2.max(1) as f64;
        println!(
            "RSS {} → {} MiB (×{rss_growth:.2}), open files {} → {} (×{fd_growth:.2}), replies {}, errors {}",
            first.1,
            last.1,
            first.2,
            last.2,
            done.load(Ordering::Relaxed),
            errors.load(Ordering::Relaxed)
        );
        let verdict = if rss_growth <= 1.10 && fd_growth <= 1.05 {
            "flat"
        } else {
            "NOT flat"
        };
        println!("verdict (RSS within 10%, files within 5% after warm-up): {verdict}");
    }
}

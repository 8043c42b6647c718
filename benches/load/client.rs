//! The load generator: C widget sockets × M submits (closed loop with think time, or paced to a
//! target rate), and the same load sent straight to the fake LLM over HTTP.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long one reply may take before it counts as an error.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// One submit, as the client saw it.
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub accepted: Option<Duration>,
    pub first_delta: Option<Duration>,
    pub done: Option<Duration>,
    pub error: Option<String>,
    /// One of the connection's warm-up submits: sent and counted, left out of the percentiles.
    pub warmup: bool,
}

/// The shape of a run.
#[derive(Clone, Debug)]
pub struct Load {
    pub connections: usize,
    pub messages: usize,
    pub think: Duration,
    /// When set, each connection sends one submit per `pace` (closed loop if it falls behind).
    pub pace: Option<Duration>,
    /// Submits each connection sends first, paced like the rest, whose latencies are left out
    /// of the percentiles: a fresh server's first burst (every tenant's first commit creating
    /// its WAL, statements prepared, upstream connections opened) is not the steady state.
    pub warmup: usize,
}

/// Everything a run produced.
pub struct Outcome {
    pub samples: Vec<Sample>,
    pub wall: Duration,
    pub errors: BTreeMap<String, usize>,
}

impl Outcome {
    pub fn completed(&self) -> usize {
        self.samples.iter().filter(|s| s.done.is_some()).count()
    }

    pub fn throughput(&self) -> f64 {
        self.completed() as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// The samples the percentiles are taken over (all but the warm-up).
    pub fn measured(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(|s| !s.warmup)
    }

    pub fn warmups(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(|s| s.warmup)
    }
}

/// Opens a widget socket (with `Origin` when given) and reads its `hello`.
pub async fn connect(url: &str, origin: Option<&str>) -> Result<Ws> {
    let mut request = url.into_client_request()?;
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", origin.parse()?);
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    match tokio::time::timeout(REPLY_TIMEOUT, ws.next()).await {
        Ok(Some(Ok(Message::Text(_)))) => Ok(ws),
        other => anyhow::bail!("no hello: {other:?}"),
    }
}

/// Opens `count` sockets, `parallel` handshakes at a time; failures are counted, not fatal.
pub async fn connect_many(
    urls: &[String],
    count: usize,
    origin: Option<&str>,
    parallel: usize,
) -> (Vec<Ws>, BTreeMap<String, usize>) {
    let origin = origin.map(str::to_owned);
    let results: Vec<Result<Ws>> = futures_util::stream::iter(0..count)
        .map(|i| {
            let (url, origin) = (urls[i % urls.len()].clone(), origin.clone());
            async move { connect(&url, origin.as_deref()).await }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let mut errors = BTreeMap::new();
    let mut sockets = Vec::new();
    for result in results {
        match result {
            Ok(ws) => sockets.push(ws),
            Err(e) => *errors.entry(handshake_error(&e)).or_default() += 1,
        }
    }
    (sockets, errors)
}

fn handshake_error(e: &anyhow::Error) -> String {
    let text = e.to_string();
    match text.find("HTTP error: ") {
        Some(at) => format!("handshake_{}", &text[at + 12..at + 15]),
        None => "handshake_failed".into(),
    }
}

/// Submits one message and reads through `done` or `error`.
pub async fn exchange(ws: &mut Ws, id: &str, text: &str) -> Sample {
    let frame = json!({"type": "submit", "id": id, "text": text}).to_string();
    let started = Instant::now();
    let mut sample = Sample::default();
    if ws.send(Message::text(frame)).await.is_err() {
        sample.error = Some("socket_closed".into());
        return sample;
    }
    loop {
        let text = match tokio::time::timeout(REPLY_TIMEOUT, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(_))) => continue,
            Ok(_) => {
                sample.error = Some("socket_closed".into());
                return sample;
            }
            Err(_) => {
                sample.error = Some("client_timeout".into());
                return sample;
            }
        };
        // Serialised frames start with their type, so no JSON parse is needed on the hot path.
        let at = started.elapsed();
        if text.starts_with(r#"{"type":"delta""#) {
            sample.first_delta.get_or_insert(at);
        } else if text.starts_with(r#"{"type":"accepted""#) {
            sample.accepted = Some(at);
        } else if text.starts_with(r#"{"type":"done""#) {
            sample.done = Some(at);
            return sample;
        } else if text.starts_with(r#"{"type":"error""#) {
            let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            sample.error = Some(value["code"].as_str().unwrap_or("error").to_owned());
            return sample;
        }
    }
}

/// Runs `load` over already-open sockets; all connections start together.
pub async fn run_sockets(sockets: Vec<Ws>, load: &Load, tag: &str) -> Outcome {
    let started = Instant::now();
    let count = sockets.len().max(1);
    let tasks: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(c, mut ws)| {
            let (load, tag) = (load.clone(), tag.to_owned());
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(load.warmup + load.messages);
                for m in 0..load.warmup + load.messages {
                    wait_turn(started, &load, c, count, m).await;
                    let text = format!("Do you ship to Norway, and how long does it take? ({m})");
                    let mut sample = exchange(&mut ws, &format!("{tag}-{c}-{m}"), &text).await;
                    sample.warmup = m < load.warmup;
                    let broken = sample.error.as_deref() == Some("socket_closed");
                    samples.push(sample);
                    if broken {
                        break;
                    }
                    if !load.think.is_zero() {
                        tokio::time::sleep(load.think).await;
                    }
                }
                let _ = ws.close(None).await;
                samples
            })
        })
        .collect();
    collect(tasks, started).await
}

/// With pacing, connection `c` sends its m-th submit at `start + (m + c/count) * pace`.
async fn wait_turn(started: Instant, load: &Load, c: usize, count: usize, m: usize) {
    if let Some(pace) = load.pace {
        let offset = pace.mul_f64(m as f64 + c as f64 / count as f64);
        tokio::time::sleep_until((started + offset).into()).await;
    }
}

async fn collect(tasks: Vec<tokio::task::JoinHandle<Vec<Sample>>>, started: Instant) -> Outcome {
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.unwrap_or_default());
    }
    let wall = started.elapsed();
    let mut errors = BTreeMap::new();
    for error in samples.iter().filter_map(|s| s.error.clone()) {
        *errors.entry(error).or_default() += 1;
    }
    Outcome {
        samples,
        wall,
        errors,
    }
}

/// The same load sent straight to the fake LLM: one streamed chat completion per message, with
/// a prompt of the size the gateway sends. `first_delta` is the first content chunk.
pub async fn run_direct(base_url: &str, load: &Load) -> Result<Outcome> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(load.connections)
        .build()?;
    let url = Arc::new(format!("{base_url}/chat/completions"));
    let started = Instant::now();
    let tasks: Vec<_> = (0..load.connections)
        .map(|c| {
            let (client, url, load) = (client.clone(), url.clone(), load.clone());
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(load.warmup + load.messages);
                for m in 0..load.warmup + load.messages {
                    wait_turn(started, &load, c, load.connections, m).await;
                    let mut sample =
                        tokio::time::timeout(REPLY_TIMEOUT, direct_one(&client, &url, m))
                            .await
                            .unwrap_or_else(|_| Err(anyhow::anyhow!("client_timeout")))
                            .unwrap_or_else(|e| Sample {
                                error: Some(e.to_string()),
                                ..Sample::default()
                            });
                    sample.warmup = m < load.warmup;
                    samples.push(sample);
                    if !load.think.is_zero() {
                        tokio::time::sleep(load.think).await;
                    }
                }
                samples
            })
        })
        .collect();
    Ok(collect(tasks, started).await)
}

async fn direct_one(client: &reqwest::Client, url: &str, m: usize) -> Result<Sample> {
    let body = json!({
        "model": "fake", "stream": true, "stream_options": {"include_usage": true},
        "max_tokens": 512, "user": "3f1c9a0e7b5d2c4a",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant for this website. ".repeat(12)},
            {"role": "user", "content": format!("<untrusted_document id=\"0123456789abcdef0123456789abcdef\">\nDo you ship to Norway, and how long does it take? ({m})\n</untrusted_document>")},
        ],
    });
    let started = Instant::now();
    let response = client.post(url).json(&body).send().await?;
    let mut stream = response.error_for_status()?.bytes_stream();
    let mut sample = Sample {
        accepted: Some(started.elapsed()),
        ..Sample::default()
    };
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.context("stream")?;
        if sample.first_delta.is_none() && chunk.windows(10).any(|w| w == b"\"content\":") {
            sample.first_delta = Some(started.elapsed());
        }
    }
    sample.done = Some(started.elapsed());
    Ok(sample)
}

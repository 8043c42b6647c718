//! A real HTTP fake of an OpenAI-compatible LLM on loopback: streams SSE chat-completion chunks,
//! can be told to fail in each way a real upstream fails, and records every request body.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt;
use serde_json::{Value, json};

/// What the fake does with one request.
#[derive(Clone, Debug)]
pub enum Behavior {
    /// Streams these pieces, then usage and `[DONE]`.
    Reply(Vec<String>),
    /// Answers with this status and an OpenAI-style error body.
    Status(u16, &'static str),
    /// 429 with `Retry-After`.
    RateLimited(u64),
    /// 429 `insufficient_quota` (must never be retried).
    Quota,
    /// Accepts the connection and never answers.
    Hang,
    /// Streams pieces with a pause before each.
    SlowDrip(Vec<String>, Duration),
    /// A chunk that is not JSON.
    Malformed,
    /// Two pieces, then the connection is cut.
    ResetMidStream,
    /// `307 Temporary Redirect` to this URL (which would make a client re-send the body there).
    Redirect(String),
}

#[derive(Default)]
struct FakeState {
    requests: Mutex<Vec<Value>>,
    script: Mutex<VecDeque<Behavior>>,
    moderation_down: std::sync::atomic::AtomicBool,
    moderation_requests: std::sync::atomic::AtomicUsize,
    embedding_requests: std::sync::atomic::AtomicUsize,
    /// When set, every endpoint answers `307` to the same path under this base URL.
    redirect_to: Mutex<Option<String>>,
}

/// A running fake.
#[derive(Clone)]
pub struct FakeLlm {
    pub base_url: String,
    state: Arc<FakeState>,
}

/// The default reply's pieces.
pub const DEFAULT_REPLY: [&str; 4] = ["Hello", " from", " the", " fake"];

impl FakeLlm {
    pub async fn start() -> Self {
        let state = Arc::new(FakeState::default());
        let router = Router::new()
            .route("/v1/chat/completions", post(complete))
            .route("/v1/moderations", post(moderate))
            .route("/v1/embeddings", post(embeddings))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self {
            base_url: format!("http://{addr}/v1"),
            state,
        }
    }

    /// Queues behaviours for the next requests (then the default reply resumes).
    pub fn script(&self, behaviors: impl IntoIterator<Item = Behavior>) {
        self.state.script.lock().unwrap().extend(behaviors);
    }

    /// Every request body received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Makes `/moderations` answer 503 (or recover).
    pub fn set_moderation_down(&self, down: bool) {
        self.state
            .moderation_down
            .store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// Makes every endpoint (chat, moderation, embeddings) redirect to another base URL.
    pub fn redirect_everything_to(&self, base_url: &str) {
        *self.state.redirect_to.lock().unwrap() = Some(base_url.to_owned());
    }

    pub fn embedding_requests(&self) -> usize {
        self.state
            .embedding_requests
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn moderation_requests(&self) -> usize {
        self.state
            .moderation_requests
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn last_request(&self) -> Value {
        self.requests()
            .last()
            .cloned()
            .expect("the fake LLM received a request")
    }
}

/// Counts a request to `path`; the `307` it gets while redirecting, if that is set.
fn counted(
    state: &FakeState,
    counter: &std::sync::atomic::AtomicUsize,
    path: &str,
) -> Option<Response> {
    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    redirect(state, path)
}

/// The `307` every endpoint answers with while [`FakeLlm::redirect_everything_to`] is set.
fn redirect(state: &FakeState, path: &str) -> Option<Response> {
    let base = state.redirect_to.lock().unwrap().clone()?;
    Some(moved_to(format!("{base}{path}")))
}

fn moved_to(location: String) -> Response {
    (
        StatusCode::TEMPORARY_REDIRECT,
        [("location", location)],
        "moved; send the request again there",
    )
        .into_response()
}

async fn complete(State(state): State<Arc<FakeState>>, body: Bytes) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.requests.lock().unwrap().push(request);
    if let Some(moved) = redirect(&state, "/chat/completions") {
        return moved;
    }
    let behavior = state.script.lock().unwrap().pop_front();
    match behavior.unwrap_or_else(|| Behavior::Reply(DEFAULT_REPLY.map(String::from).to_vec())) {
        Behavior::Reply(pieces) => sse(pieces, Duration::ZERO, false),
        Behavior::SlowDrip(pieces, delay) => sse(pieces, delay, false),
        Behavior::ResetMidStream => sse(
            vec!["partial".into(), " reply".into()],
            Duration::from_millis(20),
            true,
        ),
        Behavior::Status(code, kind) => error(StatusCode::from_u16(code).unwrap(), kind, None),
        Behavior::RateLimited(secs) => error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            Some(secs),
        ),
        Behavior::Quota => error(StatusCode::TOO_MANY_REQUESTS, "insufficient_quota", None),
        Behavior::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Behavior::Redirect(to) => moved_to(to),
        Behavior::Malformed => {
            let body = "data: {this is not json\n\ndata: [DONE]\n\n";
            ([("content-type", "text/event-stream")], body).into_response()
        }
    }
}

/// Words grouped by meaning: a tiny, deterministic stand-in for an embedding model, so that a
/// question and a passage that share no word can still be close.
const CONCEPTS: [&[&str]; 5] = [
    &[
        "ship", "shipping", "delivery", "deliver", "package", "parcel", "arrive", "courier",
    ],
    &[
        "refund",
        "return",
        "returns",
        "money",
        "reimburse",
        "exchange",
    ],
    &[
        "open", "opening", "hours", "closed", "close", "schedule", "weekend",
    ],
    &["warranty", "guarantee", "broken", "repair", "defect"],
    &["tent", "tents", "camping", "stove"],
];

fn embed(text: &str) -> Vec<f32> {
    let words: Vec<String> = text
        .to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_owned)
        .collect();
    let mut vector: Vec<f32> = CONCEPTS
        .iter()
        .map(|group| words.iter().filter(|w| group.contains(&w.as_str())).count() as f32)
        .collect();
    vector.push(0.01);
    vector
}

async fn embeddings(State(state): State<Arc<FakeState>>, body: Bytes) -> Response {
    if let Some(moved) = counted(&state, &state.embedding_requests, "/embeddings") {
        return moved;
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let inputs: Vec<String> = match &request["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().unwrap_or_default().to_owned())
            .collect(),
        _ => Vec::new(),
    };
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": embed(t)}))
        .collect();
    axum::Json(json!({"object": "list", "model": "fake-embed", "data": data, "usage": {"prompt_tokens": 0, "total_tokens": 0}})).into_response()
}

/// Flags every category named as `FLAG:<category>` in the input.
async fn moderate(State(state): State<Arc<FakeState>>, body: Bytes) -> Response {
    if let Some(moved) = counted(&state, &state.moderation_requests, "/moderations") {
        return moved;
    }
    if state
        .moderation_down
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return error(StatusCode::SERVICE_UNAVAILABLE, "server_error", None);
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let input = request["input"].as_str().unwrap_or_default();
    let mut categories = serde_json::Map::new();
    for category in [
        "harassment",
        "self-harm/intent",
        "sexual/minors",
        "violence",
        "illicit",
    ] {
        categories.insert(
            category.into(),
            json!(input.contains(&format!("FLAG:{category}"))),
        );
    }
    let flagged = categories.values().any(|v| v == &json!(true));
    axum::Json(json!({"id": "modr-fake", "model": "fake-moderation", "results": [{"flagged": flagged, "categories": categories, "category_scores": {}}]})).into_response()
}

fn chunk(content: &str) -> String {
    let value = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "fake",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]});
    format!("data: {value}\n\n")
}

fn sse(pieces: Vec<String>, delay: Duration, cut: bool) -> Response {
    let tail = if cut {
        vec![Err(std::io::Error::other("connection reset"))]
    } else {
        let usage = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": "fake",
            "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}});
        vec![
            Ok(format!("data: {usage}\n\n")),
            Ok("data: [DONE]\n\n".to_owned()),
        ]
    };
    // Let the last piece reach the client before the connection is cut.
    let pause = if cut {
        Duration::from_millis(200)
    } else {
        Duration::ZERO
    };
    let mut tail = Some(tail);
    let tail = futures_util::stream::once(tokio::time::sleep(pause))
        .flat_map(move |()| futures_util::stream::iter(tail.take().unwrap_or_default()));
    let head = futures_util::stream::iter(pieces).then(move |piece| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, std::io::Error>(chunk(&piece))
    });
    let body = head.chain(tail).map(|r| r.map(Bytes::from));
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap()
}

fn error(status: StatusCode, code: &str, retry_after: Option<u64>) -> Response {
    let body =
        json!({"error": {"message": "fake failure", "type": code, "param": null, "code": code}});
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(secs) = retry_after {
        response.headers_mut().insert("retry-after", secs.into());
    }
    response
}

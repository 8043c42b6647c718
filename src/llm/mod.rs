//! Talking to the model: prompt assembly ([`prompt`]), the upstream backends (an
//! OpenAI-compatible streaming client and the built-in offline responder) and [`Llm`], which adds
//! the timeouts and the single early retry every request gets.

pub mod breaker;
pub mod offline;
pub mod openai;
pub mod prompt;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

pub use prompt::{PromptMessage, PromptRole};

/// The start of every HTTP client that sends visitor text upstream (chat, moderation,
/// embeddings): redirects are never followed. A `307`/`308` would have the client re-send the
/// same body, the visitor's words, to wherever the upstream points; the configured base URL is
/// the only place a prompt may go. The redirect is answered as the upstream failing, and logged
/// (status and target host only) so the operator can correct the base URL.
pub fn upstream_http() -> reqwest::ClientBuilder {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        tracing::warn!(
            status = attempt.status().as_u16(),
            to_host = %attempt.url().host_str().unwrap_or(""),
            "the upstream answered with a redirect, which is never followed; \
             set its base URL to the final address"
        );
        attempt.stop()
    });
    reqwest::Client::builder().redirect(policy)
}

/// One upstream request.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<PromptMessage>,
    pub max_tokens: u32,
    /// A pseudonym for the end user (a hash, never a raw id).
    pub user: String,
}

/// What a reply stream yields.
#[derive(Clone, Debug, PartialEq)]
pub enum ReplyEvent {
    Delta(String),
    Usage {
        prompt_tokens: u32,
        completion_tokens: u32,
    },
}

/// How an upstream call failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream unavailable: {0}")]
    Unavailable(String),
    /// An HTTP error status or a failed connect, which the transport already retried once.
    #[error("upstream refused: {0}")]
    Refused(String),
    #[error("upstream timed out")]
    Timeout,
    /// The circuit breaker is open: the upstream failed repeatedly and is not being called.
    #[error("upstream circuit open")]
    CircuitOpen,
    /// Billing or quota errors: retrying cannot help.
    #[error("upstream quota exhausted: {0}")]
    Quota(String),
}

impl UpstreamError {
    /// The widget error code for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            UpstreamError::Timeout => "upstream_timeout",
            UpstreamError::Unavailable(_)
            | UpstreamError::Refused(_)
            | UpstreamError::Quota(_)
            | UpstreamError::CircuitOpen => "upstream_unavailable",
        }
    }

    /// Broken streams and first-token timeouts get one more try; HTTP errors were already
    /// retried by the transport, and quota errors never are.
    fn retryable(&self) -> bool {
        matches!(self, UpstreamError::Unavailable(_) | UpstreamError::Timeout)
    }
}

pub type ReplyStream = BoxStream<'static, Result<ReplyEvent, UpstreamError>>;

/// Something that streams chat completions.
pub trait ChatBackend: Send + Sync + 'static {
    /// Starts a streamed completion; resolves once the upstream has accepted the request.
    fn start(&self, request: ChatRequest)
    -> BoxFuture<'static, Result<ReplyStream, UpstreamError>>;
    /// A short name for logs and metrics ("openai", "offline").
    fn name(&self) -> &'static str;
}

/// Limits on one upstream call.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// From sending the request to the first piece of text.
    pub first_token: Duration,
    /// From sending the request to the end of the reply.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            first_token: Duration::from_secs(20),
            total: Duration::from_secs(120),
        }
    }
}

/// A reply that has started: its first piece of text and the rest of the stream.
pub struct StartedReply {
    pub first: String,
    pub rest: ReplyStream,
    pub deadline: tokio::time::Instant,
    pub usage: Option<(u32, u32)>,
}

/// A backend plus timeouts, retry policy and a circuit breaker.
#[derive(Clone)]
pub struct Llm {
    backend: Arc<dyn ChatBackend>,
    timeouts: Timeouts,
    breaker: Arc<breaker::Breaker>,
}

impl Llm {
    /// With a breaker that opens after 5 failures in a row for 30 s.
    pub fn new(backend: Arc<dyn ChatBackend>, timeouts: Timeouts) -> Self {
        Self {
            backend,
            timeouts,
            breaker: Arc::new(breaker::Breaker::new(5, Duration::from_secs(30))),
        }
    }

    /// Replaces the circuit breaker's settings.
    pub fn with_breaker(mut self, threshold: u32, cooldown: Duration) -> Self {
        self.breaker = Arc::new(breaker::Breaker::new(threshold, cooldown));
        self
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Starts a reply and waits for its first text. Retries once, and only here, before any text
    /// has reached the visitor; quota errors are never retried.
    pub async fn start(&self, request: &ChatRequest) -> Result<StartedReply, UpstreamError> {
        if !self.breaker.allow() {
            return Err(UpstreamError::CircuitOpen);
        }
        let outcome = self.start_with_retry(request).await;
        self.breaker.record(outcome.is_ok());
        outcome
    }

    async fn start_with_retry(&self, request: &ChatRequest) -> Result<StartedReply, UpstreamError> {
        match self.attempt(request).await {
            Err(e) if e.retryable() => {
                tracing::info!(
                    backend = self.backend.name(),
                    error = e.code(),
                    "retrying upstream once"
                );
                self.attempt(request).await
            }
            other => other,
        }
    }

    async fn attempt(&self, request: &ChatRequest) -> Result<StartedReply, UpstreamError> {
        let started = tokio::time::Instant::now();
        let deadline = started + self.timeouts.total;
        let first_deadline = started + self.timeouts.first_token;
        let opening = async {
            let mut stream = self.backend.start(request.clone()).await?;
            let mut usage = None;
            loop {
                match stream.next().await {
                    Some(Ok(ReplyEvent::Delta(text))) if text.is_empty() => continue,
                    Some(Ok(ReplyEvent::Delta(text))) => return Ok((text, stream, usage)),
                    Some(Ok(ReplyEvent::Usage {
                        prompt_tokens,
                        completion_tokens,
                    })) => {
                        usage = Some((prompt_tokens, completion_tokens));
                    }
                    Some(Err(e)) => return Err(e),
                    None => return Ok((String::new(), stream, usage)),
                }
            }
        };
        match tokio::time::timeout_at(first_deadline, opening).await {
            Ok(Ok((first, rest, usage))) => Ok(StartedReply {
                first,
                rest,
                deadline,
                usage,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(UpstreamError::Timeout),
        }
    }
}

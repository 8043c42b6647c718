//! The OpenAI-compatible backend, through async-openai's streaming chat completions. Works with
//! any server that speaks `POST {base}/chat/completions` with SSE (OpenAI, vLLM, llama.cpp,
//! Ollama).

use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::ReqwestService;
use async_openai::middleware::retry::OpenAIRetryLayer;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestAssistantMessageContent,
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, ChatCompletionStreamOptions, CreateChatCompletionRequest,
};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;

use super::{ChatBackend, ChatRequest, PromptRole, ReplyEvent, ReplyStream, UpstreamError};

/// A client for one OpenAI-compatible base URL.
pub struct OpenAiBackend {
    client: Client<OpenAIConfig>,
}

impl OpenAiBackend {
    /// `base_url` is the API root, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8000/v1`.
    pub fn new(
        base_url: &str,
        api_key: Option<String>,
        connect_timeout: Duration,
    ) -> crate::error::Result<Self> {
        let mut config = OpenAIConfig::new().with_api_base(base_url.trim_end_matches('/'));
        if let Some(key) = api_key {
            config = config.with_api_key(key);
        }
        let http = super::upstream_http()
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| {
                crate::error::Error::Config(format!("cannot build the HTTP client: {e}"))
            })?;
        // The transport retries 429 (honouring Retry-After, never `insufficient_quota`), 5xx and
        // connect errors exactly once; `Llm` does not retry those again.
        let service = tower::ServiceBuilder::new()
            .layer(OpenAIRetryLayer::new(1))
            .service(ReqwestService::new(http.clone()));
        Ok(Self {
            client: Client::with_config(config)
                .with_http_client(http)
                .with_http_service(service),
        })
    }
}

impl ChatBackend for OpenAiBackend {
    fn start(
        &self,
        request: ChatRequest,
    ) -> BoxFuture<'static, Result<ReplyStream, UpstreamError>> {
        let client = self.client.clone();
        Box::pin(async move {
            let stream = client
                .chat()
                .create_stream_byot::<_, Chunk>(to_openai(request))
                .await
                .map_err(classify)?;
            let events = stream.flat_map(|item| {
                let events: Vec<Result<ReplyEvent, UpstreamError>> = match item {
                    Err(e) => vec![Err(classify(e))],
                    Ok(chunk) => {
                        let mut out: Vec<_> = chunk
                            .choices
                            .into_iter()
                            .filter_map(|c| c.delta.content)
                            .filter(|t| !t.is_empty())
                            .map(|t| Ok(ReplyEvent::Delta(t)))
                            .collect();
                        if let Some(u) = chunk.usage {
                            out.push(Ok(ReplyEvent::Usage {
                                prompt_tokens: u.prompt_tokens,
                                completion_tokens: u.completion_tokens,
                            }));
                        }
                        out
                    }
                };
                futures_util::stream::iter(events)
            });
            Ok(events.boxed())
        })
    }

    fn name(&self) -> &'static str {
        "openai"
    }
}

/// The parts of a streamed chunk that chatvault reads. Deserializing into async-openai's full
/// chunk type allocated its id, model, object and fingerprint strings for every token; serde
/// skips fields not named here.
#[derive(serde::Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    usage: Option<ChunkUsage>,
}

#[derive(serde::Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: ChunkDelta,
}

#[derive(Default, serde::Deserialize)]
struct ChunkDelta {
    content: Option<String>,
}

#[derive(serde::Deserialize)]
struct ChunkUsage {
    prompt_tokens: u32,
    completion_tokens: u32,
}

#[expect(
    deprecated,
    reason = "`max_tokens` and `user` are what OpenAI-compatible servers other than OpenAI understand"
)]
fn to_openai(request: ChatRequest) -> CreateChatCompletionRequest {
    let messages = request
        .messages
        .into_iter()
        .map(|m| match m.role {
            PromptRole::System => {
                ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
                    content: m.content.into(),
                    name: None,
                })
            }
            PromptRole::User => {
                ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
                    content: m.content.into(),
                    name: None,
                })
            }
            PromptRole::Assistant => {
                ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
                    content: Some(ChatCompletionRequestAssistantMessageContent::Text(
                        m.content,
                    )),
                    ..Default::default()
                })
            }
        })
        .collect();
    CreateChatCompletionRequest {
        model: request.model,
        messages,
        // `max_tokens` rather than `max_completion_tokens`: every OpenAI-compatible server
        // (vLLM, llama.cpp, Ollama) understands it.
        max_tokens: Some(request.max_tokens),
        user: Some(request.user),
        stream: Some(true),
        stream_options: Some(ChatCompletionStreamOptions {
            include_usage: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Maps a client error to what the widget is told. Quota and billing errors are never retried.
fn classify(error: OpenAIError) -> UpstreamError {
    match error {
        OpenAIError::ApiError(api) => {
            let code = api.api_error.code.as_deref().unwrap_or_default();
            let kind = api.api_error.r#type.as_deref().unwrap_or_default();
            let quota = [
                "insufficient_quota",
                "billing_hard_limit_reached",
                "billing_not_active",
            ];
            if quota.contains(&code) || quota.contains(&kind) {
                UpstreamError::Quota(api.status_code.to_string())
            } else {
                UpstreamError::Refused(format!("status {}", api.status_code))
            }
        }
        OpenAIError::Reqwest(e) if e.is_timeout() => UpstreamError::Timeout,
        OpenAIError::Reqwest(e) if e.is_connect() => {
            UpstreamError::Refused("connect failed".into())
        }
        OpenAIError::Reqwest(_) => UpstreamError::Unavailable("transport error".into()),
        OpenAIError::JSONDeserialize(..) => UpstreamError::Unavailable("malformed response".into()),
        OpenAIError::StreamError(_) => UpstreamError::Unavailable("stream broken".into()),
        other => UpstreamError::Unavailable(other.to_string().chars().take(120).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::Chunk;

    #[test]
    fn chunks_read_content_and_usage_and_ignore_the_rest() {
        let token: Chunk = serde_json::from_str(
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",
                "system_fingerprint":null,"choices":[{"index":0,"delta":{"role":"assistant",
                "content":"Hi"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        )
        .unwrap();
        assert_eq!(token.choices[0].delta.content.as_deref(), Some("Hi"));
        assert!(token.usage.is_none());
        let last: Chunk = serde_json::from_str(
            r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#,
        )
        .unwrap();
        let usage = last.usage.unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (12, 3));
        let empty: Chunk =
            serde_json::from_str(r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#).unwrap();
        assert!(empty.choices[0].delta.content.is_none());
    }
}

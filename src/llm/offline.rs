//! The built-in offline responder: no network, a deterministic streamed reply that says what it
//! is and how to configure a real model. Used when no LLM is configured.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;

use super::{ChatBackend, ChatRequest, PromptRole, ReplyEvent, ReplyStream, UpstreamError, prompt};

/// The offline responder.
pub struct OfflineBackend {
    /// Pause between words, so the widget visibly streams.
    pub word_delay: Duration,
}

impl Default for OfflineBackend {
    fn default() -> Self {
        Self {
            word_delay: Duration::from_millis(25),
        }
    }
}

/// The reply text for a request (pure, for tests).
pub fn reply_text(request: &ChatRequest) -> String {
    let question = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == PromptRole::User)
        .map(|m| visitor_text(&m.content))
        .unwrap_or_default();
    let words = question.split_whitespace().count();
    format!(
        "This is chatvault's offline responder: no language model is configured, so I cannot really \
         answer. Your message ({words} words) was stored encrypted in this site's own vault. To get \
         real answers, start the server with --llm-base-url (any OpenAI-compatible API) and \
         --llm-model, with the API key in OPENAI_API_KEY."
    )
}

/// The visitor text inside a wrapped turn.
fn visitor_text(wrapped: &str) -> String {
    let body = wrapped
        .split_once('\n')
        .map(|(_, rest)| rest)
        .unwrap_or(wrapped);
    let body = body
        .rsplit_once('\n')
        .map(|(inner, _)| inner)
        .unwrap_or(body);
    prompt::unescape(body)
}

impl ChatBackend for OfflineBackend {
    fn start(
        &self,
        request: ChatRequest,
    ) -> BoxFuture<'static, Result<ReplyStream, UpstreamError>> {
        let text = reply_text(&request);
        let delay = self.word_delay;
        let prompt_tokens = request
            .messages
            .iter()
            .map(|m| prompt::estimate_tokens(&m.content))
            .sum::<u32>();
        let completion_tokens = prompt::estimate_tokens(&text);
        Box::pin(async move {
            let pieces: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
            let words = futures_util::stream::iter(pieces).then(move |piece| async move {
                tokio::time::sleep(delay).await;
                Ok(ReplyEvent::Delta(piece))
            });
            let usage = futures_util::stream::once(async move {
                Ok(ReplyEvent::Usage {
                    prompt_tokens,
                    completion_tokens,
                })
            });
            Ok(words.chain(usage).boxed())
        })
    }

    fn name(&self) -> &'static str {
        "offline"
    }
}

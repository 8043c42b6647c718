//! The built-in offline responder: no network, a deterministic streamed reply that quotes the
//! best knowledge-base passage it was given (if any), says what it is and how to configure a real
//! model. Used when no LLM is configured.

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

/// The reply text for a request (pure, for tests): the best knowledge-base passage quoted, when
/// the request carries one, then what this responder is.
pub fn reply_text(request: &ChatRequest) -> String {
    let question = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == PromptRole::User)
        .map(|m| visitor_text(&m.content))
        .unwrap_or_default();
    let words = question.split_whitespace().count();
    let about = format!(
        "This is chatvault's offline responder: no language model is configured, so I cannot really \
         answer. Your message ({words} words) was stored encrypted in this site's own vault. To get \
         real answers, start the server with --llm-base-url (any OpenAI-compatible API) and \
         --llm-model, with the API key in OPENAI_API_KEY."
    );
    match best_passage(request) {
        Some(passage) => format!(
            "From this site's knowledge base: \u{201c}{}\u{201d}\n\n(chatvault's offline responder \
             quotes the closest passage; your message ({words} words) was stored encrypted. For real \
             answers, start the server with --llm-base-url and --llm-model.)",
            shorten(&passage, QUOTE_CHARS)
        ),
        None => about,
    }
}

/// The longest quote the offline responder gives.
const QUOTE_CHARS: usize = 600;

/// The first (best-ranked) knowledge-base passage of the request, unwrapped.
fn best_passage(request: &ChatRequest) -> Option<String> {
    request
        .messages
        .iter()
        .filter(|m| m.role == PromptRole::User)
        .find(|m| {
            m.content
                .lines()
                .next()
                .is_some_and(|l| l.contains(" source=\"kb:"))
        })
        .map(|m| visitor_text(&m.content))
}

/// At most `max` characters, cut at a word and marked with an ellipsis.
fn shorten(text: &str, max: usize) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= max {
        return text;
    }
    let cut: String = text.chars().take(max).collect();
    let cut = cut.rsplit_once(' ').map_or(cut.as_str(), |(head, _)| head);
    format!("{cut}\u{2026}")
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::prompt::{Nonce, PromptMessage, wrap_passage, wrap_visitor_text};

    fn request(messages: Vec<PromptMessage>) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            messages,
            max_tokens: 10,
            user: "u".into(),
        }
    }

    #[test]
    fn the_best_passage_is_quoted_unescaped_and_the_question_is_not() {
        let nonce = Nonce::generate();
        let user = |content| PromptMessage {
            role: PromptRole::User,
            content,
        };
        let text = reply_text(&request(vec![
            user(wrap_passage(
                &nonce,
                "d_1",
                "Returns are free within 30 days <always>.",
            )),
            user(wrap_passage(&nonce, "d_2", "Second best.")),
            user(wrap_visitor_text(&nonce, "can I return shoes?")),
        ]));
        assert!(text.starts_with("From this site's knowledge base: \u{201c}Returns are free within 30 days <always>.\u{201d}"), "{text}");
        assert!(!text.contains("Second best"));
        assert!(text.contains("(4 words)"));
        let plain = reply_text(&request(vec![user(wrap_visitor_text(&nonce, "hi"))]));
        assert!(plain.starts_with("This is chatvault's offline responder"));
    }
}

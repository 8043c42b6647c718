//! One submitted message, end to end: commit it (creating the conversation on first submit),
//! assemble the wrapped prompt, stream the reply, commit the reply with its usage. The tenant's
//! redaction setting applies here: to what is committed (`before_store`) and to every turn sent
//! upstream (`before_llm`).

use std::borrow::Cow;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use rusqlite::Connection;

use crate::catalog::settings::TenantSettings;
use crate::crypto;
use crate::db;
use crate::domain::{ConversationId, MessageId, Role, SubmitId, TenantId};
use crate::error::Result;
use crate::knowledge;
use crate::llm::prompt::{self, Nonce, Passage, PromptInput, Turn};
use crate::llm::{ChatRequest, Llm, ReplyEvent, StartedReply, UpstreamError};
use crate::redact::Redaction;
use crate::vault::repo::{self, DailyUsage, Inserted, NewMessage, StoredMessage};

/// Earlier messages loaded for the prompt (then trimmed to the token budget).
const HISTORY_MESSAGES: usize = 40;

/// What committing a visitor message produced.
pub enum Committed {
    Stored {
        conversation: ConversationId,
        /// Set only when this submit created the conversation.
        token: Option<String>,
        message: MessageId,
        /// The conversation's earlier turns, oldest first (then trimmed to the token budget).
        history: Vec<Turn>,
        /// A resent submit whose reply was already committed.
        existing_reply: Option<StoredMessage>,
    },
    /// Today's token or message budget is spent; nothing was written.
    OverBudget { retry_after_ms: u64 },
    /// The conversation holds its maximum number of visitor messages; nothing was written.
    TurnLimit,
}

/// Commits a visitor message in one transaction (with its usage), or reports the budget spent.
pub fn commit_visitor_message(
    conn: &Connection,
    conversation: Option<&ConversationId>,
    submit: &SubmitId,
    text: &str,
    settings: &TenantSettings,
) -> Result<Committed> {
    let now = db::now_ms();
    let today = utc_day(now);
    let usage = repo::usage_on(conn, &today)?;
    let tokens_spent = settings.daily_token_budget > 0
        && (usage.tokens_in + usage.tokens_out) as u64 >= settings.daily_token_budget;
    let messages_spent =
        settings.daily_message_budget > 0 && usage.messages as u64 >= settings.daily_message_budget;
    if tokens_spent || messages_spent {
        return Ok(Committed::OverBudget {
            retry_after_ms: ms_until_next_utc_day(now),
        });
    }
    // One read says whether the conversation still exists and how many turns it holds.
    let existing = match conversation {
        Some(id) => repo::visitor_turns(conn, id)?.map(|turns| (id.clone(), turns)),
        None => None,
    };
    let (conversation, token, turns) = match existing {
        Some((id, turns)) => (id, None, turns),
        None => {
            let id = ConversationId::generate();
            let token = crypto::random_token();
            repo::create_conversation(conn, &id, &crypto::hash_secret(&token), now)?;
            (id, Some(token), 0)
        }
    };
    let resent = repo::find_by_submit(conn, &conversation, submit)?;
    if resent.is_none() && turns >= i64::from(settings.max_turns_per_conversation) {
        return Ok(Committed::TurnLimit);
    }
    let history = repo::prompt_history(conn, &conversation, HISTORY_MESSAGES, resent.as_ref())?
        .into_iter()
        .map(|(role, text)| Turn { role, text })
        .collect();
    let text = settings.redaction.for_store(text);
    let text = text.as_ref();
    let tokens = i64::from(prompt::estimate_tokens(text));
    let new = NewMessage {
        conversation: &conversation,
        role: Role::Visitor,
        text,
        at: now,
        submit_id: Some(submit),
        reply_to: None,
        tokens,
    };
    // The submit id was looked up above: no second lookup inside the insert.
    let inserted = match resent {
        Some(existing) => Inserted::Duplicate(existing),
        None => Inserted::New(repo::insert_new_message(conn, &new)?),
    };
    let (message, existing_reply) = match inserted {
        Inserted::New(id) => {
            repo::add_usage(
                conn,
                &DailyUsage {
                    day: today,
                    messages: 1,
                    ..DailyUsage::default()
                },
            )?;
            (id, None)
        }
        Inserted::Duplicate(id) => {
            let reply = repo::reply_to(conn, &conversation, &id)?;
            (id, reply)
        }
    };
    Ok(Committed::Stored {
        conversation,
        token,
        message,
        history,
        existing_reply,
    })
}

/// Commits a finished reply (redacted when the tenant redacts before storing) and the day's
/// usage in one transaction.
pub fn commit_reply(
    conn: &Connection,
    conversation: &ConversationId,
    reply_to: &MessageId,
    text: &str,
    usage: (u32, u32),
    redaction: Redaction,
) -> Result<MessageId> {
    let now = db::now_ms();
    let text = redaction.for_store(text);
    let text = text.as_ref();
    let new = NewMessage {
        conversation,
        role: Role::Assistant,
        text,
        at: now,
        submit_id: None,
        reply_to: Some(reply_to),
        tokens: i64::from(usage.1),
    };
    let id = match repo::insert_message(conn, &new)? {
        Inserted::New(id) | Inserted::Duplicate(id) => id,
    };
    let delta = DailyUsage {
        day: utc_day(now),
        replies: 1,
        tokens_in: i64::from(usage.0),
        tokens_out: i64::from(usage.1),
        ..DailyUsage::default()
    };
    repo::add_usage(conn, &delta)?;
    Ok(id)
}

/// The knowledge-base passages for a visitor's question (none when the tenant has no documents).
/// A failed lookup is logged and answered without passages rather than refusing the message.
pub fn retrieve_passages(
    conn: &Connection,
    question: &str,
    query_vector: Option<&[f32]>,
) -> knowledge::Retrieved {
    knowledge::search::retrieve_hybrid(
        conn,
        question,
        query_vector,
        knowledge::PASSAGE_BUDGET_TOKENS,
    )
    .unwrap_or_else(|e| {
        tracing::warn!(error = %e, "knowledge retrieval failed; answering without passages");
        knowledge::Retrieved::default()
    })
}

/// The upstream request for a visitor turn.
#[expect(
    clippy::too_many_arguments,
    reason = "each is one distinct input of the prompt; the one caller names them all"
)]
pub fn build_request(
    tenant: &TenantId,
    conversation: &ConversationId,
    settings: &TenantSettings,
    default_model: &str,
    mut history: Vec<Turn>,
    text: &str,
    passages: &[Passage],
    history_budget: u32,
) -> ChatRequest {
    let redaction = settings.redaction;
    for turn in &mut history {
        if let Cow::Owned(redacted) = redaction.for_llm(&turn.text) {
            turn.text = redacted;
        }
    }
    let text = redaction.for_llm(text);
    let input = PromptInput {
        tenant_prompt: &settings.system_prompt,
        history: &history,
        passages,
        new_text: &text,
        history_budget_tokens: history_budget,
    };
    ChatRequest {
        model: settings
            .model
            .clone()
            .unwrap_or_else(|| default_model.to_owned()),
        messages: prompt::assemble(&input, &Nonce::generate()),
        max_tokens: settings.max_reply_tokens,
        user: crypto::pseudonym(&[tenant.as_str(), conversation.as_str()]),
    }
}

/// One step of a reply as the session sees it.
pub enum Step {
    Delta(String),
    Usage(u32, u32),
    Failed(UpstreamError),
    End,
}

/// An upstream request under way on its own task: started while the visitor's message was still
/// being committed, so the commit and the model's first token overlap. Dropping it cancels the
/// request (a failed commit, a closed socket).
pub struct Opening(tokio::task::JoinHandle<Result<StartedReply, UpstreamError>>);

impl Opening {
    /// Sends the request now (with its one early retry) and waits for the first text.
    pub fn start(llm: Llm, request: ChatRequest) -> Self {
        Self(tokio::spawn(async move { llm.start(&request).await }))
    }
}

impl Drop for Opening {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Future for Opening {
    type Output = Result<StartedReply, UpstreamError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|joined| {
            joined.unwrap_or_else(|_| Err(UpstreamError::Unavailable("reply task ended".into())))
        })
    }
}

enum State {
    Opening(Opening),
    /// The rest of the reply and its total deadline: one timer for the whole reply rather than
    /// one set up and torn down around every token.
    Streaming(
        crate::llm::ReplyStream,
        std::pin::Pin<Box<tokio::time::Sleep>>,
    ),
    Done,
}

/// The reply as a stream of steps: the opened request's first text, then deltas until the end,
/// a failure or the total deadline.
pub fn reply_steps(opening: Opening) -> BoxStream<'static, Step> {
    futures_util::stream::unfold(State::Opening(opening), |state| async move {
        match state {
            State::Opening(opening) => match opening.await {
                Ok(started) => {
                    let first = match started.usage {
                        Some((p, c)) if started.first.is_empty() => Step::Usage(p, c),
                        _ => Step::Delta(started.first),
                    };
                    let deadline = Box::pin(tokio::time::sleep_until(started.deadline));
                    Some((first, State::Streaming(started.rest, deadline)))
                }
                Err(e) => Some((Step::Failed(e), State::Done)),
            },
            State::Streaming(mut rest, mut deadline) => {
                let next = tokio::select! {
                    biased;
                    next = rest.next() => Some(next),
                    () = deadline.as_mut() => None,
                };
                match next {
                    Some(Some(Ok(ReplyEvent::Delta(text)))) => {
                        Some((Step::Delta(text), State::Streaming(rest, deadline)))
                    }
                    Some(Some(Ok(ReplyEvent::Usage {
                        prompt_tokens,
                        completion_tokens,
                    }))) => Some((
                        Step::Usage(prompt_tokens, completion_tokens),
                        State::Streaming(rest, deadline),
                    )),
                    Some(Some(Err(e))) => Some((Step::Failed(e), State::Done)),
                    Some(None) => Some((Step::End, State::Done)),
                    None => Some((Step::Failed(UpstreamError::Timeout), State::Done)),
                }
            }
            State::Done => None,
        }
    })
    .boxed()
}

/// `YYYY-MM-DD` (UTC) of a time in ms.
pub fn utc_day(ms: i64) -> String {
    db::format_time(ms)[..10].to_owned()
}

fn ms_until_next_utc_day(now: i64) -> u64 {
    const DAY: i64 = 86_400_000;
    u64::try_from(DAY - now.rem_euclid(DAY)).unwrap_or(0)
}

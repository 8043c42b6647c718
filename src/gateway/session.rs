//! One widget socket. A single task reads frames, streams the reply in progress and keeps the
//! socket alive; it answers every frame it cannot use with an `error` frame and never stores or
//! logs anything from such a frame.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, SinkExt, StreamExt};

use super::frames::{ClientFrame, FrameMessage, Limits, ServerFrame, parse_client_frame};
use super::reply::{self, Committed, Step};
use crate::app::{App, AppState};
use crate::catalog::settings::TenantSettings;
use crate::catalog::tenants::Tenant;
use crate::cluster::gates::Pass;
use crate::crypto;
use crate::db;
use crate::domain::{ConversationId, MessageId, SubmitId, TenantId};
use crate::limits::{self, Limiter};
use crate::safety::Verdict;
use crate::vault::repo::{self, StoredMessage};
use crate::webhooks::Event;

/// Why a session ended (for the connection's log line).
type End = &'static str;

struct Pending {
    id: SubmitId,
    text: String,
}

/// What a visitor message's job read for its prompt, handed over before the commit.
struct Prepared {
    conversation: ConversationId,
    history: Vec<crate::llm::prompt::Turn>,
    retrieved: crate::knowledge::Retrieved,
}

/// A reply whose upstream request is under way.
struct Opened {
    opening: reply::Opening,
    prompt_estimate: u32,
    sources: Vec<super::frames::Source>,
}

struct ActiveReply {
    id: SubmitId,
    conversation: ConversationId,
    visitor_message: MessageId,
    text: String,
    usage: Option<(u32, u32)>,
    prompt_estimate: u32,
    started: Instant,
    steps: BoxStream<'static, Step>,
    /// Knowledge-base documents the prompt drew on, for the `done` frame.
    sources: Vec<super::frames::Source>,
}

struct Session {
    app: AppState,
    tenant: TenantId,
    settings: TenantSettings,
    ip: IpAddr,
    conversation: Option<ConversationId>,
    limiter: Limiter,
    queue: VecDeque<Pending>,
    active: Option<ActiveReply>,
    /// The tenant's gate; when the tenant moves, the reply in progress finishes, queued submits
    /// are left for the widget to resend, and the socket closes with 1012.
    pass: Pass,
}

/// Serves one upgraded socket until it closes.
pub async fn run(mut socket: WebSocket, app: AppState, tenant: Tenant, ip: IpAddr, pass: Pass) {
    let Ok(tenant_id) = TenantId::parse(&tenant.id) else {
        return;
    };
    let started = Instant::now();
    let mut session = Session {
        limiter: limits::per_minute(tenant.settings.messages_per_minute),
        app,
        tenant: tenant_id,
        settings: tenant.settings,
        ip,
        conversation: None,
        queue: VecDeque::new(),
        active: None,
        pass,
    };
    let end = session.serve(&mut socket).await.err().unwrap_or("closed");
    tracing::info!(tenant = %session.tenant, client_ip = %ip, duration_ms = started.elapsed().as_millis() as u64, outcome = end, "widget connection closed");
}

impl Session {
    async fn serve(&mut self, ws: &mut WebSocket) -> Result<(), End> {
        let limits = Limits {
            max_message_chars: self.settings.max_message_chars,
            messages_per_minute: self.settings.messages_per_minute,
        };
        send(
            &self.app,
            ws,
            ServerFrame::Hello {
                protocol: 1,
                limits,
            },
        )
        .await?;
        // The first ping is one period away. (`interval`'s immediate first tick is not immediate:
        // the timer rounds its deadline up to the next millisecond, and the visitor's first
        // frame, already on its way, waited for it.)
        let period = self.app.config.ping_interval;
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let idle = self.app.config.idle_timeout;
        let mut idle_deadline = tokio::time::Instant::now() + idle;
        let shutdown = self.app.shutdown.clone();
        loop {
            tokio::select! {
                () = shutdown.cancelled(), if self.active.is_none() => {
                    return close(ws, close_code::AWAY, "server shutting down").await;
                }
                () = self.pass.asked_to_leave(), if self.active.is_none() => {
                    return close(ws, close_code::RESTART, "tenant moving; reconnect").await;
                }
                incoming = ws.recv() => {
                    // Only frames from the visitor count as activity; pongs answer our pings.
                    if matches!(incoming, Some(Ok(Message::Text(_) | Message::Binary(_)))) {
                        idle_deadline = tokio::time::Instant::now() + idle;
                    }
                    match incoming {
                        None | Some(Ok(Message::Close(_))) => return Ok(()),
                        Some(Err(e)) => return self.on_read_error(ws, e).await,
                        Some(Ok(Message::Text(text))) if text.len() > super::MAX_FRAME_BYTES => {
                            send(&self.app, ws, ServerFrame::error("too_large", "frames are limited to 64 KiB")).await?;
                            return close(ws, close_code::SIZE, "frame too large").await;
                        }
                        Some(Ok(Message::Text(text))) => self.on_text(ws, text.as_str()).await?,
                        Some(Ok(Message::Binary(_))) => {
                            send(&self.app, ws, ServerFrame::error("unsupported_frame", "frames must be JSON text")).await?;
                            return close(ws, close_code::UNSUPPORTED, "binary frames are not accepted").await;
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    }
                }
                step = next_step(&mut self.active) => self.on_steps(ws, step).await?,
                _ = ping.tick() => ws.send(Message::Ping(Default::default())).await.map_err(|_| "write failed")?,
                () = tokio::time::sleep_until(idle_deadline), if self.active.is_none() => {
                    return close(ws, close_code::NORMAL, "idle timeout").await;
                }
            }
        }
    }

    async fn on_read_error(&mut self, ws: &mut WebSocket, error: axum::Error) -> Result<(), End> {
        let too_large = error
            .into_inner()
            .downcast_ref::<tungstenite::Error>()
            .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)));
        if too_large {
            send(
                &self.app,
                ws,
                ServerFrame::error("too_large", "frames are limited to 64 KiB"),
            )
            .await?;
            return close(ws, close_code::SIZE, "frame too large").await;
        }
        Err("read error")
    }

    async fn on_text(&mut self, ws: &mut WebSocket, text: &str) -> Result<(), End> {
        let frame = match parse_client_frame(text) {
            Ok(frame) => frame,
            Err(e) => {
                return send(
                    &self.app,
                    ws,
                    ServerFrame::error(e.code(), "that frame is not part of the widget protocol"),
                )
                .await;
            }
        };
        match frame {
            ClientFrame::Submit { id, text } => self.on_submit(ws, id, text).await,
            ClientFrame::Resume {
                conversation,
                token,
            } => self.on_resume(ws, &conversation, &token).await,
            ClientFrame::Transcript => self.on_transcript(ws).await,
            ClientFrame::Erase => self.on_erase(ws).await,
        }
    }

    async fn on_submit(&mut self, ws: &mut WebSocket, id: String, text: String) -> Result<(), End> {
        let Some(submit) = SubmitId::parse(&id) else {
            return send(
                &self.app,
                ws,
                ServerFrame::error("invalid_frame", "submit ids are 1-64 of A-Z a-z 0-9 _ -"),
            )
            .await;
        };
        let text = text.trim();
        if text.is_empty() {
            return send(
                &self.app,
                ws,
                ServerFrame::error_for(submit.as_str(), "empty_message", "the message is empty"),
            )
            .await;
        }
        if text.chars().count() > self.settings.max_message_chars as usize {
            let message = format!(
                "messages are limited to {} characters",
                self.settings.max_message_chars
            );
            return send(
                &self.app,
                ws,
                ServerFrame::error_for(submit.as_str(), "too_large", message),
            )
            .await;
        }
        let pending = Pending {
            id: submit,
            text: text.to_owned(),
        };
        if self.active.is_some() || !self.queue.is_empty() {
            if self.queue.len() >= self.app.config.reply_queue {
                return send(
                    &self.app,
                    ws,
                    ServerFrame::error_for(
                        pending.id.as_str(),
                        "busy",
                        "a reply is still being written; try again when it is done",
                    ),
                )
                .await;
            }
            self.queue.push_back(pending);
            return Ok(());
        }
        if self.pass.is_asked_to_leave() {
            return close(ws, close_code::RESTART, "tenant moving; reconnect").await;
        }
        self.begin(ws, pending).await
    }

    /// Commits the visitor message, answers `accepted`, and starts the reply.
    async fn begin(&mut self, ws: &mut WebSocket, pending: Pending) -> Result<(), End> {
        let id = pending.id.clone();
        // Per socket, per tenant, and per conversation (shared by every socket resuming it).
        let limited = limits::check(&self.limiter)
            .and_then(|()| {
                self.app
                    .tenant_limits
                    .check(&self.tenant, self.settings.tenant_messages_per_minute)
            })
            .and_then(|()| match &self.conversation {
                Some(conversation) => self
                    .app
                    .conversation_limits
                    .check(conversation, self.settings.messages_per_minute),
                None => Ok(()),
            });
        if let Err(wait) = limited {
            let retry_after_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
            log_message(
                &self.app.metrics,
                &self.tenant,
                self.ip,
                Duration::ZERO,
                "refused",
                Some("rate_limited"),
            );
            let frame = ServerFrame::Error {
                code: "rate_limited",
                message: "too many messages; please wait a moment".into(),
                id: Some(id.to_string()),
                retry_after_ms: Some(retry_after_ms),
            };
            return send(&self.app, ws, frame).await;
        }
        let started = Instant::now();
        let flags = match self
            .app
            .safety
            .check(&self.settings.safety, &pending.text)
            .await
        {
            Verdict::Pass { flags } => flags,
            Verdict::Block { category } => {
                log_message(
                    &self.app.metrics,
                    &self.tenant,
                    self.ip,
                    started.elapsed(),
                    "refused",
                    Some("content_blocked"),
                );
                let message =
                    format!("this message was blocked by the site's content policy ({category})");
                return send(
                    &self.app,
                    ws,
                    ServerFrame::error_for(id.as_str(), "content_blocked", message),
                )
                .await;
            }
            Verdict::Unavailable => {
                log_message(
                    &self.app.metrics,
                    &self.tenant,
                    self.ip,
                    started.elapsed(),
                    "refused",
                    Some("upstream_unavailable"),
                );
                return send(
                    &self.app,
                    ws,
                    ServerFrame::error_for(
                        id.as_str(),
                        "upstream_unavailable",
                        "the safety check is unavailable; please try again",
                    ),
                )
                .await;
            }
        };
        let (conversation, settings, text) = (
            self.conversation.clone(),
            self.settings.clone(),
            pending.text.clone(),
        );
        let query_vector =
            embed_question(self.app.embedder.clone(), &pending.text, &self.tenant).await;
        let submit = id.clone();
        let (prepared_tx, prepared_rx) = tokio::sync::oneshot::channel();
        let queued = self.app.store.vault.enqueue(&self.tenant, move |conn| {
            let mut committed = reply::commit_visitor_message(
                conn,
                conversation.as_ref(),
                &submit,
                &text,
                &settings,
            )?;
            if let Committed::Stored {
                conversation,
                message,
                history,
                existing_reply: None,
                ..
            } = &mut committed
            {
                if !flags.is_empty() {
                    repo::set_flags(conn, message, &flags)?;
                }
                let retrieved = reply::retrieve_passages(conn, &text, query_vector.as_deref());
                let _ = prepared_tx.send(Prepared {
                    conversation: conversation.clone(),
                    history: std::mem::take(history),
                    retrieved,
                });
            }
            Ok(committed)
        });
        // The job hands over what the prompt needs before its batch commits, so the upstream
        // request is sent while the commit is written. Nothing of the reply reaches the visitor
        // before `accepted`, and a failed commit drops (cancels) the request.
        let (committed, opened) = match queued {
            Ok(commit) => {
                let opened = prepared_rx
                    .await
                    .ok()
                    .map(|p| self.open_reply(p, &pending.text));
                (commit.await, opened)
            }
            Err(e) => (Err(e), None),
        };
        let (conversation, token, message, existing_reply) = match committed {
            Ok(Committed::Stored {
                conversation,
                token,
                message,
                existing_reply,
                ..
            }) => (conversation, token, message, existing_reply),
            Ok(Committed::TurnLimit) => {
                log_message(
                    &self.app.metrics,
                    &self.tenant,
                    self.ip,
                    started.elapsed(),
                    "refused",
                    Some("quota_exceeded"),
                );
                let message =
                    "this conversation has reached its length limit; please start a new one";
                return send(
                    &self.app,
                    ws,
                    ServerFrame::error_for(id.as_str(), "quota_exceeded", message),
                )
                .await;
            }
            Ok(Committed::OverBudget { retry_after_ms }) => {
                log_message(
                    &self.app.metrics,
                    &self.tenant,
                    self.ip,
                    started.elapsed(),
                    "refused",
                    Some("quota_exceeded"),
                );
                let frame = ServerFrame::Error {
                    code: "quota_exceeded",
                    message: "this site's assistant has reached its daily limit".into(),
                    id: Some(id.to_string()),
                    retry_after_ms: Some(retry_after_ms),
                };
                return send(&self.app, ws, frame).await;
            }
            Err(e) => {
                tracing::warn!(tenant = %self.tenant, error = %e, "could not store a visitor message");
                log_message(
                    &self.app.metrics,
                    &self.tenant,
                    self.ip,
                    started.elapsed(),
                    "failed",
                    Some("storage_unavailable"),
                );
                return send(
                    &self.app,
                    ws,
                    ServerFrame::error_for(
                        id.as_str(),
                        "storage_unavailable",
                        "the message could not be saved; please try again",
                    ),
                )
                .await;
            }
        };
        self.conversation = Some(conversation.clone());
        // Fed, not yet flushed: every path below flushes it at once, together with the reply's
        // first delta when that has already arrived (it usually has: the request was sent while
        // the commit was written), so the two leave in one write instead of two.
        let sent = feed(
            ws,
            ServerFrame::Accepted {
                id: id.to_string(),
                conversation: conversation.to_string(),
                token,
            },
        )
        .await;
        // After `accepted` is on its way (building the event redacts the text), and whether or
        // not it could be sent: the message is committed either way.
        if existing_reply.is_none() {
            self.app
                .webhooks
                .emit_with(&self.tenant, || Event::Message {
                    conversation: conversation.to_string(),
                    message: message.to_string(),
                    role: "visitor",
                    at: crate::db::now_ms(),
                    text: self
                        .settings
                        .redaction
                        .for_store(&pending.text)
                        .into_owned(),
                });
        }
        sent?;
        if let Some(reply) = existing_reply {
            send(
                &self.app,
                ws,
                ServerFrame::Delta {
                    id: id.to_string(),
                    text: reply.text,
                },
            )
            .await?;
            return send(
                &self.app,
                ws,
                ServerFrame::Done {
                    id: id.to_string(),
                    message: reply.id,
                    sources: Vec::new(),
                },
            )
            .await;
        }
        let Some(opened) = opened else {
            // The job always hands over a new message's prompt; this is a bug, not a visitor's.
            tracing::error!(tenant = %self.tenant, "a committed message had no prompt");
            return send(
                &self.app,
                ws,
                ServerFrame::error_for(id.as_str(), "internal", "something went wrong"),
            )
            .await;
        };
        let mut steps = reply::reply_steps(opened.opening);
        let ready = steps.next().now_or_never();
        self.active = Some(ActiveReply {
            id,
            conversation,
            visitor_message: message,
            text: String::new(),
            usage: None,
            prompt_estimate: opened.prompt_estimate,
            started,
            steps,
            sources: opened.sources,
        });
        match ready {
            // `on_steps` writes the first delta (and `accepted` before it) without delay.
            Some(step) => self.on_steps(ws, step.unwrap_or(Step::End)).await,
            None => flush(ws).await,
        }
    }

    /// Builds the upstream request for a prepared visitor turn and sends it.
    fn open_reply(&self, prepared: Prepared, text: &str) -> Opened {
        let request = reply::build_request(
            &self.tenant,
            &prepared.conversation,
            &self.settings,
            &self.app.config.llm.model,
            prepared.history,
            text,
            &prepared.retrieved.passages,
            self.app.config.history_budget_tokens,
        );
        let prompt_estimate = request
            .messages
            .iter()
            .map(|m| crate::llm::prompt::estimate_tokens(&m.content))
            .sum();
        let sources = prepared
            .retrieved
            .sources
            .into_iter()
            .map(|s| super::frames::Source {
                id: s.id,
                title: s.title,
                url: s.url,
            })
            .collect();
        Opened {
            opening: reply::Opening::start(self.app.llm.clone(), request),
            prompt_estimate,
            sources,
        }
    }

    /// Handles `first` and every step of the reply already waiting behind it. Their `delta`
    /// frames (one per step, as before) are written together with one flush: a frame per
    /// write call cost a syscall and a TCP segment each. The reply's first delta is never held
    /// back: it goes out at once, so batching adds nothing to the time to first delta.
    async fn on_steps(&mut self, ws: &mut WebSocket, first: Step) -> Result<(), End> {
        let mut step = first;
        loop {
            let Some(active) = self.active.as_mut() else {
                return flush(ws).await;
            };
            match step {
                Step::Delta(text) => {
                    let first = active.text.is_empty();
                    if first {
                        self.app.metrics.first_token(active.started.elapsed());
                    }
                    active.text.push_str(&text);
                    let frame = ServerFrame::Delta {
                        id: active.id.to_string(),
                        text,
                    };
                    if first {
                        send(&self.app, ws, frame).await?;
                    } else {
                        feed(ws, frame).await?;
                    }
                }
                Step::Usage(prompt, completion) => active.usage = Some((prompt, completion)),
                Step::End | Step::Failed(_) => {
                    // Everything fed so far goes out before the reply is committed or refused.
                    flush(ws).await?;
                    return self.on_step(ws, step).await;
                }
            }
            let mut next = active.steps.next().now_or_never();
            if next.is_none() {
                // One turn of the scheduler lets the upstream reader hand over the rest of what
                // it has already received, so a burst leaves in one write instead of several.
                tokio::task::yield_now().await;
                next = active.steps.next().now_or_never();
            }
            match next {
                Some(next) => step = next.unwrap_or(Step::End),
                None => return flush(ws).await,
            }
        }
    }

    /// The end of a reply (committed, or failed upstream); deltas and usage are taken by
    /// [`on_steps`](Self::on_steps).
    async fn on_step(&mut self, ws: &mut WebSocket, step: Step) -> Result<(), End> {
        match step {
            Step::Delta(_) | Step::Usage(..) => Ok(()),
            Step::End => {
                let Some(active) = self.active.take() else {
                    return Ok(());
                };
                self.finish(ws, active).await?;
                self.next_in_queue(ws).await
            }
            Step::Failed(e) => {
                let Some(active) = self.active.take() else {
                    return Ok(());
                };
                // A reply cut off mid-stream is not stored: the visitor saw a partial answer
                // marked as failed, and may retry the same submit id to get a whole one.
                log_message(
                    &self.app.metrics,
                    &self.tenant,
                    self.ip,
                    active.started.elapsed(),
                    "upstream_failed",
                    Some(e.code()),
                );
                let message = if e.code() == "upstream_timeout" {
                    "the assistant took too long to answer"
                } else {
                    "the assistant is unavailable right now"
                };
                send(
                    &self.app,
                    ws,
                    ServerFrame::error_for(active.id.as_str(), e.code(), message),
                )
                .await?;
                self.next_in_queue(ws).await
            }
        }
    }

    async fn finish(&mut self, ws: &mut WebSocket, active: ActiveReply) -> Result<(), End> {
        let mut reply_flags = Vec::new();
        if self.settings.safety.check_replies {
            // The reply already streamed; a blocked one is withheld (not stored) and the widget
            // drops it on the error, as it does for a reply cut off mid-stream.
            match self
                .app
                .safety
                .check(&self.settings.safety, &active.text)
                .await
            {
                Verdict::Pass { flags } => reply_flags = flags,
                Verdict::Block { .. } => {
                    log_message(
                        &self.app.metrics,
                        &self.tenant,
                        self.ip,
                        active.started.elapsed(),
                        "withheld",
                        Some("content_blocked"),
                    );
                    return send(
                        &self.app,
                        ws,
                        ServerFrame::error_for(
                            active.id.as_str(),
                            "content_blocked",
                            "the reply was withheld by the site's content policy",
                        ),
                    )
                    .await;
                }
                Verdict::Unavailable => {
                    log_message(
                        &self.app.metrics,
                        &self.tenant,
                        self.ip,
                        active.started.elapsed(),
                        "withheld",
                        Some("upstream_unavailable"),
                    );
                    return send(
                        &self.app,
                        ws,
                        ServerFrame::error_for(
                            active.id.as_str(),
                            "upstream_unavailable",
                            "the safety check is unavailable; please try again",
                        ),
                    )
                    .await;
                }
            }
        }
        let usage = active.usage.unwrap_or((
            active.prompt_estimate,
            crate::llm::prompt::estimate_tokens(&active.text),
        ));
        let (conversation, reply_to, text, redaction) = (
            active.conversation.clone(),
            active.visitor_message.clone(),
            active.text.clone(),
            self.settings.redaction,
        );
        let committed = self
            .app
            .store
            .vault
            .call_patient(&self.tenant, move |conn| {
                let message =
                    reply::commit_reply(conn, &conversation, &reply_to, &text, usage, redaction)?;
                if !reply_flags.is_empty() {
                    repo::set_flags(conn, &message, &reply_flags)?;
                }
                Ok(message)
            })
            .await;
        match committed {
            Ok(message) => {
                self.app.metrics.tokens(usage.0, usage.1);
                log_message(
                    &self.app.metrics,
                    &self.tenant,
                    self.ip,
                    active.started.elapsed(),
                    "replied",
                    None,
                );
                self.app
                    .webhooks
                    .emit_with(&self.tenant, || Event::Message {
                        conversation: active.conversation.to_string(),
                        message: message.to_string(),
                        role: "assistant",
                        at: crate::db::now_ms(),
                        text: self.settings.redaction.for_store(&active.text).into_owned(),
                    });
                send(
                    &self.app,
                    ws,
                    ServerFrame::Done {
                        id: active.id.to_string(),
                        message: message.to_string(),
                        sources: active.sources.clone(),
                    },
                )
                .await
            }
            Err(e) => {
                tracing::warn!(tenant = %self.tenant, error = %e, "could not store a reply");
                log_message(
                    &self.app.metrics,
                    &self.tenant,
                    self.ip,
                    active.started.elapsed(),
                    "failed",
                    Some("storage_unavailable"),
                );
                send(
                    &self.app,
                    ws,
                    ServerFrame::error_for(
                        active.id.as_str(),
                        "storage_unavailable",
                        "the reply could not be saved",
                    ),
                )
                .await
            }
        }
    }

    async fn next_in_queue(&mut self, ws: &mut WebSocket) -> Result<(), End> {
        if self.pass.is_asked_to_leave() {
            // Not accepted here, so the widget still holds them and resends after reconnecting.
            self.queue.clear();
            return Ok(());
        }
        match self.queue.pop_front() {
            Some(pending) => Box::pin(self.begin(ws, pending)).await,
            None => Ok(()),
        }
    }

    async fn on_resume(
        &mut self,
        ws: &mut WebSocket,
        conversation: &str,
        token: &str,
    ) -> Result<(), End> {
        if self.active.is_some() || !self.queue.is_empty() {
            return send(
                &self.app,
                ws,
                ServerFrame::error("busy", "wait for the current reply before resuming"),
            )
            .await;
        }
        let invalid = || ServerFrame::error("invalid_token", "that conversation cannot be resumed");
        let Some(id) = ConversationId::parse(conversation) else {
            return send(&self.app, ws, invalid()).await;
        };
        let token = token.to_owned();
        let lookup = id.clone();
        let loaded = self
            .app
            .store
            .vault
            .call(&self.tenant, move |conn| {
                match repo::token_hash(conn, &lookup)? {
                    Some(hash) if crypto::secret_matches(&token, &hash) => {
                        Ok(Some(repo::all_messages(conn, &lookup)?))
                    }
                    _ => Ok(None),
                }
            })
            .await;
        match loaded {
            Ok(Some(messages)) => {
                self.conversation = Some(id.clone());
                send(
                    &self.app,
                    ws,
                    ServerFrame::Resumed {
                        conversation: id.to_string(),
                        messages: frame_messages(messages),
                    },
                )
                .await
            }
            Ok(None) => send(&self.app, ws, invalid()).await,
            Err(_) => {
                send(
                    &self.app,
                    ws,
                    ServerFrame::error(
                        "storage_unavailable",
                        "the conversation could not be loaded",
                    ),
                )
                .await
            }
        }
    }

    async fn on_transcript(&mut self, ws: &mut WebSocket) -> Result<(), End> {
        let Some(id) = self.conversation.clone() else {
            return send(
                &self.app,
                ws,
                ServerFrame::error("no_conversation", "there is no conversation yet"),
            )
            .await;
        };
        let lookup = id.clone();
        match self
            .app
            .store
            .vault
            .call(&self.tenant, move |conn| repo::all_messages(conn, &lookup))
            .await
        {
            Ok(messages) => {
                send(
                    &self.app,
                    ws,
                    ServerFrame::Transcript {
                        conversation: id.to_string(),
                        messages: frame_messages(messages),
                    },
                )
                .await
            }
            Err(_) => {
                send(
                    &self.app,
                    ws,
                    ServerFrame::error("storage_unavailable", "the transcript could not be loaded"),
                )
                .await
            }
        }
    }

    async fn on_erase(&mut self, ws: &mut WebSocket) -> Result<(), End> {
        let Some(id) = self.conversation.clone() else {
            return send(
                &self.app,
                ws,
                ServerFrame::error("no_conversation", "there is no conversation to erase"),
            )
            .await;
        };
        // Stop the reply in progress and drop queued submits: nothing more joins this conversation.
        self.active = None;
        self.queue.clear();
        let gone = id.clone();
        let vault = &self.app.store.vault;
        let erased = vault
            .call(&self.tenant, move |conn| {
                repo::delete_conversation(conn, &gone)
            })
            .await;
        if erased.is_err() {
            return send(
                &self.app,
                ws,
                ServerFrame::error(
                    "storage_unavailable",
                    "the conversation could not be erased; please try again",
                ),
            )
            .await;
        }
        // Rewrite the WAL so the deleted pages' old images do not linger in `-wal`.
        if let Err(e) = vault
            .exclusive(&self.tenant, |conn| {
                Ok(conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?)
            })
            .await
        {
            tracing::warn!(tenant = %self.tenant, error = %e, "checkpoint after erase failed");
        }
        self.conversation = None;
        tracing::info!(tenant = %self.tenant, client_ip = %self.ip, "conversation erased by visitor");
        self.app.webhooks.emit(
            &self.tenant,
            Event::Erased {
                conversation: id.to_string(),
            },
        );
        send(
            &self.app,
            ws,
            ServerFrame::Erased {
                conversation: id.to_string(),
            },
        )
        .await
    }
}

/// The question's embedding for hybrid retrieval; `None` (BM25 only) when embeddings are not
/// configured or the endpoint does not answer in time.
async fn embed_question(
    embedder: Option<crate::knowledge::embed::Embedder>,
    text: &str,
    tenant: &TenantId,
) -> Option<Vec<f32>> {
    let embedder = embedder?;
    let texts = [text.to_owned()];
    match tokio::time::timeout(Duration::from_secs(3), embedder.embed(&texts)).await {
        Ok(Ok(mut vectors)) => vectors.pop(),
        _ => {
            tracing::warn!(tenant = %tenant, "question embedding failed; retrieval falls back to BM25");
            None
        }
    }
}

async fn next_step(active: &mut Option<ActiveReply>) -> Step {
    match active {
        Some(reply) => reply.steps.next().await.unwrap_or(Step::End),
        None => std::future::pending().await,
    }
}

fn frame_messages(messages: Vec<StoredMessage>) -> Vec<FrameMessage> {
    messages
        .into_iter()
        .map(|m| FrameMessage {
            role: m.role,
            text: m.text,
            at: db::format_time(m.at),
        })
        .collect()
}

/// Queues a frame in the socket's write buffer without flushing it.
async fn feed(ws: &mut WebSocket, frame: ServerFrame) -> Result<(), End> {
    ws.feed(Message::Text(frame.to_json().into()))
        .await
        .map_err(|_| "write failed")
}

async fn flush(ws: &mut WebSocket) -> Result<(), End> {
    SinkExt::flush(ws).await.map_err(|_| "write failed")
}

/// Sends one frame; every `error` frame is counted by its code for `/metrics`.
async fn send(app: &App, ws: &mut WebSocket, frame: ServerFrame) -> Result<(), End> {
    if let ServerFrame::Error { code, .. } = &frame {
        app.metrics.widget_error(code);
    }
    ws.send(Message::Text(frame.to_json().into()))
        .await
        .map_err(|_| "write failed")
}

/// Sends a close frame and waits briefly for the client's, so the TCP connection ends cleanly
/// instead of with a reset that could discard the frames sent just before.
async fn close(ws: &mut WebSocket, code: u16, reason: &'static str) -> Result<(), End> {
    if ws
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await
        .is_ok()
    {
        let drain = async {
            while let Some(Ok(message)) = ws.recv().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }
    Err(reason)
}

/// One line per message: tenant, client, duration, outcome, code. Never content.
fn log_message(
    metrics: &crate::metrics::Metrics,
    tenant: &TenantId,
    ip: IpAddr,
    took: Duration,
    outcome: &'static str,
    code: Option<&'static str>,
) {
    metrics.message(outcome, took);
    tracing::info!(tenant = %tenant, client_ip = %ip, duration_ms = took.as_millis() as u64, outcome, code = code.unwrap_or(""), "widget message");
}

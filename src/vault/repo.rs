//! Repository functions over one tenant file. Each takes a `&Connection` that the caller's
//! worker has already put inside a transaction; none of them knows about threads or HTTP.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::domain::{ConversationId, MessageId, Role, SubmitId};
use crate::error::Result;

/// A message as the API and the widget see it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StoredMessage {
    pub id: String,
    pub role: Role,
    pub text: String,
    pub at: i64,
    /// Advisory content-safety flags, when the tenant's floor raised any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<String>>,
}

/// A message about to be stored.
pub struct NewMessage<'a> {
    pub conversation: &'a ConversationId,
    pub role: Role,
    pub text: &'a str,
    pub at: i64,
    pub submit_id: Option<&'a SubmitId>,
    pub reply_to: Option<&'a MessageId>,
    pub tokens: i64,
}

/// What inserting a visitor message did.
#[derive(Debug, PartialEq)]
pub enum Inserted {
    New(MessageId),
    /// The same submit id was already stored in this conversation; nothing was written.
    Duplicate(MessageId),
}

/// Conversation summary for listings.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ConversationSummary {
    pub id: String,
    pub started_at: i64,
    pub last_at: i64,
    pub message_count: i64,
}

/// Counts kept by triggers.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Totals {
    pub conversations: i64,
    pub messages: i64,
}

/// One day's usage.
#[derive(Clone, Debug, Default, Serialize, PartialEq, utoipa::ToSchema)]
pub struct DailyUsage {
    pub day: String,
    pub messages: i64,
    pub replies: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
}

pub fn create_conversation(
    conn: &Connection,
    id: &ConversationId,
    token_hash: &[u8],
    at: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO conversations (id, token_hash, started_at, last_at) VALUES (?1, ?2, ?3, ?3)",
    )?
    .execute(params![id.as_str(), token_hash, at])?;
    Ok(())
}

/// The stored hash of a conversation's resume token.
pub fn token_hash(conn: &Connection, id: &ConversationId) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached("SELECT token_hash FROM conversations WHERE id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()?)
}

/// Stores a message; a visitor message whose submit id is already stored is not stored again.
pub fn insert_message(conn: &Connection, msg: &NewMessage<'_>) -> Result<Inserted> {
    if let Some(submit) = msg.submit_id
        && let Some(existing) = find_by_submit(conn, msg.conversation, submit)?
    {
        return Ok(Inserted::Duplicate(existing));
    }
    insert_new_message(conn, msg).map(Inserted::New)
}

/// Stores a message whose submit id the caller has already looked up and found new (the
/// `UNIQUE (conversation_id, submit_id)` constraint still refuses a duplicate).
pub fn insert_new_message(conn: &Connection, msg: &NewMessage<'_>) -> Result<MessageId> {
    let id = MessageId::generate();
    conn.prepare_cached(
        "INSERT INTO messages (id, conversation_id, role, text, at, submit_id, reply_to, tokens)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        id.as_str(),
        msg.conversation.as_str(),
        msg.role.as_str(),
        msg.text,
        msg.at,
        msg.submit_id.map(SubmitId::as_str),
        msg.reply_to.map(MessageId::as_str),
        msg.tokens
    ])?;
    Ok(id)
}

pub fn find_by_submit(
    conn: &Connection,
    conversation: &ConversationId,
    submit: &SubmitId,
) -> Result<Option<MessageId>> {
    let id: Option<String> = conn
        .prepare_cached("SELECT id FROM messages WHERE conversation_id = ?1 AND submit_id = ?2")?
        .query_row([conversation.as_str(), submit.as_str()], |r| r.get(0))
        .optional()?;
    Ok(id.and_then(|id| MessageId::parse(&id)))
}

/// The stored reply to a visitor message of `conversation`, if one was committed (read through
/// the conversation's index: a resent submit is rare, an index on `reply_to` would cost every
/// reply's commit a page).
pub fn reply_to(
    conn: &Connection,
    conversation: &ConversationId,
    visitor_message: &MessageId,
) -> Result<Option<StoredMessage>> {
    Ok(conn
        .prepare_cached(
            "SELECT id, role, text, at FROM messages
             WHERE conversation_id = ?1 AND reply_to = ?2 ORDER BY seq LIMIT 1",
        )?
        .query_row(
            [conversation.as_str(), visitor_message.as_str()],
            read_message,
        )
        .optional()?)
}

/// The last `limit` messages of a conversation, oldest first.
pub fn recent_messages(
    conn: &Connection,
    conversation: &ConversationId,
    limit: usize,
) -> Result<Vec<StoredMessage>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, role, text, at, flags FROM (
             SELECT seq, id, role, text, at, flags FROM messages WHERE conversation_id = ?1
             ORDER BY seq DESC LIMIT ?2
         ) ORDER BY seq",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![conversation.as_str(), limit], read_message)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The roles and texts of the last `limit` messages of a conversation, oldest first, leaving
/// out `except` (a resent submit's own message): what a prompt needs, and nothing it does not.
pub fn prompt_history(
    conn: &Connection,
    conversation: &ConversationId,
    limit: usize,
    except: Option<&MessageId>,
) -> Result<Vec<(Role, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT role, text FROM (
             SELECT seq, role, text FROM messages WHERE conversation_id = ?1 AND id IS NOT ?3
             ORDER BY seq DESC LIMIT ?2
         ) ORDER BY seq",
    )?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt.query_map(
        params![conversation.as_str(), limit, except.map(MessageId::as_str)],
        |row| {
            let role = row.get_ref(0)?.as_str()?;
            Ok((Role::parse(role).unwrap_or(Role::Visitor), row.get(1)?))
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every message of a conversation, oldest first.
pub fn all_messages(
    conn: &Connection,
    conversation: &ConversationId,
) -> Result<Vec<StoredMessage>> {
    recent_messages(conn, conversation, usize::MAX)
}

pub fn conversation(conn: &Connection, id: &ConversationId) -> Result<Option<ConversationSummary>> {
    Ok(conn
        .query_row(
            "SELECT id, started_at, last_at, message_count FROM conversations WHERE id = ?1",
            [id.as_str()],
            read_summary,
        )
        .optional()?)
}

/// Stores advisory safety flags beside a message.
pub fn set_flags(conn: &Connection, message: &MessageId, flags: &[String]) -> Result<()> {
    let json = serde_json::to_string(flags).unwrap_or_default();
    conn.prepare_cached("UPDATE messages SET flags = ?2 WHERE id = ?1")?
        .execute(params![message.as_str(), json])?;
    Ok(())
}

/// A message's advisory safety flags, if any.
pub fn flags_of(conn: &Connection, message: &str) -> Result<Option<Vec<String>>> {
    let raw: Option<Option<String>> = conn
        .query_row("SELECT flags FROM messages WHERE id = ?1", [message], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(raw
        .flatten()
        .and_then(|json| serde_json::from_str(&json).ok()))
}

/// How many visitor messages a conversation holds; `None` when there is no such conversation.
pub fn visitor_turns(conn: &Connection, conversation: &ConversationId) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT visitor_count FROM conversations WHERE id = ?1")?
        .query_row([conversation.as_str()], |r| r.get(0))
        .optional()?)
}

/// How many new messages wait for the full-text index before a patient batch's commit adds
/// them (one FTS5 segment and its bookkeeping pages per group, not per commit).
pub const INDEX_GROUP: i64 = 32;

/// How many may wait before any commit adds them: when patient batches are rare (a busy
/// tenant, or replies that never commit during an upstream outage) the queue for the next
/// search must not grow without bound.
pub const INDEX_BACKLOG: i64 = 8 * INDEX_GROUP;

/// The tenant writer's step before each commit: indexes the waiting messages once there are
/// [`INDEX_GROUP`] of them in a batch of patient jobs (finished replies, whose commit nobody
/// waits on for a first token as a visitor message's `accepted` is), or [`INDEX_BACKLOG`] in
/// any batch. A search indexes whatever is left first, so it always sees every stored message.
pub fn index_before_commit(conn: &Connection, patient: bool) -> rusqlite::Result<()> {
    let waiting: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM messages
             WHERE seq > (SELECT indexed_through FROM totals WHERE id = 1)",
        )?
        .query_row([], |r| r.get(0))?;
    if waiting >= if patient { INDEX_GROUP } else { INDEX_BACKLOG } {
        index_pending_messages(conn)?;
    }
    Ok(())
}

/// Adds every message above the index mark (see `schema`, migration 5) to the full-text index,
/// in one go, and moves the mark up. Returns how many it indexed.
pub fn index_pending_messages(conn: &Connection) -> rusqlite::Result<usize> {
    let indexed = conn
        .prepare_cached(
            "INSERT INTO messages_fts (rowid, text)
             SELECT seq, text FROM messages
             WHERE seq > (SELECT indexed_through FROM totals WHERE id = 1)",
        )?
        .execute([])?;
    if indexed > 0 {
        conn.prepare_cached(
            "UPDATE totals SET indexed_through = (SELECT max(seq) FROM messages) WHERE id = 1",
        )?
        .execute([])?;
    }
    Ok(indexed)
}

/// Deletes a conversation and (by cascade) its messages and their index entries.
pub fn delete_conversation(conn: &Connection, id: &ConversationId) -> Result<bool> {
    Ok(conn.execute("DELETE FROM conversations WHERE id = ?1", [id.as_str()])? > 0)
}

pub fn totals(conn: &Connection) -> Result<Totals> {
    Ok(conn.query_row(
        "SELECT conversations, messages FROM totals WHERE id = 1",
        [],
        |r| {
            Ok(Totals {
                conversations: r.get(0)?,
                messages: r.get(1)?,
            })
        },
    )?)
}

/// Adds to one day's usage counters. The current day's are kept in the `totals` row (see
/// `schema`, migration 6); the first write of a later day moves them to `usage_daily`, and a
/// write for an earlier day (the clock stepped back over midnight) goes straight there.
pub fn add_usage(conn: &Connection, delta: &DailyUsage) -> Result<()> {
    let current: String = conn
        .prepare_cached("SELECT day FROM totals WHERE id = 1")?
        .query_row([], |r| r.get(0))?;
    if delta.day < current {
        return add_usage_to_history(conn, delta);
    }
    if delta.day > current {
        conn.prepare_cached(
            "INSERT INTO usage_daily (day, messages, replies, tokens_in, tokens_out)
             SELECT day, day_messages, day_replies, day_tokens_in, day_tokens_out
             FROM totals WHERE id = 1 AND day <> ''
             ON CONFLICT (day) DO UPDATE SET messages = messages + excluded.messages,
                 replies = replies + excluded.replies, tokens_in = tokens_in + excluded.tokens_in,
                 tokens_out = tokens_out + excluded.tokens_out",
        )?
        .execute([])?;
        start_usage_day(conn, &delta.day)?;
    }
    conn.prepare_cached(
        "UPDATE totals SET day_messages = day_messages + ?1, day_replies = day_replies + ?2,
             day_tokens_in = day_tokens_in + ?3, day_tokens_out = day_tokens_out + ?4
         WHERE id = 1",
    )?
    .execute(params![
        delta.messages,
        delta.replies,
        delta.tokens_in,
        delta.tokens_out
    ])?;
    Ok(())
}

/// Makes `day` the current day in the `totals` row, with its counters at zero ('' for none).
fn start_usage_day(conn: &Connection, day: &str) -> Result<()> {
    conn.prepare_cached(
        "UPDATE totals SET day = ?1, day_messages = 0, day_replies = 0, day_tokens_in = 0,
             day_tokens_out = 0
         WHERE id = 1",
    )?
    .execute([day])?;
    Ok(())
}

fn add_usage_to_history(conn: &Connection, delta: &DailyUsage) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO usage_daily (day, messages, replies, tokens_in, tokens_out) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (day) DO UPDATE SET messages = messages + ?2, replies = replies + ?3,
             tokens_in = tokens_in + ?4, tokens_out = tokens_out + ?5",
    )?
    .execute(
        params![delta.day, delta.messages, delta.replies, delta.tokens_in, delta.tokens_out],
    )?;
    Ok(())
}

/// Every day's usage, from the history and the current day's counters (a day can be in both:
/// a file migrated during it, or a clock that stepped back). A macro so the queries built on it
/// are literals: `usage_on` runs on every submit.
macro_rules! usage_by_day {
    ($rest:literal) => {
        concat!(
            "SELECT day, sum(messages), sum(replies), sum(tokens_in), sum(tokens_out) FROM (
                 SELECT day, messages, replies, tokens_in, tokens_out FROM usage_daily
                 UNION ALL
                 SELECT day, day_messages, day_replies, day_tokens_in, day_tokens_out
                 FROM totals WHERE id = 1 AND day <> ''
             ) ",
            $rest
        )
    };
}

pub fn usage_on(conn: &Connection, day: &str) -> Result<DailyUsage> {
    Ok(conn
        .prepare_cached(usage_by_day!("WHERE day = ?1 GROUP BY day"))?
        .query_row([day], read_usage)
        .optional()?
        .unwrap_or_else(|| DailyUsage {
            day: day.to_owned(),
            ..DailyUsage::default()
        }))
}

/// Every day with usage, newest first.
pub fn usage_days(conn: &Connection, limit: usize) -> Result<Vec<DailyUsage>> {
    let mut stmt = conn.prepare(usage_by_day!("GROUP BY day ORDER BY day DESC LIMIT ?1"))?;
    let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], read_usage)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn reset_usage(conn: &Connection) -> Result<()> {
    conn.execute("DELETE FROM usage_daily", [])?;
    start_usage_day(conn, "")
}

pub(crate) fn read_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMessage> {
    let role: String = row.get(1)?;
    Ok(StoredMessage {
        id: row.get(0)?,
        role: Role::parse(&role).unwrap_or(Role::Visitor),
        text: row.get(2)?,
        at: row.get(3)?,
        // Queries that select a fifth column (`flags`) get the flags; others get none.
        flags: row
            .get::<_, Option<String>>(4)
            .ok()
            .flatten()
            .and_then(|json| serde_json::from_str(&json).ok()),
    })
}

pub(crate) fn read_summary(row: &rusqlite::Row<'_>) -> rusqlite::Result<ConversationSummary> {
    Ok(ConversationSummary {
        id: row.get(0)?,
        started_at: row.get(1)?,
        last_at: row.get(2)?,
        message_count: row.get(3)?,
    })
}

fn read_usage(row: &rusqlite::Row<'_>) -> rusqlite::Result<DailyUsage> {
    Ok(DailyUsage {
        day: row.get(0)?,
        messages: row.get(1)?,
        replies: row.get(2)?,
        tokens_in: row.get(3)?,
        tokens_out: row.get(4)?,
    })
}

#[cfg(test)]
mod tests;

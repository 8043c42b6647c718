//! Read-side queries for the customer API: paged listing with full-text search and a date
//! filter, and a streaming export that reads through its own connection in bounded memory.

use rusqlite::{Connection, params};

use super::repo::{self, ConversationSummary, StoredMessage};
use crate::domain::ConversationId;
use crate::error::Result;

/// A page request.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub limit: u32,
    /// Continue after this `(last_at, id)`.
    pub after: Option<(i64, String)>,
    /// Words that must all appear in one message of the conversation.
    pub search: Option<String>,
    /// Only conversations active at or after this time (ms).
    pub from: Option<i64>,
    /// Only conversations started at or before this time (ms).
    pub to: Option<i64>,
}

/// Newest-active first, keyset-paged.
pub fn list_conversations(
    conn: &Connection,
    query: &ListQuery,
) -> Result<Vec<ConversationSummary>> {
    let fts = query.search.as_deref().and_then(fts_query);
    if query.search.is_some() && fts.is_none() {
        return Ok(Vec::new());
    }
    if fts.is_some() {
        // The writer indexes new messages in groups; a search sees every stored one.
        repo::index_pending_messages(conn)?;
    }
    let (after_at, after_id) = match &query.after {
        Some((at, id)) => (Some(*at), Some(id.as_str())),
        None => (None, None),
    };
    let mut stmt = conn.prepare_cached(
        "SELECT id, started_at, last_at, message_count FROM conversations
         WHERE (?1 IS NULL OR last_at < ?1 OR (last_at = ?1 AND id < ?2))
           AND (?3 IS NULL OR last_at >= ?3)
           AND (?4 IS NULL OR started_at <= ?4)
           AND (?5 IS NULL OR id IN (
                SELECT m.conversation_id FROM messages_fts JOIN messages m ON m.seq = messages_fts.rowid
                WHERE messages_fts MATCH ?5))
         ORDER BY last_at DESC, id DESC
         LIMIT ?6",
    )?;
    let rows = stmt.query_map(
        params![
            after_at,
            after_id,
            query.from,
            query.to,
            fts,
            query.limit.clamp(1, 200)
        ],
        repo::read_summary,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Turns free text into an FTS5 query where every word must match literally.
pub fn fts_query(search: &str) -> Option<String> {
    let words: Vec<String> = search
        .split_whitespace()
        .take(20)
        .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// A conversation with every message, for the API and export.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FullConversation {
    pub id: String,
    pub started_at: i64,
    pub messages: Vec<StoredMessage>,
}

pub fn full_conversation(
    conn: &Connection,
    id: &ConversationId,
) -> Result<Option<FullConversation>> {
    let Some(summary) = repo::conversation(conn, id)? else {
        return Ok(None);
    };
    Ok(Some(FullConversation {
        id: summary.id,
        started_at: summary.started_at,
        messages: repo::all_messages(conn, id)?,
    }))
}

/// Calls `emit` for each conversation, oldest first, reading in one transaction (a consistent
/// snapshot) and holding one conversation in memory at a time. Stops when `emit` returns false.
pub fn for_each_conversation(
    conn: &mut Connection,
    mut emit: impl FnMut(FullConversation) -> bool,
) -> Result<()> {
    let tx = conn.transaction()?;
    {
        let mut ids = tx.prepare("SELECT id FROM conversations ORDER BY started_at, id")?;
        let mut rows = ids.query([])?;
        while let Some(row) = rows.next()? {
            let id: String = row.get(0)?;
            let Some(id) = ConversationId::parse(&id) else {
                continue;
            };
            if let Some(conversation) = full_conversation(&tx, &id)?
                && !emit(conversation)
            {
                break;
            }
        }
    }
    tx.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::DbKey;
    use crate::db::{self, OpenMode};
    use crate::domain::{Role, SubmitId};
    use crate::vault::repo::NewMessage;
    use crate::vault::schema::MIGRATIONS;

    fn file_with(conversations: &[(&str, i64)]) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = db::open_encrypted(
            &dir.path().join("t.db"),
            &DbKey::generate(),
            OpenMode::CreateIfMissing,
        )
        .unwrap();
        db::migrate(&mut conn, MIGRATIONS).unwrap();
        for (text, at) in conversations {
            let id = ConversationId::generate();
            repo::create_conversation(&conn, &id, b"h", *at).unwrap();
            let submit = SubmitId::parse("s").unwrap();
            let msg = NewMessage {
                conversation: &id,
                role: Role::Visitor,
                text,
                at: *at,
                submit_id: Some(&submit),
                reply_to: None,
                tokens: 1,
            };
            repo::insert_message(&conn, &msg).unwrap();
        }
        // Left waiting for the index: a search must index them itself.
        (dir, conn)
    }

    #[test]
    fn pages_walk_every_conversation_once_newest_first() {
        let texts: Vec<(String, i64)> = (0..25)
            .map(|i| (format!("m{i}"), 1000 + i64::from(i % 5)))
            .collect();
        let refs: Vec<(&str, i64)> = texts.iter().map(|(t, a)| (t.as_str(), *a)).collect();
        let (_dir, conn) = file_with(&refs);
        let mut seen = Vec::new();
        let mut query = ListQuery {
            limit: 7,
            ..ListQuery::default()
        };
        loop {
            let page = list_conversations(&conn, &query).unwrap();
            let Some(last) = page.last() else { break };
            query.after = Some((last.last_at, last.id.clone()));
            seen.extend(page);
        }
        assert_eq!(seen.len(), 25);
        assert!(seen.windows(2).all(|w| w[0].last_at >= w[1].last_at));
        let unique: std::collections::HashSet<_> = seen.iter().map(|c| &c.id).collect();
        assert_eq!(unique.len(), 25);
    }

    #[test]
    fn search_matches_whole_words_literally_and_dates_filter() {
        let (_dir, conn) = file_with(&[
            ("where is my parcel", 10),
            ("refund please", 20),
            ("parcel refund", 30),
        ]);
        let search = |q: &str| {
            list_conversations(
                &conn,
                &ListQuery {
                    limit: 10,
                    search: Some(q.into()),
                    ..ListQuery::default()
                },
            )
            .unwrap()
            .len()
        };
        assert_eq!(search("parcel"), 2);
        assert_eq!(search("PARCEL refund"), 1);
        assert_eq!(search("nothing"), 0);
        assert_eq!(
            search("\" OR * NEAR("),
            0,
            "FTS syntax in a search is literal text"
        );
        assert_eq!(search("   "), 0);
        let dated = list_conversations(
            &conn,
            &ListQuery {
                limit: 10,
                from: Some(15),
                to: Some(25),
                ..ListQuery::default()
            },
        )
        .unwrap();
        assert_eq!(dated.len(), 1);
    }

    #[test]
    fn export_visits_each_conversation_with_its_messages() {
        let (_dir, mut conn) = file_with(&[("a", 1), ("b", 2), ("c", 3)]);
        let mut texts = Vec::new();
        for_each_conversation(&mut conn, |c| {
            texts.push(c.messages[0].text.clone());
            true
        })
        .unwrap();
        assert_eq!(texts, ["a", "b", "c"]);
    }
}

//! Stored first responses for `Idempotency-Key` replays, kept 24 hours.

use rusqlite::{Connection, OptionalExtension, params};

use crate::db;
use crate::error::Result;

/// How long a stored response answers replays.
pub const KEEP_MS: i64 = 24 * 3600 * 1000;

/// A stored response.
pub struct Stored {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

pub fn find(conn: &Connection, scope: &[u8], key: &str) -> Result<Option<Stored>> {
    Ok(conn
        .query_row(
            "SELECT status, content_type, body FROM idempotency WHERE scope = ?1 AND key = ?2 AND created_at > ?3",
            params![scope, key, db::now_ms() - KEEP_MS],
            |r| Ok(Stored { status: r.get(0)?, content_type: r.get(1)?, body: r.get(2)? }),
        )
        .optional()?)
}

pub fn store(conn: &Connection, scope: &[u8], key: &str, response: &Stored) -> Result<()> {
    let now = db::now_ms();
    conn.execute(
        "DELETE FROM idempotency WHERE created_at <= ?1",
        [now - KEEP_MS],
    )?;
    conn.execute(
        "INSERT OR IGNORE INTO idempotency (scope, key, status, body, content_type, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![scope, key, response.status, response.body, response.content_type, now],
    )?;
    Ok(())
}

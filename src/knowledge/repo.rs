//! Repository functions over the knowledge tables of one tenant file (`documents`, `passages`
//! and the FTS5 index `passages_fts` kept by triggers). Each takes a `&Connection` the caller's
//! worker has put inside a transaction.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::DocumentId;
use crate::error::{Error, Result};

/// At most this many documents per tenant.
pub const MAX_DOCUMENTS: i64 = 2_000;
/// At most this many characters of reduced text per tenant, all documents together.
pub const MAX_TOTAL_CHARS: i64 = 64 * 1024 * 1024;

/// A document about to be stored, already reduced and cut into passages.
pub struct NewDocument {
    pub id: DocumentId,
    pub title: String,
    pub url: Option<String>,
    pub format: &'static str,
    pub text: String,
    pub passages: Vec<String>,
}

/// A document as listings show it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DocumentSummary {
    pub id: String,
    pub title: String,
    pub url: Option<String>,
    pub format: String,
    pub passages: i64,
    pub chars: i64,
    pub created_at: i64,
}

/// What deleting documents removed.
#[derive(Clone, Copy, Debug, Default, Serialize, PartialEq)]
pub struct Removed {
    pub documents: i64,
    pub passages: i64,
}

/// Stores a document and its passages (indexed by trigger); refuses when the tenant is full.
pub fn insert(conn: &Connection, doc: &NewDocument, at: i64) -> Result<()> {
    let (count, chars): (i64, i64) = conn.query_row(
        "SELECT count(*), coalesce(sum(chars), 0) FROM documents",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let new_chars = i64::try_from(doc.text.chars().count()).unwrap_or(i64::MAX);
    if count >= MAX_DOCUMENTS {
        return Err(Error::TooLarge(format!(
            "the knowledge base holds at most {MAX_DOCUMENTS} documents; delete some first"
        )));
    }
    if chars.saturating_add(new_chars) > MAX_TOTAL_CHARS {
        return Err(Error::TooLarge(format!(
            "the knowledge base holds at most {} MiB of text; delete some documents first",
            MAX_TOTAL_CHARS / (1024 * 1024)
        )));
    }
    conn.execute(
        "INSERT INTO documents (id, title, url, format, text, chars, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            doc.id.as_str(),
            doc.title,
            doc.url,
            doc.format,
            doc.text,
            new_chars,
            at
        ],
    )?;
    let seq = conn.last_insert_rowid();
    let mut insert = conn.prepare_cached(
        "INSERT INTO passages (document_seq, ord, title, text) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (ord, text) in doc.passages.iter().enumerate() {
        insert.execute(params![seq, ord as i64, doc.title, text])?;
    }
    Ok(())
}

const SUMMARY: &str = "SELECT d.id, d.title, d.url, d.format,
        (SELECT count(*) FROM passages p WHERE p.document_seq = d.seq), d.chars, d.created_at
    FROM documents d";

fn summary(row: &rusqlite::Row<'_>) -> rusqlite::Result<DocumentSummary> {
    Ok(DocumentSummary {
        id: row.get(0)?,
        title: row.get(1)?,
        url: row.get(2)?,
        format: row.get(3)?,
        passages: row.get(4)?,
        chars: row.get(5)?,
        created_at: row.get(6)?,
    })
}

/// Every document, newest first.
pub fn list(conn: &Connection) -> Result<Vec<DocumentSummary>> {
    let mut stmt = conn.prepare(&format!("{SUMMARY} ORDER BY d.seq DESC"))?;
    let rows = stmt.query_map([], summary)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// One document and its reduced text.
pub fn get(conn: &Connection, id: &DocumentId) -> Result<Option<(DocumentSummary, String)>> {
    let sql =
        SUMMARY.replace(" FROM documents d", ", d.text FROM documents d") + " WHERE d.id = ?1";
    Ok(conn
        .query_row(&sql, [id.as_str()], |row| Ok((summary(row)?, row.get(7)?)))
        .optional()?)
}

/// Deletes one document and its passages (their index entries go with them, by trigger).
pub fn delete(conn: &Connection, id: &DocumentId) -> Result<Option<Removed>> {
    let Some(seq): Option<i64> = conn
        .query_row(
            "SELECT seq FROM documents WHERE id = ?1",
            [id.as_str()],
            |r| r.get(0),
        )
        .optional()?
    else {
        return Ok(None);
    };
    let passages = conn.execute("DELETE FROM passages WHERE document_seq = ?1", [seq])?;
    conn.execute("DELETE FROM documents WHERE seq = ?1", [seq])?;
    Ok(Some(Removed {
        documents: 1,
        passages: passages as i64,
    }))
}

/// Deletes every document of the tenant.
pub fn delete_all(conn: &Connection) -> Result<Removed> {
    let passages = conn.execute("DELETE FROM passages", [])?;
    let documents = conn.execute("DELETE FROM documents", [])?;
    Ok(Removed {
        documents: documents as i64,
        passages: passages as i64,
    })
}

/// Copies every document and passage from `from` into the empty knowledge tables of `to`
/// (whose triggers rebuild the index there). Used when a purge replaces the tenant file.
pub fn copy_all(from: &Connection, to: &Connection) -> Result<Removed> {
    let mut copied = Removed::default();
    let mut docs = from.prepare(
        "SELECT seq, id, title, url, format, text, chars, created_at FROM documents ORDER BY seq",
    )?;
    let mut put_doc = to.prepare(
        "INSERT INTO documents (seq, id, title, url, format, text, chars, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut rows = docs.query([])?;
    while let Some(r) = rows.next()? {
        put_doc.execute(params![
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, String>(4)?,
            r.get::<_, String>(5)?,
            r.get::<_, i64>(6)?,
            r.get::<_, i64>(7)?
        ])?;
        copied.documents += 1;
    }
    let mut passages =
        from.prepare("SELECT seq, document_seq, ord, title, text FROM passages ORDER BY seq")?;
    let mut put_passage = to.prepare(
        "INSERT INTO passages (seq, document_seq, ord, title, text) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut rows = passages.query([])?;
    while let Some(r) = rows.next()? {
        put_passage.execute(params![
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?
        ])?;
        copied.passages += 1;
    }
    super::embed::copy_vectors(from, to)?;
    Ok(copied)
}

/// Whether the tenant has any document (a cheap check before searching).
pub fn has_documents(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM documents)")?
        .query_row([], |r| r.get(0))?)
}

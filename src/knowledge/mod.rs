//! The per-tenant knowledge base: documents a customer uploads, reduced to text ([`text`]), cut
//! into overlapping passages ([`chunk`]), stored and indexed with FTS5 inside that tenant's own
//! SQLCipher file ([`repo`]), and searched with BM25 for each visitor question ([`search`]).
//! Passages reach the model only wrapped as untrusted documents (see [`crate::llm::prompt`]).

pub mod chunk;
pub mod embed;
pub mod ops;
pub mod repo;
pub mod search;
pub mod text;

use std::fmt;

use crate::crypto;
use crate::db;
use crate::error::{Error, Result};

pub use search::{Retrieved, SourceRef, retrieve};
pub use text::Format;

/// Largest document text accepted, in bytes, before reduction.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// Passages for one request stay within this many (estimated) tokens.
pub const PASSAGE_BUDGET_TOKENS: u32 = 1_200;

/// A document inside one tenant file: `d_` and 24 hex digits.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct DocumentId(String);

impl DocumentId {
    /// A fresh random id from the OS CSPRNG.
    pub fn generate() -> Self {
        Self(format!("d_{}", hex::encode(crypto::random_bytes::<12>())))
    }

    /// Accepts exactly the shape `generate` produces.
    pub fn parse(raw: &str) -> Option<Self> {
        let hex_part = raw.strip_prefix("d_")?;
        let ok = hex_part.len() == 24
            && hex_part
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DocumentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An upload as the API and the CLI take it.
pub struct Upload {
    pub title: String,
    pub text: String,
    pub format: Format,
    pub url: Option<String>,
}

impl Upload {
    /// Checks sizes and fields, reduces the text and cuts it into passages. CPU-bound: call it
    /// from a blocking thread for large documents.
    pub fn prepare(self) -> Result<repo::NewDocument> {
        if self.text.len() > MAX_DOCUMENT_BYTES {
            return Err(too_large());
        }
        let title = self.title.trim().to_owned();
        if title.is_empty() || title.chars().count() > 200 {
            return Err(Error::invalid(
                "invalid_document",
                "title is 1-200 characters",
            ));
        }
        let url = self.url.map(|u| parse_url(&u)).transpose()?;
        let text = text::reduce(&self.text, self.format);
        let passages = chunk::passages(&text);
        if passages.is_empty() {
            return Err(Error::invalid(
                "invalid_document",
                "the document has no readable text",
            ));
        }
        Ok(repo::NewDocument {
            id: DocumentId::generate(),
            title,
            url,
            format: self.format.as_str(),
            text,
            passages,
        })
    }
}

/// The 413 for a document over the limit.
pub fn too_large() -> Error {
    Error::TooLarge(format!(
        "a document may hold at most {} KiB of text; split it into smaller documents",
        MAX_DOCUMENT_BYTES / 1024
    ))
}

/// Source links must be http(s) URLs: the widget shows them as links.
fn parse_url(raw: &str) -> Result<String> {
    let bad = || {
        Error::invalid(
            "invalid_document",
            "url must be an http(s) URL of at most 2000 characters",
        )
    };
    if raw.len() > 2000 {
        return Err(bad());
    }
    let url = url::Url::parse(raw.trim()).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad());
    }
    Ok(url.to_string())
}

/// Stores a prepared document; returns its listing entry.
pub fn store(
    conn: &rusqlite::Connection,
    doc: &repo::NewDocument,
) -> Result<repo::DocumentSummary> {
    repo::insert(conn, doc, db::now_ms())?;
    repo::get(conn, &doc.id)?
        .map(|(summary, _)| summary)
        .ok_or_else(|| Error::Unavailable("the document vanished while being stored".into()))
}

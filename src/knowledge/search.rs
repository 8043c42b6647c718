//! Retrieval inside the tenant file: the visitor's words become an FTS5 query (each term quoted,
//! so nothing in the text is FTS syntax), passages are ranked by BM25 with the title weighted
//! above the body, and the best ones that fit the token budget are chosen for the prompt.

use rusqlite::Connection;

use super::repo;
use crate::error::Result;
use crate::llm::prompt::{self, Passage};

/// Candidates fetched from the index before the budget is applied.
const CANDIDATES: usize = 8;
/// At most this many passages go into one request.
pub const MAX_PASSAGES: usize = 4;
/// At most this many distinct terms of the question are searched for.
const MAX_TERMS: usize = 24;

/// A ranked passage with its document.
#[derive(Clone, Debug, PartialEq)]
pub struct Hit {
    pub doc_id: String,
    pub title: String,
    pub url: Option<String>,
    pub text: String,
    /// BM25 as FTS5 reports it: lower (more negative) is better.
    pub score: f64,
}

/// A document a reply drew on, for the `done` frame.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceRef {
    pub id: String,
    pub title: String,
    pub url: Option<String>,
}

/// What retrieval chose for one request.
#[derive(Clone, Debug, Default)]
pub struct Retrieved {
    pub passages: Vec<Passage>,
    pub sources: Vec<SourceRef>,
}

/// The best passages for `question` that together fit `budget_tokens`, and their documents.
/// A tenant without documents (or a question without searchable words) gets none.
pub fn retrieve(conn: &Connection, question: &str, budget_tokens: u32) -> Result<Retrieved> {
    retrieve_hybrid(conn, question, None, budget_tokens)
}

/// [`retrieve`], fusing BM25 with cosine similarity to `query_vector` (reciprocal-rank fusion)
/// when the question was embedded.
pub fn retrieve_hybrid(
    conn: &Connection,
    question: &str,
    query_vector: Option<&[f32]>,
    budget_tokens: u32,
) -> Result<Retrieved> {
    if !repo::has_documents(conn)? {
        return Ok(Retrieved::default());
    }
    let hits = match query_vector {
        None => search(conn, question, CANDIDATES)?,
        Some(vector) => {
            let lexical = search_seqs(conn, question, 2 * CANDIDATES)?;
            let semantic: Vec<i64> = super::embed::nearest(conn, vector, 2 * CANDIDATES)?
                .into_iter()
                .map(|(seq, _)| seq)
                .collect();
            let mut hits = Vec::new();
            for seq in super::embed::fuse(&[lexical, semantic])
                .into_iter()
                .take(CANDIDATES)
            {
                hits.extend(hit_by_seq(conn, seq)?);
            }
            hits
        }
    };
    Ok(within_budget(hits, budget_tokens))
}

/// The best hits, in order, that together fit the budget (at most [`MAX_PASSAGES`]).
fn within_budget(hits: Vec<Hit>, budget_tokens: u32) -> Retrieved {
    let mut out = Retrieved::default();
    let mut used = 0u32;
    for hit in hits {
        let cost = prompt::estimate_tokens(&hit.text);
        if used.saturating_add(cost) > budget_tokens {
            continue;
        }
        used += cost;
        if !out.sources.iter().any(|s| s.id == hit.doc_id) {
            out.sources.push(SourceRef {
                id: hit.doc_id.clone(),
                title: hit.title.clone(),
                url: hit.url.clone(),
            });
        }
        out.passages.push(Passage {
            doc_id: hit.doc_id,
            text: hit.text,
        });
        if out.passages.len() == MAX_PASSAGES {
            break;
        }
    }
    out
}

/// BM25 ranking as passage row ids, best first.
fn search_seqs(conn: &Connection, question: &str, limit: usize) -> Result<Vec<i64>> {
    let Some(query) = match_expression(question) else {
        return Ok(Vec::new());
    };
    let mut stmt = conn.prepare_cached(
        "SELECT rowid FROM passages_fts WHERE passages_fts MATCH ?1 AND rank MATCH 'bm25(2.0, 1.0)'
         ORDER BY rank LIMIT ?2",
    )?;
    let rows = stmt.query_map(rusqlite::params![query, limit as i64], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn hit_by_seq(conn: &Connection, seq: i64) -> Result<Option<Hit>> {
    use rusqlite::OptionalExtension;
    let mut stmt = conn.prepare_cached(
        "SELECT d.id, d.title, d.url, p.text FROM passages p JOIN documents d ON d.seq = p.document_seq WHERE p.seq = ?1",
    )?;
    Ok(stmt
        .query_row([seq], |r| {
            Ok(Hit {
                doc_id: r.get(0)?,
                title: r.get(1)?,
                url: r.get(2)?,
                text: r.get(3)?,
                score: 0.0,
            })
        })
        .optional()?)
}

/// The `limit` best passages for `question`, best first.
pub fn search(conn: &Connection, question: &str, limit: usize) -> Result<Vec<Hit>> {
    let Some(query) = match_expression(question) else {
        return Ok(Vec::new());
    };
    // Ranked inside FTS5 first (`ORDER BY rank` with a LIMIT lets it keep only the best rows),
    // then only those few are joined to their text and document.
    let mut stmt = conn.prepare_cached(
        "SELECT d.id, d.title, d.url, p.text, top.score
         FROM (SELECT rowid AS seq, rank AS score FROM passages_fts
               WHERE passages_fts MATCH ?1 AND rank MATCH 'bm25(2.0, 1.0)'
               ORDER BY rank LIMIT ?2) AS top
         JOIN passages p ON p.seq = top.seq
         JOIN documents d ON d.seq = p.document_seq
         ORDER BY top.score",
    )?;
    let rows = stmt.query_map(rusqlite::params![query, limit as i64], |r| {
        Ok(Hit {
            doc_id: r.get(0)?,
            title: r.get(1)?,
            url: r.get(2)?,
            text: r.get(3)?,
            score: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// `"term1" OR "term2" …` from the question's words, stop words left out; None if none remain.
pub fn match_expression(question: &str) -> Option<String> {
    let mut terms: Vec<String> = Vec::new();
    for word in question.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        if word.chars().count() < 2 || STOP_WORDS.contains(&word.as_str()) || terms.contains(&word)
        {
            continue;
        }
        terms.push(word);
        if terms.len() == MAX_TERMS {
            break;
        }
    }
    // Words are alphanumeric only, so quoting each makes it a plain FTS5 string.
    (!terms.is_empty()).then(|| {
        terms
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(" OR ")
    })
}

/// Common English words that say nothing about which passage is meant.
const STOP_WORDS: &[&str] = &[
    "a", "about", "all", "am", "an", "and", "any", "are", "as", "at", "be", "been", "but", "by",
    "can", "could", "did", "do", "does", "for", "from", "get", "got", "had", "has", "have",
    "hello", "hi", "how", "i", "if", "in", "is", "it", "its", "me", "my", "of", "on", "or", "our",
    "please", "so", "that", "the", "their", "them", "there", "these", "they", "this", "to", "us",
    "was", "we", "were", "what", "when", "where", "which", "who", "why", "will", "with", "would",
    "you", "your", "thanks", "thank", "there", "then", "than", "should", "shall", "may", "might",
    "much", "many", "also", "just", "not", "no", "yes", "some", "into", "out", "up", "down", "off",
    "too", "very", "want", "need", "know", "tell", "like",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_match_expression_quotes_words_and_drops_stop_words_and_syntax() {
        assert_eq!(
            match_expression("What is your RETURN policy? \"x\" OR NEAR(a b) *").as_deref(),
            Some("\"return\" OR \"policy\" OR \"near\"")
        );
        assert_eq!(match_expression("how are you?"), None);
        assert_eq!(
            match_expression("¿Dónde está mi pedido?").as_deref(),
            Some("\"dónde\" OR \"está\" OR \"mi\" OR \"pedido\"")
        );
    }
}

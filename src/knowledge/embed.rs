//! Optional embeddings: when an OpenAI-compatible embeddings endpoint is configured, passages get
//! vectors (stored in the tenant's own file, never anywhere else) and retrieval fuses BM25 with
//! cosine similarity by reciprocal rank. Without an endpoint nothing here runs.
//!
//! Vectors are stored normalised to unit length and quantised to one signed byte per dimension:
//! cosine becomes an integer dot product, and a full scan reads (and decrypts) a quarter of the
//! pages f32 would need. Ranking barely changes; the scores are not used beyond ranking.

use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use rusqlite::{Connection, params};
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// A client for `POST {base}/embeddings`.
#[derive(Clone)]
pub struct Embedder {
    client: Client<OpenAIConfig>,
    model: String,
}

/// Inputs per embeddings request.
const BATCH: usize = 64;

impl Embedder {
    pub fn new(base_url: &str, api_key: Option<String>, model: &str) -> Self {
        let mut config = OpenAIConfig::new().with_api_base(base_url.trim_end_matches('/'));
        if let Some(key) = api_key {
            config = config.with_api_key(key);
        }
        let http = crate::llm::upstream_http()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            client: Client::with_config(config).with_http_client(http),
            model: model.to_owned(),
        }
    }

    /// One vector per text, in order.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>> {
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(BATCH) {
            let request = json!({ "model": self.model, "input": batch });
            let response: Value = self
                .client
                .embeddings()
                .create_byot(request)
                .await
                .map_err(|e| Error::Unavailable(format!("embeddings endpoint failed: {e}")))?;
            let data = response["data"]
                .as_array()
                .ok_or_else(|| Error::Unavailable("embeddings response without data".into()))?;
            if data.len() != batch.len() {
                return Err(Error::Unavailable(
                    "embeddings response has the wrong number of vectors".into(),
                ));
            }
            for item in data {
                let vector: Vec<f32> = item["embedding"]
                    .as_array()
                    .ok_or_else(|| {
                        Error::Unavailable("embeddings response without a vector".into())
                    })?
                    .iter()
                    .map(|x| x.as_f64().unwrap_or(0.0) as f32)
                    .collect();
                vectors.push(vector);
            }
        }
        Ok(vectors)
    }
}

/// Passages of a document that have no vector yet: `(seq, title + text)`.
pub fn passages_without_vectors(
    conn: &Connection,
    document_id: &str,
) -> Result<Vec<(i64, String)>> {
    let mut stmt = conn.prepare(
        "SELECT p.seq, p.title || '\n' || p.text FROM passages p JOIN documents d ON d.seq = p.document_seq
         LEFT JOIN passage_vectors v ON v.passage_seq = p.seq
         WHERE d.id = ?1 AND v.passage_seq IS NULL ORDER BY p.seq",
    )?;
    let rows = stmt.query_map([document_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Stores vectors for passages that still exist (a document deleted meanwhile is skipped).
pub fn store_vectors(conn: &Connection, vectors: &[(i64, Vec<f32>)]) -> Result<usize> {
    let mut stored = 0;
    let mut put = conn.prepare_cached(
        "INSERT OR REPLACE INTO passage_vectors (passage_seq, vector)
         SELECT ?1, ?2 WHERE EXISTS (SELECT 1 FROM passages WHERE seq = ?1)",
    )?;
    for (seq, vector) in vectors {
        stored += put.execute(params![seq, to_bytes(vector)])?;
    }
    Ok(stored)
}

/// The `limit` passages most similar to `query`, best first: `(seq, similarity)`.
pub fn nearest(conn: &Connection, query: &[f32], limit: usize) -> Result<Vec<(i64, f32)>> {
    let query = quantise(query);
    let mut stmt = conn.prepare_cached("SELECT passage_seq, vector FROM passage_vectors")?;
    let mut rows = stmt.query([])?;
    let mut scored = Vec::new();
    while let Some(r) = rows.next()? {
        let vector = r.get_ref(1)?.as_blob().unwrap_or_default();
        if vector.len() == query.len() {
            let dot: i32 = vector
                .iter()
                .zip(&query)
                .map(|(a, b)| i32::from(*a as i8) * i32::from(*b as i8))
                .sum();
            scored.push((r.get::<_, i64>(0)?, dot as f32 / (127.0 * 127.0)));
        }
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(limit);
    Ok(scored)
}

/// Copies every vector (a purge carries the knowledge base into the new file).
pub fn copy_vectors(from: &Connection, to: &Connection) -> Result<usize> {
    let mut read = from.prepare("SELECT passage_seq, vector FROM passage_vectors")?;
    let mut write =
        to.prepare("INSERT INTO passage_vectors (passage_seq, vector) VALUES (?1, ?2)")?;
    let mut rows = read.query([])?;
    let mut copied = 0;
    while let Some(r) = rows.next()? {
        copied += write.execute(params![r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?])?;
    }
    Ok(copied)
}

/// Reciprocal-rank fusion of several rankings (best first): `Σ 1 / (60 + rank)`.
pub fn fuse(rankings: &[Vec<i64>]) -> Vec<i64> {
    let mut scores: Vec<(i64, f64)> = Vec::new();
    for ranking in rankings {
        for (rank, seq) in ranking.iter().enumerate() {
            let add = 1.0 / (60.0 + rank as f64 + 1.0);
            match scores.iter_mut().find(|(s, _)| s == seq) {
                Some((_, score)) => *score += add,
                None => scores.push((*seq, add)),
            }
        }
    }
    scores.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scores.into_iter().map(|(seq, _)| seq).collect()
}

/// Unit length, then one signed byte per dimension.
fn quantise(vector: &[f32]) -> Vec<u8> {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    let scale = if norm > 0.0 { 127.0 / norm } else { 0.0 };
    vector
        .iter()
        .map(|x| (x * scale).round().clamp(-127.0, 127.0) as i8 as u8)
        .collect()
}

fn to_bytes(vector: &[f32]) -> Vec<u8> {
    quantise(vector)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_ranks_by_cosine_on_quantised_vectors() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE passages (seq INTEGER PRIMARY KEY);
             CREATE TABLE passage_vectors (passage_seq INTEGER PRIMARY KEY, vector BLOB NOT NULL);
             INSERT INTO passages (seq) VALUES (1), (2), (3);",
        )
        .unwrap();
        let vectors = vec![
            (1, vec![0.1f32, 1.0, 0.0]),
            (2, vec![1.0, 0.1, 0.0]),
            (3, vec![-1.0, 0.0, 0.0]),
        ];
        assert_eq!(store_vectors(&conn, &vectors).unwrap(), 3);
        let ranked = nearest(&conn, &[2.0, 0.3, 0.0], 3).unwrap();
        assert_eq!(
            ranked.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
            [2, 1, 3]
        );
        assert!(
            (ranked[0].1 - 0.999).abs() < 0.02,
            "scaled like a cosine: {}",
            ranked[0].1
        );
        assert!(quantise(&[0.0, 0.0]).iter().all(|b| *b == 0));
    }

    #[test]
    fn fusion_rewards_agreement_and_keeps_single_list_hits() {
        let fused = fuse(&[vec![1, 2, 3], vec![3, 4]]);
        assert_eq!(fused[0], 3, "ranked by both lists");
        assert!(fused.contains(&4) && fused.contains(&1));
    }
}

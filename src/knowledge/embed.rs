//! Optional embeddings: when an OpenAI-compatible embeddings endpoint is configured, passages get
//! vectors (stored in the tenant's own file, never anywhere else) and retrieval fuses BM25 with
//! cosine similarity by reciprocal rank. Without an endpoint nothing here runs.

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
        let http = reqwest::Client::builder()
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

/// The `limit` passages most similar to `query`, best first: `(seq, cosine)`.
pub fn nearest(conn: &Connection, query: &[f32], limit: usize) -> Result<Vec<(i64, f32)>> {
    let mut stmt = conn.prepare_cached("SELECT passage_seq, vector FROM passage_vectors")?;
    let mut rows = stmt.query([])?;
    let mut scored = Vec::new();
    while let Some(r) = rows.next()? {
        let vector = from_bytes(&r.get::<_, Vec<u8>>(1)?);
        if vector.len() == query.len() {
            scored.push((r.get::<_, i64>(0)?, cosine(query, &vector)));
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

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    }
}

fn to_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_round_trip_and_cosine_orders_by_similarity() {
        let v = vec![0.5f32, -1.25, 3.0];
        assert_eq!(from_bytes(&to_bytes(&v)), v);
        assert!(cosine(&[1.0, 0.0], &[1.0, 0.1]) > cosine(&[1.0, 0.0], &[0.1, 1.0]));
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }

    #[test]
    fn fusion_rewards_agreement_and_keeps_single_list_hits() {
        let fused = fuse(&[vec![1, 2, 3], vec![3, 4]]);
        assert_eq!(fused[0], 3, "ranked by both lists");
        assert!(fused.contains(&4) && fused.contains(&1));
    }
}

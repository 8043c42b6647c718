//! Knowledge-base retrieval benchmark (issue 10): BM25 retrieval over 10,000 passages in one
//! encrypted tenant file, through the same function the gateway runs for every visitor message
//! (`knowledge::retrieve`: FTS5 match, BM25 rank, token budget).
//!
//! `cargo bench --bench knowledge` (10,000 passages) or `-- --quick` (1,000). Two corpora:
//! "zipf" (a 3,000-word vocabulary with a Zipf-like spread, like real help pages) and
//! "dense" (32 common words, so every passage matches every question: the worst case for
//! ranking). Target: p50 ≤ 5 ms. Numbers, never assertions.

use std::time::Instant;

use anyhow::Result;
use chatvault::crypto::MasterKey;
use chatvault::datadir::DataDir;
use chatvault::domain::{Origin, TenantId};
use chatvault::knowledge::{self, DocumentId, repo};
use chatvault::store::Store;

#[path = "support/stats.rs"]
mod stats;
#[path = "support/text.rs"]
mod text;

use stats::{Summary, ms, verdict};

const PASSAGES_PER_DOCUMENT: usize = 10;
const QUERIES: usize = 500;

/// xorshift, seeded: deterministic without a random-number dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A word with a Zipf-like spread over the vocabulary: low ranks are far more common. The
    /// top ranks stand for content words (the very commonest words are stop words, never
    /// searched for), so the most common one is in about a third of the passages.
    fn zipf_word(&mut self, vocabulary: usize) -> String {
        loop {
            let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
            let rank = ((vocabulary as f64).powf(u) as usize).saturating_sub(1);
            if rank >= 100 {
                return format!("w{rank}");
            }
        }
    }
}

fn zipf_text(rng: &mut Rng, words: usize) -> String {
    (0..words)
        .map(|_| rng.zipf_word(3_000))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn run_corpus(
    store: &Store,
    tenant: &TenantId,
    name: &str,
    passages: usize,
) -> Result<Summary> {
    let documents = passages / PASSAGES_PER_DOCUMENT;
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let started = Instant::now();
    for d in 0..documents {
        let texts: Vec<String> = (0..PASSAGES_PER_DOCUMENT)
            .map(|p| match name {
                "zipf" => zipf_text(&mut rng, 110),
                _ => format!(
                    "{} {}",
                    text::message((d * 100 + p) as u64),
                    text::message((d * 100 + p) as u64 + 7)
                ),
            })
            .collect();
        let doc = repo::NewDocument {
            id: DocumentId::generate(),
            title: format!("Document {d}"),
            url: None,
            format: "text",
            text: texts.join("\n\n"),
            passages: texts,
        };
        store
            .vault
            .call(tenant, move |c| repo::insert(c, &doc, 0))
            .await?;
    }
    let load = started.elapsed();
    let questions: Vec<String> = (0..QUERIES)
        .map(|i| match name {
            "zipf" => zipf_text(&mut rng, 6),
            _ => text::message(i as u64 + 1_000_000)
                .split(' ')
                .take(6)
                .collect::<Vec<_>>()
                .join(" "),
        })
        .collect();
    // Vectors for every passage (384 dimensions, as small sentence-embedding models produce), so
    // the hybrid path (BM25 + a full cosine scan, fused) can be timed on the same corpus.
    const DIMENSIONS: usize = 384;
    let mut vector_rng = Rng(0x0dd_ba11);
    let mut random_vector = move || -> Vec<f32> {
        (0..DIMENSIONS)
            .map(|_| (vector_rng.next() % 2000) as f32 / 1000.0 - 1.0)
            .collect()
    };
    let seqs: Vec<i64> = store
        .vault
        .call(tenant, |c| {
            let mut stmt = c.prepare("SELECT seq FROM passages")?;
            let rows = stmt
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()?;
            Ok(rows)
        })
        .await?;
    let vectors: Vec<(i64, Vec<f32>)> =
        seqs.into_iter().map(|seq| (seq, random_vector())).collect();
    store
        .vault
        .call(tenant, move |c| {
            chatvault::knowledge::embed::store_vectors(c, &vectors)
        })
        .await?;
    let query_vectors: Vec<Vec<f32>> = (0..QUERIES).map(|_| random_vector()).collect();
    let vault = store.vault.clone();
    let id = tenant.clone();
    let hybrid_questions = questions.clone();
    let hybrid_vault = store.vault.clone();
    let hybrid_id = tenant.clone();
    let hybrid = tokio::task::spawn_blocking(move || -> Result<Vec<std::time::Duration>> {
        let conn = hybrid_vault.open_reader_blocking(&hybrid_id)?;
        let mut samples = Vec::with_capacity(hybrid_questions.len());
        for (q, v) in hybrid_questions.iter().zip(&query_vectors) {
            let t = Instant::now();
            let found = knowledge::search::retrieve_hybrid(
                &conn,
                q,
                Some(v),
                knowledge::PASSAGE_BUDGET_TOKENS,
            )?;
            samples.push(t.elapsed());
            std::hint::black_box(found);
        }
        Ok(samples)
    })
    .await??;
    let hybrid = Summary::of(hybrid);
    println!(
        "{name:>5}: hybrid (BM25 + cosine over {passages} × {DIMENSIONS}-d vectors, RRF) p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  [{} target p50 <= 20 ms]",
        ms(hybrid.p50),
        ms(hybrid.p95),
        ms(hybrid.p99),
        verdict(ms(hybrid.p50) <= 20.0)
    );
    let samples = tokio::task::spawn_blocking(move || -> Result<Vec<std::time::Duration>> {
        let conn = vault.open_reader_blocking(&id)?;
        for q in questions.iter().take(20) {
            knowledge::retrieve(&conn, q, knowledge::PASSAGE_BUDGET_TOKENS)?;
        }
        let mut samples = Vec::with_capacity(questions.len());
        for q in &questions {
            let t = Instant::now();
            let found = knowledge::retrieve(&conn, q, knowledge::PASSAGE_BUDGET_TOKENS)?;
            samples.push(t.elapsed());
            std::hint::black_box(found);
        }
        Ok(samples)
    })
    .await??;
    let summary = Summary::of(samples);
    println!(
        "{name:>5}: {passages} passages loaded in {:.1} s; retrieve p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms  [{} target p50 <= 5 ms]",
        load.as_secs_f64(),
        ms(summary.p50),
        ms(summary.p95),
        ms(summary.p99),
        ms(summary.max),
        verdict(ms(summary.p50) <= 5.0)
    );
    Ok(summary)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let passages = if quick { 1_000 } else { 10_000 };
    let tmp = tempfile::tempdir()?;
    let store = Store::open(
        DataDir::open(tmp.path().join("tenants"))?,
        &MasterKey::generate(),
        8,
    )?;
    println!(
        "knowledge retrieval benchmark: {passages} passages per tenant file, {QUERIES} questions, SQLCipher"
    );
    let mut report = serde_json::Map::new();
    for name in ["zipf", "dense"] {
        let tenant = TenantId::parse(&format!("bench-{name}"))?;
        store
            .create_tenant(
                &tenant,
                name,
                &[Origin::parse("https://bench.example")?],
                "bench",
            )
            .await?;
        let summary = run_corpus(&store, &tenant, name, passages).await?;
        report.insert(name.into(), summary.to_json());
    }
    let report = serde_json::json!({ "passages": passages, "queries": QUERIES, "bm25": report, "machine": stats::machine() });
    if let Ok(path) = stats::write_report("knowledge", &report) {
        println!("report: {}", path.display());
    }
    Ok(())
}

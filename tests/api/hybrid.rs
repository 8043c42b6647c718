//! Hybrid retrieval: with an embeddings endpoint configured, passages get vectors stored in the
//! tenant's own file, and a question that shares no word with the right passage still finds it
//! (BM25 + cosine, fused by reciprocal rank). Without embeddings the same question finds nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::customer_api::Api;
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

async fn upload(app: &TestApp) -> Vec<String> {
    let api = Api::new(app, &app.acme.api_key);
    let docs = [
        (
            "Shipping",
            "Orders leave our warehouse the same day. A courier handles delivery within three business days.",
        ),
        (
            "Returns",
            "Send items back within thirty days and we refund the full price.",
        ),
        (
            "Opening hours",
            "The store opens at nine and closes at six, Monday to Saturday.",
        ),
    ];
    let mut ids = Vec::new();
    for (title, text) in docs {
        let (status, body) = api
            .send(
                Method::POST,
                "/v1/documents",
                Some(json!({"title": title, "text": text})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    ids
}

async fn count(app: &TestApp, sql: &'static str) -> i64 {
    let acme = chatvault::domain::TenantId::parse("acme").unwrap();
    app.store
        .vault
        .call(&acme, move |c| Ok(c.query_row(sql, [], |r| r.get(0))?))
        .await
        .unwrap()
}

/// The passages the fake LLM received for one question.
async fn passages_for(app: &TestApp, question: &str) -> Vec<String> {
    app.widget().await.exchange("q", question).await;
    let request = app.llm.last_request();
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["content"].as_str())
        .filter(|c| c.starts_with("<untrusted_document") && c.contains("source=\"kb:"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn embeddings_find_a_passage_that_shares_no_word_with_the_question() {
    let app = spawn_app_with(|c| c.llm.embeddings_model = Some("fake-embed".into())).await;
    let ids = upload(&app).await;
    assert_eq!(
        count(&app, "SELECT count(*) FROM passage_vectors").await,
        count(&app, "SELECT count(*) FROM passages").await,
        "every passage has a vector"
    );
    let found = passages_for(&app, "When will my parcel get here?").await;
    assert!(
        !found.is_empty() && found[0].contains("courier"),
        "the shipping passage comes first: {found:?}"
    );

    let before = count(&app, "SELECT count(*) FROM passage_vectors").await;
    let (status, _) = Api::new(&app, &app.acme.api_key)
        .send(Method::DELETE, &format!("/v1/documents/{}", ids[0]), None)
        .await;
    assert_eq!(status.as_u16() / 100, 2);
    assert!(
        count(&app, "SELECT count(*) FROM passage_vectors").await < before,
        "a deleted document's vectors go with it"
    );
    assert_eq!(count(&app, "SELECT count(*) FROM passage_vectors WHERE passage_seq NOT IN (SELECT seq FROM passages)").await, 0);
}

#[tokio::test]
async fn without_embeddings_the_same_question_gets_no_passage() {
    let app = spawn_app().await;
    upload(&app).await;
    assert_eq!(
        count(&app, "SELECT count(*) FROM passage_vectors").await,
        0,
        "no endpoint, no vectors"
    );
    let found: Vec<String> = passages_for(&app, "When will my parcel get here?").await;
    assert!(
        found.iter().all(|p| !p.contains("courier")),
        "BM25 alone cannot match it: {found:?}"
    );
    let lexical: Vec<Value> = passages_for(&app, "How long does delivery take?")
        .await
        .into_iter()
        .map(Value::String)
        .collect();
    assert!(
        lexical
            .iter()
            .any(|p| p.as_str().unwrap().contains("courier")),
        "a shared word still works"
    );
}

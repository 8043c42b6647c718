//! The customer API (CONTRACT §5) with API keys: every route, scopes, revocation, cross-tenant
//! isolation, idempotent replays, streamed export.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, create_tenant, spawn_app};

/// A caller holding one API key.
pub struct Api<'a> {
    app: &'a TestApp,
    key: String,
    client: reqwest::Client,
}

impl<'a> Api<'a> {
    pub fn new(app: &'a TestApp, key: &str) -> Self {
        Self {
            app,
            key: key.to_owned(),
            client: reqwest::Client::new(),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, self.app.http(path))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(Method::GET, path, None).await
    }
}

/// Makes `n` conversations through the widget socket; returns their ids.
pub async fn chat(app: &TestApp, texts: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let mut widget = app.widget().await;
        let frames = widget.exchange(&format!("s{i}"), text).await;
        ids.push(frames[0]["conversation"].as_str().unwrap().to_owned());
    }
    ids
}

#[tokio::test]
async fn history_can_be_listed_searched_read_and_paged() {
    let app = spawn_app().await;
    let ids = chat(
        &app,
        &[
            "where is my parcel",
            "refund for order 1234",
            "parcel arrived damaged",
        ],
    )
    .await;
    let api = Api::new(&app, &app.acme.api_key);
    let (status, page) = api.get("/v1/conversations").await;
    assert_eq!(status, 200);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["id"], ids[2].as_str(), "newest first");
    assert_eq!(items[0]["message_count"], 2);
    assert!(items[0]["started_at"].as_str().unwrap().ends_with('Z'));
    assert!(page["next_cursor"].is_null());

    let (_, found) = api.get("/v1/conversations?q=parcel").await;
    assert_eq!(found["items"].as_array().unwrap().len(), 2);
    let (_, none) = api.get("/v1/conversations?q=unicorn").await;
    assert!(none["items"].as_array().unwrap().is_empty());

    let (_, first) = api.get("/v1/conversations?limit=2").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) = api
        .get(&format!("/v1/conversations?limit=2&cursor={cursor}"))
        .await;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(api.get("/v1/conversations?cursor=garbage").await.0, 400);

    let (status, one) = api.get(&format!("/v1/conversations/{}", ids[0])).await;
    assert_eq!(status, 200);
    assert_eq!(one["id"], ids[0].as_str());
    let messages = one["messages"].as_array().unwrap();
    assert_eq!(
        (messages[0]["role"].as_str(), messages[0]["text"].as_str()),
        (Some("visitor"), Some("where is my parcel"))
    );
    assert!(messages[1]["id"].as_str().unwrap().starts_with("m_"));
    assert_eq!(
        api.get("/v1/conversations/c_00000000000000000000000000000000")
            .await
            .0,
        404
    );
    assert_eq!(api.get("/v1/conversations/../../etc/passwd").await.0, 404);
}

#[tokio::test]
async fn export_streams_one_json_line_per_conversation_and_csv() {
    let app = spawn_app().await;
    chat(&app, &["one", "two =SUM(A1)", "three, with \"quotes\""]).await;
    let client = reqwest::Client::new();
    let response = client
        .get(app.http("/v1/export"))
        .bearer_auth(&app.acme.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = response.text().await.unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["messages"][0]["text"], "one");
    let csv = client
        .get(app.http("/v1/export?format=csv"))
        .bearer_auth(&app.acme.api_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("conversation_id,message_id,role,at,text\n"));
    assert!(csv.contains("\"'two =SUM(A1)\"") || csv.contains("\"two =SUM(A1)\""));
    assert!(csv.contains("\"three, with \"\"quotes\"\"\""));
}

#[tokio::test]
async fn deleting_one_conversation_and_purging_all() {
    let app = spawn_app().await;
    let ids = chat(&app, &["keep me", "delete me", "purge me"]).await;
    let api = Api::new(&app, &app.acme.api_key);
    assert_eq!(
        api.send(
            Method::DELETE,
            &format!("/v1/conversations/{}", ids[1]),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        api.get(&format!("/v1/conversations/{}", ids[1])).await.0,
        404
    );
    assert_eq!(
        api.send(
            Method::DELETE,
            &format!("/v1/conversations/{}", ids[1]),
            None
        )
        .await
        .0,
        404
    );
    let (status, purged) = api.send(Method::DELETE, "/v1/conversations", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            purged["conversations"].as_i64(),
            purged["messages"].as_i64()
        ),
        (Some(2), Some(4))
    );
    assert!(purged["purged_at"].is_string());
    assert!(
        api.get("/v1/conversations").await.1["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The widget keeps working after a purge.
    assert_eq!(chat(&app, &["after the purge"]).await.len(), 1);
}

#[tokio::test]
async fn settings_read_and_partial_update_with_validation() {
    let app = spawn_app().await;
    let api = Api::new(&app, &app.acme.api_key);
    let (status, settings) = api.get("/v1/settings").await;
    assert_eq!(status, 200);
    for field in [
        "name",
        "allowed_origins",
        "system_prompt",
        "model",
        "retention_days",
        "max_message_chars",
        "messages_per_minute",
        "tenant_messages_per_minute",
        "daily_token_budget",
    ] {
        assert!(settings.get(field).is_some(), "settings lack {field}");
    }
    let (status, updated) = api.send(Method::PATCH, "/v1/settings", Some(json!({"system_prompt": "Talk like a pirate.", "retention_days": 7, "allowed_origins": ["https://acme.example", "https://shop.acme.example"]}))).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["retention_days"], 7);
    assert_eq!(updated["allowed_origins"].as_array().unwrap().len(), 2);
    assert_eq!(
        updated["max_message_chars"], settings["max_message_chars"],
        "untouched fields stay"
    );
    for bad in [
        json!({"retention_days": -1}),
        json!({"max_message_chars": 0}),
        json!({"nonsense": 1}),
        json!({"allowed_origins": ["not an origin"]}),
        json!({"allowed_origins": []}),
        json!([1]),
    ] {
        assert_eq!(
            api.send(Method::PATCH, "/v1/settings", Some(bad.clone()))
                .await
                .0,
            400,
            "{bad}"
        );
    }
    let mut widget = app.widget().await;
    widget.exchange("a", "ahoy").await;
    let system = app.llm.last_request()["messages"][0]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        system.ends_with("Talk like a pirate."),
        "the new prompt reaches the model"
    );
    assert!(
        app.widget_for(&app.acme.widget_key, Some("https://shop.acme.example"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn usage_counts_messages_and_tokens_and_resets() {
    let app = spawn_app().await;
    chat(&app, &["hello"]).await;
    let api = Api::new(&app, &app.acme.api_key);
    let (status, usage) = api.get("/v1/usage").await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            usage["today"]["messages"].as_i64(),
            usage["today"]["replies"].as_i64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(
        (
            usage["today"]["tokens_in"].as_i64(),
            usage["today"]["tokens_out"].as_i64()
        ),
        (Some(11), Some(7)),
        "upstream-reported usage"
    );
    assert_eq!(api.send(Method::DELETE, "/v1/usage", None).await.0, 204);
    assert_eq!(api.get("/v1/usage").await.1["today"]["messages"], 0);
}

#[tokio::test]
async fn api_keys_are_shown_once_scoped_and_revocable() {
    let app = spawn_app().await;
    let admin = Api::new(&app, &app.acme.api_key);
    let (status, created) = admin
        .send(
            Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "reader", "scopes": ["history:read"]})),
        )
        .await;
    assert_eq!(status, 201);
    let reader_key = created["key"].as_str().unwrap().to_owned();
    assert!(reader_key.starts_with(&format!("cvk_{}_", created["id"].as_str().unwrap())));
    let (_, listed) = admin.get("/v1/api-keys").await;
    let listed_text = listed.to_string();
    assert!(
        !listed_text.contains(&reader_key[20..]),
        "the secret is never listed"
    );
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2);

    let reader = Api::new(&app, &reader_key);
    assert_eq!(reader.get("/v1/conversations").await.0, 200);
    assert_eq!(reader.get("/v1/settings").await.0, 200);
    for (method, path) in [
        (Method::DELETE, "/v1/conversations"),
        (Method::PATCH, "/v1/settings"),
        (Method::POST, "/v1/api-keys"),
        (Method::GET, "/v1/audit"),
        (Method::DELETE, "/v1/usage"),
    ] {
        let (status, body) = reader.send(method.clone(), path, Some(json!({}))).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }
    let (_, escalate) = reader
        .send(
            Method::POST,
            "/v1/api-keys",
            Some(json!({"scopes": ["history:delete"]})),
        )
        .await;
    assert_eq!(escalate["error"]["code"], "forbidden");

    let id = created["id"].as_str().unwrap();
    assert_eq!(
        admin
            .send(Method::DELETE, &format!("/v1/api-keys/{id}"), None)
            .await
            .0,
        204
    );
    assert_eq!(
        reader.get("/v1/conversations").await.0,
        401,
        "a revoked key is refused"
    );
    let (_, listed) = admin.get("/v1/api-keys").await;
    assert!(
        listed["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == id && k["revoked_at"].is_string())
    );
    assert!(
        listed["keys"][0]["last_used_at"].is_string(),
        "use is recorded"
    );
}

#[tokio::test]
async fn missing_or_malformed_credentials_are_401_in_our_error_shape() {
    let app = spawn_app().await;
    for key in [
        "",
        "nope",
        "cvk_000000000000_0000",
        &format!("cvk_000000000000_{}", "0".repeat(64)),
        &format!("{}x", app.acme.api_key),
    ] {
        let (status, body) = Api::new(&app, key).get("/v1/conversations").await;
        assert_eq!(status, 401, "{key:?}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let plain = reqwest::get(app.http("/v1/conversations")).await.unwrap();
    assert_eq!(plain.status(), 401);
    let unknown = reqwest::get(app.http("/v1/nothing-here")).await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
}

#[tokio::test]
async fn another_tenants_ids_answer_404_on_every_route() {
    let app = spawn_app().await;
    let ids = chat(&app, &["acme's secret"]).await;
    let other = create_tenant(&app.store, "other", "https://other.example").await;
    let acme = Api::new(&app, &app.acme.api_key);
    let (_, created) = acme
        .send(
            Method::POST,
            "/v1/api-keys",
            Some(json!({"scopes": ["history:read"]})),
        )
        .await;
    let intruder = Api::new(&app, &other.api_key);
    assert_eq!(
        intruder
            .get(&format!("/v1/conversations/{}", ids[0]))
            .await
            .0,
        404
    );
    assert_eq!(
        intruder
            .send(
                Method::DELETE,
                &format!("/v1/conversations/{}", ids[0]),
                None
            )
            .await
            .0,
        404
    );
    assert_eq!(
        intruder
            .send(
                Method::DELETE,
                &format!("/v1/api-keys/{}", created["id"].as_str().unwrap()),
                None
            )
            .await
            .0,
        404
    );
    assert!(
        intruder.get("/v1/conversations").await.1["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        !intruder
            .get("/v1/export")
            .await
            .1
            .to_string()
            .contains("secret")
    );
    assert_eq!(
        acme.get(&format!("/v1/conversations/{}", ids[0])).await.0,
        200,
        "still there for its owner"
    );
}

#[tokio::test]
async fn a_mutation_repeated_with_its_idempotency_key_returns_the_first_response() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let create = || {
        client
            .post(app.http("/v1/api-keys"))
            .bearer_auth(&app.acme.api_key)
            .header("idempotency-key", "create-1")
            .json(&json!({"scopes": ["history:read"]}))
    };
    let first = create().send().await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = create().send().await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let (_, listed) = Api::new(&app, &app.acme.api_key).get("/v1/api-keys").await;
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2, "created once");

    chat(&app, &["x"]).await;
    let purge = || {
        client
            .delete(app.http("/v1/conversations"))
            .bearer_auth(&app.acme.api_key)
            .header("idempotency-key", "purge-1")
    };
    let first: Value = purge().send().await.unwrap().json().await.unwrap();
    assert_eq!(first["conversations"], 1);
    chat(&app, &["y"]).await;
    let replay: Value = purge().send().await.unwrap().json().await.unwrap();
    assert_eq!(replay, first, "the replay does not purge again");
    assert_eq!(
        Api::new(&app, &app.acme.api_key)
            .get("/v1/conversations")
            .await
            .1["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn every_admin_action_lands_in_the_audit_log() {
    let app = spawn_app().await;
    let ids = chat(&app, &["a", "b"]).await;
    let api = Api::new(&app, &app.acme.api_key);
    api.send(
        Method::DELETE,
        &format!("/v1/conversations/{}", ids[0]),
        None,
    )
    .await;
    api.send(
        Method::PATCH,
        "/v1/settings",
        Some(json!({"retention_days": 3})),
    )
    .await;
    api.send(
        Method::POST,
        "/v1/api-keys",
        Some(json!({"scopes": ["history:read"]})),
    )
    .await;
    reqwest::Client::new()
        .get(app.http("/v1/export"))
        .bearer_auth(&app.acme.api_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    api.send(Method::DELETE, "/v1/conversations", None).await;
    let (status, audit) = api.get("/v1/audit").await;
    assert_eq!(status, 200);
    let actions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "tenant.created",
            "conversation.deleted",
            "settings.changed",
            "api_key.created",
            "history.exported",
            "history.purged"
        ]
    );
    assert!(
        audit["entries"][1]["actor"]
            .as_str()
            .unwrap()
            .starts_with("api_key:")
    );
    assert!(
        !audit.to_string().contains("\"a\""),
        "no conversation content"
    );
    let csv = reqwest::Client::new()
        .get(app.http("/v1/audit?format=csv"))
        .bearer_auth(&app.acme.api_key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("seq,at,actor,action,target,details\n") && csv.contains("history.purged")
    );
}

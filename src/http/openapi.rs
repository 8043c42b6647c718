//! The OpenAPI 3.1 document of the customer API (CONTRACT §5), built by utoipa from the types
//! and operation descriptions below and served at `GET /v1/openapi.json`. The handlers build
//! their JSON by hand, so these types mirror them; the schemathesis test (`tests/api/openapi.rs`)
//! runs the live server against this document and fails when the two drift apart.

#![expect(
    dead_code,
    reason = "the operation stubs and schema types exist only for utoipa to read"
)]

use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// `GET /v1/openapi.json`
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[derive(OpenApi)]
#[openapi(
    info(title = "chatvault customer API", description = "History, settings, usage, audit, API keys and knowledge base of one tenant. Authenticate with `Authorization: Bearer <api key>`."),
    paths(
        list_conversations, get_conversation, delete_conversation, purge_conversations, export,
        get_usage, reset_usage, get_settings, patch_settings, get_audit,
        create_key, list_keys, revoke_key,
        upload_document, list_documents, get_document, delete_document, purge_documents,
    ),
    components(schemas(ExportFormat, AuditFormat)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Every error: `{"error":{"code","message"}}`.
#[derive(Serialize, ToSchema)]
struct ApiError {
    error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
struct ErrorBody {
    code: String,
    message: String,
}

#[derive(Serialize, ToSchema)]
struct ConversationSummary {
    id: String,
    started_at: String,
    last_at: String,
    message_count: i64,
}

#[derive(Serialize, ToSchema)]
struct ConversationPage {
    items: Vec<ConversationSummary>,
    next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct StoredMessage {
    id: String,
    /// `visitor` or `assistant`.
    role: String,
    text: String,
    at: String,
    /// Content-safety flags, when any were raised.
    #[schema(value_type = Option<Object>)]
    flags: Option<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
struct Conversation {
    id: String,
    started_at: String,
    messages: Vec<StoredMessage>,
}

#[derive(Serialize, ToSchema)]
struct Purged {
    purged_at: String,
    conversations: i64,
    messages: i64,
}

#[derive(Serialize, ToSchema)]
struct Usage {
    #[schema(value_type = Object)]
    today: serde_json::Value,
    daily_token_budget: Option<i64>,
    #[schema(value_type = Vec<Object>)]
    days: Vec<serde_json::Value>,
    #[schema(value_type = Object)]
    stored: serde_json::Value,
}

/// The tenant's settings; more fields may follow (CONTRACT §5).
#[derive(Serialize, ToSchema)]
struct Settings {
    name: String,
    allowed_origins: Vec<String>,
    system_prompt: String,
    model: Option<String>,
    retention_days: i64,
    max_message_chars: i64,
    messages_per_minute: i64,
    tenant_messages_per_minute: i64,
    daily_token_budget: i64,
}

/// Any subset of the settings' fields.
#[derive(Serialize, ToSchema)]
struct SettingsPatch {
    name: Option<String>,
    allowed_origins: Option<Vec<String>>,
    system_prompt: Option<String>,
    retention_days: Option<i64>,
    max_message_chars: Option<i64>,
    messages_per_minute: Option<i64>,
}

#[derive(Serialize, ToSchema)]
struct AuditEntry {
    seq: i64,
    at: String,
    actor: String,
    action: String,
    target: Option<String>,
    #[schema(value_type = Object)]
    details: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
struct AuditLog {
    entries: Vec<AuditEntry>,
}

#[derive(Serialize, ToSchema)]
struct NewKey {
    /// At most 100 characters.
    #[schema(max_length = 100)]
    name: Option<String>,
    /// At least one; at most the caller's own scopes.
    #[schema(min_items = 1)]
    scopes: Vec<ScopeName>,
}

#[derive(Serialize, ToSchema)]
enum ScopeName {
    #[serde(rename = "history:read")]
    HistoryRead,
    #[serde(rename = "history:delete")]
    HistoryDelete,
    #[serde(rename = "settings:write")]
    SettingsWrite,
    #[serde(rename = "keys:manage")]
    KeysManage,
    #[serde(rename = "knowledge:manage")]
    KnowledgeManage,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum ExportFormat {
    Ndjson,
    Csv,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum AuditFormat {
    Json,
    Csv,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum DocumentFormat {
    Text,
    Markdown,
    Html,
}

#[derive(Serialize, ToSchema)]
struct CreatedKey {
    id: String,
    /// Shown once; stored only as a hash.
    key: String,
    name: String,
    scopes: Vec<String>,
}

#[derive(Serialize, ToSchema)]
struct KeySummary {
    id: String,
    name: String,
    scopes: Vec<String>,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct KeyList {
    keys: Vec<KeySummary>,
}

#[derive(Serialize, ToSchema)]
struct NewDocument {
    title: String,
    text: String,
    /// `text` by default.
    format: Option<DocumentFormat>,
    url: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct CreatedDocument {
    id: String,
    title: String,
    passages: i64,
}

#[derive(Serialize, ToSchema)]
struct DocumentList {
    #[schema(value_type = Vec<Object>)]
    items: Vec<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
struct DocumentsPurged {
    purged_at: String,
    documents: i64,
    passages: i64,
}

#[utoipa::path(get, path = "/v1/conversations", tag = "history",
    params(("limit" = Option<u32>, Query, description = "1-200, default 50"), ("cursor" = Option<String>, Query), ("q" = Option<String>, Query, description = "full-text search"),
        ("from" = Option<String>, Query, description = "RFC 3339 or YYYY-MM-DD"), ("to" = Option<String>, Query, description = "RFC 3339 or YYYY-MM-DD")),
    responses((status = 200, body = ConversationPage), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
fn list_conversations() {}

#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "history", params(("id" = String, Path)),
    responses((status = 200, body = Conversation), (status = 401, body = ApiError), (status = 404, body = ApiError)))]
fn get_conversation() {}

#[utoipa::path(delete, path = "/v1/conversations/{id}", tag = "history", params(("id" = String, Path)),
    responses((status = 204, description = "erased"), (status = 401, body = ApiError), (status = 404, body = ApiError)))]
fn delete_conversation() {}

#[utoipa::path(delete, path = "/v1/conversations", tag = "history",
    responses((status = 200, body = Purged), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
fn purge_conversations() {}

#[utoipa::path(get, path = "/v1/export", tag = "history", params(("format" = Option<ExportFormat>, Query, description = "ndjson by default")),
    responses((status = 200, description = "one conversation per line", content(("application/x-ndjson"), ("text/csv"))), (status = 400, body = ApiError), (status = 401, body = ApiError)))]
fn export() {}

#[utoipa::path(get, path = "/v1/usage", tag = "account", responses((status = 200, body = Usage), (status = 401, body = ApiError)))]
fn get_usage() {}

#[utoipa::path(delete, path = "/v1/usage", tag = "account", responses((status = 204, description = "counters reset"), (status = 401, body = ApiError)))]
fn reset_usage() {}

#[utoipa::path(get, path = "/v1/settings", tag = "account", responses((status = 200, body = Settings), (status = 401, body = ApiError)))]
fn get_settings() {}

#[utoipa::path(patch, path = "/v1/settings", tag = "account", request_body = SettingsPatch,
    responses((status = 200, body = Settings), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
fn patch_settings() {}

#[utoipa::path(get, path = "/v1/audit", tag = "account",
    params(("format" = Option<AuditFormat>, Query, description = "json by default"), ("days" = Option<u32>, Query, description = "1-3650, default 90")),
    responses((status = 200, description = "the audit log", content((AuditLog = "application/json"), (String = "text/csv"))), (status = 400, body = ApiError), (status = 401, body = ApiError)))]
fn get_audit() {}

#[utoipa::path(post, path = "/v1/api-keys", tag = "keys", request_body = NewKey,
    responses((status = 201, body = CreatedKey), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError)))]
fn create_key() {}

#[utoipa::path(get, path = "/v1/api-keys", tag = "keys", responses((status = 200, body = KeyList), (status = 401, body = ApiError)))]
fn list_keys() {}

#[utoipa::path(delete, path = "/v1/api-keys/{id}", tag = "keys", params(("id" = String, Path)),
    responses((status = 204, description = "revoked"), (status = 401, body = ApiError), (status = 404, body = ApiError)))]
fn revoke_key() {}

#[utoipa::path(post, path = "/v1/documents", tag = "knowledge", request_body = NewDocument,
    responses((status = 201, body = CreatedDocument), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 413, body = ApiError)))]
fn upload_document() {}

#[utoipa::path(get, path = "/v1/documents", tag = "knowledge", responses((status = 200, body = DocumentList), (status = 401, body = ApiError)))]
fn list_documents() {}

#[utoipa::path(get, path = "/v1/documents/{id}", tag = "knowledge", params(("id" = String, Path)),
    responses((status = 200, description = "the document with its text", body = Object), (status = 401, body = ApiError), (status = 404, body = ApiError)))]
fn get_document() {}

#[utoipa::path(delete, path = "/v1/documents/{id}", tag = "knowledge", params(("id" = String, Path)),
    responses((status = 204, description = "deleted"), (status = 401, body = ApiError), (status = 404, body = ApiError)))]
fn delete_document() {}

#[utoipa::path(delete, path = "/v1/documents", tag = "knowledge", responses((status = 200, body = DocumentsPurged), (status = 401, body = ApiError)))]
fn purge_documents() {}

//! The OpenAPI 3.1 document of the `/v1` HTTP API, served at `GET /v1/openapi.json`. utoipa
//! builds it from the handlers' `#[utoipa::path]` attributes and the request and response types
//! they actually read and return, so a change to a type changes the document. The router takes
//! each route's method and path from the same attributes (`api::routes`); the test below checks
//! that the document lists every route, and `tests/api/openapi.rs` fuzzes the live server
//! against the document with schemathesis.

use axum::Json;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{
    Content, ObjectBuilder, Ref, RefOr, Required, Response, ResponseBuilder, Type,
};
use utoipa::{Modify, OpenApi};

use super::api::{account, conversations, documents, keys, session, users, webhooks};
use super::auth::{CSRF_HEADER, SESSION_COOKIE};
use crate::error::ErrorResponse;

/// `GET /v1/openapi.json`
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "chatvault API",
        description = "History, settings, usage, audit, API keys, knowledge base, webhook and \
            portal sessions of one tenant. Authenticate with `Authorization: Bearer <api key>` \
            (each operation names the scope it needs) or the portal's session cookie plus the \
            `X-CSRF-Token` header on mutations. Another tenant's ids answer 404. Errors are \
            `{\"error\":{\"code\",\"message\"}}`. Mutations accept an `Idempotency-Key` header: \
            a repeat returns the first response."
    ),
    paths(
        conversations::list, conversations::get, conversations::delete_one,
        conversations::purge, conversations::export,
        account::get_usage, account::reset_usage, account::get_settings,
        account::patch_settings, account::get_audit,
        keys::create_key, keys::list_keys, keys::revoke_key,
        documents::upload, documents::list, documents::get, documents::delete_one,
        documents::purge,
        webhooks::set, webhooks::get, webhooks::remove, webhooks::deliveries,
        session::login, session::me, session::logout, session::change_password,
        users::add_user, users::list_users, users::set_role, users::remove_user,
        users::delete_tenant,
    ),
    components(schemas(ErrorResponse)),
    modifiers(&SecuritySchemes, &CommonResponses),
)]
pub struct ApiDoc;

/// `bearer` (an API key), `session` (the portal cookie) and `csrf` (its header on mutations).
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("cvk_<id>_<secret>")
            .description(Some(
                "An API key. Its scopes (history:read, history:delete, settings:write, \
                 keys:manage, knowledge:manage) are fixed at creation; each operation lists the \
                 one it needs.",
            ))
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "The portal session set by `POST /v1/session`. Members may read history; \
                 admins and owners hold every scope; user and tenant management is for owners.",
            ))),
        );
        components.add_security_scheme(
            "csrf",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                CSRF_HEADER,
                "The session's `csrf_token`, required with the session cookie on every \
                 mutation, together with a same-origin `Origin` header.",
            ))),
        );
    }
}

/// The responses and headers every operation shares, added once instead of on each handler.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for item in doc.paths.paths.values_mut() {
            for (method, operation) in operations(item) {
                add_common(method, operation);
            }
        }
    }
}

fn add_common(method: &str, operation: &mut Operation) {
    let secured = operation
        .security
        .iter()
        .flatten()
        .any(|requirement| *requirement != SecurityRequirement::default());
    let mut responses = vec![
        (
            "429",
            "Too many requests; `Retry-After` says when to try again.",
        ),
        ("500", "An internal error; the body says nothing more."),
        ("503", "Storage is unavailable; the body says nothing more."),
    ];
    if secured {
        responses.push(("401", "No valid API key or session."));
        responses.push((
            "403",
            "The key or role lacks the permission, the CSRF header or same-origin `Origin` is \
             missing, or a one-time password must be changed first.",
        ));
    }
    if operation.request_body.is_some() {
        responses.push(("400", "The body is not valid JSON or not of this shape."));
        responses.push(("413", "The body is too large."));
    }
    if method != "get" {
        operation
            .parameters
            .get_or_insert_with(Vec::new)
            .push(idempotency_key());
        responses.push(("400", "Invalid input, e.g. a malformed `Idempotency-Key`."));
    }
    for (status, description) in responses {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description));
    }
    for (status, response) in &mut operation.responses.responses {
        if let RefOr::T(response) = response
            && response.description.is_empty()
        {
            let reason = status.parse().ok().and_then(|s| {
                axum::http::StatusCode::from_u16(s)
                    .ok()
                    .and_then(|s| s.canonical_reason())
            });
            response.description = reason.unwrap_or_default().to_owned();
        }
    }
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = (&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("put", &mut item.put),
        ("post", &mut item.post),
        ("delete", &mut item.delete),
        ("options", &mut item.options),
        ("head", &mut item.head),
        ("patch", &mut item.patch),
        ("trace", &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|o| (method, o)))
}

fn error_response(description: &str) -> RefOr<Response> {
    let schema = Ref::from_schema_name("ErrorResponse");
    ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(schema)))
        .build()
        .into()
}

fn idempotency_key() -> utoipa::openapi::path::Parameter {
    let schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(255))
        .pattern(Some("^[!-~]+$"));
    ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "A repeat with the same key and credential returns the first response.",
        ))
        .schema(Some(schema))
        .build()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;

    fn document() -> Value {
        serde_json::to_value(ApiDoc::openapi()).expect("the document serializes")
    }

    fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
        let methods = [
            "get", "put", "post", "delete", "options", "head", "patch", "trace",
        ];
        doc["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                item.as_object()
                    .expect("a path item")
                    .keys()
                    .filter(|key| methods.contains(&key.as_str()))
                    .map(|method| (method.clone(), path.clone()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn the_document_lists_every_routed_operation_and_no_other() {
        let routed: Vec<(String, String)> = super::super::api::routes()
            .table
            .into_iter()
            .map(|(method, path)| (method.to_owned(), path))
            .collect();
        let routed_set: BTreeSet<_> = routed.iter().cloned().collect();
        assert_eq!(routed.len(), routed_set.len(), "a route is added twice");
        let documented = documented_operations(&document());
        let undocumented: Vec<_> = routed_set.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed_set).collect();
        assert!(
            undocumented.is_empty() && unrouted.is_empty(),
            "routed but missing from ApiDoc's paths: {undocumented:?}; \
             documented but not routed: {unrouted:?}"
        );
    }

    #[test]
    fn every_reference_resolves() {
        fn check(value: &Value, doc: &Value) {
            match value {
                Value::Object(map) => {
                    if let Some(Value::String(target)) = map.get("$ref") {
                        let pointer = target.strip_prefix('#').expect("a local reference");
                        assert!(doc.pointer(pointer).is_some(), "{target} is missing");
                    }
                    map.values().for_each(|v| check(v, doc));
                }
                Value::Array(items) => items.iter().for_each(|v| check(v, doc)),
                _ => {}
            }
        }
        let doc = document();
        check(&doc, &doc);
    }

    #[test]
    fn the_document_covers_the_contract() {
        let documented = documented_operations(&document());
        for (method, path) in [
            ("get", "/v1/conversations"),
            ("get", "/v1/conversations/{id}"),
            ("get", "/v1/export"),
            ("delete", "/v1/conversations/{id}"),
            ("delete", "/v1/conversations"),
            ("get", "/v1/usage"),
            ("delete", "/v1/usage"),
            ("get", "/v1/settings"),
            ("patch", "/v1/settings"),
            ("get", "/v1/audit"),
            ("post", "/v1/api-keys"),
            ("get", "/v1/api-keys"),
            ("delete", "/v1/api-keys/{id}"),
            ("post", "/v1/documents"),
            ("get", "/v1/documents"),
            ("get", "/v1/documents/{id}"),
            ("delete", "/v1/documents/{id}"),
        ] {
            assert!(
                documented.contains(&(method.to_owned(), path.to_owned())),
                "{method} {path} is documented"
            );
        }
    }

    #[test]
    fn operation_ids_are_unique_and_every_operation_documents_its_errors() {
        let doc = document();
        let mut ids = BTreeSet::new();
        for (method, path) in documented_operations(&doc) {
            let operation = &doc["paths"][&path][&method];
            let id = operation["operationId"].as_str().expect("an operation id");
            assert!(ids.insert(id.to_owned()), "{id} is used twice");
            let responses = operation["responses"].as_object().expect("responses");
            for (status, response) in responses {
                if status.starts_with(['4', '5']) {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorResponse",
                        "{method} {path} {status}"
                    );
                }
            }
            for status in ["429", "503"] {
                assert!(responses.contains_key(status), "{method} {path} {status}");
            }
        }
    }

    #[test]
    fn only_sign_in_is_open_and_mutations_accept_an_idempotency_key() {
        let doc = document();
        for (method, path) in documented_operations(&doc) {
            let operation = &doc["paths"][&path][&method];
            let open = operation["security"]
                .as_array()
                .expect("security")
                .iter()
                .any(|requirement| requirement == &serde_json::json!({}));
            assert_eq!(
                open,
                (method.as_str(), path.as_str()) == ("post", "/v1/session")
            );
            let idempotent = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header");
            assert_eq!(idempotent, method != "get", "{method} {path}");
        }
    }
}

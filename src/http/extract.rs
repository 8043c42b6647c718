//! Our extractors: JSON bodies, paths and queries that fail in our error shape
//! (`{"error":{"code","message"}}`) instead of axum's plain-text rejections.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// A JSON body; bad JSON is 400, a wrong content type 415 (as 400 with its code), too big 413.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(json_error(&rejection)),
        }
    }
}

fn json_error(rejection: &JsonRejection) -> Error {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return Error::TooLarge("the request body is too large".into());
    }
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Error::invalid(
            "unsupported_media_type",
            "send the body as application/json",
        ),
        JsonRejection::JsonDataError(e) => Error::invalid("invalid_body", e.body_text()),
        _ => Error::invalid("invalid_json", "the body is not valid JSON"),
    }
}

/// A path parameter; anything that does not parse is simply not found.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|_: PathRejection| Error::not_found("resource"))
    }
}

/// A query string.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Query(v))
            .map_err(|e: QueryRejection| Error::invalid("invalid_query", e.body_text()))
    }
}

/// Parses a JSON body that was taken as bytes, for handlers that must check permissions before
/// looking at the body.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| {
        if e.is_data() {
            Error::invalid("invalid_body", e.to_string())
        } else {
            Error::invalid("invalid_json", "the body is not valid JSON")
        }
    })
}

//! The extractors handlers take their input with. Every way a request can fail to come apart
//! (a body over the limit or too slow, the wrong content type, JSON that does not parse or has
//! the wrong shape, a path segment that is not UTF-8, a query parameter missing, repeated or
//! ill-formed) is a [`RequestError`], answered with the JSON error envelope and a stable code by
//! `error.rs`. The rejection happens before the handler runs, so nothing is recorded.
//!
//! Handlers use these instead of axum's `Json`, `Bytes`, `Path` and `Query`, whose rejections are
//! plain-text bodies.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Why a request could not be taken apart. Nothing is recorded for any of these.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The body is longer than `service.max_body_bytes`.
    #[error("the request body is over the limit of {0} bytes")]
    BodyTooLarge(usize),
    /// The body did not arrive within `http.body_timeout_seconds` of the head.
    #[error("the request body did not arrive within {0} s")]
    BodyTimeout(u64),
    /// The connection failed while the body was read.
    #[error("the request body could not be read")]
    BodyUnreadable,
    /// The body's `Content-Type` is not one the endpoint takes.
    #[error("content type {given:?}: this endpoint takes {expected}")]
    ContentType { given: String, expected: &'static str },
    /// The body is not JSON, or not the JSON the endpoint takes.
    #[error("{0}")]
    Json(String),
    /// A path segment is not what the route takes (e.g. not UTF-8 once percent-decoded).
    #[error("path: {0}")]
    Path(String),
    /// The query string lacks a parameter, repeats one, or has one of the wrong form.
    #[error("query: {0}")]
    Query(String),
    /// The path exists, but not with this method.
    #[error("this path does not take this method")]
    MethodNotAllowed,
}

/// How long a body may take once the head is in, and how long it may be: the listener puts it
/// in every request's extensions (`listen.rs`); `DefaultBodyLimit` in the routers enforces the
/// same length, this copy is for the message. A request without one (a router driven directly)
/// gets the default time.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub timeout: Duration,
    pub max_bytes: usize,
}

const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The whole body, bounded in size (`DefaultBodyLimit`) and in time ([`BodyLimits`]).
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limits = req.extensions().get::<BodyLimits>().copied();
        let limit = limits.map_or(DEFAULT_BODY_TIMEOUT, |l| l.timeout);
        let max = limits.map_or(0, |l| l.max_bytes);
        match tokio::time::timeout(limit, Bytes::from_request(req, state)).await {
            Ok(Ok(b)) => Ok(Body(b)),
            Ok(Err(e)) => Err(body_rejection(&e, max).into()),
            Err(_) => Err(RequestError::BodyTimeout(limit.as_secs()).into()),
        }
    }
}

fn body_rejection(e: &BytesRejection, max: usize) -> RequestError {
    match e {
        BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => RequestError::BodyTooLarge(max),
        // axum's rejection enums are non-exhaustive: anything else is a body that did not come.
        _ => RequestError::BodyUnreadable,
    }
}

/// The request's media type (`application/json` of `application/json; charset=utf-8`),
/// lower-case; empty when absent or not text.
pub fn media_type(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

fn is_json(media: &str) -> bool {
    media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
}

/// A JSON body (`application/json`): the wrong content type, a body that does not parse, or one
/// of the wrong shape is refused with the envelope, like every other bad request.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let media = media_type(req.headers());
        if !is_json(&media) {
            return Err(RequestError::ContentType {
                given: media,
                expected: "application/json",
            }
            .into());
        }
        let Body(bytes) = Body::from_request(req, state).await?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| RequestError::Json(e.to_string()).into())
    }
}

/// Path parameters; a segment that does not decode (invalid UTF-8) is `path_invalid`.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| RequestError::Path(e.body_text()).into())
    }
}

/// Query parameters; one missing, repeated or ill-formed is `query_invalid`.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| RequestError::Query(e.body_text()).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(media_type(&h), "");
        h.insert(header::CONTENT_TYPE, "Application/JSON; charset=utf-8".parse().unwrap());
        assert_eq!(media_type(&h), "application/json");
        assert!(is_json("application/json") && is_json("application/problem+json"));
        assert!(!is_json("text/json") && !is_json("application/jsonx") && !is_json(""));
    }
}

//! Relying systems' endpoints: CRLs and OCSP.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, NOT_MODIFIED};
use super::extract::{Body, Path};
use crate::pki::ocsp::Answer;
use crate::store::now;

/// An IMF-fixdate (`Tue, 01 Dec 2026 18:00:00 GMT`); a time before 1970 is the epoch.
fn http_date(unix: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    httpdate::fmt_http_date(at)
}

/// Any of the three forms RFC 9110 has a recipient accept (IMF-fixdate, RFC 850, asctime).
fn parse_http_date(s: &str) -> Option<i64> {
    let at = httpdate::parse_http_date(s).ok()?;
    i64::try_from(at.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs()).ok()
}

/// `GET /crl/{ca}.crl`, `GET /crl/{ca}-delta.crl`: from memory, with validators.
pub async fn crl(
    State(s): State<AppState>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let p = s
        .crls
        .get(&file)
        .ok_or_else(|| ApiError::not_found("crl_not_found", format!("no CRL {file}")))?;
    let max_age = (p.next_update - now()).max(0);
    let validators = [
        (header::ETAG, p.etag.clone()),
        (header::LAST_MODIFIED, http_date(p.this_update)),
        (header::CACHE_CONTROL, format!("public, max-age={max_age}")),
        (header::EXPIRES, http_date(p.next_update)),
    ];
    let etag_match = if_none_match(&headers, &p.etag);
    let not_modified = etag_match
        || (!headers.contains_key(header::IF_NONE_MATCH)
            && headers
                .get(header::IF_MODIFIED_SINCE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_http_date)
                .is_some_and(|since| since >= p.this_update));
    let mut resp = if not_modified {
        NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, "application/pkix-crl")], p.der.as_ref().clone()).into_response()
    };
    for (k, v) in validators {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    Ok(resp)
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

fn ocsp_response(answer: Answer) -> Response {
    (
        [(header::CONTENT_TYPE, "application/ocsp-response")],
        answer.der.as_ref().clone(),
    )
        .into_response()
}

/// `POST /ocsp`, body DER. A body over [`crate::pki::ocsp::MAX_REQUEST_BYTES`], or one slower than the listener's
/// body bound, is not read: it is answered `malformedRequest`, as OCSP answers every request it
/// cannot take.
pub async fn ocsp_post(State(s): State<AppState>, body: Result<Body, ApiError>) -> Response {
    match body {
        Ok(Body(body)) => ocsp_response(s.ca.ocsp_answer(&body).await),
        Err(_) => ocsp_response(Answer::malformed()),
    }
}

/// `GET /ocsp/{base64}` (RFC 6960 appendix A.1; the forms taken are
/// [`crate::pki::ocsp::read_get_request`]'s). A cacheable answer carries RFC 5019 §6.2's
/// headers, so that a CDN or proxy in front can carry relying traffic, and a matching
/// `If-None-Match` gets 304 without the body.
pub async fn ocsp_get(State(s): State<AppState>, Path(encoded): Path<String>, headers: HeaderMap) -> Response {
    let answer = s.ca.ocsp_get_answer(&encoded).await;
    let Some(f) = answer.freshness.clone() else {
        return ocsp_response(answer);
    };
    let t = now();
    // An answer signed ahead holds a day; a cache in front keeps it at most as long as a live
    // one, so that a revocation reaches relying parties behind a cache as soon as before.
    let max_age = (f.next_update - t).clamp(0, crate::pki::ocsp::VALIDITY);
    let cache: [(HeaderName, String); 5] = [
        (header::ETAG, f.etag.clone()),
        (header::LAST_MODIFIED, http_date(f.produced_at)),
        (header::EXPIRES, http_date(f.next_update)),
        (header::DATE, http_date(t)),
        (
            header::CACHE_CONTROL,
            format!("max-age={max_age}, public, no-transform, must-revalidate"),
        ),
    ];
    let mut resp = if if_none_match(&headers, &f.etag) {
        NOT_MODIFIED.into_response()
    } else {
        ocsp_response(answer)
    };
    for (k, v) in cache {
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// A write route on a status instance (`--role status`): refused with a stable code, nothing
/// read.
pub async fn read_only() -> ApiError {
    ApiError::StatusInstance
}

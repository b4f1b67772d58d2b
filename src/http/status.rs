//! Relying systems' endpoints: CRLs and OCSP.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::AppState;
use super::error::ApiError;
use super::extract::{Body, Path};
use crate::store::now;

fn http_date(unix: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&fmt).unwrap_or_default()
}

fn parse_http_date(s: &str) -> Option<i64> {
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(s, &fmt)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
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
    let etag_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == p.etag || t.trim() == "*"));
    let not_modified = etag_match
        || (!headers.contains_key(header::IF_NONE_MATCH)
            && headers
                .get(header::IF_MODIFIED_SINCE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_http_date)
                .is_some_and(|since| since >= p.this_update));
    let mut resp = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
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

fn ocsp_response(der: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/ocsp-response")], der).into_response()
}

/// `POST /ocsp`, body DER.
pub async fn ocsp_post(State(s): State<AppState>, Body(body): Body) -> Response {
    ocsp_response(s.ca.ocsp(&body).await)
}

/// `GET /ocsp/{base64}` (RFC 6960 appendix A.1): the request DER, base64, URL-encoded; the
/// URL-safe alphabet is accepted too.
pub async fn ocsp_get(State(s): State<AppState>, Path(encoded): Path<String>) -> Response {
    // No trimming: '/' is a base64 character, and a request may end in one.
    let der = base64::engine::general_purpose::STANDARD
        .decode(&encoded)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(&encoded))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&encoded));
    match der {
        Ok(der) => ocsp_response(s.ca.ocsp(&der).await),
        Err(_) => ocsp_response(crate::pki::ocsp::malformed()),
    }
}

//! The personal cabinet's API (`crate::cabinet`): the sign-in challenge, the session cookie,
//! and the signed-in holder's certificates and applications.

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, CREATED, NO_CONTENT};
use super::extract::Path;
use super::{AppState, JsonBody, PeerAddr};
use crate::cabinet::{Holder, SignIn};

/// The session cookie's name.
const COOKIE: &str = "nca_cabinet";

/// The session token from the `Cookie` header, if any.
fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// `Set-Cookie` for a token that lives `max_age` seconds: HttpOnly (no script reads it),
/// SameSite=Strict (no other site's page sends it), Secure when the service is reached over
/// HTTPS (its base URL says so; the public listener itself is plain HTTP behind a proxy).
fn cookie(secure: bool, value: &str, max_age: i64) -> Result<HeaderValue, ApiError> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        max_age.max(0)
    ))
    .map_err(|e| ApiError::Internal(e.to_string()))
}

fn https(s: &AppState) -> bool {
    s.config.base_url.starts_with("https://")
}

/// The signed-in holder, from the session cookie, before anything else is read.
pub struct SignedIn(pub Holder);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let t = token(&parts.headers);
        Ok(SignedIn(s.cabinet().holder(t.as_deref()).await?))
    }
}

/// `POST /api/v1/cabinet/challenge`: 201 `{"challenge", "to_sign", "expires_at"}`; 429 past the
/// address's sign-in limit (`abuse`), since each challenge is a row written.
pub async fn challenge(State(s): State<AppState>, PeerAddr(peer): PeerAddr) -> Result<impl IntoResponse, ApiError> {
    s.abuse.admit_sign_in(peer)?;
    Ok((CREATED, Json(s.cabinet().challenge().await?)))
}

/// `POST /api/v1/cabinet/session` `{"challenge", "certificate", "signature"}`: 201 with the
/// holder and the session cookie.
/// A session the same browser still had is ended: one cookie, one session.
pub async fn sign_in(
    State(s): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<SignIn>,
) -> Result<Response, ApiError> {
    let opened = s.cabinet().sign_in(&req, token(&headers).as_deref()).await?;
    let max_age = opened.holder.expires_at_unix - crate::store::now();
    let set = cookie(https(&s), &opened.token, max_age)?;
    let mut resp = (CREATED, Json(opened.holder)).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, set);
    Ok(resp)
}

/// `GET /api/v1/cabinet/session`: the holder and the data the reissue form starts from.
pub async fn session(State(s): State<AppState>, SignedIn(h): SignedIn) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.cabinet().profile(h).await?))
}

/// `DELETE /api/v1/cabinet/session`: signs out (204, the cookie cleared), whatever the cookie.
pub async fn sign_out(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    s.cabinet().sign_out(token(&headers).as_deref()).await?;
    let mut resp = NO_CONTENT.into_response();
    resp.headers_mut().insert(header::SET_COOKIE, cookie(https(&s), "", 0)?);
    Ok(resp)
}

/// `GET /api/v1/cabinet/certificates`: `{"certificates": [...]}`.
pub async fn certificates(State(s): State<AppState>, SignedIn(h): SignedIn) -> Result<impl IntoResponse, ApiError> {
    let list = s.cabinet().certificates(&h).await?;
    Ok(Json(serde_json::json!({ "certificates": list })))
}

/// `GET /api/v1/cabinet/certificates/{serial}`: that certificate and the chain, PEM.
pub async fn certificate(
    State(s): State<AppState>,
    SignedIn(h): SignedIn,
    Path(serial): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let pem = s.cabinet().certificate_pem(&h, &serial).await?;
    Ok(([(header::CONTENT_TYPE, "application/pem-certificate-chain")], pem))
}

/// `GET /api/v1/cabinet/applications`: `{"applications": [...]}`.
pub async fn applications(State(s): State<AppState>, SignedIn(h): SignedIn) -> Result<impl IntoResponse, ApiError> {
    let list = s.cabinet().applications(&h).await?;
    Ok(Json(serde_json::json!({ "applications": list })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_only_over_https() {
        let plain = cookie(false, "t0k", 900).unwrap();
        assert_eq!(
            plain.to_str().unwrap(),
            "nca_cabinet=t0k; Path=/; HttpOnly; SameSite=Strict; Max-Age=900"
        );
        let tls = cookie(true, "", -5).unwrap();
        assert!(tls.to_str().unwrap().ends_with("Max-Age=0; Secure"));
    }

    #[test]
    fn the_token_is_found_among_other_cookies_and_headers() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; nca_cabinetx=no"));
        assert_eq!(token(&h), None);
        h.append(header::COOKIE, HeaderValue::from_static("b=2;  nca_cabinet=yes ; c=3"));
        assert_eq!(token(&h).as_deref(), Some("yes"));
    }
}

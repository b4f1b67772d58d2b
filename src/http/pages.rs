//! The pages and their static files (`crate::web`), on both listeners: the portal and the
//! status page on the public one, the console and the administrators' pages on the operator
//! one (whose TLS layer has already asked for a client certificate; the pages' scripts call the
//! API, which decides who may do what).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::extract::{Path, Query};
use crate::web::{self, Lang};

/// Everything a page loads comes from this service; scripts only from files (no inline code).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
     connect-src 'self'; worker-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
     form-action 'self'";

#[derive(Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

fn lang(q: &LangQuery, headers: &HeaderMap) -> Lang {
    Lang::choose(
        q.lang.as_deref(),
        headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()),
    )
}

fn render(name: &str, lang: Lang, vars: &[(&str, String)]) -> Result<Response, ApiError> {
    let html = web::page(name, lang, vars).ok_or_else(|| ApiError::not_found("not_found", "no such page"))?;
    let mut resp = html.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(lang.code()));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Language"));
    Ok(resp)
}

/// `GET /`: the application form, with the proof-of-work difficulty and the service's clock
/// (the stamp's time is the service's, whatever the citizen's clock says).
pub async fn portal(
    State(s): State<AppState>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let vars = [
        ("pow_bits", s.abuse.pow_bits().to_string()),
        ("server_time", crate::store::now().to_string()),
    ];
    render("portal", lang(&q, &headers), &vars)
}

/// `GET /status`: an application's status by number and IIN.
pub async fn status(Query(q): Query<LangQuery>, headers: HeaderMap) -> Result<Response, ApiError> {
    render("status", lang(&q, &headers), &[])
}

/// `GET /cabinet/`: the citizen's personal cabinet (sign-in with the key file, P2, P3).
pub async fn cabinet(Query(q): Query<LangQuery>, headers: HeaderMap) -> Result<Response, ApiError> {
    render(
        "cabinet",
        lang(&q, &headers),
        &[("server_time", crate::store::now().to_string())],
    )
}

/// `GET /console/`: the operator's console.
pub async fn console(Query(q): Query<LangQuery>, headers: HeaderMap) -> Result<Response, ApiError> {
    render("console", lang(&q, &headers), &[])
}

/// `GET /admin/`: the administrators' pages.
pub async fn admin(Query(q): Query<LangQuery>, headers: HeaderMap) -> Result<Response, ApiError> {
    render("admin", lang(&q, &headers), &[])
}

/// `GET /assets/{file}`.
pub async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (ctype, bytes) = web::asset(&file).ok_or_else(|| ApiError::not_found("not_found", "no such file"))?;
    Ok((
        [
            (header::CONTENT_TYPE, ctype),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        bytes,
    )
        .into_response())
}

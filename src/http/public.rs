//! The public listener: CA certificates, the CA directory, centres, certificate status, probes.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, readiness};
use super::extract::Path;

pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let report = s.readiness().await;
    (readiness(report.ready), Json(report))
}

pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let text = s.render_metrics().await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

/// `GET /cert/{ca}.cer`: DER, as the AIA caIssuers URL promises.
pub async fn ca_certificate(
    State(s): State<AppState>,
    Path(file): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let issuer = file
        .strip_suffix(".cer")
        .and_then(|id| s.ca.issuer(id))
        .ok_or_else(|| ApiError::not_found("ca_not_found", format!("no CA certificate {file}")))?;
    Ok((
        [(header::CONTENT_TYPE, "application/pkix-cert")],
        issuer.cert_der.clone(),
    ))
}

/// The policy document, at the CPS URI written into every certificate.
pub async fn policy_document() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        crate::pki::POLICY_DOCUMENT,
    )
}

pub async fn cas(State(s): State<AppState>) -> impl IntoResponse {
    Json(json!({ "cas": s.ca.ca_views() }))
}

pub async fn centres(State(s): State<AppState>) -> impl IntoResponse {
    Json(s.centres.as_ref().clone())
}

pub async fn certificate(State(s): State<AppState>, Path(serial): Path<String>) -> Result<impl IntoResponse, ApiError> {
    let serial = crate::pki::normalise_serial(&serial)
        .ok_or_else(|| ApiError::bad_request("serial_invalid", "a serial is hexadecimal, at most 20 octets"))?;
    let view = s.ca.certificate_view(&serial).await?;
    view.map(Json)
        .ok_or_else(|| ApiError::not_found("certificate_not_found", format!("no certificate with serial {serial}")))
}

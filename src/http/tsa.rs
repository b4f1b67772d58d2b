//! Relying e-services' endpoints: the time-stamping authority (`POST /tsp`) and the
//! verification of signed documents (`POST /api/v1/verify`).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppState;

/// `POST /tsp`, body a DER TimeStampReq: always a TimeStampResp (a refusal is a `rejection`
/// inside it, never an HTTP error), whatever the content type said.
pub async fn tsp(State(s): State<AppState>, body: Bytes) -> Response {
    let der = s.ca.timestamp(&body).await;
    ([(header::CONTENT_TYPE, "application/timestamp-reply")], der).into_response()
}

/// `GET /cert/tsa.cer`: the TSA's current certificate, DER, for clients that verify tokens
/// requested without certReq.
pub async fn certificate(State(s): State<AppState>) -> Result<Response, super::error::ApiError> {
    let tsa =
        s.ca.tsa
            .as_ref()
            .ok_or_else(|| super::error::ApiError::not_found("ca_not_found", "this deployment has no TSA"))?;
    Ok(([(header::CONTENT_TYPE, "application/pkix-cert")], tsa.cert_der.clone()).into_response())
}

/// `GET /api/v1/admin/timestamps/{serial}` (administrators): the record of a token, to answer
/// "did you issue this?": serial, status, gen_time, hash_alg, imprint, policy, nonce, tsa_serial.
pub async fn record(
    State(s): State<AppState>,
    _admin: super::Admin,
    axum::extract::Path(serial): axum::extract::Path<String>,
) -> Result<axum::Json<crate::store::TimestampRecord>, super::error::ApiError> {
    let serial = crate::pki::normalise_serial(&serial).ok_or_else(|| {
        super::error::ApiError::bad_request("serial_invalid", "a serial is hexadecimal, at most 20 octets")
    })?;
    s.ca.store.timestamp(&serial).await?.map(axum::Json).ok_or_else(|| {
        super::error::ApiError::not_found("timestamp_not_found", format!("no time-stamp token with serial {serial}"))
    })
}

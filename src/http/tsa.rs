//! Relying e-services' endpoints: the time-stamping authority (`POST /tsp`) and the
//! verification of signed documents (`POST /api/v1/verify`).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::extract::{Body, Path, media_type};

/// `POST /tsp`, body a DER TimeStampReq: always a TimeStampResp (a refusal is a `rejection`
/// inside it, never an HTTP error), whatever the content type said.
pub async fn tsp(State(s): State<AppState>, Body(body): Body) -> Response {
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
    Path(serial): Path<String>,
) -> Result<axum::Json<crate::store::TimestampRecord>, super::error::ApiError> {
    let serial = crate::pki::normalise_serial(&serial).ok_or_else(|| {
        super::error::ApiError::bad_request("serial_invalid", "a serial is hexadecimal, at most 20 octets")
    })?;
    s.store.timestamp(&serial).await?.map(axum::Json).ok_or_else(|| {
        super::error::ApiError::not_found(
            "timestamp_not_found",
            format!("no time-stamp token with serial {serial}"),
        )
    })
}

/// The JSON form of `POST /api/v1/verify`: a detached (or attached) CMS and its content, base64.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    cms: String,
    #[serde(default)]
    content: Option<String>,
}

/// What `POST /api/v1/verify` is asked to verify: a CMS and, for a detached signature, its
/// content; from JSON (base64 fields) or the body itself (`application/pkcs7-mime`).
pub struct ToVerify {
    cms: Vec<u8>,
    content: Option<Vec<u8>>,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for ToVerify {
    type Rejection = ApiError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        // The media type as every other handler reads it (`extract::media_type`).
        let json = media_type(req.headers()) == "application/json";
        let Body(body) = Body::from_request(req, state).await?;
        if !json {
            return Ok(ToVerify {
                cms: body.to_vec(),
                content: None,
            });
        }
        let req: VerifyRequest = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("request_invalid", format!("body: {e}")))?;
        let b64 = |field: &str, v: &str| {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .map_err(|e| ApiError::bad_request("request_invalid", format!("{field} is not base64: {e}")))
        };
        let content = req.content.as_deref().map(|c| b64("content", c)).transpose()?;
        Ok(ToVerify {
            cms: b64("cms", &req.cms)?,
            content,
        })
    }
}

/// `POST /api/v1/verify`: `application/pkcs7-mime` (DER or PEM, attached), or JSON
/// `{"cms": base64, "content": base64}` for a detached signature. Answers the report (200),
/// valid or not; 400 for a body that is not a signed document.
pub async fn verify(
    State(s): State<AppState>,
    v: ToVerify,
) -> Result<axum::Json<crate::pki::verify::Report>, ApiError> {
    Ok(axum::Json(s.ca.verify_document(&v.cms, v.content.as_deref()).await?))
}

//! Administrator endpoints on the operator listener (client certificate of profile `admin`).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Map, Value};

use super::error::{ApiError, CREATED};
use super::{Admin, AppState, JsonBody};
use crate::pki::IssueRequest;
use crate::pki::subject::SubjectInput;

/// `POST /api/v1/admin/certificates`: `{"profile", "csr": PEM, "subject": {…}}`, or the subject's
/// fields at the top level beside profile and csr. Answers 201 with the certificate in PEM.
pub async fn issue_certificate(
    State(s): State<AppState>,
    Admin(admin): Admin,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<impl IntoResponse, ApiError> {
    let req = issue_request(body)?;
    tracing::info!(target: "audit", "admin request: administrator=[{}] profile=[{}]", admin.serial, req.profile);
    let issued = s.issue(req).await?;
    Ok((
        CREATED,
        [
            (
                header::CONTENT_TYPE,
                "application/pem-certificate-chain".to_string(),
            ),
            (
                header::LOCATION,
                format!("/api/v1/certificates/{}", issued.serial),
            ),
        ],
        issued.pem(),
    ))
}

fn issue_request(mut body: Map<String, Value>) -> Result<IssueRequest, ApiError> {
    let mut take = |k: &str| match body.remove(k) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::bad_request(
            "request_invalid",
            format!("{k} must be a string"),
        )),
        None => Err(ApiError::bad_request(
            "request_invalid",
            format!("{k} is required"),
        )),
    };
    let profile = take("profile")?;
    let csr = take("csr")?;
    let subject = match body.remove("subject") {
        Some(v) => v,
        None => Value::Object(body),
    };
    let subject: SubjectInput = serde_json::from_value(subject)
        .map_err(|e| ApiError::bad_request("request_invalid", format!("subject: {e}")))?;
    Ok(IssueRequest {
        profile,
        csr: csr.into_bytes(),
        subject,
        application: None,
    })
}

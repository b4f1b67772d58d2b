//! The one place that chooses HTTP status codes. Bodies are `{"error":{"code","message"}}`;
//! a 5xx body is generic and its cause goes to the log.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::cabinet::CabinetError;
use crate::operators::{AccessError, OperatorError};
use crate::pki::IssueError;
use crate::pki::crl::CrlError;
use crate::pki::revocation::RevokeError;
use crate::pki::verify::VerifyError;
use crate::workflow::application::WorkflowError;
use crate::workflow::survey::SurveyError;

use super::abuse::AbuseError;
use super::extract::RequestError;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Issue(#[from] IssueError),
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Revoke(#[from] RevokeError),
    #[error(transparent)]
    Crl(#[from] CrlError),
    #[error(transparent)]
    Operator(#[from] OperatorError),
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    #[error(transparent)]
    Abuse(#[from] AbuseError),
    #[error(transparent)]
    Survey(#[from] SurveyError),
    #[error(transparent)]
    Cabinet(#[from] CabinetError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// The request could not be taken apart (`extract.rs`).
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The request body or a parameter is not what the endpoint takes.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// Nothing is at this path or under this identifier.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// A failure of the service itself.
    #[error("{0}")]
    Internal(String),
    /// A write sent to a status instance (`--role status`, read-only, on a replica).
    #[error(
        "this is a status instance: it serves relying parties read-only; send writes to the service's primary instances"
    )]
    StatusInstance,
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::NotFound {
            code,
            message: message.into(),
        }
    }

    fn issue_status(e: &IssueError) -> (StatusCode, &'static str) {
        let status = match e {
            IssueError::UnknownProfile(_) | IssueError::Csr(_) | IssueError::Policy(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            IssueError::KeyStore(_) => StatusCode::SERVICE_UNAVAILABLE,
            IssueError::Lint(_) | IssueError::Build(_) | IssueError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, e.code())
    }

    fn revoke_status(e: &RevokeError) -> (StatusCode, &'static str) {
        let status = match e {
            RevokeError::BadSerial | RevokeError::BadReason(_) | RevokeError::BadTime(_) => StatusCode::BAD_REQUEST,
            RevokeError::UnknownSerial(_) => StatusCode::NOT_FOUND,
            RevokeError::NotOnHold(_) | RevokeError::Store(crate::store::StoreError::StateConflict(_)) => {
                StatusCode::CONFLICT
            }
            RevokeError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, e.code())
    }

    fn workflow_status(e: &WorkflowError) -> (StatusCode, &'static str) {
        // No wildcard: a new variant must be given its status here.
        let status = match e {
            WorkflowError::Invalid(_) | WorkflowError::Fields(_) => StatusCode::BAD_REQUEST,
            WorkflowError::NotFound(_) => StatusCode::NOT_FOUND,
            WorkflowError::Status { .. } => StatusCode::CONFLICT,
            WorkflowError::Registry(_) => StatusCode::SERVICE_UNAVAILABLE,
            WorkflowError::Store(_) | WorkflowError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, e.code())
    }

    fn cabinet_status(e: &CabinetError) -> StatusCode {
        match e {
            CabinetError::Invalid(_) => StatusCode::BAD_REQUEST,
            CabinetError::ChallengeUnknown
            | CabinetError::ChallengeUsed
            | CabinetError::ChallengeExpired
            | CabinetError::CertificateUnknown
            | CabinetError::SignatureInvalid
            | CabinetError::SessionRequired
            | CabinetError::SessionInvalid
            | CabinetError::SessionExpired
            | CabinetError::SessionEnded
            | CabinetError::SessionCertificateRevoked => StatusCode::UNAUTHORIZED,
            CabinetError::NotAuthCertificate | CabinetError::CertificateExpired | CabinetError::CertificateRevoked => {
                StatusCode::FORBIDDEN
            }
            CabinetError::NotFound(_) => StatusCode::NOT_FOUND,
            CabinetError::Store(crate::store::StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            CabinetError::Randomness | CabinetError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn request_status(e: &RequestError) -> (StatusCode, &'static str) {
        match e {
            RequestError::BodyTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            RequestError::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            RequestError::BodyUnreadable => (StatusCode::BAD_REQUEST, "body_unreadable"),
            RequestError::ContentType { .. } => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "content_type_unsupported"),
            RequestError::Json(_) => (StatusCode::BAD_REQUEST, "request_invalid"),
            RequestError::Path(_) => (StatusCode::BAD_REQUEST, "path_invalid"),
            RequestError::Query(_) => (StatusCode::BAD_REQUEST, "query_invalid"),
            RequestError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Cabinet(e) => (ApiError::cabinet_status(e), e.code()),
            ApiError::Request(e) => ApiError::request_status(e),
            ApiError::Operator(OperatorError::Issue(e)) => ApiError::issue_status(e),
            ApiError::Operator(OperatorError::Revoke(e)) => ApiError::revoke_status(e),
            ApiError::Operator(e) => {
                let status = match e {
                    OperatorError::Iin(_) | OperatorError::UnknownCentre(_) | OperatorError::TooSoon(_) => {
                        StatusCode::UNPROCESSABLE_ENTITY
                    }
                    OperatorError::BadDate(_) => StatusCode::BAD_REQUEST,
                    OperatorError::NotFound(_) => StatusCode::NOT_FOUND,
                    OperatorError::Exists(_) | OperatorError::Status { .. } => StatusCode::CONFLICT,
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                (status, e.code())
            }
            ApiError::Survey(SurveyError::Workflow(e)) | ApiError::Workflow(e) => ApiError::workflow_status(e),
            ApiError::Survey(e) => (StatusCode::CONFLICT, e.code()),
            ApiError::Abuse(AbuseError::RateLimited { .. }) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::Abuse(AbuseError::ProofInvalid(_)) => (StatusCode::BAD_REQUEST, "proof_of_work_invalid"),
            ApiError::Issue(e) => ApiError::issue_status(e),
            ApiError::Revoke(e) => ApiError::revoke_status(e),
            ApiError::Access(AccessError::NoCertificate) => (StatusCode::UNAUTHORIZED, "client_certificate_required"),
            ApiError::Access(AccessError::UnknownCertificate) => (StatusCode::FORBIDDEN, "client_certificate_unknown"),
            ApiError::Access(AccessError::Expired) => (StatusCode::FORBIDDEN, "client_certificate_expired"),
            ApiError::Access(AccessError::NotAdministrator) => (StatusCode::FORBIDDEN, "not_administrator"),
            ApiError::Access(AccessError::Revoked) => (StatusCode::FORBIDDEN, "client_certificate_revoked"),
            ApiError::Access(AccessError::NotOperator) => (StatusCode::FORBIDDEN, "not_operator"),
            ApiError::Access(AccessError::OperatorSuspended) => (StatusCode::FORBIDDEN, "operator_suspended"),
            ApiError::Access(AccessError::OperatorDismissed) => (StatusCode::FORBIDDEN, "operator_dismissed"),
            ApiError::Access(AccessError::Store(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Crl(CrlError::UnknownIssuer(_)) => (StatusCode::NOT_FOUND, "ca_not_found"),
            ApiError::Crl(CrlError::NoRootDelta) => (StatusCode::BAD_REQUEST, "crl_kind_invalid"),
            ApiError::Crl(CrlError::KeyStore(_)) => (StatusCode::SERVICE_UNAVAILABLE, "key_store_unavailable"),
            ApiError::Crl(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::Verify(VerifyError::Malformed(_)) => (StatusCode::BAD_REQUEST, "cms_malformed"),
            ApiError::Verify(VerifyError::Store(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::NotFound { code, .. } => (StatusCode::NOT_FOUND, code),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            // RFC 9110 §15.5.20: this server cannot answer for the target; another one can.
            ApiError::StatusInstance => (StatusCode::MISDIRECTED_REQUEST, "status_instance_read_only"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = if status.is_server_error() {
            tracing::error!(code, error = %self, "request failed");
            "the service could not complete the request; the cause is logged".to_string()
        } else {
            self.to_string()
        };
        let mut body = json!({ "error": { "code": code, "message": message } });
        if let ApiError::Workflow(WorkflowError::Fields(fields)) = &self {
            body["error"]["fields"] = json!(fields);
        }
        let mut resp = (status, Json(body)).into_response();
        if let ApiError::Abuse(AbuseError::RateLimited { retry_after, .. }) = self {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after),
            );
        }
        resp
    }
}

/// Status for the readiness probe.
pub fn readiness(ready: bool) -> StatusCode {
    if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

/// Status for a resource made by a POST.
pub const CREATED: StatusCode = StatusCode::CREATED;

/// Status for a change with nothing to say (the cabinet's sign-out).
pub const NO_CONTENT: StatusCode = StatusCode::NO_CONTENT;

/// An application's answer: a refusal under the regulation is a result, answered 422 with the
/// application; one accepted but waiting for the key store to finish, 202; anything else gets
/// `otherwise`.
pub fn application_status(status: &str, otherwise: StatusCode) -> StatusCode {
    match status {
        "refused" => StatusCode::UNPROCESSABLE_ENTITY,
        "awaiting_key_store" => StatusCode::ACCEPTED,
        _ => otherwise,
    }
}

/// Status for a POST that changed nothing because its effect was already there.
pub fn created_or_ok(changed: bool) -> StatusCode {
    if changed { StatusCode::CREATED } else { StatusCode::OK }
}

/// Status for a conditional GET whose validator matches what would be sent (RFC 9110 §15.4.5).
pub const NOT_MODIFIED: StatusCode = StatusCode::NOT_MODIFIED;

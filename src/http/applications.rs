//! The portal's application API and the operator's steps on applications.

use axum::Json;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::abuse::POW_HEADER;
use super::error::{ApiError, CREATED, application_status};
use super::extract::{Body, Path, Query, RequestError, media_type};
use super::{AppState, JsonBody, OperatorClient, PeerAddr};
use crate::model::Status;
use crate::workflow::application::{CentreRequest, CsrPair, FieldError, IdentityRequest, Submission, WorkflowError};
use crate::workflow::id_card::CardWritten;
use crate::workflow::survey::SurveyAnswer;

#[derive(Deserialize)]
pub struct ByIin {
    iin: String,
}

#[derive(Deserialize)]
pub struct ByStatus {
    status: Option<String>,
}

/// The portal's submission, told apart by its media type: CMS SignedData
/// (`application/pkcs7-mime` or `-signature`) is a signed request, JSON an issue request (whose
/// field errors are answered as the workflow's); any other type is refused.
pub struct Filed(pub Submission);

impl<S: Send + Sync> FromRequest<S> for Filed {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ctype = media_type(req.headers());
        let signed = ctype.starts_with("application/pkcs7-mime") || ctype.starts_with("application/pkcs7-signature");
        if !signed && !ctype.starts_with("application/json") {
            return Err(RequestError::ContentType {
                given: ctype,
                expected: "application/json or application/pkcs7-mime",
            }
            .into());
        }
        let Body(body) = Body::from_request(req, state).await?;
        Ok(Filed(if signed {
            Submission::Signed(body.to_vec())
        } else {
            Submission::Request(Box::new(
                serde_json::from_slice(&body).map_err(|e| WorkflowError::Fields(vec![FieldError::from_json(&e)]))?,
            ))
        }))
    }
}

/// `POST /api/v1/applications`: an issue request as JSON, or a signed request (revoke) as CMS
/// SignedData (`application/pkcs7-mime`, DER or PEM). 201 with the application, or 422 with it
/// and its refusal; 429 past the rate limits (`abuse`), which are judged before the request.
pub async fn submit(
    State(s): State<AppState>,
    PeerAddr(peer): PeerAddr,
    headers: HeaderMap,
    Filed(filed): Filed,
) -> Result<impl IntoResponse, ApiError> {
    let proof = headers.get(POW_HEADER).and_then(|v| v.to_str().ok());
    s.abuse.admit(peer, filed.stated_iin(), proof, crate::store::now())?;
    let view = s.workflow_for(&headers).file(filed).await?;
    Ok((
        application_status(view.status.as_str(), StatusCode::CREATED),
        Json(view),
    ))
}

pub async fn get(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(number): Path<String>,
    Query(q): Query<ByIin>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.workflow_for(&headers).view_for(&number, &q.iin).await?))
}

pub async fn certificates(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(number): Path<String>,
    Query(q): Query<ByIin>,
) -> Result<impl IntoResponse, ApiError> {
    let pem = s.workflow_for(&headers).certificates_for(&number, &q.iin).await?;
    Ok(([(header::CONTENT_TYPE, "application/pem-certificate-chain")], pem))
}

pub async fn queue(
    State(s): State<AppState>,
    headers: HeaderMap,
    OperatorClient(op): OperatorClient,
    Query(q): Query<ByStatus>,
) -> Result<impl IntoResponse, ApiError> {
    // A status this service does not have holds no applications: an empty queue, as before the
    // statuses were typed.
    let applications = match q.status.as_deref().map(str::parse::<Status>) {
        None => s.workflow_for(&headers).queue(&op, Status::AwaitingDocuments).await?,
        Some(Ok(status)) => s.workflow_for(&headers).queue(&op, status).await?,
        Some(Err(_)) => Vec::new(),
    };
    Ok(Json(serde_json::json!({ "applications": applications })))
}

pub async fn identity(
    State(s): State<AppState>,
    headers: HeaderMap,
    OperatorClient(op): OperatorClient,
    Path(number): Path<String>,
    JsonBody(req): JsonBody<IdentityRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let view = s.workflow_for(&headers).identity(&op, &number, req).await?;
    Ok((application_status(view.status.as_str(), StatusCode::OK), Json(view)))
}

pub async fn to_be_signed(
    State(s): State<AppState>,
    headers: HeaderMap,
    OperatorClient(op): OperatorClient,
    Path(number): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let tbs = s.workflow_for(&headers).to_be_signed(&op, &number).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], tbs))
}

/// The body is the CMS SignedData, DER or PEM, over the to-be-signed bytes.
pub async fn confirmation(
    State(s): State<AppState>,
    headers: HeaderMap,
    OperatorClient(op): OperatorClient,
    Path(number): Path<String>,
    Body(body): Body,
) -> Result<impl IntoResponse, ApiError> {
    let view = s.workflow_for(&headers).confirm(&op, &number, &body).await?;
    Ok((application_status(view.status.as_str(), StatusCode::OK), Json(view)))
}

/// `POST /api/v1/operator/applications`: a service-centre application filed by the operator:
/// P4 `{"service": "issue", "applicant": {…}, "organization"?}` (the CSRs follow through
/// `/requests`), or P5 `{"service": "revoke", "applicant": {"iin"}, "certificates": [...], "reason"}`.
pub async fn create_at_centre(
    State(s): State<AppState>,
    headers: HeaderMap,
    OperatorClient(op): OperatorClient,
    JsonBody(req): JsonBody<CentreRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let view = s.workflow_for(&headers).file_at_centre(&op, req).await?;
    Ok((
        application_status(view.status.as_str(), StatusCode::CREATED),
        Json(view),
    ))
}

/// `POST /api/v1/operator/applications/{n}/requests`: `{"auth", "sign"}`, CSRs made on the card.
pub async fn card_requests(
    State(s): State<AppState>,
    headers: HeaderMap,
    OperatorClient(op): OperatorClient,
    Path(number): Path<String>,
    JsonBody(pair): JsonBody<CsrPair>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.workflow_for(&headers).card_requests(&op, &number, pair).await?))
}

/// `GET /api/v1/operator/applications/{n}/certificates`: the issued pair and the chain, PEM, to
/// write onto the ID card.
pub async fn operator_certificates(
    State(s): State<AppState>,
    OperatorClient(op): OperatorClient,
    Path(number): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let pem = s.workflow().certificates_for_operator(&op, &number).await?;
    Ok(([(header::CONTENT_TYPE, "application/pem-certificate-chain")], pem))
}

/// `POST /api/v1/operator/applications/{n}/card`: `{"auth", "sign"}`, the serials written onto
/// the card and read back; P4 completes.
pub async fn card_written(
    State(s): State<AppState>,
    OperatorClient(op): OperatorClient,
    Path(number): Path<String>,
    JsonBody(written): JsonBody<CardWritten>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.workflow().card_written(&op, &number, written).await?))
}

/// `GET /api/v1/applications/{n}/survey?iin=…`: `{"answered": false}`, or the answer.
pub async fn survey(
    State(s): State<AppState>,
    Path(number): Path<String>,
    Query(q): Query<ByIin>,
) -> Result<impl IntoResponse, ApiError> {
    let body = match s.workflow().survey_of(&number, &q.iin).await? {
        None => serde_json::json!({"answered": false}),
        Some(a) => serde_json::json!({"answered": true, "process": a.process, "information": a.information}),
    };
    Ok(Json(body))
}

/// `POST /api/v1/applications/{n}/survey?iin=…`: `{"process", "information"}`, each
/// `not_satisfied`, `partly` or `satisfied`; 201 once, 409 after.
pub async fn answer_survey(
    State(s): State<AppState>,
    Path(number): Path<String>,
    Query(q): Query<ByIin>,
    JsonBody(answer): JsonBody<SurveyAnswer>,
) -> Result<impl IntoResponse, ApiError> {
    s.workflow().answer_survey(&number, &q.iin, answer).await?;
    Ok((CREATED, Json(serde_json::json!({"answered": true}))))
}

#[derive(Deserialize)]
pub struct MaybeIin {
    iin: Option<String>,
}

/// `GET /api/v1/operator/applications/{n}[?iin=…]`: an application of the operator's centre and
/// its applicant's data, for the console; with `iin`, only if it is that applicant's (the
/// station resumes an interrupted enrolment from it).
pub async fn desk(
    State(s): State<AppState>,
    OperatorClient(op): OperatorClient,
    Path(number): Path<String>,
    Query(q): Query<MaybeIin>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(s.workflow().desk_view(&op, &number, q.iin.as_deref()).await?))
}

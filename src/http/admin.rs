//! Administrator endpoints on the operator listener (client certificate of profile `admin`).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::error::{ApiError, CREATED};
use super::{Admin, AppState, JsonBody};
use crate::pki::IssueRequest;
use crate::pki::subject::SubjectInput;

/// The body of `POST /api/v1/admin/certificates`: the profile, the CSR (PEM), and the subject,
/// either under `subject` or as its fields beside profile and csr.
#[derive(Deserialize)]
pub struct IssueBody {
    profile: String,
    csr: String,
    #[serde(flatten)]
    subject: SubjectShape,
}

/// The two shapes the subject comes in. Nested is tried first: a body with `subject` means it
/// (the fields beside it are ignored, as they always were); without it, every other field is a
/// subject field, and an unknown one is refused.
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "a subject: its fields under \"subject\", or beside profile and csr (iin, surname, name, …), none unknown"
)]
enum SubjectShape {
    Nested { subject: SubjectInput },
    TopLevel(SubjectInput),
}

impl IssueBody {
    fn into_request(self, actor: crate::model::Actor) -> IssueRequest {
        IssueRequest {
            profile: self.profile,
            csr: self.csr.into_bytes(),
            subject: match self.subject {
                SubjectShape::Nested { subject } | SubjectShape::TopLevel(subject) => subject,
            },
            application: None,
            actor,
        }
    }
}

/// `POST /api/v1/admin/certificates`: `{"profile", "csr": PEM, "subject": {…}}`, or the subject's
/// fields at the top level beside profile and csr. Answers 201 with the certificate in PEM.
pub async fn issue_certificate(
    State(s): State<AppState>,
    Admin(admin): Admin,
    JsonBody(body): JsonBody<IssueBody>,
) -> Result<impl IntoResponse, ApiError> {
    tracing::info!(target: "audit", administrator = %admin.serial, profile = ?body.profile, "admin request: issue");
    let issued = s.ca.issue(body.into_request(admin.actor())).await?;
    Ok((
        CREATED,
        [
            (header::CONTENT_TYPE, "application/pem-certificate-chain".to_string()),
            (header::LOCATION, format!("/api/v1/certificates/{}", issued.serial)),
        ],
        issued.pem(),
    ))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationBody {
    serial: String,
    reason: String,
    /// RFC 3339; a future time schedules the revocation.
    at: Option<String>,
    invalidity_date: Option<String>,
}

/// `POST /api/v1/admin/revocations`: 201 when revoked now, 200 with the first record when the
/// certificate was revoked already. `reason: removeFromCRL` lifts a hold.
pub async fn revoke(
    State(s): State<AppState>,
    Admin(admin): Admin,
    JsonBody(b): JsonBody<RevocationBody>,
) -> Result<impl IntoResponse, ApiError> {
    // The values are the administrator's as typed, not yet checked: fields, quoted and escaped.
    tracing::info!(target: "audit", administrator = %admin.serial, serial = ?b.serial, reason = ?b.reason, "admin request: revoke");
    let out =
        s.ca.revoke(crate::pki::revocation::RevokeRequest {
            serial: b.serial,
            reason: b.reason,
            at: b.at,
            invalidity_date: b.invalidity_date,
            actor: admin.actor(),
        })
        .await?;
    Ok((
        super::error::created_or_ok(out.changed),
        axum::Json(crate::pki::status::revocation_view(&out.record, out.changed)),
    ))
}

/// `POST /api/v1/admin/crl`: publishes now; `{"delta": true}` a delta, `{"root": true}` the
/// root's CRL.
pub async fn publish_crl(
    State(s): State<AppState>,
    Admin(admin): Admin,
    JsonBody(wanted): JsonBody<crate::publisher::Wanted>,
) -> Result<impl IntoResponse, ApiError> {
    tracing::info!(target: "audit", administrator = %admin.serial, root = wanted.root, delta = wanted.delta, "admin request: crl");
    let r = crate::publisher::publish_now(&s.ca, Some(&s.crls), wanted, &admin.actor()).await?;
    Ok((
        CREATED,
        axum::Json(serde_json::json!({
            "issuer": r.issuer, "number": r.number, "kind": r.kind, "base_number": r.base_number,
            "this_update": crate::pki::status::rfc3339(r.this_update),
            "next_update": crate::pki::status::rfc3339(r.next_update), "entries": r.entries,
        })),
    ))
}

/// `GET /api/v1/admin/audit/verify`: `{"intact": true, "records", "head", "checkpoints"}`, or
/// `{"intact": false, "first_bad": seq, "first_bad_chain", "why"}`.
pub async fn verify_audit(State(s): State<AppState>, Admin(_): Admin) -> Result<impl IntoResponse, ApiError> {
    let body = match crate::audit::verify(&s.ca, &s.store).await {
        Ok(v) => {
            serde_json::json!({"intact": true, "records": v.records, "head": v.head, "checkpoints": v.checkpoints, "chains": v.chains})
        }
        Err(crate::audit::AuditError::Broken { chain, seq, why }) => {
            serde_json::json!({"intact": false, "code": "audit_chain_broken", "first_bad": seq, "first_bad_chain": chain, "why": why})
        }
        Err(e) => return Err(ApiError::Internal(e.to_string())),
    };
    Ok(axum::Json(body))
}

/// `GET /api/v1/admin/cluster`: the instances on this database and which holds each duty.
pub async fn cluster(State(s): State<AppState>, Admin(_): Admin) -> Result<impl IntoResponse, ApiError> {
    let Some(c) = &s.cluster else {
        return Err(ApiError::Internal("this instance is not in the cluster".into()));
    };
    Ok(axum::Json(c.view().await?))
}

/// `GET /api/v1/admin/reports/sla`: per process and step, count, p50, p95, max and the number
/// over the regulation's deadline.
pub async fn sla_report(State(s): State<AppState>, Admin(_): Admin) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(s.workflow().sla_report().await?))
}

/// `GET /api/v1/admin/monitoring`: the monitoring queue (pending, delivered, parked, the oldest
/// pending message's age, the parked messages), and the mail queue's counts beside it.
pub async fn monitoring(State(s): State<AppState>, Admin(_): Admin) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(
        crate::outbox::monitoring_view(&s.store, &s.config.monitoring.url).await?,
    ))
}

/// `POST /api/v1/admin/monitoring/{message_id}/retry`: a parked message goes back in the queue
/// (after the receiver's side was fixed).
pub async fn retry_parked(
    State(s): State<AppState>,
    Admin(admin): Admin,
    super::extract::Path(message_id): super::extract::Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    if !crate::outbox::requeue_parked(&s.store, &message_id, &admin.serial).await? {
        return Err(ApiError::not_found(
            "message_not_parked",
            format!("no parked message {message_id}"),
        ));
    }
    Ok(axum::Json(
        serde_json::json!({"message_id": message_id, "state": "pending"}),
    ))
}
/// `GET /api/v1/admin/crl`: the newest full and delta CRL of each CA, with thisUpdate and
/// nextUpdate.
pub async fn crl_status(State(s): State<AppState>, Admin(_): Admin) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(
        serde_json::json!({ "crls": crate::publisher::status(&s.ca, &s.store).await? }),
    ))
}

/// `GET /api/v1/admin/operators`: everyone on the operators' roll and their status.
pub async fn operators(State(s): State<AppState>, Admin(_): Admin) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(
        serde_json::json!({ "operators": crate::operators::list(&s.store).await? }),
    ))
}

/// `GET /api/v1/admin/reports/survey`: the quality survey's answers counted per question and
/// level.
pub async fn survey_report(State(s): State<AppState>, Admin(_): Admin) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(s.workflow().survey_report().await?))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchivePeriod {
    from: String,
    to: String,
    centre: Option<String>,
}

/// `GET /api/v1/admin/archive?from=&to=[&centre=]`: the receipts centres gave in `[from, to)`
/// (RFC 3339 times or dates), with the documents accepted, their numbers masked.
pub async fn archive(
    State(s): State<AppState>,
    Admin(_): Admin,
    super::extract::Query(q): super::extract::Query<ArchivePeriod>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(axum::Json(
        s.workflow().archive(&q.from, &q.to, q.centre.as_deref()).await?,
    ))
}

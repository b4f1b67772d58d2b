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
    let req = issue_request(body, admin.actor())?;
    tracing::info!(target: "audit", administrator = %admin.serial, profile = ?req.profile, "admin request: issue");
    let issued = s.ca.issue(req).await?;
    Ok((
        CREATED,
        [
            (header::CONTENT_TYPE, "application/pem-certificate-chain".to_string()),
            (header::LOCATION, format!("/api/v1/certificates/{}", issued.serial)),
        ],
        issued.pem(),
    ))
}

fn issue_request(mut body: Map<String, Value>, actor: crate::audit::actor::Actor) -> Result<IssueRequest, ApiError> {
    let mut take = |k: &str| match body.remove(k) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ApiError::bad_request(
            "request_invalid",
            format!("{k} must be a string"),
        )),
        None => Err(ApiError::bad_request("request_invalid", format!("{k} is required"))),
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
        actor,
    })
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

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CrlBody {
    #[serde(default)]
    delta: bool,
    #[serde(default)]
    root: bool,
}

/// `POST /api/v1/admin/crl`: publishes now; `{"delta": true}` a delta, `{"root": true}` the
/// root's CRL.
pub async fn publish_crl(
    State(s): State<AppState>,
    Admin(admin): Admin,
    JsonBody(b): JsonBody<CrlBody>,
) -> Result<impl IntoResponse, ApiError> {
    let issuer = if b.root {
        s.ca.root.id.clone()
    } else {
        s.ca.issuing.id.clone()
    };
    let kind = if b.delta {
        crate::pki::crl::CrlKind::Delta
    } else {
        crate::pki::crl::CrlKind::Full
    };
    tracing::info!(target: "audit", administrator = %admin.serial, issuer = %issuer, kind = kind.as_str(), "admin request: crl");
    let r = s.ca.publish_crl(&issuer, kind, &admin.actor()).await?;
    s.crls.refresh(&r);
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
    if !s.store.requeue_parked(&message_id).await? {
        return Err(ApiError::not_found(
            "message_not_parked",
            format!("no parked message {message_id}"),
        ));
    }
    tracing::info!(target: "audit", message_id = ?message_id, administrator = %admin.serial, "outbox: requeued");
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

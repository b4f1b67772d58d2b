//! What the CA tells relying systems about itself and its certificates.

use serde::Serialize;

use super::revocation::{HOLD, reason_name};
use super::{Ca, pem};
use crate::store::{CertificateStatus, RevocationRecord, StoreError, now};

/// One CA in `GET /api/v1/ca`.
#[derive(Debug, Serialize)]
pub struct CaView {
    pub id: String,
    pub role: &'static str,
    pub subject: String,
    pub certificate: String,
    pub crl_url: String,
    /// `null` for the root: it publishes full CRLs only.
    pub delta_crl_url: Option<String>,
    /// `null` for the root: the responder answers for the issuing CA's certificates, and the
    /// one certificate the root signs (the issuing CA's) names its CRL, not OCSP.
    pub ocsp_url: Option<String>,
}

/// `GET /api/v1/certificates/{serial}`.
#[derive(Debug, Serialize)]
pub struct CertificateView {
    pub serial: String,
    pub issuer: String,
    /// `valid`, `revoked` or `expired`.
    pub status: &'static str,
    pub profile: String,
    pub subject: String,
    pub not_before: String,
    pub not_after: String,
    pub revocation_time: Option<String>,
    pub revocation_reason: Option<String>,
    pub certificate: String,
}

pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

impl Ca {
    pub fn ca_views(&self) -> Vec<CaView> {
        self.issuers()
            .into_iter()
            .zip(["root", "issuing"])
            .map(|(i, role)| {
                let issuing = role == "issuing";
                CaView {
                    id: i.id.clone(),
                    role,
                    subject: i.subject.clone(),
                    certificate: pem("CERTIFICATE", &i.cert_der),
                    crl_url: i.urls.crl.clone(),
                    delta_crl_url: issuing.then(|| i.urls.delta_crl.clone()),
                    ocsp_url: issuing.then(|| i.urls.ocsp.clone()),
                }
            })
            .collect()
    }

    /// A certificate the CA has issued, by serial; `None` for an unknown serial and for one that
    /// was recorded but never issued (it was never handed to anyone).
    pub async fn certificate_view(&self, serial: &str) -> Result<Option<CertificateView>, StoreError> {
        let Some((rec, revocation)) = self.store.certificate_and_revocation(serial).await? else {
            return Ok(None);
        };
        let (CertificateStatus::Issued, Some(der)) = (rec.status, rec.der) else {
            return Ok(None);
        };
        let t = now();
        let revocation = revocation.filter(|r| r.effective_at(t));
        let status = match (&revocation, rec.not_after < t) {
            (Some(_), _) => "revoked",
            (None, true) => "expired",
            (None, false) => "valid",
        };
        Ok(Some(CertificateView {
            serial: rec.serial,
            issuer: rec.issuer,
            status,
            profile: rec.profile,
            subject: rec.subject,
            not_before: rfc3339(rec.not_before),
            not_after: rfc3339(rec.not_after),
            revocation_time: revocation.as_ref().map(|r| rfc3339(r.revoked_at)),
            revocation_reason: revocation.as_ref().map(|r| reason_name(r.reason).to_string()),
            certificate: pem("CERTIFICATE", &der),
        }))
    }
}

/// The answer to a revocation request.
#[derive(Debug, Serialize)]
pub struct RevocationView {
    pub serial: String,
    /// `revoked`, `scheduled`, `on_hold` or `hold_lifted`.
    pub status: &'static str,
    pub revoked_at: String,
    pub reason: &'static str,
    pub invalidity_date: Option<String>,
    /// False when the certificate was revoked already and nothing changed.
    pub changed: bool,
}

pub fn revocation_view(r: &RevocationRecord, changed: bool) -> RevocationView {
    let status = match (r.lifted_at, r.reason, r.revoked_at > now()) {
        (Some(_), _, _) => "hold_lifted",
        (None, HOLD, _) => "on_hold",
        (None, _, true) => "scheduled",
        _ => "revoked",
    };
    RevocationView {
        serial: r.serial.clone(),
        status,
        revoked_at: rfc3339(r.revoked_at),
        reason: reason_name(r.reason),
        invalidity_date: r.invalidity_date.map(rfc3339),
        changed,
    }
}

//! Operators and the places they work: registration centres (this stage), operator records and
//! their lifecycle (next), and the decision whether a client certificate may act.

pub mod centres;

use crate::pki::Ca;
use crate::store::CertificateStatus;

/// Who a verified TLS client certificate belongs to.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub serial: String,
    pub subject: String,
}

/// Why a client may not use an endpoint.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// The listener let the connection in without a client certificate (never on the operator
    /// listener, whose TLS layer requires one).
    #[error("a client certificate is required")]
    NoCertificate,
    /// The certificate chains to this CA but the database does not know it as issued.
    #[error("the client certificate is not one this CA has issued")]
    UnknownCertificate,
    /// The certificate is not an administrator's.
    #[error("this endpoint is for administrators")]
    NotAdministrator,
    /// The certificate's validity has ended.
    #[error("the client certificate has expired")]
    Expired,
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// An administrator, as established from a client certificate.
#[derive(Debug, Clone)]
pub struct Administrator {
    pub serial: String,
    pub subject: String,
}

/// Decides whether a client certificate belongs to an administrator: issued by this CA under
/// the `admin` profile, recorded as issued, within its validity.
pub async fn administrator(ca: &Ca, who: Option<&ClientIdentity>) -> Result<Administrator, AccessError> {
    let who = who.ok_or(AccessError::NoCertificate)?;
    let rec = ca
        .store
        .certificate(&who.serial)
        .await?
        .ok_or(AccessError::UnknownCertificate)?;
    if rec.status != CertificateStatus::Issued || rec.issuer != ca.issuing.id {
        return Err(AccessError::UnknownCertificate);
    }
    if rec.profile != "admin" {
        return Err(AccessError::NotAdministrator);
    }
    if rec.not_after < crate::store::now() {
        return Err(AccessError::Expired);
    }
    Ok(Administrator {
        serial: rec.serial,
        subject: rec.subject,
    })
}

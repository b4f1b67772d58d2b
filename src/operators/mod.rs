//! Operators and the places they work: registration centres, operator records and their
//! lifecycle (regulation §15), and the decision whether a client certificate may act.

pub mod access;
pub mod centres;
mod lifecycle;

pub use lifecycle::{
    Added, Dismissal, NewOperator, OperatorError, OperatorKeys, add, certificates_pem, dismiss, resume, suspend,
};

use crate::config::Config;
use crate::pki::Ca;
use crate::store::{CertificateRecord, CertificateStatus, OperatorRecord, Store, now};

/// The operators' door: the CA that certifies them, the store that keeps the roll, and the
/// configuration of its rules (notice, inactivity). Handed out by the service, per call.
#[derive(Clone, Copy)]
pub struct Roll<'a> {
    pub ca: &'a Ca,
    pub store: &'a Store,
    pub config: &'a Config,
}

/// Who a verified TLS client certificate belongs to.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub serial: String,
    pub subject: String,
    /// The access decisions kept for this identity's TLS connection ([`access`]).
    pub access: std::sync::Arc<access::ConnectionAccess>,
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
    /// The certificate has been revoked (the TLS layer checks the chain; revocation is checked
    /// here, against the database, so it counts from the moment it is recorded).
    #[error("the client certificate has been revoked")]
    Revoked,
    /// The certificate's validity has ended.
    #[error("the client certificate has expired")]
    Expired,
    /// The certificate is not an administrator's.
    #[error("this endpoint is for administrators")]
    NotAdministrator,
    /// The certificate is not an operator's AUTH certificate.
    #[error("this endpoint is for operators")]
    NotOperator,
    /// The operator is suspended (absence, or no activity for the configured days).
    #[error("the operator is suspended")]
    OperatorSuspended,
    /// The operator has been dismissed.
    #[error("the operator has been dismissed")]
    OperatorDismissed,
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// An administrator, as established from a client certificate.
#[derive(Debug, Clone)]
pub struct Administrator {
    pub serial: String,
    pub subject: String,
    /// The IIN the certificate names (its holder).
    pub iin: String,
}

impl Administrator {
    /// The administrator as the audit names them: IIN and the certificate they authenticated with.
    pub fn actor(&self) -> crate::model::Actor {
        crate::model::Actor::Operator {
            iin: self.iin.clone(),
            certificate: self.serial.clone(),
            administrator: true,
        }
    }
}

/// An active operator, as established from a client certificate.
#[derive(Debug, Clone)]
pub struct Operator {
    pub serial: String,
    pub record: OperatorRecord,
}

impl Operator {
    /// This operator (or administrator) as the audit names them: IIN and the serial of the
    /// certificate they authenticated with.
    pub fn actor(&self) -> crate::model::Actor {
        crate::model::Actor::Operator {
            iin: self.record.iin.clone(),
            certificate: self.serial.clone(),
            administrator: self.record.role == "administrator",
        }
    }
}

/// The certificate behind a client identity: issued by this CA's issuing CA, recorded as
/// issued, within its validity; and whether it is revoked (the caller decides which refusal
/// comes first).
async fn client_certificate(
    roll: Roll<'_>,
    who: Option<&ClientIdentity>,
) -> Result<(CertificateRecord, bool), AccessError> {
    let who = who.ok_or(AccessError::NoCertificate)?;
    let (rec, revocation) = roll
        .store
        .certificate_and_revocation(&who.serial)
        .await?
        .ok_or(AccessError::UnknownCertificate)?;
    if rec.status != CertificateStatus::Issued || rec.issuer != roll.ca.issuing.id {
        return Err(AccessError::UnknownCertificate);
    }
    let t = now();
    if rec.not_after < t {
        return Err(AccessError::Expired);
    }
    let revoked = revocation.is_some_and(|r| r.effective_at(t));
    Ok((rec, revoked))
}

/// Whether an operator record allows acting now; applies the suspension after inactivity.
async fn may_act(roll: Roll<'_>, o: &OperatorRecord) -> Result<(), AccessError> {
    let t = now();
    if o.status == "dismissed" || o.dismissed_at.is_some_and(|d| d <= t) {
        return Err(AccessError::OperatorDismissed);
    }
    if o.status == "suspended" {
        return Err(AccessError::OperatorSuspended);
    }
    let idle = i64::from(roll.config.operators.suspend_after_days) * 86_400;
    if idle > 0 && t - o.last_activity_at > idle {
        // §15: an operator who has not acted for the configured days is suspended, and stays so
        // until an administrator resumes them.
        roll.store
            .set_operator_status(&o.iin, &["active"], "suspended", None, &crate::model::Actor::Service)
            .await?;
        tracing::info!(target: "audit", "operator suspended: iin=[{}] reason=[no activity]", o.iin);
        return Err(AccessError::OperatorSuspended);
    }
    Ok(())
}

/// Decides whether a client certificate belongs to an administrator: the `admin` profile, and,
/// when the administrator is also on the operators' roll, an administrator who may act.
pub async fn administrator(roll: Roll<'_>, who: Option<&ClientIdentity>) -> Result<Administrator, AccessError> {
    let (rec, revoked) = client_certificate(roll, who).await?;
    if rec.profile != "admin" {
        return Err(AccessError::NotAdministrator);
    }
    let on_roll = roll.store.operator_by_certificate(&rec.serial).await?;
    if let Some(o) = &on_roll {
        may_act(roll, o).await?;
    }
    if revoked {
        return Err(AccessError::Revoked);
    }
    if let Some(o) = on_roll.filter(|o| o.last_activity_at < crate::store::now() - 60) {
        roll.store.touch_operator(&o.iin).await?;
    }
    Ok(Administrator {
        iin: rec.holder.strip_prefix("IIN").unwrap_or(&rec.holder).to_string(),
        serial: rec.serial,
        subject: rec.subject,
    })
}

/// Decides whether a client certificate belongs to an operator who may act now: an operator's
/// AUTH certificate (profile `operator-auth`), on the roll, neither suspended nor dismissed.
pub async fn operator(roll: Roll<'_>, who: Option<&ClientIdentity>) -> Result<Operator, AccessError> {
    let (rec, revoked) = client_certificate(roll, who).await?;
    let o = roll
        .store
        .operator_by_certificate(&rec.serial)
        .await?
        .ok_or(AccessError::NotOperator)?;
    if rec.profile != "operator-auth" || o.auth_serial != rec.serial {
        return Err(AccessError::NotOperator);
    }
    // A dismissed operator is told so, though the certificate's revocation would refuse too.
    may_act(roll, &o).await?;
    if revoked {
        return Err(AccessError::Revoked);
    }
    // The record is for absences of days: written at most once a minute, so that a busy
    // operator's every request is not a write.
    if o.last_activity_at < crate::store::now() - 60 {
        roll.store.touch_operator(&o.iin).await?;
    }
    Ok(Operator {
        serial: rec.serial,
        record: o,
    })
}

/// Everyone on the operators' roll, as the administrators' page lists them.
pub async fn list(store: &Store) -> Result<Vec<OperatorView>, crate::store::StoreError> {
    Ok(store.operators().await?.iter().map(OperatorView::from).collect())
}

/// An operator as the API shows it.
#[derive(Debug, serde::Serialize)]
pub struct OperatorView {
    pub iin: String,
    pub surname: String,
    pub name: String,
    pub patronymic: Option<String>,
    pub centre: String,
    pub role: String,
    pub status: String,
    pub auth_serial: String,
    pub sign_serial: String,
    pub dismissed_at: Option<String>,
    pub last_activity_at: String,
}

impl From<&OperatorRecord> for OperatorView {
    fn from(o: &OperatorRecord) -> Self {
        OperatorView {
            iin: o.iin.clone(),
            surname: o.surname.clone(),
            name: o.name.clone(),
            patronymic: o.patronymic.clone(),
            centre: o.centre.clone(),
            role: o.role.clone(),
            status: o.status.clone(),
            auth_serial: o.auth_serial.clone(),
            sign_serial: o.sign_serial.clone(),
            dismissed_at: o.dismissed_at.map(crate::pki::status::rfc3339),
            last_activity_at: crate::pki::status::rfc3339(o.last_activity_at),
        }
    }
}

/// Why an operator's signature does not confirm an application (condition 3 of P1 and P4).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfirmError {
    /// The document is signed with another operator's certificate than the one the operator
    /// logged in with ("must not use another operator's certificate").
    #[error("the confirmation is signed by another operator's certificate")]
    OtherOperator,
    /// The application belongs to another registration centre.
    #[error("the application belongs to another registration centre")]
    OtherCentre,
}

impl ConfirmError {
    pub fn code(&self) -> &'static str {
        match self {
            ConfirmError::OtherOperator => "operator_signature_other_operator",
            ConfirmError::OtherCentre => "operator_not_authorized",
        }
    }
}

/// Whether a verified signature is the logged-in operator's own confirmation of an application
/// of their centre. The operator was established active by [`operator`]; the signature's
/// validity, revocation and nonRepudiation were checked by `Ca::verify_cms`.
pub fn may_confirm(
    op: &Operator,
    signed: &crate::pki::cms::Verified,
    application_centre: &str,
) -> Result<(), ConfirmError> {
    if signed.signer_serial != op.record.sign_serial {
        return Err(ConfirmError::OtherOperator);
    }
    if op.record.centre != application_centre {
        return Err(ConfirmError::OtherCentre);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op() -> Operator {
        Operator {
            serial: "a1".into(),
            record: OperatorRecord {
                iin: "920708497088".into(),
                surname: "A".into(),
                name: "B".into(),
                patronymic: None,
                centre: "psc-astana-01".into(),
                role: "operator".into(),
                status: "active".into(),
                auth_serial: "a1".into(),
                sign_serial: "51".into(),
                created_at: 0,
                last_activity_at: 0,
                dismissed_at: None,
            },
        }
    }

    fn signed_by(serial: &str) -> crate::pki::cms::Verified {
        crate::pki::cms::Verified {
            signer_serial: serial.into(),
            signer_subject: String::new(),
            signer_profile: "operator-sign".into(),
            signer_holder: String::new(),
            signing_time: 0,
            content: Vec::new(),
        }
    }

    #[test]
    fn only_the_operators_own_sign_certificate_confirms_and_only_in_their_centre() {
        assert_eq!(may_confirm(&op(), &signed_by("51"), "psc-astana-01"), Ok(()));
        assert_eq!(
            may_confirm(&op(), &signed_by("52"), "psc-astana-01"),
            Err(ConfirmError::OtherOperator)
        );
        // Their AUTH certificate is not their signature either.
        assert_eq!(
            may_confirm(&op(), &signed_by("a1"), "psc-astana-01"),
            Err(ConfirmError::OtherOperator)
        );
        assert_eq!(
            may_confirm(&op(), &signed_by("51"), "psc-almaty-01"),
            Err(ConfirmError::OtherCentre)
        );
    }
}

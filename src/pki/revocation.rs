//! Revocation: reasons (RFC 5280 §5.3.1) and the CA's side of revoking.

use super::Ca;
use crate::store::{RevocationRecord, Revoked, StoreError, now};

/// CRLReason codes. 7 is unused in RFC 5280.
pub const REASONS: [(&str, u8); 10] = [
    ("unspecified", 0),
    ("keyCompromise", 1),
    ("cACompromise", 2),
    ("affiliationChanged", 3),
    ("superseded", 4),
    ("cessationOfOperation", 5),
    ("certificateHold", 6),
    ("removeFromCRL", 8),
    ("privilegeWithdrawn", 9),
    ("aACompromise", 10),
];

pub const HOLD: u8 = 6;
pub const REMOVE_FROM_CRL: u8 = 8;

/// A reason by name, in any case, with or without separators (`keyCompromise`, `key-compromise`,
/// `KEY_COMPROMISE`), or by its number.
pub fn parse_reason(s: &str) -> Option<u8> {
    let folded: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    REASONS
        .iter()
        .find(|(n, code)| n.to_ascii_lowercase() == folded || code.to_string() == folded)
        .map(|(_, c)| *c)
}

pub fn reason_name(code: u8) -> &'static str {
    REASONS
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(n, _)| *n)
        .unwrap_or("unspecified")
}

/// Why a revocation was not made.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// The serial is not hexadecimal of at most 20 octets.
    #[error("a serial is hexadecimal, at most 20 octets")]
    BadSerial,
    /// No certificate with this serial.
    #[error("no certificate with serial {0}")]
    UnknownSerial(String),
    /// The reason is not an RFC 5280 CRLReason.
    #[error("unknown revocation reason {0:?}")]
    BadReason(String),
    /// removeFromCRL on a certificate that is not on hold.
    #[error("certificate {0} is not on hold")]
    NotOnHold(String),
    /// A scheduled time that is not RFC 3339, or a hold scheduled for later.
    #[error("{0}")]
    BadTime(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RevokeError {
    pub fn code(&self) -> &'static str {
        match self {
            RevokeError::BadSerial => "serial_invalid",
            RevokeError::UnknownSerial(_) => "certificate_not_found",
            RevokeError::BadReason(_) => "reason_invalid",
            RevokeError::NotOnHold(_) => "not_on_hold",
            RevokeError::BadTime(_) => "time_invalid",
            RevokeError::Store(StoreError::StateConflict(_)) => "certificate_not_issued",
            RevokeError::Store(_) => "internal",
        }
    }
}

/// What a revocation request asks.
#[derive(Debug, Clone)]
pub struct RevokeRequest {
    pub serial: String,
    pub reason: String,
    /// RFC 3339; absent means now. A future time schedules the revocation.
    pub at: Option<String>,
    pub invalidity_date: Option<String>,
    /// Who asks for it: the audit record of the revocation names them.
    pub actor: crate::model::Actor,
}

/// The answer: the record as it stands and whether this call changed it.
#[derive(Debug, Clone)]
pub struct RevokeOutcome {
    pub record: RevocationRecord,
    pub changed: bool,
}

fn parse_time(s: &str) -> Result<i64, RevokeError> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|e| RevokeError::BadTime(format!("{s:?} is not an RFC 3339 time: {e}")))
}

impl Ca {
    /// Revokes (or, with removeFromCRL, lifts a hold). OCSP answers from the record at once; the
    /// publisher puts it into the next delta CRL within a minute.
    pub async fn revoke(&self, req: RevokeRequest) -> Result<RevokeOutcome, RevokeError> {
        let serial = super::normalise_serial(&req.serial).ok_or(RevokeError::BadSerial)?;
        let reason = parse_reason(&req.reason).ok_or_else(|| RevokeError::BadReason(req.reason.clone()))?;
        if reason == REMOVE_FROM_CRL {
            let record = self
                .store
                .lift_hold(&serial, &req.actor)
                .await?
                .ok_or_else(|| RevokeError::NotOnHold(serial.clone()))?;
            tracing::info!(target: "audit", "hold lifted: serial=[{serial}]");
            self.ocsp_changed();
            return Ok(RevokeOutcome { record, changed: true });
        }
        let t = now();
        let at = req.at.as_deref().map(parse_time).transpose()?.unwrap_or(t);
        let invalidity = req.invalidity_date.as_deref().map(parse_time).transpose()?;
        if reason == HOLD && at > t {
            return Err(RevokeError::BadTime(
                "a hold takes effect now; it cannot be scheduled".into(),
            ));
        }
        match self.store.revoke(&serial, at, reason, invalidity, &req.actor).await? {
            None => Err(RevokeError::UnknownSerial(serial)),
            Some(Revoked::Now(record)) => {
                self.ocsp_changed();
                tracing::info!(target: "audit", "revoked: serial=[{serial}] reason=[{}] at=[{}]", reason_name(reason), record.revoked_at);
                Ok(RevokeOutcome { record, changed: true })
            }
            Some(Revoked::Already(record)) => Ok(RevokeOutcome { record, changed: false }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_in_any_spelling() {
        assert_eq!(parse_reason("keyCompromise"), Some(1));
        assert_eq!(parse_reason("key-compromise"), Some(1));
        assert_eq!(parse_reason("KEY_COMPROMISE"), Some(1));
        assert_eq!(parse_reason("6"), Some(6));
        assert_eq!(parse_reason("7"), None);
        assert_eq!(parse_reason("lost"), None);
        assert_eq!(reason_name(5), "cessationOfOperation");
    }
}

//! The citizen's personal cabinet: sign-in with the AUTH key the citizen holds, short-lived
//! sessions, and what a signed-in holder may see (their certificates and applications).
//! Reissue (P2) and revoke (P3) are not here: the page signs them with the SIGN key as CMS and
//! files them through the applications API like any other client.
//!
//! Sign-in: the service hands out a random challenge (spent once, valid
//! `cabinet.challenge_seconds`); the page signs `nca-cabinet-sign-in:<challenge>` with the AUTH
//! key (ECDSA P-256 or RSA PKCS#1 v1.5, SHA-256) and sends it with the certificate. The
//! certificate is judged against this CA's own records, not what it says about itself: issued
//! here, byte for byte the one recorded, an AUTH profile, in its validity, not revoked. The
//! session is a random token in a cookie; only its SHA-256 is stored.

pub mod reminders;

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use der::Decode;
use serde::{Deserialize, Serialize};
use x509_cert::Certificate;

use crate::config::Config;
use crate::pki::Ca;
use crate::pki::status::rfc3339;
use crate::store::{ChallengeTaken, Store, StoreError};

/// What the page signs: the challenge under a label of its own, so that a signature made here is
/// no signature over anything else.
pub const SIGN_IN_LABEL: &str = "nca-cabinet-sign-in:";

/// The AUTH profiles a citizen signs in with.
const AUTH_PROFILES: [&str; 2] = ["individual-auth", "legal-auth"];

/// Why a sign-in or a session is refused. Each has its own stable code.
#[derive(Debug, thiserror::Error)]
pub enum CabinetError {
    /// The body is not what the endpoint takes (not base64, no certificate, …).
    #[error("{0}")]
    Invalid(String),
    /// The challenge was never handed out by this service.
    #[error("this sign-in challenge was not issued by the service; ask for a new one")]
    ChallengeUnknown,
    /// The challenge was spent by an earlier sign-in (a replay).
    #[error("this sign-in challenge was used already; ask for a new one")]
    ChallengeUsed,
    /// The challenge is past its time.
    #[error("this sign-in challenge has expired; ask for a new one")]
    ChallengeExpired,
    /// The certificate is not one this CA issued (or not as recorded).
    #[error("the certificate was not issued by this certifying centre")]
    CertificateUnknown,
    /// The signature does not verify with the certificate's key: signed by another key.
    #[error("the signature does not verify with the certificate's key")]
    SignatureInvalid,
    /// The certificate is not an AUTH certificate (a SIGN one, an operator's, …).
    #[error("sign in with the authentication (AUTH) certificate, not the signing one")]
    NotAuthCertificate,
    /// The certificate is not yet or no longer valid.
    #[error("the certificate has expired")]
    CertificateExpired,
    /// The certificate is revoked (or on hold).
    #[error("the certificate is revoked")]
    CertificateRevoked,
    /// No session cookie on a request that needs one.
    #[error("sign in to the personal cabinet first")]
    SessionRequired,
    /// A session cookie the service did not give (forged, or from another deployment).
    #[error("this session is not known; sign in again")]
    SessionInvalid,
    /// The session is past its time.
    #[error("the session has expired; sign in again")]
    SessionExpired,
    /// The holder signed out of this session.
    #[error("this session was signed out; sign in again")]
    SessionEnded,
    /// The certificate the session was opened with has been revoked since.
    #[error("the certificate this session was opened with is revoked; sign in again")]
    SessionCertificateRevoked,
    /// A serial that is not one of the holder's certificates.
    #[error("no such certificate of yours")]
    NotFound(String),
    /// The system's random number generator failed (no token or challenge can be made).
    #[error("no randomness for a token")]
    Randomness,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CabinetError {
    pub fn code(&self) -> &'static str {
        match self {
            CabinetError::Invalid(_) => "request_invalid",
            CabinetError::ChallengeUnknown => "challenge_unknown",
            CabinetError::ChallengeUsed => "challenge_used",
            CabinetError::ChallengeExpired => "challenge_expired",
            CabinetError::CertificateUnknown => "sign_in_certificate_unknown",
            CabinetError::SignatureInvalid => "sign_in_signature_invalid",
            CabinetError::NotAuthCertificate => "sign_in_not_auth_certificate",
            CabinetError::CertificateExpired => "sign_in_certificate_expired",
            CabinetError::CertificateRevoked => "sign_in_certificate_revoked",
            CabinetError::SessionRequired => "session_required",
            CabinetError::SessionInvalid => "session_invalid",
            CabinetError::SessionExpired => "session_expired",
            CabinetError::SessionEnded => "session_ended",
            CabinetError::SessionCertificateRevoked => "session_certificate_revoked",
            CabinetError::NotFound(_) => "certificate_not_found",
            CabinetError::Randomness => "internal",
            CabinetError::Store(StoreError::Unavailable(_)) => "unavailable",
            CabinetError::Store(_) => "internal",
        }
    }
}

/// A challenge handed out.
#[derive(Debug, Serialize)]
pub struct Challenge {
    pub challenge: String,
    /// What to sign: `nca-cabinet-sign-in:<challenge>`, UTF-8.
    pub to_sign: String,
    pub expires_at: String,
}

/// `POST /api/v1/cabinet/session`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    pub challenge: String,
    /// The AUTH certificate, base64 DER or PEM.
    pub certificate: String,
    /// The signature over `to_sign`, base64: ECDSA as DER (what `openssl dgst -sign` writes), or
    /// RSA PKCS#1 v1.5.
    pub signature: String,
}

/// A signed-in holder.
#[derive(Debug, Clone, Serialize)]
pub struct Holder {
    pub iin: String,
    pub certificate: String,
    pub expires_at: String,
    #[serde(skip)]
    pub expires_at_unix: i64,
}

/// A session opened: the cookie's token (shown once) and the holder.
#[derive(Debug)]
pub struct Opened {
    pub token: String,
    pub holder: Holder,
}

/// One of the holder's certificates as the cabinet lists it.
#[derive(Debug, Serialize)]
pub struct CertificateView {
    pub serial: String,
    /// `auth` or `sign`.
    pub kind: &'static str,
    pub profile: String,
    pub subject: String,
    pub not_before: String,
    pub not_after: String,
    /// `valid`, `revoked` or `expired`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation: Option<RevocationView>,
    pub application: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RevocationView {
    pub reason: &'static str,
    pub revoked_at: String,
}

/// One of the holder's applications as the cabinet lists it (the status page has the steps).
#[derive(Debug, Serialize)]
pub struct ApplicationSummary {
    pub number: String,
    pub service: String,
    pub channel: String,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    pub certificates: Vec<String>,
}

/// What the reissue form starts from: the data the holder's current pair was issued for.
#[derive(Debug, Serialize)]
pub struct Profile {
    pub holder: Holder,
    /// The applicant's data as verified at the last issuance (names, e-mail, region, locality).
    pub applicant: serde_json::Value,
    pub organization: serde_json::Value,
    pub registration_centre: Option<String>,
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b))
}

fn random_token() -> Result<String, CabinetError> {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut b)
        .map_err(|_| CabinetError::Randomness)?;
    Ok(URL_SAFE_NO_PAD.encode(b))
}

/// Base64 DER, or PEM.
fn certificate_der(text: &str) -> Result<Vec<u8>, CabinetError> {
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        return der::pem::decode_vec(t.as_bytes())
            .map(|(_, d)| d)
            .map_err(|e| CabinetError::Invalid(format!("certificate: {e}")));
    }
    STANDARD
        .decode(t)
        .map_err(|e| CabinetError::Invalid(format!("certificate: {e}")))
}

/// The certificate's state at `t`, from its record and revocation.
fn status_at(c: &crate::store::HeldCertificate, t: i64) -> (&'static str, Option<RevocationView>) {
    if let Some(at) = c.revoked_at
        && at <= t
        && c.lifted_at.is_none_or(|l| l > t)
    {
        let reason = crate::pki::revocation::reason_name(c.reason.unwrap_or(0) as u8);
        return (
            "revoked",
            Some(RevocationView {
                reason,
                revoked_at: rfc3339(at),
            }),
        );
    }
    if t > c.not_after || t < c.not_before {
        return ("expired", None);
    }
    ("valid", None)
}

/// The cabinet's door: the CA it trusts certificates of, the store its sessions live in, and
/// the configuration of their lifetimes.
pub struct Cabinet<'a> {
    pub ca: &'a Ca,
    pub store: &'a Store,
    pub config: &'a Config,
}

impl Cabinet<'_> {
    /// A fresh challenge, recorded.
    pub async fn challenge(&self) -> Result<Challenge, CabinetError> {
        let challenge = random_token()?;
        let t = crate::store::now();
        let expires = t + self.config.cabinet.challenge_seconds;
        self.store.add_challenge(&challenge, t, expires).await?;
        Ok(Challenge {
            to_sign: format!("{SIGN_IN_LABEL}{challenge}"),
            challenge,
            expires_at: rfc3339(expires),
        })
    }

    /// Checks a signed challenge and opens a session. The challenge is spent first, whatever
    /// follows: a refused sign-in cannot be tried again with it. A session the browser still
    /// had (`previous`, its cookie) is ended once the new one is open.
    pub async fn sign_in(&self, req: &SignIn, previous: Option<&str>) -> Result<Opened, CabinetError> {
        let t = crate::store::now();
        if req.challenge.is_empty() || req.challenge.len() > 128 {
            return Err(CabinetError::ChallengeUnknown);
        }
        match self.store.take_challenge(&req.challenge, t).await? {
            ChallengeTaken::Fresh => {}
            ChallengeTaken::Unknown => return Err(CabinetError::ChallengeUnknown),
            ChallengeTaken::Used => return Err(CabinetError::ChallengeUsed),
            ChallengeTaken::Expired => return Err(CabinetError::ChallengeExpired),
        }
        let der = certificate_der(&req.certificate)?;
        let signature = STANDARD
            .decode(req.signature.trim())
            .map_err(|e| CabinetError::Invalid(format!("signature: {e}")))?;
        let cert = Certificate::from_der(&der).map_err(|_| CabinetError::CertificateUnknown)?;
        let serial = hex::encode(cert.tbs_certificate.serial_number.as_bytes());
        let (record, revocation) = self
            .store
            .certificate_and_revocation(&serial)
            .await?
            .ok_or(CabinetError::CertificateUnknown)?;
        // The record's bytes, not the ones sent, are what this CA vouches for.
        if record.issuer != self.ca.issuing.id || record.der.as_deref() != Some(der.as_slice()) {
            return Err(CabinetError::CertificateUnknown);
        }
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let key = spki
            .subject_public_key
            .as_bytes()
            .ok_or(CabinetError::CertificateUnknown)?;
        let verifier: &dyn signature::VerificationAlgorithm = match spki.algorithm.oid.to_string().as_str() {
            "1.2.840.10045.2.1" => &signature::ECDSA_P256_SHA256_ASN1,
            "1.2.840.113549.1.1.1" => &signature::RSA_PKCS1_2048_8192_SHA256,
            _ => return Err(CabinetError::SignatureInvalid),
        };
        let message = format!("{SIGN_IN_LABEL}{}", req.challenge);
        UnparsedPublicKey::new(verifier, key)
            .verify(message.as_bytes(), &signature)
            .map_err(|_| CabinetError::SignatureInvalid)?;
        if !AUTH_PROFILES.contains(&record.profile.as_str()) {
            return Err(CabinetError::NotAuthCertificate);
        }
        if t < record.not_before || t > record.not_after {
            return Err(CabinetError::CertificateExpired);
        }
        if revocation.is_some_and(|r| r.effective_at(t)) {
            return Err(CabinetError::CertificateRevoked);
        }
        let iin = record
            .holder
            .strip_prefix("IIN")
            .ok_or(CabinetError::NotAuthCertificate)?
            .to_string();
        let token = random_token()?;
        let expires = (t + self.config.cabinet.session_seconds).min(record.not_after);
        self.store
            .add_session(&sha256_hex(token.as_bytes()), &iin, &serial, t, expires)
            .await?;
        if let Some(old) = previous {
            self.store.end_session(&sha256_hex(old.as_bytes()), t).await?;
        }
        tracing::info!(target: "audit", "cabinet sign-in: certificate=[{serial}]");
        Ok(Opened {
            token,
            holder: Holder {
                iin,
                certificate: serial,
                expires_at: rfc3339(expires),
                expires_at_unix: expires,
            },
        })
    }

    /// The holder of a session token (the cookie's value), if the session is still open.
    pub async fn holder(&self, token: Option<&str>) -> Result<Holder, CabinetError> {
        let token = token.ok_or(CabinetError::SessionRequired)?;
        if token.is_empty() || token.len() > 128 {
            return Err(CabinetError::SessionInvalid);
        }
        let s = self
            .store
            .session(&sha256_hex(token.as_bytes()))
            .await?
            .ok_or(CabinetError::SessionInvalid)?;
        let t = crate::store::now();
        if s.ended_at.is_some() {
            return Err(CabinetError::SessionEnded);
        }
        if t > s.expires_at {
            return Err(CabinetError::SessionExpired);
        }
        if self
            .store
            .revocation(&s.certificate)
            .await?
            .is_some_and(|r| r.effective_at(t))
        {
            return Err(CabinetError::SessionCertificateRevoked);
        }
        Ok(Holder {
            iin: s.iin,
            certificate: s.certificate,
            expires_at: rfc3339(s.expires_at),
            expires_at_unix: s.expires_at,
        })
    }

    /// Signs out: the session is ended (an unknown token changes nothing).
    pub async fn sign_out(&self, token: Option<&str>) -> Result<(), CabinetError> {
        if let Some(token) = token {
            self.store
                .end_session(&sha256_hex(token.as_bytes()), crate::store::now())
                .await?;
        }
        Ok(())
    }

    pub async fn certificates(&self, h: &Holder) -> Result<Vec<CertificateView>, CabinetError> {
        let t = crate::store::now();
        let held = self.store.held_certificates(&format!("IIN{}", h.iin)).await?;
        Ok(held
            .iter()
            .map(|c| {
                let (status, revocation) = status_at(c, t);
                CertificateView {
                    serial: c.serial.clone(),
                    kind: if c.profile.ends_with("-sign") { "sign" } else { "auth" },
                    profile: c.profile.clone(),
                    subject: c.subject.clone(),
                    not_before: rfc3339(c.not_before),
                    not_after: rfc3339(c.not_after),
                    status,
                    revocation,
                    application: c.application.clone(),
                }
            })
            .collect())
    }

    /// One of the holder's certificates with the chain, PEM.
    pub async fn certificate_pem(&self, h: &Holder, serial: &str) -> Result<String, CabinetError> {
        let wanted = crate::pki::normalise_serial(serial).ok_or_else(|| CabinetError::NotFound(serial.into()))?;
        let held = self.store.held_certificates(&format!("IIN{}", h.iin)).await?;
        let c = held
            .iter()
            .find(|c| c.serial == wanted)
            .ok_or_else(|| CabinetError::NotFound(serial.into()))?;
        let mut pem = crate::pki::pem("CERTIFICATE", &c.der);
        pem.push_str(&self.ca.issuing.cert_pem());
        pem.push_str(&self.ca.root.cert_pem());
        Ok(pem)
    }

    pub async fn applications(&self, h: &Holder) -> Result<Vec<ApplicationSummary>, CabinetError> {
        let apps = self.store.held_applications(&h.iin, 200).await?;
        Ok(apps
            .into_iter()
            .map(|a| ApplicationSummary {
                number: a.number,
                service: a.service,
                channel: a.channel,
                status: a.status,
                created_at: rfc3339(a.created_at),
                updated_at: rfc3339(a.updated_at),
                certificates: a.auth_serial.into_iter().chain(a.sign_serial).collect(),
            })
            .collect())
    }

    /// The holder and the data their newest issued pair was issued for, to fill the reissue form.
    pub async fn profile(&self, h: Holder) -> Result<Profile, CabinetError> {
        let apps = self.store.held_applications(&h.iin, 200).await?;
        let issued = apps
            .iter()
            .find(|a| a.status == "completed" && a.service != "revoke" && a.sign_serial.is_some());
        let data: serde_json::Value = issued
            .map(|a| serde_json::from_str(&a.applicant).unwrap_or_default())
            .unwrap_or_default();
        Ok(Profile {
            holder: h,
            applicant: data["applicant"].clone(),
            organization: data["organization"].clone(),
            registration_centre: issued.map(|a| a.centre.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(not_after: i64, revoked_at: Option<i64>, lifted_at: Option<i64>) -> crate::store::HeldCertificate {
        crate::store::HeldCertificate {
            serial: "01".into(),
            profile: "individual-auth".into(),
            subject: String::new(),
            not_before: 0,
            not_after,
            application: None,
            der: Vec::new(),
            revoked_at,
            reason: Some(1),
            lifted_at,
        }
    }

    #[test]
    fn a_certificate_is_valid_revoked_or_expired_as_of_now() {
        assert_eq!(status_at(&held(100, None, None), 50).0, "valid");
        assert_eq!(status_at(&held(100, None, None), 101).0, "expired");
        let (s, r) = status_at(&held(100, Some(40), None), 50);
        assert_eq!((s, r.map(|r| r.reason)), ("revoked", Some("keyCompromise")));
        // Scheduled for later, or a hold lifted: not revoked now.
        assert_eq!(status_at(&held(100, Some(60), None), 50).0, "valid");
        assert_eq!(status_at(&held(100, Some(40), Some(45)), 50).0, "valid");
    }

    #[test]
    fn certificates_come_as_base64_der_or_pem_and_nothing_else() {
        assert_eq!(certificate_der("AQID").unwrap(), vec![1, 2, 3]);
        assert!(matches!(certificate_der("not base64!"), Err(CabinetError::Invalid(_))));
        assert!(matches!(
            certificate_der("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n"),
            Err(CabinetError::Invalid(_))
        ));
    }
}

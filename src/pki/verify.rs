//! The verification service for relying e-services (`POST /api/v1/verify`): one call checks a
//! signed document (CMS SignedData, attached or detached) and says, per signer, who signed, with
//! which certificate, its status now and when it signed, the signing time and where that time
//! comes from, and whether the signature is valid, with a stable refusal code when not.
//!
//! The time of signing is the genTime of a signature time-stamp token of this centre's TSA
//! (CAdES-T, id-aa-signatureTimeStampToken in the unsigned attributes) when there is one: then a
//! certificate revoked or expired after that time leaves the signature valid. Without a token
//! the signer's own signingTime is only a claim: the certificate must be valid both then and
//! now. Certificates are taken from this CA's records, never from the message.

use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use const_oid::ObjectIdentifier;
use der::asn1::OctetString;
use der::{Decode, Encode};
use serde::Serialize;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage};
use x509_cert::time::Time;

use super::Ca;
use super::cms::{CmsError, attribute, check_signature, digest_of, signed_data};
use super::signed_data::ID_AA_SIGNATURE_TIME_STAMP_TOKEN;
use super::status::rfc3339;
use super::tsa::token::VerifiedToken;
use crate::store::{CertificateRecord, CertificateStatus, StoreError, now};

const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
/// Legal-entity roles: 1.2.398.3.3.4.1.2.N (PROFILES.md).
const ROLE_PREFIX: &str = "1.2.398.3.3.4.1.2.";
const ROLES: [(&str, &str); 5] = [
    ("1", "first-head"),
    ("2", "signer"),
    ("3", "finance"),
    ("4", "hr"),
    ("5", "employee"),
];

/// Why a document cannot be checked at all (no signer to speak of). A signer that fails is not
/// an error but a result: [`Refusal`] in its report.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Not a DER or PEM CMS SignedData.
    #[error("not a CMS SignedData: {0}")]
    Malformed(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl VerifyError {
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Malformed(_) => "cms_malformed",
            VerifyError::Store(_) => "internal",
        }
    }
}

/// Why a signer's signature is not valid. Each has a stable code (README, "Verification").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The signer's certificate is not one this CA issued (another CA's, self-signed, unknown).
    UnknownIssuer,
    /// The signature does not verify with the certificate's key.
    SignatureInvalid,
    /// The messageDigest attribute is not the digest of the content.
    ContentMismatch,
    /// Detached signature without its content.
    ContentMissing,
    /// Signed attributes missing or ill-formed (contentType, messageDigest).
    AttributesInvalid,
    /// A digest or signature algorithm this service does not accept.
    AlgorithmUnsupported,
    /// The certificate was revoked at or before the time of signing.
    RevokedBeforeSigning,
    /// The certificate was expired (or not yet valid) at the time of signing.
    ExpiredAtSigning,
    /// No time-stamp fixes the time of signing and the certificate is revoked now.
    CertificateRevoked,
    /// No time-stamp fixes the time of signing and the certificate has expired.
    CertificateExpired,
    /// The certificate is not for signatures (no nonRepudiation).
    NotSigningCertificate,
    /// A signature time-stamp token is present but does not verify against this TSA.
    TimestampInvalid,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Refusal::UnknownIssuer => "unknown_issuer",
            Refusal::SignatureInvalid => "signature_invalid",
            Refusal::ContentMismatch => "content_mismatch",
            Refusal::ContentMissing => "content_missing",
            Refusal::AttributesInvalid => "attributes_invalid",
            Refusal::AlgorithmUnsupported => "algorithm_unsupported",
            Refusal::RevokedBeforeSigning => "revoked_before_signing",
            Refusal::ExpiredAtSigning => "expired_at_signing",
            Refusal::CertificateRevoked => "certificate_revoked",
            Refusal::CertificateExpired => "certificate_expired",
            Refusal::NotSigningCertificate => "not_signing_certificate",
            Refusal::TimestampInvalid => "timestamp_invalid",
        }
    }
}

/// Who signed, from the certificate's subject.
#[derive(Debug, Default, Serialize)]
pub struct Signatory {
    pub iin: Option<String>,
    pub bin: Option<String>,
    pub organization: Option<String>,
    pub role: Option<String>,
    pub common_name: Option<String>,
    pub surname: Option<String>,
    pub name: Option<String>,
    pub patronymic: Option<String>,
}

/// The signer's certificate and its status.
#[derive(Debug, Serialize)]
pub struct CertificateReport {
    pub serial: String,
    pub subject: String,
    pub profile: String,
    pub not_before: String,
    pub not_after: String,
    /// `valid`, `revoked`, `expired` or `not_yet_valid`.
    pub status_now: &'static str,
    /// `valid`, `revoked`, `expired` or `not_yet_valid`, at `signing_time`.
    pub status_at_signing: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_reason: Option<&'static str>,
}

/// The verified time-stamp token of a signature.
#[derive(Debug, Serialize)]
pub struct TimestampReport {
    pub serial: String,
    pub time: String,
    pub policy: String,
    pub tsa_serial: String,
}

/// One signer's result.
#[derive(Debug, Serialize)]
pub struct SignerReport {
    pub valid: bool,
    /// The refusal's code when not valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signer: Option<Signatory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateReport>,
    /// RFC 3339; the time the statuses "at signing" are judged at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_time: Option<String>,
    /// `timestamp` (a verified token of this TSA), `claimed` (the signer's signingTime) or
    /// `none` (neither: judged at the time of verification).
    pub signing_time_source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_signing_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<TimestampReport>,
}

/// The whole document's result: valid when every signer is.
#[derive(Debug, Serialize)]
pub struct Report {
    pub valid: bool,
    /// The first failing signer's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    pub attached: bool,
    pub signers: Vec<SignerReport>,
}

fn refused(r: Refusal, message: impl Into<String>) -> SignerReport {
    SignerReport {
        valid: false,
        code: Some(r.code()),
        message: Some(message.into()),
        signer: None,
        certificate: None,
        signing_time: None,
        signing_time_source: "none",
        claimed_signing_time: None,
        timestamp: None,
    }
}

impl Ca {
    /// Verifies a signed document: `input` is a CMS SignedData (DER or PEM), `detached` its
    /// content when it does not carry it.
    pub async fn verify_document(&self, input: &[u8], detached: Option<&[u8]>) -> Result<Report, VerifyError> {
        let sd = signed_data(input).map_err(|e| match e {
            CmsError::Malformed(m) => VerifyError::Malformed(m),
            other => VerifyError::Malformed(other.to_string()),
        })?;
        let attached = sd.encap_content_info.econtent.is_some();
        let content = match &sd.encap_content_info.econtent {
            Some(any) => Some(
                any.decode_as::<OctetString>()
                    .map_err(|e| VerifyError::Malformed(e.to_string()))?
                    .as_bytes()
                    .to_vec(),
            ),
            None => detached.map(<[u8]>::to_vec),
        };
        if sd.signer_infos.0.is_empty() {
            return Err(VerifyError::Malformed("no signers".into()));
        }
        let mut signers = Vec::new();
        for si in sd.signer_infos.0.iter() {
            signers.push(self.verify_signer(&sd, si, content.as_deref()).await?);
        }
        let code = signers.iter().find_map(|s| s.code);
        Ok(Report {
            valid: code.is_none(),
            code,
            attached,
            signers,
        })
    }

    async fn verify_signer(
        &self,
        sd: &SignedData,
        si: &SignerInfo,
        content: Option<&[u8]>,
    ) -> Result<SignerReport, VerifyError> {
        // The certificate, from this CA's records.
        let Some(record) = self.signer_record(sd, si).await? else {
            return Ok(refused(
                Refusal::UnknownIssuer,
                "the signer's certificate was not issued by this CA",
            ));
        };
        let Some(cert) = record.der.as_deref().and_then(|d| Certificate::from_der(d).ok()) else {
            return Ok(refused(
                Refusal::UnknownIssuer,
                "the signer's certificate is not on record",
            ));
        };
        let signer = Some(signatory(&cert));
        let mut report = SignerReport {
            signer,
            ..refused(Refusal::SignatureInvalid, "")
        };

        // Signed attributes, content and signature.
        let Some(attrs) = si.signed_attrs.as_ref() else {
            return Ok(fail(report, Refusal::AttributesInvalid, "no signed attributes"));
        };
        let content_type = attribute(attrs, ID_CONTENT_TYPE).and_then(|a| a.decode_as::<ObjectIdentifier>().ok());
        if content_type != Some(sd.encap_content_info.econtent_type) {
            return Ok(fail(
                report,
                Refusal::AttributesInvalid,
                "contentType missing or not the content's",
            ));
        }
        let Some(md) = attribute(attrs, ID_MESSAGE_DIGEST).and_then(|a| a.decode_as::<OctetString>().ok()) else {
            return Ok(fail(report, Refusal::AttributesInvalid, "no messageDigest attribute"));
        };
        let Some(content) = content else {
            return Ok(fail(
                report,
                Refusal::ContentMissing,
                "a detached signature needs its content",
            ));
        };
        match digest_of(si.digest_alg.oid, content) {
            Ok(d) if d == md.as_bytes() => {}
            Ok(_) => {
                return Ok(fail(
                    report,
                    Refusal::ContentMismatch,
                    "the signature is over other content",
                ));
            }
            Err(e) => return Ok(fail(report, Refusal::AlgorithmUnsupported, e.to_string())),
        }
        match check_signature(si, attrs, &cert.tbs_certificate.subject_public_key_info) {
            Ok(()) => {}
            Err(CmsError::UnsupportedAlgorithm(a)) => {
                return Ok(fail(report, Refusal::AlgorithmUnsupported, format!("algorithm {a}")));
            }
            Err(e) => return Ok(fail(report, Refusal::SignatureInvalid, e.to_string())),
        }

        // The time of signing: a verified token of this TSA, else the claim, else now.
        let claimed = attribute(attrs, ID_SIGNING_TIME)
            .and_then(|a| a.to_der().ok())
            .and_then(|d| Time::from_der(&d).ok())
            .map(|t| t.to_unix_duration().as_secs() as i64);
        report.claimed_signing_time = claimed.map(rfc3339);
        let token = si
            .unsigned_attrs
            .as_ref()
            .and_then(|u| u.iter().find(|a| a.oid == ID_AA_SIGNATURE_TIME_STAMP_TOKEN))
            .and_then(|a| a.values.iter().next())
            .and_then(|v| v.to_der().ok());
        let now = now();
        let (at, source) = match token {
            Some(token) => match self.verify_token(&token, si.signature.as_bytes()).await {
                Ok(t) => {
                    let at = t.gen_time;
                    report.timestamp = Some(timestamp_report(t));
                    (at, "timestamp")
                }
                Err(e) => {
                    report.certificate = Some(self.certificate_report(&record, &cert, now).await?);
                    return Ok(fail(report, Refusal::TimestampInvalid, e.to_string()));
                }
            },
            None => match claimed {
                Some(c) => (c, "claimed"),
                None => (now, "none"),
            },
        };
        report.signing_time = Some(rfc3339(at));
        report.signing_time_source = source;
        let certificate = self.certificate_report(&record, &cert, at).await?;
        let (at_signing, status_now) = (certificate.status_at_signing, certificate.status_now);
        report.certificate = Some(certificate);

        if !non_repudiation(&cert) {
            return Ok(fail(
                report,
                Refusal::NotSigningCertificate,
                "the certificate is not a signing (SIGN) certificate",
            ));
        }
        match at_signing {
            "revoked" => {
                return Ok(fail(
                    report,
                    Refusal::RevokedBeforeSigning,
                    "the certificate was revoked at the time of signing",
                ));
            }
            "expired" | "not_yet_valid" => {
                return Ok(fail(
                    report,
                    Refusal::ExpiredAtSigning,
                    "the certificate was not valid at the time of signing",
                ));
            }
            _ => {}
        }
        // A claimed time proves nothing about when: without a token the certificate must be
        // valid now too.
        if source != "timestamp" {
            match status_now {
                "revoked" => {
                    return Ok(fail(
                        report,
                        Refusal::CertificateRevoked,
                        "the certificate is revoked and no time-stamp shows the signature was made before",
                    ));
                }
                "expired" => {
                    return Ok(fail(
                        report,
                        Refusal::CertificateExpired,
                        "the certificate has expired and no time-stamp shows the signature was made before",
                    ));
                }
                _ => {}
            }
        }
        report.valid = true;
        report.code = None;
        report.message = None;
        Ok(report)
    }

    /// The signer's certificate record, when this CA issued it (issuing CA, status issued).
    async fn signer_record(&self, sd: &SignedData, si: &SignerInfo) -> Result<Option<CertificateRecord>, VerifyError> {
        let serial = match &si.sid {
            SignerIdentifier::IssuerAndSerialNumber(ias) => {
                if ias.issuer.to_der().ok().as_deref() != Some(&self.issuing.subject_der[..]) {
                    return Ok(None);
                }
                hex::encode(ias.serial_number.as_bytes())
            }
            SignerIdentifier::SubjectKeyIdentifier(ski) => {
                let found = sd.certificates.iter().flat_map(|c| c.0.iter()).find_map(|c| match c {
                    cms::cert::CertificateChoices::Certificate(cert) => {
                        (super::build::key_identifier(&cert.tbs_certificate.subject_public_key_info)
                            == ski.0.as_bytes())
                        .then(|| hex::encode(cert.tbs_certificate.serial_number.as_bytes()))
                    }
                    _ => None,
                });
                match found {
                    Some(s) => s,
                    None => return Ok(None),
                }
            }
        };
        let record = self.store.certificate(&serial).await?;
        Ok(record.filter(|r| r.status == CertificateStatus::Issued && r.issuer == self.issuing.id))
    }

    async fn certificate_report(
        &self,
        record: &CertificateRecord,
        cert: &Certificate,
        at: i64,
    ) -> Result<CertificateReport, VerifyError> {
        let now = now();
        let revocation = self.store.revocation(&record.serial).await?;
        let validity = |t: i64| {
            if t < record.not_before {
                "not_yet_valid"
            } else if t > record.not_after {
                "expired"
            } else {
                "valid"
            }
        };
        let status = |t: i64| match validity(t) {
            "valid" if revocation.as_ref().is_some_and(|r| r.effective_at(t)) => "revoked",
            v => v,
        };
        let status_now = status(now);
        let active = revocation.as_ref().filter(|r| r.lifted_at.is_none_or(|l| l > now));
        Ok(CertificateReport {
            serial: record.serial.clone(),
            subject: super::subject::display(&cert.tbs_certificate.subject),
            profile: record.profile.clone(),
            not_before: rfc3339(record.not_before),
            not_after: rfc3339(record.not_after),
            status_now,
            status_at_signing: status(at),
            revoked_at: active.map(|r| rfc3339(r.revoked_at)),
            revocation_reason: active.map(|r| reason_name(r.reason)),
        })
    }
}

fn fail(mut report: SignerReport, r: Refusal, message: impl Into<String>) -> SignerReport {
    report.valid = false;
    report.code = Some(r.code());
    report.message = Some(message.into());
    report
}

fn timestamp_report(t: VerifiedToken) -> TimestampReport {
    TimestampReport {
        serial: t.serial,
        time: rfc3339(t.gen_time),
        policy: t.policy,
        tsa_serial: t.tsa_serial,
    }
}

fn reason_name(code: u8) -> &'static str {
    super::revocation::REASONS
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(n, _)| *n)
        .unwrap_or("unspecified")
}

fn non_repudiation(cert: &Certificate) -> bool {
    cert.tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_KEY_USAGE)
        .and_then(|e| KeyUsage::from_der(e.extn_value.as_bytes()).ok())
        .is_some_and(|ku| ku.non_repudiation())
}

/// Who the certificate names: IIN from SERIALNUMBER, BIN from OU, organisation, role from the
/// EKU, names from CN, SURNAME and GIVENNAME (the patronymic).
fn signatory(cert: &Certificate) -> Signatory {
    use const_oid::db::rfc4519;
    let mut s = Signatory::default();
    for atv in cert.tbs_certificate.subject.0.iter().flat_map(|r| r.0.iter()) {
        let Some(value) = string_value(&atv.value) else {
            continue;
        };
        match atv.oid {
            o if o == rfc4519::SERIAL_NUMBER => s.iin = value.strip_prefix("IIN").map(str::to_string),
            o if o == rfc4519::OU => s.bin = value.strip_prefix("BIN").map(str::to_string),
            o if o == rfc4519::O => s.organization = Some(value),
            o if o == rfc4519::CN => s.common_name = Some(value),
            o if o == rfc4519::SN => s.surname = Some(value),
            o if o == rfc4519::GIVEN_NAME => s.patronymic = Some(value),
            _ => {}
        }
    }
    // CN is "SURNAME NAME" for a person.
    if let (Some(cn), Some(surname)) = (&s.common_name, &s.surname) {
        s.name = cn
            .strip_prefix(surname.as_str())
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string);
    }
    s.role = cert
        .tbs_certificate
        .extensions
        .iter()
        .flatten()
        .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_EXT_KEY_USAGE)
        .and_then(|e| ExtendedKeyUsage::from_der(e.extn_value.as_bytes()).ok())
        .and_then(|eku| {
            eku.0.iter().find_map(|o| {
                let o = o.to_string();
                let n = o.strip_prefix(ROLE_PREFIX)?.to_string();
                Some(
                    ROLES
                        .iter()
                        .find(|(k, _)| *k == n)
                        .map(|(_, name)| name.to_string())
                        .unwrap_or(o),
                )
            })
        });
    s
}

fn string_value(v: &der::Any) -> Option<String> {
    use der::asn1::{PrintableStringRef, Utf8StringRef};
    Utf8StringRef::try_from(v)
        .map(|s| s.as_str().to_string())
        .or_else(|_| PrintableStringRef::try_from(v).map(|s| s.as_str().to_string()))
        .ok()
}

//! Verifying CMS SignedData (RFC 5652): operators' confirmations and applicants' signed
//! requests. Attached and detached, RSA and P-256, as NCALayer and `openssl cms -sign` make them.
//!
//! The signer's certificate is taken from this CA's own records, not from the message: a
//! certificate the CA did not issue (a stranger's, self-signed) cannot sign for anyone here.

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use const_oid::ObjectIdentifier;
use der::asn1::OctetString;
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::ext::pkix::KeyUsage;
use x509_cert::time::Time;

use super::Ca;
use crate::store::{CertificateStatus, StoreError, now};

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");

/// Why a signed document is refused. Each has its own code.
#[derive(Debug, thiserror::Error)]
pub enum CmsError {
    /// Not a DER or PEM CMS SignedData, or a part of it does not decode.
    #[error("not a well-formed CMS SignedData: {0}")]
    Malformed(String),
    /// Detached signature without the content, or signed attributes that lack what is required.
    #[error("{0}")]
    Incomplete(String),
    /// The messageDigest attribute is not the digest of the content: signed over other content.
    #[error("the signature is over other content")]
    ContentMismatch,
    /// The signature does not verify with the signer's key.
    #[error("the signature does not verify")]
    BadSignature,
    /// A digest or signature algorithm this CA does not accept.
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// signingTime too far from the service's clock.
    #[error("signingTime is more than {0} s from now")]
    SigningTime(i64),
    /// The signer's certificate is not one this CA issued.
    #[error("the signer's certificate was not issued by this CA")]
    UnknownSigner,
    /// The signer's certificate was not valid at signing time.
    #[error("the signer's certificate was not valid at the signing time")]
    SignerExpired,
    /// The signer's certificate was revoked at signing time.
    #[error("the signer's certificate was revoked at the signing time")]
    SignerRevoked,
    /// The signer's certificate is not a SIGN certificate (no nonRepudiation).
    #[error("the signer's certificate is not a signing (SIGN) certificate")]
    NotSigningCertificate,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl CmsError {
    pub fn code(&self) -> &'static str {
        match self {
            CmsError::Malformed(_) => "cms_malformed",
            CmsError::Incomplete(_) => "cms_incomplete",
            CmsError::ContentMismatch => "cms_content_mismatch",
            CmsError::BadSignature => "cms_signature_invalid",
            CmsError::UnsupportedAlgorithm(_) => "cms_algorithm_unsupported",
            CmsError::SigningTime(_) => "cms_signing_time",
            CmsError::UnknownSigner => "signer_unknown",
            CmsError::SignerExpired => "signer_expired",
            CmsError::SignerRevoked => "signer_revoked",
            CmsError::NotSigningCertificate => "signer_not_sign_certificate",
            CmsError::Store(_) => "internal",
        }
    }
}

/// A verified signature: who signed what, when.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    pub signer_serial: String,
    pub signer_subject: String,
    pub signer_profile: String,
    /// The signer's IIN or entity name (SERIALNUMBER without the IIN prefix kept as recorded).
    pub signer_holder: String,
    pub signing_time: i64,
    #[serde(skip)]
    pub content: Vec<u8>,
}

fn malformed(e: impl std::fmt::Display) -> CmsError {
    CmsError::Malformed(e.to_string())
}

pub(super) fn digest_of(alg: ObjectIdentifier, data: &[u8]) -> Result<Vec<u8>, CmsError> {
    let a = match alg {
        SHA256 => &aws_lc_rs::digest::SHA256,
        SHA384 => &aws_lc_rs::digest::SHA384,
        SHA512 => &aws_lc_rs::digest::SHA512,
        other => return Err(CmsError::UnsupportedAlgorithm(other.to_string())),
    };
    Ok(aws_lc_rs::digest::digest(a, data).as_ref().to_vec())
}

/// The one value of a signed attribute.
pub(super) fn attribute(attrs: &cms::signed_data::SignedAttributes, oid: ObjectIdentifier) -> Option<&der::Any> {
    attrs.iter().find(|a| a.oid == oid).and_then(|a| a.values.iter().next())
}

/// The SignedData in a DER or PEM ContentInfo.
pub(super) fn signed_data(input: &[u8]) -> Result<SignedData, CmsError> {
    let der = if input.trim_ascii_start().starts_with(b"-----BEGIN") {
        der::pem::decode_vec(input.trim_ascii()).map_err(malformed)?.1
    } else {
        input.to_vec()
    };
    let ci = ContentInfo::from_der(&der).map_err(malformed)?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(CmsError::Malformed(format!(
            "content type {} is not signedData",
            ci.content_type
        )));
    }
    ci.content.decode_as().map_err(malformed)
}

/// The content of an attached SignedData, unverified: to read what a request claims before
/// deciding on it (the decision then rests on [`Ca::verify_cms`]).
pub fn content_of(input: &[u8]) -> Result<Vec<u8>, CmsError> {
    let any = signed_data(input)?
        .encap_content_info
        .econtent
        .ok_or_else(|| CmsError::Incomplete("a signed request must carry its content".into()))?;
    Ok(any.decode_as::<OctetString>().map_err(malformed)?.as_bytes().to_vec())
}

/// A SignedData as read, before the signer is looked up: its one signer, who they say they
/// are, and the content signed.
pub struct Signed {
    data: SignedData,
    /// The DER of the issuer name when the signer is named by issuer and serial.
    pub issuer_der: Option<Vec<u8>>,
    /// The signer's serial, hex, as the store keeps serials.
    pub serial: String,
    pub content: Vec<u8>,
}

/// Reads a CMS SignedData (DER, or PEM labelled CMS or PKCS7); `detached` is the content when
/// the message does not carry it. Nothing is verified yet: see [`check`].
pub fn read(input: &[u8], detached: Option<&[u8]>) -> Result<Signed, CmsError> {
    let sd = signed_data(input)?;
    let content = match (&sd.encap_content_info.econtent, detached) {
        (Some(any), _) => any.decode_as::<OctetString>().map_err(malformed)?.as_bytes().to_vec(),
        (None, Some(c)) => c.to_vec(),
        (None, None) => return Err(CmsError::Incomplete("a detached signature needs its content".into())),
    };
    let si = match sd.signer_infos.0.as_slice() {
        [si] => si,
        other => {
            return Err(CmsError::Malformed(format!(
                "{} signers; exactly one is accepted",
                other.len()
            )));
        }
    };
    let (issuer_der, serial) = match &si.sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => (
            Some(ias.issuer.to_der().map_err(malformed)?),
            hex::encode(ias.serial_number.as_bytes()),
        ),
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            let certs = sd
                .certificates
                .as_ref()
                .map(|c| c.0.iter().collect::<Vec<_>>())
                .unwrap_or_default();
            let found = certs.into_iter().find_map(|c| match c {
                cms::cert::CertificateChoices::Certificate(cert) => {
                    (super::build::key_identifier(&cert.tbs_certificate.subject_public_key_info) == ski.0.as_bytes())
                        .then(|| hex::encode(cert.tbs_certificate.serial_number.as_bytes()))
                }
                _ => None,
            });
            (None, found.ok_or(CmsError::UnknownSigner)?)
        }
    };
    Ok(Signed {
        data: sd,
        issuer_der,
        serial,
        content,
    })
}

impl Signed {
    /// The certificates the message carries (the verifier trusts none of them: the signer's
    /// comes from the CA's records).
    pub fn certificates(&self) -> impl Iterator<Item = &Certificate> {
        self.data
            .certificates
            .iter()
            .flat_map(|c| c.0.iter())
            .filter_map(|c| match c {
                cms::cert::CertificateChoices::Certificate(cert) => Some(cert),
                _ => None,
            })
    }
}

/// Checks a read SignedData against the signer's certificate: signed attributes contentType,
/// messageDigest (over the content) and signingTime (within `skew` of `t`), and the signature.
/// Returns the signing time.
pub fn check(signed: &Signed, cert: &Certificate, skew: i64, t: i64) -> Result<i64, CmsError> {
    let sd = &signed.data;
    let content = &signed.content;
    let si = sd
        .signer_infos
        .0
        .as_slice()
        .first()
        .ok_or_else(|| CmsError::Malformed("no signer".into()))?;

    // Signed attributes: contentType, messageDigest, signingTime.
    let attrs = si
        .signed_attrs
        .as_ref()
        .ok_or_else(|| CmsError::Incomplete("no signed attributes".into()))?;
    let content_type: ObjectIdentifier = attribute(attrs, ID_CONTENT_TYPE)
        .ok_or_else(|| CmsError::Incomplete("no contentType attribute".into()))?
        .decode_as()
        .map_err(malformed)?;
    if content_type != sd.encap_content_info.econtent_type {
        return Err(CmsError::Malformed(
            "contentType attribute differs from the content's type".into(),
        ));
    }
    let md: OctetString = attribute(attrs, ID_MESSAGE_DIGEST)
        .ok_or_else(|| CmsError::Incomplete("no messageDigest attribute".into()))?
        .decode_as()
        .map_err(malformed)?;
    if md.as_bytes() != digest_of(si.digest_alg.oid, content)? {
        return Err(CmsError::ContentMismatch);
    }
    let signing_time =
        attribute(attrs, ID_SIGNING_TIME).ok_or_else(|| CmsError::Incomplete("no signingTime attribute".into()))?;
    // A CHOICE (UTCTime or GeneralizedTime): decoded from the value's own DER.
    let signing_time = Time::from_der(&signing_time.to_der().map_err(malformed)?).map_err(malformed)?;
    let signing_time = signing_time.to_unix_duration().as_secs() as i64;
    if (signing_time - t).abs() > skew {
        return Err(CmsError::SigningTime(skew));
    }

    // The signature over the DER of the signed attributes as a SET OF (RFC 5652 §5.4).
    check_signature(si, attrs, &cert.tbs_certificate.subject_public_key_info)?;
    Ok(signing_time)
}

/// Checks a signer's signature over its signed attributes (their DER as a SET OF, RFC 5652
/// §5.4) with the certificate's key.
pub(super) fn check_signature(
    si: &cms::signed_data::SignerInfo,
    attrs: &cms::signed_data::SignedAttributes,
    spki: &spki::SubjectPublicKeyInfoOwned,
) -> Result<(), CmsError> {
    let signed = attrs.to_der().map_err(malformed)?;
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| malformed("signer key with unused bits"))?;
    let sig_alg = si.signature_algorithm.oid;
    let verifier: &dyn signature::VerificationAlgorithm = match (spki.algorithm.oid, sig_alg, si.digest_alg.oid) {
        // OpenSSL writes rsaEncryption and leaves the hash to digestAlgorithm.
        (RSA_ENCRYPTION, RSA_ENCRYPTION | SHA256_WITH_RSA, SHA256) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (RSA_ENCRYPTION, RSA_ENCRYPTION | SHA384_WITH_RSA, SHA384) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (RSA_ENCRYPTION, RSA_ENCRYPTION | SHA512_WITH_RSA, SHA512) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (EC_PUBLIC_KEY, ECDSA_WITH_SHA256, _) => &signature::ECDSA_P256_SHA256_ASN1,
        (EC_PUBLIC_KEY, ECDSA_WITH_SHA384, _) => &signature::ECDSA_P256_SHA384_ASN1,
        (_, other, _) => return Err(CmsError::UnsupportedAlgorithm(other.to_string())),
    };
    UnparsedPublicKey::new(verifier, key)
        .verify(&signed, si.signature.as_bytes())
        .map_err(|_| CmsError::BadSignature)
}

impl Ca {
    /// Verifies a CMS SignedData (DER, or PEM labelled CMS or PKCS7). `detached` is the content
    /// when the message does not carry it. Returns the signer and the content.
    pub async fn verify_cms(&self, input: &[u8], detached: Option<&[u8]>) -> Result<Verified, CmsError> {
        let signed = read(input, detached)?;
        if signed
            .issuer_der
            .as_ref()
            .is_some_and(|issuer| *issuer != self.issuing.subject_der)
        {
            return Err(CmsError::UnknownSigner);
        }
        // The signer, from this CA's records.
        let serial = signed.serial.clone();
        let (record, revocation) = self
            .store
            .certificate_and_revocation(&serial)
            .await?
            .ok_or(CmsError::UnknownSigner)?;
        let (CertificateStatus::Issued, Some(cert_der)) = (record.status, record.der.as_ref()) else {
            return Err(CmsError::UnknownSigner);
        };
        if record.issuer != self.issuing.id {
            return Err(CmsError::UnknownSigner);
        }
        let cert = Certificate::from_der(cert_der).map_err(malformed)?;
        let signing_time = check(&signed, &cert, self.config.cms.signing_time_skew_seconds, now())?;
        let content = signed.content;

        // The certificate, as of the signing time.
        if signing_time < record.not_before || signing_time > record.not_after {
            return Err(CmsError::SignerExpired);
        }
        if revocation.is_some_and(|r| r.effective_at(signing_time)) {
            return Err(CmsError::SignerRevoked);
        }
        let non_repudiation = cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_KEY_USAGE)
            .and_then(|e| KeyUsage::from_der(e.extn_value.as_bytes()).ok())
            .is_some_and(|ku| ku.non_repudiation());
        if !non_repudiation {
            return Err(CmsError::NotSigningCertificate);
        }
        Ok(Verified {
            signer_serial: serial,
            signer_subject: record.subject,
            signer_profile: record.profile,
            signer_holder: record.holder,
            signing_time,
            content,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use der::{Decode, Encode};
    use x509_cert::name::Name;

    use super::*;
    use crate::keys::{KeyAlgorithm, Signer, SoftwareKey, new_pkcs8};
    use crate::pki::build::{self, TbsParts};
    use crate::pki::signed_data;

    fn now() -> i64 {
        crate::store::now()
    }

    /// A P-256 key and a self-signed certificate of it (what the signer's certificate needs to
    /// be for these checks: its key).
    fn signer(cn: &str) -> (SoftwareKey, Vec<u8>) {
        let key = SoftwareKey::from_pkcs8(cn, &new_pkcs8(KeyAlgorithm::EcP256).unwrap()).unwrap();
        let spki = spki::SubjectPublicKeyInfoOwned::from_der(key.spki_der()).unwrap();
        let name = Name::from_str(&format!("CN={cn}")).unwrap();
        let tbs = build::tbs(TbsParts {
            serial: build::random_serial().unwrap(),
            signature: KeyAlgorithm::EcP256,
            issuer: name.clone(),
            not_before: now() - 60,
            not_after: now() + 86_400,
            subject: name,
            spki: spki.clone(),
            extensions: build::ca_extensions(&spki, None, &[], None).unwrap(),
        })
        .unwrap()
        .to_der()
        .unwrap();
        let sig = key.sign_blocking(&tbs).unwrap();
        (key, build::assemble(&tbs, KeyAlgorithm::EcP256, &sig).unwrap())
    }

    #[test]
    fn an_attached_signature_reads_names_its_signer_and_verifies() {
        let (key, cert_der) = signer("Signer");
        let cert = Certificate::from_der(&cert_der).unwrap();
        let content = "өтінім 2026-0001".as_bytes();
        let der = signed_data::sign(&key, &cert_der, content, true).unwrap();

        let signed = read(&der, None).unwrap();
        assert_eq!(signed.content, content);
        assert_eq!(
            signed.serial,
            hex::encode(cert.tbs_certificate.serial_number.as_bytes())
        );
        if let Some(issuer) = &signed.issuer_der {
            assert_eq!(issuer, &cert.tbs_certificate.issuer.to_der().unwrap());
        }
        assert_eq!(
            signed.certificates().next(),
            Some(&cert),
            "the certificate travels along"
        );
        let at = check(&signed, &cert, 300, now()).unwrap();
        assert!((at - now()).abs() <= 5, "signingTime is the moment of signing");
        assert_eq!(content_of(&der).unwrap(), content);

        // The same message as PEM.
        let pem = der::pem::encode_string("CMS", der::pem::LineEnding::LF, &der).unwrap();
        assert_eq!(read(pem.as_bytes(), None).unwrap().content, content);
    }

    #[test]
    fn a_signature_is_refused_for_other_content_another_key_or_another_time() {
        let (key, cert_der) = signer("Signer");
        let (_, stranger) = signer("Stranger");
        let cert = Certificate::from_der(&cert_der).unwrap();
        let detached = signed_data::sign(&key, &cert_der, b"the body", false).unwrap();

        assert!(matches!(read(&detached, None), Err(CmsError::Incomplete(_))));
        assert!(matches!(content_of(&detached), Err(CmsError::Incomplete(_))));
        let right = read(&detached, Some(b"the body")).unwrap();
        check(&right, &cert, 300, now()).unwrap();
        let other = read(&detached, Some(b"another body")).unwrap();
        assert!(matches!(
            check(&other, &cert, 300, now()),
            Err(CmsError::ContentMismatch)
        ));
        assert!(matches!(
            check(&right, &Certificate::from_der(&stranger).unwrap(), 300, now()),
            Err(CmsError::BadSignature)
        ));
        assert!(matches!(
            check(&right, &cert, 60, now() + 3600),
            Err(CmsError::SigningTime(60))
        ));
    }

    #[test]
    fn what_is_not_a_signed_data_is_malformed() {
        for bad in [
            &b""[..],
            b"\x30\x03\x02\x01\x01",
            b"-----BEGIN CMS-----\nnot base64\n-----END CMS-----\n",
        ] {
            assert!(matches!(read(bad, None), Err(CmsError::Malformed(_))), "{bad:?}");
        }
        // A ContentInfo of another type (id-data).
        let ci = cms::content_info::ContentInfo {
            content_type: const_oid::db::rfc5911::ID_DATA,
            content: der::Any::encode_from(&OctetString::new(b"x".to_vec()).unwrap()).unwrap(),
        };
        let e = read(&ci.to_der().unwrap(), None).err().unwrap();
        assert!(
            matches!(e, CmsError::Malformed(ref m) if m.contains("not signedData")),
            "{e}"
        );
        assert_eq!(e.code(), "cms_malformed");
    }
}

//! Making CMS SignedData (RFC 5652) with a key behind the [`Signer`] trait: the operator's
//! confirmations at the workstation, and the service's signatures on its messages to the
//! monitoring system. (Verification is [`super::cms`].)

use cms::content_info::ContentInfo;
use cms::signed_data::{EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo, SignerInfos};
use const_oid::ObjectIdentifier;
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;
use x509_cert::attr::Attribute;

use crate::keys::{KeyStoreError, Signer};

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const ID_SIGNING_TIME: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.5");
const ID_SIGNING_CERTIFICATE_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// Why a SignedData could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The key store would not sign.
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    /// The certificate does not decode, or the structure does not encode.
    #[error("encoding: {0}")]
    Encoding(#[from] der::Error),
    #[error(transparent)]
    Build(#[from] super::build::BuildError),
}

/// CMS SignedData, DER: signed attributes contentType, signingTime, messageDigest and
/// signingCertificateV2 (what NCALayer puts in), the signer's certificate included; the content
/// inside (`attached`) or not (detached: the signature that travels beside a message body, as
/// the monitoring system's `X-Signature`).
pub fn sign(signer: &dyn Signer, cert_der: &[u8], content: &[u8], attached: bool) -> Result<Vec<u8>, SignError> {
    let cert = Certificate::from_der(cert_der)?;
    let sha256 = |d: &[u8]| ring::digest::digest(&ring::digest::SHA256, d).as_ref().to_vec();
    let attr = |oid: ObjectIdentifier, value: Any| -> Result<Attribute, der::Error> {
        Ok(Attribute {
            oid,
            values: SetOfVec::try_from(vec![value])?,
        })
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let signing_time = crate::pki::build::x509_time(now as i64)?;
    // SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2 }, the hash algorithm
    // left at its default (SHA-256) and no issuerSerial: one ESSCertIDv2 { certHash }.
    let ess = {
        let hash = OctetString::new(sha256(cert_der))?.to_der()?;
        let id = der_seq(&hash)?;
        let certs = der_seq(&id)?;
        der_seq(&certs)?
    };
    let attrs = vec![
        attr(ID_CONTENT_TYPE, Any::encode_from(&ID_DATA)?)?,
        attr(ID_SIGNING_TIME, Any::from_der(&signing_time.to_der()?)?)?,
        attr(
            ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(sha256(content))?)?,
        )?,
        attr(ID_SIGNING_CERTIFICATE_V2, Any::from_der(&ess)?)?,
    ];
    let signed_attrs: SetOfVec<Attribute> = SetOfVec::try_from(attrs)?;
    // The signature covers the attributes' DER as a SET OF (RFC 5652 §5.4).
    let signature = signer.sign_blocking(&signed_attrs.to_der()?)?;
    let signer_info = SignerInfo {
        version: cms::content_info::CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(cms::cert::IssuerAndSerialNumber {
            issuer: cert.tbs_certificate.issuer.clone(),
            serial_number: cert.tbs_certificate.serial_number.clone(),
        }),
        digest_alg: AlgorithmIdentifierOwned {
            oid: SHA256,
            parameters: None,
        },
        signed_attrs: Some(signed_attrs),
        signature_algorithm: signer.algorithm().signature_algorithm(),
        signature: OctetString::new(signature)?,
        unsigned_attrs: None,
    };
    let mut certificates = cms::signed_data::CertificateSet(Default::default());
    certificates
        .0
        .insert(cms::cert::CertificateChoices::Certificate(cert))?;
    let sd = SignedData {
        version: cms::content_info::CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![AlgorithmIdentifierOwned {
            oid: SHA256,
            parameters: None,
        }])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: if attached {
                Some(Any::encode_from(&OctetString::new(content.to_vec())?)?)
            } else {
                None
            },
        },
        certificates: Some(certificates),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
    };
    Ok(ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&sd)?,
    }
    .to_der()?)
}

fn der_seq(content: &[u8]) -> Result<Vec<u8>, der::Error> {
    let mut out = Vec::with_capacity(content.len() + 4);
    der::Header::new(der::Tag::Sequence, der::Length::try_from(content.len())?)?.encode_to_vec(&mut out)?;
    out.extend_from_slice(content);
    Ok(out)
}

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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    sign_with(
        signer,
        cert_der,
        &Signing {
            content_type: ID_DATA,
            content,
            attached,
            include_certificate: true,
            signing_time: now as i64,
            issuer_serial: false,
        },
    )
}

/// What a SignedData is made of, beyond the key and its certificate.
pub struct Signing<'a> {
    /// eContentType: id-data for documents and messages, id-ct-TSTInfo for a time-stamp token.
    pub content_type: ObjectIdentifier,
    pub content: &'a [u8],
    pub attached: bool,
    /// Whether the signer's certificate goes into `certificates` (a TSA includes it only when
    /// the request asks, RFC 3161 §2.4.1 certReq).
    pub include_certificate: bool,
    /// The signingTime attribute, seconds since the epoch.
    pub signing_time: i64,
    /// Whether the ESSCertIDv2 names the certificate's issuer and serial too (RFC 5816 asks it
    /// of a TSA; a document signature identifies the certificate by its hash alone).
    pub issuer_serial: bool,
}

/// IssuerSerial (RFC 5035): the certificate's issuer as GeneralNames, and its serial.
#[derive(Clone, Debug, der::Sequence)]
pub(crate) struct IssuerSerial {
    pub issuer: Vec<x509_cert::ext::pkix::name::GeneralName>,
    pub serial_number: x509_cert::serial_number::SerialNumber,
}

/// ESSCertIDv2 (RFC 5035): the hash algorithm is absent when it is the default, SHA-256.
#[derive(Clone, Debug, der::Sequence)]
pub(crate) struct EssCertIdV2 {
    #[asn1(optional = "true")]
    pub hash_algorithm: Option<AlgorithmIdentifierOwned>,
    pub cert_hash: OctetString,
    #[asn1(optional = "true")]
    pub issuer_serial: Option<IssuerSerial>,
}

/// SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, policies … OPTIONAL }.
#[derive(Clone, Debug, der::Sequence)]
pub(crate) struct SigningCertificateV2 {
    pub certs: Vec<EssCertIdV2>,
}

/// CMS SignedData, DER, as [`Signing`] describes it; the signature by `signer` over the signed
/// attributes contentType, signingTime, messageDigest (SHA-256) and signingCertificateV2.
pub fn sign_with(signer: &dyn Signer, cert_der: &[u8], s: &Signing<'_>) -> Result<Vec<u8>, SignError> {
    let cert = Certificate::from_der(cert_der)?;
    let sha256 = |d: &[u8]| {
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, d)
            .as_ref()
            .to_vec()
    };
    let attr = |oid: ObjectIdentifier, value: Any| -> Result<Attribute, der::Error> {
        Ok(Attribute {
            oid,
            values: SetOfVec::try_from(vec![value])?,
        })
    };
    let signing_time = crate::pki::build::x509_time(s.signing_time)?;
    let ess = SigningCertificateV2 {
        certs: vec![EssCertIdV2 {
            hash_algorithm: None,
            cert_hash: OctetString::new(sha256(cert_der))?,
            issuer_serial: if s.issuer_serial {
                Some(IssuerSerial {
                    issuer: vec![x509_cert::ext::pkix::name::GeneralName::DirectoryName(
                        cert.tbs_certificate.issuer.clone(),
                    )],
                    serial_number: cert.tbs_certificate.serial_number.clone(),
                })
            } else {
                None
            },
        }],
    };
    let attrs = vec![
        attr(ID_CONTENT_TYPE, Any::encode_from(&s.content_type)?)?,
        attr(ID_SIGNING_TIME, Any::from_der(&signing_time.to_der()?)?)?,
        attr(
            ID_MESSAGE_DIGEST,
            Any::encode_from(&OctetString::new(sha256(s.content))?)?,
        )?,
        attr(ID_SIGNING_CERTIFICATE_V2, Any::encode_from(&ess)?)?,
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
    let certificates = if s.include_certificate {
        let mut set = cms::signed_data::CertificateSet(Default::default());
        set.0.insert(cms::cert::CertificateChoices::Certificate(cert))?;
        Some(set)
    } else {
        None
    };
    // RFC 5652 §5.1: version 3 when the content is not id-data.
    let version = if s.content_type == ID_DATA {
        cms::content_info::CmsVersion::V1
    } else {
        cms::content_info::CmsVersion::V3
    };
    let sd = SignedData {
        version,
        digest_algorithms: SetOfVec::try_from(vec![AlgorithmIdentifierOwned {
            oid: SHA256,
            parameters: None,
        }])?,
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: s.content_type,
            econtent: if s.attached {
                Some(Any::encode_from(&OctetString::new(s.content.to_vec())?)?)
            } else {
                None
            },
        },
        certificates,
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info])?),
    };
    Ok(ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&sd)?,
    }
    .to_der()?)
}

/// id-aa-signatureTimeStampToken (RFC 3161 appendix A): a token over the signature value, in
/// the signer's unsigned attributes (CAdES-T).
pub const ID_AA_SIGNATURE_TIME_STAMP_TOKEN: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.14");

/// The signature value of a SignedData's one signer: what a CAdES-T time-stamp covers.
pub fn signature_value(cms_der: &[u8]) -> Result<Vec<u8>, SignError> {
    let sd = decode_signed_data(cms_der)?;
    let si = sd
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or(der::Error::from(der::ErrorKind::Failed))?;
    Ok(si.signature.as_bytes().to_vec())
}

/// Adds a signature time-stamp token (a ContentInfo, DER) to the unsigned attributes of a
/// SignedData's one signer; the signed part is untouched.
pub fn add_signature_timestamp(cms_der: &[u8], token_der: &[u8]) -> Result<Vec<u8>, SignError> {
    let mut sd = decode_signed_data(cms_der)?;
    let mut infos: Vec<SignerInfo> = sd.signer_infos.0.into_vec();
    let si = infos.first_mut().ok_or(der::Error::from(der::ErrorKind::Failed))?;
    let attr = Attribute {
        oid: ID_AA_SIGNATURE_TIME_STAMP_TOKEN,
        values: SetOfVec::try_from(vec![Any::from_der(token_der)?])?,
    };
    let mut attrs: Vec<Attribute> = si.unsigned_attrs.take().map(|a| a.into_vec()).unwrap_or_default();
    attrs.retain(|a| a.oid != ID_AA_SIGNATURE_TIME_STAMP_TOKEN);
    attrs.push(attr);
    si.unsigned_attrs = Some(SetOfVec::try_from(attrs)?);
    sd.signer_infos = SignerInfos(SetOfVec::try_from(infos)?);
    Ok(ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&sd)?,
    }
    .to_der()?)
}

fn decode_signed_data(cms_der: &[u8]) -> Result<SignedData, SignError> {
    let ci = ContentInfo::from_der(cms_der)?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(der::Error::from(der::ErrorKind::Failed).into());
    }
    Ok(ci.content.decode_as::<SignedData>()?)
}

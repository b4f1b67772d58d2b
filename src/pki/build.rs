//! Building to-be-signed certificates: validity, serial, extensions in the profile's shape.
//! Nothing here signs; [`super::issue`] records what this builds before any key touches it.

use const_oid::{AssociatedOid, ObjectIdentifier};
use der::Encode;
use der::asn1::{Ia5String, OctetString};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::TbsCertificate;
use x509_cert::certificate::Version;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::certpolicy::{PolicyInformation, PolicyQualifierInfo};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies,
    CrlDistributionPoints, ExtendedKeyUsage, FreshestCrl, KeyUsage, KeyUsages, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

use super::profile::{KeyUsageBit, Profile};
use super::subject::Subject;
use crate::keys::KeyAlgorithm;

pub const OCSP_NOCHECK: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.5");
pub const AD_OCSP: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1");
pub const AD_CA_ISSUERS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.2");
pub const QT_CPS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.2.1");

/// An error while encoding: only a bug or an absurd value (a URL that is not IA5) gets here.
#[derive(Debug, thiserror::Error)]
#[error("encoding {what}: {message}")]
pub struct BuildError {
    pub what: &'static str,
    pub message: String,
}

fn enc_err(what: &'static str) -> impl Fn(der::Error) -> BuildError {
    move |e| BuildError {
        what,
        message: e.to_string(),
    }
}

/// Where relying parties find the issuer's certificate, CRLs and OCSP: the URLs written into
/// what it issues.
#[derive(Debug, Clone)]
pub struct IssuerUrls {
    pub ca_issuers: String,
    pub crl: String,
    pub delta_crl: String,
    pub ocsp: String,
    pub cps: String,
}

/// A fresh serial: 20 octets from the OS CSPRNG, first octet in 0x10..=0x7f, so that the
/// DER integer is positive, exactly 20 octets long and carries 159 random bits at the least. A
/// failing OS random source is an error, never a predictable serial.
pub fn random_serial() -> Result<Vec<u8>, BuildError> {
    let mut b = [0u8; 20];
    loop {
        aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut b).map_err(|_| BuildError {
            what: "serial",
            message: "the OS random source failed".into(),
        })?;
        if (0x10..=0x7f).contains(&b[0]) {
            return Ok(b.to_vec());
        }
    }
}

/// UTCTime through 2049, GeneralizedTime from 2050 (RFC 5280 §4.1.2.5).
pub fn x509_time(unix: i64) -> Result<Time, BuildError> {
    let d = std::time::Duration::from_secs(unix.max(0) as u64);
    let dt = der::DateTime::from_unix_duration(d).map_err(enc_err("time"))?;
    if dt.year() < 2050 {
        Ok(Time::UtcTime(
            der::asn1::UtcTime::from_date_time(dt).map_err(enc_err("time"))?,
        ))
    } else {
        Ok(Time::GeneralTime(der::asn1::GeneralizedTime::from_date_time(dt)))
    }
}

fn ext<T: AssociatedOid + Encode>(v: &T, critical: bool) -> Result<Extension, BuildError> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(v.to_der().map_err(enc_err("extension"))?).map_err(enc_err("extension"))?,
    })
}

fn uri(s: &str) -> Result<GeneralName, BuildError> {
    Ok(GeneralName::UniformResourceIdentifier(
        Ia5String::new(s).map_err(enc_err("URI"))?,
    ))
}

fn dp(url: &str) -> Result<DistributionPoint, BuildError> {
    Ok(DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![uri(url)?])),
        reasons: None,
        crl_issuer: None,
    })
}

/// RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits.
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        spki.subject_public_key.raw_bytes(),
    )
    .as_ref()
    .to_vec()
}

pub fn key_usage(bits: &[KeyUsageBit], subject_key: KeyAlgorithm) -> KeyUsage {
    let mut set = flagset::FlagSet::<KeyUsages>::default();
    for b in bits {
        set |= match b {
            KeyUsageBit::DigitalSignature => KeyUsages::DigitalSignature,
            KeyUsageBit::NonRepudiation => KeyUsages::NonRepudiation,
            // An EC key cannot encipher a key: the bit would be a lie.
            KeyUsageBit::KeyEncipherment if !subject_key.is_rsa() => continue,
            KeyUsageBit::KeyEncipherment => KeyUsages::KeyEncipherment,
            KeyUsageBit::DataEncipherment => KeyUsages::DataEncipherment,
            KeyUsageBit::KeyAgreement => KeyUsages::KeyAgreement,
        };
    }
    KeyUsage(set)
}

/// The extensions of an end-entity certificate under `profile`, in a fixed order.
pub fn leaf_extensions(
    profile: &Profile,
    subject: &Subject,
    spki: &SubjectPublicKeyInfoOwned,
    subject_key: KeyAlgorithm,
    issuer_ski: &[u8],
    urls: &IssuerUrls,
) -> Result<Vec<Extension>, BuildError> {
    let mut exts = vec![
        ext(
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(issuer_ski).map_err(enc_err("AKI"))?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
            false,
        )?,
        ext(
            &SubjectKeyIdentifier(OctetString::new(key_identifier(spki)).map_err(enc_err("SKI"))?),
            false,
        )?,
        ext(&key_usage(&profile.key_usage, subject_key), true)?,
    ];
    let mut eku = profile.eku_oids.clone();
    eku.extend(subject.role);
    if !eku.is_empty() {
        exts.push(ext(&ExtendedKeyUsage(eku), profile.extended_key_usage_critical)?);
    }
    if !profile.policy_oids.is_empty() {
        let qualifiers = if profile.cps {
            let cps =
                der::Any::encode_from(&Ia5String::new(&urls.cps).map_err(enc_err("CPS"))?).map_err(enc_err("CPS"))?;
            Some(vec![PolicyQualifierInfo {
                policy_qualifier_id: QT_CPS,
                qualifier: Some(cps),
            }])
        } else {
            None
        };
        let infos = profile
            .policy_oids
            .iter()
            .map(|oid| PolicyInformation {
                policy_identifier: *oid,
                policy_qualifiers: qualifiers.clone(),
            })
            .collect();
        exts.push(ext(&CertificatePolicies(infos), false)?);
    }
    let mut san = Vec::new();
    if let Some(e) = &subject.email {
        san.push(GeneralName::Rfc822Name(Ia5String::new(e).map_err(enc_err("e-mail"))?));
    }
    for d in &subject.dns_names {
        san.push(GeneralName::DnsName(Ia5String::new(d).map_err(enc_err("DNS name"))?));
    }
    for ip in &subject.ip_addresses {
        let bytes = match ip {
            std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
            std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        san.push(GeneralName::IpAddress(OctetString::new(bytes).map_err(enc_err("IP"))?));
    }
    if !san.is_empty() {
        exts.push(ext(&SubjectAltName(san), false)?);
    }
    if profile.crl_distribution_point {
        exts.push(ext(&CrlDistributionPoints(vec![dp(&urls.crl)?]), false)?);
    }
    if profile.freshest_crl {
        exts.push(ext(&FreshestCrl(vec![dp(&urls.delta_crl)?]), false)?);
    }
    if profile.authority_info_access {
        exts.push(ext(
            &AuthorityInfoAccessSyntax(vec![
                AccessDescription {
                    access_method: AD_OCSP,
                    access_location: uri(&urls.ocsp)?,
                },
                AccessDescription {
                    access_method: AD_CA_ISSUERS,
                    access_location: uri(&urls.ca_issuers)?,
                },
            ]),
            false,
        )?);
    }
    if profile.ocsp_nocheck {
        exts.push(Extension {
            extn_id: OCSP_NOCHECK,
            critical: false,
            extn_value: OctetString::new(vec![0x05, 0x00]).map_err(enc_err("ocsp-nocheck"))?,
        });
    }
    Ok(exts)
}

/// Extensions of a CA certificate. `issuer` is `None` for the self-signed root: then there is no
/// AKI other than its own key, no CDP and no AIA (the root is the trust anchor).
pub fn ca_extensions(
    spki: &SubjectPublicKeyInfoOwned,
    issuer: Option<(&[u8], &IssuerUrls)>,
    policies: &[ObjectIdentifier],
    path_len: Option<u8>,
) -> Result<Vec<Extension>, BuildError> {
    let ski = key_identifier(spki);
    let aki = issuer.map(|(s, _)| s.to_vec()).unwrap_or_else(|| ski.clone());
    let mut exts = vec![
        ext(
            &BasicConstraints {
                ca: true,
                path_len_constraint: path_len,
            },
            true,
        )?,
        ext(&KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign), true)?,
        ext(
            &SubjectKeyIdentifier(OctetString::new(ski).map_err(enc_err("SKI"))?),
            false,
        )?,
        ext(
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(aki).map_err(enc_err("AKI"))?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
            false,
        )?,
    ];
    if let Some((_, urls)) = issuer {
        if !policies.is_empty() {
            let cps =
                der::Any::encode_from(&Ia5String::new(&urls.cps).map_err(enc_err("CPS"))?).map_err(enc_err("CPS"))?;
            let qualifiers = Some(vec![PolicyQualifierInfo {
                policy_qualifier_id: QT_CPS,
                qualifier: Some(cps),
            }]);
            exts.push(ext(
                &CertificatePolicies(
                    policies
                        .iter()
                        .map(|p| PolicyInformation {
                            policy_identifier: *p,
                            policy_qualifiers: qualifiers.clone(),
                        })
                        .collect(),
                ),
                false,
            )?);
        }
        exts.push(ext(&CrlDistributionPoints(vec![dp(&urls.crl)?]), false)?);
        exts.push(ext(
            &AuthorityInfoAccessSyntax(vec![AccessDescription {
                access_method: AD_CA_ISSUERS,
                access_location: uri(&urls.ca_issuers)?,
            }]),
            false,
        )?);
    }
    Ok(exts)
}

/// What a TBS is made of; the signature algorithm is the issuer key's.
pub struct TbsParts {
    pub serial: Vec<u8>,
    pub signature: KeyAlgorithm,
    pub issuer: Name,
    pub not_before: i64,
    pub not_after: i64,
    pub subject: Name,
    pub spki: SubjectPublicKeyInfoOwned,
    pub extensions: Vec<Extension>,
}

/// A serial's DER integer.
pub fn serial_number(serial: &[u8]) -> Result<SerialNumber, BuildError> {
    SerialNumber::new(serial).map_err(enc_err("serial"))
}

/// Assembles the TBS.
pub fn tbs(p: TbsParts) -> Result<TbsCertificate, BuildError> {
    Ok(TbsCertificate {
        version: Version::V3,
        serial_number: serial_number(&p.serial)?,
        signature: p.signature.signature_algorithm(),
        issuer: p.issuer,
        validity: Validity {
            not_before: x509_time(p.not_before)?,
            not_after: x509_time(p.not_after)?,
        },
        subject: p.subject,
        subject_public_key_info: p.spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(p.extensions),
    })
}

/// Wraps a signature around TBS bytes exactly as they were recorded and linted.
pub fn assemble(tbs_der: &[u8], signature: KeyAlgorithm, sig: &[u8]) -> Result<Vec<u8>, BuildError> {
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }.
    // Splice the recorded TBS bytes in rather than re-encoding a decoded copy.
    let alg = signature
        .signature_algorithm()
        .to_der()
        .map_err(enc_err("certificate"))?;
    let bits = der::asn1::BitString::from_bytes(sig)
        .map_err(enc_err("certificate"))?
        .to_der()
        .map_err(enc_err("certificate"))?;
    let len = der::Length::try_from(tbs_der.len() + alg.len() + bits.len()).map_err(enc_err("certificate"))?;
    let mut out = Vec::with_capacity(tbs_der.len() + alg.len() + bits.len() + 8);
    der::Header::new(der::Tag::Sequence, len)
        .and_then(|h| h.encode_to_vec(&mut out))
        .map_err(enc_err("certificate"))?;
    out.extend_from_slice(tbs_der);
    out.extend_from_slice(&alg);
    out.extend_from_slice(&bits);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use der::Decode;
    use x509_cert::Certificate;

    use super::*;
    use crate::keys::Signer;
    use crate::keys::{SoftwareKey, new_pkcs8};
    use crate::pki::profile::{EMBEDDED, Profile};
    use crate::pki::{lint, subject};

    const NOW: i64 = 1_800_000_000;
    const YEAR: i64 = 365 * 86_400;

    fn key() -> SoftwareKey {
        SoftwareKey::from_pkcs8("test", &new_pkcs8(KeyAlgorithm::EcP256).unwrap()).unwrap()
    }

    fn spki(k: &SoftwareKey) -> SubjectPublicKeyInfoOwned {
        SubjectPublicKeyInfoOwned::from_der(k.spki_der()).unwrap()
    }

    /// An independent check of a P-256 signature (not the key's own code path).
    fn verifies(spki: &SubjectPublicKeyInfoOwned, msg: &[u8], sig: &[u8]) -> bool {
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            spki.subject_public_key.raw_bytes(),
        )
        .verify(msg, sig)
        .is_ok()
    }

    fn urls() -> IssuerUrls {
        IssuerUrls {
            ca_issuers: "http://nca.test/ca/issuing.cer".into(),
            crl: "http://nca.test/crl/issuing.crl".into(),
            delta_crl: "http://nca.test/crl/issuing-delta.crl".into(),
            ocsp: "http://nca.test/ocsp".into(),
            cps: "http://nca.test/cps".into(),
        }
    }

    fn profile(name: &str) -> Profile {
        let (_, text) = EMBEDDED.iter().find(|(n, _)| *n == name).unwrap();
        Profile::parse(name, text).unwrap()
    }

    /// A self-signed root's TBS over `k`, as the ceremony shapes it.
    fn root_tbs(k: &SoftwareKey) -> TbsCertificate {
        let name = Name::from_str("CN=Test Root").unwrap();
        tbs(TbsParts {
            serial: random_serial().unwrap(),
            signature: KeyAlgorithm::EcP256,
            issuer: name.clone(),
            not_before: NOW,
            not_after: NOW + 10 * YEAR,
            subject: name,
            spki: spki(k),
            extensions: ca_extensions(&spki(k), None, &[], Some(1)).unwrap(),
        })
        .unwrap()
    }

    #[test]
    fn a_root_is_built_signed_and_decodes_with_its_fields_and_a_signature_that_verifies() {
        let k = key();
        let tbs_der = root_tbs(&k).to_der().unwrap();
        let facts = lint::IssuerFacts {
            subject_der: &Name::from_str("CN=Test Root").unwrap().to_der().unwrap(),
            ski: &key_identifier(&spki(&k)),
            algorithm: KeyAlgorithm::EcP256,
            not_before: NOW,
            not_after: NOW + 10 * YEAR,
        };
        lint::ca(&tbs_der, &facts).unwrap();
        let sig = k.sign_blocking(&tbs_der).unwrap();
        let der = assemble(&tbs_der, KeyAlgorithm::EcP256, &sig).unwrap();

        let cert = Certificate::from_der(&der).unwrap();
        let t = &cert.tbs_certificate;
        assert_eq!(t.to_der().unwrap(), tbs_der, "the signed bytes are the linted ones");
        assert_eq!(t.version, Version::V3);
        assert_eq!(t.serial_number.as_bytes().len(), 20);
        assert_eq!(t.issuer, t.subject);
        assert_eq!(cert.signature_algorithm, KeyAlgorithm::EcP256.signature_algorithm());
        assert!(matches!(t.validity.not_before, Time::UtcTime(_)));
        assert_eq!(
            t.validity.not_after.to_unix_duration().as_secs() as i64,
            NOW + 10 * YEAR
        );
        let exts = t.extensions.as_ref().unwrap();
        let bc = exts.iter().find(|e| e.extn_id == BasicConstraints::OID).unwrap();
        let bc_value = BasicConstraints::from_der(bc.extn_value.as_bytes()).unwrap();
        assert!(bc.critical && bc_value.ca && bc_value.path_len_constraint == Some(1));
        let ku = exts.iter().find(|e| e.extn_id == KeyUsage::OID).unwrap();
        assert!(ku.critical);
        assert_eq!(
            KeyUsage::from_der(ku.extn_value.as_bytes()).unwrap(),
            KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign)
        );
        let ski = exts.iter().find(|e| e.extn_id == SubjectKeyIdentifier::OID).unwrap();
        assert_eq!(
            SubjectKeyIdentifier::from_der(ski.extn_value.as_bytes())
                .unwrap()
                .0
                .as_bytes(),
            key_identifier(&spki(&k))
        );
        assert!(
            !exts.iter().any(|e| e.extn_id == CrlDistributionPoints::OID),
            "a root has no CDP"
        );

        let sig_bits = cert.signature.raw_bytes();
        assert!(verifies(&t.subject_public_key_info, &tbs_der, sig_bits));
        let mut tampered = tbs_der.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(!verifies(&t.subject_public_key_info, &tampered, sig_bits));
    }

    #[test]
    fn an_ocsp_responder_certificate_has_its_profile_s_extensions_and_no_revocation_pointers() {
        let (issuer_key, k) = (key(), key());
        let p = profile("ocsp");
        let input = subject::SubjectInput {
            common_name: Some("Test OCSP responder".into()),
            ..Default::default()
        };
        let s = subject::build(&p, &input, "KZ").unwrap();
        let issuer_ski = key_identifier(&spki(&issuer_key));
        let exts = leaf_extensions(&p, &s, &spki(&k), KeyAlgorithm::EcP256, &issuer_ski, &urls()).unwrap();
        let find = |oid| exts.iter().find(|e| e.extn_id == oid);
        assert_eq!(
            ExtendedKeyUsage::from_der(find(ExtendedKeyUsage::OID).unwrap().extn_value.as_bytes())
                .unwrap()
                .0,
            vec![const_oid::db::rfc5280::ID_KP_OCSP_SIGNING]
        );
        assert_eq!(find(OCSP_NOCHECK).unwrap().extn_value.as_bytes(), [0x05, 0x00]);
        assert!(find(CrlDistributionPoints::OID).is_none() && find(AuthorityInfoAccessSyntax::OID).is_none());
        let aki =
            AuthorityKeyIdentifier::from_der(find(AuthorityKeyIdentifier::OID).unwrap().extn_value.as_bytes()).unwrap();
        assert_eq!(aki.key_identifier.unwrap().as_bytes(), issuer_ski);
        assert_eq!(
            KeyUsage::from_der(find(KeyUsage::OID).unwrap().extn_value.as_bytes()).unwrap(),
            KeyUsage(KeyUsages::DigitalSignature.into())
        );
    }

    #[test]
    fn times_switch_to_generalized_in_2050_and_serials_are_positive_20_octets() {
        let end_2049 = 2_524_607_999; // 2049-12-31T23:59:59Z
        assert!(matches!(x509_time(end_2049).unwrap(), Time::UtcTime(_)));
        assert!(matches!(x509_time(end_2049 + 1).unwrap(), Time::GeneralTime(_)));
        let a = random_serial().unwrap();
        assert_eq!(a.len(), 20);
        assert!((0x10..=0x7f).contains(&a[0]));
        assert_ne!(a, random_serial().unwrap());
        // An EC key never gets keyEncipherment, whatever the profile asks.
        let ku = key_usage(
            &[KeyUsageBit::DigitalSignature, KeyUsageBit::KeyEncipherment],
            KeyAlgorithm::EcP256,
        );
        assert_eq!(ku, KeyUsage(KeyUsages::DigitalSignature.into()));
    }
}

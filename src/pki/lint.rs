//! Linting a to-be-signed certificate before it is recorded and signed, judged on its own against
//! the profile and the issuer, so that a bug in the builder shows up here rather than in a relying
//! party's verifier. An end entity's TBS is linted as the structure that was built and is then
//! encoded once (decoding its own fresh encoding again was work on every certificate that judged
//! the der crate's encoder, not the builder); a CA certificate's, once in a ceremony, is decoded
//! back from its bytes.

use std::collections::HashSet;

use const_oid::AssociatedOid;
use const_oid::db::rfc4519;
use der::{Decode, Encode, Tag, Tagged};
use x509_cert::TbsCertificate;
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier};
use x509_cert::time::Time;

use super::build::{self, OCSP_NOCHECK};
use super::profile::{DnAttribute, Profile};
use crate::keys::{self, KeyAlgorithm};

/// What the issuer looks like to the linter.
pub struct IssuerFacts<'a> {
    pub subject_der: &'a [u8],
    pub ski: &'a [u8],
    pub algorithm: KeyAlgorithm,
    pub not_before: i64,
    pub not_after: i64,
}

/// The findings of a lint run; any finding stops issuance.
#[derive(Debug, thiserror::Error)]
#[error("lint: {}", .0.join("; "))]
pub struct LintError(pub Vec<String>);

fn unix(t: &Time) -> i64 {
    t.to_unix_duration().as_secs() as i64
}

fn dn_oid(a: DnAttribute) -> const_oid::ObjectIdentifier {
    match a {
        DnAttribute::CN => rfc4519::CN,
        DnAttribute::SURNAME => rfc4519::SN,
        DnAttribute::SERIALNUMBER => rfc4519::SERIAL_NUMBER,
        DnAttribute::C => rfc4519::C,
        DnAttribute::L => rfc4519::L,
        DnAttribute::ST => rfc4519::ST,
        DnAttribute::O => rfc4519::O,
        DnAttribute::OU => rfc4519::OU,
        DnAttribute::GIVENNAME => rfc4519::GIVEN_NAME,
    }
}

/// Checks that hold for every certificate this CA makes, CA certificates included.
fn common(tbs: &TbsCertificate, issuer: &IssuerFacts<'_>, f: &mut Vec<String>) {
    if tbs.version != Version::V3 {
        f.push("version is not v3".into());
    }
    let serial = tbs.serial_number.as_bytes();
    if serial.len() > 20 || serial.is_empty() || serial[0] & 0x80 != 0 {
        f.push("serial is not a positive integer of at most 20 octets".into());
    }
    if serial.len() < 9 {
        f.push("serial carries fewer than 64 random bits".into());
    }
    if tbs.signature != issuer.algorithm.signature_algorithm() {
        f.push("signature algorithm differs from the issuer key's".into());
    }
    match tbs.issuer.to_der() {
        Ok(d) if d == issuer.subject_der => {}
        _ => f.push("issuer name differs from the issuer's subject".into()),
    }
    let (nb, na) = (unix(&tbs.validity.not_before), unix(&tbs.validity.not_after));
    if nb >= na {
        f.push("notBefore is not before notAfter".into());
    }
    if nb < issuer.not_before || na > issuer.not_after {
        f.push("validity is not inside the issuer's".into());
    }
    for t in [&tbs.validity.not_before, &tbs.validity.not_after] {
        let year = t.to_date_time().year();
        match t {
            Time::UtcTime(_) if year >= 2050 => f.push("UTCTime used after 2049".into()),
            Time::GeneralTime(_) if year < 2050 => f.push("GeneralizedTime used before 2050".into()),
            _ => {}
        }
    }
    for rdn in tbs.subject.0.iter() {
        if rdn.0.len() != 1 {
            f.push("multi-valued RDN in subject".into());
        }
        for atv in rdn.0.iter() {
            let want = if atv.oid == rfc4519::C || atv.oid == rfc4519::SERIAL_NUMBER {
                Tag::PrintableString
            } else {
                Tag::Utf8String
            };
            if atv.value.tag() != want {
                f.push(format!(
                    "subject attribute {} is {:?}, not {want:?}",
                    atv.oid,
                    atv.value.tag()
                ));
            }
        }
    }
    let mut seen = HashSet::new();
    for e in tbs.extensions.iter().flatten() {
        if !seen.insert(e.extn_id) {
            f.push(format!("extension {} appears twice", e.extn_id));
        }
    }
}

/// Lints an end-entity TBS against its profile and issuer.
pub fn leaf(tbs: &TbsCertificate, profile: &Profile, issuer: &IssuerFacts<'_>) -> Result<(), LintError> {
    let mut f = Vec::new();
    common(tbs, issuer, &mut f);

    // Subject: only the profile's attributes, in its order; CN always; SERIALNUMBER for persons.
    let order: Vec<_> = profile.dn.iter().map(|a| dn_oid(*a)).collect();
    let mut last = None;
    for atv in tbs.subject.0.iter().flat_map(|r| r.0.iter()) {
        match order.iter().position(|o| *o == atv.oid) {
            None => f.push(format!("subject attribute {} is not in the profile", atv.oid)),
            Some(i) if last.is_some_and(|l| i <= l) => f.push(format!("subject attribute {} out of order", atv.oid)),
            Some(i) => last = Some(i),
        }
    }
    let has = |oid| tbs.subject.0.iter().flat_map(|r| r.0.iter()).any(|a| a.oid == oid);
    if !has(rfc4519::CN) {
        f.push("subject has no CN".into());
    }
    if profile.subject == super::profile::SubjectKind::Person && !has(rfc4519::SERIAL_NUMBER) {
        f.push("subject has no SERIALNUMBER".into());
    }

    let subject_key = keys::algorithm_of_spki(&tbs.subject_public_key_info).map(|a| a.0);
    match subject_key {
        Some(a) if profile.algorithms.contains(&a) => {}
        _ => f.push("subject key algorithm not allowed by the profile".into()),
    }

    let exts: &[x509_cert::ext::Extension] = tbs.extensions.as_deref().unwrap_or_default();
    let find = |oid| exts.iter().find(|e| e.extn_id == oid);
    match find(AuthorityKeyIdentifier::OID).map(|e| AuthorityKeyIdentifier::from_der(e.extn_value.as_bytes())) {
        Some(Ok(aki)) if aki.key_identifier.as_ref().map(|k| k.as_bytes()) == Some(issuer.ski) => {}
        _ => f.push("authorityKeyIdentifier missing or not the issuer's key".into()),
    }
    match find(SubjectKeyIdentifier::OID).map(|e| SubjectKeyIdentifier::from_der(e.extn_value.as_bytes())) {
        Some(Ok(ski)) if ski.0.as_bytes() == build::key_identifier(&tbs.subject_public_key_info) => {}
        _ => f.push("subjectKeyIdentifier missing or not the subject key's".into()),
    }
    match find(KeyUsage::OID) {
        Some(e) if !e.critical => f.push("keyUsage is not critical".into()),
        Some(e) => {
            let want = subject_key.map(|k| build::key_usage(&profile.key_usage, k));
            match KeyUsage::from_der(e.extn_value.as_bytes()) {
                Ok(ku) if Some(ku) == want => {}
                _ => f.push("keyUsage differs from the profile".into()),
            }
        }
        None => f.push("keyUsage missing".into()),
    }
    if find(ExtendedKeyUsage::OID).is_some_and(|e| e.critical != profile.extended_key_usage_critical) {
        f.push("extendedKeyUsage criticality differs from the profile".into());
    }
    match find(ExtendedKeyUsage::OID).map(|e| ExtendedKeyUsage::from_der(e.extn_value.as_bytes())) {
        Some(Ok(eku)) => {
            if !profile.eku_oids.iter().all(|o| eku.0.contains(o)) {
                f.push("extendedKeyUsage lacks a purpose of the profile".into());
            }
            let extra = eku.0.iter().filter(|o| !profile.eku_oids.contains(o)).count();
            let allowed_extra = usize::from(profile.role != super::profile::Presence::Forbidden);
            if extra > allowed_extra
                || eku
                    .0
                    .iter()
                    .filter(|o| !profile.eku_oids.contains(o))
                    .any(|o| !o.to_string().starts_with(&profile.role_prefix))
            {
                f.push("extendedKeyUsage has a purpose the profile does not allow".into());
            }
            if profile.role == super::profile::Presence::Required && extra == 0 {
                f.push("extendedKeyUsage lacks the role".into());
            }
        }
        Some(Err(_)) => f.push("extendedKeyUsage does not decode".into()),
        None if !profile.eku_oids.is_empty() => f.push("extendedKeyUsage missing".into()),
        None => {}
    }
    let wants = [
        (
            x509_cert::ext::pkix::CertificatePolicies::OID,
            !profile.policy_oids.is_empty(),
            "certificatePolicies",
        ),
        (
            x509_cert::ext::pkix::CrlDistributionPoints::OID,
            profile.crl_distribution_point,
            "cRLDistributionPoints",
        ),
        (
            x509_cert::ext::pkix::FreshestCrl::OID,
            profile.freshest_crl,
            "freshestCRL",
        ),
        (
            x509_cert::ext::pkix::AuthorityInfoAccessSyntax::OID,
            profile.authority_info_access,
            "authorityInfoAccess",
        ),
        (OCSP_NOCHECK, profile.ocsp_nocheck, "id-pkix-ocsp-nocheck"),
    ];
    for (oid, want, name) in wants {
        match (find(oid).is_some(), want) {
            (false, true) => f.push(format!("{name} missing")),
            (true, false) => f.push(format!("{name} not in the profile")),
            _ => {}
        }
    }
    let known: HashSet<_> = [
        AuthorityKeyIdentifier::OID,
        SubjectKeyIdentifier::OID,
        KeyUsage::OID,
        ExtendedKeyUsage::OID,
        x509_cert::ext::pkix::SubjectAltName::OID,
    ]
    .into_iter()
    .chain(wants.iter().map(|w| w.0))
    .collect();
    for e in exts {
        if !known.contains(&e.extn_id) {
            f.push(format!("unexpected extension {}", e.extn_id));
        }
        if e.extn_id == x509_cert::ext::pkix::BasicConstraints::OID {
            f.push("end-entity certificate with basicConstraints".into());
        }
    }
    if f.is_empty() { Ok(()) } else { Err(LintError(f)) }
}

/// Lints a CA certificate's TBS (issuing CA under the root, or the root under itself).
pub fn ca(tbs_der: &[u8], issuer: &IssuerFacts<'_>) -> Result<(), LintError> {
    let tbs = TbsCertificate::from_der(tbs_der).map_err(|e| LintError(vec![format!("TBS does not decode: {e}")]))?;
    let mut f = Vec::new();
    common(&tbs, issuer, &mut f);
    let exts = tbs.extensions.clone().unwrap_or_default();
    let bc = exts
        .iter()
        .find(|e| e.extn_id == x509_cert::ext::pkix::BasicConstraints::OID);
    match bc.map(|e| {
        (
            e.critical,
            x509_cert::ext::pkix::BasicConstraints::from_der(e.extn_value.as_bytes()),
        )
    }) {
        Some((true, Ok(b))) if b.ca => {}
        _ => f.push("basicConstraints missing, not critical or not CA".into()),
    }
    let ku = exts.iter().find(|e| e.extn_id == KeyUsage::OID);
    match ku.map(|e| (e.critical, KeyUsage::from_der(e.extn_value.as_bytes()))) {
        Some((true, Ok(k))) if k.key_cert_sign() && k.crl_sign() => {}
        _ => f.push("keyUsage missing, not critical or without keyCertSign and cRLSign".into()),
    }
    if f.is_empty() { Ok(()) } else { Err(LintError(f)) }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use x509_cert::ext::Extension;
    use x509_cert::name::Name;

    use super::*;
    use crate::keys::{Signer, SoftwareKey, new_pkcs8};
    use crate::pki::build::{IssuerUrls, TbsParts};
    use crate::pki::profile::EMBEDDED;
    use crate::pki::subject;

    const NOW: i64 = 1_800_000_000;
    const DAY: i64 = 86_400;

    struct Fixture {
        issuer_name: Vec<u8>,
        issuer_ski: Vec<u8>,
        profile: Profile,
        parts: TbsParts,
    }

    impl Fixture {
        /// An OCSP responder's TBS as the builder makes it, under an issuer valid for ten years.
        fn new() -> Fixture {
            let key = |()| SoftwareKey::from_pkcs8("t", &new_pkcs8(KeyAlgorithm::EcP256).unwrap()).unwrap();
            let (issuer, leaf) = (key(()), key(()));
            let spki_of = |k: &SoftwareKey| spki::SubjectPublicKeyInfoOwned::from_der(k.spki_der()).unwrap();
            let issuer_ski = build::key_identifier(&spki_of(&issuer));
            let (_, text) = EMBEDDED.iter().find(|(n, _)| *n == "ocsp").unwrap();
            let profile = Profile::parse("ocsp", text).unwrap();
            let input = subject::SubjectInput {
                common_name: Some("Test OCSP responder".into()),
                ..Default::default()
            };
            let s = subject::build(&profile, &input, "KZ").unwrap();
            let urls = IssuerUrls {
                ca_issuers: "http://nca.test/ca.cer".into(),
                crl: "http://nca.test/ca.crl".into(),
                delta_crl: "http://nca.test/ca-delta.crl".into(),
                ocsp: "http://nca.test/ocsp".into(),
                cps: "http://nca.test/cps".into(),
            };
            let extensions =
                build::leaf_extensions(&profile, &s, &spki_of(&leaf), KeyAlgorithm::EcP256, &issuer_ski, &urls)
                    .unwrap();
            let issuer_name = Name::from_str("CN=Test Issuing CA").unwrap();
            Fixture {
                issuer_name: issuer_name.to_der().unwrap(),
                issuer_ski,
                profile,
                parts: TbsParts {
                    serial: build::random_serial().unwrap(),
                    signature: KeyAlgorithm::EcP256,
                    issuer: issuer_name,
                    not_before: NOW,
                    not_after: NOW + 90 * DAY,
                    subject: s.name,
                    spki: spki_of(&leaf),
                    extensions,
                },
            }
        }

        fn lint(&self) -> Result<(), LintError> {
            let tbs = build::tbs(TbsParts {
                serial: self.parts.serial.clone(),
                signature: self.parts.signature,
                issuer: self.parts.issuer.clone(),
                not_before: self.parts.not_before,
                not_after: self.parts.not_after,
                subject: self.parts.subject.clone(),
                spki: self.parts.spki.clone(),
                extensions: self.parts.extensions.clone(),
            })
            .unwrap();
            leaf(&tbs, &self.profile, &self.facts())
        }

        fn facts(&self) -> IssuerFacts<'_> {
            IssuerFacts {
                subject_der: &self.issuer_name,
                ski: &self.issuer_ski,
                algorithm: KeyAlgorithm::EcP256,
                not_before: NOW - DAY,
                not_after: NOW + 3650 * DAY,
            }
        }
    }

    /// The findings of `f` after `change`, which must include `want`.
    fn refused(change: impl FnOnce(&mut Fixture), want: &str) {
        let mut f = Fixture::new();
        change(&mut f);
        let findings = f.lint().expect_err("the linter let it through").0;
        assert!(
            findings.iter().any(|x| x.contains(want)),
            "{want:?} not in {findings:?}"
        );
    }

    #[test]
    fn the_builder_s_certificate_passes() {
        Fixture::new().lint().unwrap();
    }

    #[test]
    fn each_fault_is_refused_with_its_finding() {
        refused(|f| f.parts.serial = vec![0x01; 8], "fewer than 64 random bits");
        refused(
            |f| f.parts.signature = KeyAlgorithm::Rsa2048,
            "signature algorithm differs",
        );
        refused(
            |f| f.parts.issuer = Name::from_str("CN=Someone Else").unwrap(),
            "issuer name differs",
        );
        refused(
            |f| f.parts.not_after = f.parts.not_before,
            "notBefore is not before notAfter",
        );
        refused(|f| f.parts.not_after = NOW + 4000 * DAY, "not inside the issuer's");
        refused(
            |f| f.parts.subject = Name::from_str("O=No Common Name").unwrap(),
            "subject has no CN",
        );
        refused(
            |f| f.parts.extensions.retain(|e| e.extn_id != KeyUsage::OID),
            "keyUsage missing",
        );
        refused(
            |f| {
                for e in &mut f.parts.extensions {
                    if e.extn_id == KeyUsage::OID {
                        e.critical = false;
                    }
                }
            },
            "keyUsage is not critical",
        );
        refused(
            |f| f.parts.extensions.retain(|e| e.extn_id != OCSP_NOCHECK),
            "id-pkix-ocsp-nocheck missing",
        );
        refused(
            |f| {
                let bc = x509_cert::ext::pkix::BasicConstraints {
                    ca: false,
                    path_len_constraint: None,
                };
                f.parts.extensions.push(Extension {
                    extn_id: x509_cert::ext::pkix::BasicConstraints::OID,
                    critical: true,
                    extn_value: der::asn1::OctetString::new(bc.to_der().unwrap()).unwrap(),
                });
            },
            "end-entity certificate with basicConstraints",
        );
        refused(
            |f| {
                let twice = f.parts.extensions[0].clone();
                f.parts.extensions.push(twice);
            },
            "appears twice",
        );
        refused(
            |f| f.issuer_ski = vec![0; 20],
            "authorityKeyIdentifier missing or not the issuer's key",
        );
    }

    #[test]
    fn bytes_that_are_not_a_tbs_are_refused() {
        // A leaf is linted on the structure that was built (nothing to decode); a CA certificate
        // still arrives as DER, and bytes that are not one are refused.
        let f = Fixture::new();
        assert!(ca(&[], &f.facts()).is_err());
        assert!(ca(b"\x30\x03\x02\x01", &f.facts()).is_err());
    }
}

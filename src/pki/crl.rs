//! Full and delta CRLs (RFC 5280 §5), one number sequence per issuer shared by both.
//!
//! The revoked list is encoded by hand, entry by entry, straight from the database rows: a full
//! CRL of a million entries is one pass and one buffer, not a million allocated structures.
//! This encoder stays hand-written on purpose (issue #18): rcgen and x509-cert's `CertificateList`
//! both hold every revoked entry as a structure before encoding, so neither can stream.
//! Everything around the list (names, extensions) uses the `der` types.

use const_oid::{AssociatedOid, ObjectIdentifier};
use der::Encode;
use der::asn1::{Ia5String, OctetString};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::crl::dp::{DistributionPoint, IssuingDistributionPoint};
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber, FreshestCrl};

use super::build::{self, BuildError};
use super::{Ca, Issuer, revocation};
use crate::keys::{self, KeyStoreError};
use crate::store::{CrlRecord, StoreError, now};

pub const DELTA_CRL_INDICATOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.27");
pub const ISSUING_DISTRIBUTION_POINT: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.28");
const REASON_CODE: [u8; 3] = [0x55, 0x1d, 0x15];
const INVALIDITY_DATE: [u8; 3] = [0x55, 0x1d, 0x18];

/// Full CRL lifetime: published every 24 h, valid 48 h (a missed run does not break relying
/// parties). Delta: published at least hourly, valid 90 min. Each CRL's successor is out well
/// before its nextUpdate (RFC 5280 §5.1.2.5): a relying party never holds only an expired one.
/// `every_crl_is_outlived_by_its_successor` below keeps that true when these change.
pub const FULL_EVERY: i64 = 24 * 3600;
pub const FULL_VALID: i64 = 48 * 3600;
pub const DELTA_EVERY: i64 = 3600;
pub const DELTA_VALID: i64 = 5400;
/// The root signs rarely: its CRL is valid 30 days, renewed when a week of that is left.
pub const ROOT_VALID: i64 = 30 * 86_400;
pub const ROOT_RENEW_BEFORE: i64 = 7 * 86_400;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlKind {
    Full,
    Delta,
}

impl CrlKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CrlKind::Full => "full",
            CrlKind::Delta => "delta",
        }
    }
}

/// Why a CRL was not published.
#[derive(Debug, thiserror::Error)]
pub enum CrlError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    KeyStore(#[from] KeyStoreError),
    #[error(transparent)]
    Build(#[from] BuildError),
    /// No CA of that id.
    #[error("no CA {0:?}")]
    UnknownIssuer(String),
    /// A delta CRL of the root was asked for: the root publishes full CRLs only (it signs
    /// rarely, and its CRL names no delta).
    #[error("the root CA publishes no delta CRLs")]
    NoRootDelta,
}

/// DER tag-length-value.
fn tlv(tag: u8, content: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes = n.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
}

/// UTCTime through 2049, GeneralizedTime after, as RFC 5280 wants for CRL dates.
fn time_der(unix: i64, out: &mut Vec<u8>) -> Result<(), BuildError> {
    let t = build::x509_time(unix)?;
    t.encode_to_vec(out).map(|_| ()).map_err(|e| BuildError {
        what: "CRL time",
        message: e.to_string(),
    })
}

fn generalized_time_der(unix: i64) -> Vec<u8> {
    let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let s = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let mut v = Vec::with_capacity(17);
    tlv(0x18, s.as_bytes(), &mut v);
    v
}

/// One revokedCertificates entry, written straight into `out`: a full CRL writes a million of
/// these, so nothing here allocates.
fn entry(
    serial_hex: &str,
    date: i64,
    reason: u8,
    invalidity: Option<i64>,
    out: &mut Vec<u8>,
) -> Result<(), BuildError> {
    let bad = || BuildError {
        what: "serial",
        message: format!("{serial_hex:?} is not a serial"),
    };
    // DER INTEGER content: the bytes, with a 0x00 in front when the top bit is set.
    let mut serial = [0u8; 22];
    let n = serial_hex.len() / 2;
    if !serial_hex.len().is_multiple_of(2) || n == 0 || n > 21 {
        return Err(bad());
    }
    hex::decode_to_slice(serial_hex, &mut serial[1..=n]).map_err(|_| bad())?;
    let serial = if serial[1] & 0x80 != 0 {
        &serial[..=n]
    } else {
        &serial[1..=n]
    };
    let mut date_der = [0u8; 17];
    let date_len = {
        let time_err = |e: der::Error| BuildError {
            what: "CRL time",
            message: e.to_string(),
        };
        let t = build::x509_time(date)?;
        let mut w = der::SliceWriter::new(&mut date_der);
        der::Encode::encode(&t, &mut w).map_err(time_err)?;
        w.finish().map_err(time_err)?.len()
    };
    // Extensions: reasonCode (absent for unspecified, RFC 5280 §5.3.1) and invalidityDate.
    let reason_len = if reason != 0 { 12 } else { 0 }; // 30 0a 06 03 55 1d 15 04 03 0a 01 rr
    // 30 18 06 03 55 1d 18 04 11 18 0f + 15 digits: the extension's SEQUENCE holds 24 octets.
    let inv_len = if invalidity.is_some() { 26 } else { 0 };
    let exts_len = reason_len + inv_len;
    let body_len = 2 + serial.len() + date_len + if exts_len > 0 { 2 + exts_len } else { 0 };
    out.reserve(2 + body_len);
    out.extend_from_slice(&[0x30, body_len as u8, 0x02, serial.len() as u8]);
    out.extend_from_slice(serial);
    out.extend_from_slice(&date_der[..date_len]);
    if exts_len > 0 {
        out.extend_from_slice(&[0x30, exts_len as u8]);
        if reason != 0 {
            out.extend_from_slice(&[0x30, 0x0a, 0x06, 0x03]);
            out.extend_from_slice(&REASON_CODE);
            out.extend_from_slice(&[0x04, 0x03, 0x0a, 0x01, reason]);
        }
        if let Some(inv) = invalidity {
            out.extend_from_slice(&[0x30, 0x18, 0x06, 0x03]);
            out.extend_from_slice(&INVALIDITY_DATE);
            out.extend_from_slice(&[0x04, 0x11]);
            out.extend_from_slice(&generalized_time_der(inv));
        }
    }
    Ok(())
}

fn ext<T: AssociatedOid + Encode>(v: &T, critical: bool) -> Result<Extension, BuildError> {
    let err = |e: der::Error| BuildError {
        what: "CRL extension",
        message: e.to_string(),
    };
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(v.to_der().map_err(err)?).map_err(err)?,
    })
}

fn uri_dp(url: &str) -> Result<DistributionPointName, BuildError> {
    let uri = Ia5String::new(url).map_err(|e| BuildError {
        what: "URI",
        message: e.to_string(),
    })?;
    Ok(DistributionPointName::FullName(vec![
        GeneralName::UniformResourceIdentifier(uri),
    ]))
}

/// What a CRL says about who issued it and what it covers.
pub struct Scope<'a> {
    pub algorithm: crate::keys::KeyAlgorithm,
    pub issuer_der: &'a [u8],
    pub ski: &'a [u8],
    /// The issuing distribution point: the full CRL's URL, named by full and delta alike.
    /// `None` for the root's CRL, which covers every certificate the root signed, itself
    /// included: the root certificate has no distribution point to match (OpenSSL refuses a CRL
    /// whose scope a certificate does not fall in).
    pub distribution_point: Option<&'a str>,
    /// Where the deltas are (freshestCRL, on full CRLs only). `None` for the root, which
    /// publishes none: a relying party told of a delta it cannot fetch fails every path.
    pub freshest: Option<&'a str>,
}

impl Scope<'_> {
    fn of(issuer: &Issuer, is_root: bool) -> Scope<'_> {
        Scope {
            algorithm: issuer.algorithm(),
            issuer_der: &issuer.subject_der,
            ski: &issuer.ski,
            distribution_point: (!is_root).then_some(issuer.urls.crl.as_str()),
            freshest: (!is_root).then_some(issuer.urls.delta_crl.as_str()),
        }
    }
}

/// One revoked certificate as the CRL lists it: what [`encode_entry`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    pub serial_hex: &'a str,
    pub date: i64,
    pub reason: u8,
    pub invalidity: Option<i64>,
}

/// Appends one revokedCertificates entry to `list` (exposed for the encode → parse round trip
/// the fuzzer and the tests run).
pub fn encode_entry(e: &Entry<'_>, list: &mut Vec<u8>) -> Result<(), BuildError> {
    entry(e.serial_hex, e.date, e.reason, e.invalidity, list)
}

/// Builds the TBSCertList DER: `list` is the revokedCertificates content, `base` the base CRL
/// number of a delta.
pub fn tbs(
    scope: &Scope<'_>,
    number: i64,
    this_update: i64,
    next_update: i64,
    list: &[u8],
    base: Option<i64>,
) -> Result<Vec<u8>, BuildError> {
    let err = |e: der::Error| BuildError {
        what: "CRL",
        message: e.to_string(),
    };
    let mut body = Vec::with_capacity(list.len() + 1024);
    tlv(0x02, &[1], &mut body); // version v2
    scope
        .algorithm
        .signature_algorithm()
        .encode_to_vec(&mut body)
        .map_err(err)?;
    body.extend_from_slice(scope.issuer_der);
    time_der(this_update, &mut body)?;
    time_der(next_update, &mut body)?;
    if !list.is_empty() {
        tlv(0x30, list, &mut body);
    }
    // The IDP names the full CRL in both: OpenSSL pairs a delta with its base only when their
    // IDP extensions are identical.
    let mut exts = vec![
        ext(
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(scope.ski.to_vec()).map_err(err)?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
            false,
        )?,
        ext(
            &CrlNumber(der::asn1::Uint::new(&number.to_be_bytes()).map_err(err)?),
            false,
        )?,
    ];
    if let Some(idp) = scope.distribution_point {
        exts.push(
            // Built by hand: x509-cert 0.2.5 gives IssuingDistributionPoint the OID of
            // subjectInfoAccess.
            Extension {
                extn_id: ISSUING_DISTRIBUTION_POINT,
                critical: true,
                extn_value: OctetString::new(
                    IssuingDistributionPoint {
                        distribution_point: Some(uri_dp(idp)?),
                        only_contains_user_certs: false,
                        only_contains_ca_certs: false,
                        only_some_reasons: None,
                        indirect_crl: false,
                        only_contains_attribute_certs: false,
                    }
                    .to_der()
                    .map_err(err)?,
                )
                .map_err(err)?,
            },
        );
    }
    match (base, scope.freshest) {
        (Some(b), _) => exts.push(Extension {
            extn_id: DELTA_CRL_INDICATOR,
            critical: true,
            extn_value: OctetString::new(
                der::asn1::Uint::new(&b.to_be_bytes())
                    .map_err(err)?
                    .to_der()
                    .map_err(err)?,
            )
            .map_err(err)?,
        }),
        (None, Some(freshest)) => exts.push(ext(
            &FreshestCrl(vec![DistributionPoint {
                distribution_point: Some(uri_dp(freshest)?),
                reasons: None,
                crl_issuer: None,
            }]),
            false,
        )?),
        (None, None) => {}
    }
    let mut ext_seq = Vec::new();
    for e in &exts {
        e.encode_to_vec(&mut ext_seq).map_err(err)?;
    }
    let mut wrapped = Vec::new();
    tlv(0x30, &ext_seq, &mut wrapped);
    tlv(0xa0, &wrapped, &mut body);
    let mut out = Vec::with_capacity(body.len() + 8);
    tlv(0x30, &body, &mut out);
    Ok(out)
}

impl Ca {
    /// Generates, signs, records and returns a CRL of `issuer_id`, published at `now()`. A delta
    /// needs a full CRL to be its base; when there is none, a full CRL is published first.
    /// `actor` asked for it (the publisher's schedule is the service's).
    pub async fn publish_crl(
        &self,
        issuer_id: &str,
        kind: CrlKind,
        actor: &crate::model::Actor,
    ) -> Result<CrlRecord, CrlError> {
        self.publish_crl_under(issuer_id, kind, actor, None).await
    }

    /// [`Ca::publish_crl`] as the publishing duty: recorded only while `fence` still holds it.
    pub async fn publish_crl_under(
        &self,
        issuer_id: &str,
        kind: CrlKind,
        actor: &crate::model::Actor,
        fence: Option<&crate::store::Fence>,
    ) -> Result<CrlRecord, CrlError> {
        let issuer = self
            .issuer(issuer_id)
            .ok_or_else(|| CrlError::UnknownIssuer(issuer_id.to_string()))?;
        let is_root = issuer.id == self.root.id;
        if is_root && kind == CrlKind::Delta {
            return Err(CrlError::NoRootDelta);
        }
        let t = now();
        let mut list = Vec::new();
        let (count, base) = match kind {
            CrlKind::Full => {
                let n = self
                    .store
                    .for_each_crl_entry(&issuer.id, t, |serial, at, reason, invalidity| {
                        entry(serial, at, reason, invalidity, &mut list).map_err(|e| e.to_string())
                    })
                    .await?;
                (n, None)
            }
            CrlKind::Delta => {
                let base = match self.store.latest_crl(&issuer.id, "full").await? {
                    Some(b) => b,
                    None => Box::pin(self.publish_crl_under(issuer_id, CrlKind::Full, actor, fence)).await?,
                };
                let changed = self
                    .store
                    .revocations_changed_since(&issuer.id, base.this_update)
                    .await?;
                let mut n = 0;
                for r in &changed {
                    match (r.listed_at(base.this_update), r.listed_at(t)) {
                        (false, true) => {}
                        // A hold made final: listed in both, changed since the base.
                        (true, true) if r.recorded_at >= base.this_update => {}
                        // Listed in the base, and now lifted: tell relying parties to drop it.
                        (true, false) if r.lifted_at.is_some() => {
                            entry(
                                &r.serial,
                                r.lifted_at.unwrap_or(t),
                                revocation::REMOVE_FROM_CRL,
                                None,
                                &mut list,
                            )?;
                            n += 1;
                            continue;
                        }
                        _ => continue,
                    }
                    entry(&r.serial, r.revoked_at, r.reason, r.invalidity_date, &mut list)?;
                    n += 1;
                }
                (n, Some(base))
            }
        };
        let number = self.store.next_crl_number(&issuer.id).await?;
        let next = t + match (&base, is_root) {
            (Some(_), _) => DELTA_VALID,
            (None, true) => ROOT_VALID,
            (None, false) => FULL_VALID,
        };
        let tbs = tbs(
            &Scope::of(issuer, is_root),
            number,
            t,
            next,
            &list,
            base.as_ref().map(|b| b.number),
        )?;
        drop(list);
        let sig = keys::sign(&issuer.signer, tbs.clone()).await?;
        let der = build::assemble(&tbs, issuer.algorithm(), &sig)?;
        let record = CrlRecord {
            issuer: issuer.id.clone(),
            number,
            kind: kind.as_str().into(),
            base_number: base.as_ref().map(|b| b.number),
            this_update: t,
            next_update: next,
            entries: count as i64,
            der,
        };
        self.store.add_crl(&record, actor, fence).await?;
        tracing::info!(target: "audit", "crl published: issuer=[{}] kind=[{}] number=[{number}] entries=[{count}]",
            issuer.id, kind.as_str());
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5280 §5.1.2.5: a CRL's successor is out before its nextUpdate, with room for the
    /// publisher's polling tick, for every kind of CRL; so a relying party never holds only an
    /// expired one.
    #[test]
    fn every_crl_is_outlived_by_its_successor() {
        let tick = crate::publisher::TICK.as_secs() as i64;
        for (kind, valid, every) in [
            ("full", FULL_VALID, FULL_EVERY),
            ("delta", DELTA_VALID, DELTA_EVERY),
            ("root", ROOT_VALID, ROOT_VALID - ROOT_RENEW_BEFORE),
        ] {
            assert!(
                valid > every + tick,
                "{kind}: valid {valid} s, published every {every} s"
            );
        }
    }

    use der::Decode;
    use x509_cert::crl::{CertificateList, TbsCertList};
    use x509_cert::ext::pkix::CrlReason;

    use crate::keys::{KeyAlgorithm, Signer, SoftwareKey, new_pkcs8};

    const NOW: i64 = 1_800_000_000;

    fn issuer_name() -> Vec<u8> {
        use std::str::FromStr;
        x509_cert::name::Name::from_str("CN=Test Issuing CA")
            .unwrap()
            .to_der()
            .unwrap()
    }

    fn scope<'a>(name: &'a [u8], root: bool) -> Scope<'a> {
        Scope {
            algorithm: KeyAlgorithm::EcP256,
            issuer_der: name,
            ski: &[7; 20],
            distribution_point: (!root).then_some("http://nca.test/crl/issuing.crl"),
            freshest: (!root).then_some("http://nca.test/crl/issuing-delta.crl"),
        }
    }

    fn entries(list: &[Entry<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        for e in list {
            encode_entry(e, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn a_full_crl_decodes_with_its_entries_extensions_and_a_signature_that_verifies() {
        let name = issuer_name();
        let list = entries(&[
            Entry {
                serial_hex: "01",
                date: NOW - 60,
                reason: 0,
                invalidity: None,
            },
            // Top bit set: the integer gets a leading zero and stays positive.
            Entry {
                serial_hex: "ff00aa",
                date: NOW - 30,
                reason: 1,
                invalidity: Some(NOW - 3600),
            },
        ]);
        let der = tbs(&scope(&name, false), 42, NOW, NOW + FULL_VALID, &list, None).unwrap();
        let t = TbsCertList::from_der(&der).unwrap();
        assert_eq!(t.version, x509_cert::Version::V2);
        assert_eq!(t.signature, KeyAlgorithm::EcP256.signature_algorithm());
        assert_eq!(t.issuer.to_der().unwrap(), name);
        assert_eq!(t.this_update.to_unix_duration().as_secs() as i64, NOW);
        assert_eq!(
            t.next_update.unwrap().to_unix_duration().as_secs() as i64,
            NOW + FULL_VALID
        );
        let revoked = t.revoked_certificates.as_ref().unwrap();
        assert_eq!(revoked.len(), 2);
        assert_eq!(revoked[0].serial_number.as_bytes(), [0x01]);
        assert!(
            revoked[0].crl_entry_extensions.is_none(),
            "unspecified has no reasonCode"
        );
        assert_eq!(revoked[1].serial_number.as_bytes(), [0x00, 0xff, 0x00, 0xaa]);
        let exts = revoked[1].crl_entry_extensions.as_ref().unwrap();
        assert_eq!(
            CrlReason::from_der(exts[0].extn_value.as_bytes()).unwrap(),
            CrlReason::KeyCompromise
        );
        let inv = der::asn1::GeneralizedTime::from_der(exts[1].extn_value.as_bytes()).unwrap();
        assert_eq!(inv.to_unix_duration().as_secs() as i64, NOW - 3600);

        let exts = t.crl_extensions.as_ref().unwrap();
        let find = |oid| exts.iter().find(|e| e.extn_id == oid);
        let number = CrlNumber::from_der(find(CrlNumber::OID).unwrap().extn_value.as_bytes()).unwrap();
        assert_eq!(number.0.as_bytes(), [42]);
        let idp = find(ISSUING_DISTRIBUTION_POINT).unwrap();
        assert!(idp.critical);
        let idp = IssuingDistributionPoint::from_der(idp.extn_value.as_bytes()).unwrap();
        assert!(matches!(
            idp.distribution_point,
            Some(DistributionPointName::FullName(ref n))
                if matches!(&n[0], GeneralName::UniformResourceIdentifier(u) if u.as_str() == "http://nca.test/crl/issuing.crl")
        ));
        assert!(find(FreshestCrl::OID).is_some(), "a full CRL points at its deltas");
        assert!(find(DELTA_CRL_INDICATOR).is_none());

        // Signed as the CA signs it; verified by ring on the decoded list's bytes.
        let key = SoftwareKey::from_pkcs8("t", &new_pkcs8(KeyAlgorithm::EcP256).unwrap()).unwrap();
        let sig = key.sign_blocking(&der).unwrap();
        let crl = build::assemble(&der, KeyAlgorithm::EcP256, &sig).unwrap();
        let crl = CertificateList::from_der(&crl).unwrap();
        assert_eq!(crl.tbs_cert_list.to_der().unwrap(), der);
        let spki = spki::SubjectPublicKeyInfoOwned::from_der(key.spki_der()).unwrap();
        let verifier = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            spki.subject_public_key.raw_bytes(),
        );
        assert!(verifier.verify(&der, crl.signature.raw_bytes()).is_ok());
    }

    #[test]
    fn a_delta_names_its_base_and_the_root_s_crl_has_no_scope_to_match() {
        let name = issuer_name();
        let delta = tbs(&scope(&name, false), 43, NOW, NOW + DELTA_VALID, &[], Some(42)).unwrap();
        let t = TbsCertList::from_der(&delta).unwrap();
        assert!(
            t.revoked_certificates.is_none(),
            "an empty list is left out, not an empty SEQUENCE"
        );
        let exts = t.crl_extensions.unwrap();
        let indicator = exts.iter().find(|e| e.extn_id == DELTA_CRL_INDICATOR).unwrap();
        assert!(indicator.critical);
        assert_eq!(
            der::asn1::Uint::from_der(indicator.extn_value.as_bytes())
                .unwrap()
                .as_bytes(),
            [42]
        );
        assert!(
            !exts.iter().any(|e| e.extn_id == FreshestCrl::OID),
            "a delta does not point at deltas"
        );
        assert!(
            exts.iter().any(|e| e.extn_id == ISSUING_DISTRIBUTION_POINT),
            "the same IDP as its base"
        );

        let root = tbs(&scope(&name, true), 1, NOW, NOW + ROOT_VALID, &[], None).unwrap();
        let exts = TbsCertList::from_der(&root).unwrap().crl_extensions.unwrap();
        let oids: Vec<_> = exts.iter().map(|e| e.extn_id).collect();
        assert_eq!(oids, [AuthorityKeyIdentifier::OID, CrlNumber::OID]);
    }

    #[test]
    fn a_serial_that_is_not_one_is_refused() {
        let mut out = Vec::new();
        for bad in ["", "0", "zz", &"ab".repeat(22)] {
            let e = Entry {
                serial_hex: bad,
                date: NOW,
                reason: 0,
                invalidity: None,
            };
            assert!(encode_entry(&e, &mut out).is_err(), "{bad:?}");
        }
        assert!(out.is_empty(), "a refused entry writes nothing");
    }
}

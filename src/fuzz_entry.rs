//! One entry point per parser that faces the outside, shared by the cargo-fuzz targets in
//! `fuzz/` and by the replay of their corpora in the regular test suite (stable toolchain). Each
//! takes any bytes, must never panic on them, and panics only where an invariant of ours breaks
//! (an answer the code promises never to give, a CRL that does not read back as written).
//!
//! It is a test oracle, not service code: a broken invariant is reported by panicking (`expect`
//! naming it), which is what the fuzzer and the replay look for.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::OnceLock;

use der::Decode;

use crate::ids::{Bin, Iin};
use crate::pki::profile::Profiles;
use crate::pki::{cms, crl, csr, ocsp, policy, subject};
use crate::registry::{Organization, Person, read_answer};
use crate::workflow::application::{ApplicationRequest, FieldError};

/// The built-in profiles (the fuzzer has no configuration directory).
fn profiles() -> &'static Profiles {
    static P: OnceLock<Profiles> = OnceLock::new();
    P.get_or_init(|| {
        Profiles::load(std::path::Path::new("/nonexistent")).unwrap_or_else(|e| panic!("built-in profiles: {e}"))
    })
}

/// A PKCS#10 request as `POST /api/v1/applications` and the admin API take it: parsed, its key
/// judged against each end-entity profile, its proof of possession checked once a profile
/// takes the key.
pub fn csr(data: &[u8]) {
    let Ok(parsed) = csr::parse(data) else {
        return;
    };
    let p = profiles();
    let mut accepted = false;
    for name in ["individual-auth", "individual-sign", "legal-auth", "legal-sign"] {
        if let Some(profile) = p.get(name) {
            accepted |= policy::judge_key(&parsed.spki, profile).is_ok();
        }
    }
    if accepted {
        let _ = parsed.check_possession();
    }
}

/// A CMS SignedData as the signed requests (P2, P3) and the operators' confirmations arrive:
/// read attached and detached, then checked against a certificate the message carries whose
/// serial is the signer's (the service takes the certificate from its records instead; here
/// the message's own lets the fuzzer reach the signature check). Any signing time is taken, so
/// that the signature is checked too.
pub fn cms(data: &[u8]) {
    let _ = cms::content_of(data);
    for detached in [None, Some(&b"detached content"[..])] {
        let Ok(signed) = cms::read(data, detached) else {
            continue;
        };
        let signer = signed
            .certificates()
            .find(|c| hex::encode(c.tbs_certificate.serial_number.as_bytes()) == signed.serial)
            .cloned();
        if let Some(cert) = signer {
            let _ = cms::check(&signed, &cert, i64::MAX / 4, 0);
        }
    }
}

/// An OCSP request (POST body, or the DER of a GET): every request the responder takes has a
/// certificate to answer for and a nonce of 1 to 32 octets, if any.
pub fn ocsp_request(data: &[u8]) {
    if let Ok(r) = ocsp::read_request(data) {
        assert!(data.len() <= ocsp::MAX_REQUEST_BYTES);
        assert!(!r.request.tbs_request.request_list.is_empty());
        if let Some(n) = &r.nonce {
            let v = der::asn1::OctetString::from_der(n.extn_value.as_bytes()).expect("checked nonce decodes");
            assert!((1..=ocsp::MAX_NONCE_BYTES).contains(&v.as_bytes().len()));
        }
    }
}

/// The JSON of `POST /api/v1/applications`: deserialised as the portal does, the field named
/// in an error, then the checks made before anything is recorded (IIN, BIN, e-mail, the subject
/// the certificates would carry, the CSRs).
pub fn application_json(data: &[u8]) {
    let req: ApplicationRequest = match serde_json::from_slice(data) {
        Ok(r) => r,
        Err(e) => {
            let _ = FieldError::from_json(&e);
            return;
        }
    };
    let _ = Iin::parse(&req.applicant.iin);
    if let Some(o) = &req.organization {
        let _ = Bin::parse(&o.bin);
    }
    if let Some(email) = &req.applicant.email {
        let _ = email.parse::<lettre::message::Mailbox>();
    }
    let profile = if req.organization.is_some() {
        "legal-auth"
    } else {
        "individual-auth"
    };
    if let Some(profile) = profiles().get(profile) {
        let a = &req.applicant;
        let input = subject::SubjectInput {
            iin: Some(a.iin.clone()),
            surname: Some(a.surname.clone()),
            name: Some(a.name.clone()),
            patronymic: a.patronymic.clone(),
            email: a.email.clone(),
            bin: req.organization.as_ref().map(|o| o.bin.clone()),
            org: req.organization.as_ref().map(|o| o.name.clone()),
            role: req.organization.as_ref().map(|o| o.role.clone()),
            ..Default::default()
        };
        let _ = subject::build(profile, &input, "KZ");
    }
    if let Some(pair) = &req.requests {
        let _ = csr::parse(pair.auth.as_bytes());
        let _ = csr::parse(pair.sign.as_bytes());
    }
}

/// The state registry gateway's answer: the first byte picks the HTTP status (200, 404, or an
/// error), the rest is the body. A 404 is the only "not found"; everything but a well-formed
/// 200 or a 404 is "unavailable".
pub fn registry_answer(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let status = match first % 4 {
        0 | 1 => 200,
        2 => 404,
        _ => 500 + u16::from(first >> 2),
    };
    let person = read_answer::<Person>(status, body);
    let org = read_answer::<Organization>(status, body);
    for found in [person.as_ref().map(Option::is_none), org.as_ref().map(Option::is_none)] {
        match (status, found) {
            (404, r) => assert!(matches!(r, Ok(true))),
            (200, Ok(none)) => assert!(!none),
            (_, r) => assert!(r.is_err()),
        }
    }
    if let Ok(Some(p)) = person {
        let _ = crate::registry::names_match(&p.surname, &p.name);
        let _ = Iin::parse(&p.iin);
    }
}

/// Reads fuzz bytes as the revoked entries of a CRL, writes the CRL with the publisher's own
/// encoder, decodes it with an independent one (`x509-cert`) and asserts that it reads back
/// exactly as written: serials, dates, reasons, invalidity dates, number and times.
pub fn crl_round_trip(data: &[u8]) {
    let mut bytes = data.iter().copied();
    let mut next = || bytes.next();
    let (Some(flags), Some(n0), Some(n1)) = (next(), next(), next()) else {
        return;
    };
    let number = i64::from(u16::from_be_bytes([n0, n1])) + 1;
    let mut serials = Vec::new();
    let mut rows = Vec::new();
    while let Some(len) = next() {
        let len = usize::from(len % 20) + 1;
        let mut serial = Vec::with_capacity(len);
        for _ in 0..len {
            serial.push(next().unwrap_or(0x5a));
        }
        // Stored serials carry no leading zero octet (`normalise_serial`).
        if serial[0] == 0 {
            serial[0] = 1;
        }
        let word = [0u8; 9].map(|_| next().unwrap_or(0));
        let date = i64::from(u32::from_be_bytes([word[0], word[1], word[2], word[3]]));
        let reason_byte = word[4];
        // 7 is unused in CRLReason.
        let reason = match reason_byte % 11 {
            7 => 0,
            r => r,
        };
        let invalidity =
            (reason_byte & 0x80 != 0).then(|| i64::from(u32::from_be_bytes([word[5], word[6], word[7], word[8]])));
        serials.push(hex::encode(&serial));
        rows.push((date, reason, invalidity));
    }
    let mut list = Vec::new();
    for (serial, (date, reason, invalidity)) in serials.iter().zip(&rows) {
        let e = crl::Entry {
            serial_hex: serial,
            date: *date,
            reason: *reason,
            invalidity: *invalidity,
        };
        crl::encode_entry(&e, &mut list).expect("every serial of 1 to 20 octets encodes");
    }
    // C=KZ, CN=T
    let issuer = [
        0x30, 0x1a, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x06, 0x13, 0x02, 0x4b, 0x5a, 0x31, 0x0b, 0x30,
        0x09, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x02, 0x43, 0x41,
    ];
    let scope = crl::Scope {
        algorithm: crate::keys::KeyAlgorithm::Rsa2048,
        issuer_der: &issuer[..],
        ski: &[7u8; 20],
        distribution_point: (flags & 1 != 0).then_some("http://127.0.0.1/crl/nca.crl"),
        freshest: (flags & 2 != 0).then_some("http://127.0.0.1/crl/nca-delta.crl"),
    };
    let base = (flags & 4 != 0).then_some(number - 1);
    let this_update = 1_700_000_000 + i64::from(flags) * 86_400 * 365;
    let next_update = this_update + crl::FULL_VALID;
    let tbs = crl::tbs(&scope, number, this_update, next_update, &list, base).expect("a CRL of valid entries encodes");
    let parsed = x509_cert::crl::TbsCertList::from_der(&tbs).expect("our CRL decodes");
    assert_eq!(parsed.this_update.to_unix_duration().as_secs() as i64, this_update);
    assert_eq!(
        parsed.next_update.map(|t| t.to_unix_duration().as_secs() as i64),
        Some(next_update)
    );
    let revoked = parsed.revoked_certificates.unwrap_or_default();
    assert_eq!(revoked.len(), rows.len());
    for (r, (serial, (date, reason, invalidity))) in revoked.iter().zip(serials.iter().zip(&rows)) {
        // DER integer bytes: a 0x00 in front of a serial whose top bit is set.
        let der_serial = match r.serial_number.as_bytes() {
            [0, rest @ ..] if rest.first().is_some_and(|b| b & 0x80 != 0) => rest,
            all => all,
        };
        assert_eq!(&hex::encode(der_serial), serial);
        assert_eq!(r.revocation_date.to_unix_duration().as_secs() as i64, *date);
        let exts = r.crl_entry_extensions.clone().unwrap_or_default();
        let got_reason = exts
            .iter()
            .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_CRL_REASONS)
            .map(|e| x509_cert::ext::pkix::CrlReason::from_der(e.extn_value.as_bytes()).expect("reason decodes") as u8);
        assert_eq!(got_reason, (*reason != 0).then_some(*reason));
        let got_inv = exts
            .iter()
            .find(|e| e.extn_id == const_oid::db::rfc5280::ID_CE_INVALIDITY_DATE)
            .map(|e| {
                der::asn1::GeneralizedTime::from_der(e.extn_value.as_bytes())
                    .expect("invalidity date decodes")
                    .to_unix_duration()
                    .as_secs() as i64
            });
        assert_eq!(got_inv, *invalidity);
    }
    let exts = parsed.crl_extensions.unwrap_or_default();
    let has = |oid| exts.iter().any(|e| e.extn_id == oid);
    assert_eq!(has(crl::DELTA_CRL_INDICATOR), base.is_some());
    assert_eq!(has(crl::ISSUING_DISTRIBUTION_POINT), scope.distribution_point.is_some());
    assert_eq!(
        has(const_oid::db::rfc5280::ID_CE_FRESHEST_CRL),
        base.is_none() && scope.freshest.is_some()
    );
}

/// A fuzz target: any bytes in, a panic only for a broken invariant.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets/` and the corpus directories call them.
pub const TARGETS: [(&str, Target); 6] = [
    ("csr", csr),
    ("cms", cms),
    ("ocsp_request", ocsp_request),
    ("application_json", application_json),
    ("registry_answer", registry_answer),
    ("crl_round_trip", crl_round_trip),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every committed corpus input (seeds, minimised finds and the inputs of fixed crashes) goes
    /// through its target again: what once crashed stays fixed, on the stable toolchain.
    #[test]
    fn every_corpus_input_replays() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        for (name, target) in TARGETS {
            let dir = root.join(name);
            let mut n = 0;
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let run = std::panic::catch_unwind(|| target(&data));
                assert!(run.is_ok(), "{name}: {} panics", path.display());
                n += 1;
            }
            assert!(n > 0, "{name}: empty corpus");
        }
    }
}

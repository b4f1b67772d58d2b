//! OCSP answers signed ahead (issue #16): a revocation in the kept no-nonce answer within 2 s,
//! checked with `openssl ocsp`; the kept answer served while the key store is away (no
//! signature per request) and a nonce request failing then as it always did; answers signed
//! anew before their nextUpdate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use der::Decode;

use crate::harness::*;
use crate::kit::pkcs11::OwnKeyStore;

/// `openssl ocsp` against `url`, no nonce unless asked: its report (stdout and stderr).
pub fn openssl_ocsp(d: &Deployment, url: &str, cert: &Path, nonce: bool) -> String {
    let out = run(Command::new("openssl")
        .args(["ocsp", "-issuer"])
        .arg(d.path("ca/issuing.pem"))
        .arg("-CAfile")
        .arg(d.path("ca/root.pem"))
        .arg("-cert")
        .arg(cert)
        .arg(if nonce { "-nonce" } else { "-no_nonce" })
        .args(["-timeout", "5", "-url", &format!("{url}/ocsp")]));
    format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr))
}

/// The DER request `openssl ocsp` makes for `cert`.
pub fn ocsp_request(d: &Deployment, work: &Path, cert: &Path, nonce: bool) -> PathBuf {
    let req = work.join(if nonce { "nonce.der" } else { "plain.der" });
    run_ok(
        Command::new("openssl")
            .args(["ocsp", "-issuer"])
            .arg(d.path("ca/issuing.pem"))
            .arg("-cert")
            .arg(cert)
            .arg(if nonce { "-nonce" } else { "-no_nonce" })
            .arg("-reqout")
            .arg(&req),
    );
    req
}

/// POSTs a request file to `url/ocsp`: the answer's DER.
pub fn post_ocsp(url: &str, req: &Path) -> Vec<u8> {
    let (status, body) = curl(&[
        "-H",
        "content-type: application/ocsp-request",
        "--data-binary",
        &format!("@{}", req.display()),
        &format!("{url}/ocsp"),
    ]);
    assert_eq!(status, 200);
    body
}

/// (responseStatus, thisUpdate, nextUpdate) of an answer; times in seconds since the epoch.
pub fn answer_times(der: &[u8]) -> (x509_ocsp::OcspResponseStatus, Option<(u64, u64)>) {
    let resp = x509_ocsp::OcspResponse::from_der(der).unwrap();
    let Some(bytes) = resp.response_bytes else {
        return (resp.response_status, None);
    };
    let basic = x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes()).unwrap();
    let single = &basic.tbs_response_data.responses[0];
    let this = single.this_update.0.to_unix_duration().as_secs();
    let next = single.next_update.unwrap().0.to_unix_duration().as_secs();
    (resp.response_status, Some((this, next)))
}

/// Waits until `url` serves the kept answer to `req` (a new certificate is answered live, signed,
/// until the pre-signer took it up): one whose validity is `validity`. Returns it.
pub fn until_kept(url: &str, req: &Path, validity: u64) -> Vec<u8> {
    eventually(10, "the answer signed ahead", || {
        let der = post_ocsp(url, req);
        let (_, times) = answer_times(&der);
        times.is_some_and(|(this, next)| next - this == validity).then_some(der)
    })
}

/// Waits until `url` answers `cert` with `status` (no nonce, `openssl ocsp`, verified); returns
/// how long it took from `from`.
pub fn until_status(d: &Deployment, url: &str, cert: &Path, status: &str, from: Instant, secs: u64) -> Duration {
    let want = format!(": {status}");
    eventually(secs, &format!("OCSP at {url} says {status}"), || {
        let text = openssl_ocsp(d, url, cert, false);
        (text.contains(&want) && text.contains("Response verify OK")).then(|| from.elapsed())
    })
}

#[test]
fn a_revocation_is_in_the_no_nonce_answer_within_2_seconds() {
    let mut d = Deployment::new();
    d.init();
    d.start();
    let work = tempfile::tempdir().unwrap();
    let (cert, _, serial) = d.issue_individual(work.path(), "a", IIN, "ec:P-256");
    let url = d.public.clone();
    until_status(&d, &url, &cert, "good", Instant::now(), 10);
    // The kept answer is a day long, not the live path's hour.
    let req = ocsp_request(&d, work.path(), &cert, false);
    until_kept(&url, &req, 86_400);

    let started = Instant::now();
    let (status, body) = d.admin_post(
        "/api/v1/admin/revocations",
        &format!(r#"{{"serial":"{serial}","reason":"keyCompromise"}}"#),
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let took = until_status(&d, &url, &cert, "revoked", started, 5);
    assert!(took < Duration::from_secs(2), "revoked in OCSP after {took:?}");
    let text = openssl_ocsp(&d, &url, &cert, false);
    assert!(text.contains("Reason: keyCompromise"), "{text}");

    // A hold, then its release: each in the kept answer within 2 s too.
    let (cert, _, serial) = d.issue_individual(work.path(), "b", IIN, "ec:P-256");
    until_status(&d, &url, &cert, "good", Instant::now(), 10);
    let started = Instant::now();
    let (status, _) = d.admin_post(
        "/api/v1/admin/revocations",
        &format!(r#"{{"serial":"{serial}","reason":"certificateHold"}}"#),
    );
    assert_eq!(status, 201);
    let took = until_status(&d, &url, &cert, "revoked", started, 5);
    assert!(took < Duration::from_secs(2), "held in OCSP after {took:?}");
    let started = Instant::now();
    let (status, body) = d.admin_post(
        "/api/v1/admin/revocations",
        &format!(r#"{{"serial":"{serial}","reason":"removeFromCRL"}}"#),
    );
    assert!(
        status == 201 || status == 200,
        "{status} {}",
        String::from_utf8_lossy(&body)
    );
    let took = until_status(&d, &url, &cert, "good", started, 5);
    assert!(took < Duration::from_secs(2), "released in OCSP after {took:?}");
}

#[test]
fn the_kept_answer_is_served_with_the_key_store_away_and_a_nonce_request_fails() {
    let mut d = Deployment::new();
    let keys = OwnKeyStore::new(&d);
    d.init();
    d.start();
    let work = tempfile::tempdir().unwrap();
    let (cert, _, _) = d.issue_individual(work.path(), "a", IIN, "ec:P-256");
    let url = d.public.clone();
    until_status(&d, &url, &cert, "good", Instant::now(), 10);
    let plain = ocsp_request(&d, work.path(), &cert, false);
    let before = until_kept(&url, &plain, 86_400);

    keys.take_away();
    // Nothing can sign now: the no-nonce answer is the kept one, byte for byte, and verifies.
    for _ in 0..3 {
        assert_eq!(post_ocsp(&url, &plain), before, "the kept answer");
    }
    let text = openssl_ocsp(&d, &url, &cert, false);
    assert!(text.contains(": good") && text.contains("Response verify OK"), "{text}");
    // A nonce must be signed: tryLater, as before answers were signed ahead.
    let nonce = ocsp_request(&d, work.path(), &cert, true);
    let (status, _) = answer_times(&post_ocsp(&url, &nonce));
    assert_eq!(status, x509_ocsp::OcspResponseStatus::TryLater);

    keys.give_back();
    let text = eventually(30, "a nonce request is signed again", || {
        let t = openssl_ocsp(&d, &url, &cert, true);
        (t.contains(": good") && t.contains("Response verify OK") && !t.contains("no nonce")).then_some(t)
    });
    assert!(!text.contains("WARNING"), "{text}");
}

#[test]
fn answers_are_signed_anew_before_their_next_update() {
    let mut d = Deployment::new();
    d.env.extend([
        ("NCA_OCSP_PRESIGN_VALIDITY_SECONDS".to_string(), "20".to_string()),
        ("NCA_OCSP_PRESIGN_RENEW_BEFORE_SECONDS".to_string(), "12".to_string()),
        ("NCA_OCSP_PRESIGN_ROUND_SECONDS".to_string(), "1".to_string()),
    ]);
    d.init();
    d.start();
    let work = tempfile::tempdir().unwrap();
    let (cert, _, _) = d.issue_individual(work.path(), "a", IIN, "ec:P-256");
    let url = d.public.clone();
    until_status(&d, &url, &cert, "good", Instant::now(), 10);
    let req = ocsp_request(&d, work.path(), &cert, false);
    let (_, first) = answer_times(&until_kept(&url, &req, 20));
    let (this1, next1) = first.unwrap();
    // Watch the answers served until one of a later thisUpdate comes; every answer seen is
    // before its nextUpdate, and the new one came before the first one's.
    let renewed = eventually(30, "an answer signed anew", || {
        let (status, times) = answer_times(&post_ocsp(&url, &req));
        assert_eq!(status, x509_ocsp::OcspResponseStatus::Successful);
        let (this, next) = times.unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(now < next, "served at {now}, past its nextUpdate {next}");
        (this > this1).then_some((this, now))
    });
    let (this2, seen_at) = renewed;
    assert!(
        seen_at < next1,
        "the new answer came at {seen_at}, the old one held until {next1}"
    );
    assert!(
        this2 >= this1 + 20 - 12 - 1,
        "signed anew at {this2}, before it was due ({})",
        this1 + 8
    );
}

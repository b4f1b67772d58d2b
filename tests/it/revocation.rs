//! Revocation and status: OCSP and CRLs, checked with openssl as the relying party.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;

/// A deployment with its server running and one certificate per named holder.
struct World {
    d: Deployment,
    work: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let mut d = Deployment::new();
        d.init();
        d.start();
        World {
            d,
            work: tempfile::tempdir().unwrap(),
        }
    }

    /// Issues an individual-auth certificate for a holder; returns its PEM path and serial.
    fn issue(&self, name: &str, iin: &str) -> (PathBuf, String) {
        let (pem, _, serial) = self.d.issue_individual(self.work.path(), name, iin, "ec:P-256");
        (pem, serial)
    }

    fn revoke(&self, body: &str) -> (u16, serde_json::Value) {
        let (status, body) = self.d.admin_post("/api/v1/admin/revocations", body);
        (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
    }

    /// `openssl ocsp` against the responder; returns its stdout and stderr together.
    fn ocsp(&self, cert: &Path, extra: &[&str]) -> String {
        // openssl wants the digest before -issuer and -cert, further certificates after.
        let (digest, extra): (Vec<&str>, Vec<&str>) = extra.iter().partition(|a| a.starts_with("-sha"));
        let out = run(Command::new("openssl")
            .arg("ocsp")
            .args(digest)
            .arg("-issuer")
            .arg(self.d.path("ca/issuing.pem"))
            .arg("-cert")
            .arg(cert)
            .args(["-url", &format!("{}/ocsp", self.d.public), "-CAfile"])
            .arg(self.d.path("ca/root.pem"))
            .args(extra));
        format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr))
    }

    /// Downloads a served CRL to a PEM file.
    fn crl(&self, file: &str) -> PathBuf {
        let (status, der) = self.d.get(&format!("/crl/{file}"));
        assert_eq!(status, 200, "{file}");
        let p = self.work.path().join(format!("{file}.der"));
        write(&p, &der);
        let pem = self.work.path().join(format!("{file}.pem"));
        run_ok(
            Command::new("openssl")
                .args(["crl", "-inform", "DER", "-in"])
                .arg(&p)
                .arg("-out")
                .arg(&pem),
        );
        pem
    }

    fn crl_text(&self, file: &str) -> String {
        let pem = self.crl(file);
        stdout(&run_ok(
            Command::new("openssl")
                .args(["crl", "-noout", "-text", "-in"])
                .arg(&pem),
        ))
    }
}

#[test]
fn ocsp_answers_good_then_revoked_for_sha1_and_sha256_cert_ids() {
    let w = World::new();
    let (a, serial) = w.issue("a", IIN);
    let (b, _) = w.issue("b", "000101594515");

    let out = w.ocsp(&a, &[]);
    assert!(out.contains(": good") && out.contains("Response verify OK"), "{out}");
    // The nonce comes back (openssl checks it and warns when it does not).
    let out = w.ocsp(&a, &["-resp_text"]);
    assert!(
        out.contains("OCSP Nonce") && !out.contains("WARNING: no nonce"),
        "{out}"
    );

    let (status, v) = w.revoke(&format!(
        r#"{{"serial":"{}","reason":"keyCompromise"}}"#,
        serial.to_lowercase()
    ));
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["status"], "revoked");
    let first = v["revoked_at"].clone();
    std::thread::sleep(Duration::from_millis(1100));
    // Again, another reason: nothing changes, the first time and reason stand.
    let (status, v) = w.revoke(&format!(r#"{{"serial":"{serial}","reason":"superseded"}}"#));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["changed"], false);
    assert_eq!(v["reason"], "keyCompromise");
    assert_eq!(v["revoked_at"], first);

    for digest in ["-sha1", "-sha256"] {
        let out = w.ocsp(&a, &[digest]);
        assert!(
            out.contains(": revoked") && out.contains("Reason: keyCompromise") && out.contains("Response verify OK"),
            "{digest}: {out}"
        );
        let out = w.ocsp(&b, &[digest]);
        assert!(out.contains(": good"), "{digest}: {out}");
    }
    // Several certificates in one request.
    let out = w.ocsp(&a, &["-cert", &b.display().to_string()]);
    assert!(out.contains("a.pem: revoked") && out.contains("b.pem: good"), "{out}");

    // A serial this CA never issued is unknown; another issuer's certificate is not ours to answer.
    let out = run(Command::new("openssl")
        .args(["ocsp", "-issuer"])
        .arg(w.d.path("ca/issuing.pem"))
        .args([
            "-serial",
            "0x10203040506070809",
            "-url",
            &format!("{}/ocsp", w.d.public),
            "-CAfile",
        ])
        .arg(w.d.path("ca/root.pem")));
    assert!(stdout(&out).contains(": unknown"), "{}", stdout(&out));
    let out = run(Command::new("openssl")
        .args(["ocsp", "-issuer"])
        .arg(w.d.path("ca/root.pem"))
        .arg("-cert")
        .arg(w.d.path("ca/issuing.pem"))
        .args(["-url", &format!("{}/ocsp", w.d.public)]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthorized") || stdout(&out).contains("unauthorized"));

    // Garbage and truncated requests get malformedRequest; nothing breaks.
    for body in ["garbage".as_bytes().to_vec(), vec![0x30, 0x82, 0x01]] {
        let f = w.work.path().join("bad.req");
        write(&f, &body);
        let (status, resp) = curl(&[
            "-H",
            "content-type: application/ocsp-request",
            "--data-binary",
            &format!("@{}", f.display()),
            &format!("{}/ocsp", w.d.public),
        ]);
        assert_eq!(status, 200);
        let r = w.work.path().join("bad.resp");
        write(&r, &resp);
        let text = run(Command::new("openssl")
            .args(["ocsp", "-resp_text", "-noverify", "-respin"])
            .arg(&r));
        let text = format!("{}{}", stdout(&text), String::from_utf8_lossy(&text.stderr));
        assert!(
            text.contains("malformedrequest") || text.contains("malformedRequest"),
            "{text}"
        );
    }

    // GET with the request in the path, base64 then URL-encoded.
    let req = w.work.path().join("get.req");
    run_ok(
        Command::new("openssl")
            .args(["ocsp", "-no_nonce", "-issuer"])
            .arg(w.d.path("ca/issuing.pem"))
            .arg("-cert")
            .arg(&a)
            .arg("-reqout")
            .arg(&req),
    );
    let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, std::fs::read(&req).unwrap());
    let encoded: String = b64
        .chars()
        .map(|c| match c {
            '+' => "%2B".into(),
            '/' => "%2F".into(),
            '=' => "%3D".into(),
            c => c.to_string(),
        })
        .collect();
    let (status, resp) = w.d.get(&format!("/ocsp/{encoded}"));
    assert_eq!(status, 200);
    let r = w.work.path().join("get.resp");
    write(&r, &resp);
    let text = stdout(&run_ok(
        Command::new("openssl")
            .args(["ocsp", "-resp_text", "-CAfile"])
            .arg(w.d.path("ca/root.pem"))
            .arg("-issuer")
            .arg(w.d.path("ca/issuing.pem"))
            .arg("-cert")
            .arg(&a)
            .arg("-respin")
            .arg(&r),
    ));
    assert!(text.contains("Cert Status: revoked"), "{text}");
    let (status, _) = w.d.get("/ocsp/not%20base64%21");
    assert_eq!(status, 200);

    // The responses lint clean.
    let lint = run(Command::new("lint_ocsp_response").args(["lint", "-s", "ERROR"]).arg(&r));
    assert!(stdout(&lint).trim().is_empty(), "{}", stdout(&lint));

    // The certificate status API agrees.
    let (_, body) = w.d.get(&format!("/api/v1/certificates/{serial}"));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "revoked");
    assert_eq!(v["revocation_reason"], "keyCompromise");
}

/// Polls until the served delta CRL lists `serial`; returns the seconds it took.
fn wait_for_delta(w: &World, serial: &str) -> f64 {
    let start = Instant::now();
    loop {
        let text = w.crl_text("nca-delta.crl");
        if text.contains(&format!("Serial Number: {}", serial.to_uppercase())) {
            return start.elapsed().as_secs_f64();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the delta CRL did not list {serial} within 60 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn full_and_delta_crls_reject_the_revoked_and_accept_the_good() {
    let w = World::new();
    let (a, serial) = w.issue("a", IIN);
    let (b, _) = w.issue("b", "000101594515");
    let full_before = w.crl_text("nca.crl");
    assert!(
        full_before.contains("X509v3 Issuing Distribution Point: critical"),
        "{full_before}"
    );
    assert!(full_before.contains("X509v3 Freshest CRL"), "{full_before}");

    // Revoked with the CLI, in another process: the service's publisher still picks it up.
    run_ok(
        &mut w
            .d
            .nca(&["cert", "revoke", &serial.to_uppercase(), "--reason", "key-compromise"]),
    );
    let took = wait_for_delta(&w, &serial);
    assert!(took < 60.0);

    let delta = w.crl_text("nca-delta.crl");
    assert!(delta.contains("Delta CRL Indicator: critical"), "{delta}");
    assert!(delta.contains("Key Compromise"), "{delta}");
    let number = |text: &str, label: &str| -> u64 {
        let i = text.find(label).unwrap_or_else(|| panic!("{label} in {text}"));
        text[i + label.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let full_number = number(&full_before, "X509v3 CRL Number: \n");
    let delta_number = number(&delta, "X509v3 CRL Number: \n");
    let base = number(&delta, "X509v3 Delta CRL Indicator: critical\n");
    assert!(
        delta_number > full_number,
        "numbers shared and increasing: full {full_number}, delta {delta_number}"
    );
    assert_eq!(base, full_number);

    let bundle = w.work.path().join("bundle.pem");
    let mut all = String::new();
    for f in [
        w.d.path("ca/issuing.pem"),
        w.d.path("ca/root.pem"),
        w.crl("nca.crl"),
        w.crl("nca-delta.crl"),
        w.crl("root.crl"),
    ] {
        all.push_str(&std::fs::read_to_string(f).unwrap());
    }
    write(&bundle, all.as_bytes());
    let verify = |cert: &Path| {
        let out = run(Command::new("openssl")
            .args(["verify", "-crl_check_all", "-use_deltas", "-CAfile"])
            .arg(&bundle)
            .arg(cert));
        format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr))
    };
    let out = verify(&a);
    assert!(out.contains("certificate revoked"), "{out}");
    let out = verify(&b);
    assert!(out.contains(": OK"), "{out}");

    // Served with validators; 304 on a matching ETag or a later If-Modified-Since.
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("h");
    let out = run_ok(
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-D"])
            .arg(&headers)
            .arg(format!("{}/crl/nca.crl", w.d.public)),
    );
    assert!(out.status.success());
    let h = std::fs::read_to_string(&headers).unwrap().to_lowercase();
    assert!(
        h.contains("content-type: application/pkix-crl") && h.contains("cache-control: public, max-age="),
        "{h}"
    );
    let etag = h
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .trim()
        .to_string();
    let raw = std::fs::read_to_string(&headers).unwrap();
    let modified = raw
        .lines()
        .find_map(|l| {
            l.split_once(": ")
                .filter(|(k, _)| k.eq_ignore_ascii_case("last-modified"))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap();
    let (status, _) = curl(&[
        "-H",
        &format!("If-None-Match: {etag}"),
        &format!("{}/crl/nca.crl", w.d.public),
    ]);
    assert_eq!(status, 304);
    let (status, _) = curl(&["-H", "If-None-Match: \"other\"", &format!("{}/crl/nca.crl", w.d.public)]);
    assert_eq!(status, 200);
    let (status, _) = curl(&[
        "-H",
        &format!("If-Modified-Since: {modified}"),
        &format!("{}/crl/nca.crl", w.d.public),
    ]);
    assert_eq!(status, 304);
    // A full CRL published now lists it as well; numbers keep increasing.
    let published = stdout(&run_ok(&mut w.d.nca(&["crl", "publish"])));
    let n: u64 = published
        .split("number=[")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n > delta_number, "{published}");
    let root = stdout(&run_ok(&mut w.d.nca(&["crl", "publish", "--root"])));
    assert!(root.contains("issuer=[root]"), "{root}");

    for f in ["nca.crl", "nca-delta.crl", "root.crl"] {
        let lint = run(Command::new("lint_crl")
            .args(["lint", "-t", "CRL", "-p", "PKIX", "-s", "ERROR"])
            .arg(w.crl(f)));
        assert!(stdout(&lint).trim().is_empty(), "{f}: {}", stdout(&lint));
    }

    assert_eq!(w.d.get("/crl/nope.crl").0, 404);
}

#[test]
fn a_hold_is_lifted_with_remove_from_crl_and_a_scheduled_revocation_takes_effect_by_itself() {
    let w = World::new();
    let (a, serial) = w.issue("a", IIN);
    let (b, serial_b) = w.issue("b", "000101594515");

    let (status, v) = w.revoke(&format!(r#"{{"serial":"{serial}","reason":"certificateHold"}}"#));
    assert_eq!((status, v["status"].as_str()), (201, Some("on_hold")), "{v}");
    let out = w.ocsp(&a, &[]);
    assert!(out.contains(": revoked") && out.contains("certificateHold"), "{out}");
    wait_for_delta(&w, &serial);
    // The hold goes into a full CRL, then is lifted: the next delta says removeFromCRL.
    run_ok(&mut w.d.nca(&["crl", "publish"]));
    let (status, v) = w.revoke(&format!(r#"{{"serial":"{serial}","reason":"removeFromCRL"}}"#));
    assert_eq!((status, v["status"].as_str()), (201, Some("hold_lifted")), "{v}");
    let out = w.ocsp(&a, &[]);
    assert!(out.contains(": good"), "{out}");
    let start = Instant::now();
    loop {
        let text = w.crl_text("nca-delta.crl");
        if text.contains("Remove From CRL") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no removeFromCRL in the delta:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Lifting again: there is no hold.
    let (status, v) = w.revoke(&format!(r#"{{"serial":"{serial}","reason":"removeFromCRL"}}"#));
    assert_eq!((status, v["error"]["code"].as_str()), (409, Some("not_on_hold")), "{v}");

    // Scheduled: good until the time, revoked after, with no one acting.
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let at = at.format(&time::format_description::well_known::Rfc3339).unwrap();
    let (status, v) = w.revoke(&format!(
        r#"{{"serial":"{serial_b}","reason":"cessationOfOperation","at":"{at}"}}"#
    ));
    assert_eq!((status, v["status"].as_str()), (201, Some("scheduled")), "{v}");
    assert!(w.ocsp(&b, &[]).contains(": good"));
    std::thread::sleep(Duration::from_secs(4));
    let out = w.ocsp(&b, &[]);
    assert!(
        out.contains(": revoked") && out.contains("cessationOfOperation"),
        "{out}"
    );
    wait_for_delta(&w, &serial_b);
}

#[test]
fn bad_revocation_requests_change_nothing() {
    let w = World::new();
    let (a, serial) = w.issue("a", IIN);
    for (body, status, code) in [
        (
            format!(r#"{{"serial":"{serial}","reason":"lost"}}"#),
            400,
            "reason_invalid",
        ),
        (
            format!(r#"{{"serial":"{serial}","reason":"7"}}"#),
            400,
            "reason_invalid",
        ),
        (
            r#"{"serial":"zz-top","reason":"keyCompromise"}"#.to_string(),
            400,
            "serial_invalid",
        ),
        (
            r#"{"serial":"0abcdef0","reason":"keyCompromise"}"#.to_string(),
            404,
            "certificate_not_found",
        ),
        (
            format!(r#"{{"serial":"{serial}","reason":"keyCompromise","at":"tomorrow"}}"#),
            400,
            "time_invalid",
        ),
        (format!(r#"{{"serial":"{serial}"}}"#), 400, "request_invalid"),
    ] {
        let (got, v) = w.revoke(&body);
        assert_eq!(got, status, "{body}: {v}");
        assert_eq!(v["error"]["code"], code, "{body}: {v}");
    }
    assert!(w.ocsp(&a, &[]).contains(": good"));
    let (_, body) = w.d.get(&format!("/api/v1/certificates/{serial}"));
    assert!(String::from_utf8_lossy(&body).contains("\"status\":\"valid\""));
}

#[test]
fn a_delegated_responder_certificate_near_its_end_is_renewed_at_start() {
    let mut d = Deployment::new();
    // A deployment whose OCSP profile gives 10 days: inside the 30-day renewal window from the
    // first day, so every start renews it.
    let profiles = d.dir.path().join("ca-config/profiles");
    std::fs::create_dir_all(&profiles).unwrap();
    let ocsp = nca::pki::profile::EMBEDDED
        .iter()
        .find(|(n, _)| *n == "ocsp")
        .unwrap()
        .1;
    write(
        &profiles.join("ocsp.toml"),
        ocsp.replace("validity_days = 90", "validity_days = 10").as_bytes(),
    );
    let report = d.init();
    let first = report
        .lines()
        .find(|l| l.starts_with("OCSP responder"))
        .unwrap()
        .to_string();
    d.start();
    assert!(d.log().contains("ocsp certificate renewed"), "{}", d.log());
    let work = tempfile::tempdir().unwrap();
    let (_, csr) = openssl_csr(work.path(), "a", "ec:P-256");
    let out = run_ok(&mut d.nca(&[
        "cert",
        "issue",
        "--profile",
        "individual-auth",
        "--csr",
        &csr.display().to_string(),
        "--iin",
        IIN,
        "--surname",
        "A",
        "--name",
        "B",
    ]));
    let pem = work.path().join("a.pem");
    write(&pem, &out.stdout);
    let resp = work.path().join("resp.der");
    let out = run(Command::new("openssl")
        .args(["ocsp", "-issuer"])
        .arg(d.path("ca/issuing.pem"))
        .arg("-cert")
        .arg(&pem)
        .args(["-url", &format!("{}/ocsp", d.public), "-CAfile"])
        .arg(d.path("ca/root.pem"))
        .arg("-respout")
        .arg(&resp));
    let text = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Response verify OK") && text.contains(": good"), "{text}");
    // The responder certificate in the answer is the renewed one, not the ceremony's.
    let first_serial = first
        .split("serial=[")
        .nth(1)
        .unwrap()
        .split(']')
        .next()
        .unwrap()
        .to_uppercase();
    let shown = stdout(&run_ok(
        Command::new("openssl")
            .args(["ocsp", "-resp_text", "-noverify", "-respin"])
            .arg(&resp),
    ));
    assert!(
        !shown.to_uppercase().replace(':', "").contains(&first_serial),
        "the old responder certificate is still in use"
    );
}

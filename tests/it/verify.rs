//! `POST /api/v1/verify`, the verification service for relying e-services: documents signed by
//! `openssl cms` (RSA and P-256) and by `nca station sign` on a SoftHSM2 token, with and without
//! signature time-stamp tokens, before and after a revocation, by another CA, and tampered.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;
use crate::tsa::tsa_deployment;

const PIN: &str = "1234";

/// Issues a SIGN certificate under `profile` for a fresh openssl key of `kind`; `extra` are
/// further `nca cert issue` arguments. Returns (certificate, key, serial).
fn issue_sign(
    d: &Deployment,
    work: &Path,
    name: &str,
    profile: &str,
    kind: &str,
    extra: &[&str],
) -> (PathBuf, PathBuf, String) {
    let (key, csr) = openssl_csr(work, name, kind);
    let csr = csr.display().to_string();
    let mut args = vec![
        "cert",
        "issue",
        "--profile",
        profile,
        "--csr",
        &csr,
        "--iin",
        IIN,
        "--surname",
        "Құнанбай",
        "--name",
        "Абай",
        "--patronymic",
        "Құнанбайұлы",
    ];
    args.extend_from_slice(extra);
    let out = run_ok(&mut d.nca(&args));
    let pem = work.join(format!("{name}.pem"));
    write(&pem, &out.stdout);
    let serial = serial_of(&pem);
    (pem, key, serial)
}

/// POSTs a signed file as `application/pkcs7-mime`; (status, JSON).
fn verify_mime(d: &Deployment, signed: &Path) -> (u16, serde_json::Value) {
    let (status, body) = curl(&[
        "-H",
        "content-type: application/pkcs7-mime",
        "--data-binary",
        &format!("@{}", signed.display()),
        &format!("{}/api/v1/verify", d.public),
    ]);
    (
        status,
        serde_json::from_slice(&body).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&body))),
    )
}

/// POSTs the JSON form: a CMS and its detached content, base64.
fn verify_json(d: &Deployment, signed: &Path, content: Option<&Path>) -> (u16, serde_json::Value) {
    use base64::Engine;
    let b64 = |p: &Path| base64::engine::general_purpose::STANDARD.encode(std::fs::read(p).unwrap());
    let mut body = serde_json::json!({ "cms": b64(signed) });
    if let Some(c) = content {
        body["content"] = serde_json::json!(b64(c));
    }
    let (status, resp) = curl(&[
        "-H",
        "content-type: application/json",
        "--data-binary",
        &body.to_string(),
        &format!("{}/api/v1/verify", d.public),
    ]);
    (
        status,
        serde_json::from_slice(&resp).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&resp))),
    )
}

fn signer(v: &serde_json::Value) -> &serde_json::Value {
    &v["signers"][0]
}

#[test]
fn openssl_signatures_rsa_and_p256_name_the_signer_and_tampering_is_refused() {
    let d = tsa_deployment();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let doc = w.join("request.json");
    write(&doc, br#"{"service":"address-certificate","iin":"850315306048"}"#);
    let other = w.join("other.json");
    write(&other, br#"{"service":"address-certificate","iin":"000101594515"}"#);

    // RSA, an individual, attached DER and PEM.
    let (rsa_cert, rsa_key, rsa_serial) = issue_sign(&d, w, "rsa", "individual-sign", "rsa:2048", &[]);
    for pem in [false, true] {
        let signed = w.join(format!("rsa-{pem}.p7m"));
        cms_sign_as(&doc, &rsa_cert, &rsa_key, &signed, true, pem);
        let (status, v) = verify_mime(&d, &signed);
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["valid"], true, "{v}");
        assert_eq!(v["attached"], true);
        let s = signer(&v);
        assert_eq!(s["signer"]["iin"], IIN, "{v}");
        assert_eq!(s["signer"]["surname"], "ҚҰНАНБАЙ", "{v}");
        assert_eq!(s["signer"]["name"], "АБАЙ", "{v}");
        assert_eq!(s["signer"]["patronymic"], "ҚҰНАНБАЙҰЛЫ", "{v}");
        assert_eq!(s["certificate"]["serial"], rsa_serial.as_str());
        assert_eq!(s["certificate"]["profile"], "individual-sign");
        assert_eq!(s["certificate"]["status_now"], "valid");
        assert_eq!(s["certificate"]["status_at_signing"], "valid");
        assert_eq!(s["signing_time_source"], "claimed", "{v}");
        assert!(s["signing_time"].as_str().unwrap().starts_with("20"), "{v}");
    }

    // P-256, a legal entity's employee, detached in the JSON form.
    let (ec_cert, ec_key, _) = issue_sign(
        &d,
        w,
        "ec",
        "legal-sign",
        "ec:P-256",
        &["--bin", BIN, "--org", "ТОО «Дала»", "--role", "signer"],
    );
    let detached = w.join("ec.p7s");
    cms_sign_as(&doc, &ec_cert, &ec_key, &detached, false, false);
    let (status, v) = verify_json(&d, &detached, Some(&doc));
    assert_eq!((status, &v["valid"]), (200, &serde_json::json!(true)), "{v}");
    assert_eq!(v["attached"], false);
    let s = signer(&v);
    assert_eq!(s["signer"]["bin"], BIN, "{v}");
    assert_eq!(s["signer"]["organization"], "ТОО «Дала»", "{v}");
    assert_eq!(s["signer"]["role"], "signer", "{v}");
    assert_eq!(s["certificate"]["profile"], "legal-sign");

    // Tampered: other content, a changed signature, no content at all.
    let (_, v) = verify_json(&d, &detached, Some(&other));
    assert_eq!(
        (&v["valid"], &v["code"]),
        (&serde_json::json!(false), &serde_json::json!("content_mismatch")),
        "{v}"
    );
    assert_eq!(signer(&v)["signer"]["iin"], IIN, "the signer is still named: {v}");
    let (_, v) = verify_json(&d, &detached, None);
    assert_eq!(v["code"], "content_missing", "{v}");
    let attached = w.join("rsa-false.p7m");
    let mut bytes = std::fs::read(&attached).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01; // the signature value ends the DER
    let flipped = w.join("flipped.p7m");
    write(&flipped, &bytes);
    let (status, v) = verify_mime(&d, &flipped);
    assert_eq!(
        (status, &v["code"]),
        (200, &serde_json::json!("signature_invalid")),
        "{v}"
    );

    // Not a signed document at all: 400, with a code.
    let garbage = w.join("garbage");
    write(&garbage, b"not a signature");
    let (status, v) = verify_mime(&d, &garbage);
    assert_eq!(
        (status, &v["error"]["code"]),
        (400, &serde_json::json!("cms_malformed")),
        "{v}"
    );
    let (status, body) = curl(&[
        "-H",
        "content-type: application/json",
        "--data-binary",
        r#"{"cms": "***"}"#,
        &format!("{}/api/v1/verify", d.public),
    ]);
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("request_invalid"));

    // An AUTH certificate of this CA (no nonRepudiation) is not for signatures.
    let (auth_cert, auth_key, _) = d.issue_individual(w, "auth", IIN, "rsa:2048");
    let by_auth = w.join("by-auth.p7m");
    cms_sign_as(&doc, &auth_cert, &auth_key, &by_auth, true, false);
    let (_, v) = verify_mime(&d, &by_auth);
    assert_eq!(v["code"], "not_signing_certificate", "{v}");
    assert_eq!(signer(&v)["certificate"]["profile"], "individual-auth", "{v}");

    // A certificate of another CA (openssl's own, self-made) signs: unknown_issuer.
    let ca_key = w.join("other-ca.key");
    let ca_cert = w.join("other-ca.pem");
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj"])
            .arg("/CN=Another CA/C=KZ")
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca_cert),
    );
    let (leaf_key, leaf_csr) = openssl_csr(w, "stranger", "rsa:2048");
    let leaf = w.join("stranger.pem");
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "30", "-in"])
            .arg(&leaf_csr)
            .arg("-CA")
            .arg(&ca_cert)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-set_serial")
            .arg(format!("0x{rsa_serial}"))
            .arg("-out")
            .arg(&leaf),
    );
    let stranger = w.join("stranger.p7m");
    cms_sign_as(&doc, &leaf, &leaf_key, &stranger, true, false);
    let (_, v) = verify_mime(&d, &stranger);
    assert_eq!(
        (&v["valid"], &v["code"]),
        (&serde_json::json!(false), &serde_json::json!("unknown_issuer")),
        "{v}"
    );
}

/// A fresh SoftHSM2 token of the deployment's own with an operator's keys on it.
fn operator_on_token(d: &Deployment) -> String {
    crate::kit::pkcs11::operator_on_token(d, PIN).0
}

/// `nca station sign` on the token, with a time-stamp from `tsa` when given.
fn station_sign(d: &Deployment, token: &str, content: &Path, out: &Path, tsa: Option<&str>) {
    let (i, o) = (content.display().to_string(), out.display().to_string());
    let mut args = vec!["station", "sign", "--token", token, "--in", &i, "--out", &o];
    if let Some(url) = tsa {
        args.extend(["--timestamp", url]);
    }
    let mut c = d.nca(&args);
    c.env("NCA_OPERATOR_PIN", PIN)
        .env("NCA_PKCS11_MODULE", crate::kit::pkcs11::module());
    run_ok(&mut c);
}

#[test]
fn a_time_stamp_fixes_the_time_of_signing_across_a_revocation() {
    let d = tsa_deployment();
    let token = operator_on_token(&d);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let doc = w.join("decision.txt");
    write(&doc, "the provider's head: the request is granted".as_bytes());
    let tsp = format!("{}/tsp", d.public);

    let stamped = w.join("stamped.p7m");
    station_sign(&d, &token, &doc, &stamped, Some(&tsp));
    let plain = w.join("plain.p7m");
    station_sign(&d, &token, &doc, &plain, None);

    // openssl still accepts the CAdES-T signature (the token is an unsigned attribute).
    let chain = d.path("ca/chain.pem");
    let out = run(Command::new("openssl")
        .args(["cms", "-verify", "-binary", "-inform", "DER", "-in"])
        .arg(&stamped)
        .arg("-CAfile")
        .arg(&chain)
        .arg("-out")
        .arg(w.join("content.out")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = stdout(&run_ok(
        Command::new("openssl")
            .args(["cms", "-cmsout", "-print", "-inform", "DER", "-in"])
            .arg(&stamped),
    ));
    assert!(printed.contains("id-smime-aa-timeStampToken"), "{printed}");

    let (_, v) = verify_mime(&d, &stamped);
    assert_eq!(v["valid"], true, "{v}");
    let s = signer(&v);
    assert_eq!(s["signing_time_source"], "timestamp", "{v}");
    assert_eq!(s["signer"]["iin"], "690214449535");
    assert_eq!(s["certificate"]["profile"], "operator-sign");
    let sign_serial = s["certificate"]["serial"].as_str().unwrap().to_string();
    assert_eq!(s["timestamp"]["policy"], "1.2.398.3.3.2.6.1");
    // The token is the one the centre recorded.
    let (status, rec) = d.admin_get(&format!(
        "/api/v1/admin/timestamps/{}",
        s["timestamp"]["serial"].as_str().unwrap()
    ));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&rec));
    let (_, v) = verify_mime(&d, &plain);
    assert_eq!(
        (&v["valid"], &signer(&v)["signing_time_source"]),
        (&serde_json::json!(true), &serde_json::json!("claimed")),
        "{v}"
    );

    // The SIGN certificate is revoked a little after both signatures.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    run_ok(&mut d.nca(&["cert", "revoke", &sign_serial, "--reason", "keyCompromise"]));

    // Time-stamped before the revocation: still valid, with both facts shown.
    let (_, v) = verify_mime(&d, &stamped);
    assert_eq!(v["valid"], true, "{v}");
    let c = &signer(&v)["certificate"];
    assert_eq!(
        (&c["status_now"], &c["status_at_signing"]),
        (&serde_json::json!("revoked"), &serde_json::json!("valid")),
        "{v}"
    );
    assert_eq!(c["revocation_reason"], "keyCompromise", "{v}");
    assert!(c["revoked_at"].is_string(), "{v}");
    // Only claimed: the time of signing is not proven, so the revocation decides.
    let (_, v) = verify_mime(&d, &plain);
    assert_eq!(
        (&v["valid"], &v["code"]),
        (&serde_json::json!(false), &serde_json::json!("certificate_revoked")),
        "{v}"
    );
    // Signed after the revocation, time-stamped or not: revoked before signing.
    let late = w.join("late.p7m");
    station_sign(&d, &token, &doc, &late, Some(&tsp));
    let (_, v) = verify_mime(&d, &late);
    assert_eq!(
        (&v["valid"], &v["code"]),
        (&serde_json::json!(false), &serde_json::json!("revoked_before_signing")),
        "{v}"
    );
    assert_eq!(signer(&v)["signing_time_source"], "timestamp", "{v}");
}

#[test]
fn a_time_stamp_of_another_tsa_is_refused() {
    let d = tsa_deployment();
    let stranger = tsa_deployment();
    let token = operator_on_token(&d);
    let work = tempfile::tempdir().unwrap();
    let doc = work.path().join("d.txt");
    write(&doc, b"x");
    let signed = work.path().join("s.p7m");
    // A time-stamp from another centre's TSA (a TSA of another CA, not this one).
    station_sign(&d, &token, &doc, &signed, Some(&format!("{}/tsp", stranger.public)));
    let (_, v) = verify_mime(&d, &signed);
    assert_eq!(
        (&v["valid"], &v["code"]),
        (&serde_json::json!(false), &serde_json::json!("timestamp_invalid")),
        "{v}"
    );
    assert!(signer(&v)["message"].as_str().unwrap().contains("TSA"), "{v}");
}

#[test]
fn monitoring_signatures_carry_a_time_stamp_when_configured() {
    use crate::kit::monitoring::Receiver;
    let port = free_port();
    let receiver = Receiver::start(port);
    let mut d = Deployment::new();
    let config = d.dir.path().join("nca.toml");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ca-config/nca.toml"))
        .unwrap()
        .replace("timestamp = false", "timestamp = true");
    assert!(text.contains("timestamp = true"));
    write(&config, text.as_bytes());
    d.env.extend([
        ("NCA_CONFIG".to_string(), config.display().to_string()),
        ("NCA_TSA_CLOCK".into(), "trust".into()),
        ("NCA_MONITORING_URL".into(), format!("http://127.0.0.1:{port}/messages")),
        // The repository's profiles and data files are not beside the temporary directory: the
        // embedded copies are used, as for every other test.
    ]);
    d.init();
    d.start();
    let work = tempfile::tempdir().unwrap();
    let centre = d.first_centre();
    let (status, v) = crate::workflow::submit(
        &d,
        &crate::workflow::application(IIN, "Құнанбай", "Абай", "", &centre, work.path(), "m"),
    );
    assert_eq!(status, 201, "{v}");
    assert!(receiver.wait_for(60, |r| !r.is_empty()), "no message arrived");
    let m = &receiver.received()[0];
    let (body, sig) = (work.path().join("m.json"), work.path().join("m.p7s"));
    write(&body, &m.body);
    use base64::Engine;
    write(
        &sig,
        &base64::engine::general_purpose::STANDARD.decode(&m.signature).unwrap(),
    );
    let (_, v) = verify_json(&d, &sig, Some(&body));
    assert_eq!(v["valid"], true, "{v}");
    let s = signer(&v);
    assert_eq!(s["signing_time_source"], "timestamp", "{v}");
    assert_eq!(s["certificate"]["profile"], "service", "{v}");
}

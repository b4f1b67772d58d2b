//! CMS verification against this CA, with `openssl cms -sign` as the signer.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::*;

/// `nca cms verify`: Ok(signer JSON) or Err(stderr).
fn verify(d: &Deployment, signed: &Path, content: Option<&Path>) -> Result<serde_json::Value, String> {
    let mut args = vec![
        "cms".to_string(),
        "verify".into(),
        "--in".into(),
        signed.display().to_string(),
    ];
    if let Some(c) = content {
        args.extend(["--content".into(), c.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&mut d.nca(&args));
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn operator(d: &Deployment, iin: &str, dir: &Path, alg: &str) -> serde_json::Value {
    let centre = d.first_centre();
    let out = run_ok(&mut d.nca(&[
        "operator",
        "add",
        "--iin",
        iin,
        "--surname",
        "Оператор",
        "--name",
        "Бір",
        "--centre",
        &centre,
        "--out",
        &dir.display().to_string(),
        "--key-algorithm",
        alg,
    ]));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn signatures_by_this_cas_sign_certificates_verify_and_others_are_refused_with_their_codes() {
    let mut d = Deployment::new();
    d.init();
    d.start();
    let work = tempfile::tempdir().unwrap();
    let content = work.path().join("tbs.txt");
    write(&content, "application=A-1 decision=confirm nonce=42".as_bytes());
    let other = work.path().join("other.txt");
    write(&other, b"application=A-2 decision=confirm nonce=42");

    for (iin, alg) in [("920708497088", "rsa-2048"), ("000101594515", "ec-p256")] {
        let dir: PathBuf = work.path().join(alg);
        let op = operator(&d, iin, &dir, alg);
        let (cert, key) = (dir.join("sign.crt"), dir.join("sign.key"));
        for attached in [true, false] {
            let sig = work.path().join(format!("{alg}-{attached}.p7s"));
            cms_sign_as(&content, &cert, &key, &sig, attached, false);
            let detached = (!attached).then_some(content.as_path());
            let v = verify(&d, &sig, detached).unwrap_or_else(|e| panic!("{alg} attached={attached}: {e}"));
            assert_eq!(v["signer_serial"], op["sign_serial"], "{v}");
            assert_eq!(v["signer_profile"], "operator-sign");
            if !attached {
                // The same signature over other content.
                let e = verify(&d, &sig, Some(&other)).unwrap_err();
                assert!(e.contains("cms_content_mismatch"), "{e}");
                // A detached signature alone is incomplete.
                let e = verify(&d, &sig, None).unwrap_err();
                assert!(e.contains("cms_incomplete"), "{e}");
            }
        }
        // The AUTH certificate is not for signing documents.
        let sig = work.path().join(format!("{alg}-auth.p7s"));
        cms_sign_as(
            &content,
            &dir.join("auth.crt"),
            &dir.join("auth.key"),
            &sig,
            true,
            false,
        );
        let e = verify(&d, &sig, None).unwrap_err();
        assert!(e.contains("signer_not_sign_certificate"), "{e}");
    }

    // A stranger's self-signed certificate signs for no one here.
    let (sk, sc) = (work.path().join("s.key"), work.path().join("s.crt"));
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=stranger",
                "-keyout",
            ])
            .arg(&sk)
            .arg("-out")
            .arg(&sc),
    );
    let sig = work.path().join("stranger.p7s");
    cms_sign_as(&content, &sc, &sk, &sig, true, false);
    let e = verify(&d, &sig, None).unwrap_err();
    assert!(e.contains("signer_unknown"), "{e}");

    // A signature made after the SIGN certificate was revoked.
    let dir = work.path().join("rsa-2048");
    let serial = stdout(&run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in"])
            .arg(dir.join("sign.crt")),
    ));
    let serial = serial.trim().trim_start_matches("serial=");
    run_ok(&mut d.nca(&["cert", "revoke", serial, "--reason", "keyCompromise"]));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let sig = work.path().join("revoked.p7s");
    cms_sign_as(
        &content,
        &dir.join("sign.crt"),
        &dir.join("sign.key"),
        &sig,
        true,
        false,
    );
    let e = verify(&d, &sig, None).unwrap_err();
    assert!(e.contains("signer_revoked"), "{e}");

    // Garbage, and a flipped byte in the signature.
    let junk = work.path().join("junk.p7s");
    write(&junk, b"\x30\x03\x02\x01\x01");
    assert!(verify(&d, &junk, None).unwrap_err().contains("cms_malformed"));
    let good = work.path().join("ec-p256-true.p7s");
    let mut bytes = std::fs::read(&good).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x01;
    let flipped = work.path().join("flipped.p7s");
    write(&flipped, &bytes);
    let e = verify(&d, &flipped, None).unwrap_err();
    assert!(
        e.contains("cms_signature_invalid") || e.contains("cms_malformed"),
        "{e}"
    );
}

#[test]
fn an_operator_on_a_token_signs_with_nca_station_sign_and_openssl_accepts_it() {
    let mut d = Deployment::new();
    d.init();
    d.start();
    let pin = "1234".to_string();
    let module = crate::kit::pkcs11::module();
    let (token, op) = crate::kit::pkcs11::operator_on_token(&d, &pin);

    // On the token: both private keys sensitive, never extractable; both certificates beside them.
    let blocks = crate::kit::pkcs11::objects(&d, &token, &pin, None);
    let listing = blocks.concat();
    let sign_key = blocks
        .iter()
        .find(|b| b.starts_with("Private Key Object") && b.contains("label:      SIGN-"))
        .unwrap_or_else(|| panic!("no SIGN key on the token:\n{listing}"));
    assert!(
        sign_key.contains("never extractable") && sign_key.contains("sensitive"),
        "{sign_key}"
    );
    let id = sign_key
        .lines()
        .find_map(|l| l.trim().strip_prefix("ID:"))
        .unwrap()
        .trim()
        .to_string();
    assert!(
        blocks
            .iter()
            .any(|b| b.starts_with("Certificate Object") && b.contains(&id) && b.contains("IIN690214449535")),
        "no certificate beside the SIGN key {id}:\n{listing}"
    );

    let work = tempfile::tempdir().unwrap();
    let content = work.path().join("tbs.txt");
    write(&content, "application=B-7 decision=confirm".as_bytes());
    let signed = work.path().join("tbs.p7s");
    let mut sign = d.nca(&[
        "station",
        "sign",
        "--token",
        &token,
        "--in",
        &content.display().to_string(),
        "--out",
        &signed.display().to_string(),
    ]);
    sign.env("NCA_OPERATOR_PIN", &pin).env("NCA_PKCS11_MODULE", &module);
    run_ok(&mut sign);

    // openssl, as a relying party: the signature, the chain, the S/MIME purpose.
    let chain = work.path().join("chain.pem");
    let mut pems = std::fs::read_to_string(d.path("ca/issuing.pem")).unwrap();
    pems.push_str(&std::fs::read_to_string(d.path("ca/root.pem")).unwrap());
    write(&chain, pems.as_bytes());
    let out = run(Command::new("openssl")
        .args(["cms", "-verify", "-binary", "-inform", "DER", "-in"])
        .arg(&signed)
        .arg("-CAfile")
        .arg(&chain)
        .arg("-out")
        .arg(work.path().join("content.out")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        std::fs::read(work.path().join("content.out")).unwrap(),
        std::fs::read(&content).unwrap()
    );
    let attrs = stdout(&run_ok(
        Command::new("openssl")
            .args(["cms", "-cmsout", "-print", "-inform", "DER", "-in"])
            .arg(&signed),
    ));
    for a in [
        "contentType",
        "signingTime",
        "messageDigest",
        "id-smime-aa-signingCertificateV2",
    ] {
        assert!(attrs.contains(a), "{a} missing:\n{attrs}");
    }
    // And this CA finds the operator's SIGN certificate behind it.
    let v = verify(&d, &signed, None).unwrap();
    assert_eq!(v["signer_serial"], op["sign_serial"], "{v}");
}

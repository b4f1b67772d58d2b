//! The CA core: ceremony, issuance under every profile, bad input, key stores.

use std::collections::HashMap;
use std::process::Command;

use const_oid::AssociatedOid;
use const_oid::db::rfc4519;
use der::{Decode, Tag, Tagged};
use x509_cert::Certificate;
use x509_cert::ext::pkix::{CertificatePolicies, ExtendedKeyUsage, KeyUsage};

use crate::harness::*;

#[test]
fn ceremony_makes_a_hierarchy_that_openssl_accepts_and_refuses_to_run_twice() {
    let d = Deployment::new();
    // In the pkcs11 run the CA keys go onto the deployment's own token, so that "the refused
    // ceremony made no keys" can be counted there; in the software run they are the key files.
    let token_keys = |d: &Deployment| {
        let label = std::env::var("NCA_TEST_PKCS11_TOKEN").unwrap();
        let pin = std::env::var("NCA_TEST_PKCS11_PIN").unwrap();
        crate::kit::pkcs11::objects(d, &label, &pin, Some("privkey")).len()
    };
    let report = d.init();
    let keys_before = if is_pkcs11() { token_keys(&d) } else { 0 };
    for what in [
        "root CA",
        "issuing CA",
        "OCSP responder",
        "service signer",
        "time-stamping authority",
        "TLS server",
        "administrator",
    ] {
        let line = report
            .lines()
            .find(|l| l.starts_with(what))
            .unwrap_or_else(|| panic!("no {what} in\n{report}"));
        assert!(line.contains("serial=[") && line.contains("sha256=["), "{line}");
    }
    assert!(
        report.contains("C=KZ, CN=НЕГІЗГІ КУӘЛАНДЫРУШЫ ОРТАЛЫҚ (RSA)"),
        "{report}"
    );
    for f in [
        "admin/auth.key",
        "admin/auth.crt",
        "admin/chain.pem",
        "tls/server.crt",
        "ca/root.pem",
    ] {
        assert!(d.path(f).exists(), "{f}");
    }
    for f in ["admin/auth.crt", "tls/server.crt"] {
        let out = openssl_verify(&d, &d.path(f));
        assert!(out.status.success(), "{f}: {}", stdout(&out));
    }
    // Private key files are the owner's only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.path("admin/auth.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "admin key readable by others: {mode:o}");

    // Root: RSA-4096, self-signed; issuing: RSA-2048 under it.
    let root = std::fs::read_to_string(d.path("ca/root.pem")).unwrap();
    let text = stdout(&run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(d.path("ca/root.pem")),
    ));
    assert!(text.contains("Public-Key: (4096 bit)"), "{text}");
    let text = stdout(&run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(d.path("ca/issuing.pem")),
    ));
    assert!(
        text.contains("Public-Key: (2048 bit)") && text.contains("CA:TRUE, pathlen:0"),
        "{text}"
    );

    let again = run(&mut d.nca(&["init"]));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already initialised"));
    assert_eq!(
        std::fs::read_to_string(d.path("ca/root.pem")).unwrap(),
        root,
        "a refused ceremony changed the root"
    );
    if is_pkcs11() {
        assert_eq!(token_keys(&d), keys_before, "a refused ceremony made keys on the token");
    } else {
        assert_eq!(
            std::fs::read_dir(d.path("keys")).unwrap().count(),
            // root, issuing, OCSP responder, service, time-stamping authority
            5,
            "a refused ceremony made keys"
        );
    }
}

/// What one profile must put into a certificate.
struct Expect {
    profile: &'static str,
    args: Vec<&'static str>,
    dn: Vec<(const_oid::ObjectIdentifier, Tag, &'static str)>,
    ku: &'static [&'static str],
    eku: &'static [&'static str],
    policy: Option<&'static str>,
    revocation_pointers: bool,
}

fn subject_of(cert: &Certificate) -> Vec<(const_oid::ObjectIdentifier, Tag, String)> {
    cert.tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|r| r.0.iter())
        .map(|a| {
            (
                a.oid,
                a.value.tag(),
                String::from_utf8_lossy(a.value.value()).into_owned(),
            )
        })
        .collect()
}

fn ku_names(ku: &KeyUsage) -> Vec<&'static str> {
    let mut v = Vec::new();
    if ku.digital_signature() {
        v.push("digitalSignature");
    }
    if ku.non_repudiation() {
        v.push("nonRepudiation");
    }
    if ku.key_encipherment() {
        v.push("keyEncipherment");
    }
    if ku.key_cert_sign() {
        v.push("keyCertSign");
    }
    v
}

#[test]
fn every_profile_issues_exactly_as_profiles_md_says() {
    let d = Deployment::new();
    d.init();
    let work = tempfile::tempdir().unwrap();
    let person = |extra: &[&'static str]| {
        let mut v = vec![
            "--iin",
            IIN,
            "--surname",
            "Құнанбай",
            "--name",
            "Абай",
            "--patronymic",
            "Құнанбайұлы",
            "--email",
            "abai@example.kz",
        ];
        v.extend_from_slice(extra);
        v
    };
    let person_dn = vec![
        (rfc4519::CN, Tag::Utf8String, "ҚҰНАНБАЙ АБАЙ"),
        (rfc4519::SN, Tag::Utf8String, "ҚҰНАНБАЙ"),
        (rfc4519::SERIAL_NUMBER, Tag::PrintableString, "IIN850315306048"),
        (rfc4519::C, Tag::PrintableString, "KZ"),
        (rfc4519::GIVEN_NAME, Tag::Utf8String, "ҚҰНАНБАЙҰЛЫ"),
    ];
    let legal_dn = vec![
        (rfc4519::CN, Tag::Utf8String, "ҚҰНАНБАЙ АБАЙ"),
        (rfc4519::SN, Tag::Utf8String, "ҚҰНАНБАЙ"),
        (rfc4519::SERIAL_NUMBER, Tag::PrintableString, "IIN850315306048"),
        (rfc4519::C, Tag::PrintableString, "KZ"),
        (rfc4519::O, Tag::Utf8String, "ТОО «Дала Технолоджис»"),
        (rfc4519::OU, Tag::Utf8String, "BIN150540041064"),
        (rfc4519::GIVEN_NAME, Tag::Utf8String, "ҚҰНАНБАЙҰЛЫ"),
    ];
    let legal = ["--bin", BIN, "--org", "ТОО «Дала Технолоджис»", "--role", "first-head"];
    let entity = |cn: &'static str| {
        vec![
            (rfc4519::CN, Tag::Utf8String, cn),
            (rfc4519::C, Tag::PrintableString, "KZ"),
        ]
    };
    let cases = vec![
        Expect {
            profile: "individual-auth",
            args: person(&[]),
            dn: person_dn.clone(),
            ku: &["digitalSignature", "keyEncipherment"],
            eku: &["1.3.6.1.5.5.7.3.2", "1.2.398.3.3.4.1.1"],
            policy: Some("1.2.398.3.3.2.4"),
            revocation_pointers: true,
        },
        Expect {
            profile: "individual-sign",
            args: person(&[]),
            dn: person_dn.clone(),
            ku: &["digitalSignature", "nonRepudiation"],
            eku: &["1.3.6.1.5.5.7.3.4", "1.2.398.3.3.4.1.1"],
            policy: Some("1.2.398.3.3.2.3"),
            revocation_pointers: true,
        },
        Expect {
            profile: "legal-auth",
            args: person(&legal),
            dn: legal_dn.clone(),
            ku: &["digitalSignature", "keyEncipherment"],
            eku: &["1.3.6.1.5.5.7.3.2", "1.2.398.3.3.4.1.2", "1.2.398.3.3.4.1.2.1"],
            policy: Some("1.2.398.3.3.2.2"),
            revocation_pointers: true,
        },
        Expect {
            profile: "legal-sign",
            args: person(&legal),
            dn: legal_dn.clone(),
            ku: &["digitalSignature", "nonRepudiation"],
            eku: &["1.3.6.1.5.5.7.3.4", "1.2.398.3.3.4.1.2", "1.2.398.3.3.4.1.2.1"],
            policy: Some("1.2.398.3.3.2.1"),
            revocation_pointers: true,
        },
        Expect {
            profile: "operator-auth",
            args: person(&[]),
            dn: person_dn.clone(),
            ku: &["digitalSignature", "keyEncipherment"],
            eku: &["1.3.6.1.5.5.7.3.2", "1.2.398.3.3.4.2.3"],
            policy: Some("1.2.398.3.3.2.2"),
            revocation_pointers: true,
        },
        Expect {
            profile: "operator-sign",
            args: person(&[]),
            dn: person_dn.clone(),
            ku: &["digitalSignature", "nonRepudiation"],
            eku: &["1.3.6.1.5.5.7.3.4", "1.2.398.3.3.4.2.3"],
            policy: Some("1.2.398.3.3.2.1"),
            revocation_pointers: true,
        },
        Expect {
            profile: "admin",
            args: person(&[]),
            dn: person_dn.clone(),
            ku: &["digitalSignature", "keyEncipherment"],
            eku: &["1.3.6.1.5.5.7.3.2", "1.2.398.3.3.4.2.1"],
            policy: Some("1.2.398.3.3.2.2"),
            revocation_pointers: true,
        },
        Expect {
            profile: "ocsp",
            args: vec!["--common-name", "OCSP RESPONDER 2"],
            dn: entity("OCSP RESPONDER 2"),
            ku: &["digitalSignature"],
            eku: &["1.3.6.1.5.5.7.3.9"],
            policy: None,
            revocation_pointers: false,
        },
        Expect {
            profile: "tls-server",
            args: vec![
                "--common-name",
                "ca.example.kz",
                "--dns",
                "ca.example.kz",
                "--ip",
                "127.0.0.1",
            ],
            dn: entity("ca.example.kz"),
            ku: &["digitalSignature", "keyEncipherment"],
            eku: &["1.3.6.1.5.5.7.3.1"],
            policy: None,
            revocation_pointers: false,
        },
        Expect {
            profile: "service",
            args: vec!["--common-name", "NCA SERVICE 2"],
            dn: entity("NCA SERVICE 2"),
            ku: &["digitalSignature", "nonRepudiation"],
            eku: &["1.3.6.1.5.5.7.3.4"],
            policy: None,
            revocation_pointers: true,
        },
    ];
    // Each profile on its own: one that is wrong does not hide the others.
    let mut all = Scenario::new("every profile");
    for (i, case) in cases.iter().enumerate() {
        all.check(case.profile, || profile_issues_as_said(&d, work.path(), i, case));
    }
    // The CA certificates lint clean too.
    for f in ["ca/root.pem", "ca/issuing.pem"] {
        all.check(&format!("{f} lints clean"), || {
            let lint = run_ok(
                Command::new("lint_pkix_cert")
                    .args(["lint", "-s", "ERROR"])
                    .arg(d.path(f)),
            );
            assert!(stdout(&lint).trim().is_empty(), "{f}: {}", stdout(&lint));
        });
    }
    all.finish();
}

/// Issues a certificate under `case.profile` with `nca cert issue` and checks it against the
/// profile: a step (the issuance), then checks that each report on their own.
fn profile_issues_as_said(d: &Deployment, work: &std::path::Path, i: usize, case: &Expect) {
    let mut sc = Scenario::new(case.profile);
    let (pem_path, cert) = sc.step("issued, and openssl verifies it", || {
        let (_, csr) = openssl_csr(work, &format!("k{i}"), "rsa:2048");
        let mut args = vec!["cert", "issue", "--profile", case.profile, "--csr"];
        let csr_s = csr.display().to_string();
        args.push(&csr_s);
        args.extend(case.args.iter().copied());
        let out = run_ok(&mut d.nca(&args));
        let pem_path = work.join(format!("{}.pem", case.profile));
        write(&pem_path, &out.stdout);
        let v = openssl_verify(d, &pem_path);
        assert!(v.status.success(), "{}: {}", case.profile, stdout(&v));
        let (_, der) = der::pem::decode_vec(&out.stdout).unwrap();
        (pem_path, Certificate::from_der(&der).unwrap())
    });
    sc.check("subject", || {
        let dn = subject_of(&cert);
        let want: Vec<_> = case.dn.iter().map(|(o, t, v)| (*o, *t, v.to_string())).collect();
        assert_eq!(dn, want, "{}: subject", case.profile);
    });
    sc.check("serial", || {
        let serial = cert.tbs_certificate.serial_number.as_bytes();
        assert_eq!(serial.len(), 20, "{}: serial of 20 octets", case.profile);
        assert!(serial[0] >= 0x10 && serial[0] < 0x80);
    });
    let exts: HashMap<String, (bool, Vec<u8>)> = sc.step("extensions decode", || {
        cert.tbs_certificate
            .extensions
            .clone()
            .unwrap()
            .into_iter()
            .map(|e| (e.extn_id.to_string(), (e.critical, e.extn_value.as_bytes().to_vec())))
            .collect()
    });
    sc.check("key usage", || {
        let (crit, ku) = &exts[&KeyUsage::OID.to_string()];
        assert!(*crit, "{}: keyUsage critical", case.profile);
        assert_eq!(ku_names(&KeyUsage::from_der(ku).unwrap()), case.ku, "{}", case.profile);
    });
    sc.check("extended key usage", || {
        let eku = ExtendedKeyUsage::from_der(&exts[&ExtendedKeyUsage::OID.to_string()].1).unwrap();
        assert_eq!(
            eku.0.iter().map(|o| o.to_string()).collect::<Vec<_>>(),
            case.eku,
            "{}",
            case.profile
        );
    });
    sc.check("policy", || match case.policy {
        Some(p) => {
            let cp = CertificatePolicies::from_der(&exts["2.5.29.32"].1).unwrap();
            assert_eq!(cp.0[0].policy_identifier.to_string(), p);
            assert!(cp.0[0].policy_qualifiers.is_some(), "{}: CPS qualifier", case.profile);
        }
        None => assert!(!exts.contains_key("2.5.29.32"), "{}", case.profile),
    });
    sc.check("key identifiers, revocation pointers, no basicConstraints", || {
        for oid in ["2.5.29.35", "2.5.29.14"] {
            assert!(exts.contains_key(oid), "{}: {oid}", case.profile);
        }
        for oid in ["2.5.29.31", "1.3.6.1.5.5.7.1.1"] {
            assert_eq!(
                exts.contains_key(oid),
                case.revocation_pointers || case.profile == "tls-server",
                "{}: {oid}",
                case.profile
            );
        }
        assert_eq!(
            exts.contains_key("2.5.29.46"),
            case.revocation_pointers && case.profile != "tls-server",
            "{}: freshestCRL",
            case.profile
        );
        assert_eq!(
            exts.contains_key("1.3.6.1.5.5.7.48.1.5"),
            case.profile == "ocsp",
            "{}: ocsp-nocheck",
            case.profile
        );
        assert!(
            !exts.contains_key("2.5.29.19"),
            "{}: end entity without basicConstraints",
            case.profile
        );
    });
    sc.check("as openssl prints it: e-mail, URLs, names", || {
        let text = stdout(&run_ok(
            Command::new("openssl")
                .args(["x509", "-noout", "-text", "-in"])
                .arg(&pem_path),
        ));
        if case.profile.starts_with("individual") {
            assert!(text.contains("email:abai@example.kz"), "{text}");
            assert!(
                text.contains(&format!("URI:{}/crl/nca.crl", "http://127.0.0.1:8080")),
                "{text}"
            );
            assert!(text.contains("URI:http://127.0.0.1:8080/crl/nca-delta.crl"), "{text}");
            assert!(text.contains("OCSP - URI:http://127.0.0.1:8080/ocsp"), "{text}");
            assert!(
                text.contains("CA Issuers - URI:http://127.0.0.1:8080/cert/nca.cer"),
                "{text}"
            );
        }
        if case.profile == "tls-server" {
            assert!(text.contains("DNS:ca.example.kz, IP Address:127.0.0.1"), "{text}");
        }
    });
    // An RFC 5280 linter finds nothing at error level.
    sc.check("pkilint", || {
        let lint = run(Command::new("lint_pkix_cert")
            .args(["lint", "-s", "ERROR"])
            .arg(&pem_path));
        assert!(
            lint.status.success() || lint.status.code() == Some(1),
            "pkilint did not run: {lint:?}"
        );
        assert!(
            stdout(&lint).trim().is_empty(),
            "{}: pkilint: {}",
            case.profile,
            stdout(&lint)
        );
    });
    sc.finish();
}

#[test]
fn ec_p256_requests_get_ecdsa_subject_keys_without_key_encipherment() {
    let d = Deployment::new();
    d.init();
    let work = tempfile::tempdir().unwrap();
    let (pem, _, _) = d.issue_individual(work.path(), "ec", IIN, "ec:P-256");
    assert!(openssl_verify(&d, &pem).status.success());
    let text = stdout(&run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&pem),
    ));
    assert!(text.contains("NIST CURVE: P-256"), "{text}");
    assert!(
        text.contains("Digital Signature") && !text.contains("Key Encipherment"),
        "{text}"
    );
}

#[test]
fn bad_requests_get_stable_codes_and_record_nothing() {
    let mut d = Deployment::new();
    d.init();
    d.start();
    let work = tempfile::tempdir().unwrap();
    let (_, good) = openssl_csr(work.path(), "good", "rsa:2048");
    let good = std::fs::read_to_string(good).unwrap();
    let (_, weak) = openssl_csr(work.path(), "weak", "rsa:1024");
    let (_, p384) = openssl_csr(work.path(), "p384", "ec:P-384");
    let der = der::pem::decode_vec(good.as_bytes()).unwrap().1;
    let truncated =
        der::pem::encode_string("CERTIFICATE REQUEST", der::pem::LineEnding::LF, &der[..der.len() - 40]).unwrap();
    let mut forged = der.clone();
    let last = forged.len() - 5;
    forged[last] ^= 0x55;
    let forged = der::pem::encode_string("CERTIFICATE REQUEST", der::pem::LineEnding::LF, &forged).unwrap();
    let body = |profile: &str, csr: &str, iin: &str, extra: &str| {
        format!(
            r#"{{"profile":{},"csr":{},"subject":{{"iin":"{iin}","surname":"Сейітов","name":"Нұрлан"{extra}}}}}"#,
            js(profile),
            js(csr)
        )
    };
    let before = d.certificate_count("pending") + d.certificate_count("issued");
    let cases = [
        (body("individual-auth", "garbage", IIN, ""), 422, "csr_malformed"),
        (body("individual-auth", &truncated, IIN, ""), 422, "csr_malformed"),
        (body("individual-auth", &forged, IIN, ""), 422, "csr_signature_invalid"),
        (
            body("individual-auth", &std::fs::read_to_string(weak).unwrap(), IIN, ""),
            422,
            "key_too_weak",
        ),
        (
            body("individual-auth", &std::fs::read_to_string(p384).unwrap(), IIN, ""),
            422,
            "key_unsupported",
        ),
        (body("no-such-profile", &good, IIN, ""), 422, "unknown_profile"),
        (body("individual-auth", &good, "850315306049", ""), 422, "iin_invalid"),
        (
            body(
                "legal-sign",
                &good,
                IIN,
                r#","bin":"150540041065","org":"ТОО","role":"signer""#,
            ),
            422,
            "bin_invalid",
        ),
        (
            body("individual-auth", &good, IIN, r#","surname":"X1""#).replace(r#""surname":"Сейітов","#, ""),
            422,
            "subject_invalid",
        ),
        (r#"{"profile":"individual-auth"}"#.to_string(), 400, "request_invalid"),
        ("not json".to_string(), 400, ""),
    ];
    for (json, status, code) in cases {
        let (got, resp) = d.admin_post("/api/v1/admin/certificates", &json);
        let resp = String::from_utf8_lossy(&resp);
        assert_eq!(got, status, "{code}: {resp}");
        if !code.is_empty() {
            let v: serde_json::Value = serde_json::from_str(&resp).unwrap();
            assert_eq!(v["error"]["code"], code, "{resp}");
            assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }
    assert_eq!(
        d.certificate_count("pending") + d.certificate_count("issued"),
        before,
        "a refused request was recorded"
    );

    // The good request goes through, and the same key under another holder is refused.
    let (status, pem) = d.admin_post("/api/v1/admin/certificates", &body("individual-auth", &good, IIN, ""));
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&pem));
    assert!(pem.starts_with(b"-----BEGIN CERTIFICATE-----"));
    let (status, resp) = d.admin_post(
        "/api/v1/admin/certificates",
        &body("individual-sign", &good, "000101594515", ""),
    );
    assert_eq!(status, 422);
    assert!(String::from_utf8_lossy(&resp).contains("key_already_certified"));
    // The same holder may have the same key certified again (e.g. AUTH and SIGN on one token).
    let (status, _) = d.admin_post("/api/v1/admin/certificates", &body("individual-sign", &good, IIN, ""));
    assert_eq!(status, 201);
    assert_eq!(d.certificate_count("issued"), before + 2);
}

#[test]
fn ca_keys_on_the_token_are_sensitive_and_never_extractable() {
    // Both runs: the software run puts this deployment's CA keys on a token of its own.
    let mut d = Deployment::new();
    let token = crate::kit::pkcs11::ca_token(&mut d);
    let report = d.init();
    let label = report.lines().find(|l| l.starts_with("root CA")).unwrap();
    let label = label.split("key=[pkcs11:").nth(1).unwrap().trim_end_matches(']');
    let keys = crate::kit::pkcs11::objects(&d, &token.label, &token.pin, Some("privkey"));
    let block = keys
        .iter()
        .find(|b| b.contains(label))
        .unwrap_or_else(|| panic!("{label} not on the token:\n{keys:?}"));
    assert!(block.contains("Access:") && block.contains("sensitive"), "{block}");
    assert!(block.contains("never extractable"), "{block}");
    assert_eq!(
        crate::kit::pkcs11::attribute(block, "Usage:"),
        "sign",
        "a CA key that does more than sign: {block}"
    );
    assert!(
        !block.contains(" extractable,") || block.contains("never extractable"),
        "{block}"
    );
    // No software key files exist in a PKCS#11 deployment.
    assert!(!d.path("keys").exists());
}

#[test]
fn production_refuses_software_keys_and_first_start_initialises() {
    let mut d = Deployment::new();
    // The refusal is the software key store's, so it is asked for in both runs (the pkcs11
    // run's deployment is a production one already, on its token).
    let mut cmd = d.nca(&["serve"]);
    cmd.env("NCA_KEY_STORE", "software").env("NCA_DEVELOPMENT", "false");
    let out = run(&mut cmd);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unsafe configuration") && err.contains("software key store"),
        "{err}"
    );
    assert!(!d.path("nca.db").exists(), "a refused start created state");
    // No `nca init`: the first start runs the ceremony and says so.
    d.start();
    assert!(d.log().contains("first start"), "{}", d.log());
    let (status, body) = d.get("/readyz");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(d.path("admin/auth.crt").exists());
}

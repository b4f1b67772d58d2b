//! The service as relying parties see it: every URL a certificate, a CRL or the CA directory
//! names answers; paths validate with OpenSSL and an independent library (pyhanko-certvalidator)
//! with CRL, delta and OCSP checks; OCSP over GET is cacheable (RFC 5019 §6.2); nonces are
//! bounded (RFC 8954); CRLs outlive their successors' due time; the policy document is served.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use der::{Decode, Encode};

use crate::harness::*;

/// A deployment whose base URL is the address it listens on, so that the URLs in its
/// certificates and CRLs lead to it (the harness's others keep the default base URL).
fn reachable() -> Deployment {
    let port = free_port();
    let mut d = Deployment::new();
    d.env.push(("NCA_LISTEN".into(), format!("127.0.0.1:{port}")));
    d.env.push(("NCA_BASE_URL".into(), format!("http://127.0.0.1:{port}")));
    d.init();
    d.start();
    d
}

fn issue(d: &Deployment, work: &Path, name: &str, profile: &str) -> PathBuf {
    let (_, csr) = openssl_csr(work, name, "ec:P-256");
    let csr = csr.display().to_string();
    let out = run_ok(&mut d.nca(&[
        "cert",
        "issue",
        "--profile",
        profile,
        "--csr",
        &csr,
        "--iin",
        IIN,
        "--surname",
        "A",
        "--name",
        "B",
    ]));
    let pem = work.join(format!("{name}.pem"));
    write(&pem, &out.stdout);
    pem
}

/// The URIs openssl prints in a certificate's or CRL's text (CDP, freshestCRL, AIA, IDP, CPS).
fn uris(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter_map(|w| w.strip_prefix("URI:"))
        .chain(
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("CPS: "))
                .map(str::trim),
        )
        .map(str::to_string)
        .collect()
}

fn openssl_text(kind: &str, der: &Path) -> String {
    stdout(&run_ok(
        Command::new("openssl")
            .args([kind, "-inform", "DER", "-noout", "-text", "-in"])
            .arg(der),
    ))
}

fn pem_text(pem: &Path) -> String {
    stdout(&run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(pem),
    ))
}

/// A DER CRL to PEM, for `openssl verify -CRLfile`.
fn crl_pem(der: &Path) -> PathBuf {
    let pem = der.with_extension("pem");
    run_ok(
        Command::new("openssl")
            .args(["crl", "-inform", "DER", "-in"])
            .arg(der)
            .arg("-out")
            .arg(&pem),
    );
    pem
}

#[test]
fn every_url_named_answers_and_paths_validate_with_crls_deltas_and_ocsp() {
    let d = reachable();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let mut sc = Scenario::new("every URL named, and paths");
    let sign = issue(&d, w, "sign", "individual-sign");
    let auth = issue(&d, w, "auth", "individual-auth");
    let revoked = issue(&d, w, "revoked", "individual-sign");
    // A revocation with an invalidity date, so that the CRLs have an entry with both extensions.
    sc.step("one revoked with an invalidity date, and the CRLs published", || {
        let (status, body) = d.admin_post(
            "/api/v1/admin/revocations",
            &format!(
                r#"{{"serial":"{}","reason":"keyCompromise","invalidity_date":"2026-01-01T00:00:00Z"}}"#,
                serial_of(&revoked)
            ),
        );
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        // A CRL lists what was recorded before the second it is published in.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        for body in [r#"{}"#, r#"{"delta":true}"#, r#"{"root":true}"#] {
            let (status, out) = d.admin_post("/api/v1/admin/crl", body);
            assert_eq!(status, 201, "{body}: {}", String::from_utf8_lossy(&out));
        }
    });
    // The root publishes no delta: asking for one is refused, changing nothing.
    sc.check("the root publishes no delta", || {
        let (status, out) = d.admin_post("/api/v1/admin/crl", r#"{"delta":true,"root":true}"#);
        assert_eq!(status, 400);
        assert!(String::from_utf8_lossy(&out).contains("crl_kind_invalid"));
    });
    // What the directory names.
    let (mut todo, policies_named) = sc.step("the URLs the directory and the certificates name", || {
        let (_, dir) = d.get("/api/v1/ca");
        let dir: serde_json::Value = serde_json::from_slice(&dir).unwrap();
        let mut todo: Vec<String> = Vec::new();
        for ca in dir["cas"].as_array().unwrap() {
            for key in ["crl_url", "delta_crl_url", "ocsp_url"] {
                match (ca["role"].as_str(), &ca[key]) {
                    (_, serde_json::Value::String(u)) => todo.push(u.clone()),
                    (Some("root"), serde_json::Value::Null) if key != "crl_url" => {}
                    (role, v) => panic!("{role:?} {key}: {v}"),
                }
            }
        }
        // What the certificates name.
        for pem in [&sign, &auth, &d.path("ca/issuing.pem"), &d.path("ca/root.pem")] {
            todo.extend(uris(&pem_text(pem)));
        }
        let policies_named: BTreeSet<String> = [&sign, &auth, &d.path("ca/issuing.pem")]
            .iter()
            .flat_map(|p| {
                pem_text(p)
                    .lines()
                    .filter_map(|l| l.trim().strip_prefix("Policy: ").map(str::to_string))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(policies_named.contains("1.2.398.3.3.2.3"), "{policies_named:?}");
        (todo, policies_named)
    });
    let (seen, crls) = sc.step("every URL named answers", || {
        let mut seen = BTreeSet::new();
        let mut crls = Vec::new();
        while let Some(url) = todo.pop() {
            if !seen.insert(url.clone()) {
                continue;
            }
            let path = url
                .strip_prefix(&d.public)
                .unwrap_or_else(|| panic!("{url} is not this service's ({})", d.public));
            if path == "/ocsp" {
                // The responder answers for the certificates that name it.
                for cert in [&sign, &auth] {
                    let out = run(Command::new("openssl")
                        .args(["ocsp", "-issuer"])
                        .arg(d.path("ca/issuing.pem"))
                        .arg("-cert")
                        .arg(cert)
                        .args(["-url", &url, "-CAfile"])
                        .arg(d.path("ca/root.pem")));
                    let text = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
                    assert!(
                        text.contains(": good") && text.contains("Response verify OK"),
                        "{url}: {text}"
                    );
                }
                continue;
            }
            let (status, body) = d.get(path);
            assert_eq!(status, 200, "{url}");
            let file = w.join(format!("fetched-{}", seen.len()));
            write(&file, &body);
            if path.ends_with(".crl") {
                let text = openssl_text("crl", &file);
                todo.extend(uris(&text));
                crls.push(crl_pem(&file));
            } else if path.ends_with(".cer") {
                todo.extend(uris(&openssl_text("x509", &file)));
            } else if path == "/cps" {
                let page = String::from_utf8(body).unwrap();
                for oid in &policies_named {
                    assert!(page.contains(oid), "the policy document does not name {oid}");
                }
            } else {
                panic!("{url}: not a URL kind this test knows");
            }
        }
        (seen, crls)
    });
    sc.check("every kind of URL is named, and no root delta", || {
        for must in [
            "/crl/nca.crl",
            "/crl/nca-delta.crl",
            "/crl/root.crl",
            "/cert/nca.cer",
            "/cps",
            "/ocsp",
        ] {
            assert!(
                seen.contains(&format!("{}{must}", d.public)),
                "{must} was never named: {seen:?}"
            );
        }
        assert!(!seen.iter().any(|u| u.ends_with("/root-delta.crl")), "{seen:?}");
    });
    // OpenSSL with every CRL and delta, then requiring the end-entity policy explicitly.
    sc.check("openssl verify with the CRLs and deltas, and under the policy", || {
        let verify = |cert: &Path, extra: &[&str]| {
            let mut c = Command::new("openssl");
            c.args(["verify", "-crl_check_all", "-extended_crl", "-use_deltas", "-CAfile"])
                .arg(d.path("ca/root.pem"))
                .arg("-untrusted")
                .arg(d.path("ca/issuing.pem"));
            for crl in &crls {
                c.arg("-CRLfile").arg(crl);
            }
            c.args(extra).arg(cert);
            let out = run(&mut c);
            format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr))
        };
        assert!(verify(&sign, &[]).contains(": OK"), "{}", verify(&sign, &[]));
        let strict = ["-policy", "1.2.398.3.3.2.3", "-explicit_policy", "-policy_check"];
        let out = verify(&sign, &strict);
        assert!(out.contains(": OK"), "{out}");
        // The check could fail: a certificate of another policy is refused under it.
        assert!(!verify(&auth, &strict).contains(": OK"));
        let out = verify(&revoked, &[]);
        assert!(out.contains("revoked"), "{out}");
    });
    // An independent library, fetching what the certificates name, revocation hard-fail.
    sc.check("pyhanko-certvalidator, fetching, revocation hard-fail", || {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/validate_path.py");
        let pyhanko = |cert: &Path| {
            let out = run(Command::new("python3")
                .arg(script)
                .arg(d.path("ca/root.pem"))
                .arg(d.path("ca/issuing.pem"))
                .arg(cert));
            // The verdict is on stdout; stderr has the HTTP client's chatter.
            (stdout(&out), String::from_utf8_lossy(&out.stderr).into_owned())
        };
        for cert in [&sign, &auth] {
            let (out, err) = pyhanko(cert);
            assert_eq!(out.trim(), "valid", "{}: {err}", cert.display());
        }
        let (out, err) = pyhanko(&revoked);
        assert!(out.starts_with("invalid:") && out.contains("revoked"), "{out}{err}");
    });
    sc.finish();
}

/// `curl -D` on the public listener: (status, headers lower-cased, body).
fn get_with(d: &Deployment, path: &str, headers: &[&str]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (h, b) = (dir.path().join("h"), dir.path().join("b"));
    let mut c = Command::new("curl");
    c.args(["-s", "--max-time", "30", "-D"]).arg(&h).arg("-o").arg(&b);
    for x in headers {
        c.args(["-H", x]);
    }
    run_ok(c.arg(format!("{}{path}", d.public)));
    let head = std::fs::read_to_string(&h).unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let fields = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, fields, std::fs::read(&b).unwrap_or_default())
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn unix_of(date: &str) -> i64 {
    let out = run_ok(Command::new("date").args(["-u", "-d", date, "+%s"]));
    stdout(&out).trim().parse().unwrap()
}

fn ocsp_request(d: &Deployment, work: &Path, cert: &Path, nonce: bool) -> Vec<u8> {
    let req = work.join("req.der");
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
    std::fs::read(req).unwrap()
}

fn b64(der: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// `openssl ocsp -respin … -resp_text` of an answer.
fn response_text(work: &Path, der: &[u8]) -> String {
    let f = work.join("resp.der");
    write(&f, der);
    let out = run(Command::new("openssl")
        .args(["ocsp", "-noverify", "-resp_text", "-respin"])
        .arg(&f));
    format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn ocsp_over_get_carries_rfc5019_caching_headers_and_answers_304() {
    let mut d = Deployment::new();
    d.init();
    d.start();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let cert = issue(&d, w, "c", "individual-sign");
    let path = format!("/ocsp/{}", b64(&ocsp_request(&d, w, &cert, false)));

    // A new certificate is answered live until the pre-signer takes it up (within a second);
    // from then on the answer is the kept one, a day long, and its validators stay.
    let (status, h, body, text) = eventually(10, "the answer signed ahead", || {
        let (status, h, body) = get_with(&d, &path, &[]);
        let text = response_text(w, &body);
        let time = |p: &str| text.lines().find_map(|l| l.trim().strip_prefix(p)).map(unix_of);
        (time("Next Update: ")? - time("Produced At: ")? == 86_400).then_some((status, h, body, text))
    });
    assert_eq!(status, 200);
    assert!(text.contains(": good") || text.contains("Cert Status: good"), "{text}");
    let produced = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Produced At: "))
        .unwrap_or_else(|| panic!("{text}"));
    let next = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Next Update: "))
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(unix_of(header(&h, "last-modified").unwrap()), unix_of(produced));
    assert_eq!(unix_of(header(&h, "expires").unwrap()), unix_of(next));
    let cc = header(&h, "cache-control").unwrap();
    for part in ["public", "no-transform", "must-revalidate"] {
        assert!(cc.split(", ").any(|p| p == part), "{cc}");
    }
    let max_age: i64 = cc
        .split(", ")
        .find_map(|p| p.strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{cc}"));
    let left = unix_of(next) - unix_of(header(&h, "date").unwrap());
    assert!(
        max_age > 0 && max_age <= left,
        "max-age {max_age}, {left} s to nextUpdate"
    );
    let etag = header(&h, "etag").unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    // The same answer again (kept), the same validator; a match is 304 without a body.
    let (status, h2, again) = get_with(&d, &path, &[]);
    assert_eq!((status, header(&h2, "etag")), (200, Some(etag.as_str())));
    assert_eq!(again, body);
    let (status, h3, empty) = get_with(&d, &path, &[&format!("If-None-Match: {etag}")]);
    assert_eq!(status, 304);
    assert!(empty.is_empty());
    assert_eq!(header(&h3, "etag"), Some(etag.as_str()));
    assert!(header(&h3, "cache-control").is_some());
    let (status, _, _) = get_with(&d, &path, &[r#"If-None-Match: "other""#]);
    assert_eq!(status, 200);

    // With a nonce the answer is unique: no caching headers.
    let nonce_path = format!("/ocsp/{}", b64(&ocsp_request(&d, w, &cert, true)));
    let (status, h, _) = get_with(&d, &nonce_path, &[]);
    assert_eq!(status, 200);
    assert_eq!(header(&h, "cache-control"), None);
    assert_eq!(header(&h, "etag"), None);
}

/// The openssl request with its nonce replaced by one of `octets` octets.
fn with_nonce(der: &[u8], octets: usize) -> Vec<u8> {
    let mut req = x509_ocsp::OcspRequest::from_der(der).unwrap();
    let exts = req.tbs_request.request_extensions.as_mut().unwrap();
    let inner = der::asn1::OctetString::new(vec![0xa5; octets])
        .unwrap()
        .to_der()
        .unwrap();
    exts[0].extn_value = der::asn1::OctetString::new(inner).unwrap();
    req.to_der().unwrap()
}

fn post_ocsp(d: &Deployment, work: &Path, der: &[u8]) -> (u16, String) {
    let f = work.join("post.der");
    write(&f, der);
    let (status, body) = curl(&[
        "-H",
        "content-type: application/ocsp-request",
        "--data-binary",
        &format!("@{}", f.display()),
        &format!("{}/ocsp", d.public),
    ]);
    (status, response_text(work, &body))
}

#[test]
fn ocsp_nonces_of_one_to_32_octets_only_and_requests_are_bounded() {
    let mut d = Deployment::new();
    d.init();
    d.start();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let cert = issue(&d, w, "c", "individual-sign");
    let req = ocsp_request(&d, w, &cert, true);
    for ok in [1, 32] {
        let (status, text) = post_ocsp(&d, w, &with_nonce(&req, ok));
        assert_eq!(status, 200);
        assert!(text.contains("successful") && text.contains("good"), "{ok}: {text}");
    }
    for bad in [33, 10_000] {
        let (status, text) = post_ocsp(&d, w, &with_nonce(&req, bad));
        assert_eq!(status, 200);
        assert!(text.to_lowercase().contains("malformedrequest"), "{bad}: {text}");
        assert!(!text.contains("good"), "{bad}: {text}");
    }
    // A body far over the bound is refused as malformed, not read into memory whole.
    let (status, text) = post_ocsp(&d, w, &vec![0x30; 200_000]);
    assert_eq!(status, 200);
    assert!(text.to_lowercase().contains("malformedrequest"), "{text}");
}

#[test]
fn every_published_crl_is_valid_past_the_time_its_successor_is_due() {
    let mut d = Deployment::new();
    d.init();
    d.start();
    let tick = nca::publisher::TICK.as_secs() as i64;
    for (file, every) in [
        ("nca.crl", nca::pki::crl::FULL_EVERY),
        ("nca-delta.crl", nca::pki::crl::DELTA_EVERY),
        ("root.crl", nca::pki::crl::ROOT_VALID - nca::pki::crl::ROOT_RENEW_BEFORE),
    ] {
        let (status, der) = eventually(30, file, || {
            let r = d.get(&format!("/crl/{file}"));
            (r.0 == 200).then_some(r)
        });
        assert_eq!(status, 200);
        let crl = x509_cert::crl::CertificateList::from_der(&der).unwrap();
        let this = crl.tbs_cert_list.this_update.to_unix_duration().as_secs() as i64;
        let next = crl.tbs_cert_list.next_update.unwrap().to_unix_duration().as_secs() as i64;
        // The successor is due at thisUpdate + every, and out within a tick of that.
        assert!(
            next - this > every + tick,
            "{file}: valid {} s, its successor due after {every} s",
            next - this
        );
    }
}

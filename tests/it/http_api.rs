//! The public endpoints and the operator listener, with curl as the client.

use std::process::Command;

use crate::harness::*;

#[test]
fn public_endpoints_answer_in_the_contract_shapes() {
    let mut d = Deployment::new();
    d.init();
    d.start();

    let (status, der) = d.get("/cert/root.cer");
    assert_eq!(status, 200);
    let pem = std::fs::read_to_string(d.path("ca/root.pem")).unwrap();
    assert_eq!(
        der,
        der::pem::decode_vec(pem.as_bytes()).unwrap().1,
        "served root differs from the ceremony's"
    );
    let (status, _) = d.get("/cert/nca.cer");
    assert_eq!(status, 200);
    let (status, body) = d.get("/cert/nope.cer");
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("ca_not_found"));

    let (status, body) = d.get("/api/v1/ca");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let cas = v["cas"].as_array().unwrap();
    assert_eq!(cas.len(), 2);
    assert_eq!(cas[0]["role"], "root");
    assert_eq!(cas[1]["role"], "issuing");
    assert_eq!(cas[1]["id"], "nca");
    assert_eq!(cas[1]["crl_url"], "http://127.0.0.1:8080/crl/nca.crl");
    assert_eq!(cas[1]["delta_crl_url"], "http://127.0.0.1:8080/crl/nca-delta.crl");
    assert_eq!(cas[1]["ocsp_url"], "http://127.0.0.1:8080/ocsp");
    // The root publishes no delta and has no responder: nothing is named that would not answer.
    assert_eq!(cas[0]["crl_url"], "http://127.0.0.1:8080/crl/root.crl");
    assert!(cas[0]["delta_crl_url"].is_null() && cas[0]["ocsp_url"].is_null());
    assert!(
        cas[0]["certificate"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert!(cas[1]["subject"].as_str().unwrap().contains("ҰЛТТЫҚ"));

    let (status, body) = d.get("/api/v1/centres");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let region = &v["regions"][0];
    for lang in ["kk", "ru", "en"] {
        assert!(region["names"][lang].is_string(), "{region}");
    }
    let centre = &region["localities"][0]["centres"][0];
    assert!(
        centre["id"].is_string() && centre["address"].is_string() && centre["names"]["en"].is_string(),
        "{centre}"
    );

    assert_eq!(d.get("/healthz").0, 200);
    let (status, body) = d.get("/readyz");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["database"], "ok");
    assert_eq!(v["key_store"], "ok");
    let (status, body) = d.get("/metrics");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("# TYPE nca_http_requests_total counter"), "{text}");
    assert!(text.contains("nca_ready 1"), "{text}");
    let (status, body) = d.get("/no/such/path");
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("not_found"));
}

#[test]
fn certificate_status_by_serial_in_any_case() {
    let mut d = Deployment::new();
    d.init();
    d.start();
    let work = tempfile::tempdir().unwrap();
    let (_, csr) = openssl_csr(work.path(), "a", "rsa:2048");
    let json = format!(
        r#"{{"profile":"individual-sign","csr":{},"iin":"{IIN}","surname":"Құнанбай","name":"Абай"}}"#,
        js(&std::fs::read_to_string(csr).unwrap())
    );
    let (status, pem) = d.admin_post("/api/v1/admin/certificates", &json);
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&pem));
    let path = work.path().join("a.pem");
    write(&path, &pem);
    let serial = stdout(&run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in"])
            .arg(&path),
    ));
    let serial = serial.trim().trim_start_matches("serial=").to_string();
    for s in [serial.to_uppercase(), serial.to_lowercase()] {
        let (status, body) = d.get(&format!("/api/v1/certificates/{s}"));
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], "valid");
        assert_eq!(v["serial"], serial.to_lowercase());
        assert_eq!(v["profile"], "individual-sign");
        assert_eq!(v["certificate"].as_str().unwrap().as_bytes(), &pem[..]);
        assert!(v["not_after"].as_str().unwrap().starts_with("20"));
    }
    let (status, _) = d.get("/api/v1/certificates/00ff00ff");
    assert_eq!(status, 404);
    let (status, body) = d.get("/api/v1/certificates/not-hex");
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("serial_invalid"));
}

#[test]
fn operator_listener_requires_a_client_certificate_and_admin_endpoints_an_administrator() {
    let mut d = Deployment::new();
    d.init();
    d.start();
    let work = tempfile::tempdir().unwrap();
    let cacert = d.path("ca/root.pem").display().to_string();

    // No client certificate: the TLS handshake fails; no handler runs.
    let (status, _) = curl(&["--cacert", &cacert, &format!("{}/healthz", d.operator)]);
    assert_eq!(status, 0, "a request without a client certificate got an HTTP answer");

    // The server certificate names 127.0.0.1 and chains to the root: curl verifies it.
    let (status, _) = curl(&[
        "--cacert",
        &cacert,
        "--cert",
        &d.path("admin/auth.crt").display().to_string(),
        "--key",
        &d.path("admin/auth.key").display().to_string(),
        &format!("{}/healthz", d.operator),
    ]);
    assert_eq!(status, 200);

    // A certificate from another CA is refused at the handshake.
    let other_key = work.path().join("other.key");
    let other_crt = work.path().join("other.crt");
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=stranger",
                "-keyout",
            ])
            .arg(&other_key)
            .arg("-out")
            .arg(&other_crt),
    );
    let (status, _) = d.operator_post("/api/v1/admin/certificates", &other_crt, &other_key, "{}");
    assert_eq!(status, 0);

    // A citizen's AUTH certificate from this CA gets through TLS but is not an administrator.
    let (crt, key, _) = d.issue_individual(work.path(), "citizen", IIN, "ec:P-256");
    let (status, body) = d.operator_post("/api/v1/admin/certificates", &crt, &key, "{}");
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("not_administrator"));
}

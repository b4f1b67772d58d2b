//! The time-stamping authority, `POST /tsp`, with `openssl ts` and the `rfc3161ng` Python client
//! (nobody here wrote either), in both key stores.

use std::path::Path;
use std::process::Command;

use crate::harness::*;

/// A started deployment whose TSA trusts the clock: this suite's hosts (containers) often have
/// no NTP discipline of their own, and the kernel then says "unsynchronised".
pub fn tsa_deployment() -> Deployment {
    let mut d = Deployment::new();
    d.env.push(("NCA_TSA_CLOCK".into(), "trust".into()));
    d.init();
    d.start();
    d
}

/// `openssl ts -query` over `data` with extra arguments; returns the query's path.
pub fn ts_query(work: &Path, name: &str, data: &Path, args: &[&str]) -> std::path::PathBuf {
    let q = work.join(format!("{name}.tsq"));
    run_ok(
        Command::new("openssl")
            .args(["ts", "-query", "-data"])
            .arg(data)
            .args(args)
            .arg("-out")
            .arg(&q),
    );
    q
}

/// POSTs a query file to /tsp; returns (status, content type, reply path).
pub fn post_tsp(d: &Deployment, work: &Path, name: &str, body: &Path) -> (u16, String, std::path::PathBuf) {
    let r = work.join(format!("{name}.tsr"));
    let out = run_ok(
        Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "60",
                "-H",
                "content-type: application/timestamp-query",
            ])
            .arg("--data-binary")
            .arg(format!("@{}", body.display()))
            .arg("-o")
            .arg(&r)
            .args(["-w", "%{http_code} %{content_type}"])
            .arg(format!("{}/tsp", d.public)),
    );
    let text = stdout(&out);
    let (code, ct) = text.split_once(' ').unwrap_or((&text, ""));
    (code.parse().unwrap_or(0), ct.to_string(), r)
}

/// `openssl ts -reply -text` of a reply.
pub fn reply_text(reply: &Path) -> String {
    stdout(&run_ok(
        Command::new("openssl")
            .args(["ts", "-reply", "-text", "-in"])
            .arg(reply),
    ))
}

fn field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[test]
fn openssl_tokens_verify_with_nonce_policy_accuracy_and_unique_serials() {
    let d = tsa_deployment();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("document.txt");
    write(&data, "a citizen's request to the e-gov portal\n".as_bytes());

    let mut serials = Vec::new();
    for (i, hash) in ["-sha256", "-sha384", "-sha512"].into_iter().enumerate() {
        let name = format!("q{i}");
        let q = ts_query(work.path(), &name, &data, &[hash, "-cert"]);
        let (status, ct, reply) = post_tsp(&d, work.path(), &name, &q);
        assert_eq!((status, ct.as_str()), (200, "application/timestamp-reply"));
        let text = reply_text(&reply);
        assert!(text.contains("Status: Granted."), "{text}");
        assert_eq!(field(&text, "Policy OID:"), "1.2.398.3.3.2.6.1");
        assert_eq!(field(&text, "Hash Algorithm:"), &hash[1..]);
        assert_eq!(field(&text, "Ordering:"), "no");
        assert!(field(&text, "Accuracy:").starts_with("0x01 seconds"), "{text}");
        // The nonce is echoed.
        let query_text = stdout(&run_ok(
            Command::new("openssl").args(["ts", "-query", "-text", "-in"]).arg(&q),
        ));
        assert_eq!(field(&text, "Nonce:"), field(&query_text, "Nonce:"));
        serials.push(field(&text, "Serial number:").to_string());
        // The TSA certificate came in the token (certReq), and the chain verifies it.
        let verify = run(Command::new("openssl")
            .args(["ts", "-verify", "-data"])
            .arg(&data)
            .arg("-in")
            .arg(&reply)
            .arg("-CAfile")
            .arg(d.path("ca/chain.pem")));
        assert!(
            verify.status.success() && stdout(&verify).contains("Verification: OK"),
            "{}{}",
            stdout(&verify),
            String::from_utf8_lossy(&verify.stderr)
        );
        // Other data does not verify against the token.
        let other = work.path().join("other.txt");
        write(&other, b"another document\n");
        let bad = run(Command::new("openssl")
            .args(["ts", "-verify", "-data"])
            .arg(&other)
            .arg("-in")
            .arg(&reply)
            .arg("-CAfile")
            .arg(d.path("ca/chain.pem")));
        assert!(!bad.status.success(), "a token verified for other data");
    }
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), 3, "serials repeat: {serials:?}");

    // Every token is recorded: the administrator can ask whether the centre issued it.
    let serial = serials[0].trim_start_matches("0x").to_lowercase();
    let (status, body) = d.admin_get(&format!("/api/v1/admin/timestamps/{serial}"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "issued");
    assert_eq!(v["policy"], "1.2.398.3.3.2.6.1");
    assert!(["sha256", "sha384", "sha512"].contains(&v["hash_alg"].as_str().unwrap()));
    assert_eq!(v["imprint"].as_str().unwrap().len() % 2, 0);
    let (status, _) = d.admin_get("/api/v1/admin/timestamps/01");
    assert_eq!(status, 404);
}

#[test]
fn without_cert_req_the_certificate_is_left_out_and_the_request_policy_is_honoured() {
    let d = tsa_deployment();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("d.txt");
    write(&data, b"signed by the provider's head\n");
    let q = ts_query(work.path(), "q", &data, &["-sha256", "-tspolicy", "1.2.398.3.3.2.6.1"]);
    let (status, _, reply) = post_tsp(&d, work.path(), "q", &q);
    assert_eq!(status, 200);
    assert_eq!(field(&reply_text(&reply), "Policy OID:"), "1.2.398.3.3.2.6.1");
    // No certificate in the token: the chain alone does not find the signer…
    let chain_only = run(Command::new("openssl")
        .args(["ts", "-verify", "-data"])
        .arg(&data)
        .arg("-in")
        .arg(&reply)
        .arg("-CAfile")
        .arg(d.path("ca/chain.pem")));
    assert!(!chain_only.status.success(), "the token carried a certificate unasked");
    // …and the TSA certificate published beside the CA's does.
    let (status, der) = d.get("/cert/tsa.cer");
    assert_eq!(status, 200);
    let tsa_der = work.path().join("tsa.cer");
    write(&tsa_der, &der);
    let tsa_pem = work.path().join("tsa.pem");
    run_ok(
        Command::new("openssl")
            .args(["x509", "-inform", "DER", "-in"])
            .arg(&tsa_der)
            .arg("-out")
            .arg(&tsa_pem),
    );
    assert_eq!(
        std::fs::read_to_string(&tsa_pem).unwrap(),
        std::fs::read_to_string(d.path("ca/tsa.pem")).unwrap()
    );
    let verify = run(Command::new("openssl")
        .args(["ts", "-verify", "-data"])
        .arg(&data)
        .arg("-in")
        .arg(&reply)
        .arg("-CAfile")
        .arg(d.path("ca/chain.pem"))
        .arg("-untrusted")
        .arg(&tsa_pem));
    assert!(
        stdout(&verify).contains("Verification: OK"),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // The TSA certificate: critical EKU timeStamping alone, digitalSignature + nonRepudiation.
    let text = stdout(&run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(&tsa_pem),
    ));
    assert!(
        text.contains("X509v3 Extended Key Usage: critical\n                Time Stamping\n"),
        "{text}"
    );
    assert!(
        text.contains("X509v3 Key Usage: critical\n                Digital Signature, Non Repudiation\n"),
        "{text}"
    );
    let lint = run(Command::new("lint_pkix_cert")
        .args(["lint", "-s", "ERROR"])
        .arg(&tsa_pem));
    assert!(
        lint.status.success() || lint.status.code() == Some(1),
        "pkilint did not run"
    );
    assert!(stdout(&lint).trim().is_empty(), "pkilint: {}", stdout(&lint));
}

#[test]
fn malformed_and_unoffered_requests_are_rejections_never_errors() {
    let d = tsa_deployment();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("d.txt");
    write(&data, b"x\n");
    let garbage = work.path().join("garbage");
    write(&garbage, b"\x30\x03\x02\x01");
    let empty = work.path().join("empty");
    write(&empty, b"");
    // A well-formed request of version 2 (openssl's v1 query with its version octet changed).
    let v1 = ts_query(work.path(), "v1", &data, &["-sha256"]);
    let mut v2 = std::fs::read(&v1).unwrap();
    assert_eq!(
        &v2[2..5],
        &[0x02, 0x01, 0x01],
        "openssl's query starts with its version"
    );
    v2[4] = 2;
    let v2_path = work.path().join("v2.tsq");
    write(&v2_path, &v2);
    let cases = [
        (
            ts_query(work.path(), "sha1", &data, &["-sha1"]),
            "unrecognized or unsupported algorithm identifier",
        ),
        (
            ts_query(work.path(), "md5", &data, &["-md5"]),
            "unrecognized or unsupported algorithm identifier",
        ),
        (
            ts_query(work.path(), "policy", &data, &["-sha256", "-tspolicy", "1.2.3.4.5"]),
            "the requested TSA policy is not supported by the TSA",
        ),
        (v2_path, "transaction not permitted or supported"),
        (garbage, "the data submitted has the wrong format"),
        (empty, "the data submitted has the wrong format"),
    ];
    let before = count_tokens(&d);
    for (i, (q, failure)) in cases.iter().enumerate() {
        let (status, ct, reply) = post_tsp(&d, work.path(), &format!("r{i}"), q);
        assert_eq!((status, ct.as_str()), (200, "application/timestamp-reply"), "{q:?}");
        let text = reply_text(&reply);
        assert!(text.contains("Status: Rejected."), "{q:?}: {text}");
        assert_eq!(field(&text, "Failure info:"), *failure, "{q:?}");
        assert!(text.contains("TST info:\nNot included."), "{text}");
    }
    // A refusal records nothing.
    assert_eq!(count_tokens(&d), before);
}

/// How many tokens the database holds (SQLite in these deployments): the admin endpoint only
/// answers per serial.
fn count_tokens(d: &Deployment) -> i64 {
    let out = run_ok(Command::new("python3").args([
        "-c",
        "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM timestamps').fetchone()[0])",
        &d.path("nca.db").display().to_string(),
    ]));
    stdout(&out).trim().parse().unwrap()
}

#[test]
fn an_unsynchronised_clock_refuses_with_time_not_available_and_readyz_says_so() {
    let mut d = Deployment::new();
    d.env.push(("NCA_TSA_CLOCK".into(), "unsynchronised".into()));
    d.init();
    d.start();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("d.txt");
    write(&data, b"x\n");
    let q = ts_query(work.path(), "q", &data, &["-sha256", "-cert"]);
    let (status, _, reply) = post_tsp(&d, work.path(), "q", &q);
    assert_eq!(status, 200);
    let text = reply_text(&reply);
    assert!(text.contains("Status: Rejected."), "{text}");
    assert_eq!(field(&text, "Failure info:"), "the TSA's time source is not available");
    let (status, body) = d.get("/readyz");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 200, "the rest of the service stays ready");
    assert!(v["clock"].as_str().unwrap().starts_with("unsynchronised"), "{v}");
    assert_eq!(count_tokens(&d), 0);

    // The real check (the default) answers with what the kernel says, and a token is issued
    // exactly when it says the clock is usable.
    d.kill();
    d.env.retain(|(k, _)| k != "NCA_TSA_CLOCK");
    d.start();
    let (_, body) = d.get("/readyz");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let clock = v["clock"].as_str().unwrap().to_string();
    let (_, _, reply) = post_tsp(&d, work.path(), "q2", &q);
    let granted = reply_text(&reply).contains("Status: Granted.");
    assert_eq!(granted, !clock.starts_with("unsynchronised"), "{clock}");
    assert!(
        clock == "synchronised" || clock.starts_with("unsynchronised: adjtimex") || clock.starts_with("unknown"),
        "{clock}"
    );
}

#[test]
fn rfc3161ng_client_gets_a_token_it_verifies() {
    let d = tsa_deployment();
    let script = r#"
import sys, rfc3161ng
url, cert = sys.argv[1], open(sys.argv[2], 'rb').read()
for hashname in ('sha256', 'sha512'):
    t = rfc3161ng.RemoteTimestamper(url, certificate=cert, hashname=hashname, include_tsa_certificate=True)
    tok = t.timestamp(data=b'signed by the provider head')
    assert t.check(tok, data=b'signed by the provider head'), 'check failed'
    try:
        ok = t.check(tok, data=b'tampered')
    except Exception:
        ok = False
    assert not ok, 'tampered data verified'
    print(hashname, rfc3161ng.get_timestamp(tok).isoformat())
"#;
    let out = run_ok(Command::new("python3").args([
        "-c",
        script,
        &format!("{}/tsp", d.public),
        &d.path("ca/tsa.pem").display().to_string(),
    ]));
    let text = stdout(&out);
    assert!(text.contains("sha256 20") && text.contains("sha512 20"), "{text}");
}

#[test]
fn the_tsa_key_lives_in_the_key_store_and_an_older_deployment_gets_one_on_start() {
    let mut d = Deployment::new();
    d.env.push(("NCA_TSA_CLOCK".into(), "trust".into()));
    let report = d.init();
    let line = report
        .lines()
        .find(|l| l.starts_with("time-stamping authority:"))
        .unwrap_or_else(|| panic!("{report}"));
    let label = line
        .split(&format!("key=[{}:", key_store()))
        .nth(1)
        .unwrap_or_else(|| panic!("{line}"))
        .trim_end_matches(']')
        .to_string();
    if is_pkcs11() {
        let keys = crate::kit::pkcs11::objects(
            &d,
            &std::env::var("NCA_TEST_PKCS11_TOKEN").unwrap(),
            &std::env::var("NCA_TEST_PKCS11_PIN").unwrap(),
            Some("privkey"),
        );
        let block = keys
            .iter()
            .find(|b| b.contains(&label))
            .unwrap_or_else(|| panic!("{label} not on the token:\n{keys:?}"));
        assert!(
            block.contains("sensitive") && block.contains("never extractable"),
            "{block}"
        );
        assert_eq!(crate::kit::pkcs11::attribute(block, "Usage:"), "sign", "{block}");
    } else {
        assert!(
            std::fs::read_dir(d.path("keys"))
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().contains(&label)),
            "no key file for {label}"
        );
    }

    // A deployment made before the TSA: no TSA row. Its next start makes key and certificate.
    run_ok(Command::new("python3").args([
        "-c",
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"DELETE FROM ca_keys WHERE role = 'tsa'\"); c.commit()",
        &d.path("nca.db").display().to_string(),
    ]));
    let old = std::fs::read_to_string(d.path("ca/tsa.pem")).unwrap();
    d.start();
    assert!(d.log().contains("time-stamping authority: subject="), "{}", d.log());
    let new = std::fs::read_to_string(d.path("ca/tsa.pem")).unwrap();
    assert_ne!(old, new, "the TSA certificate was not made anew");
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("d.txt");
    write(&data, b"x\n");
    let q = ts_query(work.path(), "q", &data, &["-sha256", "-cert"]);
    let (_, _, reply) = post_tsp(&d, work.path(), "q", &q);
    let verify = run(Command::new("openssl")
        .args(["ts", "-verify", "-data"])
        .arg(&data)
        .arg("-in")
        .arg(&reply)
        .arg("-CAfile")
        .arg(d.path("ca/chain.pem")));
    assert!(stdout(&verify).contains("Verification: OK"), "{}", reply_text(&reply));
}

#[test]
fn the_audit_checkpoint_carries_a_time_stamp_of_the_chain_head() {
    let d = tsa_deployment();
    // The publisher writes a checkpoint as it starts.
    let detail = eventually(60, "a checkpoint with a time-stamp", || {
        let out = run(Command::new("python3").args([
            "-c",
            "import sqlite3,sys; r=sqlite3.connect(sys.argv[1]).execute(\"SELECT detail FROM audit WHERE kind = 'audit.checkpoint' ORDER BY seq DESC LIMIT 1\").fetchone(); print(r[0] if r else '')",
            &d.path("nca.db").display().to_string(),
        ]));
        let text = stdout(&out);
        text.contains("\"timestamp\"").then(|| text.trim().to_string())
    });
    let v: serde_json::Value = serde_json::from_str(&detail).unwrap();
    let work = tempfile::tempdir().unwrap();
    let msg = work.path().join("head.txt");
    write(
        &msg,
        format!(
            "nca-audit-checkpoint {} {}",
            v["covers"].as_i64().unwrap(),
            v["hash"].as_str().unwrap()
        )
        .as_bytes(),
    );
    let token = work.path().join("token.der");
    use base64::Engine;
    write(
        &token,
        &base64::engine::general_purpose::STANDARD
            .decode(v["timestamp"].as_str().unwrap())
            .unwrap(),
    );
    // openssl, independently: the token is over the chain's head as the checkpoint names it.
    let out = run(Command::new("openssl")
        .args(["ts", "-verify", "-token_in", "-data"])
        .arg(&msg)
        .arg("-in")
        .arg(&token)
        .arg("-CAfile")
        .arg(d.path("ca/chain.pem")));
    assert!(
        stdout(&out).contains("Verification: OK"),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    // And the chain's own verification checks it.
    let out = run_ok(&mut d.nca(&["audit", "verify"]));
    assert!(stdout(&out).contains("audit chain intact"), "{}", stdout(&out));
}

#[test]
fn tokens_are_recorded_on_postgresql_too() {
    let mut d = Deployment::with_database(Some(fresh_postgres_database()));
    d.env.push(("NCA_TSA_CLOCK".into(), "trust".into()));
    d.init();
    d.start();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("d.txt");
    write(&data, b"on PostgreSQL\n");
    let q = ts_query(work.path(), "q", &data, &["-sha512", "-cert"]);
    let (_, _, reply) = post_tsp(&d, work.path(), "q", &q);
    let text = reply_text(&reply);
    assert!(text.contains("Status: Granted."), "{text}");
    let serial = field(&text, "Serial number:").trim_start_matches("0x").to_lowercase();
    let (status, body) = d.admin_get(&format!("/api/v1/admin/timestamps/{serial}"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (&v["hash_alg"], &v["status"]),
        (&serde_json::json!("sha512"), &serde_json::json!("issued"))
    );
    let verify = run(Command::new("openssl")
        .args(["ts", "-verify", "-data"])
        .arg(&data)
        .arg("-in")
        .arg(&reply)
        .arg("-CAfile")
        .arg(d.path("ca/chain.pem")));
    assert!(stdout(&verify).contains("Verification: OK"), "{}", stdout(&verify));
}

#[test]
fn a_policy_of_tsa_accepted_policies_is_honoured_and_others_refused() {
    let mut d = Deployment::new();
    let config = d.dir.path().join("nca.toml");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ca-config/nca.toml"))
        .unwrap()
        .replace("accepted_policies = []", "accepted_policies = [\"1.2.398.3.3.2.6.2\"]");
    assert!(text.contains("1.2.398.3.3.2.6.2"));
    write(&config, text.as_bytes());
    d.env.extend([
        ("NCA_CONFIG".to_string(), config.display().to_string()),
        ("NCA_TSA_CLOCK".into(), "trust".into()),
    ]);
    d.init();
    d.start();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("d.txt");
    write(&data, b"x\n");
    for (policy, granted) in [("1.2.398.3.3.2.6.2", true), ("1.2.398.3.3.2.6.3", false)] {
        let q = ts_query(work.path(), policy, &data, &["-sha256", "-tspolicy", policy]);
        let (_, _, reply) = post_tsp(&d, work.path(), policy, &q);
        let text = reply_text(&reply);
        if granted {
            assert_eq!(field(&text, "Policy OID:"), policy, "{text}");
        } else {
            assert!(text.contains("Status: Rejected."), "{text}");
        }
    }
    // No policy asked: the default.
    let q = ts_query(work.path(), "none", &data, &["-sha256"]);
    let (_, _, reply) = post_tsp(&d, work.path(), "none", &q);
    assert_eq!(field(&reply_text(&reply), "Policy OID:"), "1.2.398.3.3.2.6.1");
}

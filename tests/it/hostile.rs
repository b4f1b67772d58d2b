//! Hostile input and hostile clients: what the framework could not take apart gets the JSON
//! envelope with a stable code and changes nothing; a value from outside never forges a log
//! line; slow and greedy clients are cut off by the listeners' bounds (raw TCP sockets here,
//! `openssl s_client` for TLS).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// (status, error code).
type Answer = (u16, String);

/// (status, error code) of a curl answer that must be the envelope.
fn envelope((status, body): (u16, Vec<u8>)) -> Answer {
    let v: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    let code = v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("{status}: not the envelope: {v}"));
    assert!(v["error"]["message"].is_string(), "{v}");
    (status, code.to_string())
}

fn admin_args(d: &Deployment) -> Vec<String> {
    vec![
        "--cacert".into(),
        d.path("ca/root.pem").display().to_string(),
        "--cert".into(),
        d.path("admin/auth.crt").display().to_string(),
        "--key".into(),
        d.path("admin/auth.key").display().to_string(),
    ]
}

fn curl_s(args: &[String]) -> (u16, Vec<u8>) {
    curl(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The audit chain's records other than the service's own checkpoints (the first is signed
/// shortly after start, whenever the publisher gets to it): any state change appends one.
fn audit_records(d: &Deployment) -> i64 {
    let (status, body) = d.admin_get("/api/v1/admin/audit/verify");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["records"].as_i64().unwrap() - v["checkpoints"].as_i64().unwrap()
}

#[test]
fn requests_the_framework_cannot_take_apart_get_the_envelope_and_change_nothing() {
    let mut d = Deployment::new();
    d.init();
    d.start();
    let before = audit_records(&d);
    let (status, body) = d.get("/api/v1/openapi.json");
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let work = tempfile::tempdir().unwrap();
    let big = work.path().join("big.json");
    // Over service.max_body_bytes (1 MiB), and valid JSON all the same.
    write(&big, format!("{{\"x\":\"{}\"}}", "a".repeat(1_100_000)).as_bytes());
    let big_arg = format!("@{}", big.display());
    let public = |path: &str, extra: &[&str]| {
        let mut a: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        a.push(format!("{}{path}", d.public));
        envelope(curl_s(&a))
    };
    let admin = |path: &str, extra: &[&str]| {
        let mut a = admin_args(&d);
        a.extend(extra.iter().map(|s| s.to_string()));
        a.push(format!("{}{path}", d.operator));
        envelope(curl_s(&a))
    };
    // OCSP answers in its own terms: a body over its bound (16 KiB, far below the listener's) is
    // a `malformedRequest` OCSP response (RFC 6960 §2.3), which every OCSP client understands.
    let (status, body) = curl_s(&[
        "-H".into(),
        "content-type: application/ocsp-request".into(),
        "--data-binary".into(),
        big_arg.clone(),
        format!("{}/ocsp", d.public),
    ]);
    assert_eq!((status, body.as_slice()), (200, &[0x30, 0x03, 0x0a, 0x01, 0x01][..]));
    let json = ["-H", "content-type: application/json", "--data-binary"];
    let cases: Vec<(Answer, (u16, &str))> = vec![
        // Item 7: a body over the limit, on raw-body and JSON handlers, on both listeners.
        (
            public("/api/v1/applications", &[&json[..], &[big_arg.as_str()]].concat()),
            (413, "body_too_large"),
        ),
        (
            admin("/api/v1/admin/revocations", &[&json[..], &[big_arg.as_str()]].concat()),
            (413, "body_too_large"),
        ),
        // Item 8: the iin query parameter missing, repeated, empty-named; a path segment that is
        // not UTF-8.
        (
            public("/api/v1/applications/PR78-KF1B-HZNF", &[]),
            (400, "query_invalid"),
        ),
        (
            public(
                "/api/v1/applications/PR78-KF1B-HZNF?iin=850315306048&iin=850315306048",
                &[],
            ),
            (400, "query_invalid"),
        ),
        (
            public("/api/v1/applications/PR78-KF1B-HZNF/certificates?=x", &[]),
            (400, "query_invalid"),
        ),
        (
            public("/api/v1/applications/PR78-KF1B-HZNF/survey", &[]),
            (400, "query_invalid"),
        ),
        (public("/api/v1/certificates/%FF%FE", &[]), (400, "path_invalid")),
        (public("/api/v1/applications/%C3%28?iin=1", &[]), (400, "path_invalid")),
        (
            admin("/api/v1/admin/operators/%FF/suspend", &["-X", "POST"]),
            (400, "path_invalid"),
        ),
        // Item 9: 21 octets is not a serial; 20 is, and is looked up.
        (
            public(&format!("/api/v1/certificates/{}", "7f".repeat(21)), &[]),
            (400, "serial_invalid"),
        ),
        (
            public(&format!("/api/v1/certificates/{}", "7f".repeat(20)), &[]),
            (404, "certificate_not_found"),
        ),
        // The wrong content type, and malformed JSON.
        (
            public(
                "/api/v1/applications",
                &["-H", "content-type: text/plain", "--data-binary", "{}"],
            ),
            (415, "content_type_unsupported"),
        ),
        (
            admin("/api/v1/admin/revocations", &["--data-binary", "{}"]),
            (415, "content_type_unsupported"),
        ),
        (
            admin("/api/v1/admin/revocations", &[&json[..], &["{\"serial\": "]].concat()),
            (400, "request_invalid"),
        ),
        (
            public(
                "/api/v1/applications/PR78-KF1B-HZNF/survey?iin=850315306048",
                &[&json[..], &["[1,2"]].concat(),
            ),
            (400, "request_invalid"),
        ),
        // A method the path does not take.
        (public("/api/v1/ca", &["-X", "DELETE"]), (405, "method_not_allowed")),
        (admin("/api/v1/admin/revocations", &[]), (405, "method_not_allowed")),
    ];
    for (got, (status, code)) in cases {
        assert_eq!((got.0, got.1.as_str()), (status, code));
    }
    assert_eq!(audit_records(&d), before, "a refused request changed the audit chain");
}

#[test]
fn a_newline_or_escape_in_administrator_input_forges_no_log_line() {
    for json in [false, true] {
        let mut d = Deployment::new();
        if json {
            d.env.push(("NCA_LOG_FORMAT".into(), "json".into()));
        }
        d.init();
        d.start();
        let work = tempfile::tempdir().unwrap();
        let (_, _, serial) = d.issue_individual(work.path(), "a", IIN, "ec:P-256");
        let forged = "INFO audit: admin request: administrator=[00] revoke=[00] reason=[keyCompromise]";
        for (serial, reason) in [
            (serial.as_str(), format!("keyCompromise\n{forged}")),
            (serial.as_str(), format!("keyCompromise\r\n{forged}\u{1b}[2K\u{1b}[1A")),
            ("00\nforged-serial", "keyCompromise".to_string()),
        ] {
            let body = serde_json::json!({"serial": serial, "reason": reason}).to_string();
            let (status, body) = d.admin_post("/api/v1/admin/revocations", &body);
            assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
        }
        // The certificate was not revoked by any of them.
        let (_, body) = d.get(&format!("/api/v1/certificates/{serial}"));
        assert!(String::from_utf8_lossy(&body).contains("\"status\":\"valid\""));
        let log = d.log();
        let lines: Vec<&str> = log.lines().collect();
        assert!(
            !lines
                .iter()
                .any(|l| l.starts_with("INFO audit") || l.starts_with("forged-serial")),
            "a value from outside began a line of the log:\n{log}"
        );
        let carrying: Vec<&&str> = lines.iter().filter(|l| l.contains("forged-serial")).collect();
        assert!(
            !carrying.is_empty() && carrying.iter().all(|l| l.contains("admin request: revoke")),
            "the serial's value is not on its event's line: {carrying:?}"
        );
        assert!(
            !log.contains("\u{1b}[2K"),
            "an escape sequence from outside reached the log"
        );
        if json {
            for l in &lines {
                serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
            }
        }
    }
}

#[test]
fn a_proof_of_work_dated_at_the_ends_of_time_is_refused_and_the_service_stays_up() {
    let mut d = Deployment::new();
    d.env.retain(|(name, _)| name != "NCA_POW_BITS");
    d.env.push(("NCA_POW_BITS".into(), "1".into()));
    d.init();
    d.start();
    let before = audit_records(&d);
    let url = format!("{}/api/v1/applications", d.public);
    let body = serde_json::json!({
        "service": "issue",
        "applicant": {"iin": IIN, "surname": "Құнанбай", "name": "Абай"},
        "registration_centre": d.first_centre(),
        "storage": "file",
    })
    .to_string();
    // `now - at` overflowed here: a debug build panicked and dropped the connection.
    for at in [i64::MIN.to_string(), i64::MAX.to_string()] {
        let header = format!("x-proof-of-work: nca-pow1:1:{at}:{IIN}:0123456789abcdef:0");
        let got = envelope(curl(&[
            "-H",
            "content-type: application/json",
            "-H",
            &header,
            "--data-binary",
            &body,
            &url,
        ]));
        assert_eq!(got, (400, "proof_of_work_invalid".to_string()), "{at}");
    }
    assert_eq!(d.get("/api/v1/openapi.json").0, 200, "the service answers after them");
    assert_eq!(audit_records(&d), before, "a refused stamp changed the audit chain");
}

/// A deployment whose `[http]` bounds are `http` (TOML lines replacing the section's defaults).
fn bounded(http: &str) -> Deployment {
    let mut d = Deployment::new();
    let base = include_str!("../../ca-config/nca.toml");
    let start = base.find("[http]\n").expect("nca.toml has an [http] section");
    let end = base[start + 1..].find("\n[").map_or(base.len(), |e| start + 1 + e + 1);
    let config = format!("{}[http]\n{http}\n{}", &base[..start], &base[end..]);
    let path = d.dir.path().join("nca.toml");
    write(&path, config.as_bytes());
    d.env.push(("NCA_CONFIG".into(), path.display().to_string()));
    d
}

fn addr(url: &str) -> String {
    url.split("://").nth(1).unwrap().trim_end_matches('/').to_string()
}

/// Reads until the peer closes (or `limit` passes); the bytes and how long it took.
fn read_to_close(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    s.set_read_timeout(Some(limit)).unwrap();
    let t = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "still open after {:?} ({e}); read {:?}",
                t.elapsed(),
                String::from_utf8_lossy(&out)
            ),
        }
    }
    (out, t.elapsed())
}

#[test]
fn slow_heads_idle_connections_slow_bodies_and_long_heads_are_cut_off() {
    let mut d = bounded(
        "head_timeout_seconds = 2\nhead_max_bytes = 16384\nbody_timeout_seconds = 2\n\
         tls_handshake_timeout_seconds = 2\nmax_connections_per_address = 0",
    );
    d.init();
    d.start();
    let public = addr(&d.public);

    // Half a head, then nothing: closed at the head timeout, not before, without an answer.
    let mut s = TcpStream::connect(&public).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: nca\r\n").unwrap();
    let (got, took) = read_to_close(&mut s, Duration::from_secs(10));
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "closed after {took:?}"
    );
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"), "{got:?}");

    // A head a byte at a time is still one head: the timer does not restart per byte.
    let mut s = TcpStream::connect(&public).unwrap();
    let t = Instant::now();
    for b in b"GET /healthz HTTP/1.1\r\nHost: nca\r\nX-Slow: ".iter().cycle() {
        if s.write_all(&[*b]).is_err() || t.elapsed() > Duration::from_secs(8) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        t.elapsed() < Duration::from_secs(6),
        "a dripped head kept the connection {:?}",
        t.elapsed()
    );

    // An answered request, then idle: the keep-alive connection is closed at the same bound.
    let mut s = TcpStream::connect(&public).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: nca\r\n\r\n").unwrap();
    let (got, took) = read_to_close(&mut s, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200") && text.contains("\"ok\""), "{text}");
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "idle closed after {took:?}"
    );

    // A body slower than its bound: 408 in the envelope, nothing submitted.
    let mut s = TcpStream::connect(&public).unwrap();
    s.write_all(
        b"POST /api/v1/applications HTTP/1.1\r\nHost: nca\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"service\":",
    )
    .unwrap();
    let (got, took) = read_to_close(&mut s, Duration::from_secs(10));
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"request_timeout\""), "{text}");
    assert!(took >= Duration::from_millis(1500), "408 after {took:?}");

    // A head over head_max_bytes: 431, closed.
    let mut s = TcpStream::connect(&public).unwrap();
    let long = format!(
        "GET /healthz HTTP/1.1\r\nHost: nca\r\nX-Long: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let _ = s.write_all(long.as_bytes());
    let (got, _) = read_to_close(&mut s, Duration::from_secs(10));
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 431"), "{got:?}");

    // The operator listener: a TCP connection that never says hello is closed at the TLS
    // handshake bound.
    let mut s = TcpStream::connect(addr(&d.operator)).unwrap();
    let (_, took) = read_to_close(&mut s, Duration::from_secs(10));
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "handshake closed after {took:?}"
    );

    // And after a handshake with the administrator's certificate, half a head is closed at the
    // head bound: openssl s_client exits when the service closes.
    let mut client = Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &addr(&d.operator), "-CAfile"])
        .arg(d.path("ca/root.pem"))
        .arg("-cert")
        .arg(d.path("admin/auth.crt"))
        .arg("-key")
        .arg(d.path("admin/auth.key"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(b"GET /healthz HTTP/1.1\r\nHost: nca\r\n").unwrap();
    let t = Instant::now();
    let exited = eventually(10, "s_client closed by the service", || {
        client.try_wait().unwrap().map(|_| t.elapsed())
    });
    drop(stdin);
    assert!(exited < Duration::from_secs(8), "TLS half head kept {exited:?}");
}

#[test]
fn connections_per_address_are_bounded_on_both_listeners() {
    let mut d = bounded(
        "head_timeout_seconds = 30\nhead_max_bytes = 16384\nbody_timeout_seconds = 30\n\
         tls_handshake_timeout_seconds = 30\nmax_connections_per_address = 3",
    );
    d.init();
    d.start();
    for listener in [addr(&d.public), addr(&d.operator)] {
        let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&listener).unwrap()).collect();
        // Give the service the time to accept the three.
        std::thread::sleep(Duration::from_millis(300));
        let mut fourth = TcpStream::connect(&listener).unwrap();
        let (got, took) = read_to_close(&mut fourth, Duration::from_secs(5));
        assert!(
            got.is_empty() && took < Duration::from_secs(2),
            "{listener}: {got:?} after {took:?}"
        );
        drop(held);
        std::thread::sleep(Duration::from_millis(300));
    }
    // Their places are given back: served again.
    assert_eq!(d.get("/healthz").0, 200);
    assert_eq!(d.admin_get("/healthz").0, 200);
}

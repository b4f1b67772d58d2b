//! The operator listener keeps a connection's access decision for a short time: a suspension,
//! a revocation or a dismissal still refuses the very next request on a kept-alive connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::harness::*;

const OPERATOR_IIN: &str = "920708497088";

/// One kept-alive TLS connection to the operator listener with a client certificate.
struct Connection {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl Connection {
    fn open(d: &Deployment, cert: &Path, key: &Path) -> Connection {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(&std::fs::read(d.path("ca/root.pem")).unwrap()) {
            roots.add(c.unwrap()).unwrap();
        }
        let chain = CertificateDer::pem_slice_iter(&std::fs::read(cert).unwrap())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(&std::fs::read(key).unwrap()).unwrap();
        let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap();
        let addr = d.operator.trim_start_matches("https://").trim_end_matches('/');
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
        Connection {
            tls: rustls::StreamOwned::new(conn, tcp),
        }
    }

    /// `GET path` on this connection: (status, body as JSON). Panics if the server closed it.
    fn get(&mut self, path: &str) -> (u16, serde_json::Value) {
        write!(self.tls, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
        self.tls.flush().unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(self.tls.read(&mut b).unwrap(), 1, "the server closed the connection");
            head.push(b[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let status = head[9..12].parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .expect("content-length");
        assert!(
            !head.to_ascii_lowercase().contains("connection: close"),
            "the server ends the connection: {head}"
        );
        let mut body = vec![0u8; len];
        self.tls.read_exact(&mut body).unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null))
    }
}

fn code(v: &serde_json::Value) -> Option<&str> {
    v["error"]["code"].as_str()
}

#[test]
fn a_kept_alive_connection_is_refused_at_once_after_a_suspension_or_a_revocation() {
    let mut d = Deployment::new();
    d.init();
    d.start();
    let centre = d.first_centre();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("op");
    let out = run_ok(&mut d.nca(&[
        "operator",
        "add",
        "--iin",
        OPERATOR_IIN,
        "--surname",
        "Сейітова",
        "--name",
        "Әсел",
        "--centre",
        &centre,
        "--out",
        &dir.display().to_string(),
        "--key-algorithm",
        "ec-p256",
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let auth_serial = v["auth_serial"].as_str().unwrap().to_string();
    let mut c = Connection::open(&d, &dir.join("auth.crt"), &dir.join("auth.key"));
    let admin = |path: &str, json: &str| {
        let (status, body) = d.admin_post(path, json);
        (
            status,
            serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default(),
        )
    };

    // Decided once, then kept for the connection's next requests.
    for _ in 0..3 {
        let (status, v) = c.get("/api/v1/operator/me");
        assert_eq!((status, v["iin"].as_str()), (200, Some(OPERATOR_IIN)), "{v}");
    }

    // Suspended (over another connection): the next request on this one is refused.
    let (status, v) = admin(&format!("/api/v1/admin/operators/{OPERATOR_IIN}/suspend"), "{}");
    assert_eq!(status, 200, "{v}");
    let (status, v) = c.get("/api/v1/operator/me");
    assert_eq!((status, code(&v)), (403, Some("operator_suspended")), "{v}");

    // A refusal is not kept: resumed, the operator acts again on the same connection.
    let (status, v) = admin(&format!("/api/v1/admin/operators/{OPERATOR_IIN}/resume"), "{}");
    assert_eq!(status, 200, "{v}");
    let (status, v) = c.get("/api/v1/operator/me");
    assert_eq!(status, 200, "{v}");
    let (status, _) = c.get("/api/v1/operator/me");
    assert_eq!(status, 200);

    // The AUTH certificate revoked: refused on the next request.
    let (status, v) = admin(
        "/api/v1/admin/revocations",
        &format!(r#"{{"serial": "{auth_serial}", "reason": "keyCompromise"}}"#),
    );
    assert_eq!(status, 201, "{v}");
    let (status, v) = c.get("/api/v1/operator/me");
    assert_eq!((status, code(&v)), (403, Some("client_certificate_revoked")), "{v}");
}

#[test]
fn a_dismissal_by_another_process_reaches_a_kept_alive_connection_within_the_kept_time() {
    let mut d = Deployment::new();
    d.init();
    d.start();
    let centre = d.first_centre();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("op");
    run_ok(&mut d.nca(&[
        "operator",
        "add",
        "--iin",
        OPERATOR_IIN,
        "--surname",
        "Сейітова",
        "--name",
        "Әсел",
        "--centre",
        &centre,
        "--out",
        &dir.display().to_string(),
        "--key-algorithm",
        "ec-p256",
    ]));
    let mut c = Connection::open(&d, &dir.join("auth.crt"), &dir.join("auth.key"));
    assert_eq!(c.get("/api/v1/operator/me").0, 200);
    // `nca operator dismiss` is a process of its own: the service hears nothing of it, and the
    // kept decision runs out after ACCESS_KEPT (1 s).
    run_ok(&mut d.nca(&[
        "operator",
        "dismiss",
        OPERATOR_IIN,
        "--now",
        "--reason",
        "keyCompromise",
    ]));
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let (status, v) = c.get("/api/v1/operator/me");
    assert_eq!((status, code(&v)), (403, Some("operator_dismissed")), "{v}");
}

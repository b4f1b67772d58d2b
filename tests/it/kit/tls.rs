//! TLS for the stand-ins: a CA and a server certificate for 127.0.0.1 made by openssl, and a
//! rustls acceptor serving them (the HTTPS registry gateway, the TLS hop before the monitoring
//! receiver).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use super::tools::{run_ok, write};

/// A CA and a server certificate for 127.0.0.1, made by openssl; returns (CA PEM, chain, key).
pub fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n);
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    run_ok(
        Command::new("openssl")
            .args(["req", "-x509", "-subj", "/CN=gateway test CA", "-days", "2"])
            .args(ec)
            .arg("-keyout")
            .arg(p("ca.key"))
            .arg("-out")
            .arg(p("ca.pem")),
    );
    run_ok(
        Command::new("openssl")
            .args(["req", "-new", "-subj", "/CN=127.0.0.1"])
            .args(ec)
            .arg("-keyout")
            .arg(p("gw.key"))
            .arg("-out")
            .arg(p("gw.csr")),
    );
    write(&p("ext"), b"subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(p("gw.csr"))
            .arg("-CA")
            .arg(p("ca.pem"))
            .arg("-CAkey")
            .arg(p("ca.key"))
            .arg("-extfile")
            .arg(p("ext"))
            .arg("-out")
            .arg(p("gw.pem")),
    );
    (p("ca.pem"), p("gw.pem"), p("gw.key"))
}

/// A rustls acceptor serving the chain and key that [`tls_files`] made.
pub fn acceptor(chain: &Path, key: &Path) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(chain)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

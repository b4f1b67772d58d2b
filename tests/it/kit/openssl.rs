//! openssl as the independent client: key pairs and requests, serials, path checks, and the
//! one `openssl cms -sign` of the suite.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::server::Deployment;
use super::tools::{run, run_ok, stdout};

/// A key pair and CSR made by openssl: `kind` is `rsa:2048`, `rsa:1024`, `ec:P-256`, `ec:P-384`.
pub fn openssl_csr(dir: &Path, name: &str, kind: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let mut c = Command::new("openssl");
    c.args(["req", "-new", "-nodes", "-subj", "/CN=ignored by the CA", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&csr);
    match kind.split_once(':') {
        Some(("rsa", bits)) => {
            c.args(["-newkey", &format!("rsa:{bits}")]);
        }
        Some(("ec", curve)) => {
            c.args(["-newkey", "ec", "-pkeyopt", &format!("ec_paramgen_curve:{curve}")]);
        }
        _ => panic!("kind {kind}"),
    }
    run_ok(&mut c);
    (key, csr)
}

/// A certificate's serial, lower-case hex, as openssl prints it.
pub fn serial_of(pem: &Path) -> String {
    let out = run_ok(
        Command::new("openssl")
            .args(["x509", "-noout", "-serial", "-in"])
            .arg(pem),
    );
    stdout(&out).trim().trim_start_matches("serial=").to_lowercase()
}

/// `openssl verify` of a certificate against the deployment's root and issuing CA.
pub fn openssl_verify(d: &Deployment, cert: &Path) -> Output {
    run(Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(d.path("ca/root.pem"))
        .arg("-untrusted")
        .arg(d.path("ca/issuing.pem"))
        .arg(cert))
}

/// `openssl cms -sign` of `content` with `cert` and `key`, SHA-256, the content attached, DER, into
/// `out` (what an operator's station or a citizen's NCALayer sends).
pub fn cms_sign(content: &Path, cert: &Path, key: &Path, out: &Path) -> PathBuf {
    cms_sign_as(content, cert, key, out, true, false)
}

/// `openssl cms -sign` with SHA-256, the content attached or detached, DER or PEM: the one copy of
/// this command in the suite.
pub fn cms_sign_as(content: &Path, cert: &Path, key: &Path, out: &Path, attached: bool, pem: bool) -> PathBuf {
    let mut c = Command::new("openssl");
    c.args(["cms", "-sign", "-binary", "-md", "sha256", "-outform"])
        .arg(if pem { "PEM" } else { "DER" })
        .arg("-in")
        .arg(content)
        .arg("-signer")
        .arg(cert)
        .arg("-inkey")
        .arg(key)
        .arg("-out")
        .arg(out);
    if attached {
        c.arg("-nodetach");
    }
    run_ok(&mut c);
    out.to_path_buf()
}

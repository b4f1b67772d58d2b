//! TLS for the service's own outgoing links (the state registry's gateway, the monitoring
//! system): rustls on the one crypto provider of the tree (aws-lc-rs), trusting the system's roots
//! or the CA file the configuration names instead.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;

/// Why a client's TLS could not be set up (fatal at start).
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    /// The CA file is unreadable or holds no certificate.
    #[error("CA file {path}: {message}")]
    CaFile { path: String, message: String },
    /// The system has no usable root certificates and no CA file is named.
    #[error("no system root certificates ({0}); name a CA file")]
    NoSystemRoots(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// A client configuration trusting `ca_file`'s certificates (PEM) when it is named, else the
/// system's roots. A plain-HTTP link (`https` false) without a CA file trusts nothing, and
/// needs no system roots to start.
pub fn client_config(ca_file: &Path, https: bool) -> Result<rustls::ClientConfig, ClientTlsError> {
    let mut roots = rustls::RootCertStore::empty();
    if ca_file.as_os_str().is_empty() && !https {
        // Never used: the link does not speak TLS.
    } else if ca_file.as_os_str().is_empty() {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
            return Err(ClientTlsError::NoSystemRoots(errors.join("; ")));
        }
    } else {
        let bad = |message: String| ClientTlsError::CaFile {
            path: ca_file.display().to_string(),
            message,
        };
        let pem = std::fs::read(ca_file).map_err(|e| bad(e.to_string()))?;
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots
                .add(cert.map_err(|e| bad(e.to_string()))?)
                .map_err(|e| bad(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(bad("no certificate in it".into()));
        }
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| ClientTlsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

//! The operator listener: TLS with a client certificate that must chain to this CA. The TLS
//! layer refuses a connection without one, so no handler ever sees an anonymous request.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::listen::{self, Limits};
use crate::operators::ClientIdentity;

/// Why the TLS listener cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {message}")]
    File { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Server config: our certificate chain and key, clients verified against the issuing CA (the
/// CA that signs operators' and administrators' certificates).
pub fn server_config(
    cert_chain_pem: &Path,
    key_pem: &Path,
    client_ca_der: &[u8],
) -> Result<rustls::ServerConfig, TlsError> {
    let file = |p: &Path| {
        std::fs::read(p).map_err(|e| TlsError::File {
            path: p.display().to_string(),
            message: e.to_string(),
        })
    };
    let chain_bytes = file(cert_chain_pem)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::File {
            path: cert_chain_pem.display().to_string(),
            message: e.to_string(),
        })?;
    let key_bytes = file(key_pem)?;
    let key: PrivateKeyDer<'static> = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| TlsError::File {
        path: key_pem.display().to_string(),
        message: match e {
            rustls::pki_types::pem::Error::NoItemsFound => "no private key".into(),
            e => e.to_string(),
        },
    })?;
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(client_ca_der.to_vec()))
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))
}

fn identity(conn: &rustls::ServerConnection) -> Option<ClientIdentity> {
    let leaf = conn.peer_certificates()?.first()?;
    let cert: x509_cert::Certificate = der::Decode::from_der(leaf.as_ref()).ok()?;
    Some(ClientIdentity {
        serial: hex::encode(cert.tbs_certificate.serial_number.as_bytes()),
        subject: crate::pki::subject::display(&cert.tbs_certificate.subject),
        access: Default::default(),
    })
}

/// Accepts TLS connections until `shutdown` fires, each handshake bounded in time; each
/// connection's requests carry its client identity. The other bounds are `listen.rs`'s.
pub async fn serve(
    listener: TcpListener,
    config: rustls::ServerConfig,
    router: Router,
    limits: Limits,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(Arc::new(config));
    listen::accept_loop(
        "operator",
        listener,
        limits,
        shutdown,
        move |tcp, peer: SocketAddr, stop| {
            let (acceptor, router) = (acceptor.clone(), router.clone());
            async move {
                let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::info!(%peer, error = %e, "TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let who = identity(tls.get_ref().1);
                listen::serve_connection(tls, peer, who, router, limits, stop).await;
            }
        },
    )
    .await
}

//! The workstation's HTTPS client for the operator listener. The TLS client key is the
//! operator's AUTH key on their token: rustls asks the token to sign the handshake through
//! PKCS#11, so the key never leaves it. TLS 1.3 wants RSA-PSS from an RSA key
//! (CKM_SHA256_RSA_PKCS_PSS); TLS 1.2 takes PKCS#1 v1.5; a P-256 key signs ECDSA.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Uri, header};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{RootCertStore, SignatureAlgorithm, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::keys::Signer;

/// Why a request to the operator listener did not get an answer it could use.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// `--server` is not an `https://host[:port]` URL.
    #[error("server URL {0:?}: expected https://host[:port]")]
    Url(String),
    /// The file of trusted CA certificates cannot be read or holds none.
    #[error("CA certificates {path}: {message}")]
    Trust { path: String, message: String },
    /// The TLS client could not be set up with the operator's AUTH key.
    #[error("TLS client: {0}")]
    Tls(String),
    /// No connection: the server is down or unreachable, the TLS handshake failed (the server's
    /// certificate is not trusted, or the listener refused the operator's certificate).
    #[error("connecting to {server}: {message}")]
    Connect { server: String, message: String },
    /// The connection broke during a request; the request may or may not have been acted on.
    #[error("request to {path}: {message}")]
    Exchange { path: String, message: String },
    /// The service answered with an error (`{"error": {"code", "message"}}`).
    #[error("the service answered {status} ({code}): {message}")]
    Status { status: u16, code: String, message: String },
    /// The service answered something that is not what this endpoint returns.
    #[error("unexpected answer from {path}: {message}")]
    Body { path: String, message: String },
}

/// One answer: status and body.
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self, path: &str) -> Result<serde_json::Value, ServerError> {
        serde_json::from_slice(&self.body).map_err(|e| ServerError::Body {
            path: path.to_string(),
            message: e.to_string(),
        })
    }

    /// The answer as an error, from the service's `{"error": {…}}` body when it has one.
    pub fn error(&self) -> ServerError {
        let v: serde_json::Value = serde_json::from_slice(&self.body).unwrap_or_default();
        ServerError::Status {
            status: self.status,
            code: v["error"]["code"].as_str().unwrap_or("unknown").to_string(),
            message: v["error"]["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| String::from_utf8_lossy(&self.body).chars().take(200).collect()),
        }
    }
}

/// A client of one operator listener, keeping its connection between requests.
pub struct Server {
    authority: String,
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    sender: tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl Server {
    /// A client of `url` that trusts the CA certificates in `ca_file` (PEM) and authenticates
    /// with `auth` (the key on the token) and its certificate.
    pub fn new(url: &str, ca_file: &Path, auth: Arc<dyn Signer>, auth_cert: Vec<u8>) -> Result<Self, ServerError> {
        let uri: Uri = url.parse().map_err(|_| ServerError::Url(url.to_string()))?;
        if uri.scheme_str() != Some("https") || !uri.path().trim_matches('/').is_empty() {
            return Err(ServerError::Url(url.to_string()));
        }
        let host = uri.host().ok_or_else(|| ServerError::Url(url.to_string()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let port = uri.port_u16().unwrap_or(443);
        let server_name = ServerName::try_from(host.clone()).map_err(|_| ServerError::Url(url.to_string()))?;

        let trust = |message: String| ServerError::Trust {
            path: ca_file.display().to_string(),
            message,
        };
        let pem = std::fs::read(ca_file).map_err(|e| trust(e.to_string()))?;
        let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| trust(e.to_string()))?;
        let mut roots = RootCertStore::empty();
        // A system bundle may hold a certificate webpki cannot parse; the others still count.
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(trust("no CA certificate in the file".into()));
        }

        let key = Arc::new(TokenKey { key: auth });
        let certified = rustls::sign::CertifiedKey::new(vec![CertificateDer::from(auth_cert)], key);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ServerError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
        Ok(Server {
            authority: uri.authority().map(|a| a.to_string()).unwrap_or_default(),
            host,
            port,
            server_name,
            connector: TlsConnector::from(Arc::new(config)),
            sender: tokio::sync::Mutex::new(None),
        })
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ServerError> {
        let failed = |message: String| ServerError::Connect {
            server: self.authority.clone(),
            message,
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| failed(e.to_string()))?;
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| failed(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("operator listener connection: {e}");
            }
        });
        Ok(sender)
    }

    /// Sends one request; the answer whatever its status.
    pub async fn send(&self, method: Method, path: &str, body: Option<(&str, Vec<u8>)>) -> Result<Reply, ServerError> {
        let exchange = |e: &dyn std::fmt::Display| ServerError::Exchange {
            path: path.to_string(),
            message: e.to_string(),
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.authority);
        let body = match body {
            Some((ctype, bytes)) => {
                builder = builder.header(header::CONTENT_TYPE, ctype);
                Full::new(Bytes::from(bytes))
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder.body(body).map_err(|e| exchange(&e))?;
        let mut slot = self.sender.lock().await;
        // The connection of the last request when it is still open; a new one otherwise.
        let mut sender = match slot.take() {
            Some(mut s) => match s.ready().await {
                Ok(()) => s,
                Err(_) => self.connect().await?,
            },
            None => self.connect().await?,
        };
        let response = sender.send_request(request).await.map_err(|e| exchange(&e))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| exchange(&e))?
            .to_bytes();
        *slot = Some(sender);
        Ok(Reply { status, body })
    }

    pub async fn get(&self, path: &str) -> Result<Reply, ServerError> {
        self.send(Method::GET, path, None).await
    }

    pub async fn post_json(&self, path: &str, json: &serde_json::Value) -> Result<Reply, ServerError> {
        self.send(
            Method::POST,
            path,
            Some(("application/json", json.to_string().into_bytes())),
        )
        .await
    }
}

/// The operator's AUTH key on the token, as rustls sees a client key.
struct TokenKey {
    key: Arc<dyn Signer>,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey").field("label", &self.key.label()).finish()
    }
}

impl rustls::sign::SigningKey for TokenKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn rustls::sign::Signer>> {
        // PSS first: TLS 1.3 offers nothing else for RSA; a TLS 1.2 server may want PKCS#1.
        let ours: &[SignatureScheme] = if self.key.algorithm().is_rsa() {
            &[SignatureScheme::RSA_PSS_SHA256, SignatureScheme::RSA_PKCS1_SHA256]
        } else {
            &[SignatureScheme::ECDSA_NISTP256_SHA256]
        };
        let scheme = *ours.iter().find(|s| offered.contains(s))?;
        Some(Box::new(TokenSigner {
            key: Arc::clone(&self.key),
            scheme,
        }))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        if self.key.algorithm().is_rsa() {
            SignatureAlgorithm::RSA
        } else {
            SignatureAlgorithm::ECDSA
        }
    }
}

struct TokenSigner {
    key: Arc<dyn Signer>,
    scheme: SignatureScheme,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("label", &self.key.label())
            .field("scheme", &self.scheme)
            .finish()
    }
}

impl rustls::sign::Signer for TokenSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let sign = || match self.scheme {
            SignatureScheme::RSA_PSS_SHA256 => self.key.sign_rsa_pss_blocking(message),
            _ => self.key.sign_blocking(message),
        };
        super::blocking(sign).map_err(|e| rustls::Error::General(format!("signing with the operator's AUTH key: {e}")))
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

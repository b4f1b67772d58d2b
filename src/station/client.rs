//! The workstation's HTTPS client for the operator listener. The TLS client key is the
//! operator's AUTH key on their token: rustls asks the token to sign the handshake through
//! PKCS#11, so the key never leaves it. TLS 1.3 wants RSA-PSS from an RSA key
//! (CKM_SHA256_RSA_PKCS_PSS); TLS 1.2 takes PKCS#1 v1.5; a P-256 key signs ECDSA.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use reqwest::Method;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{RootCertStore, SignatureAlgorithm, SignatureScheme};

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

/// A client of one operator listener, keeping its connection between requests (reqwest's pool,
/// on the TLS configuration made here: the client key is the token's).
pub struct Server {
    base: reqwest::Url,
    authority: String,
    client: reqwest::Client,
}

impl Server {
    /// A client of `url` that trusts the CA certificates in `ca_file` (PEM) and authenticates
    /// with `auth` (the key on the token) and its certificate.
    pub fn new(url: &str, ca_file: &Path, auth: Arc<dyn Signer>, auth_cert: Vec<u8>) -> Result<Self, ServerError> {
        let bad_url = || ServerError::Url(url.to_string());
        let base = reqwest::Url::parse(url).map_err(|_| bad_url())?;
        if base.scheme() != "https"
            || base.host_str().is_none()
            || !base.path().trim_matches('/').is_empty()
            || base.query().is_some()
            || !base.username().is_empty()
        {
            return Err(bad_url());
        }
        let authority = match base.port() {
            Some(port) => format!("{}:{port}", base.host_str().unwrap_or_default()),
            None => base.host_str().unwrap_or_default().to_string(),
        };

        let trust = |message: String| ServerError::Trust {
            path: ca_file.display().to_string(),
            message,
        };
        let pem = std::fs::read(ca_file).map_err(|e| trust(e.to_string()))?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
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
        let config = rustls::ClientConfig::builder_with_provider(provider()?)
            .with_safe_default_protocol_versions()
            .map_err(|e| ServerError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(config)
            // One operator, one request at a time: one connection, kept.
            .pool_max_idle_per_host(1)
            .tcp_nodelay(true)
            // An answer is the listener's own: a redirect elsewhere is not followed.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ServerError::Tls(e.to_string()))?;
        Ok(Server {
            base,
            authority,
            client,
        })
    }

    /// Sends one request; the answer whatever its status.
    pub async fn send(&self, method: Method, path: &str, body: Option<(&str, Vec<u8>)>) -> Result<Reply, ServerError> {
        let exchange = |e: reqwest::Error| {
            // No connection at all is the server's absence (or a refused handshake); a break
            // afterwards leaves the request's fate unknown.
            if e.is_connect() {
                ServerError::Connect {
                    server: self.authority.clone(),
                    message: error_chain(&e),
                }
            } else {
                ServerError::Exchange {
                    path: path.to_string(),
                    message: error_chain(&e),
                }
            }
        };
        let url = self.base.join(path).map_err(|e| ServerError::Exchange {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        let mut request = self.client.request(method, url);
        if let Some((ctype, bytes)) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, ctype).body(bytes);
        }
        let response = request.send().await.map_err(exchange)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(exchange)?;
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

/// The crypto provider of the service's own outgoing links (`tls_client`'s), so that the
/// station's link never brings a second one into the tree.
fn provider() -> Result<Arc<rustls::crypto::CryptoProvider>, ServerError> {
    let plain = crate::tls_client::client_config(Path::new(""), false).map_err(|e| ServerError::Tls(e.to_string()))?;
    Ok(Arc::clone(plain.crypto_provider()))
}

/// reqwest's error with its causes: "error sending request" alone says nothing of a refused
/// certificate or a closed port.
fn error_chain(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
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

//! Software keys: PKCS#8 files under `$NCA_DATA_DIR/keys/`, mode 0600. For development and the
//! embedded default only; the service warns at start and a production configuration refuses it.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};

use super::{KeyAlgorithm, KeyStore, KeyStoreError, Signer, p256_spki, rsa_spki};

pub struct SoftwareStore {
    dir: PathBuf,
    development: bool,
}

impl SoftwareStore {
    pub fn new(dir: PathBuf, development: bool) -> Self {
        SoftwareStore { dir, development }
    }

    fn path(&self, label: &str) -> Result<PathBuf, KeyStoreError> {
        if label.is_empty()
            || !label.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || label.starts_with('.')
        {
            return Err(KeyStoreError::Software(format!("bad key label {label:?}")));
        }
        Ok(self.dir.join(format!("{label}.p8")))
    }
}

fn err(e: impl std::fmt::Display) -> KeyStoreError {
    KeyStoreError::Software(e.to_string())
}

impl KeyStore for SoftwareStore {
    fn kind(&self) -> &'static str {
        "software"
    }

    fn generate(&self, label: &str, alg: KeyAlgorithm) -> Result<Arc<dyn Signer>, KeyStoreError> {
        let path = self.path(label)?;
        let pkcs8 = new_pkcs8(alg)?;
        fs::create_dir_all(&self.dir).map_err(err)?;
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = match opts.open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(KeyStoreError::KeyExists(label.to_string()));
            }
            Err(e) => return Err(err(e)),
        };
        f.write_all(&pkcs8).and_then(|_| f.sync_all()).map_err(err)?;
        Ok(Arc::new(SoftwareKey::from_pkcs8(label, &pkcs8)?.kept_in(path)))
    }

    fn open(&self, label: &str) -> Result<Arc<dyn Signer>, KeyStoreError> {
        let path = self.path(label)?;
        let meta = fs::metadata(&path).map_err(|_| KeyStoreError::KeyNotFound(label.to_string()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 && !self.development {
                return Err(KeyStoreError::UnsafeKeyFile(path.display().to_string()));
            }
        }
        let _ = meta;
        let pkcs8 = fs::read(&path).map_err(err)?;
        Ok(Arc::new(SoftwareKey::from_pkcs8(label, &pkcs8)?.kept_in(path)))
    }

    fn check(&self) -> Result<(), KeyStoreError> {
        fs::read_dir(&self.dir).map(|_| ()).map_err(err)
    }
}

/// A new private key in PKCS#8 DER, made in this process: for software CA keys (development)
/// and for keys that are handed out as files (an operator's development credentials, the first
/// administrator's, the TLS listener's).
pub fn new_pkcs8(alg: KeyAlgorithm) -> Result<Vec<u8>, KeyStoreError> {
    Ok(match alg {
        KeyAlgorithm::EcP256 => {
            let rng = SystemRandom::new();
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                .map_err(err)?
                .as_ref()
                .to_vec()
        }
        KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa4096 => {
            // AWS-LC's key generation (C, optimised in every profile): ~0.1 s for RSA-2048
            // where the pure-Rust `rsa` crate took seconds in a debug build.
            let size = if alg == KeyAlgorithm::Rsa4096 {
                KeySize::Rsa4096
            } else {
                KeySize::Rsa2048
            };
            let kp = RsaKeyPair::generate(size).map_err(err)?;
            let doc = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&kp).map_err(err)?;
            doc.as_ref().to_vec()
        }
    })
}

enum Inner {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A key held in process memory, loaded from its PKCS#8 file.
pub struct SoftwareKey {
    label: String,
    alg: KeyAlgorithm,
    spki: Vec<u8>,
    inner: Inner,
    rng: SystemRandom,
    /// The key store's file of this key, when it has one: the key signs only while the file is
    /// there and readable, as a token's key only while the token is present. Gone (a volume
    /// unmounted, the directory moved, the file's mode taken away), the key store is
    /// unavailable until it is back.
    file: Option<PathBuf>,
}

impl SoftwareKey {
    pub fn from_pkcs8(label: &str, pkcs8: &[u8]) -> Result<Self, KeyStoreError> {
        let rng = SystemRandom::new();
        if let Ok(kp) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8) {
            let spki = p256_spki(kp.public_key().as_ref())?;
            return Ok(SoftwareKey {
                label: label.into(),
                alg: KeyAlgorithm::EcP256,
                spki,
                inner: Inner::Ec(kp),
                rng,
                file: None,
            });
        }
        let kp = RsaKeyPair::from_pkcs8(pkcs8).map_err(|e| err(format!("{label}: {e}")))?;
        let alg = if kp.public_modulus_len() * 8 >= 4096 {
            KeyAlgorithm::Rsa4096
        } else {
            KeyAlgorithm::Rsa2048
        };
        let spki = rsa_spki(kp.public_key().as_ref())?;
        Ok(SoftwareKey {
            label: label.into(),
            alg,
            spki,
            inner: Inner::Rsa(kp),
            rng,
            file: None,
        })
    }

    fn kept_in(self, file: PathBuf) -> Self {
        SoftwareKey {
            file: Some(file),
            ..self
        }
    }
}

impl Signer for SoftwareKey {
    fn label(&self) -> &str {
        &self.label
    }
    fn algorithm(&self) -> KeyAlgorithm {
        self.alg
    }
    fn spki_der(&self) -> &[u8] {
        &self.spki
    }
    fn cheap_in_place(&self) -> bool {
        matches!(self.inner, Inner::Ec(_))
    }
    fn sign_blocking(&self, msg: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        if let Some(file) = &self.file {
            fs::File::open(file).map_err(|e| err(format!("{}: {e}", file.display())))?;
        }
        match &self.inner {
            Inner::Ec(kp) => Ok(kp.sign(&self.rng, msg).map_err(err)?.as_ref().to_vec()),
            Inner::Rsa(kp) => {
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA256, &self.rng, msg, &mut sig)
                    .map_err(err)?;
                Ok(sig)
            }
        }
    }
}

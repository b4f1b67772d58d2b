//! Key stores: where the CA's private keys live and sign.
//!
//! Two stores stand behind one [`Signer`] trait: `software` (PKCS#8 files in the data directory,
//! for development and the embedded default only) and `pkcs11` (an HSM or token through
//! cryptoki). Nothing above this module ever sees private key bytes; callers hand over the bytes
//! to sign and get a signature back.

mod pkcs11;
mod software;
pub mod token;

use std::fmt;
use std::sync::Arc;

use der::Encode;
use spki::{AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned};

pub use pkcs11::{PinTries, Pkcs11Config, Pkcs11Store, Pkcs11Token};
pub use software::{SoftwareKey, SoftwareStore, new_pkcs8};

/// OIDs of the algorithms this module knows.
pub mod oid {
    use spki::ObjectIdentifier;
    pub const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
    pub const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
    pub const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    pub const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
    pub const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
}

/// The key algorithms the centre uses: RSA for both hierarchies' CAs and end entities, P-256 as
/// the second family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    Rsa2048,
    Rsa4096,
    EcP256,
}

impl KeyAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa2048 => "rsa-2048",
            KeyAlgorithm::Rsa4096 => "rsa-4096",
            KeyAlgorithm::EcP256 => "ec-p256",
        }
    }

    pub fn is_rsa(self) -> bool {
        matches!(self, KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa4096)
    }

    pub fn rsa_bits(self) -> Option<usize> {
        match self {
            KeyAlgorithm::Rsa2048 => Some(2048),
            KeyAlgorithm::Rsa4096 => Some(4096),
            KeyAlgorithm::EcP256 => None,
        }
    }

    /// The signature algorithm a key of this kind signs certificates, CRLs and OCSP answers with:
    /// sha256WithRSAEncryption (parameters NULL, as RFC 4055 requires) or ecdsa-with-SHA256
    /// (parameters absent, RFC 5758).
    pub fn signature_algorithm(self) -> AlgorithmIdentifierOwned {
        if self.is_rsa() {
            AlgorithmIdentifierOwned {
                oid: oid::SHA256_WITH_RSA,
                parameters: Some(der::asn1::Null.into()),
            }
        } else {
            AlgorithmIdentifierOwned {
                oid: oid::ECDSA_WITH_SHA256,
                parameters: None,
            }
        }
    }
}

impl std::str::FromStr for KeyAlgorithm {
    type Err = KeyStoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "rsa-2048" | "rsa2048" => Ok(KeyAlgorithm::Rsa2048),
            "rsa-4096" | "rsa4096" => Ok(KeyAlgorithm::Rsa4096),
            "ec-p256" | "p-256" | "p256" | "ecdsa-p256" => Ok(KeyAlgorithm::EcP256),
            _ => Err(KeyStoreError::UnsupportedAlgorithm(s.to_string())),
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What can go wrong in a key store. None of these carries a PIN or key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    /// A configuration or request names an algorithm this project does not support.
    #[error("unsupported key algorithm {0:?} (rsa-2048, rsa-4096 or ec-p256)")]
    UnsupportedAlgorithm(String),
    /// No key with this label exists in the store; the deployment is not initialised or the
    /// token is not the one the database was made with.
    #[error("no key labelled {0:?} in the key store")]
    KeyNotFound(String),
    /// A key with this label already exists; the ceremony never overwrites a key.
    #[error("a key labelled {0:?} already exists in the key store")]
    KeyExists(String),
    /// The PKCS#11 token named in the configuration is not present in any slot.
    #[error("no PKCS#11 token labelled {0:?}")]
    TokenNotFound(String),
    /// The PIN for the token is missing from the environment.
    #[error("the PKCS#11 PIN is not set (NCA_PKCS11_PIN or NCA_PKCS11_PIN_FILE)")]
    PinMissing,
    /// The token refused the PIN (CKR_PIN_INCORRECT); how many tries are left is in the
    /// token's flags, not in this error.
    #[error("the token refused the PIN")]
    PinIncorrect,
    /// The token's PIN is blocked after too many wrong tries (CKR_PIN_LOCKED, or
    /// CKF_USER_PIN_LOCKED before a try): only the PIN-unblocking procedure helps.
    #[error("the token's PIN is locked")]
    PinLocked,
    /// The token has no room for another object (CKR_DEVICE_MEMORY), or says so in advance.
    #[error("the token has no room left for the keys and certificates")]
    TokenFull,
    /// The token was taken out of its reader during an operation (CKR_DEVICE_REMOVED,
    /// CKR_TOKEN_NOT_PRESENT).
    #[error("the token was removed")]
    TokenRemoved,
    /// The PKCS#11 module refused or failed an operation; the message is the module's code.
    #[error("PKCS#11: {0}")]
    Pkcs11(String),
    /// A software key file could not be read, written or parsed.
    #[error("software key store: {0}")]
    Software(String),
    /// A software key file is readable by others than its owner: refused outside development.
    #[error("key file {0} is readable by group or others")]
    UnsafeKeyFile(String),
}

impl From<cryptoki::error::Error> for KeyStoreError {
    fn from(e: cryptoki::error::Error) -> Self {
        use cryptoki::error::{Error, RvError};
        match e {
            Error::Pkcs11(RvError::PinIncorrect, _) => KeyStoreError::PinIncorrect,
            Error::Pkcs11(RvError::PinLocked, _) => KeyStoreError::PinLocked,
            Error::Pkcs11(RvError::DeviceMemory, _) => KeyStoreError::TokenFull,
            Error::Pkcs11(RvError::DeviceRemoved | RvError::TokenNotPresent, _) => KeyStoreError::TokenRemoved,
            e => KeyStoreError::Pkcs11(e.to_string()),
        }
    }
}

/// A private key that signs. Implementations block (an HSM round trip, an RSA operation), so the
/// async code calls [`sign`] which moves the work off the runtime.
pub trait Signer: Send + Sync + 'static {
    /// The key's label in its store (CKA_LABEL on a token, the file stem in software).
    fn label(&self) -> &str;
    fn algorithm(&self) -> KeyAlgorithm;
    /// SubjectPublicKeyInfo, DER.
    fn spki_der(&self) -> &[u8];
    /// Signs `msg` (the whole to-be-signed structure, not a hash) with SHA-256 and the key's
    /// scheme; returns the signature as it goes into X.509: PKCS#1 v1.5 bytes for RSA, a DER
    /// `ECDSA-Sig-Value` for P-256.
    fn sign_blocking(&self, msg: &[u8]) -> Result<Vec<u8>, KeyStoreError>;
    /// Whether a signature costs less than the hop to the blocking pool and back (a P-256 key in
    /// process memory: ~20 µs), so that [`sign_in_place_if_cheap`] may make it on the caller's
    /// thread. Keys on a token never do: a round trip to it may take milliseconds.
    fn cheap_in_place(&self) -> bool {
        false
    }
    /// Signs `msg` with RSASSA-PSS, SHA-256, MGF1 with SHA-256 and a 32-byte salt: what TLS 1.3
    /// asks of an RSA client key. Keys that cannot (P-256 keys, software keys) say so.
    fn sign_rsa_pss_blocking(&self, _msg: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        Err(KeyStoreError::UnsupportedAlgorithm(format!(
            "RSA-PSS with {} key {}",
            self.algorithm(),
            self.label()
        )))
    }
}

/// Signs on the blocking pool so that an HSM round trip never stalls the async runtime. A P-256
/// key in memory was measured signing in place too (BENCHMARKS.md, issue #17): the engine no
/// faster, the OCSP nonce path slower with a worse p99, so every key signs here.
pub async fn sign<M>(signer: &Arc<dyn Signer>, msg: M) -> Result<Vec<u8>, KeyStoreError>
where
    M: AsRef<[u8]> + Send + 'static,
{
    let signer = Arc::clone(signer);
    tokio::task::spawn_blocking(move || signer.sign_blocking(msg.as_ref()))
        .await
        .map_err(|e| KeyStoreError::Pkcs11(format!("signing task failed: {e}")))?
}

/// As [`sign`], but a key whose signature is cheap ([`Signer::cheap_in_place`]) signs on the
/// calling task, without the two thread hops and wake-ups of the blocking pool. For issuance only,
/// where it was measured faster (issue #17); the OCSP nonce path measured a worse p99 signing in
/// place, and keeps [`sign`].
pub async fn sign_in_place_if_cheap<M>(signer: &Arc<dyn Signer>, msg: M) -> Result<Vec<u8>, KeyStoreError>
where
    M: AsRef<[u8]> + Send + 'static,
{
    if signer.cheap_in_place() {
        signer.sign_blocking(msg.as_ref())
    } else {
        sign(signer, msg).await
    }
}

/// A place that makes and keeps private keys.
pub trait KeyStore: Send + Sync + 'static {
    /// `software` or `pkcs11`.
    fn kind(&self) -> &'static str;
    /// Makes a new key inside the store; refuses a label that exists.
    fn generate(&self, label: &str, alg: KeyAlgorithm) -> Result<Arc<dyn Signer>, KeyStoreError>;
    /// Finds a key made earlier.
    fn open(&self, label: &str) -> Result<Arc<dyn Signer>, KeyStoreError>;
    /// For `/readyz`: the store answers (the token is present and logged in).
    fn check(&self) -> Result<(), KeyStoreError>;
}

/// SPKI for an RSA key given its PKCS#1 `RSAPublicKey` DER.
pub fn rsa_spki(rsa_public_key_der: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
    spki_der(
        AlgorithmIdentifierOwned {
            oid: oid::RSA_ENCRYPTION,
            parameters: Some(der::asn1::Null.into()),
        },
        rsa_public_key_der,
    )
}

/// SPKI for a P-256 key given its uncompressed point `04||X||Y`.
pub fn p256_spki(point: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
    let curve = der::Any::from(&oid::SECP256R1);
    spki_der(
        AlgorithmIdentifierOwned {
            oid: oid::EC_PUBLIC_KEY,
            parameters: Some(curve),
        },
        point,
    )
}

fn spki_der(algorithm: AlgorithmIdentifierOwned, key: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
    let bits = der::asn1::BitString::from_bytes(key).map_err(|e| KeyStoreError::Software(e.to_string()))?;
    SubjectPublicKeyInfoOwned {
        algorithm,
        subject_public_key: bits,
    }
    .to_der()
    .map_err(|e| KeyStoreError::Software(e.to_string()))
}

/// Turns a raw `r||s` ECDSA signature (what PKCS#11 returns) into the DER `ECDSA-Sig-Value`.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
    if !raw.len().is_multiple_of(2) || raw.is_empty() {
        return Err(KeyStoreError::Pkcs11(format!(
            "ECDSA signature of odd length {}",
            raw.len()
        )));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let r = der::asn1::UintRef::new(r).map_err(|e| KeyStoreError::Pkcs11(e.to_string()))?;
    let s = der::asn1::UintRef::new(s).map_err(|e| KeyStoreError::Pkcs11(e.to_string()))?;
    let mut out = Vec::with_capacity(72);
    der::Header::new(
        der::Tag::Sequence,
        (r.encoded_len().and_then(|l| l + s.encoded_len()?)).map_err(|e| KeyStoreError::Pkcs11(e.to_string()))?,
    )
    .and_then(|h| h.encode_to_vec(&mut out))
    .and_then(|_| r.encode_to_vec(&mut out))
    .and_then(|_| s.encode_to_vec(&mut out))
    .map_err(|e| KeyStoreError::Pkcs11(e.to_string()))?;
    Ok(out)
}

/// The algorithm of a public key, judged from its SPKI; `None` for anything we do not support.
pub fn algorithm_of_spki(spki: &SubjectPublicKeyInfoOwned) -> Option<(KeyAlgorithm, usize)> {
    if spki.algorithm.oid == oid::RSA_ENCRYPTION {
        let bits = rsa_modulus_bits(spki.subject_public_key.raw_bytes())?;
        let alg = if bits >= 4096 {
            KeyAlgorithm::Rsa4096
        } else {
            KeyAlgorithm::Rsa2048
        };
        Some((alg, bits))
    } else if spki.algorithm.oid == oid::EC_PUBLIC_KEY {
        let curve: ObjectIdentifier = spki.algorithm.parameters.as_ref()?.decode_as().ok()?;
        (curve == oid::SECP256R1).then_some((KeyAlgorithm::EcP256, 256))
    } else {
        None
    }
}

/// Bit length of the modulus in a PKCS#1 `RSAPublicKey`.
pub fn rsa_modulus_bits(rsa_public_key_der: &[u8]) -> Option<usize> {
    #[derive(der::Sequence)]
    struct RsaPublicKey<'a> {
        modulus: der::asn1::UintRef<'a>,
        _public_exponent: der::asn1::UintRef<'a>,
    }
    let key: RsaPublicKey<'_> = der::Decode::from_der(rsa_public_key_der).ok()?;
    let m = key.modulus.as_bytes();
    let first = *m.first()?;
    Some((m.len() - 1) * 8 + (8 - first.leading_zeros() as usize))
}

/// Which key store to open, and with what: all `open_store` needs of the configuration
/// (`Config::key_store_opening` makes it), so that the key stores depend on nothing above them.
#[derive(Debug)]
pub enum Opening {
    /// PKCS#8 files in `dir`; `development` allows what only a development run may.
    Software {
        dir: std::path::PathBuf,
        development: bool,
    },
    Pkcs11(Pkcs11Config),
}

/// Opens the key store named.
pub fn open_store(opening: Opening) -> Result<Arc<dyn KeyStore>, KeyStoreError> {
    match opening {
        Opening::Software { dir, development } => Ok(Arc::new(SoftwareStore::new(dir, development))),
        Opening::Pkcs11(config) => Ok(Arc::new(Pkcs11Store::open_reconnecting(config)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_raw_to_der_pads_high_bit_and_strips_zeros() {
        let mut raw = vec![0u8; 64];
        raw[0] = 0x00;
        raw[1] = 0x81;
        raw[32] = 0x7f;
        let der = ecdsa_raw_to_der(&raw).unwrap();
        // r: leading zero stripped (31 bytes), then 0x81 needs a pad byte: 02 20 00 81 …
        assert_eq!(&der[2..6], &[0x02, 0x20, 0x00, 0x81]);
        // s: 0x7f needs no pad: 02 20 7f …
        assert_eq!(&der[36..39], &[0x02, 0x20, 0x7f]);
    }

    #[test]
    fn algorithm_names_round_trip() {
        for a in [KeyAlgorithm::Rsa2048, KeyAlgorithm::Rsa4096, KeyAlgorithm::EcP256] {
            assert_eq!(a.name().parse::<KeyAlgorithm>().unwrap(), a);
        }
        assert!("rsa-1024".parse::<KeyAlgorithm>().is_err());
    }
}

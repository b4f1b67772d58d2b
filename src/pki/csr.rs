//! PKCS#10 requests: parsed strictly (DER, one structure, nothing trailing) and their signature
//! checked as proof that the requester holds the private key.

use aws_lc_rs::signature::{self, UnparsedPublicKey};
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::request::CertReq;

use crate::keys::oid;

/// Why a CSR is refused. Nothing is recorded for any of these.
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    /// Not PEM or DER of a PKCS#10 request, truncated, or with trailing data.
    #[error("the CSR is not a well-formed PKCS#10 request: {0}")]
    Malformed(String),
    /// The request's signature does not verify with its own public key: no proof of possession.
    #[error("the CSR's signature does not verify with its public key")]
    BadSignature,
    /// The request is signed with an algorithm other than SHA-256/384/512 with RSA or ECDSA.
    #[error("the CSR is signed with an unsupported algorithm {0}")]
    UnsupportedSignature(String),
}

/// Whether [`crate::pki::Ca::prepare`] verifies a CSR's signature again, or relies on its caller
/// having verified it when the request was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Possession {
    /// Not known to be proven: the signature is verified before anything is built.
    Check,
    /// The caller verified this CSR, byte for byte, when it accepted it (the workflow: at
    /// submission, and the operator's signature binds the CSR's digest since the identity step).
    /// The CSR is still parsed and its key judged; only the signature is not verified twice.
    ProvenOnSubmission,
}

/// A parsed request; [`ParsedCsr::check_possession`] proves the requester holds the key.
#[derive(Debug, Clone)]
pub struct ParsedCsr {
    pub spki: SubjectPublicKeyInfoOwned,
    pub spki_der: Vec<u8>,
    info_der: Vec<u8>,
    signature: Vec<u8>,
    signature_algorithm: String,
}

/// Accepts PEM (`CERTIFICATE REQUEST` or `NEW CERTIFICATE REQUEST`) or raw DER.
pub fn decode(input: &[u8]) -> Result<Vec<u8>, CsrError> {
    let trimmed = input.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        let text = std::str::from_utf8(trimmed).map_err(|_| CsrError::Malformed("PEM is not text".into()))?;
        let (label, der) =
            der::pem::decode_vec(text.trim().as_bytes()).map_err(|e| CsrError::Malformed(e.to_string()))?;
        if label != "CERTIFICATE REQUEST" && label != "NEW CERTIFICATE REQUEST" {
            return Err(CsrError::Malformed(format!("PEM label {label:?}")));
        }
        Ok(der)
    } else {
        Ok(input.to_vec())
    }
}

/// Parses a CSR (PEM or DER) strictly.
pub fn parse(input: &[u8]) -> Result<ParsedCsr, CsrError> {
    let malformed = |e: der::Error| CsrError::Malformed(e.to_string());
    let der = decode(input)?;
    let req = CertReq::from_der(&der).map_err(malformed)?;
    let signature = req
        .signature
        .as_bytes()
        .ok_or_else(|| CsrError::Malformed("signature has unused bits".into()))?;
    Ok(ParsedCsr {
        spki_der: req.info.public_key.to_der().map_err(malformed)?,
        info_der: req.info.to_der().map_err(malformed)?,
        signature: signature.to_vec(),
        signature_algorithm: req.algorithm.oid.to_string(),
        spki: req.info.public_key,
    })
}

impl ParsedCsr {
    /// Verifies the request's signature with its own key. Call after policy accepted the key
    /// (RSA of 2048 bits or more, or P-256): those are the keys this can check.
    pub fn check_possession(&self) -> Result<(), CsrError> {
        let alg = self.signature_algorithm.as_str();
        let verifier: &dyn signature::VerificationAlgorithm = match (self.spki.algorithm.oid, alg) {
            (oid::RSA_ENCRYPTION, "1.2.840.113549.1.1.11") => &signature::RSA_PKCS1_2048_8192_SHA256,
            (oid::RSA_ENCRYPTION, "1.2.840.113549.1.1.12") => &signature::RSA_PKCS1_2048_8192_SHA384,
            (oid::RSA_ENCRYPTION, "1.2.840.113549.1.1.13") => &signature::RSA_PKCS1_2048_8192_SHA512,
            (oid::EC_PUBLIC_KEY, "1.2.840.10045.4.3.2") => &signature::ECDSA_P256_SHA256_ASN1,
            (oid::EC_PUBLIC_KEY, "1.2.840.10045.4.3.3") => &signature::ECDSA_P256_SHA384_ASN1,
            _ => return Err(CsrError::UnsupportedSignature(alg.to_string())),
        };
        let key = self
            .spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| CsrError::Malformed("public key has unused bits".into()))?;
        UnparsedPublicKey::new(verifier, key)
            .verify(&self.info_der, &self.signature)
            .map_err(|_| CsrError::BadSignature)
    }
}

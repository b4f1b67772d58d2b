//! The time-stamping authority (RFC 3161, with RFC 5816's ESSCertIDv2): `POST /tsp` answers a
//! TimeStampReq with a TimeStampResp whose token is a CMS SignedData over a TSTInfo, signed by
//! the TSA key in the key store.
//!
//! Every answer is a TimeStampResp: a request that is malformed, asks for what the TSA does not
//! offer, or comes while the clock cannot be trusted is a `rejection` with its failure info,
//! and so is a failure of the service (`systemFailure`), never an HTTP error. The order is
//! Boulder's: judge the request, build the TSTInfo, record it (through the group-commit
//! writer), sign, answer; a token is handed out only after its row is committed.

pub mod clock;
pub mod token;

use std::sync::Arc;

use cms::content_info::ContentInfo;
use const_oid::ObjectIdentifier;
use der::asn1::{BitString, GeneralizedTime, Int, OctetString};
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_tsp::{Accuracy, MessageImprint, TimeStampReq, TspVersion, TstInfo};

use super::Ca;
use super::signed_data::{self, Signing};
use crate::keys::Signer;
use crate::store::{StoreError, TimestampRecord};

/// id-ct-TSTInfo (RFC 3161 §2.4.2): the eContentType of a time-stamp token.
pub const ID_CT_TST_INFO: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");
const SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.3");

/// The message-imprint algorithms the TSA accepts: name, OID, digest length.
pub const HASHES: [(&str, ObjectIdentifier, usize); 3] =
    [("sha256", SHA256, 32), ("sha384", SHA384, 48), ("sha512", SHA512, 64)];

/// The TSA key and its certificate, as the CA opened them.
pub struct Tsa {
    pub signer: Arc<dyn Signer>,
    pub cert_der: Vec<u8>,
    /// Lower-case hex, as the certificates table keeps it.
    pub cert_serial: String,
    pub not_after: i64,
}

impl Tsa {
    pub fn new(signer: Arc<dyn Signer>, cert_der: Vec<u8>) -> Result<Tsa, der::Error> {
        let cert = Certificate::from_der(&cert_der)?;
        Ok(Tsa {
            cert_serial: hex::encode(cert.tbs_certificate.serial_number.as_bytes()),
            not_after: cert.tbs_certificate.validity.not_after.to_unix_duration().as_secs() as i64,
            signer,
            cert_der,
        })
    }
}

/// Why a request gets no token. Each maps to one PKIFailureInfo bit (RFC 3161 §2.4.2).
#[derive(Debug, thiserror::Error)]
pub enum TspFailure {
    /// The message imprint's hash algorithm is not SHA-256, SHA-384 or SHA-512.
    #[error("unsupported hash algorithm {0}")]
    BadAlg(String),
    /// A request of a version other than 1: a transaction this TSA does not support.
    #[error("TimeStampReq version {0} is not supported (only 1)")]
    BadRequest(String),
    /// The body is not a DER TimeStampReq, or the imprint's length does not fit its algorithm.
    #[error("not a well-formed TimeStampReq: {0}")]
    BadDataFormat(String),
    /// The request asks for a policy the TSA does not offer.
    #[error("policy {0} is not offered by this TSA")]
    UnacceptedPolicy(String),
    /// The request carries extensions, none of which this TSA supports.
    #[error("request extensions are not supported")]
    UnacceptedExtension,
    /// The clock is not synchronised: no trustworthy time to give.
    #[error("the clock cannot be trusted now: {0}")]
    TimeNotAvailable(String),
    /// The TSA could not record or sign (no TSA key, database or key store down); logged.
    #[error("the time-stamping service failed: {0}")]
    SystemFailure(String),
}

impl TspFailure {
    /// The PKIFailureInfo bit.
    fn bit(&self) -> usize {
        match self {
            TspFailure::BadAlg(_) => 0,
            TspFailure::BadRequest(_) => 2,
            TspFailure::BadDataFormat(_) => 5,
            TspFailure::TimeNotAvailable(_) => 14,
            TspFailure::UnacceptedPolicy(_) => 15,
            TspFailure::UnacceptedExtension => 16,
            TspFailure::SystemFailure(_) => 25,
        }
    }

    /// RFC 3161's name of the failure, as logs and tests name it.
    pub fn code(&self) -> &'static str {
        match self {
            TspFailure::BadAlg(_) => "badAlg",
            TspFailure::BadRequest(_) => "badRequest",
            TspFailure::BadDataFormat(_) => "badDataFormat",
            TspFailure::TimeNotAvailable(_) => "timeNotAvailable",
            TspFailure::UnacceptedPolicy(_) => "unacceptedPolicy",
            TspFailure::UnacceptedExtension => "unacceptedExtension",
            TspFailure::SystemFailure(_) => "systemFailure",
        }
    }
}

/// PKIStatusInfo (RFC 3161 §2.4.2), written by hand: failInfo is a named BIT STRING.
#[derive(Clone, Debug, der::Sequence)]
pub(crate) struct PkiStatusInfo {
    pub status: u8,
    #[asn1(optional = "true")]
    pub status_string: Option<Vec<String>>,
    #[asn1(optional = "true")]
    pub fail_info: Option<BitString>,
}

/// TimeStampResp ::= SEQUENCE { status PKIStatusInfo, timeStampToken TimeStampToken OPTIONAL }.
#[derive(Clone, Debug, der::Sequence)]
pub(crate) struct TimeStampResp {
    pub status: PkiStatusInfo,
    #[asn1(optional = "true")]
    pub time_stamp_token: Option<ContentInfo>,
}

const GRANTED: u8 = 0;
const REJECTION: u8 = 2;

/// A named BIT STRING with one bit set, in DER (trailing zero bits dropped).
fn failure_bits(bit: usize) -> Result<BitString, der::Error> {
    let mut bytes = vec![0u8; bit / 8 + 1];
    bytes[bit / 8] = 0x80 >> (bit % 8);
    BitString::new((7 - bit % 8) as u8, bytes)
}

fn rejection(f: &TspFailure) -> Vec<u8> {
    let resp = TimeStampResp {
        status: PkiStatusInfo {
            status: REJECTION,
            status_string: Some(vec![f.to_string()]),
            fail_info: failure_bits(f.bit()).ok(),
        },
        time_stamp_token: None,
    };
    // Encoding a status of a few bytes does not fail; if it did, the fixed DER of a bare
    // rejection (systemFailure) still answers.
    resp.to_der().unwrap_or_else(|_| {
        vec![
            0x30, 0x0c, 0x30, 0x0a, 0x02, 0x01, 0x02, 0x03, 0x05, 0x06, 0x00, 0x00, 0x00, 0x40,
        ]
    })
}

/// What a granted request is stamped with.
struct Judged {
    imprint: MessageImprint,
    hash_name: &'static str,
    policy: ObjectIdentifier,
    nonce: Option<Int>,
    cert_req: bool,
}

impl Ca {
    /// The policies the TSA offers: the default first.
    pub fn tsa_policies(&self) -> Vec<ObjectIdentifier> {
        std::iter::once(&self.config.tsa.policy)
            .chain(&self.config.tsa.accepted_policies)
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// The clock, as the TSA sees it now.
    pub fn clock(&self) -> clock::ClockState {
        clock::state(self.config.tsa.clock)
    }

    /// Answers a TimeStampReq (DER) with a TimeStampResp (DER): a token, or a rejection.
    pub async fn timestamp(&self, request: &[u8]) -> Vec<u8> {
        let granted = match self.stamp(request).await {
            Ok(token) => ContentInfo::from_der(&token)
                .and_then(|t| {
                    TimeStampResp {
                        status: PkiStatusInfo {
                            status: GRANTED,
                            status_string: None,
                            fail_info: None,
                        },
                        time_stamp_token: Some(t),
                    }
                    .to_der()
                })
                .map_err(|e| TspFailure::SystemFailure(e.to_string())),
            Err(f) => Err(f),
        };
        match granted {
            Ok(der) => der,
            Err(f) => {
                if let TspFailure::SystemFailure(_) = f {
                    tracing::error!("time-stamp refused: {f}");
                } else {
                    tracing::info!(code = f.code(), "time-stamp refused: {f}");
                }
                rejection(&f)
            }
        }
    }

    fn judge(&self, request: &[u8]) -> Result<Judged, TspFailure> {
        let req = TimeStampReq::from_der(request).map_err(|e| match other_version(request) {
            Some(v) => TspFailure::BadRequest(v),
            None => TspFailure::BadDataFormat(e.to_string()),
        })?;
        let alg = req.message_imprint.hash_algorithm.oid;
        let (hash_name, _, len) = HASHES
            .iter()
            .find(|(_, oid, _)| *oid == alg)
            .ok_or_else(|| TspFailure::BadAlg(alg.to_string()))?;
        // Parameters, when present, must be NULL (RFC 5754 allows absent or NULL).
        if let Some(p) = &req.message_imprint.hash_algorithm.parameters
            && p.to_der().ok().as_deref() != Some(&[0x05, 0x00])
        {
            return Err(TspFailure::BadAlg(format!("{alg} with parameters")));
        }
        if req.message_imprint.hashed_message.as_bytes().len() != *len {
            return Err(TspFailure::BadDataFormat(format!(
                "a {hash_name} imprint is {len} octets, not {}",
                req.message_imprint.hashed_message.as_bytes().len()
            )));
        }
        let policies = self.tsa_policies();
        let policy = match req.req_policy {
            Some(p) if policies.contains(&p) => p,
            Some(p) => return Err(TspFailure::UnacceptedPolicy(p.to_string())),
            None => *policies
                .first()
                .ok_or_else(|| TspFailure::SystemFailure("no TSA policy configured".into()))?,
        };
        if req.extensions.as_ref().is_some_and(|e| !e.is_empty()) {
            return Err(TspFailure::UnacceptedExtension);
        }
        Ok(Judged {
            imprint: req.message_imprint,
            hash_name,
            policy,
            nonce: req.nonce,
            cert_req: req.cert_req,
        })
    }

    /// Judges, records and signs: the token (ContentInfo, DER).
    async fn stamp(&self, request: &[u8]) -> Result<Vec<u8>, TspFailure> {
        let judged = self.judge(request)?;
        let clock = self.clock();
        if !clock.usable() {
            return Err(TspFailure::TimeNotAvailable(clock.describe()));
        }
        let tsa = self
            .tsa
            .as_ref()
            .ok_or_else(|| TspFailure::SystemFailure("no TSA key in this deployment".into()))?;
        let system = |e: &dyn std::fmt::Display| TspFailure::SystemFailure(e.to_string());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| system(&e))?;
        let gen_time = GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(now.as_secs()))
            .map_err(|e| system(&e))?;

        // Record, retrying on the (never seen) collision of 159 random bits.
        let mut attempt = 0;
        let (serial, tst) = loop {
            attempt += 1;
            let serial_bytes = super::build::random_serial().map_err(|e| system(&e))?;
            let tst = TstInfo {
                version: TspVersion::V1,
                policy: judged.policy,
                message_imprint: judged.imprint.clone(),
                serial_number: Int::new(&serial_bytes).map_err(|e| system(&e))?,
                gen_time,
                accuracy: Some(Accuracy {
                    seconds: Some(self.config.tsa.accuracy_seconds),
                    millis: None,
                    micros: None,
                }),
                ordering: false,
                nonce: judged.nonce.clone(),
                tsa: None,
                extensions: None,
            };
            let serial = hex::encode(&serial_bytes);
            let record = TimestampRecord {
                serial: serial.clone(),
                status: "issued".into(),
                gen_time: now.as_secs() as i64,
                hash_alg: judged.hash_name.to_string(),
                imprint: hex::encode(judged.imprint.hashed_message.as_bytes()),
                policy: judged.policy.to_string(),
                nonce: judged.nonce.as_ref().map(|n| hex::encode(n.as_bytes())),
                tsa_serial: tsa.cert_serial.clone(),
            };
            match self.store.add_timestamp(&record).await {
                Ok(()) => break (serial, tst),
                Err(StoreError::SerialTaken) if attempt < 3 => continue,
                Err(e) => return Err(system(&e)),
            }
        };

        let content = tst.to_der().map_err(|e| system(&e))?;
        let signer = Arc::clone(&tsa.signer);
        let cert = tsa.cert_der.clone();
        let cert_req = judged.cert_req;
        let signed = tokio::task::spawn_blocking(move || {
            signed_data::sign_with(
                signer.as_ref(),
                &cert,
                &Signing {
                    content_type: ID_CT_TST_INFO,
                    content: &content,
                    attached: true,
                    include_certificate: cert_req,
                    signing_time: now.as_secs() as i64,
                    issuer_serial: true,
                },
            )
        })
        .await
        .map_err(|e| system(&e))
        .and_then(|r| r.map_err(|e| system(&e)));
        let token = match signed {
            Ok(t) => t,
            Err(e) => {
                // Nothing was handed out: the row says so.
                if let Err(se) = self.store.abandon_timestamp(&serial).await {
                    tracing::error!("marking time-stamp {serial} abandoned failed: {se}");
                }
                return Err(e);
            }
        };
        tracing::debug!(serial = %serial, "time-stamp token issued");
        Ok(token)
    }

    /// A time-stamp token (ContentInfo, DER) over `data`'s SHA-256, for the service's own use
    /// (CAdES-T on its messages, the audit checkpoint): the same path as `POST /tsp`.
    pub async fn timestamp_token(&self, data: &[u8]) -> Result<Vec<u8>, TspFailure> {
        let req = request_for(data, true).map_err(|e| TspFailure::SystemFailure(e.to_string()))?;
        self.stamp(&req).await
    }
}

/// The version of a request that did not decode as a v1 TimeStampReq, when it is a SEQUENCE
/// that starts with an INTEGER other than 1 (the rest is not looked at): such a request is of
/// a version this TSA does not support, not malformed.
fn other_version(request: &[u8]) -> Option<String> {
    let mut reader = der::SliceReader::new(request).ok()?;
    let header = der::Header::decode(&mut reader).ok()?;
    if header.tag != der::Tag::Sequence {
        return None;
    }
    let version = Int::decode(&mut reader).ok()?;
    (version.as_bytes() != [1]).then(|| hex::encode(version.as_bytes()))
}

/// A TimeStampReq (DER) over `data`'s SHA-256, with a random nonce: what a client sends.
pub fn request_for(data: &[u8], cert_req: bool) -> Result<Vec<u8>, der::Error> {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut nonce = [0u8; 8];
    let _ = aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut nonce);
    // Positive and minimal as a DER INTEGER: the top octet below 0x80 and not zero.
    nonce[0] = (nonce[0] & 0x7f).max(1);
    TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: spki::AlgorithmIdentifier {
                oid: SHA256,
                parameters: None,
            },
            hashed_message: OctetString::new(digest.as_ref())?,
        },
        req_policy: None,
        nonce: Some(Int::new(&nonce)?),
        cert_req,
        extensions: None,
    }
    .to_der()
}

/// The token of a granted TimeStampResp (a client's view of the answer), or why there is none:
/// the answer does not decode, or the TSA's statusString.
pub fn token_of_response(resp: &[u8]) -> Result<Vec<u8>, String> {
    let r = TimeStampResp::from_der(resp).map_err(|e| format!("not a TimeStampResp: {e}"))?;
    match (r.status.status, r.time_stamp_token) {
        (0 | 1, Some(t)) => t.to_der().map_err(|e| e.to_string()),
        (status, _) => Err(format!(
            "status {status}: {}",
            r.status.status_string.unwrap_or_default().join("; ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_bits_are_named_bit_strings() {
        // badAlg: bit 0, the top bit of one octet, seven unused.
        assert_eq!(failure_bits(0).unwrap().to_der().unwrap(), [0x03, 0x02, 0x07, 0x80]);
        // timeNotAvailable: bit 14.
        assert_eq!(
            failure_bits(14).unwrap().to_der().unwrap(),
            [0x03, 0x03, 0x01, 0x00, 0x02]
        );
        // unacceptedPolicy: bit 15, no unused bits.
        assert_eq!(
            failure_bits(15).unwrap().to_der().unwrap(),
            [0x03, 0x03, 0x00, 0x00, 0x01]
        );
    }

    #[test]
    fn another_version_is_a_bad_request_and_garbage_bad_data() {
        let mut req = request_for(b"x", false).unwrap();
        // 30 LL 02 01 01 …: the version INTEGER's value is the fifth octet.
        assert_eq!(&req[2..5], &[0x02, 0x01, 0x01]);
        assert_eq!(other_version(&req), None);
        req[4] = 2;
        assert_eq!(other_version(&req).as_deref(), Some("02"));
        assert_eq!(other_version(b"garbage"), None);
        assert_eq!(other_version(&[0x30, 0x03, 0x04, 0x01, 0x00]), None);
    }

    #[test]
    fn a_rejection_decodes() {
        let der = rejection(&TspFailure::UnacceptedPolicy("1.2.3".into()));
        let r = TimeStampResp::from_der(&der).unwrap();
        assert_eq!(r.status.status, REJECTION);
        assert!(r.time_stamp_token.is_none());
        assert!(token_of_response(&der).unwrap_err().contains("not offered"));
    }
}

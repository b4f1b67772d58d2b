//! The OCSP responder (RFC 6960), signing with the delegated responder key in the key store.
//!
//! A request's CertIDs are answered as received: the issuer is matched by recomputing the name
//! and key hashes with the request's own hash algorithm (SHA-1 and SHA-256 both occur). Answers to
//! a single request without a nonce are kept, signed, per CertID and handed out again while the
//! certificate's status is unchanged and the answer is fresh: relying traffic costs no signature.
//!
//! Before either, a single SHA-1 CertID without a nonce is answered from the answers signed
//! ahead and kept in the database ([`presign`]): one read, no signature, on every instance, and
//! none while the answer is hot in this instance's memory ([`hot`], at most 500 ms). A
//! status instance (`--role status`) answers only from there: it holds no key.

pub mod hot;
pub mod presign;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use const_oid::ObjectIdentifier;
use der::asn1::{GeneralizedTime, Null, OctetString};
use der::{Decode, Encode};
use x509_cert::Certificate;
use x509_cert::ext::pkix::CrlReason;
use x509_ocsp::{
    BasicOcspResponse, CertStatus, OcspGeneralizedTime, OcspRequest, OcspResponse, ResponderId, ResponseData,
    RevokedInfo, SingleResponse,
};

use super::{Ca, Issuer};
use crate::config::Role;
use crate::keys;
use crate::store::{RevocationRecord, StoreError, now};

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const NONCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");

/// How long an answer is good for (nextUpdate - thisUpdate), and how long before that a kept
/// answer is signed anew.
pub const VALIDITY: i64 = 3600;
const REFRESH_BEFORE: i64 = 600;

/// The most answers kept; past it the cache starts again empty (a flood of distinct CertIDs
/// cannot grow memory without bound, and unknown serials are never kept).
const MAX_KEPT: usize = 1_000_000;

/// Requests larger than this are refused as malformed: a request for even a hundred
/// certificates is a few kilobytes.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// RFC 8954 §2.1: `Nonce ::= OCTET STRING (SIZE(1..32))`.
pub const MAX_NONCE_BYTES: usize = 32;

/// Why a request is answered `malformedRequest`. The client learns only that; the reason is
/// for tests and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Larger than [`MAX_REQUEST_BYTES`].
    #[error("the request is larger than {MAX_REQUEST_BYTES} bytes")]
    TooLarge,
    /// Not the DER of an OCSPRequest.
    #[error("the request does not decode")]
    Malformed,
    /// A request that names no certificate.
    #[error("the request names no certificate")]
    Empty,
    /// A nonce that is not an OCTET STRING of 1 to 32 octets (RFC 8954), or more than one.
    #[error("the nonce is not an OCTET STRING of 1 to {MAX_NONCE_BYTES} octets")]
    Nonce,
}

/// A request as the responder takes it: decoded, and its nonce (the extension, echoed as
/// received) checked.
#[derive(Debug)]
pub struct Request {
    pub request: OcspRequest,
    pub nonce: Option<x509_cert::ext::Extension>,
}

/// Decodes and checks a DER OCSP request: everything the outside controls is judged here,
/// before a database or a key is touched.
pub fn read_request(der: &[u8]) -> Result<Request, RequestError> {
    if der.len() > MAX_REQUEST_BYTES {
        return Err(RequestError::TooLarge);
    }
    let request = OcspRequest::from_der(der).map_err(|_| RequestError::Malformed)?;
    if request.tbs_request.request_list.is_empty() {
        return Err(RequestError::Empty);
    }
    let mut nonces = request
        .tbs_request
        .request_extensions
        .iter()
        .flatten()
        .filter(|e| e.extn_id == NONCE);
    let nonce = nonces.next().cloned();
    if nonces.next().is_some() {
        return Err(RequestError::Nonce);
    }
    if let Some(n) = &nonce {
        let value = OctetString::from_der(n.extn_value.as_bytes()).map_err(|_| RequestError::Nonce)?;
        if value.as_bytes().is_empty() || value.as_bytes().len() > MAX_NONCE_BYTES {
            return Err(RequestError::Nonce);
        }
    }
    Ok(Request { request, nonce })
}

/// The longest path segment an OCSP GET may carry: base64 of the largest request taken, and a
/// little slack for padding.
const MAX_GET_CHARS: usize = MAX_REQUEST_BYTES / 3 * 4 + 8;

/// Decodes the request of an OCSP GET (RFC 6960 appendix A.1: `{url}/{url-encoding of base-64
/// encoding of the DER encoding of the OCSPRequest}`), as the router hands over its path,
/// percent-decoded: the standard alphabet with its padding, and the URL-safe one with or
/// without. Nothing is trimmed: `/` is a base64 character, and a request may end in one.
pub fn read_get_request(encoded: &str) -> Result<Vec<u8>, RequestError> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
    if encoded.len() > MAX_GET_CHARS {
        return Err(RequestError::TooLarge);
    }
    STANDARD
        .decode(encoded)
        .or_else(|_| URL_SAFE.decode(encoded))
        .or_else(|_| URL_SAFE_NO_PAD.decode(encoded))
        .map_err(|_| RequestError::Malformed)
}

/// A status as OCSP states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Good,
    Revoked { at: i64, reason: u8 },
    Unknown,
}

struct Kept {
    status: Status,
    expires: i64,
    answer: Answer,
}

/// When an answer was made and until when it holds, for HTTP caches in front of the responder
/// (RFC 5019 §6.2). Only answers without a nonce have one: a nonce makes an answer unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    pub produced_at: i64,
    pub next_update: i64,
    /// A strong validator: the answer's SHA-256, shortened, quoted.
    pub etag: String,
}

/// A complete OCSPResponse, DER, and its freshness when it may be cached.
#[derive(Debug, Clone)]
pub struct Answer {
    pub der: Arc<Vec<u8>>,
    pub freshness: Option<Freshness>,
}

impl Answer {
    /// `malformedRequest`, for a request that cannot be read (nor even received).
    pub fn malformed() -> Answer {
        Answer::uncacheable(malformed())
    }

    fn uncacheable(der: Vec<u8>) -> Answer {
        Answer {
            der: Arc::new(der),
            freshness: None,
        }
    }
}

/// The issuer hashes a CertID may carry, for each hash algorithm.
struct IssuerHashes {
    sha1: (Vec<u8>, Vec<u8>),
    sha256: (Vec<u8>, Vec<u8>),
}

pub struct Responder {
    hashes: IssuerHashes,
    responder_key_hash: Vec<u8>,
    kept: RwLock<HashMap<Vec<u8>, Kept>>,
    /// The kept answers (signed ahead) asked for just now, by serial.
    hot: hot::HotAnswers,
    /// Woken when this instance revoked, held or released a certificate: the pre-signer signs
    /// the new answer at once instead of at its next look.
    changed: tokio::sync::Notify,
}

/// Why an OCSP answer could not be made; the client gets `internalError` or `tryLater`.
#[derive(Debug, thiserror::Error)]
pub enum OcspError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    KeyStore(#[from] keys::KeyStoreError),
    #[error("encoding: {0}")]
    Encoding(#[from] der::Error),
    /// No delegated responder key (a deployment made before responders existed).
    #[error("no OCSP responder key")]
    NoResponder,
}

fn digest(alg: &'static aws_lc_rs::digest::Algorithm, data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(alg, data).as_ref().to_vec()
}

impl Responder {
    /// The responder for certificates of `issuer`, answering with the delegated `responder_cert`.
    pub fn new(issuer: &Issuer, responder_cert: &[u8]) -> Result<Responder, der::Error> {
        let cert = Certificate::from_der(&issuer.cert_der)?;
        let key = cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        let name = &issuer.subject_der;
        let responder = Certificate::from_der(responder_cert)?;
        Ok(Responder {
            hashes: IssuerHashes {
                sha1: (
                    digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, name),
                    digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, key),
                ),
                sha256: (
                    digest(&aws_lc_rs::digest::SHA256, name),
                    digest(&aws_lc_rs::digest::SHA256, key),
                ),
            },
            responder_key_hash: digest(
                &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                responder
                    .tbs_certificate
                    .subject_public_key_info
                    .subject_public_key
                    .raw_bytes(),
            ),
            kept: RwLock::new(HashMap::new()),
            hot: hot::HotAnswers::default(),
            changed: tokio::sync::Notify::new(),
        })
    }

    fn is_ours(&self, id: &x509_ocsp::CertId) -> bool {
        let (name, key) = match id.hash_algorithm.oid {
            SHA1 => &self.hashes.sha1,
            SHA256 => &self.hashes.sha256,
            _ => return false,
        };
        id.issuer_name_hash.as_bytes() == name.as_slice() && id.issuer_key_hash.as_bytes() == key.as_slice()
    }

    /// Forgets kept answers (after a revocation; the status check would catch it anyway).
    pub fn forget(&self) {
        if let Ok(mut k) = self.kept.write() {
            k.clear();
        }
        self.hot.clear();
    }
}

fn gtime(unix: i64) -> Result<OcspGeneralizedTime, der::Error> {
    let d = der::DateTime::from_unix_duration(std::time::Duration::from_secs(unix.max(0) as u64))?;
    Ok(OcspGeneralizedTime(GeneralizedTime::from_date_time(d)))
}

fn reason(code: u8) -> CrlReason {
    match code {
        1 => CrlReason::KeyCompromise,
        2 => CrlReason::CaCompromise,
        3 => CrlReason::AffiliationChanged,
        4 => CrlReason::Superseded,
        5 => CrlReason::CessationOfOperation,
        6 => CrlReason::CertificateHold,
        8 => CrlReason::RemoveFromCRL,
        9 => CrlReason::PrivilegeWithdrawn,
        10 => CrlReason::AaCompromise,
        _ => CrlReason::Unspecified,
    }
}

fn encode(resp: OcspResponse) -> Vec<u8> {
    resp.to_der().unwrap_or_else(|_| vec![0x30, 0x03, 0x0a, 0x01, 0x02])
}

/// A complete answer, DER, for any outcome.
pub fn malformed() -> Vec<u8> {
    encode(OcspResponse::malformed_request())
}

/// A certificate recorded but never issued (pending, or abandoned after a crash) is unknown:
/// no relying party can hold it from us.
fn status_of(issued: bool, revocation: Option<&RevocationRecord>, t: i64) -> Status {
    match (issued, revocation) {
        (true, Some(r)) if r.effective_at(t) => Status::Revoked {
            at: r.revoked_at,
            reason: r.reason,
        },
        (true, _) => Status::Good,
        (false, _) => Status::Unknown,
    }
}

impl Ca {
    /// A revocation, hold or release was recorded through this instance: the pre-signer signs
    /// its answer now (others find it in the database within a quarter second).
    pub fn ocsp_changed(&self) {
        if let Some(r) = &self.responder {
            r.changed.notify_one();
        }
    }

    /// Answers a DER OCSP request. Always returns a complete OCSPResponse (errors included).
    pub async fn ocsp(&self, request: &[u8]) -> Vec<u8> {
        self.ocsp_answer(request).await.der.as_ref().clone()
    }

    /// Answers the request of an OCSP GET, base64 in the path ([`read_get_request`]), as
    /// [`Ca::ocsp_answer`] answers its DER.
    pub async fn ocsp_get_answer(&self, encoded: &str) -> Answer {
        match read_get_request(encoded) {
            Ok(der) => self.ocsp_answer(&der).await,
            Err(_) => Answer::malformed(),
        }
    }

    /// Answers a DER OCSP request, with what an HTTP cache needs when the answer may be cached.
    pub async fn ocsp_answer(&self, request: &[u8]) -> Answer {
        let Ok(Request { request: req, nonce }) = read_request(request) else {
            return Answer::uncacheable(malformed());
        };
        let (Some(responder), Some(delegated)) = (&self.responder, &self.ocsp) else {
            return Answer::uncacheable(encode(OcspResponse::unauthorized()));
        };
        if !req
            .tbs_request
            .request_list
            .iter()
            .all(|r| responder.is_ours(&r.req_cert))
        {
            return Answer::uncacheable(encode(OcspResponse::unauthorized()));
        }
        let status_instance = self.config.role == Role::Status;
        // A status instance signs nothing: a nonce request gets the kept answer without the
        // nonce (RFC 5019 §4 lets a responder leave it out; the client then relies on the
        // answer's times), and what is not kept, or kept past its nextUpdate, gets tryLater.
        if let [single] = req.tbs_request.request_list.as_slice()
            && (nonce.is_none() || status_instance)
        {
            match self.presigned(&single.req_cert).await {
                Ok(Some(answer)) => return answer,
                Ok(None) => {}
                Err(e) => tracing::error!("OCSP answers signed ahead: {e}"),
            }
        }
        if status_instance {
            return Answer::uncacheable(encode(OcspResponse::try_later()));
        }
        match self.answer(&req, nonce, responder, delegated).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::error!("OCSP: {e}");
                Answer::uncacheable(encode(OcspResponse::try_later()))
            }
        }
    }

    async fn answer(
        &self,
        req: &OcspRequest,
        nonce: Option<x509_cert::ext::Extension>,
        responder: &Responder,
        delegated: &super::Delegated,
    ) -> Result<Answer, OcspError> {
        let t = now();
        let mut statuses = Vec::with_capacity(req.tbs_request.request_list.len());
        for r in &req.tbs_request.request_list {
            let serial = hex::encode(r.req_cert.serial_number.as_bytes());
            let status = match self.store.ocsp_status(&serial).await? {
                Some((issuer, issued, revocation)) if issuer == self.issuing.id => {
                    status_of(issued, revocation.as_ref(), t)
                }
                _ => Status::Unknown,
            };
            statuses.push(status);
        }
        let single = nonce.is_none() && statuses.len() == 1 && statuses[0] != Status::Unknown;
        let key = if single {
            Some(req.tbs_request.request_list[0].req_cert.to_der()?)
        } else {
            None
        };
        if let Some(k) = &key
            && let Ok(kept) = responder.kept.read()
            && let Some(hit) = kept.get(k)
            && hit.status == statuses[0]
            && hit.expires - REFRESH_BEFORE > t
        {
            return Ok(hit.answer.clone());
        }

        let mut responses = Vec::with_capacity(statuses.len());
        for (r, s) in req.tbs_request.request_list.iter().zip(&statuses) {
            let cert_status = match s {
                Status::Good => CertStatus::Good(Null),
                Status::Unknown => CertStatus::Unknown(Null),
                Status::Revoked { at, reason: code } => CertStatus::Revoked(RevokedInfo {
                    revocation_time: gtime(*at)?,
                    revocation_reason: Some(reason(*code)),
                }),
            };
            responses.push(SingleResponse {
                cert_id: r.req_cert.clone(),
                cert_status,
                this_update: gtime(t)?,
                next_update: Some(gtime(t + VALIDITY)?),
                single_extensions: None,
            });
        }
        let data = ResponseData {
            version: x509_ocsp::Version::V1,
            responder_id: ResponderId::ByKey(OctetString::new(responder.responder_key_hash.clone())?),
            produced_at: gtime(t)?,
            responses,
            response_extensions: nonce.clone().map(|n| vec![n]),
        };
        let tbs = data.to_der()?;
        let sig = keys::sign(&delegated.signer, tbs).await?;
        let basic = BasicOcspResponse {
            tbs_response_data: data,
            signature_algorithm: delegated.signer.algorithm().signature_algorithm(),
            signature: der::asn1::BitString::from_bytes(&sig)?,
            certs: Some(vec![Certificate::from_der(&delegated.cert_der)?]),
        };
        let der = OcspResponse::successful(basic)?.to_der()?;
        let freshness = nonce.is_none().then(|| Freshness {
            produced_at: t,
            next_update: t + VALIDITY,
            etag: format!("\"{}\"", hex::encode(&digest(&aws_lc_rs::digest::SHA256, &der)[..16])),
        });
        let answer = Answer {
            der: Arc::new(der),
            freshness,
        };
        if let Some(k) = key
            && let Ok(mut kept) = responder.kept.write()
        {
            if kept.len() >= MAX_KEPT {
                kept.clear();
            }
            kept.insert(
                k,
                Kept {
                    status: statuses[0],
                    expires: t + VALIDITY,
                    answer: answer.clone(),
                },
            );
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl ocsp -issuer … -serial 0x1234 -reqout`, with a 16-octet nonce.
    const WITH_NONCE: &[u8] = include_bytes!("../../fuzz/corpus/ocsp_request/sha1-nonce.der");

    fn with_nonce_of(octets: usize) -> Vec<u8> {
        let mut req = OcspRequest::from_der(WITH_NONCE).unwrap();
        let exts = req.tbs_request.request_extensions.as_mut().unwrap();
        let value = OctetString::new(vec![0x5a; octets]).unwrap().to_der().unwrap();
        exts[0].extn_value = OctetString::new(value).unwrap();
        req.to_der().unwrap()
    }

    #[test]
    fn get_requests_in_each_base64_form() {
        use base64::Engine;
        use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
        // Long enough that padding, '+' and '/' (or '-' and '_') all occur in some form.
        let ders: Vec<Vec<u8>> = (0..3).map(|n| [WITH_NONCE, &vec![0xfb; n][..]].concat()).collect();
        for der in &ders {
            for (form, encoded) in [
                ("standard", STANDARD.encode(der)),
                ("URL-safe", URL_SAFE.encode(der)),
                ("URL-safe without padding", URL_SAFE_NO_PAD.encode(der)),
            ] {
                assert_eq!(read_get_request(&encoded).as_ref(), Ok(der), "{form}: {encoded}");
            }
            // Standard without padding is the same text when no padding is due.
            if der.len() % 3 == 0 {
                assert_eq!(read_get_request(&STANDARD_NO_PAD.encode(der)).as_ref(), Ok(der));
            }
        }
        // The forms were met: padding, and the two alphabets differing.
        assert!(ders.iter().any(|d| STANDARD.encode(d).ends_with('=')));
        assert!(ders.iter().any(|d| STANDARD.encode(d) != URL_SAFE.encode(d)));
    }

    #[test]
    fn get_requests_that_do_not_decode_are_malformed() {
        use base64::Engine;
        for bad in ["", "%", "not base64!", "MA=", "MA==MA==", " MAA=", "MAA= ", "MA%3D%3D"] {
            let r = read_get_request(bad);
            // "" decodes to nothing, which is no request: refused when it is read.
            if bad.is_empty() {
                assert_eq!(r, Ok(Vec::new()));
                assert!(read_request(&[]).is_err());
            } else {
                assert_eq!(r, Err(RequestError::Malformed), "{bad:?}");
            }
        }
        let largest = base64::engine::general_purpose::STANDARD.encode(vec![0x30; MAX_REQUEST_BYTES]);
        assert!(read_get_request(&largest).is_ok());
        assert_eq!(
            read_get_request(&"A".repeat(MAX_GET_CHARS + 1)),
            Err(RequestError::TooLarge)
        );
    }

    #[test]
    fn nonces_of_one_to_32_octets_are_taken_and_others_refused() {
        assert!(read_request(WITH_NONCE).unwrap().nonce.is_some());
        for ok in [1, 16, 32] {
            assert!(read_request(&with_nonce_of(ok)).is_ok(), "{ok} octets");
        }
        for bad in [0, 33, 10_000] {
            let r = read_request(&with_nonce_of(bad));
            assert!(
                matches!(r, Err(RequestError::Nonce | RequestError::TooLarge)),
                "{bad} octets: {r:?}"
            );
        }
        // A nonce that is not an OCTET STRING inside the extension.
        let mut req = OcspRequest::from_der(WITH_NONCE).unwrap();
        req.tbs_request.request_extensions.as_mut().unwrap()[0].extn_value =
            OctetString::new(vec![0x02, 0x01, 0x05]).unwrap();
        assert_eq!(read_request(&req.to_der().unwrap()).unwrap_err(), RequestError::Nonce);
        // Two nonces.
        let mut req = OcspRequest::from_der(WITH_NONCE).unwrap();
        let exts = req.tbs_request.request_extensions.as_mut().unwrap();
        exts.push(exts[0].clone());
        assert_eq!(read_request(&req.to_der().unwrap()).unwrap_err(), RequestError::Nonce);
    }

    #[test]
    fn a_request_over_the_bound_is_refused_unread() {
        let big = vec![0x30; MAX_REQUEST_BYTES + 1];
        assert_eq!(read_request(&big).unwrap_err(), RequestError::TooLarge);
    }

    #[test]
    fn openssl_s_request_decodes_to_its_cert_id_and_nonce() {
        let r = read_request(WITH_NONCE).unwrap();
        let list = &r.request.tbs_request.request_list;
        assert_eq!(list.len(), 1);
        let id = &list[0].req_cert;
        assert_eq!(id.hash_algorithm.oid, SHA1);
        assert_eq!(id.issuer_name_hash.as_bytes().len(), 20);
        assert_eq!(id.issuer_key_hash.as_bytes().len(), 20);
        assert_eq!(id.serial_number.as_bytes(), [0x12, 0x34]);
        let nonce = OctetString::from_der(r.nonce.unwrap().extn_value.as_bytes()).unwrap();
        assert_eq!(nonce.as_bytes().len(), 16);
        // Not a request at all, and a request naming no certificate.
        assert_eq!(read_request(b"\x30\x00").unwrap_err(), RequestError::Malformed);
        let mut empty = OcspRequest::from_der(WITH_NONCE).unwrap();
        empty.tbs_request.request_list.clear();
        assert_eq!(read_request(&empty.to_der().unwrap()).unwrap_err(), RequestError::Empty);
    }

    #[test]
    fn the_error_answers_are_complete_ocsp_responses_without_a_body() {
        for (der, status) in [
            (malformed(), x509_ocsp::OcspResponseStatus::MalformedRequest),
            (
                encode(OcspResponse::unauthorized()),
                x509_ocsp::OcspResponseStatus::Unauthorized,
            ),
            (
                encode(OcspResponse::try_later()),
                x509_ocsp::OcspResponseStatus::TryLater,
            ),
        ] {
            let r = OcspResponse::from_der(&der).unwrap();
            assert_eq!(r.response_status, status);
            assert!(r.response_bytes.is_none());
        }
    }

    #[test]
    fn a_status_is_good_revoked_from_its_time_until_a_hold_is_lifted_and_unknown_unless_issued() {
        let hold = RevocationRecord {
            issuer: "issuing".into(),
            serial: "1234".into(),
            revoked_at: 100,
            reason: 6,
            invalidity_date: None,
            recorded_at: 100,
            lifted_at: Some(200),
        };
        assert_eq!(status_of(true, None, 150), Status::Good);
        assert_eq!(status_of(true, Some(&hold), 99), Status::Good);
        assert_eq!(
            status_of(true, Some(&hold), 150),
            Status::Revoked { at: 100, reason: 6 }
        );
        assert_eq!(status_of(true, Some(&hold), 200), Status::Good, "the hold is lifted");
        assert_eq!(
            status_of(false, Some(&hold), 150),
            Status::Unknown,
            "a pending certificate"
        );
        assert_eq!(status_of(false, None, 150), Status::Unknown);
        // Every code the store keeps maps to its CRLReason; 7 is unused in RFC 5280.
        for code in [0u8, 1, 2, 3, 4, 5, 6, 8, 9, 10] {
            assert_eq!(reason(code) as u8, code);
        }
        assert_eq!(reason(7), CrlReason::Unspecified);
        let t = gtime(1_800_000_000).unwrap();
        assert_eq!(t.0.to_unix_duration().as_secs(), 1_800_000_000);
    }
}

//! Checking a time-stamp token against this TSA: the token's signer is a TSA certificate this
//! CA issued (valid and unrevoked at genTime), its signature and messageDigest verify, the
//! imprint is of the data it is said to stamp, and the centre recorded it as issued.

use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::Decode;
use der::asn1::OctetString;
use x509_cert::Certificate;
use x509_tsp::TstInfo;

use super::{HASHES, ID_CT_TST_INFO};
use crate::pki::Ca;
use crate::pki::cms::{CmsError, attribute, check_signature, digest_of};
use crate::store::CertificateStatus;

const ID_CONTENT_TYPE: const_oid::ObjectIdentifier = const_oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
const ID_MESSAGE_DIGEST: const_oid::ObjectIdentifier = const_oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");

/// A token that verified.
#[derive(Debug, Clone, serde::Serialize)]
pub struct VerifiedToken {
    /// Lower-case hex.
    pub serial: String,
    /// genTime, seconds since the epoch.
    pub gen_time: i64,
    pub policy: String,
    /// Serial of the TSA certificate that signed it.
    pub tsa_serial: String,
}

/// Why a token does not verify (the whole of it is `timestamp_invalid` to a relying party;
/// the sentence says which part).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(pub String);

impl From<CmsError> for TokenError {
    fn from(e: CmsError) -> Self {
        TokenError(format!("token signature: {e}"))
    }
}

fn bad(why: impl std::fmt::Display) -> TokenError {
    TokenError(why.to_string())
}

impl Ca {
    /// Verifies a token (ContentInfo, DER) over `data` against this TSA's certificates and
    /// record.
    pub async fn verify_token(&self, token: &[u8], data: &[u8]) -> Result<VerifiedToken, TokenError> {
        let ci = ContentInfo::from_der(token).map_err(|e| bad(format!("token does not decode: {e}")))?;
        let sd: SignedData = ci
            .content
            .decode_as()
            .map_err(|e| bad(format!("token is not SignedData: {e}")))?;
        if sd.encap_content_info.econtent_type != ID_CT_TST_INFO {
            return Err(bad("token content is not a TSTInfo"));
        }
        let content = sd
            .encap_content_info
            .econtent
            .as_ref()
            .ok_or_else(|| bad("token without its TSTInfo"))?
            .decode_as::<OctetString>()
            .map_err(bad)?
            .as_bytes()
            .to_vec();
        let tst = TstInfo::from_der(&content).map_err(|e| bad(format!("TSTInfo does not decode: {e}")))?;

        // The imprint is of the data.
        let alg = tst.message_imprint.hash_algorithm.oid;
        if !HASHES.iter().any(|(_, oid, _)| *oid == alg) {
            return Err(bad(format!("imprint algorithm {alg} not accepted")));
        }
        if digest_of(alg, data).map_err(TokenError::from)? != tst.message_imprint.hashed_message.as_bytes() {
            return Err(bad("the token is over other data"));
        }

        // The signer: a TSA certificate this CA issued.
        let [si] = sd.signer_infos.0.as_slice() else {
            return Err(bad("a token has exactly one signer"));
        };
        let serial = match &si.sid {
            SignerIdentifier::IssuerAndSerialNumber(ias) => hex::encode(ias.serial_number.as_bytes()),
            SignerIdentifier::SubjectKeyIdentifier(ski) => sd
                .certificates
                .iter()
                .flat_map(|c| c.0.iter())
                .find_map(|c| match c {
                    CertificateChoices::Certificate(cert) => {
                        (crate::pki::build::key_identifier(&cert.tbs_certificate.subject_public_key_info)
                            == ski.0.as_bytes())
                        .then(|| hex::encode(cert.tbs_certificate.serial_number.as_bytes()))
                    }
                    _ => None,
                })
                .ok_or_else(|| bad("the token's signer is not named"))?,
        };
        let (record, revocation) = self
            .store
            .certificate_and_revocation(&serial)
            .await
            .map_err(bad)?
            .ok_or_else(|| bad("the token was not signed by this centre's TSA"))?;
        let (CertificateStatus::Issued, Some(cert_der), "tsa") =
            (record.status, record.der.as_ref(), record.profile.as_str())
        else {
            return Err(bad("the token was not signed by this centre's TSA"));
        };
        let cert = Certificate::from_der(cert_der).map_err(bad)?;

        let attrs = si
            .signed_attrs
            .as_ref()
            .ok_or_else(|| bad("token without signed attributes"))?;
        let ct: const_oid::ObjectIdentifier = attribute(attrs, ID_CONTENT_TYPE)
            .ok_or_else(|| bad("token without contentType"))?
            .decode_as()
            .map_err(bad)?;
        if ct != ID_CT_TST_INFO {
            return Err(bad("token contentType is not TSTInfo"));
        }
        let md: OctetString = attribute(attrs, ID_MESSAGE_DIGEST)
            .ok_or_else(|| bad("token without messageDigest"))?
            .decode_as()
            .map_err(bad)?;
        if md.as_bytes() != digest_of(si.digest_alg.oid, &content).map_err(TokenError::from)? {
            return Err(bad("the token's TSTInfo was changed"));
        }
        check_signature(si, attrs, &cert.tbs_certificate.subject_public_key_info)?;

        // The TSA certificate at genTime, and the centre's own record of the token.
        let gen_time = tst.gen_time.to_unix_duration().as_secs() as i64;
        if gen_time < record.not_before || gen_time > record.not_after {
            return Err(bad("the TSA certificate was not valid at the token's time"));
        }
        if revocation.is_some_and(|r| r.effective_at(gen_time)) {
            return Err(bad("the TSA certificate was revoked at the token's time"));
        }
        let token_serial = hex::encode(tst.serial_number.as_bytes());
        let recorded = self.store.timestamp(&token_serial).await.map_err(bad)?;
        match recorded {
            Some(r)
                if r.status == "issued"
                    && r.imprint == hex::encode(tst.message_imprint.hashed_message.as_bytes())
                    && r.gen_time == gen_time => {}
            _ => return Err(bad("this centre has no record of issuing the token")),
        }
        Ok(VerifiedToken {
            serial: token_serial,
            gen_time,
            policy: tst.policy.to_string(),
            tsa_serial: serial,
        })
    }
}

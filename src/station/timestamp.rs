//! `nca station sign --timestamp URL`: a signature time-stamp token (CAdES-T) from the
//! centre's TSA over the new signature's value, added to the signer's unsigned attributes.

use bytes::Bytes;
use der::Decode;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::pki::signed_data;
use crate::pki::tsa;

/// Why the time-stamp could not be added; the signature is then not written at all, since the
/// caller asked for a time-stamped one.
#[derive(Debug, thiserror::Error)]
pub enum TimestampError {
    /// The URL is not an http:// URL (the public listener is plain HTTP; TLS is a proxy's job).
    #[error("time-stamp URL {0:?}: only http:// is taken")]
    Url(String),
    /// The TSA did not answer, or answered with an HTTP error.
    #[error("the TSA at {url} did not answer: {why}")]
    Unreachable { url: String, why: String },
    /// The TSA answered with a rejection, or a token over something else.
    #[error("the TSA refused or answered wrongly: {0}")]
    Refused(String),
    #[error(transparent)]
    Sign(#[from] signed_data::SignError),
}

/// Adds a signature time-stamp token from the TSA at `url` to a SignedData (DER).
pub async fn add_timestamp(url: &str, cms_der: &[u8]) -> Result<Vec<u8>, TimestampError> {
    let uri: hyper::Uri = url.parse().map_err(|_| TimestampError::Url(url.to_string()))?;
    if uri.scheme_str() != Some("http") {
        return Err(TimestampError::Url(url.to_string()));
    }
    let signature = signed_data::signature_value(cms_der)?;
    let query = tsa::request_for(&signature, true).map_err(|e| TimestampError::Refused(e.to_string()))?;
    let unreachable = |why: String| TimestampError::Unreachable {
        url: url.to_string(),
        why,
    };
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let req = hyper::Request::post(uri)
        .header("content-type", "application/timestamp-query")
        .body(Full::new(Bytes::from(query)))
        .map_err(|e| unreachable(e.to_string()))?;
    let work = async {
        let resp = client.request(req).await.map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(unreachable(format!("HTTP {status}")));
        }
        Ok(body)
    };
    let body = tokio::time::timeout(std::time::Duration::from_secs(30), work)
        .await
        .map_err(|_| unreachable("no answer within 30 s".into()))??;
    let token = tsa::token_of_response(&body).map_err(TimestampError::Refused)?;
    check_imprint(&token, &signature)?;
    Ok(signed_data::add_signature_timestamp(cms_der, &token)?)
}

/// The token must stamp this signature: its imprint is the SHA-256 of the signature value.
fn check_imprint(token: &[u8], signature: &[u8]) -> Result<(), TimestampError> {
    let refused = |e: &dyn std::fmt::Display| TimestampError::Refused(e.to_string());
    let ci = cms::content_info::ContentInfo::from_der(token).map_err(|e| refused(&e))?;
    let sd: cms::signed_data::SignedData = ci.content.decode_as().map_err(|e| refused(&e))?;
    let content = sd
        .encap_content_info
        .econtent
        .ok_or_else(|| refused(&"a token without its TSTInfo"))?
        .decode_as::<der::asn1::OctetString>()
        .map_err(|e| refused(&e))?;
    let tst = x509_tsp::TstInfo::from_der(content.as_bytes()).map_err(|e| refused(&e))?;
    let want = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, signature);
    if tst.message_imprint.hashed_message.as_bytes() != want.as_ref() {
        return Err(refused(&"the token is over something else than this signature"));
    }
    Ok(())
}

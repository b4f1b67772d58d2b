//! Delivery to the state-service monitoring system: POST of the message with its detached CMS
//! signature (base64 DER, by the service certificate) in `X-Signature`, over kept-alive
//! connections, https:// (the system's roots or `monitoring.ca_file`) or plain http:// (to a
//! local proxy: the body is signed either way).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;

use super::{Deliver, DeliveryError};
use crate::keys::Signer;
use crate::store::DueMessage;

pub struct Sender {
    url: reqwest::Url,
    client: reqwest::Client,
    signer: Arc<dyn Signer>,
    cert_der: Arc<Vec<u8>>,
    timeout: Duration,
    /// With `[monitoring] timestamp = true`: the CA whose TSA stamps each signature (CAdES-T).
    timestamps: Option<Arc<crate::pki::Ca>>,
}

impl Sender {
    /// The monitoring link `cfg` names, signing with `ca`'s service key.
    pub fn new(ca: &Arc<crate::pki::Ca>, cfg: &crate::config::MonitoringSection) -> anyhow::Result<Sender> {
        let url =
            reqwest::Url::parse(&cfg.url).map_err(|e| anyhow::anyhow!("NCA_MONITORING_URL {:?}: {e}", cfg.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!("NCA_MONITORING_URL {:?}: https:// or http://", cfg.url);
        }
        let service = ca
            .service
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no service key: the monitoring messages cannot be signed"))?;
        let tls = crate::tls_client::client_config(&cfg.ca_file, url.scheme() == "https")?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .pool_max_idle_per_host(cfg.concurrency.max(1))
            .connect_timeout(Duration::from_millis(cfg.timeout_ms))
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Sender {
            url,
            client,
            signer: Arc::clone(&service.signer),
            cert_der: Arc::new(service.cert_der.clone()),
            timeout: Duration::from_millis(cfg.timeout_ms),
            timestamps: cfg.timestamp.then(|| Arc::clone(ca)),
        })
    }

    /// The detached signature of `body`, base64: made off the async threads (a token may be slow).
    async fn signature(&self, body: &str) -> Result<String, DeliveryError> {
        let signer = Arc::clone(&self.signer);
        let cert = Arc::clone(&self.cert_der);
        let body = body.as_bytes().to_vec();
        let der =
            tokio::task::spawn_blocking(move || crate::pki::signed_data::sign(signer.as_ref(), &cert, &body, false))
                .await
                .map_err(|e| DeliveryError::Prepare(e.to_string()))?
                .map_err(|e| DeliveryError::Prepare(e.to_string()))?;
        let der = match &self.timestamps {
            Some(ca) => timestamped(ca, der).await,
            None => der,
        };
        Ok(base64::engine::general_purpose::STANDARD.encode(der))
    }
}

/// The signature with a time-stamp token of its value added (CAdES-T). A TSA that cannot give
/// one (its clock untrusted) leaves the signature as it is: the message still goes, signed, and
/// the log says why it has no token.
async fn timestamped(ca: &crate::pki::Ca, der: Vec<u8>) -> Vec<u8> {
    let stamped = async {
        let sig = crate::pki::signed_data::signature_value(&der).map_err(|e| e.to_string())?;
        let token = ca.timestamp_token(&sig).await.map_err(|e| e.to_string())?;
        crate::pki::signed_data::add_signature_timestamp(&der, &token).map_err(|e| e.to_string())
    };
    match stamped.await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!("monitoring message signed without a time-stamp: {e}");
            der
        }
    }
}

impl Deliver for Sender {
    async fn deliver(&self, m: &DueMessage) -> Result<Option<u16>, DeliveryError> {
        let signature = self.signature(&m.body).await?;
        let req = self
            .client
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("x-signature", signature)
            .header("x-message-id", &m.message_id)
            .body(m.body.clone());
        let work = async {
            let resp = req
                .send()
                .await
                .map_err(|e| DeliveryError::Unreachable(e.without_url().to_string()))?;
            let status = resp.status().as_u16();
            // The answer is read to the end, so the connection can carry the next message.
            let _ = resp.bytes().await;
            Ok::<u16, DeliveryError>(status)
        };
        let status = tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| DeliveryError::Unreachable(format!("no answer within {} ms", self.timeout.as_millis())))??;
        if (200..300).contains(&status) {
            Ok(Some(status))
        } else {
            Err(DeliveryError::Status { status })
        }
    }
}

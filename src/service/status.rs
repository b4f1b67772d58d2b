//! `nca serve --role status` (`NCA_ROLE=status`): the relying parties' side of the public
//! listener — CA certificates, CRLs, OCSP from the answers signed ahead, certificate status,
//! signature verification — on a read-only database URL, a PostgreSQL streaming replica.
//!
//! It writes nothing: no migration (the schema version is checked and a mismatch refused), no
//! ceremony, no CRL publication (it serves the CRLs the primaries published, read again every
//! few seconds), no outbox, no audit record, no duty. It holds no key either: the CA's
//! certificates are read from the database and every signer it has refuses to sign, so the
//! replica's machine needs no HSM and no key file. Hence no time-stamping (a token is signed
//! and recorded) and no live OCSP signature: nonce requests get the kept answer without the
//! nonce, and what is not kept gets `tryLater`.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::{self, AppState};
use crate::keys::{self, KeyAlgorithm, KeyStore, KeyStoreError, Signer};
use crate::operators::centres::Centres;
use crate::pki::Ca;
use crate::store::{CaKeyRecord, Store};

/// The CA's public keys, from the certificates the database holds, under the labels it names.
struct PublicKey {
    label: String,
    algorithm: KeyAlgorithm,
    spki: Vec<u8>,
}

impl Signer for PublicKey {
    fn label(&self) -> &str {
        &self.label
    }
    fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }
    fn spki_der(&self) -> &[u8] {
        &self.spki
    }
    fn sign_blocking(&self, _msg: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        Err(KeyStoreError::KeyNotFound(format!(
            "{} (a status instance holds no key)",
            self.label
        )))
    }
}

/// A key store of public keys only: what `Ca::open` needs to know the hierarchy, with nothing
/// that signs.
struct PublicKeys {
    kind: &'static str,
    keys: Vec<CaKeyRecord>,
}

impl KeyStore for PublicKeys {
    fn kind(&self) -> &'static str {
        self.kind
    }
    fn generate(&self, label: &str, _alg: KeyAlgorithm) -> Result<Arc<dyn Signer>, KeyStoreError> {
        Err(KeyStoreError::KeyNotFound(format!(
            "{label} (a status instance makes no key)"
        )))
    }
    fn open(&self, label: &str) -> Result<Arc<dyn Signer>, KeyStoreError> {
        use der::{Decode, Encode};
        let record = self
            .keys
            .iter()
            .find(|r| r.key_label == label)
            .ok_or_else(|| KeyStoreError::KeyNotFound(label.into()))?;
        let bad = |e: der::Error| KeyStoreError::Software(format!("certificate of {label}: {e}"));
        let cert = x509_cert::Certificate::from_der(&record.certificate).map_err(bad)?;
        let info = &cert.tbs_certificate.subject_public_key_info;
        let (algorithm, _) =
            keys::algorithm_of_spki(info).ok_or_else(|| KeyStoreError::UnsupportedAlgorithm(label.into()))?;
        Ok(Arc::new(PublicKey {
            label: label.into(),
            algorithm,
            spki: info.to_der().map_err(bad)?,
        }))
    }
    fn check(&self) -> Result<(), KeyStoreError> {
        Ok(())
    }
}

/// How often the CRLs the primaries published are read again.
const CRL_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

async fn refresh_crls(ca: &Ca, store: &Store, cache: &crate::publisher::CrlCache) {
    for (issuer, kind) in [
        (&ca.issuing.id, "full"),
        (&ca.issuing.id, "delta"),
        (&ca.root.id, "full"),
    ] {
        match store.latest_crl(issuer, kind).await {
            Ok(Some(r)) => cache.refresh(&r),
            Ok(None) => {}
            Err(e) => tracing::error!("CRLs from the database: {e}"),
        }
    }
}

pub async fn serve(cfg: Arc<Config>) -> anyhow::Result<()> {
    tracing::info!(config = %cfg.source, "starting nca as a status instance (read-only, no key, no duty)");
    let store = Store::open_read_only(&cfg.database_url).await?;
    let records = store.ca_keys().await?;
    let kind = match records.first().map(|r| r.key_store.as_str()) {
        Some("pkcs11") => "pkcs11",
        _ => "software",
    };
    let key_store: Arc<dyn KeyStore> = Arc::new(PublicKeys { kind, keys: records });
    let ca = Arc::new(Ca::open(Arc::clone(&cfg), store.clone(), Arc::clone(&key_store)).await?);
    let crls = Arc::new(crate::publisher::CrlCache::default());
    refresh_crls(&ca, &store, &crls).await;
    let state = AppState {
        regulation: Arc::new(crate::workflow::regulation::Regulation::load(&cfg.regulation.file)?),
        registry: Arc::new(crate::registry::StateRegistry::open(&cfg.registry)?),
        ca: Arc::clone(&ca),
        store: store.clone(),
        config: Arc::clone(&cfg),
        key_store,
        crls: Arc::clone(&crls),
        centres: Arc::new(Centres::load(&cfg)?),
        metrics: Arc::new(http::metrics::Metrics::default()),
        abuse: Arc::new(http::abuse::Abuse::new(&cfg.portal)),
        // A status instance holds no duty and is no member of the cluster's leases.
        cluster: None,
    };
    let public = TcpListener::bind(cfg.listen).await?;
    // Tests and scripts read this line to learn the port; there is no operator listener.
    println!("listening: public=http://{} role=status", public.local_addr()?);
    tracing::info!(public = %public.local_addr()?, "listening (status instance)");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut stop = stop_rx.clone();
    let crl_store = store.clone();
    let crl_task = tokio::spawn(async move {
        while !*stop.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(CRL_EVERY) => {}
                _ = stop.changed() => break,
            }
            refresh_crls(&ca, &crl_store, &crls).await;
        }
    });
    let limits = http::listen::Limits::new(&cfg.http, cfg.service.max_body_bytes);
    let pub_task = tokio::spawn(http::listen::serve_plain(
        public,
        http::status_router(state),
        limits,
        stop_rx,
    ));
    super::shutdown_signal().await;
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    let _ = crl_task.await;
    let _ = pub_task.await;
    store.close().await;
    Ok(())
}

//! `nca serve`: start-up in a fixed order (configuration, safety, store, key store, ceremony on
//! first start, reconciliation, listeners) and a clean stop on SIGTERM or Ctrl-C.

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::{Config, KeyStoreKind};
use crate::http::{self, AppState};
use crate::operators::centres::Centres;
use crate::pki::{Ca, ceremony};
use crate::store::{Store, now};

mod status;

/// Opens what every command needs: store and key store, after the safety check.
pub async fn open_parts(cfg: &Config) -> anyhow::Result<(Store, Arc<dyn crate::keys::KeyStore>)> {
    cfg.check_safety()?;
    if cfg.key_store.kind == KeyStoreKind::Software {
        tracing::warn!(
            "software key store: CA keys are files in {}; for development only",
            cfg.data_dir.join("keys").display()
        );
    }
    std::fs::create_dir_all(&cfg.data_dir)?;
    let store = Store::open(&cfg.database_url).await?;
    let c = cfg.clone();
    let key_store = tokio::task::spawn_blocking(move || crate::keys::open_store(&c)).await??;
    Ok((store, key_store))
}

/// Runs the ceremony; used by `nca init` and by the first start of `nca serve`.
pub async fn init(cfg: Arc<Config>) -> anyhow::Result<ceremony::CeremonyReport> {
    let (store, key_store) = open_parts(&cfg).await?;
    let report = ceremony::init(Arc::clone(&cfg), store.clone(), key_store).await;
    store.close().await;
    Ok(report?)
}

pub async fn serve(cfg: Arc<Config>) -> anyhow::Result<()> {
    // A status instance (`--role status`) is another program on the same parts: read-only, no
    // key, no duty (`service/status.rs`).
    if cfg.role == crate::config::Role::Status {
        return status::serve(cfg).await;
    }
    tracing::info!(config = %cfg.source, development = cfg.service.development, "starting nca");
    let (store, key_store) = open_parts(&cfg).await?;
    if store.ca_keys().await?.is_empty() {
        tracing::warn!(
            "no CA in the database: first start, running the key ceremony with {}",
            cfg.source
        );
        let report = ceremony::init(Arc::clone(&cfg), store.clone(), Arc::clone(&key_store)).await?;
        for line in &report.lines {
            tracing::info!("ceremony: {line}");
        }
    }
    let mut ca = Ca::open(Arc::clone(&cfg), store.clone(), Arc::clone(&key_store)).await?;
    // A deployment made before the time-stamping authority gets its key on this start.
    if let Some(line) = ceremony::ensure_tsa(&ca).await? {
        tracing::info!(target: "audit", "ceremony: {line}");
        ca = Ca::open(Arc::clone(&cfg), store.clone(), Arc::clone(&key_store)).await?;
    }
    let renewed = ceremony::renew_delegated(&ca).await?;
    for line in &renewed {
        tracing::info!(target: "audit", "{line}");
    }
    if !renewed.is_empty() {
        ca = Ca::open(Arc::clone(&cfg), store.clone(), key_store).await?;
    }
    ceremony::write_tsa_certificate(&ca)?;

    let stale = store
        .abandon_stale_pending(now() - cfg.ca.pending_abandon_after_seconds)
        .await?;
    for (issuer, serial) in &stale {
        tracing::warn!(target: "audit", "abandoned: serial=[{serial}] issuer=[{issuer}] reason=[pending at start-up, never issued]");
    }

    let crls = Arc::new(crate::publisher::CrlCache::default());
    let ca = Arc::new(ca);
    // The first publication happens before the listeners open, so CRLs are there to serve.
    if let Err(e) = crate::publisher::tick(&ca, &crls).await {
        tracing::error!("CRL publication: {e}");
    }
    let regulation = crate::workflow::regulation::Regulation::load(&cfg.regulation.file)?;
    tracing::info!(processes = regulation.processes.len(), "regulation loaded");
    let registry = crate::registry::StateRegistry::open(&cfg.registry)?;
    tracing::info!(
        registry = if cfg.registry.url.is_empty() {
            "embedded"
        } else {
            "gateway"
        },
        "state registry"
    );
    let state = AppState {
        regulation: Arc::new(regulation),
        registry: Arc::new(registry),
        ca: Arc::clone(&ca),
        crls: Arc::clone(&crls),
        centres: Arc::new(Centres::load(&cfg)?),
        metrics: Arc::new(http::metrics::Metrics::default()),
        abuse: Arc::new(http::abuse::Abuse::new(&cfg.portal)),
    };

    let public = TcpListener::bind(cfg.listen).await?;
    let operator = TcpListener::bind(cfg.operator_listen).await?;
    let tls_config = http::tls::server_config(
        &cfg.data_dir.join("tls/server.crt"),
        &cfg.data_dir.join("tls/server.key"),
        &state.ca.issuing.cert_der,
    )?;
    // Tests and scripts read this line to learn the ports when they asked for port 0.
    println!(
        "listening: public=http://{} operator=https://{}",
        public.local_addr()?,
        operator.local_addr()?
    );
    tracing::info!(public = %public.local_addr()?, operator = %operator.local_addr()?, "listening");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let outbox = crate::outbox::spawn_workers(&ca, &stop_rx)?;
    let retries = tokio::spawn(registry_retries(state.clone(), stop_rx.clone()));
    let reminders = tokio::spawn(crate::cabinet::reminders::run(Arc::clone(&ca), stop_rx.clone()));
    let driver = crate::workflow::driver::Driver {
        ca: Arc::clone(&state.ca),
        regulation: Arc::clone(&state.regulation),
        registry: Arc::clone(&state.registry),
        centres: Arc::clone(&state.centres),
    };
    let driver = tokio::spawn(driver.run(stop_rx.clone()));
    // OCSP answers signed ahead: the one call site (branch `cluster` holds it under Duty::Ocsp).
    let presigner = tokio::spawn(crate::pki::ocsp::presign::run(Arc::clone(&ca), stop_rx.clone()));
    let publisher = tokio::spawn(crate::publisher::run(ca, crls, stop_rx.clone()));
    let limits = http::listen::Limits::new(&cfg.http, cfg.service.max_body_bytes);
    let op = tokio::spawn(http::tls::serve(
        operator,
        tls_config,
        http::operator_router(state.clone()),
        limits,
        stop_rx.clone(),
    ));
    // The client's address goes with each request, for the application form's rate limits.
    let pub_task = tokio::spawn(http::listen::serve_plain(
        public,
        http::public_router(state),
        limits,
        stop_rx.clone(),
    ));
    shutdown_signal().await;
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    let _ = op.await;
    let _ = publisher.await;
    let _ = presigner.await;
    for w in outbox {
        let _ = w.await;
    }
    let _ = retries.await;
    let _ = reminders.await;
    let _ = driver.await;
    let _ = pub_task.await;
    store.close().await;
    Ok(())
}

/// Asks the state database again, every `registry.retry_seconds`, for the applications it did not
/// answer for at submission.
async fn registry_retries(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let every = std::time::Duration::from_secs(state.ca.config.registry.retry_seconds.max(1));
    while !*stop.borrow() {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => break,
        }
        let waiting = match state
            .ca
            .store
            .applications_in(crate::workflow::model::Status::AwaitingRegistry, 100)
            .await
        {
            Ok(w) => w,
            Err(e) => {
                tracing::error!("registry retries: {e}");
                continue;
            }
        };
        for a in waiting {
            match state.workflow().retry_registry(&a).await {
                Ok(true) => tracing::info!(application = %a.number, "registry check done on retry"),
                Ok(false) => break,
                Err(e) => tracing::error!(application = %a.number, "registry retry: {e}"),
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

//! `nca serve`: start-up in a fixed order (configuration, safety, store, key store, ceremony on
//! first start, reconciliation, listeners) and a clean stop on SIGTERM or Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::cluster::{Cluster, Duty};
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
    let key_store =
        tokio::task::spawn_blocking(move || c.key_store_opening().and_then(crate::keys::open_store)).await??;
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
    if let Some(line) = ceremony::ensure_tsa(&ca, &store, &*key_store).await? {
        tracing::info!(target: "audit", "ceremony: {line}");
        ca = Ca::open(Arc::clone(&cfg), store.clone(), Arc::clone(&key_store)).await?;
    }

    // The duties this instance runs are wanted before the first heartbeat, so that a single
    // instance (and SQLite) holds them all from its start.
    let cluster = Cluster::join(store.clone(), cfg.cluster.lease_seconds).await?;
    for duty in Duty::ALL {
        cluster.want(duty);
    }
    cluster.heartbeat().await;

    // Renewed by one instance; the others read the renewed certificates when they open the CA.
    if cluster.holds(Duty::DelegatedRenewal).is_some() {
        let renewed = ceremony::renew_delegated(&ca, &store).await?;
        for line in &renewed {
            tracing::info!(target: "audit", "{line}");
        }
        if !renewed.is_empty() {
            ca = Ca::open(Arc::clone(&cfg), store.clone(), Arc::clone(&key_store)).await?;
        }
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
    // The first publication (by the holder of the duty) happens before the listeners open, so
    // CRLs are there to serve.
    if let Err(e) = crate::publisher::tick(&ca, &store, &crls, cluster.holds(Duty::Crl).as_ref()).await {
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
        store: store.clone(),
        config: Arc::clone(&cfg),
        key_store: Arc::clone(&key_store),
        crls: Arc::clone(&crls),
        centres: Arc::new(Centres::load(&cfg)?),
        metrics: Arc::new(http::metrics::Metrics::default()),
        abuse: Arc::new(http::abuse::Abuse::new(&cfg.portal)),
        cluster: Some(Arc::clone(&cluster)),
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
    let mut tasks = Tasks::default();
    for w in crate::outbox::spawn_workers(&ca, &store, &cfg, &stop_rx)? {
        tasks.add("outbox", w);
    }
    spawn_duties(&mut tasks, &state, &cluster, &stop_rx);
    // OCSP answers signed ahead, by the holder of the duty only; its writes need no fence (an
    // answer from an older reading never replaces a newer one, whoever writes it).
    let ocsp_duty = Arc::clone(&cluster);
    tasks.add(
        "ocsp presigner",
        tokio::spawn(crate::pki::ocsp::presign::run(
            Arc::clone(&ca),
            store.clone(),
            Box::new(move || ocsp_duty.holds(Duty::Ocsp).is_some()),
            stop_rx.clone(),
        )),
    );
    tasks.add(
        "publisher",
        tokio::spawn(crate::publisher::run(
            ca,
            store.clone(),
            crls,
            Arc::clone(&cluster),
            stop_rx.clone(),
        )),
    );
    tasks.add("heartbeat", cluster.run(stop_rx.clone()));
    let limits = http::listen::Limits::new(&cfg.http, cfg.service.max_body_bytes);
    tasks.add_with_grace(
        "operator listener",
        LISTENER_GRACE,
        tokio::spawn(http::tls::serve(
            operator,
            tls_config,
            http::operator_router(state.clone()),
            limits,
            stop_rx.clone(),
        )),
    );
    // The client's address goes with each request, for the application form's rate limits.
    tasks.add_with_grace(
        "public listener",
        LISTENER_GRACE,
        tokio::spawn(http::listen::serve_plain(
            public,
            http::public_router(state),
            limits,
            stop_rx.clone(),
        )),
    );
    shutdown_signal().await;
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    tasks.stop().await;
    // A database that is gone cannot be told goodbye: the pool is left to the process's end.
    if tokio::time::timeout(Duration::from_secs(2), store.close())
        .await
        .is_err()
    {
        tracing::warn!("the database did not answer the close");
    }
    Ok(())
}

/// How long the background tasks have to finish after SIGTERM before they are abandoned: a
/// round waiting on a database that has gone away would otherwise hold the process for the
/// pool's timeouts, round after round.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long a listener has to let the requests in flight finish (README, "Connections").
const LISTENER_GRACE: Duration = Duration::from_secs(30);

/// The service's tasks, by name, each with its time to stop.
#[derive(Default)]
struct Tasks(
    Vec<(
        &'static str,
        Duration,
        tokio::task::AbortHandle,
        tokio::task::JoinHandle<()>,
    )>,
);

impl Tasks {
    fn add<T: Send + 'static>(&mut self, name: &'static str, task: tokio::task::JoinHandle<T>) {
        self.add_with_grace(name, STOP_GRACE, task)
    }

    fn add_with_grace<T: Send + 'static>(
        &mut self,
        name: &'static str,
        grace: Duration,
        task: tokio::task::JoinHandle<T>,
    ) {
        let abort = task.abort_handle();
        self.0.push((
            name,
            grace,
            abort,
            tokio::spawn(async move {
                let _ = task.await;
            }),
        ));
    }

    /// Waits for every task up to its grace from now, then aborts those still running.
    async fn stop(self) {
        let start = tokio::time::Instant::now();
        for (name, grace, abort, mut task) in self.0 {
            if tokio::time::timeout_at(start + grace, &mut task).await.is_err() {
                tracing::warn!(task = name, "still running at the end of its stop: abandoned");
                abort.abort();
            }
        }
    }
}

/// Every periodic duty but CRL publishing (which every instance runs, to serve the newest
/// CRLs) and OCSP: each runs on the instance that holds it.
fn spawn_duties(
    tasks: &mut Tasks,
    state: &AppState,
    cluster: &Arc<Cluster>,
    stop: &tokio::sync::watch::Receiver<bool>,
) {
    use crate::cluster::duties;
    let cfg = &state.config;
    let (ca, store) = (&state.ca, &state.store);
    let secs = |n: u64| Duration::from_secs(n.max(1));
    let mut duty = |duty: Duty, every: Duration, round: crate::cluster::Round| {
        tasks.add(duty.as_str(), cluster.spawn_duty(duty, every, stop.clone(), round));
    };
    // Checked every minute, done hourly (and at once on a take-over).
    duty(
        Duty::AuditCheckpoint,
        secs(60),
        duties::checkpoint(Arc::clone(ca), store.clone()),
    );
    duty(
        Duty::ScheduledDismissals,
        secs(60),
        duties::scheduled_dismissals(store.clone(), Arc::clone(cfg)),
    );
    duty(
        Duty::IdleSuspension,
        secs(3600),
        duties::idle_suspension(store.clone(), Arc::clone(cfg)),
    );
    let retry_state = state.clone();
    duty(
        Duty::RegistryRetry,
        secs(cfg.registry.retry_seconds),
        Box::new(move |_| {
            let s = retry_state.clone();
            Box::pin(async move { registry_retries(&s).await })
        }),
    );
    let driver = Arc::new(crate::workflow::driver::Driver {
        ca: Arc::clone(&state.ca),
        store: state.store.clone(),
        config: Arc::clone(&state.config),
        regulation: Arc::clone(&state.regulation),
        registry: Arc::clone(&state.registry),
        centres: Arc::clone(&state.centres),
    });
    let archive_driver = Arc::clone(&driver);
    duty(
        Duty::WorkflowDriver,
        secs(cfg.workflow.driver_seconds),
        Box::new(move |_| {
            let d = Arc::clone(&driver);
            Box::pin(async move {
                d.round().await;
            })
        }),
    );
    duty(
        Duty::DelegatedRenewal,
        secs(86_400),
        duties::delegated_renewal(Arc::clone(ca), store.clone()),
    );
    let (reminders_store, reminders_cfg) = (store.clone(), Arc::clone(cfg));
    duty(
        Duty::CabinetReminders,
        secs(cfg.cabinet.reminder_every_seconds),
        Box::new(move |_| {
            let (store, cfg) = (reminders_store.clone(), Arc::clone(&reminders_cfg));
            Box::pin(async move {
                if let Err(e) = crate::cabinet::reminders::run_once(&store, &cfg, now()).await {
                    tracing::error!("expiry reminders: {e}");
                }
            })
        }),
    );
    duty(
        Duty::OutboxRetention,
        secs(60),
        duties::outbox_retention(store.clone(), Arc::clone(cfg)),
    );
    duty(
        Duty::ArchiveRetention,
        secs(cfg.archive.sweep_seconds),
        Box::new(move |_| {
            let d = Arc::clone(&archive_driver);
            Box::pin(async move { d.sweep_archive().await })
        }),
    );
}

/// One round of the registry retry: the applications the state database did not answer for at
/// submission, asked again.
async fn registry_retries(state: &AppState) {
    let waiting = match state
        .store
        .applications_in(crate::model::Status::AwaitingRegistry, 100)
        .await
    {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("registry retries: {e}");
            return;
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

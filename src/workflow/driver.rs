//! The background driver: every `workflow.driver_seconds` it takes up each application whose
//! result step is recorded but not done (the worker died, the key store or the database failed)
//! and finishes it ([`Workflow::finish`]). It runs on every instance; the intent's lease
//! (`workflow.lease_seconds`) lets only one of them at a time work on an application, and a
//! lease that runs out (its holder was killed) lets the next round take it up.

use std::sync::Arc;

use super::application::Workflow;
use super::regulation::Regulation;
use crate::config::Config;
use crate::model::{Status, WAITING_KEY_STORE};
use crate::operators::centres::Centres;
use crate::pki::Ca;
use crate::registry::StateRegistry;
use crate::store::Store;

/// How many applications one round takes up at most.
const ROUND: i64 = 64;

/// What the driver needs, owned (the service's shared parts).
pub struct Driver {
    pub ca: Arc<Ca>,
    pub store: Store,
    pub config: Arc<Config>,
    pub regulation: Arc<Regulation>,
    pub registry: Arc<StateRegistry>,
    pub centres: Arc<Centres>,
}

impl Driver {
    fn workflow(&self) -> Workflow<'_> {
        Workflow {
            ca: &self.ca,
            store: &self.store,
            config: &self.config,
            regulation: &self.regulation,
            registry: &self.registry,
            centres: &self.centres,
            lang: None,
        }
    }

    /// One round: claims what is due and finishes each; returns how many were finished or moved
    /// on (waiting again counts as not).
    pub async fn round(&self) -> usize {
        let cfg = &self.config.workflow;
        let due = match self.store.claim_intents(ROUND, cfg.lease_seconds).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("workflow driver: {e}");
                return 0;
            }
        };
        // An application waiting for the key store costs one signature per round, recorded
        // nowhere, until the key signs again: no pending certificate, no audit record, no
        // message. One probe serves every waiting application of the round.
        let mut key_store: Option<Result<(), String>> = None;
        let mut done = 0;
        for a in due {
            if a.status == Status::AwaitingKeyStore {
                if key_store.is_none() {
                    key_store = Some(self.probe_key_store().await);
                }
                if let Some(Err(cause)) = &key_store {
                    tracing::debug!(application = %a.number, "key store still unavailable: {cause}");
                    if let Err(e) = self.store.release_intent(&a.number, WAITING_KEY_STORE).await {
                        tracing::error!(application = %a.number, "workflow driver: {e}");
                    }
                    continue;
                }
            }
            match self.workflow().finish(&a, true).await {
                Ok(()) => {
                    tracing::info!(application = %a.number, "workflow driver: result step taken up");
                    done += 1;
                }
                Err(e) => tracing::error!(application = %a.number, "workflow driver: {e}"),
            }
        }
        done
    }

    /// Whether the issuing key signs now: one signature over a fixed text, kept nowhere.
    async fn probe_key_store(&self) -> Result<(), String> {
        crate::keys::sign(&self.ca.issuing.signer, b"nca key store probe".to_vec())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The retention sweep of the document archive ([`super::archive::sweep`]).
    pub async fn sweep_archive(&self) {
        match super::archive::sweep(&self.store, &self.config, crate::store::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("archive: {n} receipts past their retention period deleted"),
            Err(e) => tracing::error!("archive sweep: {e}"),
        }
    }
}

//! The background driver: every `workflow.driver_seconds` it takes up each application whose
//! result step is recorded but not done (the worker died, the key store or the database failed)
//! and finishes it ([`Workflow::finish`]). It runs on every instance; the intent's lease
//! (`workflow.lease_seconds`) lets only one of them at a time work on an application, and a
//! lease that runs out (its holder was killed) lets the next round take it up.

use std::sync::Arc;
use std::time::Duration;

use super::application::Workflow;
use super::regulation::Regulation;
use crate::operators::centres::Centres;
use crate::pki::Ca;
use crate::registry::StateRegistry;

/// How many applications one round takes up at most.
const ROUND: i64 = 64;

/// What the driver needs, owned (the service's shared parts).
pub struct Driver {
    pub ca: Arc<Ca>,
    pub regulation: Arc<Regulation>,
    pub registry: Arc<StateRegistry>,
    pub centres: Arc<Centres>,
}

impl Driver {
    fn workflow(&self) -> Workflow<'_> {
        Workflow {
            ca: &self.ca,
            regulation: &self.regulation,
            registry: &self.registry,
            centres: &self.centres,
            lang: None,
        }
    }

    /// One round: claims what is due and finishes each; returns how many were finished or moved
    /// on (waiting again counts as not).
    pub async fn round(&self) -> usize {
        let cfg = &self.ca.config.workflow;
        let due = match self.ca.store.claim_intents(ROUND, cfg.lease_seconds).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!("workflow driver: {e}");
                return 0;
            }
        };
        let mut done = 0;
        for a in due {
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

    /// Runs rounds until `stop`.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let every = Duration::from_secs(self.ca.config.workflow.driver_seconds.max(1));
        while !*stop.borrow() {
            self.round().await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => break,
            }
        }
    }
}

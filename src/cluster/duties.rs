//! The rounds of the duties that have no module of their own to live in: the audit checkpoint,
//! operators' scheduled dismissals and idle suspensions, the delegated certificates' renewal and
//! the outbox's retention. Each takes the fence its duty is held under.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::Round;
use crate::config::Config;
use crate::pki::Ca;
use crate::store::{Fence, Store, StoreError, now};

const DAY: i64 = 86_400;

/// The audit checkpoint: at once when the duty is taken (a start, or a take-over from an
/// instance that may have died before its hourly one), then every
/// [`crate::audit::CHECKPOINT_EVERY`].
pub fn checkpoint(ca: Arc<Ca>, store: Store) -> Round {
    let last: Arc<Mutex<Option<(i64, Instant)>>> = Arc::new(Mutex::new(None));
    Box::new(move |fence: Fence| {
        let (ca, store, last) = (Arc::clone(&ca), store.clone(), Arc::clone(&last));
        Box::pin(async move {
            let due = last
                .lock()
                .map(|l| l.is_none_or(|(f, at)| f != fence.number || at.elapsed() >= crate::audit::CHECKPOINT_EVERY));
            if !due.unwrap_or(true) {
                return;
            }
            match crate::audit::checkpoint(&ca, &store, Some(&fence)).await {
                Ok(()) => {
                    if let Ok(mut l) = last.lock() {
                        *l = Some((fence.number, Instant::now()));
                    }
                }
                Err(e) => tracing::error!("audit checkpoint: {e}"),
            }
        })
    })
}

/// Operators whose dismissal date has come get the status `dismissed`; operators idle for
/// `operators.suspend_after_days` are suspended (§15), as the next access would do; both
/// audited by the store. Returns the operators changed, as (iin, new status).
pub async fn operators_round(
    store: &Store,
    cfg: &Config,
    dismissals: bool,
    idle: bool,
    t: i64,
) -> Result<Vec<(String, String)>, StoreError> {
    let idle_after = i64::from(cfg.operators.suspend_after_days) * DAY;
    let mut changed = Vec::new();
    for o in store.operators().await? {
        if o.status == "dismissed" {
            continue;
        }
        let (from, to): (&[&str], &str) = if dismissals && o.dismissed_at.is_some_and(|d| d <= t) {
            (&["active", "suspended"], "dismissed")
        } else if idle && o.status == "active" && idle_after > 0 && t - o.last_activity_at > idle_after {
            (&["active"], "suspended")
        } else {
            continue;
        };
        if store
            .set_operator_status(&o.iin, from, to, None, &crate::model::Actor::Service)
            .await?
            .is_some()
        {
            tracing::info!(target: "audit", "operator {to}: iin=[{}] reason=[{}]", o.iin,
                if to == "dismissed" { "dismissal date reached" } else { "no activity" });
            changed.push((o.iin.clone(), to.to_string()));
        }
    }
    Ok(changed)
}

pub fn scheduled_dismissals(store: Store, cfg: Arc<Config>) -> Round {
    Box::new(move |_fence: Fence| {
        let (store, cfg) = (store.clone(), Arc::clone(&cfg));
        Box::pin(async move {
            if let Err(e) = operators_round(&store, &cfg, true, false, now()).await {
                tracing::error!("scheduled dismissals: {e}");
            }
        })
    })
}

pub fn idle_suspension(store: Store, cfg: Arc<Config>) -> Round {
    Box::new(move |_fence: Fence| {
        let (store, cfg) = (store.clone(), Arc::clone(&cfg));
        Box::pin(async move {
            if let Err(e) = operators_round(&store, &cfg, false, true, now()).await {
                tracing::error!("idle suspension: {e}");
            }
        })
    })
}

/// The delegated certificates renewed when near their end. The new certificate is in the
/// database; each instance takes it up at its next start (a renewal leaves 30 days).
pub fn delegated_renewal(ca: Arc<Ca>, store: Store) -> Round {
    Box::new(move |_fence: Fence| {
        let (ca, store) = (Arc::clone(&ca), store.clone());
        Box::pin(async move {
            match crate::pki::ceremony::renew_delegated(&ca, &store).await {
                Ok(lines) => {
                    for line in &lines {
                        tracing::info!(target: "audit", "{line}");
                    }
                    if !lines.is_empty() {
                        tracing::warn!("delegated certificates renewed: each instance uses them from its next start");
                    }
                }
                Err(e) => tracing::error!("delegated renewal: {e}"),
            }
        })
    })
}

/// Messages removed per transaction: a round of retention never holds the outbox long.
const PRUNE_BATCH: i64 = 5_000;

/// One round of retention as of `t`: delivered messages older than `outbox.retention_days` and
/// their attempts removed, in batches; then the outbox's counts folded. Returns how many
/// messages went.
pub async fn retention_round(store: &Store, cfg: &Config, t: i64, fence: Option<&Fence>) -> Result<u64, StoreError> {
    let before = t - i64::from(cfg.outbox.retention_days) * DAY;
    let mut total = 0;
    loop {
        let n = store.prune_delivered(before, PRUNE_BATCH, fence).await?;
        total += n;
        if n < PRUNE_BATCH as u64 {
            break;
        }
    }
    store.fold_outbox_tally().await?;
    if total > 0 {
        tracing::info!(messages = total, "outbox retention: delivered messages removed");
    }
    Ok(total)
}

pub fn outbox_retention(store: Store, cfg: Arc<Config>) -> Round {
    Box::new(move |fence: Fence| {
        let (store, cfg) = (store.clone(), Arc::clone(&cfg));
        Box::pin(async move {
            if let Err(e) = retention_round(&store, &cfg, now(), Some(&fence)).await {
                tracing::error!("outbox retention: {e}");
            }
        })
    })
}

//! CRL publication: the schedule (full CRL every 24 h, delta at least hourly and within a minute
//! of any change to the revocations) and the copies served from memory.
//!
//! The publisher polls the database every few seconds rather than waiting for a signal, so a
//! revocation made by `nca cert revoke` in another process reaches the delta as fast as one made
//! through the API.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::audit::actor::Actor;
use crate::pki::Ca;
use crate::pki::crl::{self, CrlKind};
use crate::store::{CrlRecord, now};

/// How often the schedule is checked.
pub const TICK: Duration = Duration::from_secs(5);

/// A CRL as served: the DER and what HTTP caching needs.
#[derive(Debug, Clone)]
pub struct Published {
    pub der: Arc<Vec<u8>>,
    pub etag: String,
    pub this_update: i64,
    pub next_update: i64,
}

/// The newest CRLs by file name (`nca.crl`, `nca-delta.crl`, `root.crl`).
#[derive(Default)]
pub struct CrlCache(RwLock<HashMap<String, Published>>);

impl CrlCache {
    pub fn get(&self, file: &str) -> Option<Published> {
        self.0.read().ok()?.get(file).cloned()
    }

    /// Serves `r` if it is newer than what is served.
    pub fn refresh(&self, r: &CrlRecord) {
        self.put(r)
    }

    fn put(&self, r: &CrlRecord) {
        let file = match r.kind.as_str() {
            "delta" => format!("{}-delta.crl", r.issuer),
            _ => format!("{}.crl", r.issuer),
        };
        let p = Published {
            der: Arc::new(r.der.clone()),
            etag: format!("\"{}-{}\"", r.issuer, r.number),
            this_update: r.this_update,
            next_update: r.next_update,
        };
        if let Ok(mut m) = self.0.write() {
            let newer = m.get(&file).is_none_or(|old| old.etag != p.etag);
            if newer {
                m.insert(file, p);
            }
        }
    }
}

/// One pass of the schedule; publishes what is due and refreshes the served copies.
pub async fn tick(ca: &Ca, cache: &CrlCache) -> Result<(), crl::CrlError> {
    let t = now();
    let issuing = ca.issuing.id.clone();
    let full = match ca.store.latest_crl(&issuing, "full").await? {
        Some(f) if f.this_update + crl::FULL_EVERY > t => f,
        _ => ca.publish_crl(&issuing, CrlKind::Full, &Actor::Service).await?,
    };
    let delta = ca.store.latest_crl(&issuing, "delta").await?;
    let changed = ca.store.last_revocation_change(&issuing, t).await?;
    let due = match &delta {
        None => true,
        Some(d) => {
            d.this_update + crl::DELTA_EVERY <= t
                || d.base_number.unwrap_or(0) < full.number
                // A change in the second of the last delta or after, once that second is over
                // (a CRL lists what was recorded before the second it is published in).
                || changed.is_some_and(|c| c >= d.this_update && t > c)
        }
    };
    let delta = if due {
        ca.publish_crl(&issuing, CrlKind::Delta, &Actor::Service).await?
    } else {
        delta.expect("not due without a delta")
    };
    cache.put(&full);
    cache.put(&delta);

    let root = ca.root.id.clone();
    let root_crl = match ca.store.latest_crl(&root, "full").await? {
        Some(r) if r.next_update - crl::ROOT_RENEW_BEFORE > t => r,
        _ => ca.publish_crl(&root, CrlKind::Full, &Actor::Service).await?,
    };
    cache.put(&root_crl);
    Ok(())
}

/// How often the audit chain's head is signed by the service key.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(3600);

/// Runs the schedule until `stop` fires.
pub async fn run(ca: Arc<Ca>, cache: Arc<CrlCache>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut last_checkpoint: Option<std::time::Instant> = None;
    loop {
        if let Err(e) = tick(&ca, &cache).await {
            tracing::error!("CRL publication: {e}");
        }
        if last_checkpoint.is_none_or(|t| t.elapsed() >= CHECKPOINT_EVERY) {
            match crate::audit::checkpoint(&ca).await {
                Ok(()) => last_checkpoint = Some(std::time::Instant::now()),
                Err(e) => tracing::error!("audit checkpoint: {e}"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => return,
        }
    }
}

/// What is published for each CA: the newest full and delta CRL, their numbers, thisUpdate and
/// nextUpdate, for the administrators' page.
pub async fn status(ca: &Ca) -> Result<Vec<serde_json::Value>, crate::store::StoreError> {
    let mut out = Vec::new();
    for issuer in [&ca.root.id, &ca.issuing.id] {
        for kind in ["full", "delta"] {
            if let Some(c) = ca.store.latest_crl(issuer, kind).await? {
                out.push(serde_json::json!({
                    "issuer": c.issuer, "kind": c.kind, "number": c.number, "base_number": c.base_number,
                    "entries": c.entries, "this_update": crate::pki::status::rfc3339(c.this_update),
                    "next_update": crate::pki::status::rfc3339(c.next_update),
                    "overdue": c.next_update < now(),
                }));
            }
        }
    }
    Ok(out)
}

//! The kept answers a relying party asked for just now, in this instance's memory, so that a hot
//! no-nonce answer costs no database read (issue #16 made every one a read of `ocsp_answers`:
//! ~12,000 answers/s where memory had given ~41,000, BENCHMARKS.md).
//!
//! Why an entry may be served at all, and for how long:
//! - It lives at most [`TTL`] (500 ms) after it was read from the store. A status instance runs
//!   no pre-signer and so sees no change but through the store: a revocation through any instance
//!   is in the kept answer within ~250 ms (the primaries' change poll) plus a replica's lag, and
//!   500 ms more keeps it well inside the 2 s that `tests/it/presign.rs` and `replica.rs` hold.
//! - On an instance that runs the pre-signer, every serial its change poll sees (changed, whether
//!   this instance signed it anew or another one had) is forgotten after the new answer is
//!   written ([`HotAnswers::forget`]), so there a revocation shows as soon as without the cache.
//!   A read that began before a forget does not put its older answer back: [`HotAnswers::put`]
//!   takes the epoch seen before the read and keeps nothing if a forget came between.
//! - Never past the answer's nextUpdate: checked on every hit, as the store's read does.
//!
//! Bounded: at most [`CAP`] entries (10,000: ~1 KB for a P-256 answer with the responder's
//! certificate, ~2 KB for RSA-2048, so ~10–25 MB at worst); when full it starts again empty, so
//! 500,000 certificates in force asked for at random cost the store's read each, and memory no
//! more than the cap. Only what the store holds is put here; an unknown serial is never kept.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use super::Answer;

/// The longest an entry is served after it was read from the store.
pub const TTL: Duration = Duration::from_millis(500);

/// The most entries held.
pub const CAP: usize = 10_000;

struct Hot {
    answer: Answer,
    /// Read at most [`TTL`] before.
    until: Instant,
    /// The answer's nextUpdate, Unix seconds.
    next_update: i64,
}

struct Inner {
    entries: HashMap<String, Hot>,
    /// Bumped by every forget, under the lock.
    epoch: u64,
}

pub struct HotAnswers {
    inner: RwLock<Inner>,
    ttl: Duration,
    cap: usize,
}

impl Default for HotAnswers {
    fn default() -> Self {
        HotAnswers::new(TTL, CAP)
    }
}

impl HotAnswers {
    pub fn new(ttl: Duration, cap: usize) -> HotAnswers {
        HotAnswers {
            inner: RwLock::new(Inner {
                entries: HashMap::new(),
                epoch: 0,
            }),
            ttl,
            cap: cap.max(1),
        }
    }

    /// The answer for `serial` if one was read less than the TTL before `now` and its nextUpdate
    /// is after `unix` (seconds).
    pub fn get(&self, serial: &str, now: Instant, unix: i64) -> Option<Answer> {
        let inner = self.inner.read().ok()?;
        let hot = inner.entries.get(serial)?;
        (now < hot.until && hot.next_update > unix).then(|| hot.answer.clone())
    }

    /// To be read before the store is: what [`HotAnswers::put`] compares against.
    pub fn epoch(&self) -> u64 {
        self.inner.read().map(|i| i.epoch).unwrap_or(u64::MAX)
    }

    /// Keeps an answer read from the store at `read_at`, unless a forget came since `epoch`.
    pub fn put(&self, serial: String, answer: Answer, next_update: i64, epoch: u64, read_at: Instant) {
        let Ok(mut inner) = self.inner.write() else { return };
        if inner.epoch != epoch {
            return;
        }
        if inner.entries.len() >= self.cap && !inner.entries.contains_key(&serial) {
            inner.entries.clear();
        }
        inner.entries.insert(
            serial,
            Hot {
                answer,
                until: read_at + self.ttl,
                next_update,
            },
        );
    }

    /// Drops the entries of `serials` (their status may have changed).
    pub fn forget<'a>(&self, serials: impl IntoIterator<Item = &'a str>) {
        let Ok(mut inner) = self.inner.write() else { return };
        inner.epoch += 1;
        for s in serials {
            inner.entries.remove(s);
        }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        if let Ok(mut inner) = self.inner.write() {
            inner.epoch += 1;
            inner.entries.clear();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.read().map(|i| i.entries.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn answer(der: &[u8]) -> Answer {
        Answer {
            der: Arc::new(der.to_vec()),
            freshness: None,
        }
    }

    fn der(a: Option<Answer>) -> Option<Vec<u8>> {
        a.map(|a| a.der.as_ref().clone())
    }

    #[test]
    fn an_entry_is_served_until_its_ttl_and_never_at_or_past_its_next_update() {
        let hot = HotAnswers::new(Duration::from_millis(500), 10);
        let t0 = Instant::now();
        hot.put("1a".into(), answer(b"good"), 1_000, hot.epoch(), t0);
        assert_eq!(der(hot.get("1a", t0, 999)), Some(b"good".to_vec()));
        assert_eq!(
            der(hot.get("1a", t0 + Duration::from_millis(499), 999)),
            Some(b"good".to_vec())
        );
        assert!(hot.get("1a", t0 + Duration::from_millis(500), 999).is_none());
        // Within the TTL but at its nextUpdate: not served.
        assert!(hot.get("1a", t0, 1_000).is_none());
        assert!(hot.get("2b", t0, 0).is_none());
    }

    #[test]
    fn a_forgotten_serial_is_read_again_and_a_read_begun_before_the_forget_is_not_kept() {
        let hot = HotAnswers::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        hot.put("1a".into(), answer(b"good"), 1_000, hot.epoch(), t0);
        hot.put("2b".into(), answer(b"good"), 1_000, hot.epoch(), t0);
        // A read of 1a begins, the pre-signer writes `revoked` and forgets 1a, the read ends.
        let before = hot.epoch();
        hot.forget(["1a"]);
        assert!(hot.get("1a", t0, 0).is_none());
        assert!(hot.get("2b", t0, 0).is_some(), "only the serials named are dropped");
        hot.put("1a".into(), answer(b"good"), 1_000, before, t0);
        assert!(hot.get("1a", t0, 0).is_none(), "the older answer is not put back");
        hot.put("1a".into(), answer(b"revoked"), 1_000, hot.epoch(), t0);
        assert_eq!(der(hot.get("1a", t0, 0)), Some(b"revoked".to_vec()));
        hot.clear();
        assert_eq!(hot.len(), 0);
    }

    #[test]
    fn it_never_holds_more_than_its_cap() {
        let hot = HotAnswers::new(Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for i in 0..1_000 {
            hot.put(format!("{i:x}"), answer(b"good"), 1_000, hot.epoch(), t0);
            assert!(hot.len() <= 100);
        }
        // Full: the next new serial starts it again; the newest is there.
        assert!(hot.get(&format!("{:x}", 999), t0, 0).is_some());
        // An entry already held is replaced in place, full or not.
        let held = hot.len();
        hot.put(format!("{:x}", 999), answer(b"revoked"), 1_000, hot.epoch(), t0);
        assert_eq!(hot.len(), held);
    }
}

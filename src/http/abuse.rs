//! Abuse protection of the public application form: token buckets per client address and per
//! IIN, and a hashcash-style proof of work that the portal page computes.
//!
//! The contract's `POST /api/v1/applications` stays what it was: a client that sends no proof is
//! counted against its address's bucket; the portal page sends a proof in the
//! `X-Proof-Of-Work` header, which spares its address's bucket (many citizens share an office's
//! or a proxy's address) but costs the browser about 2^bits hashes for each application. The
//! IIN's bucket counts every application naming that IIN, proof or not. Limits live in this
//! instance's memory: N instances allow N times the figures.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::PortalSection;

/// The header the portal sends its proof of work in.
pub const POW_HEADER: &str = "x-proof-of-work";
/// How far a stamp's time may be from the service's clock.
const POW_WINDOW_SECONDS: i64 = 600;
/// Buckets and spent stamps kept before the full ones are dropped.
const PRUNE_ABOVE: usize = 10_000;
/// Cabinet sign-ins an address may start for each application it may file: a sign-in costs the
/// citizen nothing but still writes a challenge row, and an office's citizens share an address.
const SIGN_INS_PER_APPLICATION: u32 = 6;

/// Why a submission is not admitted. Nothing is recorded for either.
#[derive(Debug, thiserror::Error)]
pub enum AbuseError {
    /// Too many applications from this address, or naming this IIN, or too many cabinet sign-ins
    /// from this address, in the window.
    #[error("too many {what} {scope}; try again in {retry_after} s")]
    RateLimited {
        what: &'static str,
        scope: &'static str,
        retry_after: u64,
    },
    /// An `X-Proof-Of-Work` header that does not hold a valid, unspent stamp for this request.
    #[error("proof of work: {0}")]
    ProofInvalid(&'static str),
}

/// A token bucket per key: `capacity` at once, refilled at `capacity` per `window`.
struct Buckets {
    capacity: f64,
    per_second: f64,
    map: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Buckets {
    fn new(capacity: u32, window: Duration) -> Option<Buckets> {
        (capacity > 0).then(|| Buckets {
            capacity: f64::from(capacity),
            per_second: f64::from(capacity) / window.as_secs_f64(),
            map: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a token for `key`, or says how many seconds until one is there.
    fn take(&self, key: &str, t: Instant) -> Result<(), u64> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let refill = |(tokens, at): (f64, Instant)| {
            (tokens + t.saturating_duration_since(at).as_secs_f64() * self.per_second).min(self.capacity)
        };
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, b| refill(*b) < self.capacity);
        }
        let tokens = map.get(key).map(|b| refill(*b)).unwrap_or(self.capacity);
        if tokens < 1.0 {
            map.insert(key.to_string(), (tokens, t));
            return Err(((1.0 - tokens) / self.per_second).ceil().max(1.0) as u64);
        }
        map.insert(key.to_string(), (tokens - 1.0, t));
        Ok(())
    }
}

/// The limits and the spent proofs of one instance.
pub struct Abuse {
    per_address: Option<Buckets>,
    /// Cabinet sign-in challenges per address (`POST /api/v1/cabinet/challenge`).
    sign_ins_per_address: Option<Buckets>,
    per_iin: Option<Buckets>,
    pow_bits: u32,
    spent: Mutex<HashMap<String, i64>>,
}

impl Abuse {
    pub fn new(cfg: &PortalSection) -> Abuse {
        Abuse {
            per_address: Buckets::new(cfg.rate_per_address_per_minute, Duration::from_secs(60)),
            sign_ins_per_address: Buckets::new(
                cfg.rate_per_address_per_minute.saturating_mul(SIGN_INS_PER_APPLICATION),
                Duration::from_secs(60),
            ),
            per_iin: Buckets::new(cfg.rate_per_iin_per_hour, Duration::from_secs(3600)),
            pow_bits: cfg.pow_bits,
            spent: Mutex::new(HashMap::new()),
        }
    }

    /// The difficulty the portal page is told to meet.
    pub fn pow_bits(&self) -> u32 {
        self.pow_bits
    }

    /// Admits one submission from `peer`, naming `iin` (when the request names one in the clear),
    /// with the proof of work `proof` if the client sent one.
    pub fn admit(
        &self,
        peer: Option<IpAddr>,
        iin: Option<&str>,
        proof: Option<&str>,
        now: i64,
    ) -> Result<(), AbuseError> {
        let t = Instant::now();
        let proven = match (proof, iin) {
            (Some(p), Some(iin)) => {
                self.check_proof(p, iin, now)?;
                true
            }
            (Some(_), None) => return Err(AbuseError::ProofInvalid("this request names no IIN to bind it to")),
            (None, _) => false,
        };
        if !proven && let (Some(b), Some(ip)) = (&self.per_address, peer) {
            b.take(&ip.to_string(), t)
                .map_err(|retry_after| AbuseError::RateLimited {
                    what: "applications",
                    scope: "from this address",
                    retry_after,
                })?;
        }
        if let (Some(b), Some(iin)) = (&self.per_iin, iin) {
            b.take(iin.trim(), t).map_err(|retry_after| AbuseError::RateLimited {
                what: "applications",
                scope: "for this IIN",
                retry_after,
            })?;
        }
        Ok(())
    }

    /// Admits one cabinet sign-in challenge from `peer`. Zero applications per address turns this
    /// limit off too.
    pub fn admit_sign_in(&self, peer: Option<IpAddr>) -> Result<(), AbuseError> {
        if let (Some(b), Some(ip)) = (&self.sign_ins_per_address, peer) {
            b.take(&ip.to_string(), Instant::now())
                .map_err(|retry_after| AbuseError::RateLimited {
                    what: "sign-ins",
                    scope: "from this address",
                    retry_after,
                })?;
        }
        Ok(())
    }

    /// A stamp `nca-pow1:BITS:UNIX:IIN:RANDOM:COUNTER` whose SHA-256 starts with BITS zero bits,
    /// BITS at least the configured difficulty, made within the window, for this IIN, not spent.
    fn check_proof(&self, stamp: &str, iin: &str, now: i64) -> Result<(), AbuseError> {
        if self.pow_bits == 0 {
            return Err(AbuseError::ProofInvalid("this service takes no proofs"));
        }
        let parts: Vec<&str> = stamp.trim().split(':').collect();
        let [version, bits, at, stamp_iin, random, counter] = parts[..] else {
            return Err(AbuseError::ProofInvalid(
                "not a stamp nca-pow1:bits:time:iin:random:counter",
            ));
        };
        let bits: u32 = bits.parse().map_err(|_| AbuseError::ProofInvalid("bits"))?;
        let at: i64 = at.parse().map_err(|_| AbuseError::ProofInvalid("time"))?;
        if version != "nca-pow1" || random.len() < 8 || random.len() > 64 || counter.len() > 20 {
            return Err(AbuseError::ProofInvalid(
                "not a stamp nca-pow1:bits:time:iin:random:counter",
            ));
        }
        if bits < self.pow_bits {
            return Err(AbuseError::ProofInvalid("too few bits"));
        }
        // The distance as unsigned: `now - at` overflows for a stamp dated near i64::MIN.
        if now.abs_diff(at) > POW_WINDOW_SECONDS.unsigned_abs() {
            return Err(AbuseError::ProofInvalid("the stamp's time is too far from now"));
        }
        if stamp_iin != iin.trim() {
            return Err(AbuseError::ProofInvalid("the stamp is for another IIN"));
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, stamp.trim().as_bytes());
        if leading_zero_bits(digest.as_ref()) < bits {
            return Err(AbuseError::ProofInvalid("the hash does not have the bits it claims"));
        }
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        if spent.len() > PRUNE_ABOVE {
            spent.retain(|_, at| now.abs_diff(*at) <= POW_WINDOW_SECONDS.unsigned_abs());
        }
        if spent.insert(stamp.trim().to_string(), at).is_some() {
            return Err(AbuseError::ProofInvalid("the stamp has been spent"));
        }
        Ok(())
    }
}

fn leading_zero_bits(b: &[u8]) -> u32 {
    let mut n = 0;
    for byte in b {
        if *byte == 0 {
            n += 8;
        } else {
            return n + byte.leading_zeros();
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(addr: u32, iin: u32, bits: u32) -> PortalSection {
        PortalSection {
            rate_per_address_per_minute: addr,
            rate_per_iin_per_hour: iin,
            pow_bits: bits,
        }
    }

    fn mint(bits: u32, at: i64, iin: &str) -> String {
        (0u64..)
            .map(|c| format!("nca-pow1:{bits}:{at}:{iin}:0123456789abcdef:{c}"))
            .find(|s| {
                leading_zero_bits(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes()).as_ref()) >= bits
            })
            .unwrap()
    }

    const IP: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

    #[test]
    fn an_address_gets_its_bucket_and_a_proof_spares_it_once() {
        let a = Abuse::new(&cfg(2, 0, 8));
        let now = 1_800_000_000;
        assert!(a.admit(IP, Some("850315306048"), None, now).is_ok());
        assert!(a.admit(IP, Some("850315306048"), None, now).is_ok());
        let e = a.admit(IP, Some("850315306048"), None, now).unwrap_err();
        assert!(matches!(e, AbuseError::RateLimited { retry_after, .. } if (1..=30).contains(&retry_after)));
        let stamp = mint(8, now, "850315306048");
        assert!(a.admit(IP, Some("850315306048"), Some(&stamp), now).is_ok());
        assert!(matches!(
            a.admit(IP, Some("850315306048"), Some(&stamp), now),
            Err(AbuseError::ProofInvalid(_))
        ));
        // Another IIN's stamp, an old stamp, too few bits.
        assert!(
            a.admit(IP, Some("920708497088"), Some(&mint(8, now, "850315306048")), now)
                .is_err()
        );
        assert!(
            a.admit(
                IP,
                Some("850315306048"),
                Some(&mint(8, now - 3600, "850315306048")),
                now
            )
            .is_err()
        );
        assert!(
            a.admit(IP, Some("850315306048"), Some(&mint(4, now, "850315306048")), now)
                .is_err()
        );
        // Sign-ins have a bucket of their own, six times the applications'.
        for _ in 0..12 {
            assert!(a.admit_sign_in(IP).is_ok());
        }
        assert!(matches!(
            a.admit_sign_in(IP),
            Err(AbuseError::RateLimited { what: "sign-ins", .. })
        ));
        // Another address has its own bucket.
        let other = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));
        assert!(a.admit(other, Some("850315306048"), None, now).is_ok());
    }

    #[test]
    fn an_iin_is_limited_whatever_the_proof_and_zero_turns_limits_off() {
        let a = Abuse::new(&cfg(0, 1, 4));
        let now = 1_800_000_000;
        assert!(
            a.admit(IP, Some("850315306048"), Some(&mint(4, now, "850315306048")), now)
                .is_ok()
        );
        assert!(matches!(
            a.admit(IP, Some("850315306048"), Some(&mint(5, now, "850315306048")), now),
            Err(AbuseError::RateLimited {
                scope: "for this IIN",
                ..
            })
        ));
        let off = Abuse::new(&cfg(0, 0, 0));
        for _ in 0..100 {
            assert!(off.admit_sign_in(IP).is_ok());
        }
        for _ in 0..100 {
            assert!(off.admit(IP, Some("850315306048"), None, now).is_ok());
        }
    }

    #[test]
    fn a_stamp_dated_at_the_ends_of_time_is_refused_not_a_panic() {
        let a = Abuse::new(&cfg(1, 0, 1));
        let now = 1_800_000_000;
        for at in [
            i64::MIN,
            i64::MAX,
            now - POW_WINDOW_SECONDS - 1,
            now + POW_WINDOW_SECONDS + 1,
        ] {
            let stamp = mint(1, at, "850315306048");
            assert!(
                matches!(
                    a.admit(IP, Some("850315306048"), Some(&stamp), now),
                    Err(AbuseError::ProofInvalid("the stamp's time is too far from now"))
                ),
                "{at}"
            );
        }
        // The edges of the window are inside it.
        for at in [now - POW_WINDOW_SECONDS, now + POW_WINDOW_SECONDS] {
            assert!(
                a.admit(IP, Some("850315306048"), Some(&mint(1, at, "850315306048")), now)
                    .is_ok()
            );
        }
    }
}

//! The reminder duty: a letter 30 and 7 days (`cabinet.reminder_days`) before a citizen's pair
//! expires, with the link to the cabinet's reissue. None for a pair revoked or already
//! reissued; each once (the store's `expiry_reminders` key, written with the letter).
//!
//! A pass takes "now" as an argument: the service's periodic task gives the clock's time, and
//! `nca cabinet remind --at` (a development run only) another, so that tests move the clock
//! instead of waiting a month.

use crate::config::Config;
use crate::outbox::letters::{self, Kind};
use crate::store::{Store, StoreError};

const DAY: i64 = 86_400;

/// The reminder due for a pair ending at `not_after`, as of `now`: the nearest threshold that
/// has been reached (a service that was down at 30 days sends the 7-day one only, once).
fn due(thresholds: &[i64], now: i64, not_after: i64) -> Option<i64> {
    let left = not_after - now;
    let mut sorted = thresholds.to_vec();
    sorted.sort_unstable();
    sorted.into_iter().find(|d| left <= d * DAY)
}

/// One pass as of `now`: the reminders it sent, as (application, days).
pub async fn run_once(store: &Store, cfg: &Config, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
    let days = &cfg.cabinet.reminder_days;
    let Some(&longest) = days.iter().max() else {
        return Ok(Vec::new());
    };
    let mut sent = Vec::new();
    for pair in store.expiring_pairs(now, now + longest * DAY).await? {
        let Some(d) = due(days, now, pair.not_after) else {
            continue;
        };
        let data: serde_json::Value = serde_json::from_str(&pair.applicant).unwrap_or_default();
        let email = data["applicant"]["email"]
            .as_str()
            .or(data["email"].as_str())
            .filter(|e| !e.trim().is_empty());
        let lang = data["lang"].as_str().unwrap_or("kk");
        // A pair without an address is marked too: the reminder is "sent" to nobody, once.
        let letter = email.map(|to| {
            let expires = crate::pki::status::rfc3339(pair.not_after);
            let url = format!(
                "{}/cabinet/?lang={}#reissue",
                cfg.base_url,
                letters::language(Some(lang))
            );
            let l = letters::compose(
                to,
                lang,
                &pair.application,
                &Kind::ExpiryReminder {
                    days: d,
                    expires: &expires,
                    cabinet_url: &url,
                },
            );
            letters::message(&pair.application, &l)
        });
        // No random bytes for the letter's id: this pair is not marked, so the next pass sends it.
        let letter = match letter.transpose() {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(application = %pair.application, "expiry reminder: {e}");
                continue;
            }
        };
        if store.add_reminder(&pair.application, d, now, letter.as_ref()).await? {
            tracing::info!(application = %pair.application, days = d, "expiry reminder");
            sent.push((pair.application, d));
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_threshold_reached_is_the_one_due() {
        let t = [30, 7];
        assert_eq!(due(&t, 0, 31 * DAY), None);
        assert_eq!(due(&t, 0, 30 * DAY), Some(30));
        assert_eq!(due(&t, 0, 8 * DAY), Some(30));
        assert_eq!(due(&t, 0, 7 * DAY), Some(7));
        assert_eq!(due(&t, 0, DAY), Some(7));
    }
}

//! Prometheus text exposition, by hand: a few counters do not need a metrics framework.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    pub http_requests: AtomicU64,
    pub http_errors_client: AtomicU64,
    pub http_errors_server: AtomicU64,
}

impl Metrics {
    pub fn count_status(&self, status: u16) {
        self.http_requests.fetch_add(1, Ordering::Relaxed);
        match status {
            400..=499 => self.http_errors_client.fetch_add(1, Ordering::Relaxed),
            500..=599 => self.http_errors_server.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }

    /// The counters and gauges; `issuance` is the CA's own count (`pki::issuance_counts`).
    pub fn render(&self, issuance: crate::pki::IssuanceCounts, certificates: &[(String, i64)], ready: bool) -> String {
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "nca_http_requests_total",
            "HTTP requests answered.",
            self.http_requests.load(Ordering::Relaxed),
        );
        counter(
            "nca_http_client_errors_total",
            "HTTP answers with a 4xx status.",
            self.http_errors_client.load(Ordering::Relaxed),
        );
        counter(
            "nca_http_server_errors_total",
            "HTTP answers with a 5xx status.",
            self.http_errors_server.load(Ordering::Relaxed),
        );
        counter(
            "nca_certificates_issued_total",
            "Certificates issued by this process.",
            issuance.issued,
        );
        counter(
            "nca_issuance_refused_total",
            "Issuance requests refused by this process.",
            issuance.refused,
        );
        let _ = writeln!(
            s,
            "# HELP nca_certificates Certificates in the database by status.\n# TYPE nca_certificates gauge"
        );
        for (status, n) in certificates {
            let _ = writeln!(s, "nca_certificates{{status=\"{status}\"}} {n}");
        }
        let _ = writeln!(
            s,
            "# HELP nca_ready Whether the database and key store answer.\n# TYPE nca_ready gauge\nnca_ready {}",
            u8::from(ready)
        );
        s
    }
}

/// The outbox gauges: messages by channel and state, and each channel's oldest pending age.
pub fn render_outbox(out: &mut String, channels: &[(&str, crate::store::OutboxCounts)], now: i64) {
    let _ = writeln!(
        out,
        "# HELP nca_outbox_messages Outbox messages by channel and state.\n# TYPE nca_outbox_messages gauge"
    );
    for (channel, c) in channels {
        for (state, n) in [("pending", c.pending), ("delivered", c.delivered), ("parked", c.parked)] {
            let _ = writeln!(
                out,
                "nca_outbox_messages{{channel=\"{channel}\",state=\"{state}\"}} {n}"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP nca_outbox_oldest_pending_age_seconds Age of the oldest undelivered message.\n\
         # TYPE nca_outbox_oldest_pending_age_seconds gauge"
    );
    for (channel, c) in channels {
        let age = c.oldest_pending_created_at.map(|t| now - t).unwrap_or(0);
        let _ = writeln!(
            out,
            "nca_outbox_oldest_pending_age_seconds{{channel=\"{channel}\"}} {age}"
        );
    }
}

/// One counter's value, as text, from a writer's reading.
type ReadCounter = fn(&crate::store::GroupCommits) -> String;

/// The group-commit writers of this process ([`crate::store::Store::group_commits`]): a
/// histogram of operations per committed transaction, the failed batches, the seconds spent
/// waiting for the write connection and inside transactions. A writer near one busy second per
/// second is the store's bound; its batch sizes say whether callers are being grouped.
pub fn render_group_commits(out: &mut String, writers: &[(&str, crate::store::GroupCommits)]) {
    let _ = writeln!(
        out,
        "# HELP nca_store_group_commit_operations Operations per committed group-commit transaction.\n\
         # TYPE nca_store_group_commit_operations histogram"
    );
    for (writer, g) in writers {
        for (le, n) in crate::store::BATCH_BUCKETS.iter().zip(g.at_most) {
            let _ = writeln!(
                out,
                "nca_store_group_commit_operations_bucket{{writer=\"{writer}\",le=\"{le}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "nca_store_group_commit_operations_bucket{{writer=\"{writer}\",le=\"+Inf\"}} {c}\n\
             nca_store_group_commit_operations_sum{{writer=\"{writer}\"}} {s}\n\
             nca_store_group_commit_operations_count{{writer=\"{writer}\"}} {c}",
            c = g.commits,
            s = g.operations
        );
    }
    // The counters, each a line per writer.
    let counters: [(&str, &str, ReadCounter); 5] = [
        (
            "nca_store_group_commit_failures_total",
            "Group-commit transactions that failed (every caller told).",
            |g| g.failures.to_string(),
        ),
        (
            "nca_store_group_commit_wait_seconds_total",
            "Seconds a writer waited for the write connection.",
            |g| format!("{:.6}", g.wait_seconds),
        ),
        (
            "nca_store_group_commit_busy_seconds_total",
            "Seconds a writer spent in its transactions.",
            |g| format!("{:.6}", g.busy_seconds),
        ),
        (
            "nca_store_group_commit_begin_seconds_total",
            "Of the seconds in transactions, those waiting for BEGIN's answer.",
            |g| format!("{:.6}", g.begin_seconds),
        ),
        (
            "nca_store_group_commit_commit_seconds_total",
            "Of the seconds in transactions, those waiting for COMMIT's answer.",
            |g| format!("{:.6}", g.commit_seconds),
        ),
    ];
    for (name, help, read) in counters {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (writer, g) in writers {
            let _ = writeln!(out, "{name}{{writer=\"{writer}\"}} {}", read(g));
        }
    }
}

/// Whether this instance holds each duty (1) or not (0): summed over the instances, each duty
/// is 1 (held once) or 0 (between a holder's death and the take-over).
pub fn render_duties(out: &mut String, held: &[(crate::cluster::Duty, bool)]) {
    let _ = writeln!(
        out,
        "# HELP nca_duty_held Whether this instance holds the duty.\n# TYPE nca_duty_held gauge"
    );
    for (duty, h) in held {
        let _ = writeln!(out, "nca_duty_held{{duty=\"{}\"}} {}", duty.as_str(), u8::from(*h));
    }
}

//! Receipts and the document archive (regulation §15.4, §20): what a centre accepted, listed
//! for a period, and the retention sweep that deletes a receipt only once its archival period
//! (`[archive] retention_days`) has ended. Document numbers are kept in full in the archive and
//! shown masked in every view, this one included.

use serde::Serialize;

use super::application::{Workflow, WorkflowError};
use crate::config::Config;
use crate::pki::status::rfc3339;
use crate::store::{Store, StoreError};

/// The most receipts one listing gives; a longer period is asked for in parts.
pub const ARCHIVE_LIMIT: i64 = 10_000;

const DAY: i64 = 86_400;

/// `GET /api/v1/admin/archive`: the receipts given in `[from, to)`.
#[derive(Debug, Serialize)]
pub struct ArchiveView {
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub centre: Option<String>,
    pub receipts: Vec<ReceiptView>,
    /// More receipts than [`ARCHIVE_LIMIT`] were given in the period: ask for a shorter one.
    pub truncated: bool,
    /// How long a receipt is kept after it was given (`[archive] retention_days`).
    pub retention_days: i64,
}

#[derive(Debug, Serialize)]
pub struct ReceiptView {
    pub number: String,
    pub application: String,
    pub centre: String,
    /// The IIN of the operator who gave it.
    pub operator: String,
    pub issued_at: String,
    pub documents: Vec<DocumentView>,
}

#[derive(Debug, Serialize)]
pub struct DocumentView {
    pub kind: String,
    /// The last four characters; the rest `*`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

/// A bound of the period: an RFC 3339 time, or a date (`2026-12-01`, from midnight UTC).
fn instant(field: &str, s: &str) -> Result<i64, WorkflowError> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    let invalid = || WorkflowError::Invalid(format!("{field} {s:?}: an RFC 3339 time or a date (YYYY-MM-DD)"));
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts[..] else {
        return Err(invalid());
    };
    let (y, m, d) = (
        y.parse::<i32>().map_err(|_| invalid())?,
        m.parse::<u8>().map_err(|_| invalid())?,
        d.parse::<u8>().map_err(|_| invalid())?,
    );
    let month = time::Month::try_from(m).map_err(|_| invalid())?;
    time::Date::from_calendar_date(y, month, d)
        .map(|d| d.midnight().assume_utc().unix_timestamp())
        .map_err(|_| invalid())
}

/// The first instant still inside the archival period at `now`: receipts given before it are
/// past their period, and only those may be deleted.
pub fn retention_cutoff(now: i64, retention_days: i64) -> i64 {
    now - retention_days * DAY
}

/// The retention sweep at `now`: deletes the receipts past their period; returns how many.
pub async fn sweep(store: &Store, cfg: &Config, now: i64) -> Result<u64, StoreError> {
    store
        .sweep_receipts(retention_cutoff(now, cfg.archive.retention_days))
        .await
}

impl Workflow<'_> {
    /// What centres (or one) accepted in `[from, to)`, oldest first.
    pub async fn archive(&self, from: &str, to: &str, centre: Option<&str>) -> Result<ArchiveView, WorkflowError> {
        let (start, end) = (instant("from", from)?, instant("to", to)?);
        if end <= start {
            return Err(WorkflowError::Invalid(format!("the period {from} to {to} is empty")));
        }
        let mut receipts = self.store.receipts(start, end, centre, ARCHIVE_LIMIT + 1).await?;
        let truncated = receipts.len() as i64 > ARCHIVE_LIMIT;
        receipts.truncate(ARCHIVE_LIMIT as usize);
        Ok(ArchiveView {
            from: rfc3339(start),
            to: rfc3339(end),
            centre: centre.map(str::to_string),
            truncated,
            retention_days: self.config.archive.retention_days,
            receipts: receipts
                .into_iter()
                .map(|r| ReceiptView {
                    documents: r
                        .documents
                        .iter()
                        .map(|d| DocumentView {
                            kind: d.kind.clone(),
                            number: d.masked_number(),
                        })
                        .collect(),
                    number: r.number,
                    application: r.application,
                    centre: r.centre,
                    operator: r.operator,
                    issued_at: rfc3339(r.issued_at),
                })
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_is_given_as_times_or_dates_and_must_not_be_empty() {
        assert_eq!(instant("from", "2026-12-01").unwrap(), 1_796_083_200);
        assert_eq!(instant("from", "2026-12-01T00:00:00Z").unwrap(), 1_796_083_200);
        assert_eq!(instant("to", "2026-12-01T05:00:00+05:00").unwrap(), 1_796_083_200);
        assert!(matches!(instant("from", "yesterday"), Err(WorkflowError::Invalid(_))));
        assert!(matches!(instant("from", "2026-13-01"), Err(WorkflowError::Invalid(_))));
    }

    #[test]
    fn only_a_receipt_given_before_its_period_began_is_past_it() {
        let (now, days) = (1_796_083_200, 1827);
        let cutoff = retention_cutoff(now, days);
        // Given exactly `days` ago: its last instant; the sweep (`issued_at < cutoff`) keeps it.
        assert_eq!(cutoff, now - days * DAY);
        let kept = now - days * DAY;
        let gone = kept - 1;
        assert!(kept >= cutoff && gone < cutoff);
    }
}

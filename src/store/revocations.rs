//! Revocations, CRL numbers and published CRLs.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{AuditEvent, append};
use super::{Store, StoreError, now};

/// A revocation as recorded. `revoked_at` may be in the future (scheduled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRecord {
    pub issuer: String,
    pub serial: String,
    pub revoked_at: i64,
    pub reason: u8,
    pub invalidity_date: Option<i64>,
    pub recorded_at: i64,
    pub lifted_at: Option<i64>,
}

impl RevocationRecord {
    /// Whether a CRL published at `t` lists this revocation. A row counts from the second after
    /// both its time and its recording, and until its hold is lifted: the half-open rule makes
    /// "in the base CRL" and "in the delta" a function of the row and two instants, so a
    /// revocation recorded while a CRL is being built is in the next one, never in neither.
    pub fn listed_at(&self, t: i64) -> bool {
        self.revoked_at < t && self.recorded_at < t && self.lifted_at.is_none_or(|l| l >= t)
    }

    /// Whether OCSP says revoked at `t`: effective now, hold not lifted.
    pub fn effective_at(&self, t: i64) -> bool {
        self.revoked_at <= t && self.lifted_at.is_none_or(|l| l > t)
    }
}

/// What `revoke` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// Newly revoked (or a lifted hold put back, or a hold made final).
    Now(RevocationRecord),
    /// It was revoked already; nothing changed. The first time and reason stand.
    Already(RevocationRecord),
}

#[derive(Debug, Clone)]
pub struct CrlRecord {
    pub issuer: String,
    pub number: i64,
    pub kind: String,
    pub base_number: Option<i64>,
    pub this_update: i64,
    pub next_update: i64,
    pub entries: i64,
    pub der: Vec<u8>,
}

const REVOCATION_COLUMNS: &str = "issuer, serial, revoked_at, reason, invalidity_date, recorded_at, lifted_at";

/// A revocation's own columns, of `revocations r`, for a join with its certificate (which gives
/// the issuer and the serial): [`joined_revocation`].
pub(super) const JOINED_COLUMNS: &str = "r.revoked_at, r.reason, r.invalidity_date, r.recorded_at, r.lifted_at";

/// The revocation in a row joined from [`JOINED_COLUMNS`]; none when the certificate has none.
pub(super) fn joined_revocation(r: &AnyRow) -> Result<Option<RevocationRecord>, sqlx::Error> {
    if r.try_get::<Option<i64>, _>("revoked_at")?.is_none() {
        return Ok(None);
    }
    revocation_row(r).map(Some)
}

fn revocation_row(r: &AnyRow) -> Result<RevocationRecord, sqlx::Error> {
    Ok(RevocationRecord {
        issuer: r.try_get("issuer")?,
        serial: r.try_get("serial")?,
        revoked_at: r.try_get("revoked_at")?,
        reason: r.try_get::<i64, _>("reason")? as u8,
        invalidity_date: r.try_get("invalidity_date")?,
        recorded_at: r.try_get("recorded_at")?,
        lifted_at: r.try_get("lifted_at")?,
    })
}

fn crl_row(r: &AnyRow) -> Result<CrlRecord, sqlx::Error> {
    Ok(CrlRecord {
        issuer: r.try_get("issuer")?,
        number: r.try_get("number")?,
        kind: r.try_get("kind")?,
        base_number: r.try_get("base_number")?,
        this_update: r.try_get("this_update")?,
        next_update: r.try_get("next_update")?,
        entries: r.try_get("entries")?,
        der: r.try_get("der")?,
    })
}

impl Store {
    /// Revokes a certificate the CA issued. Idempotent: a second revocation changes nothing and
    /// answers with the first, except that a hold can be made final (its time kept) and a lifted
    /// hold can be revoked again.
    pub async fn revoke(
        &self,
        serial: &str,
        revoked_at: i64,
        reason: u8,
        invalidity_date: Option<i64>,
        actor: &crate::model::Actor,
    ) -> Result<Option<Revoked>, StoreError> {
        let mut tx = self.begin_write().await?;
        let cert = sqlx::query("SELECT issuer, status FROM certificates WHERE serial = $1 ORDER BY created_at LIMIT 1")
            .bind(serial)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(cert) = cert else { return Ok(None) };
        let issuer: String = cert.try_get(0)?;
        let status: String = cert.try_get(1)?;
        if status == "pending" {
            return Err(StoreError::StateConflict(format!(
                "certificate {serial} is still being issued"
            )));
        }
        let q = format!("SELECT {REVOCATION_COLUMNS} FROM revocations WHERE issuer = $1 AND serial = $2");
        let existing = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(&issuer)
            .bind(serial)
            .fetch_optional(&mut *tx)
            .await?;
        let at = now();
        let existing = existing.as_ref().map(revocation_row).transpose()?;
        let fresh = existing.as_ref().is_none_or(|old| {
            // A lifted hold is revoked again; a revocation scheduled for later is brought forward
            // (a dismissal on a date, then a lost key: the earlier time and its reason win).
            old.lifted_at.is_some() || (old.revoked_at > at && revoked_at < old.revoked_at)
        });
        let record = match existing {
            Some(old) if !fresh && old.reason == 6 && reason != 6 => {
                // A hold made final keeps its time; the change is news for the delta CRL.
                sqlx::query("UPDATE revocations SET reason = $1, invalidity_date = $2, recorded_at = $3 WHERE issuer = $4 AND serial = $5")
                    .bind(i64::from(reason))
                    .bind(invalidity_date.or(old.invalidity_date))
                    .bind(at)
                    .bind(&issuer)
                    .bind(serial)
                    .execute(&mut *tx)
                    .await?;
                RevocationRecord {
                    reason,
                    recorded_at: at,
                    invalidity_date: invalidity_date.or(old.invalidity_date),
                    ..old
                }
            }
            Some(old) if !fresh => {
                tx.commit().await?;
                return Ok(Some(Revoked::Already(old)));
            }
            _ => {
                sqlx::query(
                    "INSERT INTO revocations (issuer, serial, revoked_at, reason, invalidity_date, recorded_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (issuer, serial) DO UPDATE SET \
                     revoked_at = excluded.revoked_at, reason = excluded.reason, invalidity_date = excluded.invalidity_date, \
                     recorded_at = excluded.recorded_at, lifted_at = NULL",
                )
                .bind(&issuer)
                .bind(serial)
                .bind(revoked_at)
                .bind(i64::from(reason))
                .bind(invalidity_date)
                .bind(at)
                .execute(&mut *tx)
                .await?;
                RevocationRecord {
                    issuer,
                    serial: serial.into(),
                    revoked_at,
                    reason,
                    invalidity_date,
                    recorded_at: at,
                    lifted_at: None,
                }
            }
        };
        let event = AuditEvent::new(
            "certificate.revoked",
            &record.serial,
            serde_json::json!({"issuer": record.issuer, "revoked_at": record.revoked_at, "reason": record.reason,
                "invalidity_date": record.invalidity_date, "actor": actor.audit()}),
        );
        append(&mut tx, self.backend(), &[event]).await?;
        tx.commit().await?;
        self.access_changed();
        Ok(Some(Revoked::Now(record)))
    }

    /// Lifts a certificateHold; the next delta CRL says removeFromCRL. `None` when there is no
    /// active hold on that serial.
    pub async fn lift_hold(
        &self,
        serial: &str,
        actor: &crate::model::Actor,
    ) -> Result<Option<RevocationRecord>, StoreError> {
        let at = now();
        let mut tx = self.begin_write().await?;
        let r =
            sqlx::query("UPDATE revocations SET lifted_at = $1 WHERE serial = $2 AND reason = 6 AND lifted_at IS NULL")
                .bind(at)
                .bind(serial)
                .execute(&mut *tx)
                .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        append(
            &mut tx,
            self.backend(),
            &[AuditEvent::new(
                "certificate.hold_lifted",
                serial,
                serde_json::json!({"actor": actor.audit()}),
            )],
        )
        .await?;
        tx.commit().await?;
        self.revocation(serial).await
    }

    /// What OCSP needs about a serial, in one round trip: the issuer, whether the certificate is
    /// issued, and its revocation if any.
    pub async fn ocsp_status(
        &self,
        serial: &str,
    ) -> Result<Option<(String, bool, Option<RevocationRecord>)>, StoreError> {
        let row = sqlx::query(
            "SELECT c.issuer, c.status, r.revoked_at, r.reason, r.invalidity_date, r.recorded_at, r.lifted_at \
             FROM certificates c LEFT JOIN revocations r ON r.issuer = c.issuer AND r.serial = c.serial \
             WHERE c.serial = $1 LIMIT 1",
        )
        .bind(serial)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let issuer: String = row.try_get(0)?;
        let issued = row.try_get::<String, _>(1)? == "issued";
        let revocation = match row.try_get::<Option<i64>, _>(2)? {
            None => None,
            Some(revoked_at) => Some(RevocationRecord {
                issuer: issuer.clone(),
                serial: serial.to_string(),
                revoked_at,
                reason: row.try_get::<i64, _>(3)? as u8,
                invalidity_date: row.try_get(4)?,
                recorded_at: row.try_get(5)?,
                lifted_at: row.try_get(6)?,
            }),
        };
        Ok(Some((issuer, issued, revocation)))
    }

    pub async fn revocation(&self, serial: &str) -> Result<Option<RevocationRecord>, StoreError> {
        let q = format!("SELECT {REVOCATION_COLUMNS} FROM revocations WHERE serial = $1 LIMIT 1");
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(serial)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(revocation_row).transpose()?)
    }

    /// Hands every revocation a full CRL of `issuer` published at `t` lists to `each`:
    /// (serial, revocation time, reason, invalidity date).
    ///
    /// In chunks of `CRL_CHUNK` rows, each chunk aggregated into one string by the database
    /// (`string_agg`, which SQLite and PostgreSQL both have): a CRL of a million entries is a
    /// few dozen round trips and never a million rows in memory. Row by row, sqlx hands each
    /// SQLite row across threads, and that alone took seconds.
    pub async fn for_each_crl_entry(
        &self,
        issuer: &str,
        t: i64,
        mut each: impl FnMut(&str, i64, u8, Option<i64>) -> Result<(), String>,
    ) -> Result<u64, StoreError> {
        const CRL_CHUNK: i64 = 50_000;
        let bad = |what: &str| StoreError::StateConflict(format!("revocation row: bad {what}"));
        let mut after = String::new();
        let mut n = 0;
        loop {
            let row = sqlx::query(
                "SELECT string_agg(serial || ' ' || CAST(revoked_at AS TEXT) || ' ' || CAST(reason AS TEXT) || ' ' || \
                 COALESCE(CAST(invalidity_date AS TEXT), '-'), ' '), MAX(serial), COUNT(*) FROM ( \
                 SELECT serial, revoked_at, reason, invalidity_date FROM revocations WHERE issuer = $1 AND serial > $2 \
                 AND revoked_at < $3 AND recorded_at < $3 AND (lifted_at IS NULL OR lifted_at >= $3) \
                 ORDER BY serial LIMIT $4) AS chunk",
            )
            .bind(issuer)
            .bind(&after)
            .bind(t)
            .bind(CRL_CHUNK)
            .fetch_one(self.pool())
            .await?;
            let count: i64 = row.try_get(2)?;
            if count == 0 {
                return Ok(n);
            }
            let text: String = row.try_get(0)?;
            let mut fields = text.split(' ');
            while let Some(serial) = fields.next() {
                let at = fields.next().and_then(|v| v.parse().ok()).ok_or_else(|| bad("time"))?;
                let reason = fields
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad("reason"))?;
                let invalidity = match fields.next().ok_or_else(|| bad("invalidity date"))? {
                    "-" => None,
                    v => Some(v.parse().map_err(|_| bad("invalidity date"))?),
                };
                each(serial, at, reason, invalidity).map_err(StoreError::StateConflict)?;
                n += 1;
            }
            after = row.try_get(1)?;
            if count < CRL_CHUNK {
                return Ok(n);
            }
        }
    }

    /// Revocations that changed at or after `since` (recorded, taking effect, or lifted): the
    /// candidates for a delta CRL over a base published at `since`.
    pub async fn revocations_changed_since(
        &self,
        issuer: &str,
        since: i64,
    ) -> Result<Vec<RevocationRecord>, StoreError> {
        let q = format!(
            "SELECT {REVOCATION_COLUMNS} FROM revocations WHERE issuer = $1 AND \
             (recorded_at >= $2 OR revoked_at >= $2 OR lifted_at >= $2) ORDER BY serial"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(issuer)
            .bind(since)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(revocation_row).collect::<Result<_, _>>()?)
    }

    /// The latest instant at which the set of revocations of `issuer` changed, up to `t`: a
    /// revocation recorded, a scheduled one taking effect, a hold lifted.
    pub async fn last_revocation_change(&self, issuer: &str, t: i64) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT MAX(recorded_at), MAX(CASE WHEN revoked_at <= $2 THEN revoked_at END), MAX(lifted_at) \
             FROM revocations WHERE issuer = $1",
        )
        .bind(issuer)
        .bind(t)
        .fetch_one(self.pool())
        .await?;
        let cols: [Option<i64>; 3] = [row.try_get(0)?, row.try_get(1)?, row.try_get(2)?];
        Ok(cols.into_iter().flatten().filter(|v| *v <= t).max())
    }

    /// The earliest scheduled revocation of `issuer` still to take effect after `t`, if any, so
    /// that the publisher wakes when it does.
    pub async fn next_scheduled_revocation(&self, t: i64) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MIN(revoked_at) FROM revocations WHERE revoked_at > $1 AND lifted_at IS NULL")
            .bind(t)
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?)
    }

    /// Takes the next CRL number of an issuer: strictly increasing, shared by full and delta.
    pub async fn next_crl_number(&self, issuer: &str) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query("UPDATE crl_numbers SET last = last + 1 WHERE issuer = $1 RETURNING last")
            .bind(issuer)
            .fetch_optional(&mut *tx)
            .await?;
        let n = match row {
            Some(r) => r.try_get::<i64, _>(0)?,
            None => {
                sqlx::query("INSERT INTO crl_numbers (issuer, last) VALUES ($1, 1)")
                    .bind(issuer)
                    .execute(&mut *tx)
                    .await?;
                1
            }
        };
        tx.commit().await?;
        Ok(n)
    }

    /// Records a published CRL. Under a `fence` (the publishing duty's), only while the duty is
    /// still held under it, checked in the same transaction: a paused old holder publishes
    /// nothing once another instance has taken the duty over.
    pub async fn add_crl(
        &self,
        c: &CrlRecord,
        actor: &crate::model::Actor,
        fence: Option<&super::Fence>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(f) = fence {
            super::cluster::check_fence(&mut tx, self.backend(), f).await?;
        }
        sqlx::query(
            "INSERT INTO crls (issuer, number, kind, base_number, this_update, next_update, entries, der) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&c.issuer)
        .bind(c.number)
        .bind(&c.kind)
        .bind(c.base_number)
        .bind(c.this_update)
        .bind(c.next_update)
        .bind(c.entries)
        .bind(&c.der)
        .execute(&mut *tx)
        .await?;
        let event = AuditEvent::new(
            "crl.published",
            &c.issuer,
            serde_json::json!({"number": c.number, "kind": c.kind, "base_number": c.base_number, "entries": c.entries,
                "sha256": hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &c.der)), "actor": actor.audit()}),
        );
        append(&mut tx, self.backend(), &[event]).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The number of the newest CRL of a kind for an issuer, without its DER: instances that
    /// serve what another published look at this every few seconds.
    pub async fn latest_crl_number(&self, issuer: &str, kind: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MAX(number) FROM crls WHERE issuer = $1 AND kind = $2")
            .bind(issuer)
            .bind(kind)
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?)
    }

    /// The newest CRL of a kind for an issuer.
    pub async fn latest_crl(&self, issuer: &str, kind: &str) -> Result<Option<CrlRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT issuer, number, kind, base_number, this_update, next_update, entries, der FROM crls \
             WHERE issuer = $1 AND kind = $2 ORDER BY number DESC LIMIT 1",
        )
        .bind(issuer)
        .bind(kind)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(crl_row).transpose()?)
    }
}

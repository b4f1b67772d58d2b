//! The cabinet's SQL: sign-in challenges, sessions, the holder's certificates and applications
//! (read-only), and the expiry reminders sent.

use sqlx::Row;

use super::outbox::{self, OutboxMessage};
use super::{Store, StoreError};

/// What taking a challenge found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeTaken {
    /// Unused and within its time: now spent.
    Fresh,
    /// Never handed out by this service.
    Unknown,
    /// Spent by an earlier sign-in.
    Used,
    /// Past its time (and now spent, so it is not tried again).
    Expired,
}

/// A session as recorded.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub iin: String,
    pub certificate: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
}

/// One of a holder's certificates, with its revocation if any.
#[derive(Debug, Clone)]
pub struct HeldCertificate {
    pub serial: String,
    pub profile: String,
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
    pub application: Option<String>,
    pub der: Vec<u8>,
    pub revoked_at: Option<i64>,
    pub reason: Option<i64>,
    pub lifted_at: Option<i64>,
}

/// One of a holder's applications, as the list shows it.
#[derive(Debug, Clone)]
pub struct HeldApplication {
    pub number: String,
    pub service: String,
    pub channel: String,
    pub status: String,
    pub centre: String,
    pub applicant: String,
    pub auth_serial: Option<String>,
    pub sign_serial: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A pair near its end, for the reminder duty.
#[derive(Debug, Clone)]
pub struct Expiring {
    pub application: String,
    pub not_after: i64,
    /// The application's applicant data as recorded (JSON): the letter's address and language.
    pub applicant: String,
}

/// The profiles a citizen holds (the cabinet lists and reminds only these).
const HOLDER_PROFILES: &str = "('individual-auth', 'individual-sign', 'legal-auth', 'legal-sign')";

impl Store {
    /// Records a challenge handed out; drops those a day past their time (nobody can use them,
    /// and a sign-in naming one is told it expired only within that day).
    pub async fn add_challenge(&self, challenge: &str, now: i64, expires_at: i64) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM cabinet_challenges WHERE expires_at < $1")
            .bind(now - 86_400)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO cabinet_challenges (challenge, created_at, expires_at) VALUES ($1, $2, $3)")
            .bind(challenge)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Spends a challenge: one statement sets `used_at` where it is null, so of two sign-ins
    /// with one challenge exactly one finds it fresh.
    pub async fn take_challenge(&self, challenge: &str, now: i64) -> Result<ChallengeTaken, StoreError> {
        let row = sqlx::query(
            "UPDATE cabinet_challenges SET used_at = $1 WHERE challenge = $2 AND used_at IS NULL RETURNING expires_at",
        )
        .bind(now)
        .bind(challenge)
        .fetch_optional(self.write_pool())
        .await?;
        if let Some(r) = row {
            let expires_at: i64 = r.try_get(0)?;
            return Ok(if now > expires_at {
                ChallengeTaken::Expired
            } else {
                ChallengeTaken::Fresh
            });
        }
        let known = sqlx::query("SELECT expires_at FROM cabinet_challenges WHERE challenge = $1")
            .bind(challenge)
            .fetch_optional(self.pool())
            .await?;
        Ok(match known {
            None => ChallengeTaken::Unknown,
            Some(r) if now > r.try_get::<i64, _>(0)? => ChallengeTaken::Expired,
            Some(_) => ChallengeTaken::Used,
        })
    }

    /// Records a session; drops those a day past their end (a cookie that old is told it is
    /// unknown rather than expired).
    pub async fn add_session(
        &self,
        token_sha256: &str,
        iin: &str,
        certificate: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM cabinet_sessions WHERE expires_at < $1")
            .bind(now - 86_400)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO cabinet_sessions (token_sha256, iin, certificate, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_sha256)
        .bind(iin)
        .bind(certificate)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn session(&self, token_sha256: &str) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT iin, certificate, created_at, expires_at, ended_at FROM cabinet_sessions WHERE token_sha256 = $1",
        )
        .bind(token_sha256)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| {
            Ok(SessionRecord {
                iin: r.try_get(0)?,
                certificate: r.try_get(1)?,
                created_at: r.try_get(2)?,
                expires_at: r.try_get(3)?,
                ended_at: r.try_get(4)?,
            })
        })
        .transpose()
        .map_err(|e: sqlx::Error| e.into())
    }

    /// Ends a session (sign out); an ended one stays ended.
    pub async fn end_session(&self, token_sha256: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE cabinet_sessions SET ended_at = $1 WHERE token_sha256 = $2 AND ended_at IS NULL")
            .bind(now)
            .bind(token_sha256)
            .execute(self.write_pool())
            .await?;
        Ok(())
    }

    /// A holder's issued certificates of the citizens' profiles, newest first.
    pub async fn held_certificates(&self, holder: &str) -> Result<Vec<HeldCertificate>, StoreError> {
        // HOLDER_PROFILES is a constant: no input reaches this string.
        let q = format!(
            "SELECT c.serial, c.profile, c.subject, c.not_before, c.not_after, c.application, c.der, \
             r.revoked_at, r.reason, r.lifted_at \
             FROM certificates c LEFT JOIN revocations r ON r.issuer = c.issuer AND r.serial = c.serial \
             WHERE c.holder = $1 AND c.status = 'issued' AND c.profile IN {HOLDER_PROFILES} \
             ORDER BY c.not_after DESC, c.profile"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(holder)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(HeldCertificate {
                    serial: r.try_get(0)?,
                    profile: r.try_get(1)?,
                    subject: r.try_get(2)?,
                    not_before: r.try_get(3)?,
                    not_after: r.try_get(4)?,
                    application: r.try_get(5)?,
                    der: r.try_get(6)?,
                    revoked_at: r.try_get(7)?,
                    reason: r.try_get(8)?,
                    lifted_at: r.try_get(9)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// A holder's applications (by IIN), newest first.
    pub async fn held_applications(&self, iin: &str, limit: i64) -> Result<Vec<HeldApplication>, StoreError> {
        let rows = sqlx::query(
            "SELECT number, service, channel, status, centre, applicant, auth_serial, sign_serial, created_at, updated_at \
             FROM applications WHERE iin = $1 ORDER BY created_at DESC, number LIMIT $2",
        )
        .bind(iin)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HeldApplication {
                    number: r.try_get(0)?,
                    service: r.try_get(1)?,
                    channel: r.try_get(2)?,
                    status: r.try_get(3)?,
                    centre: r.try_get(4)?,
                    applicant: r.try_get(5)?,
                    auth_serial: r.try_get(6)?,
                    sign_serial: r.try_get(7)?,
                    created_at: r.try_get(8)?,
                    updated_at: r.try_get(9)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Pairs (by the application that issued them) whose SIGN certificate ends within
    /// `(now, until]`, neither revoked (a revocation recorded, hold or not, scheduled or not)
    /// nor superseded by a newer certificate of the same profile for the same holder.
    pub async fn expiring_pairs(&self, now: i64, until: i64) -> Result<Vec<Expiring>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.application, c.not_after, a.applicant FROM certificates c \
             JOIN applications a ON a.number = c.application \
             WHERE c.status = 'issued' AND c.profile IN ('individual-sign', 'legal-sign') \
             AND c.not_after > $1 AND c.not_after <= $2 \
             AND NOT EXISTS (SELECT 1 FROM certificates p JOIN revocations r ON r.issuer = p.issuer AND r.serial = p.serial \
                 WHERE p.application = c.application AND p.status = 'issued' AND r.lifted_at IS NULL) \
             AND NOT EXISTS (SELECT 1 FROM certificates n WHERE n.holder = c.holder AND n.profile = c.profile \
                 AND n.status = 'issued' AND n.not_after > c.not_after) \
             ORDER BY c.not_after",
        )
        .bind(now)
        .bind(until)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Expiring {
                    application: r.try_get(0)?,
                    not_after: r.try_get(1)?,
                    applicant: r.try_get(2)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Records the reminder for (`application`, `days`) and appends its letter in one
    /// transaction; false, changing nothing, when that reminder was sent already.
    pub async fn add_reminder(
        &self,
        application: &str,
        days: i64,
        now: i64,
        letter: Option<&OutboxMessage>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "INSERT INTO expiry_reminders (application, days, sent_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(application)
        .bind(days)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        if let Some(m) = letter {
            outbox::append(&mut tx, std::slice::from_ref(m)).await?;
        }
        tx.commit().await?;
        Ok(true)
    }
}

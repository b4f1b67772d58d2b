//! Certificates and the CA's keys.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{AuditEvent, append};
use super::writer::WriteOp;
use super::{Store, StoreError, is_unique_violation, now};

/// A key the CA signs with, and the certificate that names it.
#[derive(Debug, Clone)]
pub struct CaKeyRecord {
    pub id: String,
    pub role: String,
    pub key_store: String,
    pub key_label: String,
    pub algorithm: String,
    pub serial: String,
    pub certificate: Vec<u8>,
    pub created_at: i64,
}

/// What is recorded before signing: everything the certificate will say.
#[derive(Debug, Clone)]
pub struct PendingCertificate {
    pub issuer: String,
    pub serial: String,
    pub profile: String,
    pub subject: String,
    pub holder: String,
    pub key_sha256: String,
    pub not_before: i64,
    pub not_after: i64,
    pub tbs: Vec<u8>,
    pub application: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateStatus {
    Pending,
    Issued,
    Abandoned,
}

impl CertificateStatus {
    fn parse(s: &str) -> CertificateStatus {
        match s {
            "issued" => CertificateStatus::Issued,
            "pending" => CertificateStatus::Pending,
            _ => CertificateStatus::Abandoned,
        }
    }
}

#[derive(Debug, Clone)]
pub struct CertificateRecord {
    pub issuer: String,
    pub serial: String,
    pub status: CertificateStatus,
    pub profile: String,
    pub subject: String,
    pub holder: String,
    pub not_before: i64,
    pub not_after: i64,
    pub der: Option<Vec<u8>>,
    pub application: Option<String>,
    pub created_at: i64,
    pub issued_at: Option<i64>,
}

/// `add_pending` inside the writer's transaction.
pub(super) async fn insert_pending(conn: &mut sqlx::AnyConnection, c: &PendingCertificate) -> Result<(), StoreError> {
    let at = now();
    // Insert, or touch the existing row, and read back who holds the key: the first holder wins,
    // on both backends, also when two requests for one key race. No statement on this path fails
    // for a refusal, so the writer's transaction needs no savepoints.
    let holder: String = sqlx::query(
        "INSERT INTO public_keys (key_sha256, holder, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key_sha256) DO UPDATE SET holder = public_keys.holder RETURNING holder",
    )
    .bind(&c.key_sha256)
    .bind(&c.holder)
    .bind(at)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?;
    if holder != c.holder {
        return Err(StoreError::KeyBoundElsewhere);
    }
    let r = sqlx::query(
        "INSERT INTO certificates (issuer, serial, status, profile, subject, holder, key_sha256, not_before, not_after, tbs, application, created_at) \
         VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING",
    )
    .bind(&c.issuer)
    .bind(&c.serial)
    .bind(&c.profile)
    .bind(&c.subject)
    .bind(&c.holder)
    .bind(&c.key_sha256)
    .bind(c.not_before)
    .bind(c.not_after)
    .bind(&c.tbs)
    .bind(&c.application)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() == 0 {
        // Either constraint: the serial, or the application's one certificate of this profile
        // (certificates_application_profile). Told apart only on this rare path.
        if let Some(application) = &c.application {
            let held = sqlx::query(
                "SELECT 1 FROM certificates WHERE application = $1 AND profile = $2 AND status <> 'abandoned'",
            )
            .bind(application)
            .bind(&c.profile)
            .fetch_optional(&mut *conn)
            .await?;
            if held.is_some() {
                return Err(StoreError::AlreadyCertified);
            }
        }
        return Err(StoreError::SerialTaken);
    }
    Ok(())
}

/// `mark_issued` inside the writer's transaction.
pub(super) async fn update_issued(
    conn: &mut sqlx::AnyConnection,
    issuer: &str,
    serial: &str,
    der: &[u8],
) -> Result<(), StoreError> {
    let r = sqlx::query("UPDATE certificates SET status = 'issued', der = $1, issued_at = $2 WHERE issuer = $3 AND serial = $4 AND status = 'pending'")
        .bind(der)
        .bind(now())
        .bind(issuer)
        .bind(serial)
        .execute(&mut *conn)
        .await?;
    if r.rows_affected() != 1 {
        return Err(StoreError::StateConflict(format!(
            "certificate {serial} is not pending"
        )));
    }
    Ok(())
}

const CERT_COLUMNS: &str =
    "issuer, serial, status, profile, subject, holder, not_before, not_after, der, application, created_at, issued_at";

fn cert_row(r: &AnyRow) -> Result<CertificateRecord, sqlx::Error> {
    Ok(CertificateRecord {
        issuer: r.try_get("issuer")?,
        serial: r.try_get("serial")?,
        status: CertificateStatus::parse(&r.try_get::<String, _>("status")?),
        profile: r.try_get("profile")?,
        subject: r.try_get("subject")?,
        holder: r.try_get("holder")?,
        not_before: r.try_get("not_before")?,
        not_after: r.try_get("not_after")?,
        der: r.try_get("der")?,
        application: r.try_get("application")?,
        created_at: r.try_get("created_at")?,
        issued_at: r.try_get("issued_at")?,
    })
}

fn ca_row(r: &AnyRow) -> Result<CaKeyRecord, sqlx::Error> {
    Ok(CaKeyRecord {
        id: r.try_get("id")?,
        role: r.try_get("role")?,
        key_store: r.try_get("key_store")?,
        key_label: r.try_get("key_label")?,
        algorithm: r.try_get("algorithm")?,
        serial: r.try_get("serial")?,
        certificate: r.try_get("certificate")?,
        created_at: r.try_get("created_at")?,
    })
}

impl Store {
    /// The CA's keys; empty before the ceremony.
    pub async fn ca_keys(&self) -> Result<Vec<CaKeyRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, role, key_store, key_label, algorithm, serial, certificate, created_at FROM ca_keys ORDER BY created_at, id",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(ca_row).collect::<Result<_, _>>()?)
    }

    /// Commits a key ceremony: all rows or none. A second ceremony collides on the unique role.
    pub async fn commit_ceremony(
        &self,
        keys: &[CaKeyRecord],
        actor: &crate::audit::actor::Actor,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        for k in keys {
            let r = sqlx::query(
                "INSERT INTO ca_keys (id, role, key_store, key_label, algorithm, serial, certificate, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&k.id)
            .bind(&k.role)
            .bind(&k.key_store)
            .bind(&k.key_label)
            .bind(&k.algorithm)
            .bind(&k.serial)
            .bind(&k.certificate)
            .bind(k.created_at)
            .execute(&mut *tx)
            .await;
            match r {
                Err(e) if is_unique_violation(&e) => return Err(StoreError::AlreadyInitialised),
                r => r?,
            };
        }
        let events: Vec<_> = keys
            .iter()
            .map(|k| {
                AuditEvent::new(
                    "ceremony.key",
                    &k.id,
                    serde_json::json!({"role": k.role, "key_store": k.key_store, "key_label": k.key_label,
                        "algorithm": k.algorithm, "serial": k.serial, "actor": actor.audit()}),
                )
            })
            .collect();
        append(&mut tx, self.backend(), &events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Points a delegated signer's row at its renewed certificate (same key).
    pub async fn replace_delegated_certificate(&self, role: &str, serial: &str, der: &[u8]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "UPDATE ca_keys SET serial = $1, certificate = $2 WHERE role = $3 AND role IN ('ocsp', 'service', 'tsa')",
        )
        .bind(serial)
        .bind(der)
        .bind(role)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Err(StoreError::StateConflict(format!("no delegated key for {role}")));
        }
        append(
            &mut tx,
            self.backend(),
            &[AuditEvent::new(
                "delegated.renewed",
                role,
                // Renewed at start, by the service.
                serde_json::json!({"serial": serial, "actor": crate::audit::actor::Actor::Service.audit()}),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a certificate about to be signed, and binds its public key to its holder.
    /// Refuses a used serial and a key bound to someone else; either way nothing is written.
    /// Returns once the row is committed: only then may the certificate be signed.
    pub async fn add_pending(&self, c: &PendingCertificate) -> Result<(), StoreError> {
        self.write(WriteOp::Pending(c.clone())).await
    }

    /// Marks a pending certificate issued. Only a pending row changes: a row the start-up
    /// reconciliation abandoned stays abandoned, and the caller must not hand the certificate out.
    /// `actor` asked for the certificate (the audit record names them).
    pub async fn mark_issued(
        &self,
        issuer: &str,
        serial: &str,
        der: &[u8],
        actor: &crate::audit::actor::Actor,
    ) -> Result<(), StoreError> {
        self.write(WriteOp::Issued {
            issuer: issuer.to_string(),
            serial: serial.to_string(),
            der: der.to_vec(),
            actor: actor.audit(),
        })
        .await
    }

    /// Marks a pending certificate abandoned after signing failed: it was never signed.
    pub async fn mark_abandoned(&self, issuer: &str, serial: &str) -> Result<(), StoreError> {
        self.abandon_pending(issuer, serial, "signing failed").await
    }

    /// Marks a pending certificate abandoned, saying why in the audit record; a row that is no
    /// longer pending (its worker marked it issued first) stays as it is.
    pub async fn abandon_pending(&self, issuer: &str, serial: &str, why: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "UPDATE certificates SET status = 'abandoned' WHERE issuer = $1 AND serial = $2 AND status = 'pending'",
        )
        .bind(issuer)
        .bind(serial)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 1 {
            let e = AuditEvent::new(
                "certificate.abandoned",
                serial,
                // Abandoning is always the service's own decision (a failed signature, a retry).
                serde_json::json!({"issuer": issuer, "why": why, "actor": crate::audit::actor::Actor::Service.audit()}),
            );
            append(&mut tx, self.backend(), &[e]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Start-up reconciliation: pending rows older than `before` were lost in a crash between
    /// recording and marking issued. Their certificates were never delivered; they become
    /// abandoned. Returns the serials.
    pub async fn abandon_stale_pending(&self, before: i64) -> Result<Vec<(String, String)>, StoreError> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query("SELECT issuer, serial FROM certificates WHERE status = 'pending' AND created_at < $1")
            .bind(before)
            .fetch_all(&mut *tx)
            .await?;
        let stale: Vec<(String, String)> = rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        sqlx::query("UPDATE certificates SET status = 'abandoned' WHERE status = 'pending' AND created_at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        let events: Vec<_> = stale
            .iter()
            .map(|(issuer, serial)| {
                AuditEvent::new(
                    "certificate.abandoned",
                    serial,
                    serde_json::json!({"issuer": issuer, "why": "pending at start-up",
                        "actor": crate::audit::actor::Actor::Service.audit()}),
                )
            })
            .collect();
        append(&mut tx, self.backend(), &events).await?;
        tx.commit().await?;
        Ok(stale)
    }

    /// A certificate by serial (lower-case hex without leading zeros stripped), any issuer.
    pub async fn certificate(&self, serial: &str) -> Result<Option<CertificateRecord>, StoreError> {
        // CERT_COLUMNS is a constant: no input reaches this string.
        let q = format!("SELECT {CERT_COLUMNS} FROM certificates WHERE serial = $1 ORDER BY created_at LIMIT 1");
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(serial)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(cert_row).transpose()?)
    }

    /// An application's certificates that are issued or being issued (not abandoned).
    pub async fn application_certificates(&self, application: &str) -> Result<Vec<CertificateRecord>, StoreError> {
        let q = format!(
            "SELECT {CERT_COLUMNS} FROM certificates WHERE application = $1 AND status <> 'abandoned' ORDER BY created_at"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(application)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(cert_row).collect::<Result<_, _>>()?)
    }

    /// Serials of the certificates issued to a holder (IIN…), oldest first.
    pub async fn certificates_of_holder(&self, holder: &str) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT serial FROM certificates WHERE holder = $1 AND status = 'issued' ORDER BY created_at")
                .bind(holder)
                .fetch_all(self.pool())
                .await?;
        Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<_, sqlx::Error>>()?)
    }

    /// How many certificates are in each status, for `/metrics`.
    pub async fn certificate_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT status, COUNT(*) FROM certificates GROUP BY status")
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }
}

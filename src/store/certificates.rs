//! Certificates and the CA's keys.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{AuditEvent, append};
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

/// `add_pending` for every pending certificate of one group commit, in three statements whatever
/// their number (one statement per row made every certificate two round trips to the database's
/// thread): the keys' holders, the keys already bound to someone else, and the rows. The keys'
/// statements return no row on the common path (each row sqlx's SQLite driver hands back is one
/// more message between its thread and ours): the new keys are inserted without an answer, and
/// only the ones bound to another holder are read back.
///
/// The answers are those of the rows written one after another in batch order: a key new to the
/// database is bound to the first holder in the batch that names it, and a later request of the
/// same batch for another holder is refused, as it would have been a statement later. No statement
/// fails for a refusal, so the writer's transaction needs no savepoints.
pub(super) async fn insert_pending_batch(
    conn: &mut sqlx::AnyConnection,
    batch: &[&PendingCertificate],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let at = now();
    // Each key once: PostgreSQL refuses an upsert that touches one row twice in a statement.
    let mut keys: Vec<(&str, &str)> = Vec::new();
    for c in batch {
        if !keys.iter().any(|(k, _)| *k == c.key_sha256) {
            keys.push((&c.key_sha256, &c.holder));
        }
    }
    // Only placeholders are generated into these strings; every value is bound.
    let sql = format!(
        "INSERT INTO public_keys (key_sha256, holder, created_at) VALUES {} ON CONFLICT (key_sha256) DO NOTHING",
        super::placeholder_rows(keys.len(), 3, 1)
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (k, h) in &keys {
        q = q.bind(*k).bind(*h).bind(at);
    }
    q.execute(&mut *conn).await?;
    // Bound to another holder: before this batch, or by an earlier request of it (the first
    // holder of a key is the one its INSERT wrote). Almost always no row.
    let sql = format!(
        "SELECT v.column1, p.holder FROM (VALUES {}) AS v JOIN public_keys p ON p.key_sha256 = v.column1 \
         WHERE p.holder <> v.column2",
        super::placeholder_rows(keys.len(), 2, 1)
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (k, h) in &keys {
        q = q.bind(*k).bind(*h);
    }
    let mut elsewhere = std::collections::HashMap::new();
    for r in q.fetch_all(&mut *conn).await? {
        elsewhere.insert(r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?);
    }
    let mut results: Vec<Result<(), StoreError>> = batch
        .iter()
        .map(|c| {
            // The key's holder: another one's if it was bound elsewhere, else the first
            // request of the batch that named it.
            let bound = match elsewhere.get(&c.key_sha256) {
                Some(h) => h.as_str(),
                None => keys.iter().find(|(k, _)| *k == c.key_sha256).map_or("", |(_, h)| *h),
            };
            if bound == c.holder {
                Ok(())
            } else {
                Err(StoreError::KeyBoundElsewhere)
            }
        })
        .collect();

    let rows_to_write: Vec<&PendingCertificate> = batch
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(c, _)| *c)
        .collect();
    if rows_to_write.is_empty() {
        return Ok(results);
    }
    let mut sql = String::from(
        "INSERT INTO certificates (issuer, serial, status, profile, subject, holder, key_sha256, not_before, not_after, tbs, application, created_at) VALUES ",
    );
    for i in 0..rows_to_write.len() {
        if i > 0 {
            sql.push_str(", ");
        }
        let f = 11 * i + 1;
        sql.push_str(&format!(
            "(${}, ${}, 'pending', ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
            f,
            f + 1,
            f + 2,
            f + 3,
            f + 4,
            f + 5,
            f + 6,
            f + 7,
            f + 8,
            f + 9,
            f + 10
        ));
    }
    sql.push_str(" ON CONFLICT DO NOTHING RETURNING issuer, serial");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for c in &rows_to_write {
        q = q
            .bind(&c.issuer)
            .bind(&c.serial)
            .bind(&c.profile)
            .bind(&c.subject)
            .bind(&c.holder)
            .bind(&c.key_sha256)
            .bind(c.not_before)
            .bind(c.not_after)
            .bind(&c.tbs[..])
            .bind(&c.application)
            .bind(at);
    }
    // Returned, not counted: a row under the same serial may hold the same values, and only the
    // rows this statement wrote tell which request was refused.
    let rows = q.fetch_all(&mut *conn).await?;
    let mut written = std::collections::HashSet::with_capacity(rows.len());
    for r in &rows {
        written.insert((r.try_get::<String, _>(0)?, r.try_get::<String, _>(1)?));
    }
    for (c, result) in batch.iter().zip(results.iter_mut()) {
        if result.is_err() || written.contains(&(c.issuer.clone(), c.serial.clone())) {
            continue;
        }
        // Either constraint: the serial, or the application's one certificate of this profile
        // (certificates_application_profile). Told apart only on this rare path.
        *result = Err(StoreError::SerialTaken);
        if let Some(application) = &c.application {
            let held = sqlx::query(
                "SELECT 1 FROM certificates WHERE application = $1 AND profile = $2 AND status <> 'abandoned'",
            )
            .bind(application)
            .bind(&c.profile)
            .fetch_optional(&mut *conn)
            .await?;
            if held.is_some() {
                *result = Err(StoreError::AlreadyCertified);
            }
        }
    }
    Ok(results)
}

/// A signed certificate to record as issued.
pub(super) struct IssuedRow<'a> {
    pub issuer: &'a str,
    pub serial: &'a str,
    pub der: &'a [u8],
}

/// `mark_issued` for every signed certificate of one group commit, in one statement. Only a
/// pending row changes: a row the start-up reconciliation abandoned stays abandoned, and its
/// caller is told.
pub(super) async fn update_issued_batch(
    conn: &mut sqlx::AnyConnection,
    batch: &[IssuedRow<'_>],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    // A VALUES list's columns are column1, column2, … on both SQLite and PostgreSQL; only
    // placeholders are generated into the string.
    let sql = format!(
        "UPDATE certificates SET status = 'issued', der = v.column3, issued_at = $1 FROM (VALUES {}) AS v \
         WHERE certificates.issuer = v.column1 AND certificates.serial = v.column2 AND certificates.status = 'pending'",
        super::placeholder_rows(batch.len(), 3, 2)
    );
    let at = now();
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(at);
    for r in batch {
        q = q.bind(r.issuer).bind(r.serial).bind(r.der);
    }
    // Counted, not returned (each returned row is a message from sqlx's SQLite thread): a batch
    // whose count falls short asks which rows this statement marked. The one answer that differs
    // from a RETURNING's: the same DER marked twice within a second is Ok twice, and the row does
    // record exactly that certificate as issued.
    let updated = q.execute(&mut *conn).await?.rows_affected();
    let mut answers = Vec::with_capacity(batch.len());
    for r in batch {
        // Every row changed (the common path), or this one is found issued by this statement:
        // with its DER, at this second.
        let ok = updated == batch.len() as u64
            || sqlx::query(
                "SELECT 1 FROM certificates WHERE issuer = $1 AND serial = $2 AND status = 'issued' \
                 AND der = $3 AND issued_at = $4",
            )
            .bind(r.issuer)
            .bind(r.serial)
            .bind(r.der)
            .bind(at)
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
        answers.push(if ok {
            Ok(())
        } else {
            Err(StoreError::StateConflict(format!(
                "certificate {} is not pending",
                r.serial
            )))
        });
    }
    Ok(answers)
}

/// A certificate's columns, of `certificates c` (qualified, so that a join may add its own).
const CERT_COLUMNS: &str = "c.issuer, c.serial, c.status, c.profile, c.subject, c.holder, c.not_before, c.not_after, c.der, \
     c.application, c.created_at, c.issued_at";

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
    pub async fn commit_ceremony(&self, keys: &[CaKeyRecord], actor: &crate::model::Actor) -> Result<(), StoreError> {
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
                serde_json::json!({"serial": serial, "actor": crate::model::Actor::Service.audit()}),
            )],
        )
        .await?;
        tx.commit().await?;
        Ok(())
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
                serde_json::json!({"issuer": issuer, "why": why, "actor": crate::model::Actor::Service.audit()}),
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
                        "actor": crate::model::Actor::Service.audit()}),
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
        let q = format!("SELECT {CERT_COLUMNS} FROM certificates c WHERE c.serial = $1 ORDER BY c.created_at LIMIT 1");
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(serial)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(cert_row).transpose()?)
    }

    /// A certificate by serial with its revocation, if any, in one statement: every check of a
    /// certificate someone presents (an operator's TLS identity, a confirmation's signer, a
    /// token's) reads both, and on SQLite each statement is two hand-offs to a connection's
    /// thread and back. The same rows as [`Store::certificate`] then [`Store::revocation`].
    pub async fn certificate_and_revocation(
        &self,
        serial: &str,
    ) -> Result<Option<(CertificateRecord, Option<super::revocations::RevocationRecord>)>, StoreError> {
        let q = format!(
            "SELECT {CERT_COLUMNS}, {} FROM certificates c \
             LEFT JOIN revocations r ON r.issuer = c.issuer AND r.serial = c.serial \
             WHERE c.serial = $1 ORDER BY c.created_at LIMIT 1",
            super::revocations::JOINED_COLUMNS
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(serial)
            .fetch_optional(self.pool())
            .await?;
        let Some(r) = row else {
            return Ok(None);
        };
        Ok(Some((cert_row(&r)?, super::revocations::joined_revocation(&r)?)))
    }

    /// An application's certificates that are issued or being issued (not abandoned).
    pub async fn application_certificates(&self, application: &str) -> Result<Vec<CertificateRecord>, StoreError> {
        let q = format!(
            "SELECT {CERT_COLUMNS} FROM certificates c WHERE c.application = $1 AND c.status <> 'abandoned' ORDER BY c.created_at"
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

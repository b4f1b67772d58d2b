//! The audit chain's SQL: appending inside a caller's transaction, and reading it back.

use sqlx::{AnyConnection, Row};

use super::{Backend, Store, StoreError, now};

/// One decision or signature to record.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// e.g. `certificate.issued`, `certificate.revoked`, `crl.published`, `operator.suspended`.
    pub kind: String,
    /// What it is about: a serial, an IIN, an issuer.
    pub subject: String,
    /// JSON with the rest.
    pub detail: String,
}

impl AuditEvent {
    pub fn new(kind: &str, subject: &str, detail: serde_json::Value) -> AuditEvent {
        AuditEvent {
            kind: kind.into(),
            subject: subject.into(),
            detail: detail.to_string(),
        }
    }
}

/// A row as stored.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: i64,
    pub kind: String,
    pub subject: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash of a row: SHA-256 over the previous hash and the row's fields, newline-separated.
pub fn chain_hash(prev: &str, seq: i64, at: i64, kind: &str, subject: &str, detail: &str) -> String {
    let text = format!("{prev}\n{seq}\n{at}\n{kind}\n{subject}\n{detail}");
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()))
}

/// Appends events inside the caller's transaction. The head row is locked first (a write on
/// SQLite, FOR UPDATE on PostgreSQL), so concurrent appenders, in this process or another,
/// queue rather than fork the chain.
pub(super) async fn append(
    conn: &mut AnyConnection,
    backend: Backend,
    events: &[AuditEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let head = match backend {
        Backend::Postgres => "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE",
        Backend::Sqlite => "SELECT seq, hash FROM audit_head WHERE id = 1",
    };
    let row = sqlx::query(head).fetch_one(&mut *conn).await?;
    let (mut seq, mut hash): (i64, String) = (row.try_get(0)?, row.try_get(1)?);
    let at = now();
    for e in events {
        seq += 1;
        let h = chain_hash(&hash, seq, at, &e.kind, &e.subject, &e.detail);
        sqlx::query(
            "INSERT INTO audit (seq, at, kind, subject, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(seq)
        .bind(at)
        .bind(&e.kind)
        .bind(&e.subject)
        .bind(&e.detail)
        .bind(&hash)
        .bind(&h)
        .execute(&mut *conn)
        .await?;
        hash = h;
    }
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Store {
    /// Appends events in a transaction of their own (for decisions that change nothing else).
    pub async fn audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        append(&mut tx, self.backend(), events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The chain's head: the last sequence number and hash.
    pub async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(self.pool())
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// Rows with `seq` greater than `after`, in order, at most `limit`.
    pub async fn audit_rows(&self, after: i64, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, kind, subject, detail, prev_hash, hash FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    seq: r.try_get(0)?,
                    at: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    subject: r.try_get(3)?,
                    detail: r.try_get(4)?,
                    prev_hash: r.try_get(5)?,
                    hash: r.try_get(6)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}

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
    /// The chain it is on ('main' on SQLite and for every record written before there were
    /// several).
    pub chain: String,
    /// Its place on its chain, from 1.
    pub seq: i64,
    pub at: i64,
    pub kind: String,
    pub subject: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The most records one INSERT carries: 8 values each, well under SQLite's 32,766 and
/// PostgreSQL's 65,535 bound parameters.
const AUDIT_ROWS: usize = 512;

/// The chain every record went on before there were several, and the only one on SQLite.
pub const MAIN_CHAIN: &str = "main";

/// The hash before a chain's first record.
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of a row: SHA-256 over the previous hash and the row's fields, newline-separated.
pub fn chain_hash(prev: &str, seq: i64, at: i64, kind: &str, subject: &str, detail: &str) -> String {
    let text = format!("{prev}\n{seq}\n{at}\n{kind}\n{subject}\n{detail}");
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()))
}

/// Appends events inside the caller's transaction, to one chain whose head it locks first.
///
/// On PostgreSQL the writer takes the head of a chain no other transaction holds (FOR UPDATE
/// SKIP LOCKED), and starts a new chain when every one is held: concurrent writers, in this
/// process or another, never wait for each other here, and no chain forks. The number of chains
/// is the most writers that were ever at it at once. SQLite has one writer at a time: one chain.
pub(super) async fn append(
    conn: &mut AnyConnection,
    backend: Backend,
    events: &[AuditEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let head = match backend {
        Backend::Postgres => {
            sqlx::query("SELECT chain, seq, hash FROM audit_chains ORDER BY chain LIMIT 1 FOR UPDATE SKIP LOCKED")
                .fetch_optional(&mut *conn)
                .await?
        }
        Backend::Sqlite => {
            sqlx::query("SELECT chain, seq, hash FROM audit_chains WHERE chain = $1")
                .bind(MAIN_CHAIN)
                .fetch_optional(&mut *conn)
                .await?
        }
    };
    let (chain, mut seq, mut hash): (String, i64, String) = match head {
        Some(row) => (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?),
        None => {
            // Every chain is held by a transaction in flight: a new one, locked by its insert
            // until this transaction ends.
            let chain = match backend {
                Backend::Sqlite => MAIN_CHAIN.to_string(),
                Backend::Postgres => format!("c{}", new_chain_id()?),
            };
            sqlx::query("INSERT INTO audit_chains (chain, seq, hash) VALUES ($1, 0, $2)")
                .bind(&chain)
                .bind(ZERO_HASH)
                .execute(&mut *conn)
                .await?;
            (chain, 0, ZERO_HASH.to_string())
        }
    };
    let at = now();
    // The hashes are chained here, in the order given; the rows go in as multi-row INSERTs (one
    // statement per AUDIT_ROWS records, not one per record), so a group commit's records cost the
    // same few statements whatever their number. The order on the chain is the order of `events`.
    let mut rows = Vec::with_capacity(events.len());
    for e in events {
        seq += 1;
        let h = chain_hash(&hash, seq, at, &e.kind, &e.subject, &e.detail);
        rows.push((seq, e, std::mem::replace(&mut hash, h.clone()), h));
    }
    for part in rows.chunks(AUDIT_ROWS) {
        let sql = format!(
            "INSERT INTO audit (chain, seq, at, kind, subject, detail, prev_hash, hash) VALUES {}",
            super::placeholder_rows(part.len(), 8, 1)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (seq, e, prev, h) in part {
            q = q
                .bind(&chain)
                .bind(*seq)
                .bind(at)
                .bind(&e.kind)
                .bind(&e.subject)
                .bind(&e.detail)
                .bind(prev)
                .bind(h);
        }
        q.execute(&mut *conn).await?;
    }
    sqlx::query("UPDATE audit_chains SET seq = $1, hash = $2 WHERE chain = $3")
        .bind(seq)
        .bind(&hash)
        .bind(&chain)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Eight random bytes in hex: a new chain's name. Without the OS's randomness two writers could
/// name the same chain: the write is refused instead.
fn new_chain_id() -> Result<String, StoreError> {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| StoreError::Unavailable(format!("the OS random source failed: {e}")))?;
    Ok(hex::encode(b))
}

fn record(r: &sqlx::any::AnyRow) -> Result<AuditRecord, sqlx::Error> {
    Ok(AuditRecord {
        chain: r.try_get(0)?,
        seq: r.try_get(1)?,
        at: r.try_get(2)?,
        kind: r.try_get(3)?,
        subject: r.try_get(4)?,
        detail: r.try_get(5)?,
        prev_hash: r.try_get(6)?,
        hash: r.try_get(7)?,
    })
}

impl Store {
    /// Appends events in a transaction of their own (for decisions that change nothing else).
    pub async fn audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        self.audit_under(events, None).await
    }

    /// [`Store::audit`] as a duty (the checkpoint): only while `fence` still holds it.
    pub async fn audit_under(&self, events: &[AuditEvent], fence: Option<&super::Fence>) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        if let Some(f) = fence {
            super::cluster::check_fence(&mut tx, self.backend(), f).await?;
        }
        append(&mut tx, self.backend(), events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every chain's head, by name: (chain, last sequence number, hash).
    pub async fn audit_heads(&self) -> Result<Vec<(String, i64, String)>, StoreError> {
        let rows = sqlx::query("SELECT chain, seq, hash FROM audit_chains ORDER BY chain")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The names of the chains that have records or a head.
    pub async fn audit_chains(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT chain FROM audit_chains UNION SELECT DISTINCT chain FROM audit ORDER BY 1")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Rows of `chain` with `seq` greater than `after`, in order, at most `limit`.
    pub async fn audit_rows(&self, chain: &str, after: i64, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT chain, seq, at, kind, subject, detail, prev_hash, hash FROM audit WHERE chain = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(chain)
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(record)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// One record of a chain.
    pub async fn audit_record(&self, chain: &str, seq: i64) -> Result<Option<AuditRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT chain, seq, at, kind, subject, detail, prev_hash, hash FROM audit WHERE chain = $1 AND seq = $2",
        )
        .bind(chain)
        .bind(seq)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(record).transpose()?)
    }
}

//! The time-stamping authority's record: one row per token, written before it is signed.

use sqlx::Row;

use super::certificates::CaKeyRecord;
use super::{Store, StoreError};

/// What a token says, recorded before the TSA key signs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TimestampRecord {
    /// Lower-case hex of the token's serialNumber.
    pub serial: String,
    /// `issued`, or `abandoned` when signing failed after the row was written.
    pub status: String,
    /// genTime, seconds since the epoch.
    pub gen_time: i64,
    /// The message imprint's hash algorithm: `sha256`, `sha384`, `sha512`.
    pub hash_alg: String,
    /// The imprint, lower-case hex.
    pub imprint: String,
    /// The TSA policy OID the token names.
    pub policy: String,
    /// The request's nonce, hex, when it had one.
    pub nonce: Option<String>,
    /// The serial of the TSA certificate that signed it.
    pub tsa_serial: String,
}

/// `add_timestamp` inside the writer's transaction. A serial already used is an answer
/// ([`StoreError::SerialTaken`]), not a failed statement.
pub(super) async fn insert(conn: &mut sqlx::AnyConnection, t: &TimestampRecord) -> Result<(), StoreError> {
    let r = sqlx::query(
        "INSERT INTO timestamps (serial, status, gen_time, hash_alg, imprint, policy, nonce, tsa_serial) \
         VALUES ($1, 'issued', $2, $3, $4, $5, $6, $7) ON CONFLICT (serial) DO NOTHING",
    )
    .bind(&t.serial)
    .bind(t.gen_time)
    .bind(&t.hash_alg)
    .bind(&t.imprint)
    .bind(&t.policy)
    .bind(&t.nonce)
    .bind(&t.tsa_serial)
    .execute(&mut *conn)
    .await?;
    if r.rows_affected() == 0 {
        return Err(StoreError::SerialTaken);
    }
    Ok(())
}

const COLUMNS: &str = "serial, status, gen_time, hash_alg, imprint, policy, nonce, tsa_serial";

fn row(r: &sqlx::any::AnyRow) -> Result<TimestampRecord, sqlx::Error> {
    Ok(TimestampRecord {
        serial: r.try_get(0)?,
        status: r.try_get(1)?,
        gen_time: r.try_get(2)?,
        hash_alg: r.try_get(3)?,
        imprint: r.try_get(4)?,
        policy: r.try_get(5)?,
        nonce: r.try_get(6)?,
        tsa_serial: r.try_get(7)?,
    })
}

impl Store {
    /// Marks a recorded token abandoned: its signing failed, so no token has this serial.
    pub async fn abandon_timestamp(&self, serial: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE timestamps SET status = 'abandoned' WHERE serial = $1")
            .bind(serial)
            .execute(self.write_pool())
            .await?;
        Ok(())
    }

    /// The record of the token with this serial.
    pub async fn timestamp(&self, serial: &str) -> Result<Option<TimestampRecord>, StoreError> {
        let q = format!("SELECT {COLUMNS} FROM timestamps WHERE serial = $1");
        let r = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(serial)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.as_ref().map(row).transpose()?)
    }

    /// How many tokens were recorded (issued and abandoned), for tests and reports.
    pub async fn timestamp_count(&self) -> Result<i64, StoreError> {
        let r = sqlx::query("SELECT COUNT(*) FROM timestamps")
            .fetch_one(self.pool())
            .await?;
        Ok(r.try_get(0)?)
    }

    /// Adds one delegated key to an initialised deployment (the TSA's, for a deployment made
    /// before it existed), with its audit record. A second one for the role collides on the
    /// unique role and is refused.
    pub async fn add_ca_key(&self, k: &CaKeyRecord) -> Result<(), StoreError> {
        // The ceremony's own commit, for one key: the same row, the same audit record.
        // Added at start, by the service.
        self.commit_ceremony(std::slice::from_ref(k), &crate::model::Actor::Service)
            .await
    }
}

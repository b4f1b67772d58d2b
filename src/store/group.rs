//! The issuance path's group commit: what its operations are and how a batch of them is written
//! in the writer's one transaction ([`super::writer`], which knows nothing of them).
//!
//! Every issuance writes twice (pending, then issued); a confirmation's transitions go with the
//! pair's two writes ([`Together`]); a time-stamp token is recorded before it is signed. The
//! rows of a batch go in as multi-row statements, and the audit records of what it wrote are
//! appended in the same transaction, in the order written.

use sqlx::AnyConnection;

use super::applications::{ApplicationChange, NewApplication, add_applications, change_applications};
use super::audit::{AuditEvent, append};
use super::certificates::{IssuedRow, PendingCertificate, insert_pending_batch, update_issued_batch};
use super::ocsp::{self, PresignedAnswer};
use super::outbox;
use super::timestamps::{self, TimestampRecord};
use super::writer::Batch;
use super::{Backend, StoreError};

pub(super) enum WriteOp {
    /// Certificates' records, with the changes of the application they answer that go in the
    /// same transaction: [`Together`].
    Certificates(Box<Together>),
    /// A time-stamp token about to be signed; no audit record (the table is the record, and a
    /// token a second would flood the chain).
    Timestamp(TimestampRecord),
    /// A new application, with its first steps, messages and audit record. Written first in the
    /// batch: nothing else in it can name it yet (its submitter has not been answered).
    Submission(Box<NewApplication>),
    /// OCSP answers signed ahead, to keep ([`super::ocsp::upsert`]); no audit record (the
    /// pre-signer renews every answer twice a validity period).
    Presigned(Vec<PresignedAnswer>),
    /// An outbox worker's round: the attempts it made, then its next claim ([`outbox::Round`]);
    /// written after the batch's own messages, so that those due may be claimed with it.
    Outbox(Box<outbox::Round>),
}

/// One caller's share of a group commit, written in this order inside the batch's transaction:
/// `before` (only if the application is still in its `from`), then the pending rows (only if
/// `before` was written or there is none), the issued rows, then `after` (only if every issued
/// row of this share was marked issued), then the outbox messages and audit records of them all.
/// A confirmation's `issuing` transition thus lands with its pair's pending rows, and its
/// completion with their issued rows: no crash falls between an application's change and the
/// certificates that go with it.
#[derive(Default)]
pub(crate) struct Together {
    pub before: Option<ApplicationChange>,
    pub pending: Vec<PendingCertificate>,
    pub issued: Vec<IssuedCertificate>,
    pub after: Option<ApplicationChange>,
}

/// A signed certificate to record as issued, with who asked for it (its audit record names them).
pub(crate) struct IssuedCertificate {
    pub issuer: String,
    pub serial: String,
    pub der: Vec<u8>,
    /// In the audit record's form.
    pub actor: serde_json::Value,
}

/// What became of a [`Together`]: whether each change was written, and each row's answer in
/// the order given.
#[derive(Debug, Default)]
pub(crate) struct Written {
    pub before: bool,
    pub pending: Vec<Result<(), StoreError>>,
    pub issued: Vec<Result<(), StoreError>>,
    pub after: bool,
    /// Answers signed ahead that replaced the kept ones ([`WriteOp::Presigned`]).
    pub kept: u64,
    /// The messages an outbox round claimed ([`WriteOp::Outbox`]).
    pub claimed: Vec<outbox::DueMessage>,
}

impl Batch for WriteOp {
    type Answer = Result<Written, StoreError>;

    fn execute<'a>(
        conn: &'a mut AnyConnection,
        backend: Backend,
        batch: &'a [Self],
    ) -> impl std::future::Future<Output = Result<Vec<Self::Answer>, StoreError>> + Send + 'a {
        execute(conn, backend, batch)
    }
}

impl super::Store {
    pub(super) async fn write(&self, op: WriteOp) -> Result<Written, StoreError> {
        self.writer.write(op).await?
    }

    /// Records a certificate about to be signed, and binds its public key to its holder.
    /// Refuses a used serial and a key bound to someone else; either way nothing is written.
    /// Returns once the row is committed: only then may the certificate be signed.
    pub async fn add_pending(&self, c: &PendingCertificate) -> Result<(), StoreError> {
        let w = self
            .write(WriteOp::Certificates(Box::new(Together {
                pending: vec![c.clone()],
                ..Default::default()
            })))
            .await?;
        w.pending
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(StoreError::Unavailable("a write had no answer".into())))
    }

    /// Marks a pending certificate issued. Only a pending row changes: a row the start-up
    /// reconciliation abandoned stays abandoned, and the caller must not hand the certificate out.
    /// `actor` asked for the certificate (the audit record names them).
    pub async fn mark_issued(
        &self,
        issuer: &str,
        serial: &str,
        der: &[u8],
        actor: &crate::model::Actor,
    ) -> Result<(), StoreError> {
        let w = self
            .write(WriteOp::Certificates(Box::new(Together {
                issued: vec![IssuedCertificate {
                    issuer: issuer.to_string(),
                    serial: serial.to_string(),
                    der: der.to_vec(),
                    actor: actor.audit(),
                }],
                ..Default::default()
            })))
            .await?;
        w.issued
            .into_iter()
            .next()
            .unwrap_or_else(|| Err(StoreError::Unavailable("a write had no answer".into())))
    }

    /// Records a token about to be signed, through the group-commit writer: returns once the
    /// row is committed, and only then may the token be signed and handed out.
    pub async fn add_timestamp(&self, t: &TimestampRecord) -> Result<(), StoreError> {
        self.write(WriteOp::Timestamp(t.clone())).await.map(|_| ())
    }

    /// Writes certificates' records and their application's changes in one group commit.
    pub(crate) async fn write_together(&self, t: Together) -> Result<Written, StoreError> {
        self.write(WriteOp::Certificates(Box::new(t))).await
    }
}

/// One batch inside the writer's transaction; per-operation results, or the error that loses
/// the whole batch. The pending
/// rows go in as one multi-row INSERT, the issued ones as one UPDATE, the audit records as one
/// INSERT: a handful of statements per group commit, not two or three per certificate.
async fn execute(
    conn: &mut AnyConnection,
    backend: Backend,
    batch: &[WriteOp],
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    let mut results: Vec<Result<Written, StoreError>> = (0..batch.len()).map(|_| Ok(Written::default())).collect();
    let (mut events, mut messages) = (Vec::new(), Vec::new());
    let (submitted, new): (Vec<usize>, Vec<&NewApplication>) = batch
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            WriteOp::Submission(n) => Some((i, &**n)),
            WriteOp::Certificates(_) | WriteOp::Timestamp(_) | WriteOp::Presigned(_) | WriteOp::Outbox(_) => None,
        })
        .unzip();
    for (i, r) in submitted
        .into_iter()
        .zip(add_applications(&mut *conn, &new, &mut events, &mut messages).await?)
    {
        results[i] = r.map(|()| Written::default());
    }
    // The changes before the certificates, each only while its application is where it was.
    for (i, op) in batch.iter().enumerate() {
        match op {
            WriteOp::Timestamp(t) => {
                let r = timestamps::insert(&mut *conn, t).await;
                if let Err(StoreError::Database(e)) = r {
                    return Err(e.into());
                }
                results[i] = r.map(|()| Written::default());
            }
            WriteOp::Presigned(answers) => {
                let kept = ocsp::upsert(&mut *conn, answers).await?;
                results[i] = Ok(Written {
                    kept,
                    ..Default::default()
                });
            }
            WriteOp::Certificates(_) | WriteOp::Submission(_) | WriteOp::Outbox(_) => {}
        }
    }
    let before: Vec<(usize, &ApplicationChange)> = phase(batch, |t| t.before.as_ref()).collect();
    changes(&mut *conn, &before, &mut events, &mut messages, &mut results, |w| {
        w.before = true
    })
    .await?;
    // Pending rows: those whose change was written, or that came without one.
    let mut pending = Vec::new();
    let mut pending_of = Vec::new();
    let mut issued = Vec::new();
    let mut issued_of = Vec::new();
    for (i, op) in batch.iter().enumerate() {
        let WriteOp::Certificates(t) = op else { continue };
        let go = t.before.is_none() || results[i].as_ref().is_ok_and(|w| w.before);
        for c in &t.pending {
            if go {
                pending.push(c);
                pending_of.push(i);
            } else if let Ok(w) = &mut results[i] {
                w.pending.push(Err(StoreError::StateConflict(format!(
                    "application {} moved on before its certificates were recorded",
                    t.before.as_ref().map_or("", |c| c.number.as_str())
                ))));
            }
        }
        for c in &t.issued {
            issued.push(IssuedRow {
                issuer: &c.issuer,
                serial: &c.serial,
                der: &c.der,
            });
            issued_of.push((i, c));
        }
    }
    for (i, r) in pending_of
        .into_iter()
        .zip(insert_pending_batch(&mut *conn, &pending).await?)
    {
        if let Ok(w) = &mut results[i] {
            w.pending.push(r);
        }
    }
    for ((i, c), r) in issued_of
        .into_iter()
        .zip(update_issued_batch(&mut *conn, &issued).await?)
    {
        if r.is_ok() {
            events.push(AuditEvent::new(
                "certificate.issued",
                &c.serial,
                serde_json::json!({"issuer": c.issuer, "actor": c.actor}),
            ));
        }
        if let Ok(w) = &mut results[i] {
            w.issued.push(r);
        }
    }
    // The changes after the certificates: only where every row of the share was marked issued.
    let after: Vec<(usize, &ApplicationChange)> = phase(batch, |t| t.after.as_ref())
        .filter(|(i, _)| results[*i].as_ref().is_ok_and(|w| w.issued.iter().all(Result::is_ok)))
        .collect();
    changes(&mut *conn, &after, &mut events, &mut messages, &mut results, |w| {
        w.after = true
    })
    .await?;
    outbox::append(&mut *conn, &messages).await?;
    for (i, op) in batch.iter().enumerate() {
        let WriteOp::Outbox(r) = op else { continue };
        results[i] = Ok(Written {
            claimed: outbox::round(&mut *conn, backend, r).await?,
            ..Default::default()
        });
    }
    // The audit chain's head is every writer's one shared row: taken last, held shortest.
    append(&mut *conn, backend, &events).await?;
    Ok(results)
}

/// The changes of one phase (`before` or `after`) of a batch's shares, each with its place.
fn phase<'a>(
    batch: &'a [WriteOp],
    pick: impl Fn(&'a Together) -> Option<&'a ApplicationChange>,
) -> impl Iterator<Item = (usize, &'a ApplicationChange)> {
    batch.iter().enumerate().filter_map(move |(i, op)| match op {
        WriteOp::Certificates(t) => pick(t).map(|c| (i, c)),
        WriteOp::Timestamp(_) | WriteOp::Submission(_) | WriteOp::Presigned(_) | WriteOp::Outbox(_) => None,
    })
}

/// The changes of applications of one phase of a batch (`before` or `after`), in a few statements
/// for them all: each written one's audit record and messages are queued in batch order, and its
/// share of the answer marked with `written`.
async fn changes(
    conn: &mut AnyConnection,
    changes: &[(usize, &ApplicationChange)],
    events: &mut Vec<AuditEvent>,
    messages: &mut Vec<outbox::OutboxMessage>,
    results: &mut [Result<Written, StoreError>],
    written: impl Fn(&mut Written),
) -> Result<(), StoreError> {
    let asked: Vec<_> = changes
        .iter()
        .map(|(_, c)| (c.number.as_str(), c.from, &c.change))
        .collect();
    for ((i, c), e) in changes.iter().zip(change_applications(conn, &asked).await?) {
        let Some(e) = e else { continue };
        events.push(e);
        messages.extend(c.change.messages.iter().cloned());
        if let Ok(w) = &mut results[*i] {
            written(w);
        }
    }
    Ok(())
}

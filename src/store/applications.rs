//! Applications and their steps.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{AuditEvent, append};
use super::outbox::OutboxMessage;
use super::{Store, StoreError, now, placeholder_rows};
use crate::model::{Applicant, Channel, Document, Intent, Receipt, Refusal, Service, Status, StepKind};

/// An application as the store keeps it. Its names are typed here and written as text only in
/// this file: a row holding a name this code does not know is a decode error, not a default.
#[derive(Debug, Clone, Default)]
pub struct ApplicationRecord {
    pub number: String,
    pub process: String,
    pub service: Service,
    pub channel: Channel,
    pub status: Status,
    pub iin: String,
    /// The applicant's data as submitted (JSON in the row).
    pub applicant: Applicant,
    pub centre: String,
    pub storage: String,
    pub auth_csr: Option<String>,
    pub sign_csr: Option<String>,
    pub tbs: Option<String>,
    pub receipt: Option<String>,
    pub confirmed_by: Option<String>,
    pub auth_serial: Option<String>,
    pub sign_serial: Option<String>,
    pub refusal: Option<Refusal>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The result step recorded but not yet done (see [`Store::claim_intents`]).
    pub intent: Option<Intent>,
    /// Until when one worker holds the intent; NULL or past, any instance's driver may take it.
    pub intent_until: Option<i64>,
    /// Why the application waits (`key_store_unavailable`), while it does.
    pub waiting: Option<String>,
    /// The requests' SHA-256 and sizes, JSON, kept in place of their bodies once refused.
    pub csr_digests: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StepRecord {
    pub seq: i64,
    pub step: StepKind,
    pub actor: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub deadline_seconds: Option<i64>,
    pub outcome: Option<String>,
}

/// A change of status: the open steps are closed with `outcome`, `steps` are opened (or
/// recorded done), and the fields given are set.
#[derive(Debug, Clone, Default)]
pub struct Advance {
    pub to: Status,
    pub outcome: String,
    pub steps: Vec<StepRecord>,
    pub tbs: Option<String>,
    /// Given: the receipt is kept (the archive) and its number set on the application.
    pub receipt: Option<Receipt>,
    pub confirmed_by: Option<String>,
    pub auth_serial: Option<String>,
    pub sign_serial: Option<String>,
    pub auth_csr: Option<String>,
    pub sign_csr: Option<String>,
    pub refusal: Option<Refusal>,
    /// The intent after the change, set as given (most changes have none before or after).
    pub intent: Option<Intent>,
    pub intent_until: Option<i64>,
    pub waiting: Option<String>,
    /// The open steps stay open (a wait within the step, not its end).
    pub keep_steps_open: bool,
    /// Given: the request bodies are dropped and these digests kept (a refusal).
    pub csr_digests: Option<String>,
    /// What the change tells the monitoring system and the applicant, appended with it.
    pub messages: Vec<OutboxMessage>,
    /// Who made the change, for the audit record.
    pub actor: serde_json::Value,
}

const COLUMNS: &str = "number, process, service, channel, status, iin, applicant, centre, storage, auth_csr, sign_csr, tbs, \
     receipt, confirmed_by, auth_serial, sign_serial, refusal_code, refusal_step, refusal_message, created_at, updated_at, \
     intent, intent_until, waiting, csr_digests";

/// A name column read back into its type.
fn named<T>(r: &AnyRow, column: &str) -> Result<T, sqlx::Error>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: String = r.try_get(column)?;
    text.parse().map_err(|e| sqlx::Error::ColumnDecode {
        index: column.into(),
        source: Box::new(e),
    })
}

fn named_opt<T>(r: &AnyRow, column: &str) -> Result<Option<T>, sqlx::Error>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let text: Option<String> = r.try_get(column)?;
    text.map(|t| t.parse())
        .transpose()
        .map_err(|e| sqlx::Error::ColumnDecode {
            index: column.into(),
            source: Box::new(e),
        })
}

fn row(r: &AnyRow) -> Result<ApplicationRecord, sqlx::Error> {
    let applicant: String = r.try_get("applicant")?;
    let code: Option<String> = r.try_get("refusal_code")?;
    let refusal = match code {
        Some(code) => Some(Refusal {
            code,
            step: named(r, "refusal_step")?,
            message: r.try_get::<Option<String>, _>("refusal_message")?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(ApplicationRecord {
        number: r.try_get("number")?,
        process: r.try_get("process")?,
        service: named(r, "service")?,
        channel: named(r, "channel")?,
        status: named(r, "status")?,
        iin: r.try_get("iin")?,
        applicant: serde_json::from_str(&applicant).map_err(|e| sqlx::Error::ColumnDecode {
            index: "applicant".into(),
            source: Box::new(e),
        })?,
        centre: r.try_get("centre")?,
        storage: r.try_get("storage")?,
        auth_csr: r.try_get("auth_csr")?,
        sign_csr: r.try_get("sign_csr")?,
        tbs: r.try_get("tbs")?,
        receipt: r.try_get("receipt")?,
        confirmed_by: r.try_get("confirmed_by")?,
        auth_serial: r.try_get("auth_serial")?,
        sign_serial: r.try_get("sign_serial")?,
        refusal,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        intent: named_opt(r, "intent")?,
        intent_until: r.try_get("intent_until")?,
        waiting: r.try_get("waiting")?,
        csr_digests: r.try_get("csr_digests")?,
    })
}

/// A step as [`Store::application_with_steps`] aggregates it: seq, step, actor, started_at,
/// finished_at, deadline_seconds, outcome.
type StepTuple = (i64, String, String, i64, Option<i64>, Option<i64>, Option<String>);

/// Steps from their JSON aggregate (none when there are none: PostgreSQL's `json_agg` of no rows
/// is NULL, SQLite's `json_group_array` an empty array).
fn steps_of(json: Option<String>) -> Result<Vec<StepRecord>, sqlx::Error> {
    let decode = |e: Box<dyn std::error::Error + Send + Sync>| sqlx::Error::ColumnDecode {
        index: "steps".into(),
        source: e,
    };
    let tuples: Vec<StepTuple> = match json {
        Some(j) => serde_json::from_str(&j).map_err(|e| decode(Box::new(e)))?,
        None => Vec::new(),
    };
    tuples
        .into_iter()
        .map(
            |(seq, step, actor, started_at, finished_at, deadline_seconds, outcome)| {
                Ok(StepRecord {
                    seq,
                    step: step
                        .parse()
                        .map_err(|e: <StepKind as std::str::FromStr>::Err| decode(Box::new(e)))?,
                    actor,
                    started_at,
                    finished_at,
                    deadline_seconds,
                    outcome,
                })
            },
        )
        .collect()
}

/// The most steps one statement inserts (eight parameters each).
const STEP_ROWS: usize = 100;

/// Inserts steps, each with its application's number. Steps are keyed by the application's
/// internal id (migration 0018: the number is random, the id sequential, so the steps of the
/// applications in flight share the last pages of their B-tree): the numbers are joined to their
/// ids in the statement.
async fn insert_steps(conn: &mut sqlx::AnyConnection, steps: &[(&str, &StepRecord)]) -> Result<(), StoreError> {
    // One statement for many: each statement is a round trip to the database.
    for chunk in steps.chunks(STEP_ROWS) {
        let q = format!(
            "INSERT INTO application_steps (application, seq, step, actor, started_at, finished_at, deadline_seconds, \
             outcome) SELECT a.id, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, v.column8 \
             FROM (VALUES {}) AS v JOIN applications a ON a.number = v.column1",
            placeholder_rows(chunk.len(), 8, 1)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(q));
        for (number, s) in chunk {
            query = query
                .bind(*number)
                .bind(s.seq)
                .bind(s.step.as_str())
                .bind(&s.actor)
                .bind(s.started_at)
                .bind(s.finished_at)
                .bind(s.deadline_seconds)
                .bind(&s.outcome);
        }
        // A join drops a row whose application is not there, where a subquery's NULL id would
        // have failed the statement: say so rather than lose a step.
        let written = query.execute(&mut *conn).await?.rows_affected();
        if written != chunk.len() as u64 {
            return Err(StoreError::Unavailable(format!(
                "{} of {} steps had no application to belong to",
                chunk.len() as u64 - written,
                chunk.len()
            )));
        }
    }
    Ok(())
}

/// A change of one application, recorded in the same transaction as other writes (the group
/// commit's certificates: [`super::writer`]).
#[derive(Debug, Clone)]
pub struct ApplicationChange {
    pub number: String,
    /// The status it must still be in; otherwise nothing of the change is written.
    pub from: Status,
    pub change: Advance,
}

/// The most changes one statement writes (seventeen parameters each).
const CHANGE_ROWS: usize = 100;

/// The statements of [`Store::advance_application`] but its outbox rows and audit records, for
/// many changes inside the caller's transaction: for each, in order, the audit record to append,
/// or None (nothing written) when the application is no longer in its `from`; the caller appends
/// the messages and records of those written. As if written one after another, but in four
/// statements a round whatever the number of changes: a round trip to the database's thread per
/// statement is what the group commit's writer spends most of its time on (BENCHMARKS.md, issue
/// #17, seventh round). An application changed twice goes into a second round, so that its second
/// change sees the first, as it would a statement later.
pub(super) async fn change_applications(
    conn: &mut sqlx::AnyConnection,
    changes: &[(&str, Status, &Advance)],
) -> Result<Vec<Option<AuditEvent>>, StoreError> {
    let mut events: Vec<Option<AuditEvent>> = (0..changes.len()).map(|_| None).collect();
    // The round of each change: how many earlier changes name its application.
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let rounds: Vec<usize> = changes
        .iter()
        .map(|(number, _, _)| {
            let n = seen.entry(number).or_insert(0);
            *n += 1;
            *n - 1
        })
        .collect();
    let at = now();
    for round in 0..rounds.iter().max().map_or(0, |m| m + 1) {
        let these: Vec<usize> = (0..changes.len()).filter(|&i| rounds[i] == round).collect();
        let mut changed = std::collections::HashSet::new();
        for chunk in these.chunks(CHANGE_ROWS) {
            changed.extend(update_applications(conn, at, chunk.iter().map(|&i| changes[i])).await?);
        }
        let done: Vec<usize> = these.into_iter().filter(|&i| changed.contains(changes[i].0)).collect();
        let closing: Vec<(&str, &str)> = done
            .iter()
            .map(|&i| changes[i])
            .filter(|(_, _, a)| !a.keep_steps_open)
            .map(|(number, _, a)| (number, a.outcome.as_str()))
            .collect();
        for chunk in closing.chunks(CHANGE_ROWS) {
            let q = format!(
                "UPDATE application_steps SET finished_at = $1, outcome = v.column2 FROM (VALUES {}) AS v \
                 WHERE application_steps.application = (SELECT id FROM applications WHERE number = v.column1) \
                 AND application_steps.finished_at IS NULL",
                super::placeholder_rows(chunk.len(), 2, 2)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(q)).bind(at);
            for (number, outcome) in chunk {
                query = query.bind(*number).bind(*outcome);
            }
            query.execute(&mut *conn).await?;
        }
        let steps: Vec<(&str, &StepRecord)> = done
            .iter()
            .flat_map(|&i| changes[i].2.steps.iter().map(move |s| (changes[i].0, s)))
            .collect();
        insert_steps(&mut *conn, &steps).await?;
        let receipts: Vec<&Receipt> = done.iter().filter_map(|&i| changes[i].2.receipt.as_ref()).collect();
        insert_receipts(&mut *conn, &receipts).await?;
        for i in done {
            let (number, from, a) = changes[i];
            let code = a.refusal.as_ref().map(|r| r.code.as_str());
            events[i] = Some(AuditEvent::new(
                &format!("application.{}", a.to.as_str()),
                number,
                serde_json::json!({"from": from.as_str(), "outcome": a.outcome, "by": a.confirmed_by,
                        "refusal": code, "intent": a.intent.map(Intent::as_str), "waiting": a.waiting, "actor": a.actor}),
            ));
        }
    }
    Ok(events)
}

/// One statement of [`change_applications`]: each application (named once) that is still in its
/// `from` takes its change; returns the numbers of those that did.
async fn update_applications<'a>(
    conn: &mut sqlx::AnyConnection,
    at: i64,
    changes: impl ExactSizeIterator<Item = (&'a str, Status, &'a Advance)>,
) -> Result<Vec<String>, StoreError> {
    // A VALUES list's columns are column1, column2, … on both SQLite and PostgreSQL:
    // 1 number, 2 from, 3 to, 4 tbs, 5 receipt, 6 confirmed_by, 7 auth_serial, 8 sign_serial,
    // 9-11 the refusal's code, step and message, 12 auth_csr, 13 sign_csr, 14 intent,
    // 15 intent_until, 16 waiting, 17 csr_digests (given: the request bodies are dropped).
    let q = format!(
        "UPDATE applications SET status = v.column3, tbs = COALESCE(v.column4, applications.tbs), \
         receipt = COALESCE(v.column5, applications.receipt), \
         confirmed_by = COALESCE(v.column6, applications.confirmed_by), \
         auth_serial = COALESCE(v.column7, applications.auth_serial), \
         sign_serial = COALESCE(v.column8, applications.sign_serial), \
         refusal_code = COALESCE(v.column9, applications.refusal_code), \
         refusal_step = COALESCE(v.column10, applications.refusal_step), \
         refusal_message = COALESCE(v.column11, applications.refusal_message), updated_at = $1, \
         auth_csr = CASE WHEN v.column17 IS NULL THEN COALESCE(v.column12, applications.auth_csr) ELSE NULL END, \
         sign_csr = CASE WHEN v.column17 IS NULL THEN COALESCE(v.column13, applications.sign_csr) ELSE NULL END, \
         intent = v.column14, intent_until = v.column15, waiting = v.column16, \
         csr_digests = COALESCE(v.column17, applications.csr_digests) \
         FROM (VALUES {}) AS v WHERE applications.number = v.column1 AND applications.status = v.column2 \
         RETURNING applications.number",
        super::placeholder_rows(changes.len(), 17, 2)
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(q)).bind(at);
    for (number, from, a) in changes {
        let refusal = a.refusal.as_ref();
        query = query
            .bind(number)
            .bind(from.as_str())
            .bind(a.to.as_str())
            .bind(&a.tbs)
            .bind(a.receipt.as_ref().map(|r| r.number.as_str()))
            .bind(&a.confirmed_by)
            .bind(&a.auth_serial)
            .bind(&a.sign_serial)
            .bind(refusal.map(|r| r.code.as_str()))
            .bind(refusal.map(|r| r.step.as_str()))
            .bind(refusal.map(|r| r.message.as_str()))
            .bind(&a.auth_csr)
            .bind(&a.sign_csr)
            .bind(a.intent.map(Intent::as_str))
            .bind(a.intent_until)
            .bind(&a.waiting)
            .bind(&a.csr_digests);
    }
    let rows = query.fetch_all(&mut *conn).await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()?)
}

/// The receipts of changed applications, in one statement (the archive keeps each).
async fn insert_receipts(conn: &mut sqlx::AnyConnection, receipts: &[&Receipt]) -> Result<(), StoreError> {
    for chunk in receipts.chunks(CHANGE_ROWS) {
        let q = format!(
            "INSERT INTO receipts (number, application, centre, operator, issued_at, documents) VALUES {}",
            placeholder_rows(chunk.len(), 6, 1)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(q));
        for r in chunk {
            let documents = serde_json::to_string(&r.documents)
                .map_err(|e| StoreError::Database(sqlx::Error::Encode(Box::new(e))))?;
            query = query
                .bind(&r.number)
                .bind(&r.application)
                .bind(&r.centre)
                .bind(&r.operator)
                .bind(r.issued_at)
                .bind(documents);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// A submission's share of a group commit of new applications ([`super::writer`]): the
/// application's row, its first steps, the messages telling of it and its audit record.
pub(super) struct NewApplication {
    record: ApplicationRecord,
    /// The applicant's data as the row keeps it (JSON).
    applicant: String,
    steps: Vec<StepRecord>,
    messages: Vec<OutboxMessage>,
    event: AuditEvent,
}

/// The most applications one statement inserts (21 parameters each).
const APPLICATION_ROWS: usize = 40;

/// A batch's new applications in the writer's transaction ([`super::group`]): their rows and
/// steps as multi-row statements; their messages and audit records are queued for the batch's one
/// append of each. A number already taken (two draws alike) refuses that submission alone, and
/// nothing of it is written: the batch's other writes go on.
pub(super) async fn add_applications(
    conn: &mut sqlx::AnyConnection,
    batch: &[&NewApplication],
    events: &mut Vec<AuditEvent>,
    messages: &mut Vec<OutboxMessage>,
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let mut written = std::collections::HashSet::new();
    for chunk in batch.chunks(APPLICATION_ROWS) {
        let q = format!(
            "INSERT INTO applications (number, process, service, channel, status, iin, applicant, centre, storage, \
             auth_csr, sign_csr, refusal_code, refusal_step, refusal_message, created_at, updated_at, tbs, intent, \
             intent_until, waiting, csr_digests) VALUES {} ON CONFLICT (number) DO NOTHING RETURNING number",
            placeholder_rows(chunk.len(), 21, 1)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(q));
        for n in chunk {
            let (a, refusal) = (&n.record, n.record.refusal.as_ref());
            query = query
                .bind(&a.number)
                .bind(&a.process)
                .bind(a.service.as_str())
                .bind(a.channel.as_str())
                .bind(a.status.as_str())
                .bind(&a.iin)
                .bind(&n.applicant)
                .bind(&a.centre)
                .bind(&a.storage)
                .bind(&a.auth_csr)
                .bind(&a.sign_csr)
                .bind(refusal.map(|r| r.code.as_str()))
                .bind(refusal.map(|r| r.step.as_str()))
                .bind(refusal.map(|r| r.message.as_str()))
                .bind(a.created_at)
                .bind(a.updated_at)
                .bind(&a.tbs)
                .bind(a.intent.map(Intent::as_str))
                .bind(a.intent_until)
                .bind(&a.waiting)
                .bind(&a.csr_digests);
        }
        for r in query.fetch_all(&mut *conn).await? {
            written.insert(r.try_get::<String, _>(0)?);
        }
    }
    // The first of a batch's submissions under one number is the one written.
    let mut answers = Vec::with_capacity(batch.len());
    let mut done = Vec::with_capacity(batch.len());
    for n in batch {
        if written.remove(&n.record.number) {
            answers.push(Ok(()));
            done.push(*n);
        } else {
            answers.push(Err(StoreError::StateConflict(format!(
                "application number {} is already taken",
                n.record.number
            ))));
        }
    }
    let steps: Vec<(&str, &StepRecord)> = done
        .iter()
        .flat_map(|n| n.steps.iter().map(|s| (n.record.number.as_str(), s)))
        .collect();
    insert_steps(&mut *conn, &steps).await?;
    for n in done {
        messages.extend(n.messages.iter().cloned());
        events.push(n.event.clone());
    }
    Ok(answers)
}

impl Store {
    /// Records a new application with its first steps and the messages telling of it; the audit
    /// says its status. Through the store's group commit ([`super::group::WriteOp::Submission`]):
    /// returns once committed, with whatever else was written at the same time.
    pub async fn add_application(
        &self,
        a: &ApplicationRecord,
        steps: &[StepRecord],
        messages: &[OutboxMessage],
        actor: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let applicant =
            serde_json::to_string(&a.applicant).map_err(|e| StoreError::Database(sqlx::Error::Encode(Box::new(e))))?;
        let refusal = a.refusal.as_ref();
        let event = AuditEvent::new(
            &format!("application.{}", a.status.as_str()),
            &a.number,
            serde_json::json!({"process": a.process, "iin": a.iin, "centre": a.centre,
                "refusal": refusal.map(|r| &r.code), "intent": a.intent.map(Intent::as_str), "actor": actor}),
        );
        self.write(super::group::WriteOp::Submission(Box::new(NewApplication {
            record: a.clone(),
            applicant,
            steps: steps.to_vec(),
            messages: messages.to_vec(),
            event,
        })))
        .await
        .map(|_| ())
    }

    pub async fn application(&self, number: &str) -> Result<Option<ApplicationRecord>, StoreError> {
        let q = format!("SELECT {COLUMNS} FROM applications WHERE number = $1");
        let r = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(number)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.as_ref().map(row).transpose()?)
    }

    /// The application that issued the certificate with this serial, if any.
    pub async fn application_of_certificate(&self, serial: &str) -> Result<Option<ApplicationRecord>, StoreError> {
        let q = format!("SELECT {COLUMNS} FROM applications WHERE auth_serial = $1 OR sign_serial = $1 LIMIT 1");
        let r = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(serial)
            .fetch_optional(self.pool())
            .await?;
        Ok(r.as_ref().map(row).transpose()?)
    }

    /// A centre's applications in a status, oldest first.
    pub async fn centre_applications(
        &self,
        centre: &str,
        status: Status,
    ) -> Result<Vec<ApplicationRecord>, StoreError> {
        let q = format!(
            "SELECT {COLUMNS} FROM applications WHERE centre = $1 AND status = $2 ORDER BY created_at LIMIT 500"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(centre)
            .bind(status.as_str())
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
    }

    /// Applications in a status, oldest first, across centres (for the workers that move them on).
    pub async fn applications_in(&self, status: Status, limit: i64) -> Result<Vec<ApplicationRecord>, StoreError> {
        let q = format!("SELECT {COLUMNS} FROM applications WHERE status = $1 ORDER BY created_at LIMIT $2");
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(status.as_str())
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.iter().map(row).collect::<Result<_, _>>()?)
    }

    pub async fn application_steps(&self, number: &str) -> Result<Vec<StepRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, step, actor, started_at, finished_at, deadline_seconds, outcome FROM application_steps \
             WHERE application = (SELECT id FROM applications WHERE number = $1) ORDER BY seq",
        )
        .bind(number)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StepRecord {
                    seq: r.try_get(0)?,
                    step: named(r, "step")?,
                    actor: r.try_get(2)?,
                    started_at: r.try_get(3)?,
                    finished_at: r.try_get(4)?,
                    deadline_seconds: r.try_get(5)?,
                    outcome: r.try_get(6)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// An application with its steps in order, in one statement and one row: the workflow reads
    /// both for every view it answers with and every step it records, and on SQLite each
    /// statement is two hand-offs to a connection's thread and back. The steps come as one JSON
    /// array of arrays, not as joined rows: those would repeat the application's columns (its
    /// requests and to-be-signed document, kilobytes) once per step, and that cost more CPU than
    /// the statement it saves. The same steps as [`Store::application_steps`].
    pub async fn application_with_steps(
        &self,
        number: &str,
    ) -> Result<Option<(ApplicationRecord, Vec<StepRecord>)>, StoreError> {
        let steps = match self.backend() {
            super::Backend::Sqlite => {
                "(SELECT json_group_array(json_array(s.seq, s.step, s.actor, s.started_at, s.finished_at, \
                 s.deadline_seconds, s.outcome) ORDER BY s.seq) FROM application_steps s WHERE s.application = applications.id)"
            }
            super::Backend::Postgres => {
                "(SELECT json_agg(json_build_array(s.seq, s.step, s.actor, s.started_at, s.finished_at, \
                 s.deadline_seconds, s.outcome) ORDER BY s.seq)::text FROM application_steps s WHERE s.application = applications.id)"
            }
        };
        let q = format!("SELECT {COLUMNS}, {steps} AS steps FROM applications WHERE number = $1");
        let r = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(number)
            .fetch_optional(self.pool())
            .await?;
        let Some(r) = r else { return Ok(None) };
        Ok(Some((row(&r)?, steps_of(r.try_get("steps")?)?)))
    }

    /// Moves an application on from status `from`, in one transaction. Returns false, changing
    /// nothing, when it is not in `from` any more: a transition takes effect once (a replayed
    /// confirmation finds the application already moved on). The change goes through the
    /// issuance's group commit ([`super::group::Together`] with no certificates): it shares a
    /// transaction, and the outbox's and the audit chain's statements, with whatever else is
    /// being written at the time, instead of holding the one write connection for its own.
    pub async fn advance_application(&self, number: &str, from: Status, a: Advance) -> Result<bool, StoreError> {
        let w = self
            .write_together(super::group::Together {
                before: Some(ApplicationChange {
                    number: number.to_string(),
                    from,
                    change: a,
                }),
                ..Default::default()
            })
            .await?;
        Ok(w.before)
    }

    /// Takes up to `limit` applications whose intent is recorded but whose lease has run out (or
    /// was given back), each for `lease` seconds. The claim is one conditional `UPDATE` per
    /// application: of drivers on several instances racing for one, exactly one changes the row
    /// (PostgreSQL re-checks the condition on the row it waited for), the others skip it.
    pub async fn claim_intents(&self, limit: i64, lease: i64) -> Result<Vec<ApplicationRecord>, StoreError> {
        let t = now();
        let q = format!(
            "SELECT {COLUMNS} FROM applications WHERE intent IS NOT NULL AND (intent_until IS NULL OR intent_until < $1) \
             ORDER BY updated_at LIMIT $2"
        );
        let candidates = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(t)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        let mut claimed = Vec::new();
        for r in &candidates {
            let mut a = row(r)?;
            let r = sqlx::query(
                "UPDATE applications SET intent_until = $1 WHERE number = $2 AND intent IS NOT NULL \
                 AND (intent_until IS NULL OR intent_until < $3)",
            )
            .bind(t + lease)
            .bind(&a.number)
            .bind(t)
            .execute(self.write_pool())
            .await?;
            if r.rows_affected() == 1 {
                a.intent_until = Some(t + lease);
                claimed.push(a);
            }
        }
        Ok(claimed)
    }

    /// The receipts given in `[from, to)` (unix seconds), of one centre or all, oldest first: the
    /// document archive. At most `limit`.
    pub async fn receipts(
        &self,
        from: i64,
        to: i64,
        centre: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Receipt>, StoreError> {
        let rows = sqlx::query(
            "SELECT number, application, centre, operator, issued_at, documents FROM receipts \
             WHERE issued_at >= $1 AND issued_at < $2 AND ($3 IS NULL OR centre = $3) \
             ORDER BY issued_at, number LIMIT $4",
        )
        .bind(from)
        .bind(to)
        .bind(centre)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let documents: String = r.try_get("documents")?;
                let documents: Vec<Document> =
                    serde_json::from_str(&documents).map_err(|e| sqlx::Error::ColumnDecode {
                        index: "documents".into(),
                        source: Box::new(e),
                    })?;
                Ok(Receipt {
                    number: r.try_get("number")?,
                    application: r.try_get("application")?,
                    centre: r.try_get("centre")?,
                    operator: r.try_get("operator")?,
                    issued_at: r.try_get("issued_at")?,
                    documents,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// The retention sweep: deletes the receipts given before `before` (now less the archival
    /// period), and only those; returns how many. The audit records how many went, and up to when.
    pub async fn sweep_receipts(&self, before: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("DELETE FROM receipts WHERE issued_at < $1")
            .bind(before)
            .execute(&mut *tx)
            .await?;
        let n = r.rows_affected();
        if n > 0 {
            let e = AuditEvent::new(
                "archive.swept",
                "receipts",
                serde_json::json!({"deleted": n, "issued_before": before,
                    "actor": crate::model::Actor::Service.audit()}),
            );
            append(&mut tx, self.backend(), &[e]).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// Gives an intent back for the next driver round, with why it waits; the status stays.
    pub async fn release_intent(&self, number: &str, waiting: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE applications SET intent_until = NULL, waiting = $1 WHERE number = $2 AND intent IS NOT NULL",
        )
        .bind(waiting)
        .bind(number)
        .execute(self.write_pool())
        .await?;
        Ok(())
    }

    /// Every step's timing with its application's process: `(process, step, actor, deadline,
    /// started_at, finished_at)`, for the SLA report.
    pub async fn step_timings(&self) -> Result<Vec<StepTiming>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.process, s.step, s.actor, s.deadline_seconds, s.started_at, s.finished_at \
             FROM application_steps s JOIN applications a ON a.id = s.application",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StepTiming {
                    process: r.try_get(0)?,
                    step: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    deadline_seconds: r.try_get(3)?,
                    started_at: r.try_get(4)?,
                    finished_at: r.try_get(5)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}

/// One step's timing, for reports.
#[derive(Debug, Clone)]
pub struct StepTiming {
    pub process: String,
    pub step: String,
    pub actor: String,
    pub deadline_seconds: Option<i64>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

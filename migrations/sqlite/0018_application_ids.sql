-- Every application gets a sequential internal key, `id`, and its steps are keyed by it instead of
-- by its number. The number is random by design (not guessable in sequence), so a key that leads
-- with it puts each new step on a random page of its B-tree, and every transaction that records a
-- step of many applications wrote as many pages (BENCHMARKS.md, issue #17, sixth round). Keyed by
-- the id, the steps of the applications in flight sit on the last pages. The number stays the
-- application's identity everywhere outside the store: the id never leaves it.
--
-- SQLite cannot add a key to a table in place: `applications` is rebuilt with `id INTEGER PRIMARY
-- KEY` (the rowid itself, so no extra index) and `number` UNIQUE. `surveys` and `receipts` refer
-- to it, so they are rebuilt too, first pointing at the new table (renaming a table rewrites the
-- references to it), as in 0008. Ids are given in the order the applications were created.
CREATE TABLE applications_next (
    id              INTEGER PRIMARY KEY,
    number          TEXT NOT NULL UNIQUE,
    process         TEXT NOT NULL,
    service         TEXT NOT NULL,
    channel         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('awaiting_registry', 'awaiting_documents', 'awaiting_confirmation',
                                                    'issuing', 'awaiting_key_store', 'completed', 'refused')),
    iin             TEXT NOT NULL,
    applicant       TEXT NOT NULL,
    centre          TEXT NOT NULL,
    storage         TEXT NOT NULL,
    auth_csr        TEXT,
    sign_csr        TEXT,
    tbs             TEXT,
    receipt         TEXT,
    confirmed_by    TEXT,
    auth_serial     TEXT,
    sign_serial     TEXT,
    refusal_code    TEXT,
    refusal_step    TEXT,
    refusal_message TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    intent          TEXT CHECK (intent IN ('issue', 'revoke')),
    intent_until    BIGINT,
    waiting         TEXT,
    csr_digests     TEXT
);
INSERT INTO applications_next (number, process, service, channel, status, iin, applicant, centre, storage, auth_csr,
    sign_csr, tbs, receipt, confirmed_by, auth_serial, sign_serial, refusal_code, refusal_step, refusal_message,
    created_at, updated_at, intent, intent_until, waiting, csr_digests)
SELECT number, process, service, channel, status, iin, applicant, centre, storage, auth_csr,
    sign_csr, tbs, receipt, confirmed_by, auth_serial, sign_serial, refusal_code, refusal_step, refusal_message,
    created_at, updated_at, intent, intent_until, waiting, csr_digests
FROM applications ORDER BY created_at, rowid;

CREATE TABLE surveys_next (
    number      TEXT PRIMARY KEY REFERENCES applications_next (number),
    process     TEXT NOT NULL CHECK (process IN ('not_satisfied', 'partly', 'satisfied')),
    information TEXT NOT NULL CHECK (information IN ('not_satisfied', 'partly', 'satisfied')),
    answered_at BIGINT NOT NULL
);
INSERT INTO surveys_next (number, process, information, answered_at)
    SELECT number, process, information, answered_at FROM surveys;

CREATE TABLE receipts_next (
    number      TEXT PRIMARY KEY,
    application TEXT NOT NULL UNIQUE REFERENCES applications_next (number),
    centre      TEXT NOT NULL,
    operator    TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,
    documents   TEXT NOT NULL
);
INSERT INTO receipts_next (number, application, centre, operator, issued_at, documents)
    SELECT number, application, centre, operator, issued_at, documents FROM receipts;

--   application  the application's id
CREATE TABLE application_steps_next (
    application      INTEGER NOT NULL REFERENCES applications_next (id),
    seq              INTEGER NOT NULL,
    step             TEXT NOT NULL,
    actor            TEXT NOT NULL,
    started_at       BIGINT NOT NULL,
    finished_at      BIGINT,
    deadline_seconds BIGINT,
    outcome          TEXT,
    PRIMARY KEY (application, seq)
);
INSERT INTO application_steps_next (application, seq, step, actor, started_at, finished_at, deadline_seconds, outcome)
    SELECT a.id, s.seq, s.step, s.actor, s.started_at, s.finished_at, s.deadline_seconds, s.outcome
    FROM application_steps s JOIN applications_next a ON a.number = s.number
    ORDER BY a.id, s.seq;

DROP TABLE application_steps;
DROP TABLE receipts;
DROP TABLE surveys;
DROP TABLE applications;
ALTER TABLE applications_next RENAME TO applications;
ALTER TABLE surveys_next RENAME TO surveys;
ALTER TABLE receipts_next RENAME TO receipts;
ALTER TABLE application_steps_next RENAME TO application_steps;
CREATE INDEX applications_centre ON applications (centre, status);
CREATE INDEX applications_status ON applications (status);
CREATE INDEX applications_intent ON applications (intent_until) WHERE intent IS NOT NULL;
CREATE INDEX receipts_issued ON receipts (issued_at);

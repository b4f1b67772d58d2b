-- Applications (the regulation's electronic requests) and their steps, timed against the
-- regulation's deadlines.
CREATE TABLE applications (
    number          TEXT PRIMARY KEY,
    process         TEXT NOT NULL,
    service         TEXT NOT NULL,
    channel         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('awaiting_documents', 'awaiting_confirmation', 'issuing', 'completed', 'refused')),
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
    updated_at      BIGINT NOT NULL
);
CREATE INDEX applications_centre ON applications (centre, status);

CREATE TABLE application_steps (
    number           TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    step             TEXT NOT NULL,
    actor            TEXT NOT NULL,
    started_at       BIGINT NOT NULL,
    finished_at      BIGINT,
    deadline_seconds BIGINT,
    outcome          TEXT,
    PRIMARY KEY (number, seq)
);

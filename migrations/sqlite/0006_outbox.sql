-- The outbox: e-mail letters and monitoring messages, written in the same transaction as the
-- change they tell of, delivered by workers in order per application and channel. `seq` numbers
-- an application's messages on a channel; a message goes out only once every earlier one of the
-- same application and channel has been received (state 'delivered').
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    channel         TEXT NOT NULL CHECK (channel IN ('mail', 'monitoring')),
    message_id      TEXT NOT NULL UNIQUE,
    application     TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    body            TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'parked')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_by      TEXT,
    claimed_until   BIGINT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    last_status     INTEGER,
    last_error      TEXT,
    UNIQUE (channel, application, seq)
);
-- Pending messages in the order they are claimed.
CREATE INDEX outbox_due ON outbox (channel, state, id);

-- Every delivery attempt: when, the receiver's HTTP status (none when it could not be reached),
-- how long it took, and the error.
CREATE TABLE outbox_attempts (
    message_id  TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    at_ms       BIGINT NOT NULL,
    http_status INTEGER,
    latency_ms  BIGINT NOT NULL,
    error       TEXT,
    instance    TEXT NOT NULL,
    PRIMARY KEY (message_id, attempt)
);

-- A new status, awaiting_registry: the state database did not answer at submission; the
-- application is kept and its registry check retried (SQLite cannot alter a CHECK: the table is
-- rebuilt).
CREATE TABLE applications_next (
    number          TEXT PRIMARY KEY,
    process         TEXT NOT NULL,
    service         TEXT NOT NULL,
    channel         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('awaiting_registry', 'awaiting_documents', 'awaiting_confirmation', 'issuing', 'completed', 'refused')),
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
INSERT INTO applications_next SELECT * FROM applications;
DROP TABLE applications;
ALTER TABLE applications_next RENAME TO applications;
CREATE INDEX applications_centre ON applications (centre, status);
CREATE INDEX applications_status ON applications (status);

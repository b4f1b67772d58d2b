-- The outbox: e-mail letters and monitoring messages, written in the same transaction as the
-- change they tell of, delivered by workers in order per application and channel. `seq` numbers
-- an application's messages on a channel; a message goes out only once every earlier one of the
-- same application and channel has been received (state 'delivered').
CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    channel         TEXT NOT NULL CHECK (channel IN ('mail', 'monitoring')),
    message_id      TEXT NOT NULL UNIQUE,
    application     TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    body            TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'parked')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_by      TEXT,
    claimed_until   BIGINT,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    UNIQUE (channel, application, seq)
);
-- Pending messages in the order they are claimed.
CREATE INDEX outbox_due ON outbox (channel, state, id);

-- Every delivery attempt: when, the receiver's HTTP status (none when it could not be reached),
-- how long it took, and the error.
CREATE TABLE outbox_attempts (
    message_id  TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    at_ms       BIGINT NOT NULL,
    http_status BIGINT,
    latency_ms  BIGINT NOT NULL,
    error       TEXT,
    instance    TEXT NOT NULL,
    PRIMARY KEY (message_id, attempt)
);

-- A new status, awaiting_registry: the state database did not answer at submission; the
-- application is kept and its registry check retried.
ALTER TABLE applications DROP CONSTRAINT applications_status_check;
ALTER TABLE applications ADD CONSTRAINT applications_status_check
    CHECK (status IN ('awaiting_registry', 'awaiting_documents', 'awaiting_confirmation', 'issuing', 'completed', 'refused'));
CREATE INDEX applications_status ON applications (status);

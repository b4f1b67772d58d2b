-- Recorded intents (issue 12): the step that issues or revokes is recorded with the status change
-- that calls for it, then done, then cleared. A driver on every instance takes up each intent
-- whose lease has run out (its worker died, or a fault stopped it) and finishes it.
--   intent        'issue' or 'revoke' while the result step is recorded but not done
--   intent_until  the lease: until then one worker has it; NULL or past, any driver may take it
--   waiting       why the application waits (awaiting_key_store), as a stable code
-- A refused application keeps the digests and sizes of the requests it was sent, not the bodies
-- (csr_digests, JSON).
--
-- SQLite cannot alter a CHECK: the table is rebuilt. surveys refers to applications, so it is
-- rebuilt too, first pointing at the new table (renaming a table rewrites the references to it),
-- and the old pair is dropped with nothing referring to it.
CREATE TABLE applications_next (
    number          TEXT PRIMARY KEY,
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
    created_at, updated_at)
SELECT number, process, service, channel, status, iin, applicant, centre, storage, auth_csr,
    sign_csr, tbs, receipt, confirmed_by, auth_serial, sign_serial, refusal_code, refusal_step, refusal_message,
    created_at, updated_at FROM applications;
CREATE TABLE surveys_next (
    number      TEXT PRIMARY KEY REFERENCES applications_next (number),
    process     TEXT NOT NULL CHECK (process IN ('not_satisfied', 'partly', 'satisfied')),
    information TEXT NOT NULL CHECK (information IN ('not_satisfied', 'partly', 'satisfied')),
    answered_at BIGINT NOT NULL
);
INSERT INTO surveys_next SELECT number, process, information, answered_at FROM surveys;
DROP TABLE surveys;
DROP TABLE applications;
ALTER TABLE applications_next RENAME TO applications;
ALTER TABLE surveys_next RENAME TO surveys;
CREATE INDEX applications_centre ON applications (centre, status);
CREATE INDEX applications_status ON applications (status);
CREATE INDEX applications_intent ON applications (intent_until) WHERE intent IS NOT NULL;

-- An application has at most one certificate of each profile that is issued or being issued:
-- an intent driven twice (a worker thought dead, a retry) cannot make a second pair.
CREATE UNIQUE INDEX certificates_application_profile ON certificates (application, profile)
    WHERE application IS NOT NULL AND status <> 'abandoned';

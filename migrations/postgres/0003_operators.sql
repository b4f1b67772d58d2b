-- Operators (regulation §15): service-centre employees who confirm applicants' requests with
-- their own signature, and administrators. Their certificates are ordinary rows of
-- `certificates`; this table says whose they are and whether the person may act.
CREATE TABLE operators (
    iin              TEXT PRIMARY KEY,
    surname          TEXT NOT NULL,
    name             TEXT NOT NULL,
    patronymic       TEXT,
    centre           TEXT NOT NULL,
    role             TEXT NOT NULL CHECK (role IN ('operator', 'administrator')),
    status           TEXT NOT NULL CHECK (status IN ('active', 'suspended', 'dismissed')),
    auth_serial      TEXT NOT NULL,
    sign_serial      TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    last_activity_at BIGINT NOT NULL,
    -- When a dismissal takes effect (its certificates are revoked as of then).
    dismissed_at     BIGINT
);
CREATE UNIQUE INDEX operators_auth ON operators (auth_serial);
CREATE UNIQUE INDEX operators_sign ON operators (sign_serial);

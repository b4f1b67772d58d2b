-- The CA core: the keys the deployment holds, and every certificate it has signed or is about
-- to sign. Invariants live here, not in code.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One row per key the CA signs with: the hierarchy (root, issuing) and its delegated signers
-- (OCSP responder, the service's message key, the operator listener's TLS key). The ceremony
-- commits by inserting these rows; a deployment without them is not initialised.
CREATE TABLE ca_keys (
    id          TEXT PRIMARY KEY,
    role        TEXT NOT NULL UNIQUE CHECK (role IN ('root', 'issuing', 'ocsp', 'service', 'tls')),
    key_store   TEXT NOT NULL,
    key_label   TEXT NOT NULL,
    algorithm   TEXT NOT NULL,
    serial      TEXT NOT NULL,
    certificate BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Boulder's order: a row is written as 'pending' with the exact TBS before any key signs it,
-- and becomes 'issued' with the certificate after. A pending row that outlives a crash is
-- 'abandoned': never delivered, and reported as revoked once revocation exists.
CREATE TABLE certificates (
    issuer      TEXT NOT NULL,
    serial      TEXT NOT NULL CHECK (length(serial) BETWEEN 2 AND 42 AND serial = lower(serial)),
    status      TEXT NOT NULL CHECK (status IN ('pending', 'issued', 'abandoned')),
    profile     TEXT NOT NULL,
    subject     TEXT NOT NULL,
    holder      TEXT NOT NULL,
    key_sha256  TEXT NOT NULL,
    not_before  BIGINT NOT NULL,
    not_after   BIGINT NOT NULL,
    tbs         BYTEA NOT NULL,
    der         BYTEA,
    application TEXT,
    created_at  BIGINT NOT NULL,
    issued_at   BIGINT,
    PRIMARY KEY (issuer, serial),
    CHECK ((status = 'issued') = (der IS NOT NULL))
);
CREATE INDEX certificates_serial ON certificates (serial);
CREATE INDEX certificates_holder ON certificates (holder);
CREATE INDEX certificates_status ON certificates (status, created_at);

-- A public key is bound to one holder for ever: the first certificate for a key claims it, and
-- a request for the same key under another subject is refused.
CREATE TABLE public_keys (
    key_sha256 TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Revocation and status publication.

-- One row per revoked certificate. revoked_at may lie in the future (a scheduled revocation:
-- it takes effect when that time comes, with no job to run). A certificateHold can be lifted:
-- lifted_at is set, and the next delta CRL says removeFromCRL.
CREATE TABLE revocations (
    issuer          TEXT NOT NULL,
    serial          TEXT NOT NULL,
    revoked_at      BIGINT NOT NULL,
    reason          INTEGER NOT NULL CHECK (reason IN (0, 1, 2, 3, 4, 5, 6, 8, 9, 10)),
    invalidity_date BIGINT,
    recorded_at     BIGINT NOT NULL,
    lifted_at       BIGINT,
    PRIMARY KEY (issuer, serial),
    CHECK (lifted_at IS NULL OR reason = 6)
) WITHOUT ROWID;
CREATE INDEX revocations_time ON revocations (issuer, revoked_at);

-- CRL numbers: one sequence per issuer, shared by full and delta CRLs, strictly increasing.
CREATE TABLE crl_numbers (
    issuer TEXT PRIMARY KEY,
    last   BIGINT NOT NULL
);

-- Every CRL ever published, kept.
CREATE TABLE crls (
    issuer      TEXT NOT NULL,
    number      BIGINT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('full', 'delta')),
    base_number BIGINT,
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL,
    entries     BIGINT NOT NULL,
    der         BLOB NOT NULL,
    PRIMARY KEY (issuer, number),
    CHECK ((kind = 'delta') = (base_number IS NOT NULL))
);

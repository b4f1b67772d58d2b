-- The time-stamping authority (RFC 3161): its key joins the CA's delegated signers, and every
-- token it issues is recorded so that the centre can answer "did you issue this?".

ALTER TABLE ca_keys DROP CONSTRAINT ca_keys_role_check;
ALTER TABLE ca_keys ADD CONSTRAINT ca_keys_role_check
    CHECK (role IN ('root', 'issuing', 'ocsp', 'service', 'tls', 'tsa'));

-- One row per time-stamp token, written (through the group-commit writer) before the TSA key
-- signs it: the token is handed out only once its row is committed. A row whose signing then
-- failed is 'abandoned' (no token with that serial exists). The serial is unique for the TSA.
CREATE TABLE timestamps (
    serial     TEXT PRIMARY KEY CHECK (length(serial) BETWEEN 2 AND 42 AND serial = lower(serial)),
    status     TEXT NOT NULL CHECK (status IN ('issued', 'abandoned')),
    gen_time   BIGINT NOT NULL,
    hash_alg   TEXT NOT NULL,
    imprint    TEXT NOT NULL,
    policy     TEXT NOT NULL,
    nonce      TEXT,
    tsa_serial TEXT NOT NULL
);
CREATE INDEX timestamps_imprint ON timestamps (imprint);

-- The time-stamping authority (RFC 3161): its key joins the CA's delegated signers, and every
-- token it issues is recorded so that the centre can answer "did you issue this?".

-- SQLite cannot change a CHECK constraint in place: the table is rebuilt with 'tsa' allowed.
-- Nothing references ca_keys, so no foreign key is disturbed.
CREATE TABLE ca_keys_new (
    id          TEXT PRIMARY KEY,
    role        TEXT NOT NULL UNIQUE CHECK (role IN ('root', 'issuing', 'ocsp', 'service', 'tls', 'tsa')),
    key_store   TEXT NOT NULL,
    key_label   TEXT NOT NULL,
    algorithm   TEXT NOT NULL,
    serial      TEXT NOT NULL,
    certificate BLOB NOT NULL,
    created_at  BIGINT NOT NULL
);
INSERT INTO ca_keys_new SELECT id, role, key_store, key_label, algorithm, serial, certificate, created_at FROM ca_keys;
DROP TABLE ca_keys;
ALTER TABLE ca_keys_new RENAME TO ca_keys;

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

-- Several instances on one database (README, "Beyond one machine"). SQLite has one instance,
-- which holds every duty; the tables are the same so that the code path is.
--
-- The instances that have started, with their heartbeat (milliseconds, the database's clock).
CREATE TABLE instances (
    id         TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    version    TEXT NOT NULL
);

-- Each periodic duty is held by one instance at a time. `fence` grows by one at every change of
-- holder; a duty's writes check, in their own transaction, that the lease still carries the
-- fence they were started under. Times in milliseconds of the database's clock.
CREATE TABLE duty_leases (
    duty        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    fence       BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- The audit chain as several chains (on SQLite there is one writer, so only 'main' is used).
-- SQLite cannot change a primary key: the table is rebuilt.
CREATE TABLE audit_chains (
    chain TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_chains (chain, seq, hash) SELECT 'main', seq, hash FROM audit_head;
DROP TABLE audit_head;
CREATE TABLE audit_next (
    chain     TEXT NOT NULL DEFAULT 'main',
    seq       BIGINT NOT NULL,
    at        BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    subject   TEXT NOT NULL,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);
INSERT INTO audit_next (chain, seq, at, kind, subject, detail, prev_hash, hash)
    SELECT 'main', seq, at, kind, subject, detail, prev_hash, hash FROM audit;
DROP TABLE audit;
ALTER TABLE audit_next RENAME TO audit;

-- Several instances on one database (README, "Beyond one machine").
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
-- fence they were started under, so a holder that was paused past its lease writes nothing once
-- another has taken over. Times in milliseconds of the database's clock.
CREATE TABLE duty_leases (
    duty        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    fence       BIGINT NOT NULL,
    acquired_at BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- The audit chain becomes several chains, so that writers do not queue on one head row: a
-- writer locks the head of a chain no other transaction holds (SKIP LOCKED), and starts a new
-- chain when every one is held. The existing records are the chain 'main'; the checkpoint signs
-- every chain's head at once.
CREATE TABLE audit_chains (
    chain TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL
);
INSERT INTO audit_chains (chain, seq, hash) SELECT 'main', seq, hash FROM audit_head;
DROP TABLE audit_head;
ALTER TABLE audit ADD COLUMN chain TEXT NOT NULL DEFAULT 'main';
ALTER TABLE audit DROP CONSTRAINT audit_pkey;
ALTER TABLE audit ADD PRIMARY KEY (chain, seq);

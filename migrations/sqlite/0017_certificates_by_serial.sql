-- The certificates' key leads with the serial: PRIMARY KEY (serial, issuer) instead of (issuer,
-- serial) and the index on serial alone, which served the lookups by serial (OCSP, revocation, a
-- certificate's page). Serials are 159 random bits, so each of the two indexes took a write to a
-- random page for every certificate recorded: dropping one cut the WAL written per certificate
-- by about a third (BENCHMARKS.md, issue #17). Lookups by (issuer, serial) and by serial alone
-- both use the new key.
--
-- SQLite cannot change a table's key in place: the table is rebuilt, with the same columns and
-- checks. Nothing references certificates by a foreign key, and no trigger or view names it.
CREATE TABLE certificates_by_serial (
    issuer      TEXT NOT NULL,
    serial      TEXT NOT NULL CHECK (length(serial) BETWEEN 2 AND 42 AND serial = lower(serial)),
    status      TEXT NOT NULL CHECK (status IN ('pending', 'issued', 'abandoned')),
    profile     TEXT NOT NULL,
    subject     TEXT NOT NULL,
    holder      TEXT NOT NULL,
    key_sha256  TEXT NOT NULL,
    not_before  BIGINT NOT NULL,
    not_after   BIGINT NOT NULL,
    tbs         BLOB NOT NULL,
    der         BLOB,
    application TEXT,
    created_at  BIGINT NOT NULL,
    issued_at   BIGINT,
    PRIMARY KEY (serial, issuer),
    CHECK ((status = 'issued') = (der IS NOT NULL))
);
INSERT INTO certificates_by_serial (issuer, serial, status, profile, subject, holder, key_sha256, not_before,
        not_after, tbs, der, application, created_at, issued_at)
    SELECT issuer, serial, status, profile, subject, holder, key_sha256, not_before, not_after, tbs, der,
        application, created_at, issued_at
    FROM certificates ORDER BY rowid;
DROP TABLE certificates;
ALTER TABLE certificates_by_serial RENAME TO certificates;
CREATE INDEX certificates_holder ON certificates (holder);
CREATE INDEX certificates_status ON certificates (status, created_at);
CREATE UNIQUE INDEX certificates_application_profile ON certificates (application, profile)
    WHERE application IS NOT NULL AND status <> 'abandoned';

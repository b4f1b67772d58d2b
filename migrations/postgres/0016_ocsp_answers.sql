-- OCSP answers signed ahead (issue #16): one signed, no-nonce answer per certificate of the
-- issuing CA, kept by the pre-signer and served by every instance, status instances on a
-- replica included, without a signature per request.
--
-- Keyed by serial (the issuing CA's serials are unique). Writers upsert and the answer made
-- from the newest reading of the status wins (as_of_ms), so that several pre-signers running
-- at once, or an old one paused, can never put an older status back.
CREATE TABLE ocsp_answers (
    serial      TEXT PRIMARY KEY,
    issuer      TEXT NOT NULL,
    -- What the answer says: 'good', or 'revoked <time> <reason>'.
    state       TEXT NOT NULL,
    as_of_ms    BIGINT NOT NULL,
    this_update BIGINT NOT NULL,
    next_update BIGINT NOT NULL,
    -- The certificate's notAfter: answers are dropped a grace period after it.
    not_after   BIGINT NOT NULL,
    der         BYTEA NOT NULL
);
CREATE INDEX ocsp_answers_next_update ON ocsp_answers (next_update);
CREATE INDEX ocsp_answers_not_after ON ocsp_answers (not_after);

-- The pre-signer asks every quarter second what changed: these keep that a range read.
CREATE INDEX revocations_recorded ON revocations (recorded_at);
CREATE INDEX revocations_lifted ON revocations (lifted_at);

-- Recorded intents (issue 12): the step that issues or revokes is recorded with the status change
-- that calls for it, then done, then cleared. A driver on every instance takes up each intent
-- whose lease has run out (its worker died, or a fault stopped it) and finishes it.
--   intent        'issue' or 'revoke' while the result step is recorded but not done
--   intent_until  the lease: until then one worker has it; NULL or past, any driver may take it
--   waiting       why the application waits (awaiting_key_store), as a stable code
-- A refused application keeps the digests and sizes of the requests it was sent, not the bodies
-- (csr_digests, JSON).
ALTER TABLE applications ADD COLUMN intent TEXT CHECK (intent IN ('issue', 'revoke'));
ALTER TABLE applications ADD COLUMN intent_until BIGINT;
ALTER TABLE applications ADD COLUMN waiting TEXT;
ALTER TABLE applications ADD COLUMN csr_digests TEXT;
ALTER TABLE applications DROP CONSTRAINT applications_status_check;
ALTER TABLE applications ADD CONSTRAINT applications_status_check
    CHECK (status IN ('awaiting_registry', 'awaiting_documents', 'awaiting_confirmation', 'issuing',
                      'awaiting_key_store', 'completed', 'refused'));
CREATE INDEX applications_intent ON applications (intent_until) WHERE intent IS NOT NULL;

-- An application has at most one certificate of each profile that is issued or being issued:
-- an intent driven twice (a worker thought dead, a retry) cannot make a second pair.
CREATE UNIQUE INDEX certificates_application_profile ON certificates (application, profile)
    WHERE application IS NOT NULL AND status <> 'abandoned';

-- Receipts and the document archive (regulation §15.4, §20): the receipt an operator gives at the
-- identity step, with the documents seen (kind, and number when given: kept in full here for the
-- archive, shown masked in every view), kept for the archival period (`[archive]
-- retention_days`). Only the retention sweep deletes a row, and only one issued before its
-- period began: `DELETE … WHERE issued_at < now - period`.
--   number      the receipt's number, `R-` and the application's: one receipt per application
--   centre      the centre that accepted the documents (the archive is listed per centre)
--   operator    the IIN of the operator who gave it
--   documents   JSON: [{"kind", "number"?}]
CREATE TABLE receipts (
    number      TEXT PRIMARY KEY,
    application TEXT NOT NULL UNIQUE REFERENCES applications (number),
    centre      TEXT NOT NULL,
    operator    TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,
    documents   TEXT NOT NULL
);
CREATE INDEX receipts_issued ON receipts (issued_at);

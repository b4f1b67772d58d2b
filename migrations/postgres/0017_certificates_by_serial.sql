-- The certificates' key leads with the serial: PRIMARY KEY (serial, issuer) instead of (issuer,
-- serial) and the index on serial alone, which served the lookups by serial (OCSP, revocation, a
-- certificate's page). Serials are 159 random bits, so each of the two indexes took a write to a
-- random page for every certificate recorded; one serves both kinds of lookup.
ALTER TABLE certificates DROP CONSTRAINT certificates_pkey;
ALTER TABLE certificates ADD PRIMARY KEY (serial, issuer);
DROP INDEX certificates_serial;

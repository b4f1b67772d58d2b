-- The quality survey of the regulation's appendix 4: two questions (the process and its result;
-- the information about the procedure), three levels each, one answer per application, given
-- by its applicant once the application is completed or refused.
CREATE TABLE surveys (
    number      TEXT PRIMARY KEY REFERENCES applications (number),
    process     TEXT NOT NULL CHECK (process IN ('not_satisfied', 'partly', 'satisfied')),
    information TEXT NOT NULL CHECK (information IN ('not_satisfied', 'partly', 'satisfied')),
    answered_at BIGINT NOT NULL
);

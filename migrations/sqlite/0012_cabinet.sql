-- The citizen's personal cabinet: sign-in challenges, sessions, and the expiry reminders sent.

-- A challenge the service handed out for one sign-in. It is public (the page signs it), so it is
-- kept as given; `used_at` is set by the first sign-in that names it, whatever its outcome, so a
-- challenge is spent once: `UPDATE … WHERE used_at IS NULL` is the only way to take it.
CREATE TABLE cabinet_challenges (
    challenge  TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX cabinet_challenges_expiry ON cabinet_challenges (expires_at);

-- A signed-in holder. The cookie carries a random token; only its SHA-256 is kept, so a copy of
-- the database opens no session. `ended_at`: signed out.
CREATE TABLE cabinet_sessions (
    token_sha256 TEXT PRIMARY KEY,
    iin          TEXT NOT NULL,
    certificate  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    ended_at     BIGINT
);

-- One row per reminder letter: the pair an application issued, and the days before expiry the
-- letter was for (30, 7). The primary key makes each reminder go out once; the row is written in
-- the same transaction as the letter's outbox message.
CREATE TABLE expiry_reminders (
    application TEXT NOT NULL,
    days        BIGINT NOT NULL,
    sent_at     BIGINT NOT NULL,
    PRIMARY KEY (application, days)
);

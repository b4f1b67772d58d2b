-- Retention of the outbox (README, "Monitoring"): delivered messages and their attempts are
-- removed after `outbox.retention_days`; the duty finds them by this index.
CREATE INDEX outbox_delivered ON outbox (state, delivered_at);

-- The counts /metrics shows, kept on write instead of counted on every scrape: a change to the
-- outbox adds a row of differences, the retention duty folds them into `outbox_tally`, and a
-- reader adds the two (the same tables as on PostgreSQL, where one counter row would be a hot
-- row).
CREATE TABLE outbox_tally (
    channel TEXT NOT NULL,
    state   TEXT NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (channel, state)
);
INSERT INTO outbox_tally (channel, state, n)
    SELECT c.channel, s.state, (SELECT COUNT(*) FROM outbox o WHERE o.channel = c.channel AND o.state = s.state)
    FROM (SELECT 'mail' AS channel UNION ALL SELECT 'monitoring') c,
         (SELECT 'pending' AS state UNION ALL SELECT 'delivered' UNION ALL SELECT 'parked') s;

CREATE TABLE outbox_tally_delta (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    state   TEXT NOT NULL,
    d       BIGINT NOT NULL
);

CREATE TRIGGER outbox_tally_insert AFTER INSERT ON outbox BEGIN
    INSERT INTO outbox_tally_delta (channel, state, d) VALUES (NEW.channel, NEW.state, 1);
END;
CREATE TRIGGER outbox_tally_delete AFTER DELETE ON outbox BEGIN
    INSERT INTO outbox_tally_delta (channel, state, d) VALUES (OLD.channel, OLD.state, -1);
END;
CREATE TRIGGER outbox_tally_update AFTER UPDATE OF state ON outbox WHEN OLD.state <> NEW.state BEGIN
    INSERT INTO outbox_tally_delta (channel, state, d) VALUES (OLD.channel, OLD.state, -1);
    INSERT INTO outbox_tally_delta (channel, state, d) VALUES (NEW.channel, NEW.state, 1);
END;

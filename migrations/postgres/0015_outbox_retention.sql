-- Retention of the outbox (README, "Monitoring"): delivered messages and their attempts are
-- removed after `outbox.retention_days`; the duty finds them by this index.
CREATE INDEX outbox_delivered ON outbox (state, delivered_at);

-- The counts /metrics shows, kept on write instead of counted on every scrape. A change to the
-- outbox adds a row of differences (an insert never waits for another transaction, where one
-- counter row would be a hot row every writer queues on); the retention duty folds them into
-- `outbox_tally`, and a reader adds the two.
CREATE TABLE outbox_tally (
    channel TEXT NOT NULL,
    state   TEXT NOT NULL,
    n       BIGINT NOT NULL,
    PRIMARY KEY (channel, state)
);
INSERT INTO outbox_tally (channel, state, n)
    SELECT c.channel, s.state, 0 FROM (VALUES ('mail'), ('monitoring')) AS c(channel),
        (VALUES ('pending'), ('delivered'), ('parked')) AS s(state);
UPDATE outbox_tally t SET n = x.n
    FROM (SELECT channel, state, COUNT(*) AS n FROM outbox GROUP BY channel, state) x
    WHERE t.channel = x.channel AND t.state = x.state;

CREATE TABLE outbox_tally_delta (
    id      BIGSERIAL PRIMARY KEY,
    channel TEXT NOT NULL,
    state   TEXT NOT NULL,
    d       BIGINT NOT NULL
);

CREATE FUNCTION outbox_tally_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO outbox_tally_delta (channel, state, d) VALUES (NEW.channel, NEW.state, 1);
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO outbox_tally_delta (channel, state, d) VALUES (OLD.channel, OLD.state, -1);
    ELSIF OLD.state IS DISTINCT FROM NEW.state THEN
        INSERT INTO outbox_tally_delta (channel, state, d) VALUES (OLD.channel, OLD.state, -1), (NEW.channel, NEW.state, 1);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER outbox_tally AFTER INSERT OR DELETE OR UPDATE OF state ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_tally_change();

-- Events (contract §10, issue 25): one row per change, written in the
-- change's own transaction, so an event exists if and only if its change
-- committed.
--
-- Each organization numbers its events 1, 2, 3… in commit order: a writer
-- takes the next numbers from its organization's counter row (an UPDATE,
-- whose row lock is held until commit), so a transaction that numbered
-- its events later also commits later, and a reader that keeps the last
-- number it saw never misses an event that commits after it read (a plain
-- sequence would let a later number commit first). The committer takes the
-- counter after the account locks it already holds, so posting gains no
-- wait of its own.
CREATE TABLE event_counters (
    organization_id TEXT    PRIMARY KEY REFERENCES organizations (id),
    last_sequence   BIGINT  NOT NULL
);

CREATE TABLE events (
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    sequence        BIGINT  NOT NULL,
    -- 'evt_' and 32 hex digits: the id receivers deduplicate on
    -- (webhook-id). Nothing looks an event up by it, so it has no index.
    id              TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    created_ms      BIGINT  NOT NULL,
    -- The object after the change as the API answers it, as JSON text:
    -- answered byte for byte, never re-encoded.
    data            TEXT    NOT NULL,
    PRIMARY KEY (organization_id, sequence)
);
-- Retention deletes by age.
CREATE INDEX events_by_age ON events (created_ms);

ALTER TABLE event_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_counters FORCE ROW LEVEL SECURITY;
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE events FORCE ROW LEVEL SECURITY;
CREATE POLICY organization_scope ON event_counters
    USING (organization_id = ANY (accubooks_scope()));
CREATE POLICY organization_scope ON events
    USING (organization_id = ANY (accubooks_scope()));
-- The job machinery writes `job.dead` in its own transactions
-- (`accubooks.worker`), and the retention purge runs in them too.
CREATE POLICY worker_write ON event_counters
    USING (current_setting('accubooks.worker', true) = 'on');
CREATE POLICY worker_write ON events
    USING (current_setting('accubooks.worker', true) = 'on');

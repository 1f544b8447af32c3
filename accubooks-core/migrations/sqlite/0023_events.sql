-- Events (see the PostgreSQL migration of the same name). SQLite has one
-- writer, so numbering by the counter row is in commit order trivially.
CREATE TABLE event_counters (
    organization_id TEXT    PRIMARY KEY REFERENCES organizations (id),
    last_sequence   INTEGER NOT NULL
);

CREATE TABLE events (
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    sequence        INTEGER NOT NULL,
    id              TEXT    NOT NULL,
    type            TEXT    NOT NULL,
    created_ms      BIGINT  NOT NULL,
    data            TEXT    NOT NULL,
    PRIMARY KEY (organization_id, sequence)
);
CREATE INDEX events_by_age ON events (created_ms);

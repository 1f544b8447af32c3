-- Closing a period (see the PostgreSQL migration of the same name). SQLite
-- has one writer, so the committer reads the lock date inside its
-- transaction without further locks.
ALTER TABLE organizations ADD COLUMN lock_date TEXT;
-- Kept on accounts too, as on PostgreSQL (SQLite's committer reads the
-- organization's: it is the only writer).
ALTER TABLE accounts ADD COLUMN lock_date TEXT;

CREATE TABLE settings_history (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    changed_ms      BIGINT      NOT NULL,
    changed_by      TEXT    NOT NULL,
    setting         TEXT    NOT NULL CHECK (setting IN ('lock_date')),
    old_value       TEXT,
    new_value       TEXT,
    reason          TEXT    NOT NULL CHECK (reason IN ('locked', 'reopened', 'unlocked', 'closed'))
);
CREATE INDEX settings_history_by_organization ON settings_history (organization_id, id);

ALTER TABLE journal_entries ADD COLUMN kind TEXT CHECK (kind IN ('closing'));
-- Income statements subtract the few closing entries of their period.
CREATE INDEX journal_entries_closing ON journal_entries (organization_id, entry_date)
    WHERE kind IS NOT NULL;

CREATE TABLE period_closes (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    through         TEXT    NOT NULL,
    entry_id        INTEGER NOT NULL,
    closed_ms       BIGINT      NOT NULL
);
CREATE INDEX period_closes_by_organization ON period_closes (organization_id, through);

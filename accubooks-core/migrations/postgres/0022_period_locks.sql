-- Closing a period (contract §5, issue 24).
--
-- The lock date: no change dated on or before it is posted. It is kept on
-- the organization and copied onto each of its accounts: the committer
-- locks the accounts it posts to (SELECT … FOR UPDATE), which answers the
-- latest committed version of each row, so it reads the lock date at no
-- cost; a change of the lock date updates every account of its
-- organization in the same transaction, after locking the organization's
-- row (no account is opened meanwhile), so a posting never slips in under
-- a lock date being set.
ALTER TABLE organizations ADD COLUMN lock_date DATE;
ALTER TABLE accounts ADD COLUMN lock_date DATE;

-- Every change of the lock date, by whom and why: a reopened period shows.
CREATE TABLE settings_history (
    id              BIGSERIAL   PRIMARY KEY,
    organization_id TEXT        NOT NULL REFERENCES organizations (id),
    changed_ms      BIGINT      NOT NULL,
    changed_by      TEXT        NOT NULL,
    setting         TEXT        NOT NULL CHECK (setting IN ('lock_date')),
    old_value       TEXT,
    new_value       TEXT,
    reason          TEXT        NOT NULL CHECK (reason IN ('locked', 'reopened', 'unlocked', 'closed'))
);
CREATE INDEX settings_history_by_organization ON settings_history (organization_id, id);

-- NULL for an ordinary entry; 'closing' for a year-end closing entry, which
-- income statements leave out.
ALTER TABLE journal_entries ADD COLUMN kind TEXT CHECK (kind IN ('closing'));
-- Income statements subtract the few closing entries of their period.
CREATE INDEX journal_entries_closing ON journal_entries (organization_id, entry_date)
    WHERE kind IS NOT NULL;

-- One row per close. A period closed and still locked cannot be closed
-- again; one reopened (its lock date moved back) can, and that close moves
-- only what changed since. Closes of one organization are serialized (an
-- advisory lock in the committer's transaction) and each checks that no
-- other committed since it read the balances.
CREATE TABLE period_closes (
    id              BIGSERIAL   PRIMARY KEY,
    organization_id TEXT        NOT NULL REFERENCES organizations (id),
    through         DATE        NOT NULL,
    entry_id        BIGINT      NOT NULL,
    closed_ms       BIGINT      NOT NULL
);
CREATE INDEX period_closes_by_organization ON period_closes (organization_id, through);

ALTER TABLE settings_history ENABLE ROW LEVEL SECURITY;
ALTER TABLE settings_history FORCE ROW LEVEL SECURITY;
ALTER TABLE period_closes ENABLE ROW LEVEL SECURITY;
ALTER TABLE period_closes FORCE ROW LEVEL SECURITY;
CREATE POLICY organization_scope ON settings_history
    USING (organization_id = ANY (accubooks_scope()));
CREATE POLICY organization_scope ON period_closes
    USING (organization_id = ANY (accubooks_scope()));

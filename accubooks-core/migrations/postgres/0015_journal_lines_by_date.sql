-- An account's lines in date order, from an index: its history and the
-- general ledger page through (account, date, entry, line) and read only
-- the page, where they joined every line of the account to its entry and
-- sorted. Each line keeps its entry's date (entries are immutable, so the
-- copy never goes stale). The new index replaces (account_id, entry_id):
-- a posting still maintains two indexes on journal_lines.

-- Backfill as the owner, past the policies and the append-only trigger
-- (both restored below, in the same transaction).
ALTER TABLE journal_lines NO FORCE ROW LEVEL SECURITY;
ALTER TABLE journal_entries NO FORCE ROW LEVEL SECURITY;
ALTER TABLE accounts NO FORCE ROW LEVEL SECURITY;
ALTER TABLE journal_lines DISABLE TRIGGER journal_lines_append_only;

ALTER TABLE journal_lines ADD COLUMN entry_date DATE;
UPDATE journal_lines AS l SET entry_date = e.entry_date
FROM journal_entries AS e WHERE e.id = l.entry_id;
ALTER TABLE journal_lines ALTER COLUMN entry_date SET NOT NULL;

ALTER TABLE journal_lines ENABLE TRIGGER journal_lines_append_only;
ALTER TABLE journal_lines FORCE ROW LEVEL SECURITY;
ALTER TABLE journal_entries FORCE ROW LEVEL SECURITY;
ALTER TABLE accounts FORCE ROW LEVEL SECURITY;

CREATE INDEX journal_lines_by_account_date
    ON journal_lines (account_id, entry_date, entry_id, line_no);
DROP INDEX journal_lines_by_account;

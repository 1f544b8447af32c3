-- An account's lines in date order, from an index (see the PostgreSQL
-- migration of the same name). SQLite cannot make an added column NOT
-- NULL; the committer always writes it.

DROP TRIGGER journal_lines_no_update;

ALTER TABLE journal_lines ADD COLUMN entry_date TEXT;
UPDATE journal_lines SET entry_date =
    (SELECT e.entry_date FROM journal_entries e WHERE e.id = journal_lines.entry_id);

CREATE TRIGGER journal_lines_no_update BEFORE UPDATE ON journal_lines
BEGIN
    SELECT RAISE(ABORT, 'posted journal entries are immutable; post a reversal instead');
END;

CREATE INDEX journal_lines_by_account_date
    ON journal_lines (account_id, entry_date, entry_id, line_no);
DROP INDEX journal_lines_by_account;

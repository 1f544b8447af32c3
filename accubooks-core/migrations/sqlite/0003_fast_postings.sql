-- Cheaper postings; the same data model as the PostgreSQL migration of the
-- same name (see there for the measurements and the reasoning).

-- Lines are identified by their entry and position (line_no), like on
-- PostgreSQL, so both stores list an entry's lines the same way. SQLite
-- cannot drop a column or a constraint in place, so the table is rebuilt
-- (nothing references it). Its foreign keys go, as on PostgreSQL: the
-- committer writes a line's entry in the same transaction and checks its
-- accounts exist, and neither entries nor accounts are ever deleted.
CREATE TABLE journal_lines_v3 (
    entry_id   INTEGER NOT NULL,
    line_no    INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    amount     INTEGER NOT NULL CHECK (amount <> 0),
    PRIMARY KEY (entry_id, line_no)
) WITHOUT ROWID;
INSERT INTO journal_lines_v3 (entry_id, line_no, account_id, amount)
SELECT entry_id, row_number() OVER (PARTITION BY entry_id ORDER BY id), account_id, amount
FROM journal_lines;
DROP TABLE journal_lines;
ALTER TABLE journal_lines_v3 RENAME TO journal_lines;
CREATE INDEX journal_lines_by_account ON journal_lines (account_id, entry_id);

-- journal_entries keeps its table: rebuilding it would mean rebuilding every
-- table that references it. Its UNIQUE (reverses) already behaves like
-- PostgreSQL's new partial index (SQLite lets NULLs repeat), and the
-- organization foreign key it keeps is never violated by the application.

-- Posted entries are immutable, as on PostgreSQL (SQLite has no TRUNCATE).
CREATE TRIGGER journal_entries_no_update BEFORE UPDATE ON journal_entries
BEGIN
    SELECT RAISE(ABORT, 'posted journal entries are immutable; post a reversal instead');
END;
CREATE TRIGGER journal_entries_no_delete BEFORE DELETE ON journal_entries
BEGIN
    SELECT RAISE(ABORT, 'posted journal entries are immutable; post a reversal instead');
END;
CREATE TRIGGER journal_lines_no_update BEFORE UPDATE ON journal_lines
BEGIN
    SELECT RAISE(ABORT, 'posted journal entries are immutable; post a reversal instead');
END;
CREATE TRIGGER journal_lines_no_delete BEFORE DELETE ON journal_lines
BEGIN
    SELECT RAISE(ABORT, 'posted journal entries are immutable; post a reversal instead');
END;

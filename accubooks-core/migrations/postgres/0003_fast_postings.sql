-- Cheaper postings. Bulk-inserting entries and lines cost mostly per-row
-- work that guarded nothing the posting path does not already guarantee:
-- foreign-key triggers (one SPI query per row), a sequence call per line and
-- a third index on journal_lines. Measured in psql, 100,000 entries with
-- 200,000 lines: 7.3 s before, 2.6 s after.

-- A line's entry is inserted by the same committer transaction, just before
-- its lines, and entries are never deleted: the check per line was redundant.
ALTER TABLE journal_lines DROP CONSTRAINT journal_lines_entry_id_fkey;

-- The committer locks every account a group touches (SELECT ... FOR UPDATE)
-- and fails the group unless all of them exist; accounts are never deleted.
ALTER TABLE journal_lines DROP CONSTRAINT journal_lines_account_id_fkey;

-- An entry's organization is the one of its accounts (validation looks the
-- accounts up by organization, and accounts.organization_id keeps its
-- foreign key); organizations are never deleted.
ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_organization_id_fkey;

-- At most one reversal per entry, as before, but only reversals are indexed:
-- the NULL of every ordinary entry no longer costs an index insertion.
ALTER TABLE journal_entries DROP CONSTRAINT journal_entries_reverses_key;
CREATE UNIQUE INDEX journal_entries_reversal ON journal_entries (reverses)
    WHERE reverses IS NOT NULL;

-- Lines are identified by their entry and position: no sequence call per
-- line, and the primary key doubles as the by-entry index, so a line insert
-- maintains two indexes instead of three. Existing lines keep their order.
ALTER TABLE journal_lines ADD COLUMN line_no INTEGER;
UPDATE journal_lines AS l SET line_no = n.line_no
FROM (SELECT id, row_number() OVER (PARTITION BY entry_id ORDER BY id) AS line_no
      FROM journal_lines) AS n
WHERE n.id = l.id;
ALTER TABLE journal_lines ALTER COLUMN line_no SET NOT NULL;
ALTER TABLE journal_lines DROP COLUMN id;
ALTER TABLE journal_lines ADD PRIMARY KEY (entry_id, line_no);
DROP INDEX journal_lines_by_entry;

-- Posted entries are immutable: a database fact, not a convention. This is
-- what makes the foreign keys dropped above redundant (no row they point to
-- or from can go away), and it costs nothing on INSERT (statement-level,
-- fires only on UPDATE, DELETE and TRUNCATE). Created last: the backfill
-- of line_no above is this migration's own, and the last, UPDATE.
CREATE FUNCTION journal_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'posted journal entries are immutable (% on %); post a reversal instead',
        TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER journal_entries_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON journal_entries
    FOR EACH STATEMENT EXECUTE FUNCTION journal_is_append_only();
CREATE TRIGGER journal_lines_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON journal_lines
    FOR EACH STATEMENT EXECUTE FUNCTION journal_is_append_only();

-- Metadata on journal entries (see the PostgreSQL migration of the same
-- name): the JSON object as text, NULL when the entry carries none.
ALTER TABLE journal_entries ADD COLUMN metadata TEXT;

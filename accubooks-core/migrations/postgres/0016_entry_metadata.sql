-- Metadata on journal entries (contract §5): string keys and values, set
-- when the entry is posted and immutable like the rest of it. NULL when the
-- entry carries none (most do not: no bytes for them). The journal list
-- filters on it (`metadata[KEY]=VALUE`) with containment, which this index
-- answers without reading the entries that lack the pair.
ALTER TABLE journal_entries ADD COLUMN metadata JSONB;
CREATE INDEX journal_entries_metadata ON journal_entries USING gin (metadata jsonb_path_ops)
    WHERE metadata IS NOT NULL;

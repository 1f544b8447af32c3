-- Metadata on invoices (contract §5): given when the draft is created (a
-- recurring invoice's occurrences copy their template's, kept in its JSON
-- `template`), answered on every invoice, credit notes `{}`. NULL when
-- none. An organization may have many invoices, so the list's metadata
-- filter is answered by this index.
ALTER TABLE invoices ADD COLUMN metadata JSONB;
CREATE INDEX invoices_metadata ON invoices USING gin (metadata jsonb_path_ops)
    WHERE metadata IS NOT NULL;

-- Metadata on accounts (contract §5): string keys and values, given when
-- the account is opened and replaceable later. NULL when none. A chart of
-- accounts is small (it is read whole by the trial balance), so its
-- filter needs no index.
ALTER TABLE accounts ADD COLUMN metadata JSONB;

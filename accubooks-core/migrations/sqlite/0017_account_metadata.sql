-- Metadata on accounts (see the PostgreSQL migration of the same name).
ALTER TABLE accounts ADD COLUMN metadata TEXT;

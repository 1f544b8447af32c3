-- Metadata on invoices (see the PostgreSQL migration of the same name).
ALTER TABLE invoices ADD COLUMN metadata TEXT;

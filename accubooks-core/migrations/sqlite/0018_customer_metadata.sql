-- Metadata on customers (see the PostgreSQL migration of the same name).
ALTER TABLE customers ADD COLUMN metadata TEXT;

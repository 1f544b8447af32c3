-- Metadata on customers (contract §5): given when the customer is added,
-- replaceable. NULL when none. An organization may have many customers,
-- so the list's metadata filter is answered by this index.
ALTER TABLE customers ADD COLUMN metadata JSONB;
CREATE INDEX customers_metadata ON customers USING gin (metadata jsonb_path_ops)
    WHERE metadata IS NOT NULL;

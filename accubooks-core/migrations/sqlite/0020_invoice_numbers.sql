-- Invoice numbers follow issue dates (see the PostgreSQL migration of the
-- same name).
CREATE TABLE invoice_numbers (
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    kind            TEXT    NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
    last_number     INTEGER NOT NULL CHECK (last_number > 0),
    last_date       TEXT    NOT NULL,
    PRIMARY KEY (organization_id, kind)
);

ALTER TABLE invoices ADD COLUMN number INTEGER;
CREATE UNIQUE INDEX invoices_number ON invoices (organization_id, kind, number)
    WHERE number IS NOT NULL;

UPDATE invoices SET number = (
    SELECT n.number FROM (
        SELECT id, row_number() OVER (PARTITION BY organization_id, kind
                                      ORDER BY issue_date, id) AS number
        FROM invoices WHERE issue_date IS NOT NULL) AS n
    WHERE n.id = invoices.id)
WHERE issue_date IS NOT NULL;
INSERT INTO invoice_numbers (organization_id, kind, last_number, last_date)
SELECT organization_id, kind, max(number), max(issue_date)
FROM invoices WHERE number IS NOT NULL GROUP BY organization_id, kind;

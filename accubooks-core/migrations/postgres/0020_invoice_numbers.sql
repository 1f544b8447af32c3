-- Invoice numbers follow issue dates (contract §5): consecutive per
-- organization and kind (INV-, CN-) in the order of their issue dates,
-- with no gaps. A number is given when the document is issued, in the
-- committer's transaction, from the (organization, kind) counter below; an
-- issue dated before `last_date` is refused, so numbers never invert.
-- Drafts have none (NULL).
CREATE TABLE invoice_numbers (
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    kind            TEXT    NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
    last_number     BIGINT  NOT NULL CHECK (last_number > 0),
    last_date       DATE    NOT NULL,
    PRIMARY KEY (organization_id, kind)
);
ALTER TABLE invoice_numbers ENABLE ROW LEVEL SECURITY;
ALTER TABLE invoice_numbers FORCE ROW LEVEL SECURITY;
CREATE POLICY organization_scope ON invoice_numbers
    USING (organization_id = ANY (accubooks_scope()));

ALTER TABLE invoices ADD COLUMN number BIGINT;
CREATE UNIQUE INDEX invoices_number ON invoices (organization_id, kind, number)
    WHERE number IS NOT NULL;

-- Number what was issued before, per organization and kind in (issue
-- date, id) order, and start the counters there. As the owner, past the
-- policies (restored below, in the same transaction).
ALTER TABLE invoices NO FORCE ROW LEVEL SECURITY;
ALTER TABLE invoice_numbers NO FORCE ROW LEVEL SECURITY;
UPDATE invoices AS i SET number = n.number
FROM (SELECT id, row_number() OVER (PARTITION BY organization_id, kind
                                    ORDER BY issue_date, id) AS number
      FROM invoices WHERE issue_date IS NOT NULL) AS n
WHERE i.id = n.id;
INSERT INTO invoice_numbers (organization_id, kind, last_number, last_date)
SELECT organization_id, kind, max(number), max(issue_date)
FROM invoices WHERE number IS NOT NULL GROUP BY organization_id, kind;
ALTER TABLE invoices FORCE ROW LEVEL SECURITY;
ALTER TABLE invoice_numbers FORCE ROW LEVEL SECURITY;

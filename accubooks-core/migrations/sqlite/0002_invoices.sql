-- Customers, invoices and credit notes, and payments. Totals are computed
-- once, when the draft is created, with the organization's rounding policy.

CREATE TABLE customers (
    id              INTEGER PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    name            TEXT    NOT NULL,
    email           TEXT,
    created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX customers_by_org ON customers (organization_id, id);

CREATE TABLE invoices (
    id              INTEGER PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    customer_id     INTEGER NOT NULL REFERENCES customers (id),
    kind            TEXT    NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
    credits_invoice INTEGER REFERENCES invoices (id),
    currency        TEXT    NOT NULL,
    status          TEXT    NOT NULL
        CHECK (status IN ('draft', 'issued', 'partially_paid', 'paid', 'void')),
    due_date        TEXT    NOT NULL,
    issue_date      TEXT,
    void_date       TEXT,
    tax_rounding    TEXT    NOT NULL,
    subtotal        INTEGER NOT NULL CHECK (subtotal >= 0),
    tax             INTEGER NOT NULL CHECK (tax >= 0),
    total           INTEGER NOT NULL CHECK (total = subtotal + tax),
    paid            INTEGER NOT NULL DEFAULT 0 CHECK (paid >= 0),
    credited        INTEGER NOT NULL DEFAULT 0 CHECK (credited >= 0),
    issue_entry_id  INTEGER REFERENCES journal_entries (id),
    void_entry_id   INTEGER REFERENCES journal_entries (id),
    created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    CHECK (paid + credited <= total)
);
CREATE INDEX invoices_by_org ON invoices (organization_id, id);
CREATE INDEX invoices_by_credited ON invoices (credits_invoice);

CREATE TABLE invoice_lines (
    id          INTEGER PRIMARY KEY,
    invoice_id  INTEGER NOT NULL REFERENCES invoices (id),
    description TEXT    NOT NULL,
    quantity    TEXT    NOT NULL,
    unit_price  INTEGER NOT NULL,
    tax_rate    TEXT    NOT NULL,
    amount      INTEGER NOT NULL,
    tax         INTEGER NOT NULL
);
CREATE INDEX invoice_lines_by_invoice ON invoice_lines (invoice_id);

CREATE TABLE payments (
    id              INTEGER PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    invoice_id      INTEGER NOT NULL REFERENCES invoices (id),
    amount          INTEGER NOT NULL CHECK (amount > 0),
    payment_date    TEXT    NOT NULL,
    entry_id        INTEGER NOT NULL REFERENCES journal_entries (id),
    created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX payments_by_invoice ON payments (invoice_id);

-- Customers, invoices and credit notes, and payments. Totals are computed
-- once, when the draft is created, with the organization's rounding policy.

CREATE TABLE customers (
    id              BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id TEXT        NOT NULL REFERENCES organizations (id),
    name            TEXT        NOT NULL,
    email           TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX customers_by_org ON customers (organization_id, id);

CREATE TABLE invoices (
    id              BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id TEXT        NOT NULL REFERENCES organizations (id),
    customer_id     BIGINT      NOT NULL REFERENCES customers (id),
    kind            TEXT        NOT NULL CHECK (kind IN ('invoice', 'credit_note')),
    -- For a credit note: the invoice it credits.
    credits_invoice BIGINT      REFERENCES invoices (id),
    currency        TEXT        NOT NULL,
    status          TEXT        NOT NULL
        CHECK (status IN ('draft', 'issued', 'partially_paid', 'paid', 'void')),
    due_date        DATE        NOT NULL,
    issue_date      DATE,
    void_date       DATE,
    tax_rounding    TEXT        NOT NULL,
    subtotal        BIGINT      NOT NULL CHECK (subtotal >= 0),
    tax             BIGINT      NOT NULL CHECK (tax >= 0),
    total           BIGINT      NOT NULL CHECK (total = subtotal + tax),
    paid            BIGINT      NOT NULL DEFAULT 0 CHECK (paid >= 0),
    credited        BIGINT      NOT NULL DEFAULT 0 CHECK (credited >= 0),
    issue_entry_id  BIGINT      REFERENCES journal_entries (id),
    void_entry_id   BIGINT      REFERENCES journal_entries (id),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (paid + credited <= total)
);
CREATE INDEX invoices_by_org ON invoices (organization_id, id);
CREATE INDEX invoices_by_credited ON invoices (credits_invoice);

CREATE TABLE invoice_lines (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    invoice_id  BIGINT NOT NULL REFERENCES invoices (id),
    description TEXT   NOT NULL,
    quantity    TEXT   NOT NULL,
    unit_price  BIGINT NOT NULL,
    tax_rate    TEXT   NOT NULL,
    amount      BIGINT NOT NULL,
    tax         BIGINT NOT NULL
);
CREATE INDEX invoice_lines_by_invoice ON invoice_lines (invoice_id);

CREATE TABLE payments (
    id              BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id TEXT        NOT NULL REFERENCES organizations (id),
    invoice_id      BIGINT      NOT NULL REFERENCES invoices (id),
    amount          BIGINT      NOT NULL CHECK (amount > 0),
    payment_date    DATE        NOT NULL,
    entry_id        BIGINT      NOT NULL REFERENCES journal_entries (id),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX payments_by_invoice ON payments (invoice_id);

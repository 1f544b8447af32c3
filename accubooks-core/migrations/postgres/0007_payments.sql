-- Stripe payments (contract section 8). A PaymentIntent is asked for an
-- invoice's open amount and kept here; Stripe's webhooks then become jobs
-- (keyed by the event id, so a replayed event is one job) that post the
-- payment once per intent and each refund once: every posting moves this
-- row from the state it read to the next in the posting's own transaction,
-- which only one can do.
--
-- The jobs of Stripe's webhooks run on a new queue, `payments`, and the
-- imports of bank feeds on `bank-feeds`.
ALTER TABLE jobs DROP CONSTRAINT jobs_queue_check,
    ADD CONSTRAINT jobs_queue_check CHECK (queue IN ('recurring-invoices', 'payroll-processing',
        'report-generation', 'payments', 'bank-feeds'));


CREATE TABLE stripe_payment_intents (
    -- Stripe's id, `pi_…`.
    id               TEXT    PRIMARY KEY,
    organization_id  TEXT    NOT NULL REFERENCES organizations (id),
    invoice_id       BIGINT  NOT NULL REFERENCES invoices (id),
    -- Stripe's minor units (its own exponent of the currency).
    amount           BIGINT  NOT NULL CHECK (amount > 0),
    currency         TEXT    NOT NULL,
    -- Sealed (see the `sealed` module): never kept in clear.
    client_secret    TEXT    NOT NULL,
    -- `open` until its payment is posted, then `succeeded`.
    status           TEXT    NOT NULL CHECK (status IN ('open', 'succeeded')),
    -- What was posted: the payment, in the invoice's minor units, and the
    -- refunds, in Stripe's (the charge's cumulative `amount_refunded`).
    received         BIGINT  NOT NULL DEFAULT 0,
    refunded         BIGINT  NOT NULL DEFAULT 0,
    payment_entry_id BIGINT  REFERENCES journal_entries (id),
    created_ms       BIGINT  NOT NULL
);
CREATE INDEX stripe_payment_intents_by_invoice
    ON stripe_payment_intents (organization_id, invoice_id);

-- Row-level security as in 0004; the webhook finds an intent's
-- organization with the worker scope (it arrives with no caller).
ALTER TABLE stripe_payment_intents ENABLE ROW LEVEL SECURITY;
ALTER TABLE stripe_payment_intents FORCE ROW LEVEL SECURITY;
CREATE POLICY organization_scope ON stripe_payment_intents
    USING (organization_id = ANY (accubooks_scope())
           OR current_setting('accubooks.worker', true) = 'on');

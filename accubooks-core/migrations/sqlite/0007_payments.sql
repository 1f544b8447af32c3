-- no-transaction
-- Stripe payments (contract section 8). A PaymentIntent is asked for an
-- invoice's open amount and kept here; Stripe's webhooks then become jobs
-- (keyed by the event id, so a replayed event is one job) that post the
-- payment once per intent and each refund once: every posting moves this
-- row from the state it read to the next in the posting's own transaction,
-- which only one can do.
--
-- The jobs of Stripe's webhooks run on a new queue, `payments`, and the
-- imports of bank feeds on `bank-feeds`. SQLite cannot change a CHECK
-- constraint, so the jobs table is rebuilt the way SQLite's documentation
-- of ALTER TABLE prescribes: with foreign keys off (report_jobs and
-- payroll_runs refer to jobs), in one transaction of this migration's own.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

CREATE TABLE jobs_rebuilt (
    id              INTEGER PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    queue           TEXT    NOT NULL
        CHECK (queue IN ('recurring-invoices', 'payroll-processing', 'report-generation',
                         'payments', 'bank-feeds')),
    kind            TEXT    NOT NULL,
    -- The unit of work: a second job with the same key is the same job.
    unique_key      TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL
        CHECK (status IN ('pending', 'queued', 'running', 'succeeded', 'failed', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    run_after_ms    BIGINT  NOT NULL,
    lease_owner     TEXT,
    lease_until_ms  BIGINT,
    error_code      TEXT,
    error_kind      TEXT,
    created_ms      BIGINT  NOT NULL,
    updated_ms      BIGINT  NOT NULL,
    UNIQUE (organization_id, unique_key)
);
INSERT INTO jobs_rebuilt SELECT * FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_rebuilt RENAME TO jobs;
CREATE INDEX jobs_open ON jobs (queue, status, run_after_ms) WHERE status <> 'succeeded';
CREATE INDEX jobs_by_org ON jobs (organization_id, id);


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

COMMIT;
PRAGMA foreign_keys = ON;

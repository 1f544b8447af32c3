-- Background jobs (contract section 6), recurring invoices and report jobs
-- (section 7).
--
-- `jobs` is the outbox and the record of every job: a job is inserted in the
-- same transaction as the change that asks for it, relayed to Redis when
-- Redis is reachable, and kept until it is done. Times are milliseconds since
-- the Unix epoch, compared the same way on both backends.

ALTER TABLE organizations ADD COLUMN timezone TEXT NOT NULL DEFAULT 'UTC';

CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    queue           TEXT    NOT NULL
        CHECK (queue IN ('recurring-invoices', 'payroll-processing', 'report-generation')),
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
-- What the relay, the workers and the monitor look at: every job not yet
-- succeeded (the table's few open rows, however many it keeps as history).
CREATE INDEX jobs_open ON jobs (queue, status, run_after_ms) WHERE status <> 'succeeded';
CREATE INDEX jobs_by_org ON jobs (organization_id, id);

CREATE TABLE recurring_invoices (
    id              INTEGER PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    customer_id     INTEGER NOT NULL REFERENCES customers (id),
    -- The invoice lines and currency, as the client gave them (JSON).
    template        TEXT    NOT NULL,
    frequency       TEXT    NOT NULL CHECK (frequency IN ('weekly', 'monthly', 'quarterly', 'yearly')),
    interval_count  INTEGER NOT NULL,
    start_date      TEXT    NOT NULL,
    end_date        TEXT,
    max_count       INTEGER,
    due_days        INTEGER NOT NULL,
    auto_issue      INTEGER NOT NULL,
    -- The index and date of the next occurrence not yet asked for; NULL
    -- once the schedule has ended.
    next_index      INTEGER NOT NULL DEFAULT 0,
    next_date       TEXT,
    created_ms      BIGINT  NOT NULL
);
CREATE INDEX recurring_invoices_by_org ON recurring_invoices (organization_id, id);
CREATE INDEX recurring_invoices_next ON recurring_invoices (next_date) WHERE next_date IS NOT NULL;

-- An occurrence of a template is one invoice, whatever the retries.
ALTER TABLE invoices ADD COLUMN recurring_id INTEGER REFERENCES recurring_invoices (id);
ALTER TABLE invoices ADD COLUMN period TEXT;
CREATE UNIQUE INDEX invoices_recurring_period ON invoices (recurring_id, period)
    WHERE recurring_id IS NOT NULL;

CREATE TABLE report_jobs (
    id              INTEGER PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    job_id          INTEGER NOT NULL REFERENCES jobs (id),
    report          TEXT    NOT NULL,
    params          TEXT    NOT NULL,
    format          TEXT    NOT NULL CHECK (format IN ('json', 'csv')),
    result          TEXT,
    created_ms      BIGINT  NOT NULL,
    finished_ms     BIGINT
);
CREATE INDEX report_jobs_by_org ON report_jobs (organization_id, id);


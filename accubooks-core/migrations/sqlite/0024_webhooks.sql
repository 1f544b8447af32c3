-- no-transaction
-- Outgoing webhooks (see the PostgreSQL migration of the same name).
--
-- Their jobs run on a new queue, `webhooks`. SQLite cannot change a CHECK
-- constraint, so the jobs table is rebuilt as 0007 did: with foreign keys
-- off (report_jobs and payroll_runs refer to jobs), in one transaction of
-- this migration's own, with every index it had.
PRAGMA foreign_keys = OFF;
BEGIN IMMEDIATE;

CREATE TABLE jobs_rebuilt (
    id              INTEGER PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    queue           TEXT    NOT NULL
        CHECK (queue IN ('recurring-invoices', 'payroll-processing', 'report-generation',
                         'payments', 'bank-feeds', 'webhooks')),
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
CREATE INDEX jobs_finished ON jobs (updated_ms) WHERE status IN ('succeeded', 'dead');
CREATE INDEX jobs_claim ON jobs (queue, run_after_ms, id)
    WHERE status IN ('pending', 'queued', 'running', 'failed');
CREATE INDEX jobs_claim_by_organization ON jobs (queue, organization_id, run_after_ms, id)
    WHERE status IN ('pending', 'queued', 'running', 'failed');

CREATE TABLE webhook_endpoints (
    id                  INTEGER     PRIMARY KEY AUTOINCREMENT,
    organization_id     TEXT        NOT NULL REFERENCES organizations (id),
    url                 TEXT        NOT NULL,
    description         TEXT        NOT NULL,
    event_types         TEXT        NOT NULL,
    secret_sealed       TEXT        NOT NULL,
    previous_secret_sealed TEXT,
    previous_until_ms   BIGINT,
    status              TEXT        NOT NULL CHECK (status IN ('enabled', 'disabled')),
    disabled_reason     TEXT,
    failing_since_ms    BIGINT,
    failures            INTEGER     NOT NULL DEFAULT 0,
    retry_at_ms         BIGINT,
    event_cursor        BIGINT      NOT NULL,
    created_ms          BIGINT      NOT NULL
);
CREATE INDEX webhook_endpoints_by_organization ON webhook_endpoints (organization_id, id);

CREATE TABLE webhook_deliveries (
    id                  INTEGER     PRIMARY KEY AUTOINCREMENT,
    organization_id     TEXT        NOT NULL REFERENCES organizations (id),
    endpoint_id         BIGINT      NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_sequence      BIGINT      NOT NULL,
    event_id            TEXT        NOT NULL,
    event_type          TEXT        NOT NULL,
    status              TEXT        NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts            INTEGER     NOT NULL DEFAULT 0,
    next_attempt_ms     BIGINT      NOT NULL,
    first_attempt_ms    BIGINT,
    last_status         INTEGER,
    last_error          TEXT,
    last_response       TEXT,
    created_ms          BIGINT      NOT NULL,
    updated_ms          BIGINT      NOT NULL,
    UNIQUE (endpoint_id, event_sequence)
);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_attempt_ms)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_pending_age ON webhook_deliveries (created_ms)
    WHERE status = 'pending';

COMMIT;
PRAGMA foreign_keys = ON;

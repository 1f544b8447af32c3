-- Outgoing webhooks (contract §10, issue 25): the endpoints an
-- organization's owners register and one delivery row per (endpoint,
-- event) it subscribes to.
--
-- An endpoint's `event_cursor` is the last event sequence handed to it: fan-out
-- inserts the deliveries of the matching events after it and moves it, in
-- one transaction, so each event becomes one delivery per endpoint (the
-- unique key guards a second fan-out too). A delivery row is durable: an
-- event committed is delivered even if the process dies between fan-out
-- and send.
-- Their jobs run on a new queue, `webhooks`.
ALTER TABLE jobs DROP CONSTRAINT jobs_queue_check,
    ADD CONSTRAINT jobs_queue_check CHECK (queue IN ('recurring-invoices', 'payroll-processing',
        'report-generation', 'payments', 'bank-feeds', 'webhooks'));

CREATE TABLE webhook_endpoints (
    id                  BIGSERIAL   PRIMARY KEY,
    organization_id     TEXT        NOT NULL REFERENCES organizations (id),
    url                 TEXT        NOT NULL,
    description         TEXT        NOT NULL,
    -- JSON array of event types, or ["*"].
    event_types         TEXT        NOT NULL,
    -- `whsec_…`, sealed (crate::sealed) for 'webhook-endpoint:<org>:<id>'.
    secret_sealed       TEXT        NOT NULL,
    -- The secret before the last rotation, also signed with until then.
    previous_secret_sealed TEXT,
    previous_until_ms   BIGINT,
    status              TEXT        NOT NULL CHECK (status IN ('enabled', 'disabled')),
    disabled_reason     TEXT,
    -- Set by the first failed attempt after a success, cleared by any
    -- success; five days of it disable the endpoint.
    failing_since_ms    BIGINT,
    -- While failing: consecutive failed attempts, and when the endpoint
    -- is tried next (one attempt per backoff step, not one per event).
    failures            INTEGER     NOT NULL DEFAULT 0,
    retry_at_ms         BIGINT,
    event_cursor        BIGINT      NOT NULL,
    created_ms          BIGINT      NOT NULL
);
CREATE INDEX webhook_endpoints_by_organization ON webhook_endpoints (organization_id, id);

CREATE TABLE webhook_deliveries (
    id                  BIGSERIAL   PRIMARY KEY,
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
    -- At most 256 bytes of the last answer's body.
    last_response       TEXT,
    created_ms          BIGINT      NOT NULL,
    updated_ms          BIGINT      NOT NULL,
    UNIQUE (endpoint_id, event_sequence)
);
-- An endpoint's deliveries, newest first.
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);
-- The due ones, and the age of the oldest undelivered one.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_attempt_ms)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_pending_age ON webhook_deliveries (created_ms)
    WHERE status = 'pending';

-- Row-level security as in 0022; the delivery scheduler (worker scope)
-- reads every organization's endpoints, their pending deliveries and
-- whether events came after their cursor (0023's worker policy on
-- events), and numbers its jobs.
ALTER TABLE webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoints FORCE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY organization_scope ON webhook_endpoints
    USING (organization_id = ANY (accubooks_scope())
           OR current_setting('accubooks.worker', true) = 'on');
CREATE POLICY organization_scope ON webhook_deliveries
    USING (organization_id = ANY (accubooks_scope()));
CREATE POLICY worker_read ON webhook_deliveries FOR SELECT
    USING (current_setting('accubooks.worker', true) = 'on');

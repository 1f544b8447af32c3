-- Outgoing webhooks (see the PostgreSQL migration of the same name).
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
    job_round           BIGINT      NOT NULL DEFAULT 0,
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

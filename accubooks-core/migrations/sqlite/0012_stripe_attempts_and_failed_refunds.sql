-- Stripe as it really behaves (issue 23).
--
-- Stripe keeps the answer of an `Idempotency-Key` for 24 hours, a 500
-- included, and replays it to every later request with that key. The key
-- of an invoice's PaymentIntent is derived from the invoice, its intents
-- so far, the amount and this attempt number, which moves on (once, by a
-- conditional update) only after Stripe answered 5xx: twin requests still
-- share a key, and the request after a failure asks under a new one.
CREATE TABLE stripe_intent_attempts (
    organization_id TEXT   NOT NULL REFERENCES organizations (id),
    invoice_id      BIGINT NOT NULL REFERENCES invoices (id),
    attempt         BIGINT NOT NULL CHECK (attempt > 0),
    PRIMARY KEY (organization_id, invoice_id)
);

-- A refund that failed after it was posted (`charge.refund.updated` /
-- `refund.updated` with `status: failed`) has its posting reversed once:
-- the reversal inserts its refund's row in its own transaction, which only
-- one posting can do, however often Stripe sends the events.
CREATE TABLE stripe_failed_refunds (
    -- Stripe's id, `re_…`.
    refund_id         TEXT   PRIMARY KEY,
    organization_id   TEXT   NOT NULL REFERENCES organizations (id),
    payment_intent_id TEXT   NOT NULL REFERENCES stripe_payment_intents (id),
    -- Stripe's minor units given back to the payment.
    amount            BIGINT NOT NULL CHECK (amount > 0),
    entry_id          BIGINT NOT NULL REFERENCES journal_entries (id),
    created_ms        BIGINT NOT NULL
);

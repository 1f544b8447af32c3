-- Bank lines Plaid sends that cannot be booked as they are (issue 23): an
-- amount with more fraction digits than its currency has (`0.123` USD), a
-- currency without a known exponent or only an unofficial one (a crypto
-- account), or a zero amount. Such a line is kept for review, with Plaid's
-- amount as sent, instead of stopping the item's feed; a user may dismiss
-- it (or any line not yet matched). SQLite cannot change a CHECK in place:
-- the table is rebuilt (no table refers to it).
CREATE TABLE bank_transactions_0013 (
    id                   INTEGER PRIMARY KEY,
    organization_id      TEXT    NOT NULL REFERENCES organizations (id),
    account_id           BIGINT  NOT NULL REFERENCES bank_accounts (id),
    -- Plaid's transaction id: a line is imported once.
    plaid_transaction_id TEXT    NOT NULL,
    -- Minor units, Plaid's sign: positive is money leaving the account;
    -- NULL for a line set aside because its amount is not exact.
    amount               BIGINT,
    currency             TEXT    NOT NULL,
    posted_on            TEXT    NOT NULL,
    name                 TEXT    NOT NULL,
    pending              BOOLEAN NOT NULL,
    status               TEXT    NOT NULL CHECK (status IN ('unmatched', 'matched', 'review', 'dismissed')),
    -- The entry that posted it (or that it was matched to), once matched.
    entry_id             BIGINT  REFERENCES journal_entries (id),
    invoice_id           BIGINT  REFERENCES invoices (id),
    -- Set when the bank changed or removed a line after it was matched:
    -- `modified` or `removed`. The line and its posting are kept.
    bank_change          TEXT    CHECK (bank_change IN ('modified', 'removed')),
    created_ms           BIGINT  NOT NULL,
    -- Why the line was set aside; NULL for a line that could be booked.
    review_reason        TEXT    CHECK (review_reason IN ('INEXACT_AMOUNT', 'INVALID_AMOUNT', 'UNKNOWN_CURRENCY', 'UNOFFICIAL_CURRENCY', 'ZERO_AMOUNT')),
    -- Plaid's amount as it sent it (its JSON number's text).
    plaid_amount         TEXT,
    UNIQUE (organization_id, plaid_transaction_id),
    CHECK ((status = 'matched') = (entry_id IS NOT NULL)),
    CHECK (amount IS NOT NULL OR review_reason IS NOT NULL)
);
INSERT INTO bank_transactions_0013 (id, organization_id, account_id, plaid_transaction_id, amount, currency,
    posted_on, name, pending, status, entry_id, invoice_id, bank_change, created_ms)
    SELECT id, organization_id, account_id, plaid_transaction_id, amount, currency, posted_on, name, pending,
        status, entry_id, invoice_id, bank_change, created_ms FROM bank_transactions;
DROP TABLE bank_transactions;
ALTER TABLE bank_transactions_0013 RENAME TO bank_transactions;
CREATE INDEX bank_transactions_by_status ON bank_transactions (organization_id, status, posted_on);
-- An entry reconciles at most one bank line.
CREATE UNIQUE INDEX bank_transactions_by_entry ON bank_transactions (entry_id)
    WHERE entry_id IS NOT NULL;

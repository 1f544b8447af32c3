-- Bank feeds (contract section 8): Plaid items, their accounts and the
-- bank lines imported from them. An item's access token is kept sealed
-- (ChaCha20-Poly1305 under a key of SESSION_SECRET, bound to the
-- organization and item), never in clear. A line is imported once per
-- Plaid transaction id, and matched once: the posting's transaction turns
-- it from `unmatched` to `matched`, which only one transaction can do.

CREATE TABLE bank_items (
    id              INTEGER PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    -- Plaid's item id.
    item_id         TEXT    NOT NULL,
    -- The sealed access token (`v1:` and hex), never the token itself.
    access_token    TEXT    NOT NULL,
    -- Plaid's /transactions/sync cursor after the last saved page; '' before the first.
    sync_cursor     TEXT    NOT NULL DEFAULT '',
    created_ms      BIGINT  NOT NULL,
    UNIQUE (organization_id, item_id)
);

CREATE TABLE bank_accounts (
    id               INTEGER PRIMARY KEY,
    organization_id  TEXT    NOT NULL REFERENCES organizations (id),
    item_id          BIGINT  NOT NULL REFERENCES bank_items (id),
    -- Plaid's account id.
    plaid_account_id TEXT    NOT NULL,
    name             TEXT    NOT NULL,
    mask             TEXT,
    currency         TEXT    NOT NULL,
    -- The ledger account its lines post to, once mapped.
    ledger_account_id BIGINT REFERENCES accounts (id),
    UNIQUE (organization_id, plaid_account_id)
);
CREATE INDEX bank_accounts_by_item ON bank_accounts (item_id);

CREATE TABLE bank_transactions (
    id                   INTEGER PRIMARY KEY,
    organization_id      TEXT    NOT NULL REFERENCES organizations (id),
    account_id           BIGINT  NOT NULL REFERENCES bank_accounts (id),
    -- Plaid's transaction id: a line is imported once.
    plaid_transaction_id TEXT    NOT NULL,
    -- Minor units, Plaid's sign: positive is money leaving the account.
    amount               BIGINT  NOT NULL,
    currency             TEXT    NOT NULL,
    posted_on            TEXT    NOT NULL,
    name                 TEXT    NOT NULL,
    pending              BOOLEAN NOT NULL,
    status               TEXT    NOT NULL CHECK (status IN ('unmatched', 'matched')),
    -- The entry that posted it (or that it was matched to), once matched.
    entry_id             BIGINT  REFERENCES journal_entries (id),
    invoice_id           BIGINT  REFERENCES invoices (id),
    -- Set when the bank changed or removed a line after it was matched:
    -- `modified` or `removed`. The line and its posting are kept.
    bank_change          TEXT    CHECK (bank_change IN ('modified', 'removed')),
    created_ms           BIGINT  NOT NULL,
    UNIQUE (organization_id, plaid_transaction_id),
    CHECK ((status = 'matched') = (entry_id IS NOT NULL))
);
CREATE INDEX bank_transactions_by_status ON bank_transactions (organization_id, status, posted_on);
-- An entry reconciles at most one bank line.
CREATE UNIQUE INDEX bank_transactions_by_entry ON bank_transactions (entry_id)
    WHERE entry_id IS NOT NULL;


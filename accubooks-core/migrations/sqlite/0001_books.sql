-- Tenants, users, the chart of accounts, the journal, and what keeps reports
-- cheap. Amounts are integer minor units of the account's currency; a
-- journal line's amount is positive for a debit and negative for a credit.

CREATE TABLE organizations (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    tax_rounding TEXT NOT NULL DEFAULT 'line' CHECK (tax_rounding IN ('line', 'document')),
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations (id),
    email           TEXT NOT NULL UNIQUE,
    password_hash   TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('owner', 'accountant', 'viewer')),
    created_at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE accounts (
    id              INTEGER PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    code            TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    type            TEXT    NOT NULL
        CHECK (type IN ('asset', 'liability', 'equity', 'revenue', 'expense')),
    currency        TEXT    NOT NULL CHECK (length(currency) = 3),
    parent_id       INTEGER REFERENCES accounts (id),
    balance         INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    UNIQUE (organization_id, code)
);

CREATE TABLE journal_entries (
    id              INTEGER PRIMARY KEY,
    organization_id TEXT    NOT NULL REFERENCES organizations (id),
    entry_date      TEXT    NOT NULL,
    memo            TEXT    NOT NULL DEFAULT '',
    reverses        INTEGER UNIQUE REFERENCES journal_entries (id),
    created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX journal_entries_by_org_date ON journal_entries (organization_id, entry_date, id);

CREATE TABLE journal_lines (
    id         INTEGER PRIMARY KEY,
    entry_id   INTEGER NOT NULL REFERENCES journal_entries (id),
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    amount     INTEGER NOT NULL CHECK (amount <> 0)
);
CREATE INDEX journal_lines_by_account ON journal_lines (account_id, entry_id);
CREATE INDEX journal_lines_by_entry ON journal_lines (entry_id);

CREATE TABLE account_days (
    account_id INTEGER NOT NULL REFERENCES accounts (id),
    day        TEXT    NOT NULL,
    delta      INTEGER NOT NULL,
    PRIMARY KEY (account_id, day)
) WITHOUT ROWID;

CREATE TABLE idempotency_keys (
    organization_id TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    request_hash    TEXT    NOT NULL,
    status          INTEGER NOT NULL,
    response        TEXT    NOT NULL,
    created_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (organization_id, key)
) WITHOUT ROWID;

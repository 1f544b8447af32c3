-- Tenants, users, the chart of accounts, the journal, and what keeps reports
-- cheap. Amounts are integer minor units of the account's currency; a
-- journal line's amount is positive for a debit and negative for a credit.

CREATE TABLE organizations (
    id         TEXT        PRIMARY KEY,
    name       TEXT        NOT NULL,
    -- How invoice tax is rounded: per line or once per document.
    tax_rounding TEXT      NOT NULL DEFAULT 'line' CHECK (tax_rounding IN ('line', 'document')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id              TEXT        PRIMARY KEY,
    organization_id TEXT        NOT NULL REFERENCES organizations (id),
    email           TEXT        NOT NULL UNIQUE,
    password_hash   TEXT        NOT NULL,
    role            TEXT        NOT NULL CHECK (role IN ('owner', 'accountant', 'viewer')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE accounts (
    id              BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id TEXT        NOT NULL REFERENCES organizations (id),
    code            TEXT        NOT NULL,
    name            TEXT        NOT NULL,
    type            TEXT        NOT NULL
        CHECK (type IN ('asset', 'liability', 'equity', 'revenue', 'expense')),
    currency        TEXT        NOT NULL CHECK (length(currency) = 3),
    parent_id       BIGINT      REFERENCES accounts (id),
    -- Running balance kept by the posting transaction, so reports cost
    -- O(accounts), not O(postings).
    balance         BIGINT      NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (organization_id, code)
);

CREATE TABLE journal_entries (
    id              BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id TEXT        NOT NULL REFERENCES organizations (id),
    entry_date      DATE        NOT NULL,
    memo            TEXT        NOT NULL DEFAULT '',
    -- The entry this one reverses; at most one reversal per entry.
    reverses        BIGINT      UNIQUE REFERENCES journal_entries (id),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX journal_entries_by_org_date ON journal_entries (organization_id, entry_date, id);

CREATE TABLE journal_lines (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id   BIGINT NOT NULL REFERENCES journal_entries (id),
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    amount     BIGINT NOT NULL CHECK (amount <> 0)
);
CREATE INDEX journal_lines_by_account ON journal_lines (account_id, entry_id);
CREATE INDEX journal_lines_by_entry ON journal_lines (entry_id);

-- Net movement per account and day: a report "as of" a past date sums
-- O(accounts x active days) rows instead of every posting.
CREATE TABLE account_days (
    account_id BIGINT NOT NULL REFERENCES accounts (id),
    day        DATE   NOT NULL,
    delta      BIGINT NOT NULL,
    PRIMARY KEY (account_id, day)
);

-- Answers to creating requests, so a retried request gets the first answer.
CREATE TABLE idempotency_keys (
    organization_id TEXT        NOT NULL,
    key             TEXT        NOT NULL,
    request_hash    TEXT        NOT NULL,
    status          INTEGER     NOT NULL,
    response        TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, key)
);

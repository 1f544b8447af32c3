-- Row-level security: the second wall between organizations.
--
-- Every query of the application already says `WHERE organization_id = …`.
-- These policies make PostgreSQL enforce the same scope, so a forgotten
-- condition shows no other organization's rows instead of leaking them.
-- The application opens each transaction with
--   SELECT set_config('accubooks.organization', '<id>[,<id>…]', true)
-- (transaction-local: it ends with the transaction, and a pooled connection
-- never carries it into another request). The committer, which writes the
-- entries of several organizations in one transaction, names all of them.
-- Without the setting a transaction sees no rows at all.
--
-- FORCE makes the policies bind the tables' owner too, which is the role the
-- application connects as. Superusers and roles with BYPASSRLS are never
-- bound by policies: run the application as an ordinary role (the server
-- warns at start-up when it is not). Foreign-key checks are not subject to
-- policies, so integrity checks still see every row.

-- The organizations the current transaction may see. Inlined by the planner,
-- so `organization_id = ANY (accubooks_scope())` can use an index.
CREATE FUNCTION accubooks_scope() RETURNS text[]
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT string_to_array(current_setting('accubooks.organization', true), ',') $$;

ALTER TABLE organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE organizations FORCE ROW LEVEL SECURITY;
CREATE POLICY organization_scope ON organizations
    USING (id = ANY (accubooks_scope()));

-- Logging in looks a user up by e-mail before the organization is known:
-- that transaction sets `accubooks.login_email` and may read (only read)
-- the rows of that one address.
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY organization_scope ON users
    USING (organization_id = ANY (accubooks_scope()));
CREATE POLICY login_lookup ON users FOR SELECT
    USING (email = current_setting('accubooks.login_email', true));

ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
ALTER TABLE accounts FORCE ROW LEVEL SECURITY;
CREATE POLICY organization_scope ON accounts
    USING (organization_id = ANY (accubooks_scope()));

ALTER TABLE journal_entries ENABLE ROW LEVEL SECURITY;
ALTER TABLE journal_entries FORCE ROW LEVEL SECURITY;
CREATE POLICY organization_scope ON journal_entries
    USING (organization_id = ANY (accubooks_scope()));

-- Lines and day movements carry no organization column; they belong to an
-- account, which is itself scoped. The subquery is uncorrelated, so
-- PostgreSQL hashes the visible account ids once per statement rather than
-- probing per row (measured: no cost on bulk inserts).
ALTER TABLE journal_lines ENABLE ROW LEVEL SECURITY;
ALTER TABLE journal_lines FORCE ROW LEVEL SECURITY;
CREATE POLICY organization_scope ON journal_lines
    USING (account_id IN (SELECT id FROM accounts));

ALTER TABLE account_days ENABLE ROW LEVEL SECURITY;
ALTER TABLE account_days FORCE ROW LEVEL SECURITY;
CREATE POLICY organization_scope ON account_days
    USING (account_id IN (SELECT id FROM accounts));

ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY organization_scope ON idempotency_keys
    USING (organization_id = ANY (accubooks_scope()));

ALTER TABLE customers ENABLE ROW LEVEL SECURITY;
ALTER TABLE customers FORCE ROW LEVEL SECURITY;
CREATE POLICY organization_scope ON customers
    USING (organization_id = ANY (accubooks_scope()));

ALTER TABLE invoices ENABLE ROW LEVEL SECURITY;
ALTER TABLE invoices FORCE ROW LEVEL SECURITY;
CREATE POLICY organization_scope ON invoices
    USING (organization_id = ANY (accubooks_scope()));

ALTER TABLE invoice_lines ENABLE ROW LEVEL SECURITY;
ALTER TABLE invoice_lines FORCE ROW LEVEL SECURITY;
CREATE POLICY organization_scope ON invoice_lines
    USING (invoice_id IN (SELECT id FROM invoices));

ALTER TABLE payments ENABLE ROW LEVEL SECURITY;
ALTER TABLE payments FORCE ROW LEVEL SECURITY;
CREATE POLICY organization_scope ON payments
    USING (organization_id = ANY (accubooks_scope()));

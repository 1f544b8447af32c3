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

-- Every table is bound by its policies, its owner included.
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['organizations', 'users', 'accounts', 'journal_entries',
                                'journal_lines', 'account_days', 'idempotency_keys', 'customers',
                                'invoices', 'invoice_lines', 'payments'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', name);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', name);
    END LOOP;
    -- Tables with an organization column: that column is the scope.
    FOREACH name IN ARRAY ARRAY['users', 'accounts', 'journal_entries', 'idempotency_keys',
                                'customers', 'invoices', 'payments'] LOOP
        EXECUTE format('CREATE POLICY organization_scope ON %I '
                       'USING (organization_id = ANY (accubooks_scope()))', name);
    END LOOP;
END
$$;

CREATE POLICY organization_scope ON organizations
    USING (id = ANY (accubooks_scope()));

-- Logging in looks a user up by e-mail before the organization is known:
-- that transaction sets `accubooks.login_email` and may read (only read)
-- the rows of that one address.
CREATE POLICY login_lookup ON users FOR SELECT
    USING (email = current_setting('accubooks.login_email', true));

-- Lines, day movements and invoice lines carry no organization column; they
-- belong to an account or an invoice, which is itself scoped. The subquery
-- is uncorrelated, so PostgreSQL hashes the visible ids once per statement
-- rather than probing per row (measured: no cost on bulk inserts).
CREATE POLICY organization_scope ON journal_lines
    USING (account_id IN (SELECT id FROM accounts));
CREATE POLICY organization_scope ON account_days
    USING (account_id IN (SELECT id FROM accounts));
CREATE POLICY organization_scope ON invoice_lines
    USING (invoice_id IN (SELECT id FROM invoices));

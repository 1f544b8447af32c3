-- Bank items as Plaid's link flow needs them (contract section 8, issue 23):
-- each item's status (`active`, `login_required`, `error`) and the Plaid
-- code that set it, its institution, when it last synced, and when it was
-- removed. A removed item keeps its row (its accounts and lines, matched
-- or not, stay and keep their postings) but forgets its access token and
-- is no longer synced.
ALTER TABLE bank_items ADD COLUMN status TEXT NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'login_required', 'error'));
ALTER TABLE bank_items ADD COLUMN status_code TEXT;
ALTER TABLE bank_items ADD COLUMN institution TEXT;
ALTER TABLE bank_items ADD COLUMN last_synced_ms BIGINT;
ALTER TABLE bank_items ADD COLUMN removed_ms BIGINT;

-- Plaid's webhook names the item, not the organization.
CREATE INDEX bank_items_by_plaid_item ON bank_items (item_id);

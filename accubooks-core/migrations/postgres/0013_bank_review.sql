-- Bank lines Plaid sends that cannot be booked as they are (issue 23): an
-- amount with more fraction digits than its currency has (`0.123` USD), a
-- currency without a known exponent or only an unofficial one (a crypto
-- account), or a zero amount. Such a line is kept for review, with Plaid's
-- amount as sent, instead of stopping the item's feed; a user may dismiss
-- it (or any line not yet matched).
ALTER TABLE bank_transactions DROP CONSTRAINT bank_transactions_status_check;
ALTER TABLE bank_transactions ADD CONSTRAINT bank_transactions_status_check
    CHECK (status IN ('unmatched', 'matched', 'review', 'dismissed'));
-- Minor units when the amount is exact in its currency; NULL for a line
-- set aside because it is not.
ALTER TABLE bank_transactions ALTER COLUMN amount DROP NOT NULL;
-- Why the line was set aside; NULL for a line that could be booked.
ALTER TABLE bank_transactions ADD COLUMN review_reason TEXT
    CHECK (review_reason IN ('INEXACT_AMOUNT', 'INVALID_AMOUNT', 'UNKNOWN_CURRENCY', 'UNOFFICIAL_CURRENCY', 'ZERO_AMOUNT'));
-- Plaid's amount as it sent it (its JSON number's text).
ALTER TABLE bank_transactions ADD COLUMN plaid_amount TEXT;
ALTER TABLE bank_transactions ADD CONSTRAINT bank_transactions_amount_known
    CHECK (amount IS NOT NULL OR review_reason IS NOT NULL);

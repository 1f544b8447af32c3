//! Invoice numbers that follow issue dates (contract §5): consecutive per
//! organization and kind (`INV-000001`, `CN-000001`) in the order of their
//! issue dates, with no gaps.
//!
//! A number is taken when the document is issued, inside the committer's
//! transaction, from the (organization, kind) counter row of
//! `invoice_numbers`, bound to the date of the entry as committed
//! ([`Bind::EntryDate`]). The counter only moves forward in date: an issue
//! dated before the last issued one is refused (`409 INVOICE_DATE_ORDER`),
//! so numbers never invert. A failed posting rolls the counter back with
//! everything else, so numbers have no gaps; the counter's row lock
//! serializes the issues of one organization (PostgreSQL), or the single
//! writer does (SQLite).

use futures::future::BoxFuture;

use super::InvoiceKind;
use crate::ledger::{Bind, Effect, EffectTx, Guard};

/// The code of an issue dated before the last issued document of its kind.
pub(crate) const DATE_ORDER: &str = "INVOICE_DATE_ORDER";

/// `INV-000001` or `CN-000001`.
pub(crate) fn label(kind: InvoiceKind, number: i64) -> String {
    let prefix = match kind {
        InvoiceKind::Invoice => "INV",
        InvoiceKind::CreditNote => "CN",
    };
    format!("{prefix}-{number:06}")
}

/// Takes the organization's next number of `kind` for a document dated as
/// the job's entry: `Ok(number)`, or the refusal when that date is before
/// the last one numbered.
pub(super) async fn next_number(
    tx: &mut EffectTx<'_>,
    kind: InvoiceKind,
) -> Result<Result<i64, Guard>, sqlx::Error> {
    let kind_bind = || Bind::Text(kind.as_str().to_owned());
    let read = "SELECT last_number FROM invoice_numbers WHERE organization_id = $1 AND kind = $2";
    let advance = "UPDATE invoice_numbers SET last_number = last_number + 1, last_date = $1 \
                   WHERE organization_id = $2 AND kind = $3 AND last_date <= $1";
    let advance_binds = [Bind::EntryDate, Bind::Organization, kind_bind()];
    if tx.execute(advance, &advance_binds).await? == 1 {
        return Ok(Ok(tx
            .fetch_id(read, &[Bind::Organization, kind_bind()])
            .await?));
    }
    // The organization's first of this kind. Two first issues at once: the
    // second insert waits for the first to commit and inserts nothing, and
    // the counter is advanced as above.
    let first = tx
        .execute(
            "INSERT INTO invoice_numbers (organization_id, kind, last_number, last_date) \
             VALUES ($1, $2, 1, $3) ON CONFLICT (organization_id, kind) DO NOTHING",
            &[Bind::Organization, kind_bind(), Bind::EntryDate],
        )
        .await?;
    if first == 1 {
        return Ok(Ok(1));
    }
    if tx.execute(advance, &advance_binds).await? == 1 {
        return Ok(Ok(tx
            .fetch_id(read, &[Bind::Organization, kind_bind()])
            .await?));
    }
    let last = tx
        .fetch_date(
            "SELECT last_date FROM invoice_numbers WHERE organization_id = $1 AND kind = $2",
            &[Bind::Organization, kind_bind()],
        )
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    let what = match kind {
        InvoiceKind::Invoice => "invoice",
        InvoiceKind::CreditNote => "credit note",
    };
    Ok(Err(Guard::TooEarly {
        earliest: last,
        code: DATE_ORDER,
        message: format!(
            "Invoice numbers follow issue dates: this organization's last {what} was issued on \
             {last}, so this one cannot be dated {}; date it on or after {last}.",
            tx.entry_date()
        ),
    }))
}

/// A draft invoice becomes issued by the posting's entry, numbered next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Issue {
    /// The draft.
    pub(super) invoice_id: i64,
}

impl Effect for Issue {
    fn apply<'a>(&'a self, tx: &'a mut EffectTx<'_>) -> BoxFuture<'a, Result<Guard, sqlx::Error>> {
        Box::pin(async move {
            let number = match next_number(tx, InvoiceKind::Invoice).await? {
                Ok(number) => number,
                Err(refused) => return Ok(refused),
            };
            Ok(
                match tx
                    .execute(
                        "UPDATE invoices SET status = 'issued', issue_date = $1, \
                         issue_entry_id = $2, number = $3 \
                         WHERE id = $4 AND organization_id = $5 AND status = 'draft'",
                        &[
                            Bind::EntryDate,
                            Bind::EntryId,
                            Bind::I64(number),
                            Bind::I64(self.invoice_id),
                            Bind::Organization,
                        ],
                    )
                    .await?
                {
                    1 => Guard::Held,
                    _ => Guard::StateChanged,
                },
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_have_six_digits_and_a_prefix_per_kind() {
        assert_eq!(label(InvoiceKind::Invoice, 1), "INV-000001");
        assert_eq!(label(InvoiceKind::CreditNote, 42), "CN-000042");
        assert_eq!(label(InvoiceKind::Invoice, 1_234_567), "INV-1234567");
    }
}

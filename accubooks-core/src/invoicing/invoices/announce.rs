//! The events of invoices (contract §10), emitted with the change that
//! makes them: each reads the invoice back inside the change's transaction,
//! so its data is the invoice as the API answers it just after.

use std::collections::HashMap;

use futures::future::BoxFuture;
use sqlx::Row;

use super::*;
use crate::db::sql::Connection;
use crate::events::NewEvent;
use crate::ledger::{Effect, EffectTx, Guard};

/// When an [`Announce`] emits its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    /// Always.
    Always,
    /// Only if the change left the invoice paid in full (a payment or a
    /// credit note may, or may leave some open).
    Paid,
}

/// Emits `kind` about invoice `invoice_id` as the job's earlier effects
/// left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Announce {
    /// The event type.
    pub(crate) kind: &'static str,
    /// The invoice (or credit note).
    pub(crate) invoice_id: i64,
    /// Whether to emit it.
    pub(crate) when: When,
}

impl Effect for Announce {
    fn apply<'a>(&'a self, tx: &'a mut EffectTx<'_>) -> BoxFuture<'a, Result<Guard, sqlx::Error>> {
        Box::pin(async move {
            let invoice = read_in(tx, self.invoice_id).await?;
            if self.when == When::Always || invoice.status == InvoiceStatus::Paid {
                tx.emit(NewEvent::new(self.kind, &invoice));
            }
            Ok(Guard::Held)
        })
    }
}

/// Invoice `id` of the job's organization, read in its transaction.
pub(crate) async fn read_in(tx: &mut EffectTx<'_>, id: i64) -> Result<Invoice, sqlx::Error> {
    let organization = tx.organization().as_str().to_owned();
    let today = chrono::Utc::now().date_naive();
    let selection = &InvoiceSelection::One(id);
    let (mut found, _) = match tx.connection() {
        Connection::Postgres(conn) => {
            read_invoices_in!(conn, &*conn, &organization, selection, today)
        }
        Connection::Sqlite(conn) => {
            read_invoices_in!(conn, &*conn, &organization, selection, today)
        }
    };
    found.pop().ok_or(sqlx::Error::RowNotFound)
}

//! Accounts receivable aging: what each customer owes, by days overdue.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::*;
use crate::db::Database;
use crate::db::sql::{in_scope, on_pool};
use crate::ledger::LedgerResult;
use crate::money::{self};
use crate::organization::OrganizationId;

/// One customer's (or the total's) receivables by age.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgingBuckets {
    /// Not yet due.
    #[schema(value_type = crate::money::AmountText)]
    pub current: String,
    /// 1 to 30 days past due.
    #[schema(value_type = crate::money::AmountText)]
    pub days_1_30: String,
    /// 31 to 60 days past due.
    #[schema(value_type = crate::money::AmountText)]
    pub days_31_60: String,
    /// 61 to 90 days past due.
    #[schema(value_type = crate::money::AmountText)]
    pub days_61_90: String,
    /// More than 90 days past due.
    #[schema(value_type = crate::money::AmountText)]
    pub over_90: String,
    /// All of them.
    #[schema(value_type = crate::money::AmountText)]
    pub total: String,
}

/// One customer's line of the aging report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AgingRow {
    /// The customer.
    pub customer_id: i64,
    /// Its name.
    pub customer: String,
    /// Currency.
    pub currency: String,
    /// The buckets.
    #[serde(flatten)]
    pub buckets: AgingBuckets,
}

/// `GET /api/reports/ar-aging`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ArAging {
    /// The date.
    pub as_of: NaiveDate,
    /// Per customer and currency.
    pub customers: Vec<AgingRow>,
    /// Per currency.
    pub totals: Vec<AgingRow>,
}

pub(super) fn buckets(sums: [i64; 5], d: u32) -> AgingBuckets {
    AgingBuckets {
        current: money::format_minor(sums[0], d),
        days_1_30: money::format_minor(sums[1], d),
        days_31_60: money::format_minor(sums[2], d),
        days_61_90: money::format_minor(sums[3], d),
        over_90: money::format_minor(sums[4], d),
        total: money::format_minor(sums.iter().sum(), d),
    }
}

/// Receivables outstanding at the end of `as_of`, by days past due.
pub async fn ar_aging(
    db: &Database,
    organization: &OrganizationId,
    as_of: NaiveDate,
) -> LedgerResult<ArAging> {
    let organization = organization.to_owned();
    // What each invoice issued by then still owed then: its total less the
    // payments and credit notes dated up to then.
    let rows: Vec<(i64, String, String, NaiveDate, i64)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                sqlx::query_as(
                    "SELECT c.id, c.name, i.currency, i.due_date, CAST(i.total \
                       - COALESCE((SELECT SUM(pm.amount) FROM payments pm WHERE pm.invoice_id = i.id AND pm.payment_date <= $2), 0) \
                       - COALESCE((SELECT SUM(cn.total) FROM invoices cn WHERE cn.credits_invoice = i.id \
                                   AND cn.status <> 'draft' AND cn.issue_date <= $2), 0) AS BIGINT) \
                     FROM invoices i JOIN customers c ON c.id = i.customer_id \
                     WHERE i.organization_id = $1 AND i.kind = 'invoice' AND i.issue_date <= $2 \
                       AND (i.void_date IS NULL OR i.void_date > $2)",
                )
                .bind(&organization)
                .bind(as_of)
                .fetch_all(&mut *tx)
                .await?
            }))
        })
        .await?;
    let mut per_customer: BTreeMap<(i64, String), (String, [i64; 5])> = BTreeMap::new();
    let mut per_currency: BTreeMap<String, [i64; 5]> = BTreeMap::new();
    for (customer_id, name, currency, due_date, outstanding) in rows {
        if outstanding <= 0 {
            continue;
        }
        let late = (as_of - due_date).num_days();
        let bucket = match late {
            ..=0 => 0,
            1..=30 => 1,
            31..=60 => 2,
            61..=90 => 3,
            _ => 4,
        };
        per_customer
            .entry((customer_id, currency.clone()))
            .or_insert_with(|| (name, [0; 5]))
            .1[bucket] += outstanding;
        per_currency.entry(currency).or_default()[bucket] += outstanding;
    }
    Ok(ArAging {
        as_of,
        customers: per_customer
            .into_iter()
            .map(|((customer_id, currency), (customer, sums))| AgingRow {
                customer_id,
                customer,
                buckets: buckets(sums, digits(&currency)),
                currency,
            })
            .collect(),
        totals: per_currency
            .into_iter()
            .map(|(currency, sums)| AgingRow {
                customer_id: 0,
                customer: "All customers".to_owned(),
                buckets: buckets(sums, digits(&currency)),
                currency,
            })
            .collect(),
    })
}

//! The organization's invoicing settings: currency, time zone, tax rounding.

use serde::{Deserialize, Serialize};

use super::totals::TaxRounding;
use super::*;
use crate::db::Database;
use crate::db::sql::{in_scope, on_pool};
use crate::ledger::LedgerResult;
use crate::organization::OrganizationId;

/// The organization's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Settings {
    /// How invoice tax is rounded.
    pub tax_rounding: TaxRounding,
    /// The IANA time zone whose calendar decides which day it is for the
    /// organization (when recurring invoices fall due), e.g.
    /// `America/New_York`; default `UTC`.
    pub timezone: String,
}

/// Invoicing's part of a settings change (the wire form, with the lock
/// date, is `usecases::SettingsChange`); `None` keeps a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsChange {
    /// How invoice tax is rounded.
    pub tax_rounding: Option<TaxRounding>,
    /// An IANA time zone name, e.g. `Europe/Paris`.
    pub timezone: Option<String>,
}

/// The time zone of a name from the IANA database (`422 INVALID_TIMEZONE`
/// otherwise).
pub fn parse_timezone(name: &str) -> LedgerResult<chrono_tz::Tz> {
    name.parse::<chrono_tz::Tz>().map_err(|_| {
        invalid(
            "INVALID_TIMEZONE",
            format!(
                "{:?} is not a time zone of the IANA database; use a name such as \
                 \"America/New_York\" or \"UTC\".",
                name.chars().take(64).collect::<String>()
            ),
        )
    })
}

/// Reads the organization's settings.
pub async fn get_settings(db: &Database, organization: &OrganizationId) -> LedgerResult<Settings> {
    let organization = organization.to_owned();
    let row: Option<(String, String)> = db
        .run(|pool| async move {
            on_pool!(pool, p => in_scope!(p, &organization, tx => {
                sqlx::query_as("SELECT tax_rounding, timezone FROM organizations WHERE id = $1")
                    .bind(&organization)
                    .fetch_optional(&mut *tx)
                    .await?
            }))
        })
        .await?;
    let (rounding, timezone) = row.unwrap_or_else(|| ("line".to_owned(), "UTC".to_owned()));
    Ok(Settings {
        tax_rounding: TaxRounding::parse(&rounding).unwrap_or(TaxRounding::Line),
        timezone,
    })
}

/// Changes the organization's settings. Existing invoices keep the rounding
/// they were computed with.
pub async fn put_settings(
    db: &Database,
    organization: &OrganizationId,
    change: SettingsChange,
) -> LedgerResult<Settings> {
    if let Some(name) = &change.timezone {
        parse_timezone(name)?;
    }
    let owned = organization.to_owned();
    db.run(|pool| async move {
        on_pool!(pool, p => in_scope!(p, &owned, tx => {
            sqlx::query(
                "UPDATE organizations SET tax_rounding = COALESCE($1, tax_rounding), \
                 timezone = COALESCE($2, timezone) WHERE id = $3",
            )
            .bind(change.tax_rounding.map(TaxRounding::as_str))
            .bind(change.timezone.as_deref())
            .bind(&owned)
            .execute(&mut *tx)
            .await?;
        }))
    })
    .await?;
    get_settings(db, organization).await
}

//! The organization's settings across its features, the lock date and the
//! year-end close.

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer, Serialize};

use super::idempotent::{Keyed, stored};
use super::{Answer, Books, ClientKey, Result, org};
use crate::identity::{Principal, Role};
use crate::invoicing::{self, totals::TaxRounding};
use crate::ledger::{self, Entry, SettingChange};
use crate::paging::{Page, PageRequest};

/// The organization's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Settings {
    /// Invoicing's: tax rounding and time zone.
    #[serde(flatten)]
    pub invoicing: invoicing::Settings,
    /// The books are locked through this day (`null`: not locked): no
    /// change dated on or before it is posted.
    #[schema(value_type = Option<String>, format = Date)]
    pub lock_date: Option<NaiveDate>,
}

/// `PUT /api/settings`: the settings to change; those left out keep their
/// value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    /// How invoice tax is rounded.
    #[serde(default)]
    pub tax_rounding: Option<TaxRounding>,
    /// An IANA time zone name, e.g. `Europe/Paris`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// `YYYY-MM-DD` locks the books through that day; `null` unlocks them.
    /// An earlier date than the current one reopens the days between, and
    /// shows in the settings' history.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = Date)]
    pub lock_date: Option<Option<NaiveDate>>,
}

/// A field given, even as `null` (`Some(None)`), as opposed to left out
/// (`None`, from `#[serde(default)]`).
fn present<'de, D, T>(deserializer: D) -> std::result::Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// `POST /api/periods/close`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Close {
    /// The last day of the period closed, `YYYY-MM-DD`.
    pub through: String,
}

impl Books<'_> {
    /// The organization's settings.
    pub async fn settings(&self, caller: &Principal) -> Result<Settings> {
        self.run("settings", Some(caller), Role::Viewer, async {
            self.read_settings(caller).await
        })
        .await
    }

    async fn read_settings(&self, caller: &Principal) -> Result<Settings> {
        let db = self.app.database();
        Ok(Settings {
            invoicing: invoicing::get_settings(db, &org(caller)).await?,
            lock_date: ledger::lock_date(db, &org(caller)).await?,
        })
    }

    /// Changes the organization's settings (owners only).
    pub async fn put_settings(
        &self,
        caller: &Principal,
        change: SettingsChange,
    ) -> Result<Settings> {
        self.run("put_settings", Some(caller), Role::Owner, async {
            let db = self.app.database();
            if let Some(name) = &change.timezone {
                invoicing::parse_timezone(name)?;
            }
            if let Some(lock) = change.lock_date {
                ledger::set_lock_date(db, &org(caller), lock, &caller.user.to_string()).await?;
            }
            if change.tax_rounding.is_some() || change.timezone.is_some() {
                let change = invoicing::SettingsChange {
                    tax_rounding: change.tax_rounding,
                    timezone: change.timezone,
                };
                invoicing::put_settings(db, &org(caller), change).await?;
            }
            self.read_settings(caller).await
        })
        .await
    }

    /// A page of the changes of the settings (the lock date's), oldest first.
    pub async fn settings_history(
        &self,
        caller: &Principal,
        page: PageRequest<i64>,
    ) -> Result<Page<Vec<SettingChange>>> {
        self.run("settings_history", Some(caller), Role::Viewer, async {
            Ok(ledger::settings_history(self.app.database(), &org(caller), &page).await?)
        })
        .await
    }

    /// Closes the books through a day (owners only): posts the closing entry
    /// and locks the period.
    pub async fn close_period(
        &self,
        caller: &Principal,
        input: Close,
        key: Option<ClientKey>,
    ) -> Result<Answer<Entry>> {
        let keyed = Keyed {
            operation: "close_period",
            target: None,
            input: &input,
        };
        self.run("close_period", Some(caller), Role::Owner, async {
            let through = ledger::parse_date(&input.through)?;
            self.keyed(caller, key, keyed, |key| async move {
                let render: ledger::RenderEntry = stored::<Entry>;
                Ok(ledger::close_period(
                    self.app.ledger(),
                    &org(caller),
                    through,
                    &caller.user.to_string(),
                    key.map(|key| (key, render)),
                )
                .await?)
            })
            .await
        })
        .await
    }
}

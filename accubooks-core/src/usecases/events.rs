//! The organization's events (contract §10): the polling alternative to
//! webhooks, and the source to replay them from.

use super::{Books, Result, org};
use crate::events::{self, Event, EventFilter};
use crate::identity::{Principal, Role};
use crate::ledger::LedgerError;
use crate::paging::{Page, PageRequest};

impl Books<'_> {
    /// A page of the organization's events in commit order, after
    /// `page.after`, of the `types` given (comma-separated; all when
    /// `None`). Accountants and owners only: events show pay runs.
    pub async fn events(
        &self,
        caller: &Principal,
        types: Option<&str>,
        page: PageRequest<i64>,
    ) -> Result<Page<Vec<Event>>> {
        let filter = event_filter(types)?;
        self.run("events", Some(caller), Role::Accountant, async {
            Ok(events::list(self.app.database(), &org(caller), &filter, &page).await?)
        })
        .await
    }
}

/// The filter named by `types`, each one a known type (422
/// `UNKNOWN_EVENT_TYPE` naming the first that is not).
fn event_filter(types: Option<&str>) -> Result<EventFilter> {
    let mut filter = EventFilter::default();
    for name in types.into_iter().flat_map(|t| t.split(',')).map(str::trim) {
        if name.is_empty() {
            continue;
        }
        let known = events::parse_type(name).ok_or_else(|| {
            LedgerError::invalid(
                "UNKNOWN_EVENT_TYPE",
                format!(
                    "There is no event type {name:?}; the types are {}.",
                    events::TYPES.join(", ")
                ),
            )
        })?;
        if !filter.types.contains(&known) {
            filter.types.push(known);
        }
    }
    Ok(filter)
}

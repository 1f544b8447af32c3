//! The event feed (contract §10).

use super::{ApiError, Request, Response, Route, list_query, page_response};
use crate::app::AccuBooks;
use crate::events::Event;
use crate::identity::Role;
use serde::Deserialize;

use super::Access;

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::read("/api/events", list_events)
            .access(Access::Role(Role::Accountant))
            .summary(
                "The organization's events in commit order (accountants and owners): give the \
                 cursor of the last event you processed as after to read only what followed",
            )
            .query(
                "types",
                "Only these event types, comma-separated (entry.posted, invoice.paid, …)",
                false,
            )
            .paged()
            .returns_list::<Event>(200)
            .answers(422, "UNKNOWN_EVENT_TYPE"),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventQuery {
    types: Option<String>,
}

async fn list_events(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (page, query): (_, EventQuery) = list_query(&request)?;
    let events = app
        .books()
        .events(&request.principal()?, query.types.as_deref(), page)
        .await?;
    Ok(page_response(&request, &events))
}

//! Routes of the organization's settings, the lock date and the year-end
//! close.

use http::{Method, StatusCode};

use super::{
    Access, ApiError, NoFilter, Request, Response, Route, answer_response, json_response,
    list_query, page_response,
};
use crate::app::AccuBooks;
use crate::deps::DATABASE;
use crate::identity::Role;
use crate::ledger::{self, SettingChange};
use crate::usecases::{Close, Settings, SettingsChange};

pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::read("/api/settings", get_settings)
            .summary("The organization's settings")
            .returns::<Settings>(200),
        Route::new(Method::PUT, "/api/settings", put_settings)
            .needs(DATABASE)
            .access(Access::Role(Role::Owner))
            .summary(
                "Change the organization's settings (owners only); fields left out keep their \
                 value. lock_date locks the books through a day (null unlocks)",
            )
            .body::<SettingsChange>()
            .returns::<Settings>(200),
        Route::read("/api/settings/history", settings_history)
            .summary("The changes of the lock date, oldest first: who, when, from, to and why")
            .paged()
            .returns_list::<SettingChange>(200),
        Route::new(Method::POST, "/api/periods/close", close_period)
            .needs(DATABASE)
            .access(Access::Role(Role::Owner))
            .idempotent()
            .summary(
                "Close the books through a day (owners only): posts the closing entry (revenue \
                 and expense balances into retained earnings 3900) and sets the lock date",
            )
            .body::<Close>()
            .returns::<ledger::Entry>(201)
            .answers(
                409,
                "PERIOD_ALREADY_CLOSED (closed and still locked) or PERIOD_LOCKED (locked after the day)",
            ),
    ]
}

async fn get_settings(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let settings = app.books().settings(&request.principal()?).await?;
    Ok(json_response(StatusCode::OK, &settings))
}

async fn put_settings(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, settings) = (request.principal()?, request.json()?);
    let settings = app.books().put_settings(&caller, settings).await?;
    Ok(json_response(StatusCode::OK, &settings))
}

async fn settings_history(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (page, NoFilter {}) = list_query(&request)?;
    let history = app
        .books()
        .settings_history(&request.principal()?, page)
        .await?;
    Ok(page_response(&request, &history))
}

async fn close_period(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, input, key) = (request.principal()?, request.json()?, request.key()?);
    let entry = app.books().close_period(&caller, input, key).await?;
    Ok(answer_response(StatusCode::CREATED, &entry))
}

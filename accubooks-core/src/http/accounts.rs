//! The chart-of-accounts routes.

use http::{Method, StatusCode};
use serde::Serialize;

use super::{ApiError, Request, Response, Route, json_response};
use crate::app::AccuBooks;
use crate::deps::DATABASE;
use crate::ledger;

pub(crate) fn routes() -> Vec<Route> {
    vec![Route::new(Method::GET, "/api/accounts", list).needs(DATABASE)]
}

#[derive(Serialize)]
struct AccountJson {
    id: String,
    code: String,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    currency: String,
    balance: String,
}

async fn list(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let principal = request.principal()?;
    let accounts = ledger::list_accounts(app.database(), principal.organization).await?;
    let body: Vec<AccountJson> = accounts
        .into_iter()
        .map(|a| AccountJson {
            balance: a.balance_text(),
            id: a.id,
            code: a.code,
            name: a.name,
            kind: a.kind,
            currency: a.currency,
        })
        .collect();
    Ok(json_response(StatusCode::OK, &body))
}

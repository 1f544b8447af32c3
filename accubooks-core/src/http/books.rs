//! Routes of the books: accounts and journal entries.

use http::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::{ApiError, Handler, Request, Response, Route, json_response, render_created};
use crate::app::AccuBooks;
use crate::auth::Role;
use crate::deps::DATABASE;
use crate::ledger::{self, Account, EntryInput};

pub(crate) fn routes() -> Vec<Route> {
    fn read(method: Method, path: &'static str, handler: impl Handler) -> Route {
        Route::new(method, path, handler).needs(DATABASE)
    }
    fn write(method: Method, path: &'static str, handler: impl Handler) -> Route {
        Route::new(method, path, handler)
            .needs(DATABASE)
            .access(super::Access::Role(Role::Accountant))
            .idempotent()
    }
    vec![
        read(Method::GET, "/api/accounts", list_accounts)
            .summary("The chart of accounts with current balances")
            .returns_list::<AccountJson<'static>>(200),
        write(Method::POST, "/api/accounts", create_account)
            .summary("Open an account")
            .body::<ledger::NewAccount>()
            .returns::<AccountJson<'static>>(201),
        write(Method::POST, "/api/journal-entries", post_entry)
            .summary("Post a balanced journal entry")
            .body::<EntryInput>()
            .returns::<ledger::Entry>(201),
        write(Method::POST, "/api/journal-entries/batch", post_batch)
            .summary("Post many entries atomically, in one transaction")
            .body::<Batch>()
            .returns::<BatchAnswer<'static>>(201)
            .answers(
                429,
                "Too many large batches run at once (LARGE_BATCHES_PER_ORGANIZATION, LARGE_BATCHES_MAX)",
            ),
        read(Method::GET, "/api/journal-entries/{id}", get_entry)
            .summary("A posted entry")
            .returns::<ledger::Entry>(200),
        write(
            Method::POST,
            "/api/journal-entries/{id}/reverse",
            reverse_entry,
        )
        .summary("Post the mirror entry of a posted one (once)")
        .body::<ReverseInput>()
        .returns::<ledger::Entry>(201),
    ]
}

/// An account as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Account)]
pub(crate) struct AccountJson<'a> {
    id: i64,
    code: &'a str,
    name: &'a str,
    #[serde(rename = "type")]
    kind: ledger::AccountType,
    currency: &'a str,
    parent: Option<&'a str>,
    balance: String,
}

impl<'a> From<&'a Account> for AccountJson<'a> {
    fn from(a: &'a Account) -> Self {
        AccountJson {
            id: a.id,
            code: &a.code,
            name: &a.name,
            kind: a.kind,
            currency: &a.currency,
            parent: a.parent.as_deref(),
            balance: a.balance_text(),
        }
    }
}

async fn list_accounts(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let accounts = ledger::list_accounts(app.database(), &request.organization()?).await?;
    let body: Vec<AccountJson<'_>> = accounts.iter().map(AccountJson::from).collect();
    Ok(json_response(StatusCode::OK, &body))
}

async fn create_account(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let new: ledger::NewAccount = request.json()?;
    let render = |account: &Account| render_created(&AccountJson::from(account));
    let key = request
        .idempotency
        .as_ref()
        .map(|k| (k, &render as ledger::RenderRecord<'_, Account>));
    let account =
        ledger::create_account(app.database(), &request.organization()?, new, key).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &AccountJson::from(&account),
    ))
}

async fn post_entry(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let input: EntryInput = request.json()?;
    let organization = request.organization()?;
    let entry = ledger::prepare(app.database(), &organization, &input).await?;
    let shown = entry.clone();
    let idempotency = request.idempotency.clone().map(|key| {
        let render: ledger::Render =
            Box::new(move |ids: &[i64]| render_created(&shown.posted(ids[0])));
        (key, render)
    });
    let ids = app
        .committer()
        .post(vec![entry.clone()], idempotency)
        .await?;
    Ok(json_response(StatusCode::CREATED, &entry.posted(ids[0])))
}

/// Most entries one batch may carry.
const MAX_BATCH: usize = 10_000;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Batch {
    entries: Vec<EntryInput>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct BatchAnswer<'a> {
    ids: &'a [i64],
}

async fn post_batch(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let batch: Batch = request.json()?;
    if batch.entries.is_empty() || batch.entries.len() > MAX_BATCH {
        return Err(ApiError::invalid(
            "INVALID_BATCH",
            format!("A batch carries 1 to {MAX_BATCH} entries."),
        ));
    }
    let organization = request.organization()?;
    let _slot = app
        .work_limits()
        .acquire_batch(&organization, batch.entries.len())?;
    let entries = ledger::prepare_batch(app.database(), &organization, &batch.entries)
        .await
        .map_err(|(index, err)| match ApiError::from(err) {
            ApiError::Invalid { code, message } => ApiError::Invalid {
                code,
                message: format!("Entry {}: {message}", index + 1),
            },
            other => other,
        })?;
    let idempotency = request.idempotency.clone().map(|key| {
        let render: ledger::Render = Box::new(|ids: &[i64]| render_created(&BatchAnswer { ids }));
        (key, render)
    });
    let ids = app.committer().post(entries, idempotency).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &BatchAnswer { ids: &ids },
    ))
}

fn entry_id(request: &Request) -> Result<i64, ApiError> {
    request
        .param("id")
        .and_then(|id| id.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::NotFound("There is no such journal entry.".to_owned()))
}

async fn get_entry(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let entry = ledger::get_entry(
        app.database(),
        &request.organization()?,
        entry_id(&request)?,
    )
    .await?;
    Ok(json_response(StatusCode::OK, &entry))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReverseInput {
    #[serde(default)]
    date: Option<String>,
}

async fn reverse_entry(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let id = entry_id(&request)?;
    let input: ReverseInput = if request.body.is_empty() {
        ReverseInput::default()
    } else {
        request.json()?
    };
    let date = input.date.as_deref().map(ledger::parse_date).transpose()?;
    let organization = request.organization()?;
    let render: ledger::RenderEntry = render_created::<ledger::Entry>;
    let idempotency = request.idempotency.clone().map(|key| (key, render));
    let entry = ledger::post_reversal(
        app.database(),
        app.committer(),
        &organization,
        id,
        date,
        idempotency,
    )
    .await?;
    Ok(json_response(StatusCode::CREATED, &entry))
}

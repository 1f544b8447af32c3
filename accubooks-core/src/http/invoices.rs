//! Routes of customers, invoices, payments and credit notes.

use http::{Method, StatusCode};
use serde::Deserialize;

use super::{Access, ApiError, Handler, Request, Response, Route, json_response, render_created};
use crate::app::AccuBooks;
use crate::auth::Role;
use crate::deps::DATABASE;
use crate::ledger::{self, NewCreditNote, NewCustomer, NewInvoice};

pub(crate) fn routes() -> Vec<Route> {
    fn read(path: &'static str, handler: impl Handler) -> Route {
        Route::new(Method::GET, path, handler).needs(DATABASE)
    }
    fn write(path: &'static str, handler: impl Handler) -> Route {
        Route::new(Method::POST, path, handler)
            .needs(DATABASE)
            .access(Access::Role(Role::Accountant))
            .idempotent()
    }
    vec![
        read("/api/customers", list_customers)
            .summary("Customers")
            .returns_list::<ledger::Customer>(200),
        write("/api/customers", create_customer)
            .summary("Add a customer")
            .body::<NewCustomer>()
            .returns::<ledger::Customer>(201),
        read("/api/invoices", list_invoices)
            .summary("Invoices and credit notes, newest first (at most 1000)")
            .returns_list::<ledger::Invoice>(200),
        write("/api/invoices", create_invoice)
            .summary("Create a draft invoice; totals are computed once, here")
            .body::<NewInvoice>()
            .returns::<ledger::Invoice>(201),
        read("/api/invoices/{id}", get_invoice)
            .summary("An invoice or credit note")
            .returns::<ledger::Invoice>(200),
        write("/api/invoices/{id}/issue", issue)
            .summary("Issue a draft: posts receivables, revenue and tax payable")
            .body::<Dated>()
            .returns::<ledger::Invoice>(200),
        write("/api/invoices/{id}/payments", pay)
            .summary("Record a (partial) payment: posts cash against receivables")
            .body::<Payment>()
            .returns::<ledger::Invoice>(201),
        write("/api/invoices/{id}/void", void)
            .summary("Void a draft, or an issued invoice without payments (reverses its posting)")
            .body::<Dated>()
            .returns::<ledger::Invoice>(200),
        write("/api/invoices/{id}/credit-notes", credit)
            .summary("Credit part of an open invoice: posts returns and tax against receivables")
            .body::<NewCreditNote>()
            .returns::<ledger::Invoice>(201),
        read("/api/reports/ar-aging", ar_aging)
            .summary("Receivables outstanding by days past due")
            .query_date("as_of", "Default today (UTC)", false)
            .returns::<ledger::ArAging>(200),
        read("/api/settings", get_settings)
            .summary("The organization's settings")
            .returns::<ledger::Settings>(200),
        Route::new(Method::PUT, "/api/settings", put_settings)
            .needs(DATABASE)
            .access(Access::Role(Role::Owner))
            .summary("Replace the organization's settings (owners only)")
            .body::<ledger::Settings>()
            .returns::<ledger::Settings>(200),
    ]
}

fn invoice_id(request: &Request) -> Result<i64, ApiError> {
    request
        .param("id")
        .and_then(|id| id.parse::<i64>().ok())
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::NotFound("There is no such invoice.".to_owned()))
}

/// A body that may be empty.
fn optional_json<T: Default + serde::de::DeserializeOwned>(
    request: &Request,
) -> Result<T, ApiError> {
    if request.body.is_empty() {
        Ok(T::default())
    } else {
        request.json()
    }
}

async fn create_customer(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let new: NewCustomer = request.json()?;
    let render = |customer: &ledger::Customer| render_created(customer);
    let idempotency = request.idempotency.as_ref().map(|k| (k, &render as _));
    let customer =
        ledger::create_customer(app.database(), &request.organization()?, new, idempotency).await?;
    Ok(json_response(StatusCode::CREATED, &customer))
}

async fn list_customers(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let customers = ledger::list_customers(app.database(), &request.organization()?).await?;
    Ok(json_response(StatusCode::OK, &customers))
}

async fn create_invoice(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let new: NewInvoice = request.json()?;
    let render = |invoice: &ledger::Invoice| render_created(invoice);
    let idempotency = request.idempotency.as_ref().map(|k| (k, &render as _));
    let invoice =
        ledger::create_invoice(app.database(), &request.organization()?, new, idempotency).await?;
    Ok(json_response(StatusCode::CREATED, &invoice))
}

async fn list_invoices(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let invoices = ledger::list_invoices(app.database(), &request.organization()?).await?;
    Ok(json_response(StatusCode::OK, &invoices))
}

async fn get_invoice(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let invoice = ledger::get_invoice(
        app.database(),
        &request.organization()?,
        invoice_id(&request)?,
    )
    .await?;
    Ok(json_response(StatusCode::OK, &invoice))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Dated {
    #[serde(default)]
    date: Option<String>,
}

async fn issue(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let body: Dated = optional_json(&request)?;
    let invoice = ledger::issue_invoice(
        app.database(),
        app.committer(),
        &request.organization()?,
        invoice_id(&request)?,
        body.date.as_deref(),
        request.idempotency.clone(),
    )
    .await?;
    Ok(json_response(StatusCode::OK, &invoice))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Payment {
    amount: crate::money::AmountText,
    #[serde(default)]
    date: Option<String>,
}

async fn pay(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let payment: Payment = request.json()?;
    let invoice = ledger::record_payment(
        app.database(),
        app.committer(),
        &request.organization()?,
        invoice_id(&request)?,
        &payment.amount.0,
        payment.date.as_deref(),
        request.idempotency.clone(),
    )
    .await?;
    Ok(json_response(StatusCode::CREATED, &invoice))
}

async fn void(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let body: Dated = optional_json(&request)?;
    let invoice = ledger::void_invoice(
        app.database(),
        app.committer(),
        &request.organization()?,
        invoice_id(&request)?,
        body.date.as_deref(),
        request.idempotency.clone(),
    )
    .await?;
    Ok(json_response(StatusCode::OK, &invoice))
}

async fn credit(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let new: NewCreditNote = request.json()?;
    let note = ledger::credit_note(
        app.database(),
        app.committer(),
        &request.organization()?,
        invoice_id(&request)?,
        new,
        request.idempotency.clone(),
    )
    .await?;
    Ok(json_response(StatusCode::CREATED, &note))
}

async fn get_settings(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let settings = ledger::get_settings(app.database(), &request.organization()?).await?;
    Ok(json_response(StatusCode::OK, &settings))
}

async fn put_settings(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let settings: ledger::Settings = request.json()?;
    let settings = ledger::put_settings(app.database(), &request.organization()?, settings).await?;
    Ok(json_response(StatusCode::OK, &settings))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AsOf {
    as_of: Option<String>,
}

async fn ar_aging(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let q: AsOf = super::reports::query(&request)?;
    let as_of = super::reports::date_or_today(q.as_of.as_deref())?;
    let report = ledger::ar_aging(app.database(), &request.organization()?, as_of).await?;
    Ok(json_response(StatusCode::OK, &report))
}

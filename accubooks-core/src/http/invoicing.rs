//! Routes of invoicing: customers, invoices, payments and credit notes,
//! recurring invoices, and card payments through Stripe with its webhook.

use http::{Method, StatusCode};
use serde::Deserialize;

use super::reporting::query;
use super::{
    Access, ApiError, NoFilter, Request, Response, Route, answer_response, json_response,
    list_query, page_response,
};
use crate::app::AccuBooks;
use crate::deps::{DATABASE, STRIPE};
use crate::identity::Role;
use crate::invoicing;
use crate::invoicing::payments::PaymentIntent;
use crate::invoicing::recurring::{NewRecurringInvoice, Preview, RecurringInvoice};
use crate::invoicing::{NewCreditNote, NewCustomer, NewInvoice};
use crate::usecases::{Client, Dated, Payment, WebhookReceipt};

pub(crate) fn routes() -> Vec<Route> {
    let mut routes = invoice_routes();
    routes.extend(recurring_routes());
    routes.extend(payment_routes());
    routes
}

fn invoice_routes() -> Vec<Route> {
    vec![
        Route::read("/api/customers", list_customers)
            .summary("Customers, oldest first")
            .query(
                "metadata[KEY]",
                "Only customers whose metadata has KEY set to this value (each pair at most once)",
                false,
            )
            .paged()
            .returns_list::<invoicing::Customer>(200),
        Route::change(Method::POST, "/api/customers", create_customer)
            .idempotent()
            .summary("Add a customer")
            .body::<NewCustomer>()
            .returns::<invoicing::Customer>(201),
        Route::change(
            Method::PUT,
            "/api/customers/{id}/metadata",
            replace_customer_metadata,
        )
        .summary("Replace a customer's metadata ({} removes it)")
        .body::<crate::metadata::Metadata>()
        .returns::<invoicing::Customer>(200),
        Route::read("/api/invoices", list_invoices)
            .summary(
                "Invoices and credit notes with their lines, newest first; a page holds at most \
                 5000 lines (INVOICE_LINES_PER_PAGE), fewer invoices than limit if need be",
            )
            .query(
                "status",
                "draft, issued, partially_paid, paid or void",
                false,
            )
            .query("customer_id", "Only this customer's", false)
            .query(
                "metadata[KEY]",
                "Only invoices whose metadata has KEY set to this value (each pair at most once)",
                false,
            )
            .paged()
            .returns_list::<invoicing::Invoice>(200),
        Route::change(Method::POST, "/api/invoices", create_invoice)
            .idempotent()
            .summary("Create a draft invoice; totals are computed once, here")
            .body::<NewInvoice>()
            .returns::<invoicing::Invoice>(201),
        Route::read("/api/invoices/{id}", get_invoice)
            .summary("An invoice or credit note")
            .returns::<invoicing::Invoice>(200),
        Route::change(Method::POST, "/api/invoices/{id}/issue", issue)
            .idempotent()
            .summary(
                "Issue a draft: posts receivables, revenue and tax payable, and gives it the \
                 organization's next number (INV-000001, …) in the order of issue dates",
            )
            .body::<Dated>()
            .answers(
                409,
                "INVOICE_DATE_ORDER: dated before the organization's last issued invoice",
            )
            .returns::<invoicing::Invoice>(200),
        Route::change(Method::POST, "/api/invoices/{id}/payments", pay)
            .idempotent()
            .summary("Record a (partial) payment: posts cash against receivables")
            .body::<Payment>()
            .returns::<invoicing::Invoice>(201),
        Route::change(Method::POST, "/api/invoices/{id}/void", void)
            .idempotent()
            .summary("Void a draft, or an issued invoice without payments (reverses its posting)")
            .body::<Dated>()
            .returns::<invoicing::Invoice>(200),
        Route::change(Method::POST, "/api/invoices/{id}/credit-notes", credit)
            .idempotent()
            .summary(
                "Credit part of an open invoice: posts returns and tax against receivables; the \
                 credit note is numbered CN-000001, … in the order of issue dates",
            )
            .body::<NewCreditNote>()
            .answers(
                409,
                "INVOICE_DATE_ORDER: dated before the organization's last credit note",
            )
            .returns::<invoicing::Invoice>(201),
        Route::read("/api/reports/ar-aging", ar_aging)
            .summary("Receivables outstanding by days past due")
            .query_date("as_of", "Default today (UTC)", false)
            .returns::<invoicing::ArAging>(200),
    ]
}

const NO_SUCH_INVOICE: &str = "There is no such invoice.";

async fn create_customer(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, new, key) = (request.principal()?, request.json()?, request.key()?);
    let customer = app.books().create_customer(&caller, new, key).await?;
    Ok(answer_response(StatusCode::CREATED, &customer))
}

async fn list_customers(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (page, NoFilter {}, metadata) = super::list_query_with_metadata(&request)?;
    let customers = app
        .books()
        .customers(&request.principal()?, metadata, page)
        .await?;
    Ok(page_response(&request, &customers))
}

async fn replace_customer_metadata(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let caller = request.principal()?;
    let id = request.id("There is no such customer.")?;
    let customer = app
        .books()
        .replace_customer_metadata(&caller, id, request.json()?)
        .await?;
    Ok(json_response(StatusCode::OK, &customer))
}

async fn create_invoice(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, new, key) = (request.principal()?, request.json()?, request.key()?);
    let invoice = app.books().create_invoice(&caller, new, key).await?;
    Ok(answer_response(StatusCode::CREATED, &invoice))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InvoiceQuery {
    status: Option<String>,
    customer_id: Option<String>,
}

async fn list_invoices(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (page, query, metadata): (_, InvoiceQuery, _) = super::list_query_with_metadata(&request)?;
    let status = query
        .status
        .map(|name| {
            invoicing::InvoiceStatus::from_name(&name).ok_or_else(|| {
                ApiError::invalid(
                    "INVALID_QUERY",
                    "status is draft, issued, partially_paid, paid or void.",
                )
            })
        })
        .transpose()?;
    let customer_id = query
        .customer_id
        .map(|id| {
            id.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
                ApiError::invalid("INVALID_QUERY", "customer_id is a customer's id.")
            })
        })
        .transpose()?;
    let filter = invoicing::InvoiceFilter {
        status,
        customer_id,
        metadata,
    };
    let invoices = app
        .books()
        .invoices(&request.principal()?, filter, page)
        .await?;
    Ok(page_response(&request, &invoices))
}

async fn get_invoice(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_INVOICE)?);
    let invoice = app.books().invoice(&caller, id).await?;
    Ok(json_response(StatusCode::OK, &invoice))
}

async fn issue(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_INVOICE)?);
    let (input, key) = (request.optional_json()?, request.key()?);
    let invoice = app.books().issue_invoice(&caller, id, input, key).await?;
    Ok(answer_response(StatusCode::OK, &invoice))
}

async fn pay(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_INVOICE)?);
    let (payment, key) = (request.json()?, request.key()?);
    let invoice = app.books().pay_invoice(&caller, id, payment, key).await?;
    Ok(answer_response(StatusCode::CREATED, &invoice))
}

async fn void(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_INVOICE)?);
    let (input, key) = (request.optional_json()?, request.key()?);
    let invoice = app.books().void_invoice(&caller, id, input, key).await?;
    Ok(answer_response(StatusCode::OK, &invoice))
}

async fn credit(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_INVOICE)?);
    let (new, key) = (request.json()?, request.key()?);
    let note = app.books().credit_note(&caller, id, new, key).await?;
    Ok(answer_response(StatusCode::CREATED, &note))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AsOf {
    as_of: Option<String>,
}

async fn ar_aging(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let q: AsOf = super::reporting::query(&request)?;
    let as_of = super::reporting::optional_date(q.as_of.as_deref())?;
    let report = app.books().ar_aging(&request.principal()?, as_of).await?;
    Ok(json_response(StatusCode::OK, &report))
}

fn recurring_routes() -> Vec<Route> {
    vec![
        Route::change(Method::POST, "/api/recurring-invoices", create_recurring)
            .idempotent()
            .summary(
                "Create a recurring invoice; each occurrence on or before today (in the \
                 organization's time zone) becomes one invoice, missed ones included",
            )
            .body::<NewRecurringInvoice>()
            .returns::<RecurringInvoice>(201),
        Route::read("/api/recurring-invoices", list_recurring)
            .summary("The organization's recurring invoices, oldest first")
            .paged()
            .returns_list::<RecurringInvoice>(200),
        Route::read("/api/recurring-invoices/{id}", get_recurring)
            .summary("A recurring invoice")
            .returns::<RecurringInvoice>(200),
        Route::read("/api/recurring-invoices/{id}/preview", preview)
            .summary("The next occurrences not yet generated")
            .query("count", "How many, 1 to 500; default 12", false)
            .returns::<Preview>(200),
    ]
}

const NO_SUCH_RECURRING: &str = "There is no such recurring invoice.";

async fn create_recurring(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, new, key) = (request.principal()?, request.json()?, request.key()?);
    let recurring = app
        .books()
        .create_recurring_invoice(&caller, new, key)
        .await?;
    Ok(answer_response(StatusCode::CREATED, &recurring))
}

async fn list_recurring(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (page, NoFilter {}) = list_query(&request)?;
    let recurring = app
        .books()
        .recurring_invoices(&request.principal()?, page)
        .await?;
    Ok(page_response(&request, &recurring))
}

async fn get_recurring(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_RECURRING)?);
    let recurring = app.books().recurring_invoice(&caller, id).await?;
    Ok(json_response(StatusCode::OK, &recurring))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Count {
    count: Option<String>,
}

async fn preview(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_RECURRING)?);
    let count: Count = query(&request)?;
    let count = match count.count {
        None => 12,
        Some(text) => text.parse().map_err(|_| {
            ApiError::invalid("INVALID_QUERY", "count is a whole number from 1 to 500.")
        })?,
    };
    let preview = app
        .books()
        .preview_recurring_invoice(&caller, id, count)
        .await?;
    Ok(json_response(StatusCode::OK, &preview))
}

/// The largest body Stripe's webhook takes (256 KiB, or `BODY_LIMIT_BYTES`
/// when that is smaller): Stripe's events are a few KiB, so a larger body
/// is refused (413) before it is read, let alone signed.
pub const STRIPE_WEBHOOK_BODY_LIMIT: usize = 256 * 1024;

fn payment_routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::POST,
            "/api/invoices/{id}/payment-intent",
            payment_intent,
        )
        .needs(DATABASE)
        .needs(STRIPE)
        .access(Access::Role(Role::Accountant))
        .summary(
            "A Stripe PaymentIntent for an issued invoice's open amount; asked again for \
                 the same open amount, the same intent",
        )
        .returns::<PaymentIntent>(201)
        .answers(409, "The invoice is not open (INVOICE_NOT_OPEN)")
        .answers(
            422,
            "Stripe cannot charge the amount exactly (AMOUNT_NOT_PAYABLE), or refused it \
                 (PAYMENT_REJECTED)",
        ),
        Route::new(Method::POST, "/api/webhooks/stripe", stripe_webhook)
            .needs(DATABASE)
            .access(Access::Public)
            .signed_webhook(STRIPE, STRIPE_WEBHOOK_BODY_LIMIT)
            .summary(
                "Stripe's webhook: the raw body signed in Stripe-Signature with \
                 STRIPE_WEBHOOK_SECRET; payments and refunds are posted once per event and \
                 per PaymentIntent",
            )
            .returns::<WebhookReceipt>(200)
            .answers(
                400,
                "A missing, forged or stale Stripe-Signature (INVALID_SIGNATURE)",
            ),
    ]
}

async fn payment_intent(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (
        request.principal()?,
        request.id("There is no such invoice.")?,
    );
    let intent = app.books().payment_intent(&caller, id).await?;
    Ok(json_response(StatusCode::CREATED, &intent))
}

async fn stripe_webhook(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let signature = request.header(http::HeaderName::from_static("stripe-signature"));
    let client = Client::Remote(request.client);
    let receipt = app
        .books()
        .stripe_webhook(&request.body, signature, client)
        .await?;
    Ok(json_response(StatusCode::OK, &receipt))
}

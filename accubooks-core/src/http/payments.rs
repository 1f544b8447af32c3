//! Routes of card payments (Stripe).

use http::{Method, StatusCode};

use super::{Access, ApiError, Request, Response, Route, json_response};
use crate::app::AccuBooks;
use crate::deps::{DATABASE, STRIPE};
use crate::identity::Role;
use crate::invoicing::payments::PaymentIntent;
use crate::usecases::{Client, WebhookReceipt};

/// The largest body Stripe's webhook takes (256 KiB, or `BODY_LIMIT_BYTES`
/// when that is smaller): Stripe's events are a few KiB, so a larger body
/// is refused (413) before it is read, let alone signed.
pub const STRIPE_WEBHOOK_BODY_LIMIT: usize = 256 * 1024;

pub(crate) fn routes() -> Vec<Route> {
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

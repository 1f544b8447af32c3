//! Routes of outgoing webhook endpoints (owners only, contract §10).

use http::{Method, StatusCode};

use super::{
    Access, ApiError, NoFilter, Request, Response, Route, answer_response, json_response,
    list_query, page_response,
};
use crate::app::AccuBooks;
use crate::deps::DATABASE;
use crate::identity::Role;
use crate::webhooks::{
    Created, Delivery, Endpoint, NO_SUCH_DELIVERY, NO_SUCH_ENDPOINT, NewEndpoint,
};

pub(crate) fn routes() -> Vec<Route> {
    let owner = Access::Role(Role::Owner);
    vec![
        Route::new(Method::POST, "/api/webhook-endpoints", create_endpoint)
            .needs(DATABASE)
            .access(owner)
            .idempotent()
            .summary(
                "Register a webhook endpoint (owners only). The answer's whsec_ secret is shown \
                 only here and on rotation. 422: TOO_MANY_ENDPOINTS (16 per organization), \
                 URL_TOO_LONG (2,048 bytes), DESCRIPTION_TOO_LONG (256 bytes), \
                 TOO_MANY_EVENT_TYPES (32), UNKNOWN_EVENT_TYPE, WEBHOOK_URL_FORBIDDEN (not \
                 https://, or a loopback, private, link-local, unique-local or metadata address)",
            )
            .body::<NewEndpoint>()
            .returns::<Created>(201),
        Route::new(Method::GET, "/api/webhook-endpoints", list_endpoints)
            .needs(DATABASE)
            .access(owner)
            .summary("The organization's webhook endpoints, oldest first (owners only)")
            .paged()
            .returns_list::<Endpoint>(200),
        Route::new(
            Method::DELETE,
            "/api/webhook-endpoints/{id}",
            delete_endpoint,
        )
        .needs(DATABASE)
        .access(owner)
        .summary("Delete a webhook endpoint and its deliveries (owners only)")
        .returns_empty(204),
        Route::new(
            Method::POST,
            "/api/webhook-endpoints/{id}/rotate-secret",
            rotate_secret,
        )
        .needs(DATABASE)
        .access(owner)
        .summary(
            "Give an endpoint a new signing secret, answered once; deliveries are signed with \
             the new and the previous secret for 24 hours",
        )
        .returns::<Created>(200),
        Route::new(
            Method::GET,
            "/api/webhook-endpoints/{id}/deliveries",
            list_deliveries,
        )
        .needs(DATABASE)
        .access(owner)
        .summary(
            "An endpoint's deliveries, newest first: status, attempts, the last answer's status \
             and at most 256 bytes of its body, the event, the next attempt",
        )
        .paged()
        .returns_list::<Delivery>(200),
        Route::new(
            Method::POST,
            "/api/webhook-endpoints/{id}/deliveries/{delivery}/retry",
            retry_delivery,
        )
        .needs(DATABASE)
        .access(owner)
        .summary("Make a delivery pending and due now (another three days before it is given up)")
        .returns::<Delivery>(200)
        .answers(409, "The endpoint is disabled (ENDPOINT_DISABLED)"),
    ]
}

async fn create_endpoint(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, input, key) = (request.principal()?, request.json()?, request.key()?);
    let created = app
        .books()
        .create_webhook_endpoint(&caller, input, key)
        .await?;
    Ok(answer_response(StatusCode::CREATED, &created))
}

async fn list_endpoints(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (page, NoFilter {}) = list_query(&request)?;
    let endpoints = app
        .books()
        .webhook_endpoints(&request.principal()?, page)
        .await?;
    Ok(page_response(&request, &endpoints))
}

async fn delete_endpoint(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_ENDPOINT)?);
    app.books().delete_webhook_endpoint(&caller, id).await?;
    let mut response = http::Response::new(super::Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

async fn rotate_secret(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_ENDPOINT)?);
    let created = app.books().rotate_webhook_secret(&caller, id).await?;
    Ok(json_response(StatusCode::OK, &created))
}

async fn list_deliveries(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_ENDPOINT)?);
    let (page, NoFilter {}) = list_query(&request)?;
    let deliveries = app.books().webhook_deliveries(&caller, id, page).await?;
    Ok(page_response(&request, &deliveries))
}

async fn retry_delivery(app: AccuBooks, request: Request) -> Result<Response, ApiError> {
    let (caller, id) = (request.principal()?, request.id(NO_SUCH_ENDPOINT)?);
    let delivery = request
        .param("delivery")
        .and_then(|d| d.parse::<i64>().ok())
        .filter(|d| *d > 0)
        .ok_or_else(|| ApiError::NotFound(NO_SUCH_DELIVERY.to_owned()))?;
    let retried = app
        .books()
        .retry_webhook_delivery(&caller, id, delivery)
        .await?;
    Ok(json_response(StatusCode::OK, &retried))
}

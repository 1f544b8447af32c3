//! The framework-neutral HTTP layer: `http` 1.x requests in, responses out.
//!
//! Hosts hand every request to [`AccuBooks::handle`](crate::AccuBooks::handle);
//! the pipeline here assigns the request id, finds the route, applies the
//! dependency guard and access rule, bounds body size and duration, catches
//! panics, and records logs and metrics. Status codes and error bodies are
//! decided in [`ApiError`] alone.

mod auth_routes;
mod books;
mod error;
mod export;
mod invoices;
mod monitoring;
mod openapi;
mod pipeline;
mod reports;
mod route;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::{ApiError, DATABASE_UNAVAILABLE};
pub use openapi::document as openapi_document;
pub use pipeline::REQUEST_ID_HEADER;
pub use route::{Access, Handler, Route, RouteDoc, RouteTable, SchemaFn};

use crate::auth::Principal;
use crate::ledger::idempotency::IdempotencyKey;

/// A response with its whole body.
pub type Response = http::Response<Bytes>;

/// A request that matched a route, with its body read.
#[derive(Debug)]
pub struct Request {
    /// Method, URI, headers and extensions.
    pub parts: http::request::Parts,
    /// The body, at most `BODY_LIMIT_BYTES` long.
    pub body: Bytes,
    /// Path parameters, by name.
    pub params: Vec<(String, String)>,
    /// The request id, echoed in the response and logs.
    pub request_id: String,
    /// The peer's address, when the host knows it.
    pub peer: Option<SocketAddr>,
    /// The caller, for routes that need a token.
    pub principal: Option<Principal>,
    /// The `Idempotency-Key` of a creating request whose key is new; the
    /// handler stores its answer under it, in the same transaction as its write.
    pub idempotency: Option<IdempotencyKey>,
}

impl Request {
    /// A path parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The caller; only `None` on public routes.
    pub fn principal(&self) -> Result<Principal, ApiError> {
        self.principal
            .ok_or(ApiError::Unauthorized("This route needs a token."))
    }

    /// The caller's organization id, which scopes every query.
    pub fn organization(&self) -> Result<String, ApiError> {
        Ok(self.principal()?.organization.to_string())
    }

    /// A request header as text.
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Parses the JSON body: malformed JSON is a 400, valid JSON of the wrong
    /// shape (unknown or missing fields, wrong types) a 422.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|err| {
            use serde_json::error::Category;
            match err.classify() {
                Category::Data => {
                    ApiError::invalid("INVALID_FIELD", format!("Invalid request body: {err}."))
                }
                Category::Syntax | Category::Eof | Category::Io => {
                    ApiError::malformed(format!("The body is not valid JSON: {err}."))
                }
            }
        })
    }
}

/// A JSON response with `status`.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).expect("response bodies serialize");
    let mut response = http::Response::new(Bytes::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A 201 answer rendered for storing under an idempotency key, inside the
/// transaction that makes it: the same bytes [`json_response`] sends.
pub(crate) fn render_created<T: Serialize + ?Sized>(body: &T) -> (u16, String) {
    let text = serde_json::to_string(body).expect("response bodies serialize");
    (StatusCode::CREATED.as_u16(), text)
}

/// Every route the core serves.
pub(crate) fn core_routes() -> Vec<Route> {
    let mut routes = monitoring::routes();
    routes.extend(openapi::routes());
    routes.extend(auth_routes::routes());
    routes.extend(books::routes());
    routes.extend(reports::routes());
    routes.extend(export::routes());
    routes.extend(invoices::routes());
    routes
}

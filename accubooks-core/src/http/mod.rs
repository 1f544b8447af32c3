//! The framework-neutral HTTP layer: `http` 1.x requests in, responses out.
//!
//! Hosts hand every request to [`AccuBooks::handle`](crate::AccuBooks::handle);
//! the pipeline here assigns the request id, finds the route, applies the
//! dependency guard and access rule, bounds body size and duration, catches
//! panics, and records logs and metrics. Status codes and error bodies are
//! decided in [`ApiError`] alone.

mod banking;
mod body;
mod error;
mod events;
mod hygiene;
mod identity;
mod invoicing;
mod jobs;
mod ledger;
mod monitoring;
mod openapi;
mod payroll;
mod periods;
mod pipeline;
mod reporting;
mod route;
mod webhooks;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use body::{Body, Chunks};
pub use error::{ApiError, DATABASE_UNAVAILABLE};
pub use openapi::document as openapi_document;
pub use pipeline::REQUEST_ID_HEADER;
pub use route::{Access, Handler, Route, RouteDoc, RouteTable, SchemaFn};

use crate::identity::Principal;
use crate::paging::{Page, PageRequest};
use crate::usecases::{Answer, ClientKey};

/// A response, with its whole body or a stream of it.
pub type Response = http::Response<Body>;

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
    /// The client's address: the peer's, or behind a proxy listed in
    /// `TRUSTED_PROXIES` the one it forwarded.
    pub client: Option<std::net::IpAddr>,
    /// The caller, for routes that need a token.
    pub principal: Option<Principal>,
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

    /// The request's `Idempotency-Key`, if it carries one. The use case
    /// checks its syntax; one that is not even text is refused here alike.
    pub fn key(&self) -> Result<Option<ClientKey>, ApiError> {
        let Some(value) = self.parts.headers.get("idempotency-key") else {
            return Ok(None);
        };
        let text = value
            .to_str()
            .map_err(|_| ApiError::from(crate::usecases::Error::InvalidKey))?;
        let key = ClientKey::new(text).with_http_fingerprint(
            self.parts.method.as_str(),
            self.parts.uri.path(),
            &self.body,
        );
        Ok(Some(key))
    }

    /// A path parameter that is a record id: a positive integer, else the
    /// record does not exist (`404 NOT_FOUND`, saying `missing`).
    pub fn id(&self, missing: &'static str) -> Result<i64, ApiError> {
        self.param("id")
            .and_then(|id| id.parse::<i64>().ok())
            .filter(|id| *id > 0)
            .ok_or_else(|| ApiError::NotFound(missing.to_owned()))
    }

    /// A JSON body that may be empty (then `T::default()`).
    pub fn optional_json<T: Default + DeserializeOwned>(&self) -> Result<T, ApiError> {
        if self.body.is_empty() {
            Ok(T::default())
        } else {
            self.json()
        }
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
    let mut response = http::Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The page a list request asks for (its `limit` and `after`) and its own
/// filters `F`, parsed from the query string: a bad limit or cursor is a
/// 422 naming it ([`crate::paging::PagingError`]); a filter, the route's own
/// `422 INVALID_QUERY`.
pub(crate) fn list_query<K, F>(request: &Request) -> Result<(PageRequest<K>, F), ApiError>
where
    K: DeserializeOwned,
    F: DeserializeOwned,
{
    let (page, filters, _) = parse_list_query(request, false)?;
    Ok((page, filters))
}

/// [`list_query`] of a list that also filters on metadata:
/// `metadata[KEY]=VALUE` pairs (contract §5), each key at most once.
pub(crate) fn list_query_with_metadata<K, F>(
    request: &Request,
) -> Result<(PageRequest<K>, F, crate::metadata::Metadata), ApiError>
where
    K: DeserializeOwned,
    F: DeserializeOwned,
{
    parse_list_query(request, true)
}

/// The page, the filters and, when `with_metadata`, the metadata pairs
/// (otherwise `metadata[…]` parameters are filters like any other).
fn parse_list_query<K, F>(
    request: &Request,
    with_metadata: bool,
) -> Result<(PageRequest<K>, F, crate::metadata::Metadata), ApiError>
where
    K: DeserializeOwned,
    F: DeserializeOwned,
{
    use crate::paging::{AFTER_PARAM, LIMIT_PARAM};
    let invalid = |err: &dyn std::fmt::Display| {
        ApiError::invalid("INVALID_QUERY", format!("Invalid query string: {err}."))
    };
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(request.parts.uri.query().unwrap_or(""))
            .map_err(|err| invalid(&err))?;
    let value = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let page = PageRequest::parse(value(LIMIT_PARAM), value(AFTER_PARAM))?;
    let mut metadata = std::collections::BTreeMap::new();
    let mut filters = Vec::new();
    for (key, value) in &pairs {
        if key == LIMIT_PARAM || key == AFTER_PARAM {
            continue;
        }
        let name = key
            .strip_prefix("metadata[")
            .and_then(|k| k.strip_suffix(']'))
            .filter(|_| with_metadata);
        match name {
            Some(name) => {
                if metadata.insert(name.to_owned(), value.clone()).is_some() {
                    return Err(invalid(&format_args!("metadata[{name}] is given twice")));
                }
            }
            None => filters.push((key, value)),
        }
    }
    let metadata = crate::metadata::Metadata::try_from(metadata).map_err(|err| invalid(&err))?;
    let filters = serde_urlencoded::to_string(filters).map_err(|_| ApiError::Internal)?;
    let filters = serde_urlencoded::from_str(&filters).map_err(|err| invalid(&err))?;
    Ok((page, filters, metadata))
}

/// A list route's filters when it has none: other query parameters are
/// ignored, as before the list paged.
#[derive(serde::Deserialize)]
pub(crate) struct NoFilter {}

/// The JSON answer of one page, with the `Link` header (RFC 8288) of the
/// next page while more remain; the link keeps the request's filters.
pub(crate) fn page_response<T: Serialize>(request: &Request, page: &Page<T>) -> Response {
    let mut response = json_response(StatusCode::OK, &page.items);
    if let Some(next) = &page.next {
        let uri = &request.parts.uri;
        let link = crate::paging::next_link(uri.path(), uri.query(), next, page.limit);
        // The cursor is hex and the rest comes from a URI that parsed, so
        // the value is always a valid header; a failure would be a bug.
        match HeaderValue::from_str(&link) {
            Ok(value) => {
                response.headers_mut().insert(header::LINK, value);
            }
            Err(err) => tracing::error!(error = %err, "a Link header did not form"),
        }
    }
    response
}

/// The answer of a creating use case with `status`: the first call's and
/// its replays' bodies are the same bytes; a replay is marked
/// `Idempotent-Replayed: true`.
pub(crate) fn answer_response<T: Serialize>(status: StatusCode, answer: &Answer<T>) -> Response {
    let mut response = http::Response::new(Body::from(answer.to_json()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if answer.is_replay() {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// Every route the core serves.
pub(crate) fn core_routes() -> Vec<Route> {
    let mut routes = monitoring::routes();
    routes.extend(openapi::routes());
    routes.extend(identity::routes());
    routes.extend(ledger::routes());
    routes.extend(reporting::routes());
    routes.extend(invoicing::routes());
    routes.extend(periods::routes());
    routes.extend(jobs::routes());
    routes.extend(events::routes());
    routes.extend(payroll::routes());
    routes.extend(banking::routes());
    routes.extend(webhooks::routes());
    routes
}

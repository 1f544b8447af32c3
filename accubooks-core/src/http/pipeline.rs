//! The request pipeline every host shares.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{FutureExt, Stream, StreamExt};
use http::{HeaderMap, HeaderValue, header};
use tracing::Instrument;

use super::route::{Access, Lookup, Route};
use super::{ApiError, Request, Response};
use crate::app::AccuBooks;

/// The header that carries the request id in both directions.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The route label of requests that matched no route, so that scanners
/// cannot blow up the metrics' cardinality.
const UNMATCHED: &str = "unmatched";

impl AccuBooks {
    /// Handles one request: the single entry point of every host.
    ///
    /// `body` is the request body as a stream of chunks; it is read up to
    /// `BODY_LIMIT_BYTES`. `peer` is the client's address when the host knows
    /// it (the metrics access rule needs it). Never fails: every problem is
    /// an answer, and a panicking handler is answered 500.
    pub async fn handle<S, B, E>(
        &self,
        parts: http::request::Parts,
        body: S,
        peer: Option<SocketAddr>,
    ) -> Response
    where
        S: Stream<Item = Result<B, E>> + Send,
        B: Buf,
        E: std::fmt::Display,
    {
        let started = Instant::now();
        let request_id = request_id(&parts.headers);
        // The client's method may be any token of any length: only its
        // closed-set label reaches metrics, logs and answers.
        let method = crate::metrics::method_label(&parts.method);
        let lookup = self.routes().lookup(&parts.method, parts.uri.path());
        let (route_label, quiet) = match &lookup {
            Lookup::Found(route, _) => (route.path, route.quiet),
            _ => (UNMATCHED, false),
        };
        // Quiet routes (monitoring, polled all day) skip the span unless
        // debug logs are on: building it costs more than answering them.
        // Whatever they do log still carries the request id (see `logged`).
        let span = if quiet {
            tracing::debug_span!("request", request_id = %request_id, method, route = route_label)
        } else {
            tracing::info_span!("request", request_id = %request_id, method, route = route_label)
        };
        let logged = |log: &dyn Fn()| {
            if span.is_disabled() {
                tracing::info_span!("request", request_id = %request_id, method, route = route_label)
                    .in_scope(log);
            } else {
                span.in_scope(log);
            }
        };
        let answer_to = super::hygiene::Caller::of(self, &parts.headers);
        let mut quiet_refusal = false;
        let result = match super::hygiene::preflight(self, &parts) {
            Some(preflight) => Ok(preflight),
            None => {
                self.dispatch(lookup, parts, body, peer, &request_id)
                    .instrument(span.clone())
                    .await
            }
        };
        let mut response = match result {
            Ok(response) => response,
            Err(err) => {
                // A known outage answers every request 503: its start and end
                // are logged once by the registry, not once per request.
                match &err {
                    ApiError::Unavailable { .. } => {
                        span.in_scope(|| tracing::debug!(code = err.code(), "request refused"));
                    }
                    // Refusals a flood is made of (a bad webhook signature,
                    // a rate limit, a body over the limit) are counted in
                    // metrics and logged at debug: one line each at info
                    // would let any client fill the disk.
                    ApiError::BadRequest { .. }
                    | ApiError::RateLimited { .. }
                    | ApiError::PayloadTooLarge { .. } => quiet_refusal = true,
                    _ if err.status().is_server_error() => {
                        logged(&|| tracing::warn!(code = err.code(), "request failed"));
                    }
                    _ => {}
                }
                err.into_response(&request_id)
            }
        };
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        super::hygiene::decorate(self, &answer_to, &mut response);

        let elapsed = started.elapsed();
        let status = response.status();
        self.metrics()
            .observe_request(method, route_label, status, elapsed);
        let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        if elapsed >= self.config().slow_request {
            self.metrics().count_slow_request(method, route_label);
            logged(&|| tracing::warn!(status = status.as_u16(), duration_ms, "slow request"));
        } else if (quiet && !status.is_server_error()) || quiet_refusal {
            span.in_scope(|| {
                tracing::debug!(status = status.as_u16(), duration_ms, "request finished");
            });
        } else {
            logged(&|| tracing::info!(status = status.as_u16(), duration_ms, "request finished"));
        }
        response
    }

    async fn dispatch<S, B, E>(
        &self,
        lookup: Lookup<'_>,
        parts: http::request::Parts,
        body: S,
        peer: Option<SocketAddr>,
        request_id: &str,
    ) -> Result<Response, ApiError>
    where
        S: Stream<Item = Result<B, E>> + Send,
        B: Buf,
        E: std::fmt::Display,
    {
        let (route, params) = match lookup {
            Lookup::Found(route, params) => (route, params),
            Lookup::WrongMethod(allow) => {
                return Err(ApiError::MethodNotAllowed {
                    method: crate::metrics::method_label(&parts.method),
                    allow,
                });
            }
            Lookup::Missing => {
                return Err(ApiError::NotFound("No route matches this path.".to_owned()));
            }
        };
        let client = super::hygiene::client_address(
            peer.map(|peer| peer.ip()),
            &parts.headers,
            &self.config().trusted_proxies,
        );
        let limited = !route.unlimited;
        // The address budget first, so a flood of bad tokens is refused
        // before any signature is checked.
        if limited && let Some(address) = client {
            self.request_limits().check_address(address)?;
        }
        let claimed = match route.access {
            Access::Public => None,
            Access::Role(_) => {
                let authorization = parts
                    .headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok());
                Some(self.tokens().verify(authorization)?)
            }
        };
        if limited && let Some(claimed) = &claimed {
            self.request_limits().check_user(claimed.user)?;
        }
        self.guard(route)?;
        // The token proves who calls; what they may do is the user's role
        // now, read from the books (briefly cached), not the role claimed.
        let principal = match (claimed, route.access) {
            (Some(claimed), Access::Role(min)) => {
                let principal = Box::pin(self.current_principal(claimed)).await?;
                if principal.role < min {
                    return Err(crate::usecases::Error::Forbidden.into());
                }
                Some(principal)
            }
            _ => None,
        };
        let limit = route.body_limit.map_or(self.config().body_limit, |own| {
            own.min(self.config().body_limit)
        });
        let timeout = route.timeout.unwrap_or(self.config().request_timeout);
        let work = async {
            let body = read_body(&parts.headers, body, limit)
                .await
                .inspect_err(|err| {
                    if let (ApiError::PayloadTooLarge { .. }, Some(provider)) = (err, route.webhook)
                    {
                        self.metrics().count_webhook_refused(provider, "too_large");
                    }
                })?;
            // Only JSON bodies: a form or text/plain body is what a web page
            // can send cross-site without a CORS preflight.
            if !body.is_empty() && !is_json(&parts.headers) {
                return Err(ApiError::UnsupportedMediaType);
            }
            // PostgreSQL refuses NUL in text: refuse it here, for every route
            // and both backends alike.
            if has_nul_escape(&body) || query_has_nul(parts.uri.query()) {
                return Err(ApiError::invalid(
                    "INVALID_TEXT",
                    "Text may not contain the NUL character (\\u0000).",
                ));
            }
            let request = Request {
                parts,
                body,
                params,
                request_id: request_id.to_owned(),
                peer,
                client,
                principal,
            };
            AssertUnwindSafe(route.handler.call(self.clone(), request))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| {
                    tracing::error!(panic = panic_message(&*panic), "request handler panicked");
                    Err(ApiError::Internal)
                })
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or(Err(ApiError::Timeout {
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }))
    }

    /// The caller as the books know them now: the role of the user's row
    /// (briefly cached), not the role claimed; 401 when the user was removed.
    async fn current_principal(
        &self,
        claimed: crate::identity::Principal,
    ) -> Result<crate::identity::Principal, ApiError> {
        Ok(self.books().current_principal(claimed).await?)
    }

    /// Answers 503 at once when a dependency the route needs is known to be
    /// down: no pool, no connect timeout.
    fn guard(&self, route: &Route) -> Result<(), ApiError> {
        for name in &route.needs {
            if let Some(dependency) = self.registry().get(name)
                && !dependency.is_available()
            {
                let unavailable = dependency.unavailable();
                return Err(ApiError::Unavailable {
                    code: unavailable.code,
                    message: unavailable.message,
                    retry_after: unavailable.retry_after,
                });
            }
        }
        Ok(())
    }
}

/// Whether the body is declared JSON: `application/json` or a
/// `application/<anything>+json` type, with any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence
            .get(..12)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("application/"))
            && essence.len() > 17
            && essence[essence.len() - 5..].eq_ignore_ascii_case("+json")
}

/// Whether a JSON text holds the escape `\u0000` (JSON can carry NUL in no
/// other way): a `u0000` after an odd run of backslashes.
fn has_nul_escape(json: &[u8]) -> bool {
    let mut i = 0;
    while i < json.len() {
        if json[i] != b'\\' {
            i += 1;
            continue;
        }
        let run = json[i..].iter().take_while(|&&b| b == b'\\').count();
        if run % 2 == 1 && json[i + run..].starts_with(b"u0000") {
            return true;
        }
        i += run;
    }
    false
}

/// Whether a query string decodes to text with a NUL (`%00`).
fn query_has_nul(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.as_bytes().windows(3).any(|w| w == b"%00"))
}

/// The client's request id when it is reasonable, otherwise a new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

async fn read_body<S, B, E>(headers: &HeaderMap, body: S, limit: usize) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, E>> + Send,
    B: Buf,
    E: std::fmt::Display,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut body = std::pin::pin!(body);
    let mut buffer = BytesMut::with_capacity(declared.map_or(0, |len| len as usize));
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|err| {
            ApiError::malformed(format!("The request body could not be read: {err}."))
        })?;
        if buffer.len() + chunk.remaining() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        buffer.put(chunk);
    }
    Ok(buffer.freeze())
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("non-text panic payload")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_taken_only_when_safe() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&headers), "abc-123");
        headers.insert(
            REQUEST_ID_HEADER,
            HeaderValue::from_static("bad id\"<script>"),
        );
        assert_eq!(request_id(&headers).len(), 32);
        assert_eq!(request_id(&HeaderMap::new()).len(), 32);
    }

    #[test]
    fn nul_escapes_are_found_and_only_they() {
        assert!(has_nul_escape(br#"{"code":"10\u00000"}"#));
        assert!(has_nul_escape(br#"{"a":"\\\u0000"}"#));
        assert!(
            !has_nul_escape(br#"{"a":"\\u0000"}"#),
            "an escaped backslash, then text"
        );
        assert!(!has_nul_escape(br#"{"a":"\u0001 u0000"}"#));
        assert!(!has_nul_escape(b"{}"));
        assert!(query_has_nul(Some("as_of=2026%00")));
        assert!(!query_has_nul(Some("as_of=2026-01-01")));
    }

    #[test]
    fn only_json_bodies_are_json() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            is_json(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        for other in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonp",
            "application/+json",
        ] {
            assert!(!with(other), "{other}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn body_limit_applies_to_streams_and_declared_lengths() {
        let chunks = || {
            futures::stream::iter(
                (0..2).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![0u8; 600]))),
            )
        };
        let err = read_body(&HeaderMap::new(), chunks(), 1000)
            .await
            .unwrap_err();
        assert_eq!(err, ApiError::PayloadTooLarge { limit: 1000 });
        let body = read_body(&HeaderMap::new(), chunks(), 1200).await.unwrap();
        assert_eq!(body.len(), 1200);
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5000"));
        let err = read_body(
            &headers,
            futures::stream::empty::<Result<Bytes, std::io::Error>>(),
            1000,
        )
        .await
        .unwrap_err();
        assert_eq!(err, ApiError::PayloadTooLarge { limit: 1000 });
    }
}

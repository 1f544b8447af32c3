//! HTTP hygiene every door shares (contract section 9): CORS for the one
//! browser origin `FRONTEND_URL`, and the security headers of every answer.
//!
//! CORS here is a policy of exact matches, no parsing: a request's `Origin`
//! is compared byte for byte with the configured origin, and a preflight's
//! `Access-Control-Request-Method` is looked up in the route table like any
//! method. Other origins get no `Access-Control-Allow-Origin`, so browsers
//! keep their pages from reading the answers.
//!
//! The client's address, for rate limits, is the TCP peer's, or behind a
//! proxy listed in `TRUSTED_PROXIES` the one that proxy forwarded.

use std::net::IpAddr;

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::route::Lookup;
use super::{Body, Response};
use crate::app::AccuBooks;
use crate::config::Environment;
use crate::throttle::canonical_ip;

/// The request headers a browser page may send.
const ALLOWED_HEADERS: &str = "authorization, content-type, idempotency-key, x-request-id";
/// The answer headers a browser page may read, beyond the simple ones
/// (`link`: a list's next page).
const EXPOSED_HEADERS: &str = "x-request-id, retry-after, idempotent-replayed, link";
/// How long a browser may cache a preflight's answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";
/// `Strict-Transport-Security` in production: two years, subdomains too.
const HSTS: &str = "max-age=63072000; includeSubDomains";
/// Nothing of an API answer is a page: no scripts, frames or plugins.
const CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The browser origin allowed to call the API: `FRONTEND_URL` without a
/// trailing slash (an `Origin` header never has one).
fn allowed_origin(app: &AccuBooks) -> &str {
    app.config().frontend_url.trim_end_matches('/')
}

/// Whether the request comes from a page of the allowed origin.
fn from_allowed_origin<'h>(app: &AccuBooks, headers: &'h HeaderMap) -> Option<&'h HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let allowed = allowed_origin(app);
    (!allowed.is_empty() && origin.as_bytes() == allowed.as_bytes()).then_some(origin)
}

/// The client's address: the peer's, unless the peer is a trusted proxy;
/// then the nearest address of `X-Forwarded-For` (read right to left, as
/// each proxy appends the address it saw) that is not a trusted proxy
/// itself. Addresses left of that one were written by the client and prove
/// nothing. A trusted peer that forwarded nothing is the client. Every
/// address is taken in its canonical form (an IPv4-mapped IPv6 address is
/// the IPv4 one), for trust and for the rate limits' keys alike.
pub(crate) fn client_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[ipnet::IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = canonical_ip(peer?);
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut nearest = peer;
    for value in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(value) = value.to_str() else {
            return Some(nearest);
        };
        for hop in value.rsplit(',') {
            match hop.trim().parse::<IpAddr>().map(canonical_ip) {
                Ok(ip) if is_trusted(&ip) => nearest = ip,
                Ok(ip) => return Some(ip),
                // Not an address: the chain can no longer be followed.
                Err(_) => return Some(nearest),
            }
        }
    }
    Some(nearest)
}

/// The answer to a CORS preflight (`OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`) from the allowed origin for a method the
/// path serves: `204` with what may be sent. Anything else is not a
/// preflight this API grants: `None`, and the request goes on as any other
/// (an `OPTIONS` is then `405` with `Allow`, without CORS headers).
pub(crate) fn preflight(app: &AccuBooks, parts: &http::request::Parts) -> Option<Response> {
    if parts.method != Method::OPTIONS {
        return None;
    }
    let origin = from_allowed_origin(app, &parts.headers)?;
    let requested = parts
        .headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| Method::from_bytes(v.as_bytes()).ok())?;
    let path = parts.uri.path();
    if !matches!(app.routes().lookup(&requested, path), Lookup::Found(..)) {
        return None;
    }
    let Lookup::WrongMethod(allow) = app.routes().lookup(&Method::OPTIONS, path) else {
        return None;
    };
    let mut response = http::Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    if let Ok(allow) = HeaderValue::from_str(&allow) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, allow);
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    headers.insert(header::VARY, HeaderValue::from_static("origin"));
    Some(response)
}

/// What the answer's headers depend on, read from the request before it is
/// handled (which consumes it).
pub(crate) struct Caller {
    /// The allowed origin, when the request came from it.
    origin: Option<HeaderValue>,
    /// Whether the request carried a token.
    authorized: bool,
}

impl Caller {
    /// The caller of a request with `headers`.
    pub(crate) fn of(app: &AccuBooks, headers: &HeaderMap) -> Self {
        Caller {
            origin: from_allowed_origin(app, headers).cloned(),
            authorized: headers.contains_key(header::AUTHORIZATION),
        }
    }
}

/// Adds the security headers, and the CORS headers of an answer to the
/// allowed origin, to `response` (any answer: errors and preflights too).
pub(crate) fn decorate(app: &AccuBooks, caller: &Caller, response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    if app.config().environment == Environment::Production {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(HSTS),
        );
    }
    // An answer to a caller with a token is theirs alone: no cache keeps it.
    if caller.authorized && !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    // Answers differ by Origin, so shared caches must key on it.
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = &caller.origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_forwarded_it() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let trusted: Vec<ipnet::IpNet> = vec![
            "127.0.0.1/32".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ];
        let client = |peer: &str, values: &[&str]| {
            client_address(Some(ip(peer)), &forwarded(values), &trusted)
        };
        // An untrusted peer cannot claim another address.
        assert_eq!(
            client("192.0.2.7", &["198.51.100.1"]),
            Some(ip("192.0.2.7"))
        );
        // Behind HAProxy on loopback: the address it appended.
        assert_eq!(
            client("127.0.0.1", &["198.51.100.1"]),
            Some(ip("198.51.100.1"))
        );
        // A forged left part is ignored; trusted hops are skipped.
        assert_eq!(
            client("127.0.0.1", &["203.0.113.9, 198.51.100.1, 10.1.2.3"]),
            Some(ip("198.51.100.1"))
        );
        assert_eq!(
            client("127.0.0.1", &["203.0.113.9", "198.51.100.1"]),
            Some(ip("198.51.100.1")),
            "several headers read as one list"
        );
        assert_eq!(client("127.0.0.1", &[]), Some(ip("127.0.0.1")));
        assert_eq!(
            client("127.0.0.1", &["garbage, 10.0.0.5"]),
            Some(ip("10.0.0.5")),
            "an unreadable hop ends the chain at the last trusted one"
        );
        assert_eq!(
            client_address(None, &forwarded(&["198.51.100.1"]), &trusted),
            None
        );
        assert_eq!(
            client_address(Some(ip("127.0.0.1")), &forwarded(&["198.51.100.1"]), &[]),
            Some(ip("127.0.0.1")),
            "no trusted proxy: the header is ignored"
        );
        // A server listening on `::` sees an IPv4 proxy as IPv4-mapped.
        assert_eq!(
            client("::ffff:127.0.0.1", &["::ffff:198.51.100.1"]),
            Some(ip("198.51.100.1")),
            "mapped addresses are trusted and keyed as IPv4"
        );
        assert_eq!(
            client("::ffff:192.0.2.7", &["198.51.100.1"]),
            Some(ip("192.0.2.7"))
        );
    }
}

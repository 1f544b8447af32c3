//! The four monitoring endpoints of section 2 of the contract. None of them
//! touches a dependency: they read kept state.

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use serde_json::json;

use super::{Access, ApiError, Body, Request, Response, Route, json_response};
use crate::app::{AccuBooks, Phase};
use crate::health::Overall;

/// The monitoring routes.
pub(crate) fn routes() -> Vec<Route> {
    let public = |method, path, handler: fn(AccuBooks, Request) -> _| {
        Route::new(method, path, handler)
            .access(Access::Public)
            .quiet()
            .unlimited()
    };
    vec![
        public(Method::GET, "/api/monitoring/live", live)
            .summary("200 while the process can answer"),
        public(Method::GET, "/api/monitoring/ready", ready)
            .summary("200 ready; 503 starting or draining")
            .answers_too(
                503,
                "Starting or draining: {\"status\":\"starting\"|\"draining\"}",
            ),
        public(Method::GET, "/api/monitoring/health", health)
            .summary("Dependency states from kept state; 503 when unhealthy")
            .answers_too(
                503,
                "Unhealthy (draining, or a critical dependency down), same body",
            ),
        public(Method::GET, "/api/monitoring/metrics", metrics)
            .summary("Prometheus text; METRICS_TOKEN or a private-network peer")
            .answers(401, "METRICS_TOKEN is set and was not presented")
            .answers(
                403,
                "METRICS_TOKEN is unset and the client is not on a private network",
            ),
    ]
}

type Answer = std::future::Ready<Result<Response, ApiError>>;

fn live(_: AccuBooks, _: Request) -> Answer {
    let body = Bytes::from_static(br#"{"status":"alive"}"#);
    std::future::ready(Ok(json_body(StatusCode::OK, body)))
}

/// A JSON answer from bytes already rendered.
fn json_body(status: StatusCode, body: Bytes) -> Response {
    let mut response = http::Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn ready(app: AccuBooks, _: Request) -> Answer {
    let phase = app.phase();
    let status = if phase == Phase::Ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    std::future::ready(Ok(json_response(
        status,
        &json!({"status": phase.as_str()}),
    )))
}

fn health(app: AccuBooks, _: Request) -> Answer {
    let (overall, body) = app.health_json();
    let status = if overall == Overall::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let mut response = json_body(status, body);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    std::future::ready(Ok(response))
}

fn metrics(app: AccuBooks, request: Request) -> Answer {
    std::future::ready(metrics_answer(&app, &request))
}

fn metrics_answer(app: &AccuBooks, request: &Request) -> Result<Response, ApiError> {
    if app.config().metrics_token.is_some() {
        let presented = request
            .header(header::AUTHORIZATION)
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !app.config().metrics_token_matches(presented) {
            return Err(ApiError::Unauthorized(
                "Metrics need an Authorization: Bearer <METRICS_TOKEN> header.",
            ));
        }
    } else if came_through_a_proxy(request)
        || !request.peer.is_some_and(|peer| is_internal(peer.ip()))
    {
        return Err(ApiError::Forbidden(
            "Metrics are served to loopback and private-network peers only; set METRICS_TOKEN to allow others.",
        ));
    }
    let mut response = http::Response::new(Body::from(app.render_metrics()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    Ok(response)
}

/// A request relayed by a proxy: its TCP peer is the proxy, which may sit on
/// loopback or a private network while the client is anywhere. Such a
/// request is never internal by address (behind a proxy, set METRICS_TOKEN).
fn came_through_a_proxy(request: &Request) -> bool {
    let headers = &request.parts.headers;
    headers.contains_key(header::FORWARDED) || headers.contains_key("x-forwarded-for")
}

/// Loopback, RFC 1918, IPv6 unique-local and link-local addresses.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_peers() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "::ffff:1.1.1.1"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }
}

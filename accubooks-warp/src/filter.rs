use std::net::SocketAddr;

use accubooks_core::AccuBooks;
use accubooks_core::connections::{ClientAddr, serve_connections};
use bytes::Buf;
use futures::Stream;
use http::{HeaderMap, Method};
use tokio::net::TcpListener;
use warp::filters::path::FullPath;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

/// A filter answering every path of the core's table; other paths are
/// rejected as not found, so a host's `or` reaches its own routes.
pub fn filter(app: AccuBooks) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let served = warp::any()
        .map(move || app.clone())
        .and(warp::method())
        .and(warp::path::full())
        .and_then(
            |app: AccuBooks, method: Method, path: FullPath| async move {
                if app.routes().serves(&method, path.as_str()) {
                    Ok((app, method, path))
                } else {
                    Err(warp::reject::not_found())
                }
            },
        )
        .untuple_one();
    served.and(request_parts()).then(forward)
}

/// [`filter`] plus a fallback that lets the core answer every other path
/// (a JSON 404): the whole application of the standalone server.
pub fn standalone(app: AccuBooks) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let fallback = {
        let app = app.clone();
        warp::any()
            .map(move || app.clone())
            .and(warp::method())
            .and(warp::path::full())
            .and(request_parts())
            .then(forward)
    };
    filter(app).or(fallback).unify()
}

/// Query, headers, peer and body: what the core needs besides method and path.
fn request_parts() -> impl Filter<
    Extract = (
        String,
        HeaderMap,
        Option<SocketAddr>,
        impl Stream<Item = Result<impl Buf, warp::Error>> + Send,
    ),
    Error = Rejection,
> + Clone {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    // Served by `serve`, the client's address is the core's extension;
    // served by `warp::serve`, warp's own.
    let peer = warp::addr::remote()
        .and(warp::ext::optional::<ClientAddr>())
        .map(|warp: Option<SocketAddr>, core: Option<ClientAddr>| {
            core.map(|client| client.0).or(warp)
        });
    query
        .and(warp::header::headers_cloned())
        .and(peer)
        .and(warp::body::stream())
}

async fn forward(
    app: AccuBooks,
    method: Method,
    path: FullPath,
    query: String,
    headers: HeaderMap,
    peer: Option<SocketAddr>,
    body: impl Stream<Item = Result<impl Buf, warp::Error>> + Send,
) -> Response {
    let uri = if query.is_empty() {
        path.as_str().to_owned()
    } else {
        format!("{}?{query}", path.as_str())
    };
    let (mut parts, ()) = http::Request::builder()
        .method(method)
        .uri(uri)
        .body(())
        .expect("a method and path from a parsed request form a valid request")
        .into_parts();
    parts.headers = headers;
    reply(app.handle(parts, body, peer).await)
}

/// The core's response as warp's: a whole body as it is (with its length),
/// a streamed one (the export) as a stream.
fn reply(response: accubooks_core::http::Response) -> Response {
    let (parts, body) = response.into_parts();
    let mut reply = match body.into_inner() {
        Ok(bytes) => Response::new(bytes.into()),
        Err(chunks) => warp::reply::stream(chunks).into_response(),
    };
    *reply.status_mut() = parts.status;
    *reply.headers_mut() = parts.headers;
    reply
}

/// Serves [`standalone`] on `listener` until a graceful shutdown (see
/// [`AccuBooks::begin_drain`] and [`AccuBooks::drain_on_signal`]) has drained
/// in-flight requests, then closes the instance. Connections get the core's
/// bounds (`HEADER_READ_TIMEOUT_MS`, `IDLE_TIMEOUT_MS`, `MAX_CONNECTIONS`).
pub async fn serve(app: AccuBooks, listener: TcpListener) -> std::io::Result<()> {
    let service = warp::service(standalone(app.clone()));
    let drained = {
        let app = app.clone();
        async move { app.draining().await }
    };
    let limits = app.config().limits;
    app.serve_until_drained(async move {
        serve_connections(listener, limits, service, drained).await;
        Ok(())
    })
    .await
}

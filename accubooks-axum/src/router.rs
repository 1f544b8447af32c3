use std::collections::BTreeSet;
use std::net::SocketAddr;

use accubooks_core::AccuBooks;
use accubooks_core::connections::{ClientAddr, serve_connections};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::routing::any;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// A router serving every route of the core's table, to `merge` or `nest`
/// beside the host's own routes (it works with any host state type).
///
/// Every method of a path in the table goes to the core, so a wrong method
/// is the core's JSON `405` with `Allow`, as on every host. Paths outside the
/// table are left to the host. The client's address reaches the core (for
/// the metrics access rule) when the host serves with
/// `into_make_service_with_connect_info::<SocketAddr>()`, or through [`serve`].
pub fn router<S>(app: AccuBooks) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let paths: BTreeSet<&'static str> = app.routes().iter().map(|route| route.path()).collect();
    paths.into_iter().fold(Router::new(), |router, path| {
        let app = app.clone();
        router.route(path, any(move |request: Request| forward(app, request)))
    })
}

/// [`router`] plus a fallback that lets the core answer every other path
/// (a JSON 404): the whole application of the standalone server.
pub fn standalone(app: AccuBooks) -> Router {
    router(app.clone()).fallback(move |request: Request| forward(app, request))
}

async fn forward(app: AccuBooks, request: Request) -> http::Response<Body> {
    let extensions = request.extensions();
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0)
        .or_else(|| extensions.get::<ClientAddr>().map(|client| client.0));
    let (parts, body) = request.into_parts();
    app.handle(parts, body.into_data_stream(), peer)
        .await
        .map(Body::new)
}

/// Serves [`standalone`] on `listener` until a graceful shutdown (see
/// [`AccuBooks::begin_drain`] and [`AccuBooks::drain_on_signal`]) has drained
/// in-flight requests, then closes the instance. Connections get the core's
/// bounds (`HEADER_READ_TIMEOUT_MS`, `IDLE_TIMEOUT_MS`, `MAX_CONNECTIONS`).
pub async fn serve(app: AccuBooks, listener: TcpListener) -> std::io::Result<()> {
    let router = standalone(app.clone());
    let service = tower::service_fn(move |request: http::Request<Incoming>| {
        router.clone().oneshot(request.map(Body::new))
    });
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

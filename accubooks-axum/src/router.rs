use std::collections::BTreeMap;
use std::net::SocketAddr;

use accubooks_core::AccuBooks;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::routing::{MethodFilter, on};
use tokio::net::TcpListener;

/// A router serving every route of the core's table.
///
/// The client's address reaches the core (for the metrics access rule) when
/// the host serves with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(app: AccuBooks) -> Router {
    let mut by_path: BTreeMap<&'static str, Option<MethodFilter>> = BTreeMap::new();
    for route in app.routes().iter() {
        let Ok(filter) = MethodFilter::try_from(route.method().clone()) else {
            tracing::warn!(method = %route.method(), path = route.path(), "axum cannot route this method");
            continue;
        };
        let entry = by_path.entry(route.path()).or_default();
        *entry = Some(entry.map_or(filter, |f| f.or(filter)));
    }
    by_path
        .into_iter()
        .filter_map(|(path, filter)| Some((path, filter?)))
        .fold(Router::new(), |router, (path, filter)| {
            router.route(path, on(filter, handle))
        })
        .with_state(app)
}

async fn handle(State(app): State<AccuBooks>, request: Request) -> http::Response<Body> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let (parts, body) = request.into_parts();
    app.handle(parts, body.into_data_stream(), peer)
        .await
        .map(Body::from)
}

/// Serves the core on `listener` until a graceful shutdown (see
/// [`AccuBooks::begin_drain`] and [`AccuBooks::drain_on_signal`]) has drained
/// in-flight requests, then closes the instance.
pub async fn serve(app: AccuBooks, listener: TcpListener) -> std::io::Result<()> {
    let service = router(app.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let drained = {
        let app = app.clone();
        async move { app.draining().await }
    };
    let server = axum::serve(listener, service).with_graceful_shutdown(drained);
    app.serve_until_drained(server.into_future()).await
}

//! AccuBooks mounted inside an existing axum application that keeps its own
//! routes, state and middleware.
//!
//! The host adds one route to the core's table too (`GET /api/host/status`),
//! which gets the core's pipeline, and registers a check of its own.
//!
//! ```text
//! cargo run --example embed_axum
//! curl localhost:5000/hello
//! curl localhost:5000/api/monitoring/health
//! ```

use std::net::SocketAddr;

use accubooks_core::http::{Access, Route, json_response};
use accubooks_core::{AccuBooks, Config, telemetry};
use axum::Router;
use axum::routing::get;
use http::{Method, StatusCode};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let config = Config::from_env_or_exit();
    telemetry::init(config.environment);
    let listener = tokio::net::TcpListener::bind(config.listen_addr()).await?;

    let books = AccuBooks::builder(config)
        .route(
            Route::new(
                Method::GET,
                "/api/host/status",
                |app: AccuBooks, _| async move {
                    Ok(json_response(
                        StatusCode::OK,
                        &serde_json::json!({"host": "embed_axum", "phase": app.phase().as_str()}),
                    ))
                },
            )
            .access(Access::Public),
        )
        .build()
        .await
        .map_err(std::io::Error::other)?;
    books.drain_on_signal();

    // The host's own routes sit beside AccuBooks's.
    let host = Router::new()
        .route(
            "/hello",
            get(|| async { "hello from the host application\n" }),
        )
        .merge(accubooks_axum::router(books.clone()));

    println!(
        "host with accubooks listening on http://{}",
        listener.local_addr()?
    );
    let drained = {
        let books = books.clone();
        async move { books.draining().await }
    };
    let server = axum::serve(
        listener,
        host.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(drained);
    books.serve_until_drained(server.into_future()).await
}

//! A bare axum server that answers `GET /` with `hello`: the ceiling of this
//! machine for one HTTP request, against which `scripts/bench` compares the
//! AccuBooks hosts (same runtime, same HTTP stack, no pipeline).
//!
//! It reads `PORT` (default 5000) and `HOSTNAME` (default `0.0.0.0`) like the
//! AccuBooks servers.
//!
//! ```text
//! PORT=8080 cargo run --release --example hello_axum
//! ```

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "5000".to_owned());
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "0.0.0.0".to_owned());
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new().route("/", get(|| async { "hello" }));
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}

//! The standalone AccuBooks server on axum.
//!
//! With no configuration at all it serves a development instance on the
//! embedded SQLite file `accubooks.db`; see the README for every variable.
//!
//! ```text
//! cargo run --release --example server
//! ```

use accubooks_core::{AccuBooks, Config, lifecycle, telemetry};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let config = Config::from_env_or_exit();
    telemetry::init(config.environment);
    let listener = lifecycle::bind_or_exit(&config.listen_addr()).await;
    let app = AccuBooks::builder(config)
        .build()
        .await
        .map_err(std::io::Error::other)?;
    app.drain_on_signal();
    println!("accubooks listening on http://{}", listener.local_addr()?);
    accubooks_axum::serve(app, listener).await
}

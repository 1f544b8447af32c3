//! The standalone AccuBooks server on warp: the same contract as
//! `examples/server.rs`, served by the other host.
//!
//! ```text
//! cargo run --release --example warp_server
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
    println!(
        "accubooks (warp) listening on http://{}",
        listener.local_addr()?
    );
    accubooks_warp::serve(app, listener).await
}

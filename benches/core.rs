//! In-process benchmarks of the hot paths of the core: the health report,
//! the metrics exposition, and the request pipeline per request.
//!
//! ```text
//! cargo bench --bench core
//! ```

use std::time::Duration;

use accubooks_core::identity::{Principal, Role};
use accubooks_core::{AccuBooks, Config};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use uuid::Uuid;

fn instance(runtime: &tokio::runtime::Runtime) -> AccuBooks {
    // Nothing listens on these ports: the benchmark measures the degraded
    // path that health checks and load balancers hit during an outage too.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = Config::from_vars([
        ("ACCUBOOKS_ENV", "test".to_owned()),
        (
            "DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:{closed}/x"),
        ),
        ("REDIS_URL", format!("redis://127.0.0.1:{closed}")),
        (
            "JWT_SECRET",
            "bench-secret-bench-secret-bench-secret-00".to_owned(),
        ),
        (
            "SESSION_SECRET",
            "bench-secret-bench-secret-bench-secret-00".to_owned(),
        ),
    ])
    .unwrap();
    runtime.block_on(async {
        let app = AccuBooks::builder(config).build().await.unwrap();
        app.registry().first_round().await;
        app
    })
}

fn request(path: &str, token: &str) -> http::request::Parts {
    http::Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(())
        .unwrap()
        .into_parts()
        .0
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = instance(&runtime);
    let peer = Some("127.0.0.1:9".parse().unwrap());
    let empty = || futures::stream::empty::<Result<Bytes, std::io::Error>>();
    let token = app.tokens().issue(
        Principal {
            user: Uuid::new_v4(),
            organization: Uuid::new_v4(),
            role: Role::Viewer,
        },
        Duration::from_secs(3600),
    );

    c.bench_function("health_report_json", |b| {
        b.iter(|| serde_json::to_vec(&app.health().body).unwrap())
    });
    c.bench_function("metrics_render", |b| b.iter(|| app.render_metrics()));
    c.bench_function("pipeline_live", |b| {
        b.to_async(&runtime)
            .iter(|| app.handle(request("/api/monitoring/live", &token), empty(), peer))
    });
    c.bench_function("pipeline_database_503", |b| {
        b.to_async(&runtime)
            .iter(|| app.handle(request("/api/accounts", &token), empty(), peer))
    });
    c.bench_function("pipeline_not_found", |b| {
        b.to_async(&runtime)
            .iter(|| app.handle(request("/api/nothing/here", &token), empty(), peer))
    });
}

criterion_group! {
    name = core;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = benches
}
criterion_main!(core);

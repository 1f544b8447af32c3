//! Cross-crate tests against real PostgreSQL and Redis: the contract suite
//! run on every host, fault tests that kill, pause and restart the
//! dependencies, and process-level tests of the standalone server.

pub mod support;

/// Generates one `#[tokio::test]` per store (`books::Store`) for each case:
/// `$case(store)` is an async fn in the invoking module.
macro_rules! on_every_store {
    ($($case:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::books::Store::Postgres).await
                }
            )*
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case($crate::books::Store::Sqlite).await
                }
            )*
        }
    };
}

/// Generates one `#[tokio::test]` per store and host for each case:
/// `$case(door)` is an async fn in the invoking module taking a
/// `books::Door`. The books suites run through every door this way.
macro_rules! on_every_door {
    ($($case:ident),* $(,)?) => {
        on_every_door!(@host axum_postgres, Postgres, Axum; $($case),*);
        on_every_door!(@host axum_sqlite, Sqlite, Axum; $($case),*);
        on_every_door!(@host warp_postgres, Postgres, Warp; $($case),*);
        on_every_door!(@host warp_sqlite, Sqlite, Warp; $($case),*);
    };
    (@host $module:ident, $store:ident, $host:ident; $($case:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let door = $crate::books::Door {
                        store: $crate::books::Store::$store,
                        host: $crate::support::server::Host::$host,
                    };
                    super::$case(door).await
                }
            )*
        }
    };
}

/// Generates one `#[tokio::test]` per host for each case.
macro_rules! on_every_host {
    ($($case:ident),* $(,)?) => {
        mod axum_host {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Host::Axum).await
                }
            )*
        }
        mod warp_host {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::Host::Warp).await
                }
            )*
        }
    };
}

mod bank;
mod books;
mod contract;
mod events;
mod export;
mod faults;
mod hardening;
mod hierarchy;
mod hygiene;
mod invoices;
mod jobs;
mod journal;
mod numbering;
mod paging;
mod payments;
mod periods;
mod pool;
mod process;
mod properties;
mod retention;
mod scale;
mod tenancy;
mod webhooks;

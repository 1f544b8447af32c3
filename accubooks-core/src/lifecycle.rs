//! Process signals, and binding the listening address of a standalone server.

/// Resolves on SIGTERM or SIGINT (on non-Unix systems, Ctrl-C only).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutdown requested"),
                    _ = int.recv() => tracing::info!(signal = "SIGINT", "shutdown requested"),
                }
            }
            _ => {
                tracing::warn!("cannot listen for SIGTERM; only Ctrl-C will stop the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The exit code of a standalone server that cannot listen on its address
/// (a configuration error is `2`).
pub const LISTEN_EXIT_CODE: i32 = 3;

/// Binds `addr` (`HOSTNAME:PORT`), or ends the process with
/// [`LISTEN_EXIT_CODE`] and one sentence that names the address and what to
/// do, instead of a debug print of the I/O error.
pub async fn bind_or_exit(addr: &str) -> tokio::net::TcpListener {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("accubooks: {}", listen_failure(addr, &err));
            std::process::exit(LISTEN_EXIT_CODE)
        }
    }
}

/// What to tell the operator when `addr` cannot be bound.
fn listen_failure(addr: &str, err: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match err.kind() {
        K::AddrInUse => format!(
            "cannot listen on {addr}: the address is already in use by another process. Stop \
             that process (`ss -ltnp` shows it), or set PORT to a free port (PORT=0 picks one)."
        ),
        K::PermissionDenied => format!(
            "cannot listen on {addr}: permission denied. Ports below 1024 need privileges: set \
             PORT to 1024 or above, or grant CAP_NET_BIND_SERVICE."
        ),
        K::AddrNotAvailable => format!(
            "cannot listen on {addr}: no interface of this machine has that address. Set \
             HOSTNAME to 0.0.0.0 (every interface), 127.0.0.1, or one of this machine's addresses."
        ),
        _ => format!("cannot listen on {addr}: {err}. Check HOSTNAME and PORT."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_failures_name_the_address_and_the_fix() {
        let busy = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let text = listen_failure("0.0.0.0:5000", &busy);
        assert!(text.contains("0.0.0.0:5000") && text.contains("already in use"));
        assert!(text.contains("PORT") && !text.contains("Os {"));
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(listen_failure("0.0.0.0:80", &denied).contains("1024"));
    }
}

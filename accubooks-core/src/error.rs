//! The crate-wide error type and the transience every failure carries.

use std::fmt;

/// Whether retrying the same operation later can succeed.
///
/// The dependency monitor, the 503 guard and job retries decide from this,
/// never from an error's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transience {
    /// The cause is expected to pass: refused, reset or timed-out connections.
    Temporary,
    /// Retrying will not help until someone changes something: a rejected
    /// password, an unknown database, a failed migration.
    Permanent,
}

impl Transience {
    /// The lowercase name used in health output.
    pub fn as_str(self) -> &'static str {
        match self {
            Transience::Temporary => "temporary",
            Transience::Permanent => "permanent",
        }
    }
}

impl fmt::Display for Transience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a dependency could not be used, as a machine code that is safe to
/// show to anyone (no host names, user names or driver texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fault {
    /// A stable upper-case code such as `CONNECTION_REFUSED`.
    pub code: &'static str,
    /// Whether waiting can fix it.
    pub transience: Transience,
}

impl Fault {
    /// A fault that may pass by itself.
    pub const fn temporary(code: &'static str) -> Self {
        Fault {
            code,
            transience: Transience::Temporary,
        }
    }

    /// A fault that needs someone to act.
    pub const fn permanent(code: &'static str) -> Self {
        Fault {
            code,
            transience: Transience::Permanent,
        }
    }

    /// The probe or query did not answer in time.
    pub const TIMEOUT: Fault = Fault::temporary("TIMEOUT");

    /// Classifies an I/O error from a connection attempt or an exchange.
    pub fn from_io(err: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match err.kind() {
            K::ConnectionRefused => Fault::temporary("CONNECTION_REFUSED"),
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                Fault::temporary("CONNECTION_RESET")
            }
            K::TimedOut | K::WouldBlock => Fault::TIMEOUT,
            K::NotFound | K::AddrNotAvailable => Fault::temporary("HOST_UNREACHABLE"),
            K::PermissionDenied => Fault::permanent("PERMISSION_DENIED"),
            _ => Fault::temporary("IO_ERROR"),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.code, self.transience)
    }
}

/// Errors of the core library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid; every problem is listed.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The database is known to be down, or failed with a connection-class error.
    #[error("the database is unavailable ({0})")]
    DatabaseUnavailable(Fault),
    /// The database answered with an error that is not about the connection
    /// (a constraint, a bad statement). Its text is for logs only.
    #[error("database query failed: {0}")]
    Query(#[source] sqlx::Error),
    /// One statement took longer than `DB_STATEMENT_TIMEOUT_MS` and was
    /// abandoned. It is this request's failure, not an outage: the database
    /// stays available to every other request.
    #[error("the statement did not finish within {limit_ms} ms")]
    StatementTimedOut {
        /// The limit that was exceeded.
        limit_ms: u64,
    },
    /// A dependency name was registered twice or a route names an unknown one.
    #[error("{0}")]
    Setup(String),
}

impl Error {
    /// Whether retrying later can succeed.
    pub fn transience(&self) -> Transience {
        match self {
            Error::DatabaseUnavailable(fault) => fault.transience,
            Error::StatementTimedOut { .. } => Transience::Temporary,
            Error::Config(_) | Error::Query(_) | Error::Setup(_) => Transience::Permanent,
        }
    }
}

/// The result type of the core library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

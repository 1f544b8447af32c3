//! Failures of the bindings and their Python exception classes.
//!
//! Every error of the core is first turned into the core's [`ApiError`], the
//! one place where an error gets its status and machine code, and then into
//! the class of `accubooks._errors` that matches that status. So a Python
//! caller sees exactly the code and status an HTTP client would.

use accubooks_core::ConfigError;
use accubooks_core::http::ApiError;
use accubooks_core::ledger::LedgerError;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule};

/// Why an operation failed, before it becomes a Python exception.
#[derive(Debug)]
pub(crate) enum Failure {
    /// An answer of the API: the status and code decide the class.
    Api(ApiError),
    /// The configuration is invalid.
    Config {
        /// Every problem, one line each.
        message: String,
        /// `(variable, what is wrong)` pairs.
        problems: Vec<(String, String)>,
    },
    /// A socket could not be bound or a server failed.
    Io(std::io::Error),
}

/// Shorthand for results of the bindings' operations.
pub(crate) type Outcome<T> = Result<T, Failure>;

impl From<ApiError> for Failure {
    fn from(err: ApiError) -> Self {
        Failure::Api(err)
    }
}

impl From<LedgerError> for Failure {
    fn from(err: LedgerError) -> Self {
        Failure::Api(err.into())
    }
}

impl From<accubooks_core::Error> for Failure {
    fn from(err: accubooks_core::Error) -> Self {
        match err {
            accubooks_core::Error::Config(err) => err.into(),
            // Setup errors of the builder are about the configuration
            // (an unparsable URL, a secret unusable as a key); their text
            // never holds a secret.
            accubooks_core::Error::Setup(message) => Failure::Config {
                message: format!("invalid configuration: {message}"),
                problems: Vec::new(),
            },
            other => Failure::Api(other.into()),
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(err: ConfigError) -> Self {
        Failure::Config {
            message: err.to_string().trim_end().to_owned(),
            problems: err
                .problems
                .iter()
                .map(|p| (p.variable.to_owned(), p.message.clone()))
                .collect(),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        Failure::Io(err)
    }
}

/// The name of the `accubooks._errors` class for an API error.
fn class_name(err: &ApiError) -> &'static str {
    match (err.status().as_u16(), err.code()) {
        (400 | 422, _) => "ValidationError",
        (401, _) => "AuthenticationError",
        (403, _) => "PermissionDeniedError",
        (404 | 410, _) => "NotFoundError",
        (409, _) => "ConflictError",
        (429, _) => "RateLimitedError",
        (503, "DATABASE_UNAVAILABLE") => "DatabaseUnavailable",
        (503, _) => "ServiceUnavailable",
        _ => "AccuBooksError",
    }
}

fn retry_after(err: &ApiError) -> Option<u64> {
    match err {
        ApiError::RateLimited { retry_after } | ApiError::Overloaded { retry_after, .. } => {
            Some(*retry_after)
        }
        ApiError::Unavailable { retry_after, .. } => Some(u64::from(*retry_after)),
        ApiError::Timeout { .. } => Some(1),
        _ => None,
    }
}

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn errors_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    ERRORS
        .get_or_try_init(py, || Ok(py.import("accubooks._errors")?.unbind()))
        .map(|m| m.bind(py))
}

impl Failure {
    /// The Python exception.
    pub(crate) fn into_pyerr(self, py: Python<'_>) -> PyErr {
        match self.instantiate(py) {
            Ok(err) => err,
            // Only when the package around the native module is missing.
            Err(err) => {
                PyRuntimeError::new_err(format!("accubooks: cannot load accubooks._errors ({err})"))
            }
        }
    }

    fn instantiate(self, py: Python<'_>) -> PyResult<PyErr> {
        let module = errors_module(py)?;
        let kwargs = PyDict::new(py);
        let (class, message) = match self {
            Failure::Api(err) => {
                kwargs.set_item("code", err.code())?;
                kwargs.set_item("status", err.status().as_u16())?;
                kwargs.set_item("retry_after", retry_after(&err))?;
                (class_name(&err), err.to_string())
            }
            Failure::Config { message, problems } => {
                kwargs.set_item("problems", problems)?;
                ("ConfigError", message)
            }
            Failure::Io(err) => return Ok(err.into()),
        };
        let instance = module.getattr(class)?.call((message,), Some(&kwargs))?;
        Ok(PyErr::from_value(instance))
    }
}

impl From<Failure> for PyErr {
    fn from(failure: Failure) -> Self {
        // Reentrant and cheap where the caller is already attached, which is
        // everywhere a `Failure` is converted.
        Python::attach(|py| failure.into_pyerr(py))
    }
}

/// A 422 with a machine code, for input the core never sees.
pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Failure {
    Failure::Api(ApiError::invalid(code, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use accubooks_core::http::DATABASE_UNAVAILABLE;

    #[test]
    fn classes_follow_status_and_code() {
        assert_eq!(class_name(&DATABASE_UNAVAILABLE), "DatabaseUnavailable");
        let jobs = ApiError::Unavailable {
            code: "JOBS_UNAVAILABLE",
            message: "down",
            retry_after: 1,
        };
        assert_eq!(class_name(&jobs), "ServiceUnavailable");
        assert_eq!(
            class_name(&ApiError::invalid("UNBALANCED_ENTRY", "x")),
            "ValidationError"
        );
        assert_eq!(class_name(&ApiError::malformed("x")), "ValidationError");
        assert_eq!(class_name(&ApiError::NotFound("x".into())), "NotFoundError");
        assert_eq!(
            class_name(&ApiError::RateLimited { retry_after: 3 }),
            "RateLimitedError"
        );
        assert_eq!(class_name(&ApiError::Internal), "AccuBooksError");
        assert_eq!(
            retry_after(&ApiError::RateLimited { retry_after: 3 }),
            Some(3)
        );
    }

    #[test]
    fn config_errors_keep_every_problem() {
        let err = accubooks_core::Config::from_vars([("ACCUBOOKS_ENV", "production")]).unwrap_err();
        let Failure::Config { message, problems } = Failure::from(err) else {
            panic!("expected a configuration failure")
        };
        let names: Vec<&str> = problems.iter().map(|(v, _)| v.as_str()).collect();
        assert!(names.contains(&"JWT_SECRET") && names.contains(&"DATABASE_URL"));
        assert!(message.contains("JWT_SECRET"), "{message}");
    }
}

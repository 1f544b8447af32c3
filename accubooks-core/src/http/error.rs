//! The one place where an error becomes a status code and a JSON body.

use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use super::Response;
use crate::error::Error;
use crate::ledger::LedgerError;

/// An error answer of the HTTP API, as section 4 of the contract describes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the request cannot be parsed.
    #[error("{message}")]
    Malformed {
        /// What to fix.
        message: String,
    },
    /// 400 with its own code: a request refused as a whole (a webhook whose
    /// signature does not verify).
    #[error("{message}")]
    BadRequest {
        /// Machine code, e.g. `INVALID_SIGNATURE`.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// 401: no token, or a token that is invalid or expired.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: the token's role may not do this, or the peer may not read metrics.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404: no such route, or no such record in this organization.
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists, the method does not.
    #[error("This path does not accept the {method} method; it accepts {allow}.")]
    MethodNotAllowed {
        /// The method's metric label (a known method or `OTHER`), never the
        /// client's unbounded text.
        method: &'static str,
        /// The methods the path accepts, for the `Allow` header.
        allow: String,
    },
    /// 409: the request conflicts with the current state.
    #[error("{message}")]
    Conflict {
        /// Machine code.
        code: &'static str,
        /// What happened.
        message: String,
    },
    /// 410: the record existed but is no longer kept (an expired report
    /// result).
    #[error("{message}")]
    Gone {
        /// Machine code, e.g. `REPORT_EXPIRED`.
        code: &'static str,
        /// What expired and how to get it again.
        message: String,
    },
    /// 413: the body is larger than `BODY_LIMIT_BYTES`, or than the
    /// route's own smaller limit (a signed webhook's).
    #[error("The request body is larger than the limit of {limit} bytes.")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// 415: a body that is not JSON.
    #[error("Send the body as JSON, with Content-Type: application/json.")]
    UnsupportedMediaType,
    /// 422: well-formed JSON with invalid content.
    #[error("{message}")]
    Invalid {
        /// Machine code, e.g. `UNBALANCED_ENTRY`.
        code: &'static str,
        /// What to fix.
        message: String,
    },
    /// 429: too many attempts; retry after the given seconds.
    #[error("Too many requests. Retry in {retry_after} seconds.")]
    RateLimited {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// 429: too much heavy work of one kind runs at once (exports, large
    /// batches); retry after the given seconds.
    #[error("{message}")]
    Overloaded {
        /// What is full.
        message: String,
        /// Seconds to wait.
        retry_after: u64,
    },
    /// 503: a dependency the route needs is down.
    #[error("{message}")]
    Unavailable {
        /// Machine code, e.g. `DATABASE_UNAVAILABLE`.
        code: &'static str,
        /// What happened.
        message: &'static str,
        /// Seconds the client should wait before retrying.
        retry_after: u32,
    },
    /// 503: the request did not finish within `REQUEST_TIMEOUT_MS`.
    #[error("The request did not finish within {timeout_ms} ms. Please retry.")]
    Timeout {
        /// The limit that was exceeded.
        timeout_ms: u64,
    },
    /// 500: a bug. Details go to the log, never to the client.
    #[error("An internal error occurred. Quote the request id when reporting it.")]
    Internal,
}

/// The database's 503, word for word as in the contract.
pub const DATABASE_UNAVAILABLE: ApiError = ApiError::Unavailable {
    code: "DATABASE_UNAVAILABLE",
    message: "Database unavailable. Server running in degraded mode.",
    retry_after: 1,
};

impl ApiError {
    /// A 400 with a message.
    pub fn malformed(message: impl Into<String>) -> Self {
        ApiError::Malformed {
            message: message.into(),
        }
    }

    /// A 422 with a code and a message.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Malformed { .. } | ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } | ApiError::Overloaded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable { .. } | ApiError::Timeout { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Malformed { .. } => "MALFORMED_REQUEST",
            ApiError::Unauthorized(_) => "UNAUTHORIZED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            ApiError::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            ApiError::Conflict { code, .. }
            | ApiError::Gone { code, .. }
            | ApiError::BadRequest { code, .. }
            | ApiError::Invalid { code, .. }
            | ApiError::Unavailable { code, .. } => code,
            ApiError::Timeout { .. } => "REQUEST_TIMEOUT",
            ApiError::RateLimited { .. } => "RATE_LIMITED",
            ApiError::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ApiError::Overloaded { .. } => "TOO_MANY_CONCURRENT",
            ApiError::Internal => "INTERNAL_ERROR",
        }
    }

    /// Renders the JSON answer, with the request id in body and header.
    pub fn into_response(self, request_id: &str) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            error: String,
            code: &'a str,
            request_id: &'a str,
        }
        let body = Body {
            error: self.to_string(),
            code: self.code(),
            request_id,
        };
        let mut response = super::json_response(self.status(), &body);
        if let ApiError::Unavailable { retry_after, .. } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        } else if let ApiError::RateLimited { retry_after }
        | ApiError::Overloaded { retry_after, .. } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        } else if let ApiError::MethodNotAllowed { allow, .. } = &self
            && let Ok(value) = HeaderValue::from_str(allow)
        {
            response.headers_mut().insert(header::ALLOW, value);
        } else if let ApiError::Timeout { .. } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// The books' errors, each a clear answer for the client.
impl From<LedgerError> for ApiError {
    fn from(err: LedgerError) -> Self {
        match err {
            LedgerError::Invalid { code, message } => ApiError::Invalid { code, message },
            LedgerError::NotFound(message) => ApiError::NotFound(message),
            LedgerError::Conflict { code, message } => ApiError::Conflict { code, message },
            LedgerError::Gone { code, message } => ApiError::Gone { code, message },
            LedgerError::Storage(err) => err.into(),
        }
    }
}

impl From<crate::usecases::Error> for ApiError {
    fn from(err: crate::usecases::Error) -> Self {
        use crate::usecases::Error as E;
        match err {
            E::Ledger(err) => err.into(),
            E::InvalidCredentials => {
                ApiError::Unauthorized("The e-mail address or the password is wrong.")
            }
            E::Throttled(throttled) => throttled.into(),
            E::HashingBusy(_) => ApiError::Unavailable {
                code: "SERVER_BUSY",
                message: crate::identity::HashingBusy::MESSAGE,
                retry_after: 1,
            },
            E::Forbidden => ApiError::Forbidden(crate::usecases::error::FORBIDDEN),
            E::UnknownUser => ApiError::Unauthorized(crate::usecases::error::UNKNOWN_USER),
            E::Unavailable(unavailable) => ApiError::Unavailable {
                code: unavailable.code,
                message: unavailable.message,
                retry_after: unavailable.retry_after,
            },
            E::TimedOut { limit_ms } => ApiError::Timeout {
                timeout_ms: limit_ms,
            },
            E::Overloaded(overloaded) => overloaded.into(),
            E::InvalidSignature(bad) => ApiError::BadRequest {
                code: "INVALID_SIGNATURE",
                message: bad.to_string(),
            },
            E::InvalidPlaidSignature(bad) => ApiError::BadRequest {
                code: "INVALID_SIGNATURE",
                message: bad.to_string(),
            },
            err @ E::InvalidKey => ApiError::malformed(err.to_string()),
            err @ E::KeyReused => ApiError::invalid("IDEMPOTENCY_KEY_REUSED", err.to_string()),
            err @ E::KeyInProgress => ApiError::Conflict {
                code: "IDEMPOTENCY_KEY_IN_PROGRESS",
                message: err.to_string(),
            },
        }
    }
}

/// A page request a list cannot serve: a 422 naming the parameter.
impl From<crate::paging::PagingError> for ApiError {
    fn from(err: crate::paging::PagingError) -> Self {
        ApiError::invalid(err.code(), err.to_string())
    }
}

impl From<crate::throttle::Throttled> for ApiError {
    fn from(throttled: crate::throttle::Throttled) -> Self {
        ApiError::RateLimited {
            retry_after: throttled.retry_after,
        }
    }
}

impl From<crate::identity::TokenError> for ApiError {
    fn from(err: crate::identity::TokenError) -> Self {
        ApiError::Unauthorized(err.message())
    }
}

impl From<crate::limits::Overloaded> for ApiError {
    fn from(err: crate::limits::Overloaded) -> Self {
        ApiError::Overloaded {
            message: err.message,
            retry_after: err.retry_after,
        }
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        match err {
            Error::DatabaseUnavailable(_) => DATABASE_UNAVAILABLE,
            Error::StatementTimedOut { limit_ms } => ApiError::Timeout {
                timeout_ms: limit_ms,
            },
            // A value the database refuses (SQLSTATE class 22, "data
            // exception": a NUL in text, a number out of range) is bad
            // input that validation let through: a 422, never a 500.
            Error::Query(sqlx::Error::Database(db))
                if db.code().is_some_and(|code| code.starts_with("22")) =>
            {
                tracing::warn!(error = %db, "the database refused a value validation let through");
                ApiError::invalid(
                    "INVALID_VALUE",
                    "A value of the request cannot be stored; check its text and number fields.",
                )
            }
            other => {
                tracing::error!(error = %other, "request failed");
                ApiError::Internal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_unavailable_matches_the_contract() {
        let response = DATABASE_UNAVAILABLE.into_response("req-1");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body: serde_json::Value =
            serde_json::from_slice(response.body().as_bytes().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "error": "Database unavailable. Server running in degraded mode.",
                "code": "DATABASE_UNAVAILABLE",
                "request_id": "req-1",
            })
        );
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let err: ApiError = Error::Setup("secret detail".into()).into();
        let response = err.into_response("r");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            !String::from_utf8_lossy(response.body().as_bytes().unwrap()).contains("secret detail")
        );
    }
}

"""AccuBooks from Python: an embeddable, resilient accounting backend.

``AccuBooks`` is one instance of the Rust core (its database pool, dependency
monitors and group-commit journal) inside this process. ``Organization`` keeps
one organization's books with the same rules as the HTTP API, ``serve()``
serves that API itself, and ``accubooks.aio`` has the asyncio twins.

Answers are plain dicts and lists; dates are ``datetime.date`` and money is
``decimal.Decimal``. Errors are ``AccuBooksError`` subclasses carrying the
HTTP API's ``code`` and ``status``.
"""

from ._accubooks import AccuBooks, Organization, Server, __version__
from ._errors import (
    AccuBooksError,
    AuthenticationError,
    ConfigError,
    ConflictError,
    DatabaseUnavailable,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServiceUnavailable,
    ValidationError,
)

__all__ = [
    "__version__",
    "AccuBooks",
    "Organization",
    "Server",
    "AccuBooksError",
    "ValidationError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "RateLimitedError",
    "ServiceUnavailable",
    "DatabaseUnavailable",
    "ConfigError",
]

"""AccuBooks from Python: an embeddable, resilient accounting backend.

``AccuBooks`` is one instance of the Rust core (its database pool, dependency
monitors and group-commit journal) inside this process. ``Organization`` keeps
one organization's books with the same rules as the HTTP API, ``serve()``
serves that API itself, and ``accubooks.aio`` has the asyncio twins.

Answers are plain dicts and lists; dates are ``datetime.date`` and money is
``decimal.Decimal``. Errors are ``AccuBooksError`` subclasses carrying the
HTTP API's ``code`` and ``status``.
"""

from typing import Any, Callable, Iterator

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
    "iterate",
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


def iterate(method: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Iterator[Any]:
    """Every item of a paged list, page after page, as the HTTP API's ``Link``
    headers lead: ``for invoice in accubooks.iterate(org.invoices, status="issued")``.

    ``method`` is a list method of an ``Organization`` (``invoices``,
    ``customers``, ``jobs``…; for ``general_ledger``, its rows); ``args`` and
    ``kwargs`` are its filters. Pages are read as they are consumed, 500 items
    at a time unless ``limit=`` says otherwise. Every record that existed when
    the first page was read is yielded once, whatever is added meanwhile.
    """
    kwargs.setdefault("limit", 500)
    after = kwargs.pop("after", None)
    while True:
        page = method(*args, after=after, **kwargs)
        if isinstance(page, dict):
            yield from page["rows"]
            after = page["next_cursor"]
        else:
            yield from page
            after = page.next_cursor
        if after is None:
            return

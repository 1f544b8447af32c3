"""The exceptions of AccuBooks.

Every error carries the machine ``code`` and the HTTP ``status`` that the HTTP
API would answer for the same failure, so Python callers and HTTP clients see
the same thing. The native module raises these classes; they live in Python so
that they can be subclassed, pickled and documented like any exception.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Type

__all__ = [
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


class AccuBooksError(Exception):
    """Base class of every AccuBooks error.

    Attributes:
        message: The human sentence (also ``str(error)``).
        code: The machine code, e.g. ``"UNBALANCED_ENTRY"``.
        status: The HTTP status the API answers for it, e.g. ``422``.
        retry_after: Seconds to wait before retrying (429 and 503), else ``None``.
    """

    message: str
    code: str
    status: int
    retry_after: Optional[int]

    def __init__(
        self,
        message: str,
        *,
        code: str = "INTERNAL_ERROR",
        status: int = 500,
        retry_after: Optional[int] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.retry_after = retry_after

    @property
    def temporary(self) -> bool:
        """Whether retrying the same call later can succeed (429 and 503)."""
        return self.status in (429, 503)

    def __reduce__(self) -> Tuple[Any, ...]:
        kwargs: Dict[str, Any] = {
            "code": self.code,
            "status": self.status,
            "retry_after": self.retry_after,
        }
        return (_rebuild, (type(self), self.message, kwargs))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code!r}, status={self.status})"


def _rebuild(cls: Type[AccuBooksError], message: str, kwargs: Dict[str, Any]) -> AccuBooksError:
    return cls(message, **kwargs)


class ValidationError(AccuBooksError):
    """The input is malformed (400) or not acceptable (422): fix it and retry."""


class AuthenticationError(AccuBooksError):
    """Wrong credentials or an invalid token (401)."""


class PermissionDeniedError(AccuBooksError):
    """The role of the handle may not do this (403)."""


class NotFoundError(AccuBooksError):
    """Absent, or another organization's (404)."""


class ConflictError(AccuBooksError):
    """Conflicts with what exists, e.g. ``EMAIL_TAKEN``, ``ALREADY_REVERSED`` (409)."""


class RateLimitedError(AccuBooksError):
    """Too many attempts (429); ``retry_after`` says how long to wait."""


class ServiceUnavailable(AccuBooksError):
    """A dependency is down, the call timed out or the handle is closed (503)."""


class DatabaseUnavailable(ServiceUnavailable):
    """The database is down (503 ``DATABASE_UNAVAILABLE``).

    Raised at once while the outage is known; calls succeed again by themselves
    once the database is back, on the same handle.
    """


class ConfigError(AccuBooksError):
    """The configuration is invalid. The message lists every problem.

    Attributes:
        problems: ``(variable, what is wrong)`` pairs, in the contract's order.
            Never contains the value of a secret.
    """

    problems: List[Tuple[str, str]]

    def __init__(
        self,
        message: str,
        *,
        problems: Sequence[Tuple[str, str]] = (),
        code: str = "INVALID_CONFIGURATION",
        status: int = 500,
        retry_after: Optional[int] = None,
    ) -> None:
        super().__init__(message, code=code, status=status, retry_after=retry_after)
        self.problems = [(str(variable), str(text)) for variable, text in problems]

    @property
    def variables(self) -> List[str]:
        """The names of the variables at fault."""
        return [variable for variable, _ in self.problems]

    def __reduce__(self) -> Tuple[Any, ...]:
        kwargs: Dict[str, Any] = {
            "problems": self.problems,
            "code": self.code,
            "status": self.status,
        }
        return (_rebuild, (type(self), self.message, kwargs))

"""The asyncio twins of ``accubooks.AccuBooks`` and ``accubooks.Organization``.

Methods that may wait return awaitables (``await org.post_entry(...)``): asyncio
futures whose work is already running on the Tokio runtime the blocking classes
use, from the moment of the call (so ``asyncio.gather`` of many calls runs them
concurrently, and the result of one that is never awaited is dropped, not its
work). Use ``asyncio.ensure_future``, not ``create_task``, to hold one.

Reading kept state never waits, so ``health()``, ``ready()``, ``live()``, ``metrics()``, ``phase()`` and
``token()`` are plain methods. Arguments, answers and errors are those of the
blocking classes (see ``accubooks``).
"""

from types import TracebackType
from typing import Awaitable, Literal, Sequence, final

from . import Server
from .types import (
    Account,
    AccountType,
    BalanceSheet,
    DateLike,
    Entry,
    EntryInput,
    GeneralLedger,
    Health,
    IncomeStatement,
    LineInput,
    Role,
    TrialBalance,
    User,
)

@final
class AsyncAccuBooks:
    """One AccuBooks instance for asyncio code; see ``accubooks.AccuBooks``."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        accubooks_env: str | None = None,
        node_env: str | None = None,
        port: int | str | None = None,
        hostname: str | None = None,
        jwt_secret: str | None = None,
        session_secret: str | None = None,
        frontend_url: str | None = None,
        redis_url: str | None = None,
        redis_host: str | None = None,
        redis_port: int | str | None = None,
        redis_password: str | None = None,
        slow_request_ms: int | str | None = None,
        db_pool_min: int | str | None = None,
        db_pool_max: int | str | None = None,
        db_idle_timeout_ms: int | str | None = None,
        db_connect_timeout_ms: int | str | None = None,
        db_init_timeout_ms: int | str | None = None,
        db_statement_timeout_ms: int | str | None = None,
        stripe_secret_key: str | None = None,
        stripe_webhook_secret: str | None = None,
        stripe_api_base: str | None = None,
        plaid_client_id: str | None = None,
        plaid_secret: str | None = None,
        plaid_api_base: str | None = None,
        metrics_token: str | None = None,
        request_timeout_ms: int | str | None = None,
        body_limit_bytes: int | str | None = None,
        drain_timeout_ms: int | str | None = None,
    ) -> None:
        """Configures an instance from keywords, as ``accubooks.AccuBooks`` does.

        Raises:
            ConfigError: listing every invalid or missing variable.
        """

    @staticmethod
    def from_env() -> AsyncAccuBooks: ...
    def health(self) -> Health: ...
    def ready(self) -> bool: ...
    def live(self) -> bool: ...
    def metrics(self) -> str: ...
    def phase(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    def wait_ready(self, timeout: float = 5.0) -> Awaitable[bool]: ...
    def close(self) -> Awaitable[None]: ...
    def __aenter__(self) -> Awaitable[AsyncAccuBooks]: ...
    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]: ...
    def register(
        self, email: str, password: str, organization: str, currency: str = "USD"
    ) -> Awaitable[AsyncOrganization]: ...
    def login(self, email: str, password: str) -> Awaitable[AsyncOrganization]: ...
    def organization(self, id: str) -> Awaitable[AsyncOrganization]: ...
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Awaitable[Server]:
        """Serves the HTTP API in the background; stop it with ``await server.astop()``."""

@final
class AsyncOrganization:
    """One organization's books for asyncio code; see ``accubooks.Organization``."""

    @property
    def id(self) -> str: ...
    @property
    def user_id(self) -> str | None: ...
    @property
    def role(self) -> Role: ...
    def token(self) -> str: ...
    def create_user(self, email: str, password: str, role: Role = "accountant") -> Awaitable[User]: ...
    def create_account(
        self,
        code: str,
        name: str,
        type: AccountType,
        currency: str,
        parent: str | None = None,
    ) -> Awaitable[Account]: ...
    def accounts(self) -> Awaitable[list[Account]]: ...
    def post_entry(
        self,
        date: DateLike,
        lines: Sequence[LineInput],
        memo: str = "",
        *,
        idempotency_key: str | None = None,
    ) -> Awaitable[Entry]: ...
    def post_entries(
        self, entries: Sequence[EntryInput], *, idempotency_key: str | None = None
    ) -> Awaitable[list[int]]: ...
    def entry(self, id: int) -> Awaitable[Entry]: ...
    def reverse_entry(
        self, id: int, date: DateLike | None = None, *, idempotency_key: str | None = None
    ) -> Awaitable[Entry]: ...
    def trial_balance(self, as_of: DateLike | None = None) -> Awaitable[TrialBalance]: ...
    def balance_sheet(self, as_of: DateLike | None = None) -> Awaitable[BalanceSheet]: ...
    def income_statement(self, from_: DateLike, to: DateLike) -> Awaitable[IncomeStatement]: ...
    def general_ledger(
        self, account: str, from_: DateLike, to: DateLike
    ) -> Awaitable[GeneralLedger]: ...
    def export_ledger(
        self, format: Literal["hledger", "beancount"], as_of: DateLike | None = None
    ) -> Awaitable[str]: ...

__all__ = ["AsyncAccuBooks", "AsyncOrganization"]

"""AccuBooks from Python: an embeddable, resilient accounting backend.

Conventions of every method below:

* Answers are plain ``dict``/``list`` objects shaped like the HTTP API's JSON
  (see ``accubooks.types``); dates in them are ``datetime.date`` and money is
  ``decimal.Decimal``, exact, with the currency's fraction digits.
* Money in is ``Decimal`` or a decimal string (``"12.30"``). A ``float`` or an
  ``int`` raises ``TypeError``: money is never a float, and an int could mean
  cents or dollars.
* Dates in are ``datetime.date`` or ``"YYYY-MM-DD"``; a ``datetime.datetime``
  raises ``TypeError``.
* Failures raise ``AccuBooksError`` subclasses with the HTTP API's ``code`` and
  ``status`` (e.g. ``ValidationError`` with ``code == "UNBALANCED_ENTRY"``).
  While the database is known to be down, calls raise ``DatabaseUnavailable``
  at once; they succeed again by themselves once it is back.
* Blocking calls release the GIL; handles may be shared between threads.
"""

from types import TracebackType
from typing import Any, Awaitable, Callable, Iterator, Literal, Sequence, final

from ._errors import AccuBooksError as AccuBooksError
from ._errors import AuthenticationError as AuthenticationError
from ._errors import ConfigError as ConfigError
from ._errors import ConflictError as ConflictError
from ._errors import DatabaseUnavailable as DatabaseUnavailable
from ._errors import NotFoundError as NotFoundError
from ._errors import PermissionDeniedError as PermissionDeniedError
from ._errors import RateLimitedError as RateLimitedError
from ._errors import ServiceUnavailable as ServiceUnavailable
from ._errors import ValidationError as ValidationError
from .types import (
    Account,
    AccountBalance,
    AccountType,
    Amount,
    ArAging,
    BalanceSheet,
    BankAccount,
    BankItem,
    BankLine,
    BankSync,
    CashFlowStatement,
    Customer,
    DateLike,
    Employee,
    Entry,
    Event,
    EventType,
    EntryInput,
    GeneralLedger,
    LedgerRow,
    Health,
    IncomeStatement,
    Invoice,
    InvoiceLineInput,
    Job,
    LineInput,
    LinkToken,
    LinkedItem,
    Page,
    PaymentIntent,
    PayInput,
    PayrollRule,
    PayrollRun,
    Preview,
    RecurringInvoice,
    ReportJob,
    Schedule,
    Role,
    Settings,
    SettingChange,
    TrialBalance,
    User,
    WebhookReceipt,
    WebhookEndpoint,
    CreatedWebhookEndpoint,
    WebhookDelivery,
)

__version__: str

def iterate(method: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Iterator[Any]:
    """Every item of a paged list method (``org.invoices``, ``org.customers``…; for
    ``general_ledger``, its rows), page after page, 500 at a time unless ``limit=``
    says otherwise: ``for invoice in accubooks.iterate(org.invoices, status="issued")``.
    Every record that existed when the first page was read is yielded once."""

@final
class AccuBooks:
    """One AccuBooks instance: its database pool, dependency monitors and journal.

    Construction never waits on a dependency: the database is connected (and
    migrated) by a background probe; ``wait_ready()`` waits for the first one.
    Use it as a context manager, or call ``close()``.
    """

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
        db_pool_jobs: int | str | None = None,
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
        """Configures an instance from keywords: the contract's variables in
        lower case (``jwt_secret=...`` is ``JWT_SECRET``). The process
        environment is not read; ``ACCUBOOKS_ENV`` defaults to development and
        ``DATABASE_URL`` to ``sqlite://accubooks.db``, as for the server.

        Raises:
            ConfigError: listing every invalid or missing variable.
            TypeError: for a keyword that is not a variable of the contract.
        """

    @staticmethod
    def from_env() -> AccuBooks:
        """Configures an instance from the environment (and ``.env``), like the server."""

    def health(self) -> Health:
        """The body of ``GET /api/monitoring/health``, from kept state (never waits)."""

    def ready(self) -> bool:
        """Whether ``/api/monitoring/ready`` answers 200."""

    def live(self) -> bool:
        """Whether ``/api/monitoring/live`` answers 200: ``True`` until ``close()``."""

    def metrics(self) -> str:
        """The Prometheus text exposition of ``/api/monitoring/metrics``."""

    def phase(self) -> str:
        """``"starting"``, ``"ready"`` or ``"draining"``."""

    def wait_ready(self, timeout: float = 5.0) -> bool:
        """Waits until ready; ``False`` if ``timeout`` seconds pass first."""

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""

    def close(self) -> None:
        """Drains and stops its servers, stops the monitors, closes the pools. Idempotent."""

    def __enter__(self) -> AccuBooks: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def register(
        self, email: str, password: str, organization: str, currency: str = "USD"
    ) -> Organization:
        """Creates an organization, its owner (you) and its default chart of accounts
        (1000 Cash, 1100 Accounts Receivable, 2000, 2100, 3000, 3900, 4000, 4900, 5000).

        Raises:
            ValidationError: ``INVALID_EMAIL``, ``WEAK_PASSWORD`` (fewer than 10
                characters), ``UNKNOWN_CURRENCY``...
            ConflictError: ``EMAIL_TAKEN``.
        """

    def login(self, email: str, password: str) -> Organization:
        """The organization of a user, with the user's role.

        Raises:
            AuthenticationError: wrong e-mail address or password.
            RateLimitedError: too many attempts for this e-mail address.
        """

    def stripe_webhook(self, payload: bytes, signature: str | None = None) -> WebhookReceipt:
        """Takes one of Stripe's webhook calls as your web framework received it: the
        raw body and the ``Stripe-Signature`` header. Payments and refunds are then
        posted by a job, once per event and per PaymentIntent.

        Raises:
            ValidationError: ``INVALID_SIGNATURE`` (HTTP 400) for a missing, forged or
                stale signature.
            ServiceUnavailable: ``PAYMENTS_NOT_CONFIGURED`` when Stripe is not configured.
        """

    def organization(self, id: str) -> Organization:
        """An existing organization by id, with owner rights (the host is calling).

        Raises:
            NotFoundError: there is no such organization.
        """

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Server:
        """Serves the whole HTTP API of the contract on ``host:port`` (``0``: a free
        port) in the background, and returns at once."""

@final
class Server:
    """A running HTTP server of an ``AccuBooks`` handle.

    It hosts the instance: ``stop()`` begins the instance's graceful shutdown
    (``/ready`` answers ``draining``), drains in-flight requests and closes the
    handle.
    """

    @property
    def port(self) -> int: ...
    @property
    def host(self) -> str: ...
    @property
    def url(self) -> str:
        """``http://host:port``, without a trailing slash."""

    @property
    def running(self) -> bool: ...
    def stop(self, timeout: float | None = None) -> None:
        """Drains and stops the server and closes its handle; waits at most
        ``timeout`` seconds (default: ``DRAIN_TIMEOUT_MS`` plus one second)."""

    def astop(self, timeout: float | None = None) -> Awaitable[None]:
        """``stop()`` for asyncio code: an awaitable that does not block the event loop."""

    def __enter__(self) -> Server: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

@final
class Organization:
    """One organization's books. Writing needs the accountant or owner role."""

    @property
    def id(self) -> str:
        """The organization's id (a UUID)."""

    @property
    def user_id(self) -> str | None:
        """The user who registered or logged in; ``None`` when opened by id."""

    @property
    def role(self) -> Role: ...
    def token(self) -> str:
        """A bearer token of the user for the HTTP API, valid for 12 hours.

        Raises:
            PermissionDeniedError: the organization was opened by id (no user).
        """

    def create_user(self, email: str, password: str, role: Role = "accountant") -> User:
        """Adds a user to the organization (owners only).

        Raises:
            ConflictError: ``EMAIL_TAKEN``.
        """

    def users(self, *, limit: int | None = None, after: str | None = None) -> Page[User]:
        """The organization's users (owners only), by e-mail address.

        One page (``limit`` 1 to 500, default 100, after the cursor ``after``); its
        ``next_cursor`` names the next. ``accubooks.iterate`` reads them all.
        """

    def set_role(self, user_id: str, role: Role) -> User:
        """Changes a user's role (owners only); it applies to their existing handles
        and tokens at once.

        Raises:
            ConflictError: ``LAST_OWNER`` (the last owner cannot be demoted).
        """

    def remove_user(self, user_id: str) -> None:
        """Removes a user (owners only); their handles and tokens stop working at once.

        Raises:
            ConflictError: ``LAST_OWNER`` (the last owner cannot be removed).
        """

    def create_account(
        self,
        code: str,
        name: str,
        type: AccountType,
        currency: str,
        parent: str | None = None,
        *,
        metadata: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Account:
        """Opens an account. ``parent`` is the code of an account of the same type and
        currency (fixed once opened; a tree has at most 8 levels).

        Raises:
            ConflictError: ``ACCOUNT_EXISTS``.
            ValidationError: ``INVALID_ACCOUNT_CODE``, ``UNKNOWN_CURRENCY``...; for ``parent``:
                ``UNKNOWN_ACCOUNT``, ``PARENT_TYPE_MISMATCH``, ``PARENT_CURRENCY_MISMATCH``,
                ``ACCOUNT_TREE_TOO_DEEP``.
        """

    def accounts(
        self, *, metadata: dict[str, str] | None = None, limit: int | None = None, after: str | None = None
    ) -> Page[Account]:
        """The accounts with their balances (debits positive), by code; with
        ``metadata``, those with each of its keys set to its value.

        One page (``limit`` 1 to 500, default 100, after the cursor ``after``); its
        ``next_cursor`` names the next. ``accubooks.iterate`` reads them all.
        """

    def set_account_metadata(self, code: str, metadata: dict[str, str]) -> Account:
        """Replaces an account's metadata (``{}`` removes it); answers the account."""

    def post_entry(
        self,
        date: DateLike,
        lines: Sequence[LineInput],
        memo: str = "",
        *,
        metadata: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Entry:
        """Posts a balanced journal entry; answers it with its ``id``.

        ``metadata``: at most 20 keys of ``[a-z0-9_.-]{1,40}``, string values of at
        most 500 characters, kept with the entry (immutable, like the entry).

        ``lines`` name accounts by code, each with exactly one of ``debit`` and
        ``credit``. The same ``idempotency_key`` with the same entry answers the
        first posting again instead of posting twice, also when the first came
        over HTTP with the same key.

        Raises:
            ValidationError: ``UNBALANCED_ENTRY``, ``UNKNOWN_ACCOUNT``,
                ``INVALID_AMOUNT``, ``INVALID_DATE``, ``IDEMPOTENCY_KEY_REUSED``...
            TypeError: an amount is a ``float`` or an ``int``.
        """

    def post_entries(
        self, entries: Sequence[EntryInput], *, idempotency_key: str | None = None
    ) -> list[int]:
        """Posts many entries at once (up to 10,000), all or none; their ids in order.

        A failing entry is named in the message (``"Entry 3: ..."``).
        """

    def entry(self, id: int) -> Entry:
        """One journal entry. Raises ``NotFoundError`` for another organization's."""

    def reverse_entry(
        self, id: int, date: DateLike | None = None, *, idempotency_key: str | None = None
    ) -> Entry:
        """Posts the mirror of an entry, dated ``date`` (default: the entry's date).

        With ``idempotency_key``, a repeated call returns the first answer again.

        Raises:
            ConflictError: ``ALREADY_REVERSED``, ``CANNOT_REVERSE_REVERSAL``.
        """

    def entries(
        self,
        *,
        from_: DateLike | None = None,
        to: DateLike | None = None,
        account: str | None = None,
        reversed: bool | None = None,
        metadata: dict[str, str] | None = None,
        order: Literal["date", "newest"] = "date",
        limit: int | None = None,
        after: str | None = None,
    ) -> Page[Entry]:
        """The journal: entries with their lines, in date order or newest first,
        dated from ``from_`` to ``to``, with a line on ``account``, reversed since
        (``reversed=True``) or not, with each ``metadata`` key set to its value. One page (``limit`` 1 to 500, default 100, after
        the cursor ``after``); ``accubooks.iterate`` follows the pages."""

    def account_history(
        self,
        code: str,
        *,
        from_: DateLike | None = None,
        to: DateLike | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page[LedgerRow]:
        """An account's postings in date order, each with the account's balance after
        it (debits positive), from ``from_`` to ``to`` (default: all of them). One page;
        ``accubooks.iterate`` follows the pages."""

    def account_balance(self, code: str, as_of: DateLike | None = None) -> AccountBalance:
        """An account's balance at the end of ``as_of`` (default: today, UTC)."""

    def trial_balance(self, as_of: DateLike | None = None) -> TrialBalance:
        """Every account's balance at the end of ``as_of`` (default: today, UTC)."""

    def balance_sheet(self, as_of: DateLike | None = None) -> BalanceSheet:
        """Assets, liabilities and equity at the end of ``as_of`` (default: today, UTC)."""

    def income_statement(self, from_: DateLike, to: DateLike) -> IncomeStatement:
        """Revenue and expenses from ``from_`` to ``to``, inclusive."""

    def cash_flow(self, from_: DateLike, to: DateLike) -> CashFlowStatement:
        """Cash in and out from ``from_`` to ``to``, inclusive, by counterpart account
        (direct method; positive is cash in), with opening and closing cash. Cash
        accounts are ``1000``, the accounts linked bank accounts post to, and their
        descendants."""

    def general_ledger(
        self, account: str, from_: DateLike, to: DateLike, *, limit: int | None = None, after: str | None = None
    ) -> GeneralLedger:
        """One account's postings from ``from_`` to ``to``, with running balances.

        One page of ``rows`` (``limit`` 1 to 500, default 100, after the cursor
        ``after``); the report's ``next_cursor`` names the next (``None`` on the
        last page, where ``truncated`` is false).
        """

    def ar_aging(self, as_of: DateLike | None = None) -> ArAging:
        """Receivables outstanding at the end of ``as_of`` (default: today, UTC), by days
        past due, per customer and in total."""

    def export_ledger(
        self, format: Literal["hledger", "beancount"], as_of: DateLike | None = None
    ) -> str:
        """The books up to the end of ``as_of`` (default: today, UTC) as a journal that
        ``hledger check`` or ``bean-check`` accepts, ending with one balance assertion
        per account (the trial balance's figures)."""

    def create_customer(
        self,
        name: str,
        email: str | None = None,
        *,
        metadata: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Customer:
        """Adds a customer."""

    def set_customer_metadata(self, id: int, metadata: dict[str, str]) -> Customer:
        """Replaces a customer's metadata (``{}`` removes it); answers the customer."""

    def customers(
        self, *, metadata: dict[str, str] | None = None, limit: int | None = None, after: str | None = None
    ) -> Page[Customer]:
        """The organization's customers, oldest first; with ``metadata``, those with each
        of its keys set to its value.

        One page (``limit`` 1 to 500, default 100, after the cursor ``after``); its
        ``next_cursor`` names the next. ``accubooks.iterate`` reads them all.
        """

    def create_invoice(
        self,
        customer_id: int,
        due_date: DateLike,
        lines: Sequence[InvoiceLineInput],
        currency: str | None = None,
        *,
        metadata: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Invoice:
        """Creates a draft invoice (no ``number`` until it is issued); its totals are
        computed once, here, with the organization's tax rounding. ``currency`` defaults
        to the receivables account's; ``metadata`` is kept with it."""

    def invoices(
        self,
        *,
        status: Literal["draft", "issued", "partially_paid", "paid", "void"] | None = None,
        customer_id: int | None = None,
        metadata: dict[str, str] | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page[Invoice]:
        """Invoices and credit notes with their lines, newest first, optionally of one
        status and one customer, and with each key of ``metadata`` set to its value. A page holds at most 5000 lines (fewer invoices than
        ``limit`` if need be).

        One page (``limit`` 1 to 500, default 100, after the cursor ``after``); its
        ``next_cursor`` names the next. ``accubooks.iterate`` reads them all.
        """

    def invoice(self, id: int) -> Invoice:
        """One invoice or credit note."""

    def issue_invoice(
        self, id: int, date: DateLike | None = None, *, idempotency_key: str | None = None
    ) -> Invoice:
        """Issues a draft (default date: today, UTC): posts receivables against revenue
        and tax payable.

        Raises:
            ConflictError: ``INVOICE_NOT_DRAFT``.
            ValidationError: ``EMPTY_INVOICE``.
        """

    def void_invoice(
        self, id: int, date: DateLike | None = None, *, idempotency_key: str | None = None
    ) -> Invoice:
        """Voids a draft, or an issued invoice without payments or credits (reversing
        its posting)."""

    def payment_intent(self, id: int) -> PaymentIntent:
        """Asks Stripe for a PaymentIntent of an issued invoice's open amount; asked
        again for the same open amount, the same intent.

        Raises:
            ServiceUnavailable: ``PAYMENTS_UNAVAILABLE`` while Stripe is down,
                ``PAYMENTS_NOT_CONFIGURED`` when it is not configured.
            ConflictError: ``INVOICE_NOT_OPEN``.
            ValidationError: ``AMOUNT_NOT_PAYABLE``, ``PAYMENT_REJECTED``.
        """

    def link_bank(self, public_token: str, *, idempotency_key: str | None = None) -> LinkedItem:
        """Links a bank through Plaid: exchanges Plaid Link's public token (the access
        token is kept sealed, never answered) and answers the item's accounts.

        Raises:
            ServiceUnavailable: ``BANK_INTEGRATION_UNAVAILABLE`` while Plaid is down,
                ``BANK_INTEGRATION_NOT_CONFIGURED`` when it is not configured.
            ValidationError: ``INVALID_PUBLIC_TOKEN``.
        """

    def bank_link_token(self, item_id: str | None = None) -> LinkToken:
        """A Plaid Link token, made server side: for a new bank (``item_id`` ``None``),
        or for update mode of a linked item (the user logs in to it again; it keeps its
        accounts, mappings and lines).

        Raises:
            NotFoundError: no such item (or it was removed).
            ServiceUnavailable: ``BANK_INTEGRATION_UNAVAILABLE`` while Plaid is down,
                ``BANK_INTEGRATION_NOT_CONFIGURED`` when it is not configured.
        """

    def bank_items(self, *, limit: int | None = None, after: str | None = None) -> Page[BankItem]:
        """The linked bank items with their status and when each last synced, oldest first.

        One page (``limit`` 1 to 500, default 100, after the cursor ``after``); its
        ``next_cursor`` names the next. ``accubooks.iterate`` reads them all.
        """

    def remove_bank_item(self, item_id: str) -> None:
        """Removes a bank item at Plaid and stops its sync; its accounts and lines
        (matched or not) stay.

        Raises:
            NotFoundError: no such item (or it was removed already).
        """

    def bank_item_reconnected(self, item_id: str) -> BankItem:
        """After Plaid Link in update mode: checks with Plaid that the item works again,
        makes it ``active`` and asks for a sync.

        Raises:
            ConflictError: ``BANK_ITEM_LOGIN_REQUIRED`` (the bank still asks the user to
                log in).
        """

    def bank_accounts(self, *, limit: int | None = None, after: str | None = None) -> Page[BankAccount]:
        """The linked bank accounts, by id.

        One page (``limit`` 1 to 500, default 100, after the cursor ``after``); its
        ``next_cursor`` names the next. ``accubooks.iterate`` reads them all.
        """

    def map_bank_account(self, id: int, ledger_account: str) -> BankAccount:
        """Maps a bank account to a ledger account (an asset or liability code in its
        currency, e.g. ``"1000"``)."""

    def sync_banks(self, *, idempotency_key: str | None = None) -> BankSync:
        """Asks for a sync of every linked bank, as a ``bank-feeds`` job (a sync already
        waiting or running is answered instead of a second)."""

    def bank_transactions(
        self,
        status: Literal["unmatched", "matched", "review", "dismissed"] = "unmatched",
        *, limit: int | None = None, after: str | None = None,
    ) -> Page[BankLine]:
        """Imported bank lines, newest imported first; unmatched ones carry ranked match
        suggestions. ``"review"``: lines set aside because they cannot be booked as the
        bank sent them (``review_reason``); ``"dismissed"``: lines a user dismissed.

        One page (``limit`` 1 to 500, default 100, after the cursor ``after``); its
        ``next_cursor`` names the next. ``accubooks.iterate`` reads them all.
        """

    def match_bank_transaction(
        self,
        id: int,
        *,
        invoice_id: int | None = None,
        account: str | None = None,
        idempotency_key: str | None = None,
    ) -> BankLine:
        """Reconciles a bank line once: with ``invoice_id`` as a payment of that open
        invoice, with ``account`` by posting it against that account.

        Raises:
            ConflictError: ``BANK_TRANSACTION_MATCHED``, ``BANK_TRANSACTION_PENDING``,
                ``BANK_TRANSACTION_IN_REVIEW``, ``BANK_TRANSACTION_DISMISSED``.
        """

    def dismiss_bank_transaction(self, id: int) -> BankLine:
        """Dismisses a bank line that is not matched (one set aside for review, a zero
        amount): it is kept under ``"dismissed"`` and never booked. Dismissing it again
        answers it as it is.

        Raises:
            ConflictError: ``BANK_TRANSACTION_MATCHED``.
        """

    def pay_invoice(
        self,
        id: int,
        amount: Amount,
        date: DateLike | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Invoice:
        """Records a (partial) payment: posts cash against receivables.

        Raises:
            ValidationError: ``OVERPAYMENT``, ``INVALID_AMOUNT``.
            ConflictError: ``INVOICE_NOT_OPEN``.
        """

    def credit_note(
        self,
        id: int,
        lines: Sequence[InvoiceLineInput],
        date: DateLike | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Invoice:
        """Credits part of an open invoice: posts returns and tax against receivables.
        Answers the credit note."""

    def jobs(
        self,
        queue: Literal[
            "recurring-invoices", "payroll-processing", "report-generation", "payments", "bank-feeds"
        ]
        | None = None,
        status: Literal["pending", "queued", "running", "succeeded", "failed", "dead"] | None = None,
        *,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page[Job]:
        """Background jobs, newest first.

        One page (``limit`` 1 to 500, default 100, after the cursor ``after``); its
        ``next_cursor`` names the next. ``accubooks.iterate`` reads them all.
        """

    def events(
        self,
        types: Sequence[EventType] | None = None,
        *,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page[Event]:
        """The organization's events in commit order (accountants and owners), of
        ``types`` (all when ``None``). Keep the ``cursor`` of the last event you
        processed and give it as ``after`` to read only what followed: none is
        missed or repeated. ``data`` is the object as the HTTP API answers it, as
        plain JSON. One page; ``accubooks.iterate`` follows the pages."""

    def job(self, id: int) -> Job:
        """A background job."""

    def retry_job(self, id: int) -> Job:
        """Queues a dead job again (``ConflictError`` ``JOB_NOT_DEAD`` otherwise)."""

    def create_recurring_invoice(
        self,
        customer_id: int,
        lines: Sequence[InvoiceLineInput],
        schedule: Schedule,
        due_days: int = 30,
        auto_issue: bool = False,
        currency: str | None = None,
        *,
        metadata: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> RecurringInvoice:
        """Creates a recurring invoice; each occurrence on or before today (in the
        organization's time zone) becomes one invoice, missed ones included, with
        ``metadata`` copied onto it."""

    def recurring_invoices(self, *, limit: int | None = None, after: str | None = None) -> Page[RecurringInvoice]:
        """The organization's recurring invoices, oldest first.

        One page (``limit`` 1 to 500, default 100, after the cursor ``after``); its
        ``next_cursor`` names the next. ``accubooks.iterate`` reads them all.
        """

    def recurring_invoice(self, id: int) -> RecurringInvoice:
        """A recurring invoice."""

    def preview_recurring_invoice(self, id: int, count: int = 12) -> Preview:
        """The next ``count`` occurrences not yet generated."""

    def create_report_job(
        self,
        report: Literal["trial-balance", "balance-sheet", "income-statement", "general-ledger", "ar-aging", "cash-flow"],
        params: dict[str, str] | None = None,
        format: Literal["json", "csv"] = "json",
        *,
        idempotency_key: str | None = None,
    ) -> ReportJob:
        """Asks for a report as a job on the report-generation queue."""

    def report_job(self, id: int) -> ReportJob:
        """A report job and its status."""

    def report_result(self, id: int) -> str:
        """The stored result (JSON or CSV text); ``ConflictError``
        ``REPORT_NOT_READY`` until it exists."""

    def create_employee(
        self,
        name: str,
        pay: PayInput,
        frequency: Literal["weekly", "biweekly", "semimonthly", "monthly"],
        start_date: DateLike,
        end_date: DateLike | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Employee:
        """Adds an employee."""

    def employees(self, *, limit: int | None = None, after: str | None = None) -> Page[Employee]:
        """The organization's employees, by id.

        One page (``limit`` 1 to 500, default 100, after the cursor ``after``); its
        ``next_cursor`` names the next. ``accubooks.iterate`` reads them all.
        """

    def payroll_rules(self) -> list[PayrollRule]:
        """The payroll rules."""

    def put_payroll_rules(self, rules: Sequence[PayrollRule]) -> list[PayrollRule]:
        """Replaces the payroll rules."""

    def create_payroll_run(
        self,
        period_start: DateLike,
        period_end: DateLike,
        pay_date: DateLike,
        hours: dict[str, Amount] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> PayrollRun:
        """Asks for a pay run of every employee employed in the period; ``pending``
        until its job has posted it (``ConflictError`` ``PAYROLL_PERIOD_OVERLAP``)."""

    def payroll_run(self, id: int) -> PayrollRun:
        """A pay run, with its payslips and entry once posted."""

    def settings(self) -> Settings:
        """The organization's settings."""

    def put_settings(
        self,
        tax_rounding: Literal["line", "document"] | None = None,
        timezone: str | None = None,
    ) -> Settings:
        """Changes the organization's settings (owners only); those left out keep
        their value. Existing invoices keep the rounding they were computed with;
        ``timezone`` (IANA) decides which day it is for recurring invoices."""

    def set_lock_date(self, lock_date: DateLike | None) -> Settings:
        """Locks the books through ``lock_date`` (owners only): no change dated on or
        before it is posted (``PERIOD_LOCKED``); what comes from outside (a card
        payment) is posted on the first open day with ``original_date`` in its
        metadata. ``None`` unlocks; an earlier date reopens the days between."""

    def settings_history(
        self, *, limit: int | None = None, after: str | None = None
    ) -> Page[SettingChange]:
        """The changes of the lock date, oldest first: who, when, from, to and why.
        One page; ``accubooks.iterate`` follows the pages."""

    def close_period(
        self, through: DateLike, *, idempotency_key: str | None = None
    ) -> Entry:
        """Closes the books through ``through`` (owners only): posts the closing entry
        (every revenue and expense balance into retained earnings ``3900``) and sets
        the lock date. ``PERIOD_ALREADY_CLOSED`` if closed and still locked."""

    def create_webhook_endpoint(
        self,
        url: str,
        events: list[str],
        description: str = "",
        *,
        idempotency_key: str | None = None,
    ) -> CreatedWebhookEndpoint:
        """Registers an outgoing webhook endpoint (owners only): ``events`` are
        event types or ``["*"]``. The ``secret`` (``whsec_…``) is shown only here and
        by ``rotate_webhook_secret``. ``WEBHOOK_URL_FORBIDDEN`` for a URL that is not
        ``https://`` or reaches a non-public address (unless ``WEBHOOK_ALLOW_PRIVATE=1``)."""

    def webhook_endpoints(
        self, *, limit: int | None = None, after: str | None = None
    ) -> Page[WebhookEndpoint]:
        """The organization's webhook endpoints, oldest first (owners only).
        One page; ``accubooks.iterate`` follows the pages."""

    def delete_webhook_endpoint(self, id: int) -> None:
        """Deletes a webhook endpoint and its deliveries (owners only)."""

    def rotate_webhook_secret(self, id: int) -> CreatedWebhookEndpoint:
        """Gives an endpoint a new secret, answered once (owners only); the previous
        one keeps signing beside it for 24 hours."""

    def webhook_deliveries(
        self, endpoint_id: int, *, limit: int | None = None, after: str | None = None
    ) -> Page[WebhookDelivery]:
        """An endpoint's deliveries, newest first (owners only). One page."""

    def retry_webhook_delivery(self, endpoint_id: int, delivery_id: int) -> WebhookDelivery:
        """Makes a delivery pending and due now (owners only); ``ENDPOINT_DISABLED``
        (a ``ConflictError``) for a disabled endpoint."""

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

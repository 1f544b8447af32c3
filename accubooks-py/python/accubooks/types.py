"""The shapes of what AccuBooks takes and answers, as ``TypedDict``s.

At run time answers are plain ``dict``s and ``list``s (the JSON of the HTTP API,
turned into Python objects); these types only describe them for type checkers.
In answers, dates are ``datetime.date`` and money is ``decimal.Decimal``.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any, Dict, Generic, List, Literal, Optional, TypedDict, TypeVar, Union

__all__ = [
    "Page",
    "Amount",
    "DateLike",
    "AccountType",
    "Role",
    "LineInput",
    "EntryInput",
    "User",
    "Account",
    "EntryLine",
    "Entry",
    "BalanceLine",
    "CurrencyTotals",
    "TrialBalance",
    "StatementLine",
    "BalanceSheetTotals",
    "BalanceSheet",
    "IncomeTotals",
    "IncomeStatement",
    "CashAccountLine",
    "CashFlowLine",
    "CashFlowTotals",
    "CashFlowStatement",
    "LedgerRow",
    "GeneralLedger",
    "AccountBalance",
    "Customer",
    "InvoiceLineInput",
    "InvoiceLine",
    "Invoice",
    "AgingRow",
    "ArAging",
    "Settings",
    "SettingChange",
    "Event",
    "EventType",
    "Job",
    "JobError",
    "Schedule",
    "RecurringInvoice",
    "Preview",
    "ReportJob",
    "PayInput",
    "Employee",
    "PayrollRule",
    "SlipLine",
    "Payslip",
    "PayrollRun",
    "Health",
    "WebhookEndpoint",
    "CreatedWebhookEndpoint",
    "WebhookDelivery",
]

#: Money in: a ``Decimal`` or a decimal string such as ``"12.30"``. Never a
#: ``float`` (inexact) nor an ``int`` (cents or dollars?): both raise ``TypeError``.
Amount = Union[Decimal, str]

_T = TypeVar("_T")


class Page(List[_T], Generic[_T]):
    """One page of a list: a ``list`` of at most ``limit`` items (1 to 500,
    default 100), and ``next_cursor``, the ``after=`` of the next page
    (``None`` on the last page). ``accubooks.iterate`` follows it for you.
    """

    next_cursor: Optional[str]

    def __init__(self, items: List[_T] = (), next_cursor: Optional[str] = None) -> None:  # type: ignore[assignment]
        super().__init__(items)
        self.next_cursor = next_cursor

    def __repr__(self) -> str:
        return f"Page({list.__repr__(self)}, next_cursor={self.next_cursor!r})"


#: A date in: a ``datetime.date`` or a ``"YYYY-MM-DD"`` string. A
#: ``datetime.datetime`` raises ``TypeError`` (which day it is depends on a time zone).
DateLike = Union[datetime.date, str]

AccountType = Literal["asset", "liability", "equity", "revenue", "expense"]
Role = Literal["owner", "accountant", "viewer"]


class _LineInputBase(TypedDict):
    account: str


class LineInput(_LineInputBase, total=False):
    """A line to post: the account's code and exactly one of debit and credit."""

    debit: Amount
    credit: Amount


class _EntryInputBase(TypedDict):
    date: DateLike
    lines: List[LineInput]


class EntryInput(_EntryInputBase, total=False):
    """An entry of a batch for ``post_entries``."""

    memo: str
    metadata: Dict[str, str]


class User(TypedDict):
    id: str
    email: str
    role: Role


class Account(TypedDict):
    id: int
    code: str
    name: str
    type: AccountType
    currency: str
    parent: Optional[str]
    balance: Decimal
    #: String keys and values (``{}`` if none); ``set_account_metadata`` replaces them.
    metadata: Dict[str, str]


class _EntryLineBase(TypedDict):
    account: str


class EntryLine(_EntryLineBase, total=False):
    debit: Decimal
    credit: Decimal


class Entry(TypedDict):
    id: int
    date: datetime.date
    memo: str
    reverses: Optional[int]
    reversed_by: Optional[int]
    lines: List[EntryLine]
    #: String keys and values given when it was posted (``{}`` if none).
    metadata: Dict[str, str]
    #: ``"closing"`` for a period's closing entry, else ``"standard"``.
    kind: Literal["standard", "closing"]


class BalanceLine(TypedDict):
    code: str
    name: str
    type: AccountType
    currency: str
    debit: Decimal
    credit: Decimal
    parent: Optional[str]
    #: 0 for an account without a parent; children follow their parent.
    level: int
    #: For an account with children: its balance plus its descendants', on the
    #: debit or the credit side (the other is ``0``); ``None`` for a leaf.
    subtotal_debit: Optional[Decimal]
    subtotal_credit: Optional[Decimal]


class CurrencyTotals(TypedDict):
    currency: str
    debit: Decimal
    credit: Decimal


class TrialBalance(TypedDict):
    as_of: datetime.date
    accounts: List[BalanceLine]
    #: Set when the books have one currency; otherwise see ``totals``.
    total_debit: Optional[Decimal]
    total_credit: Optional[Decimal]
    totals: List[CurrencyTotals]


class StatementLine(TypedDict):
    code: str
    name: str
    currency: str
    amount: Decimal
    parent: Optional[str]
    #: 0 for an account without a parent; children follow their parent.
    level: int
    #: For an account with children: its amount plus its descendants'; ``None`` for a leaf.
    subtotal: Optional[Decimal]


class BalanceSheetTotals(TypedDict):
    currency: str
    assets: Decimal
    liabilities: Decimal
    equity: Decimal
    current_earnings: Decimal
    liabilities_and_equity: Decimal


class BalanceSheet(TypedDict):
    as_of: datetime.date
    assets: List[StatementLine]
    liabilities: List[StatementLine]
    equity: List[StatementLine]
    totals: List[BalanceSheetTotals]


class IncomeTotals(TypedDict):
    currency: str
    revenue: Decimal
    expenses: Decimal
    net_income: Decimal


IncomeStatement = TypedDict(
    "IncomeStatement",
    {
        "from": datetime.date,
        "to": datetime.date,
        "revenue": List[StatementLine],
        "expenses": List[StatementLine],
        "totals": List[IncomeTotals],
    },
)


class CashAccountLine(TypedDict):
    code: str
    name: str
    currency: str
    parent: Optional[str]
    opening: Decimal
    closing: Decimal
    #: ``closing - opening``.
    amount: Decimal


class CashFlowLine(TypedDict):
    code: str
    name: str
    currency: str
    parent: Optional[str]
    #: Cash in (positive) or out (negative) against this account.
    amount: Decimal


class CashFlowTotals(TypedDict):
    currency: str
    opening_cash: Decimal
    customers: Decimal
    suppliers: Decimal
    liabilities: Decimal
    equity: Decimal
    assets: Decimal
    net_change: Decimal
    closing_cash: Decimal


CashFlowStatement = TypedDict(
    "CashFlowStatement",
    {
        "from": datetime.date,
        "to": datetime.date,
        "cash": List[CashAccountLine],
        "customers": List[CashFlowLine],
        "suppliers": List[CashFlowLine],
        "liabilities": List[CashFlowLine],
        "equity": List[CashFlowLine],
        "assets": List[CashFlowLine],
        #: Set when the books have one currency; otherwise see ``totals``.
        "opening_cash": Optional[Decimal],
        "net_change": Optional[Decimal],
        "closing_cash": Optional[Decimal],
        "totals": List[CashFlowTotals],
    },
)


class _LedgerRowBase(TypedDict):
    date: datetime.date
    entry_id: int
    memo: str
    balance: Decimal


class LedgerRow(_LedgerRowBase, total=False):
    debit: Decimal
    credit: Decimal


class AccountBalance(TypedDict):
    """One account's balance at the end of a day (debits positive)."""

    code: str
    as_of: datetime.date
    balance: Decimal
    currency: str


GeneralLedger = TypedDict(
    "GeneralLedger",
    {
        "account": str,
        "currency": str,
        "from": datetime.date,
        "to": datetime.date,
        "opening_balance": Decimal,
        "closing_balance": Decimal,
        "rows": List[LedgerRow],
        "truncated": bool,
        #: The ``after=`` of the next page of rows; ``None`` on the last.
        "next_cursor": Optional[str],
    },
)

class Customer(TypedDict):
    id: int
    name: str
    email: Optional[str]
    #: String keys and values (``{}`` if none); ``set_customer_metadata`` replaces them.
    metadata: Dict[str, str]


class _InvoiceLineInputBase(TypedDict):
    description: str
    quantity: Amount
    unit_price: Amount


class InvoiceLineInput(_InvoiceLineInputBase, total=False):
    """A line to invoice or credit; ``tax_rate`` is a fraction (``"0.0825"``), default 0."""

    tax_rate: Amount


class InvoiceLine(TypedDict):
    description: str
    quantity: Decimal
    unit_price: Decimal
    tax_rate: Decimal
    amount: Decimal
    tax: Decimal


class Invoice(TypedDict):
    id: int
    #: ``INV-000001`` / ``CN-000001``, consecutive per organization in the order of
    #: issue dates; ``None`` for a draft.
    number: Optional[str]
    kind: Literal["invoice", "credit_note"]
    customer_id: int
    credits_invoice: Optional[int]
    currency: str
    status: Literal["draft", "issued", "partially_paid", "paid", "void"]
    overdue: bool
    due_date: datetime.date
    issue_date: Optional[datetime.date]
    void_date: Optional[datetime.date]
    tax_rounding: Literal["line", "document"]
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    paid: Decimal
    credited: Decimal
    outstanding: Decimal
    issue_entry_id: Optional[int]
    lines: List[InvoiceLine]
    metadata: Dict[str, str]


class AgingRow(TypedDict, total=False):
    customer_id: int
    customer: str
    currency: str
    current: Decimal
    days_1_30: Decimal
    days_31_60: Decimal
    days_61_90: Decimal
    over_90: Decimal
    total: Decimal


class ArAging(TypedDict):
    as_of: datetime.date
    customers: List[AgingRow]
    totals: List[AgingRow]


class Settings(TypedDict):
    tax_rounding: Literal["line", "document"]
    #: An IANA time zone name, e.g. ``"America/New_York"``.
    timezone: str
    #: The books are locked through this day (``None``: not locked).
    lock_date: Optional[datetime.date]


#: One change of the lock date: ``from`` and ``to`` are ``YYYY-MM-DD`` or
#: ``None``; ``changed_at`` is RFC 3339 (UTC); ``changed_by`` the user's id.
SettingChange = TypedDict(
    "SettingChange",
    {
        "id": int,
        "changed_at": str,
        "changed_by": str,
        "setting": Literal["lock_date"],
        "from": Optional[str],
        "to": Optional[str],
        "reason": Literal["locked", "reopened", "unlocked", "closed"],
    },
)


EventType = Literal[
    "entry.posted",
    "entry.reversed",
    "invoice.issued",
    "invoice.paid",
    "invoice.voided",
    "credit_note.issued",
    "payment.succeeded",
    "payment.refunded",
    "payroll_run.posted",
    "bank_transaction.imported",
    "bank_transaction.matched",
    "report.ready",
    "job.dead",
    "period.locked",
]


#: What happened in the books (contract §10): ``sequence`` numbers the
#: organization's events 1, 2, 3… in commit order; give ``cursor`` as
#: ``after`` to read what followed; ``data`` is the object after the change
#: as the HTTP API answers it (plain JSON: money and dates as strings).
Event = TypedDict(
    "Event",
    {
        "id": str,
        "type": EventType,
        "timestamp": str,
        "organization": str,
        "sequence": int,
        "cursor": str,
        "data": dict[str, Any],
    },
)


JobStatus = Literal["pending", "queued", "running", "succeeded", "failed", "dead"]
QueueName = Literal[
    "recurring-invoices", "payroll-processing", "report-generation", "payments", "bank-feeds"
]


class JobError(TypedDict):
    code: str
    kind: Literal["temporary", "permanent"]


class Job(TypedDict):
    id: int
    queue: QueueName
    kind: str
    status: JobStatus
    attempts: int
    created_at: str
    updated_at: str
    error: Optional[JobError]


class Schedule(TypedDict, total=False):
    frequency: Literal["weekly", "monthly", "quarterly", "yearly"]
    interval: int
    start: Union[datetime.date, str]
    end: Optional[Union[datetime.date, str]]
    count: Optional[int]


class RecurringInvoice(TypedDict):
    id: int
    customer_id: int
    currency: Optional[str]
    lines: List[InvoiceLineInput]
    schedule: Schedule
    due_days: int
    auto_issue: bool
    metadata: Dict[str, str]
    occurrences: int
    next_date: Optional[datetime.date]


class Preview(TypedDict):
    #: ``YYYY-MM-DD`` strings.
    dates: List[str]


class ReportJob(TypedDict):
    id: int
    job_id: int
    report: Literal["trial-balance", "balance-sheet", "income-statement", "general-ledger", "ar-aging", "cash-flow"]
    params: Dict[str, Any]
    format: Literal["json", "csv"]
    status: JobStatus
    created_at: str
    finished_at: Optional[str]


class PayInput(TypedDict, total=False):
    type: Literal["salary", "hourly"]
    annual: Amount
    rate: Amount


class Employee(TypedDict):
    id: int
    name: str
    pay: Dict[str, Any]
    frequency: Literal["weekly", "biweekly", "semimonthly", "monthly"]
    start_date: datetime.date
    end_date: Optional[datetime.date]


class PayrollRule(TypedDict, total=False):
    name: str
    kind: Literal["deduction", "employer"]
    rate: Optional[Amount]
    amount: Optional[Amount]
    annual_cap: Optional[Amount]
    account: str


class SlipLine(TypedDict):
    name: str
    amount: Decimal


class Payslip(TypedDict):
    employee_id: int
    gross: Decimal
    deductions: List[SlipLine]
    employer: List[SlipLine]
    net: Decimal


class PayrollRun(TypedDict):
    id: int
    job_id: int
    status: Literal["pending", "posted"]
    job_status: JobStatus
    period_start: datetime.date
    period_end: datetime.date
    pay_date: datetime.date
    payslips: List[Payslip]
    entry_id: Optional[int]


#: The body of ``GET /api/monitoring/health``, exactly (see the contract).
Health = Dict[str, Any]


class PaymentIntent(TypedDict):
    """A Stripe PaymentIntent of an invoice's open amount."""

    payment_intent_id: str
    #: What the browser confirms the payment with (Stripe.js).
    client_secret: str
    amount: Decimal
    currency: str


class WebhookReceipt(TypedDict):
    """What ``stripe_webhook`` did with an event."""

    event: str
    #: ``queued`` (posted by a job), ``ignored`` or ``unknown_intent``.
    outcome: Literal["queued", "ignored", "unknown_intent"]
    job_id: Optional[int]


class BankAccount(TypedDict):
    """A bank account of a linked Plaid item; ``id`` is AccuBooks's own."""

    id: int
    item_id: str
    plaid_account_id: str
    name: str
    mask: Optional[str]
    currency: str
    #: The ledger account its lines post to, once mapped.
    ledger_account: Optional[str]


class LinkedItem(TypedDict):
    item_id: str
    accounts: List[BankAccount]


class LinkToken(TypedDict):
    """A Plaid Link token: the client opens Plaid Link with it."""

    link_token: str
    #: ISO 8601 (4 hours after it was made for a new bank, 30 minutes in update mode).
    expiration: str


class BankItem(TypedDict):
    """A linked Plaid item; ``id`` is Plaid's item id."""

    id: str
    #: Plaid's institution id (``ins_…``).
    institution: Optional[str]
    #: ``login_required``: open Plaid Link in update mode (``bank_link_token(item_id)``),
    #: then ``bank_item_reconnected``; ``error``: remove it and link the bank again.
    status: Literal["active", "login_required", "error"]
    #: What set a status other than ``active`` (e.g. ``ITEM_LOGIN_REQUIRED``).
    status_code: Optional[str]
    #: RFC 3339, when a sync last completed for it.
    last_synced_at: Optional[str]


class BankSync(TypedDict):
    job_id: int
    status: JobStatus


class Suggestion(TypedDict):
    kind: Literal["invoice", "payment", "entry"]
    invoice_id: Optional[int]
    entry_id: Optional[int]
    label: str
    amount: Decimal
    date: Optional[datetime.date]
    score: int
    reasons: List[str]


class BankLine(TypedDict):
    id: int
    account_id: int
    plaid_transaction_id: str
    date: datetime.date
    name: str
    #: Plaid's sign: positive is money out of the account. For a line set aside
    #: because its amount is not exact in its currency: Plaid's amount as sent.
    amount: Decimal
    direction: Literal["in", "out"]
    #: ISO 4217, or Plaid's unofficial code (``BTC``) for ``UNOFFICIAL_CURRENCY``.
    currency: str
    pending: bool
    status: Literal["unmatched", "matched", "review", "dismissed"]
    #: Why a line was set aside: ``INEXACT_AMOUNT``, ``INVALID_AMOUNT``,
    #: ``UNKNOWN_CURRENCY``, ``UNOFFICIAL_CURRENCY``, ``ZERO_AMOUNT``.
    review_reason: Optional[str]
    entry_id: Optional[int]
    invoice_id: Optional[int]
    ledger_account: Optional[str]
    bank_change: Optional[str]
    suggestions: List[Suggestion]


class WebhookEndpoint(TypedDict):
    """An outgoing webhook endpoint (never with its secret)."""

    id: int
    url: str
    #: Event types, or ``["*"]`` for all.
    events: List[str]
    description: str
    #: ``disabled`` after 5 days of failed deliveries: it gets nothing more.
    status: Literal["enabled", "disabled"]
    disabled_reason: Optional[str]
    #: RFC 3339, since when its deliveries fail without a success.
    failing_since: Optional[str]
    created_at: str


class CreatedWebhookEndpoint(WebhookEndpoint):
    """An endpoint as created or rotated: with its ``whsec_…`` signing secret,
    shown only then."""

    secret: str


class WebhookDelivery(TypedDict):
    """One event's delivery to one endpoint."""

    id: int
    #: The event's id: the ``webhook-id`` header of every attempt.
    event_id: str
    event_type: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    #: The HTTP status of the last answer (None: no answer).
    last_status: Optional[int]
    last_error: Optional[str]
    #: At most 256 bytes of the last answer's body.
    response_excerpt: Optional[str]
    #: RFC 3339, while pending.
    next_attempt_at: Optional[str]
    created_at: str
    updated_at: str

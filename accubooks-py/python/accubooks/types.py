"""The shapes of what AccuBooks takes and answers, as ``TypedDict``s.

At run time answers are plain ``dict``s and ``list``s (the JSON of the HTTP API,
turned into Python objects); these types only describe them for type checkers.
In answers, dates are ``datetime.date`` and money is ``decimal.Decimal``.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any, Dict, List, Literal, Optional, TypedDict, Union

__all__ = [
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
    "LedgerRow",
    "GeneralLedger",
    "Customer",
    "InvoiceLineInput",
    "InvoiceLine",
    "Invoice",
    "AgingRow",
    "ArAging",
    "Settings",
    "Health",
]

#: Money in: a ``Decimal`` or a decimal string such as ``"12.30"``. Never a
#: ``float`` (inexact) nor an ``int`` (cents or dollars?): both raise ``TypeError``.
Amount = Union[Decimal, str]

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


class BalanceLine(TypedDict):
    code: str
    name: str
    type: AccountType
    currency: str
    debit: Decimal
    credit: Decimal


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


class _LedgerRowBase(TypedDict):
    date: datetime.date
    entry_id: int
    memo: str
    balance: Decimal


class LedgerRow(_LedgerRowBase, total=False):
    debit: Decimal
    credit: Decimal


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
    },
)

class Customer(TypedDict):
    id: int
    name: str
    email: Optional[str]


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
    number: str
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


#: The body of ``GET /api/monitoring/health``, exactly (see the contract).
Health = Dict[str, Any]

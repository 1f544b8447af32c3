"""Case 2: the books through the Python API, on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime
import uuid
from decimal import Decimal
from typing import Callable, Dict, List

import pytest

import accubooks
from conftest import PASSWORD, unique_email

JAN = datetime.date(2026, 1, 31)
CHART = ["1000", "1100", "2000", "2100", "3000", "3900", "4000", "4900", "5000"]

Open = Callable[..., accubooks.AccuBooks]


def sale(amount: object, debit: str = "1000", credit: str = "4000") -> List[Dict[str, object]]:
    return [{"account": debit, "debit": amount}, {"account": credit, "credit": amount}]


def test_register_post_reverse_and_report(open_books: Open, database_url: str) -> None:
    books = open_books(database_url)
    email = unique_email("owner")
    org = books.register(email, PASSWORD, "Acme")
    assert uuid.UUID(org.id) and org.role == "owner" and org.user_id

    accounts = org.accounts()
    assert [a["code"] for a in accounts] == CHART
    assert all(a["balance"] == Decimal("0.00") and a["currency"] == "USD" for a in accounts)

    # Decimal and str amounts; dates and money come back typed.
    first = org.post_entry(JAN, sale(Decimal("100.10")), "first sale")
    second = org.post_entry("2026-02-01", sale("0.90"), idempotency_key="second")
    assert isinstance(first["id"], int) and first["id"] != second["id"]
    assert first["date"] == JAN and type(first["date"]) is datetime.date
    assert second["date"] == datetime.date(2026, 2, 1)
    assert first["lines"] == [
        {"account": "1000", "debit": Decimal("100.10")},
        {"account": "4000", "credit": Decimal("100.10")},
    ]
    assert first["memo"] == "first sale" and first["reverses"] is None
    assert org.entry(first["id"]) == first

    # The same idempotency key and entry: the first answer, not a second posting.
    assert org.post_entry("2026-02-01", sale("0.90"), idempotency_key="second") == second
    with pytest.raises(accubooks.ValidationError) as reused:
        org.post_entry("2026-02-01", sale("0.91"), idempotency_key="second")
    assert reused.value.code == "IDEMPOTENCY_KEY_REUSED"

    # Money is never a float, and an int is ambiguous.
    with pytest.raises(TypeError, match="float"):
        org.post_entry(JAN, sale(12.5))
    with pytest.raises(TypeError, match="int"):
        org.post_entry(JAN, sale(12))
    with pytest.raises(accubooks.ValidationError) as unbalanced:
        org.post_entry(
            JAN, [{"account": "1000", "debit": "1.00"}, {"account": "4000", "credit": "2.00"}]
        )
    assert unbalanced.value.code == "UNBALANCED_ENTRY"
    assert unbalanced.value.status == 422 and "equal" in str(unbalanced.value)
    with pytest.raises(accubooks.ValidationError) as precise:
        org.post_entry(JAN, sale("1.001"))
    assert precise.value.code == "INVALID_AMOUNT"
    with pytest.raises(accubooks.ValidationError) as unknown:
        org.post_entry(JAN, sale("1.00", debit="9999"))
    assert unknown.value.code == "UNKNOWN_ACCOUNT"

    # Reversal: the mirror entry, once; a repeated key replays the first answer.
    reversal = org.reverse_entry(first["id"], datetime.date(2026, 3, 1), idempotency_key="rev-1")
    assert org.reverse_entry(first["id"], "2026-03-01", idempotency_key="rev-1") == reversal
    assert reversal["reverses"] == first["id"] and reversal["date"] == datetime.date(2026, 3, 1)
    assert reversal["lines"][0] == {"account": "1000", "credit": Decimal("100.10")}
    assert org.entry(first["id"])["reversed_by"] == reversal["id"]
    with pytest.raises(accubooks.ConflictError) as twice:
        org.reverse_entry(first["id"])
    assert twice.value.code == "ALREADY_REVERSED" and twice.value.status == 409

    # Trial balance totals before and after the reversal date.
    feb = org.trial_balance(datetime.date(2026, 2, 28))
    assert feb["as_of"] == datetime.date(2026, 2, 28)
    assert feb["total_debit"] == feb["total_credit"] == Decimal("101.00")
    cash = next(a for a in feb["accounts"] if a["code"] == "1000")
    assert (cash["debit"], cash["credit"]) == (Decimal("101.00"), Decimal("0.00"))
    march = org.trial_balance("2026-03-31")
    assert march["total_debit"] == march["total_credit"] == Decimal("0.90")
    today = org.trial_balance()
    assert today["as_of"] == datetime.datetime.now(datetime.timezone.utc).date()

    sheet = org.balance_sheet(datetime.date(2026, 2, 28))
    assert sheet["totals"][0]["assets"] == Decimal("101.00")
    assert sheet["totals"][0]["liabilities_and_equity"] == Decimal("101.00")
    income = org.income_statement(datetime.date(2026, 1, 1), datetime.date(2026, 1, 31))
    assert income["from"] == datetime.date(2026, 1, 1) and income["to"] == JAN
    assert income["totals"][0]["net_income"] == Decimal("100.10")
    ledger = org.general_ledger("1000", datetime.date(2026, 1, 1), datetime.date(2026, 12, 31))
    assert [row["balance"] for row in ledger["rows"]] == [
        Decimal("100.10"),
        Decimal("101.00"),
        Decimal("0.90"),
    ]
    assert ledger["rows"][0]["date"] == JAN and ledger["closing_balance"] == Decimal("0.90")

    # Another organization's records do not exist for this one.
    other = books.register(unique_email("other"), PASSWORD, "Other Co")
    with pytest.raises(accubooks.NotFoundError) as missing:
        other.entry(first["id"])
    assert missing.value.code == "NOT_FOUND" and missing.value.status == 404
    with pytest.raises(accubooks.NotFoundError):
        other.reverse_entry(second["id"])
    assert other.trial_balance("2026-12-31")["total_debit"] == Decimal("0.00")


def test_accounts_batches_users_and_export(open_books: Open, database_url: str) -> None:
    books = open_books(database_url)
    email = unique_email("owner")
    org = books.register(email, PASSWORD, "Yen Shop", currency="JPY")

    bank = org.create_account("1010", "Bank", "asset", "JPY", parent="1000")
    assert bank["parent"] == "1000" and bank["balance"] == Decimal("0")
    with pytest.raises(accubooks.ConflictError) as exists:
        org.create_account("1010", "Bank again", "asset", "JPY")
    assert exists.value.code == "ACCOUNT_EXISTS"
    with pytest.raises(accubooks.ValidationError):
        org.create_account("1020", "Bad type", "cash", "JPY")

    ids = org.post_entries(
        [
            {"date": JAN, "lines": sale("500", debit="1010")},
            {"date": "2026-02-01", "lines": sale(Decimal("250")), "memo": "second"},
        ]
    )
    assert len(ids) == 2 and ids[0] < ids[1]
    assert org.entry(ids[1])["memo"] == "second"
    with pytest.raises(accubooks.ValidationError) as batch:
        org.post_entries(
            [{"date": JAN, "lines": sale("1")}, {"date": JAN, "lines": sale("1.5")}]
        )
    assert batch.value.code == "INVALID_AMOUNT" and str(batch.value).startswith("Entry 2:")
    assert org.trial_balance("2026-12-31")["total_debit"] == Decimal("750")

    journal = org.export_ledger("hledger", datetime.date(2026, 12, 31))
    assert "assets:1010" in journal and "750" in journal
    with pytest.raises(accubooks.ValidationError):
        org.export_ledger("gnucash")

    # Users and roles, as over HTTP.
    viewer_email = unique_email("viewer")
    user = org.create_user(viewer_email, PASSWORD, "viewer")
    assert user["role"] == "viewer" and user["email"] == viewer_email
    viewer = books.login(viewer_email, PASSWORD)
    assert viewer.id == org.id and viewer.role == "viewer"
    assert viewer.trial_balance("2026-12-31")["total_debit"] == Decimal("750")
    with pytest.raises(accubooks.PermissionDeniedError) as denied:
        viewer.post_entry(JAN, sale("1"))
    assert denied.value.status == 403
    with pytest.raises(accubooks.AuthenticationError) as wrong:
        books.login(viewer_email, "not the password")
    assert wrong.value.status == 401
    with pytest.raises(accubooks.ConflictError) as taken:
        books.register(email, PASSWORD, "Again")
    assert taken.value.code == "EMAIL_TAKEN"
    with pytest.raises(accubooks.ValidationError) as weak:
        books.register(unique_email(), "short", "Weak")
    assert weak.value.code == "WEAK_PASSWORD"

    # By id: owner rights for the host, but no user to issue a token for.
    by_id = books.organization(org.id)
    assert by_id.id == org.id and by_id.user_id is None and by_id.role == "owner"
    assert len(by_id.accounts()) == 10
    assert org.token().count(".") == 2
    with pytest.raises(accubooks.PermissionDeniedError):
        by_id.token()
    with pytest.raises(accubooks.NotFoundError):
        books.organization(str(uuid.uuid4()))
    with pytest.raises(accubooks.NotFoundError):
        books.organization("not-a-uuid")


def test_account_tree_roll_ups_and_cash_flow(open_books: Open, database_url: str) -> None:
    books = open_books(database_url)
    org = books.register(unique_email("tree"), PASSWORD, "Tree")
    org.create_account("1010", "Bank", "asset", "USD", parent="1000")
    org.create_account("1011", "Bank savings", "asset", "USD", parent="1010")
    org.create_account("4010", "Services", "revenue", "USD", parent="4000")
    for code, kind, parent, error in [
        ("1020", "asset", "1999", "UNKNOWN_ACCOUNT"),
        ("1020", "asset", "4000", "PARENT_TYPE_MISMATCH"),
    ]:
        with pytest.raises(accubooks.ValidationError) as refused:
            org.create_account(code, "Refused", kind, "USD", parent=parent)
        assert refused.value.code == error
    assert [a["parent"] for a in org.accounts() if a["code"] in ("1000", "1010", "1011")] == [
        None,
        "1000",
        "1010",
    ]

    org.post_entry("2025-12-31", sale("1000.00", credit="3000"))
    org.post_entry("2026-01-10", sale("250.25", debit="1011", credit="4010"))
    org.post_entry("2026-01-11", sale("40.00", debit="5000", credit="1010"))
    org.post_entry("2026-01-12", sale("100.00", debit="1010", credit="1000"))

    tb = org.trial_balance("2026-01-31")
    rows = {r["code"]: r for r in tb["accounts"]}
    assert [r["code"] for r in tb["accounts"]][:4] == ["1000", "1010", "1011", "1100"]
    assert rows["1000"]["debit"] == Decimal("900.00")
    assert rows["1000"]["subtotal_debit"] == Decimal("1210.25")
    assert rows["1010"]["subtotal_debit"] == Decimal("310.25") and rows["1010"]["level"] == 1
    assert rows["1011"]["subtotal_debit"] is None and rows["1011"]["parent"] == "1010"
    assert tb["total_debit"] == Decimal("1250.25")
    income = org.income_statement("2026-01-01", JAN)
    assert income["revenue"][0]["subtotal"] == Decimal("250.25")

    flow = org.cash_flow(datetime.date(2026, 1, 1), JAN)
    assert [c["code"] for c in flow["cash"]] == ["1000", "1010", "1011"]
    assert flow["customers"] == [
        {"code": "4010", "name": "Services", "currency": "USD", "parent": "4000", "amount": Decimal("250.25")}
    ]
    assert [(s["code"], s["amount"]) for s in flow["suppliers"]] == [("5000", Decimal("-40.00"))]
    assert flow["opening_cash"] == Decimal("1000.00")
    assert flow["net_change"] == Decimal("210.25")
    assert flow["closing_cash"] == flow["opening_cash"] + flow["net_change"] == Decimal("1210.25")
    assert flow["from"] == datetime.date(2026, 1, 1)
    with pytest.raises(accubooks.ValidationError) as backwards:
        org.cash_flow(JAN, "2026-01-01")
    assert backwards.value.code == "INVALID_PERIOD"

"""A fake Plaid on loopback for the Python tests (stdlib only).

JSON ``POST`` endpoints authenticated by ``client_id`` and ``secret`` in the
body, errors as Plaid's error object: ``/institutions/get`` (the health
probe), ``/item/public_token/exchange`` (each public token once),
``/accounts/get`` and ``/transactions/sync`` (everything added since the
cursor, in one page); the link flow's ``/link/token/create`` (new items and
update mode), ``/item/remove`` and ``/webhook_verification_key/get`` (which
knows no key: the stdlib cannot sign ES256, so every webhook sent to a server
on this fake is refused as forged). ``fail`` puts an item into one of Plaid's
item errors. The Rust integration tests have the full fake (paging,
modifications, removals, forced mutation during pagination, signed webhooks).
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CLIENT_ID = "fake-plaid-client-id"
SECRET = "fake-plaid-s3cr3t"
INSTITUTION = "ins_109508"
# Plaid's documented item errors: (HTTP status, error_type, error_code).
FAILURES = {
    "ITEM_LOGIN_REQUIRED": (400, "ITEM_ERROR"),
    "INSTITUTION_DOWN": (400, "INSTITUTION_ERROR"),
    "PRODUCT_NOT_READY": (400, "ITEM_ERROR"),
}


def error(code: str, message: str, kind: str = "INVALID_INPUT") -> dict[str, Any]:
    return {"error_type": kind, "error_code": code, "error_message": message,
            "display_message": None, "request_id": "fake"}


class FakePlaid:
    def __init__(self) -> None:
        self.public_tokens: dict[str, str] = {}
        self.items: dict[str, dict[str, Any]] = {}
        # The /link/token/create requests, client_id and secret left out.
        self.link_token_requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                status, answer = fake.handle(self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, item_id: str, code: str | None) -> None:
        """Every call about the item answers Plaid's error ``code`` (one of
        FAILURES); ``None``: none, as after the user finished update mode."""
        with self.lock:
            self.items[item_id]["failing"] = code

    def item_of(self, public_token: str) -> str:
        """The item id a public token was issued for."""
        with self.lock:
            return self.public_tokens[public_token]

    def issue_public_token(self, accounts: list[tuple[str, str, str]]) -> str:
        """A public token for a new item with these (account id, name, mask), in USD."""
        with self.lock:
            item = f"item-{uuid.uuid4().hex[:8]}"
            public = f"public-sandbox-{uuid.uuid4()}"
            self.public_tokens[public] = item
            self.items[item] = {
                "access_token": f"access-sandbox-{uuid.uuid4()}",
                "accounts": [{"account_id": a, "name": n, "mask": m, "type": "depository",
                              "balances": {"iso_currency_code": "USD"}} for a, n, m in accounts],
                "transactions": [],
                "failing": None,
                "removed": False,
            }
            return public

    def add_transaction(self, account_id: str, amount: str, date: str, name: str,
                        iso_currency_code: str | None = "USD", unofficial_currency_code: str | None = None) -> str:
        """Adds a posted transaction (Plaid's sign: negative is money in). Its amount is
        a JSON double, as Plaid sends it; with ``iso_currency_code=None``, the currency is
        ``unofficial_currency_code`` (a crypto account)."""
        with self.lock:
            item = next(i for i in self.items.values() if any(a["account_id"] == account_id for a in i["accounts"]))
            tid = f"tx-{uuid.uuid4().hex[:12]}"
            item["transactions"].append({"transaction_id": tid, "account_id": account_id, "amount": float(amount),
                                         "iso_currency_code": iso_currency_code,
                                         "unofficial_currency_code": unofficial_currency_code,
                                         "date": date, "name": name,
                                         "merchant_name": None, "pending": False})
            return tid

    def handle(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if body.get("client_id") != CLIENT_ID or body.get("secret") != SECRET:
            return 400, error("INVALID_API_KEYS", "invalid client_id or secret provided")
        with self.lock:
            if path == "/institutions/get":
                return 200, {"institutions": [], "total": 0, "request_id": "fake"}
            if path == "/item/public_token/exchange":
                item = self.public_tokens.pop(body.get("public_token", ""), None)
                if item is None:
                    return 400, error("INVALID_PUBLIC_TOKEN", "provided public token is in an invalid format")
                return 200, {"access_token": self.items[item]["access_token"], "item_id": item,
                             "request_id": "fake"}
            if path == "/webhook_verification_key/get":
                return 400, error("INVALID_WEBHOOK_VERIFICATION_KEY_ID", "invalid key_id provided")
            if path == "/link/token/create":
                return self.link_token(body)
            item_id, found = next(((k, i) for k, i in self.items.items()
                                   if i["access_token"] == body.get("access_token") and not i["removed"]),
                                  (None, None))
            if found is None:
                return 400, error("INVALID_ACCESS_TOKEN", "provided access token is invalid")
            if path == "/item/remove":
                found["removed"] = True
                return 200, {"request_id": "fake"}
            if found["failing"]:
                status, kind = FAILURES[found["failing"]]
                return status, error(found["failing"], "the item cannot be used now", kind)
            if path == "/accounts/get":
                described: dict[str, Any] = {
                    "item_id": item_id, "institution_id": INSTITUTION, "webhook": None, "error": None,
                    "available_products": [], "billed_products": ["transactions"],
                    "consent_expiration_time": None, "update_type": "background"}
                return 200, {"accounts": found["accounts"], "item": described, "request_id": "fake"}
            if path == "/transactions/sync":
                start = int((body.get("cursor") or "c0")[1:])
                added = found["transactions"][start:]
                # `accounts` and `transactions_update_status` are required by
                # Plaid's schema (and AccuBooks reads the accounts).
                return 200, {"accounts": found["accounts"], "added": added, "modified": [], "removed": [],
                             "next_cursor": f"c{len(found['transactions'])}", "has_more": False,
                             "transactions_update_status": "HISTORICAL_UPDATE_COMPLETE",
                             "request_id": "fake"}
        return 404, error("NOT_FOUND", "unknown path", "INVALID_REQUEST")

    def link_token(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``/link/token/create``: with ``access_token``, update mode for that item."""
        missing = [f for f in ("client_name", "language", "country_codes", "user") if f not in body]
        if missing:
            return 400, error("MISSING_FIELDS", f"the following required fields are missing: {missing}",
                              "INVALID_REQUEST")
        if "access_token" in body:
            if not any(i["access_token"] == body["access_token"] and not i["removed"] for i in self.items.values()):
                return 400, error("INVALID_ACCESS_TOKEN", "provided access token is invalid")
        elif not body.get("products"):
            return 400, error("MISSING_FIELDS", "the following required fields are missing: products",
                              "INVALID_REQUEST")
        self.link_token_requests.append({k: v for k, v in body.items() if k not in ("client_id", "secret")})
        return 200, {"link_token": f"link-sandbox-{uuid.uuid4()}", "expiration": "2026-12-07T18:00:00Z",
                     "request_id": "fake"}

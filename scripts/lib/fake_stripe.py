"""A fake Stripe on loopback for the Python tests and scripts/chaos (stdlib only).

It speaks the part of Stripe's wire format AccuBooks uses: ``GET
/v1/payment_intents`` (the health probe), ``GET /v1/balance`` and ``POST
/v1/payment_intents`` with form-encoded bodies, ``Authorization: Bearer <key>``
(the secret key, or ``RESTRICTED_KEY``, allowed PaymentIntents only and
refused ``/v1/balance`` with Stripe's 403), ``Idempotency-Key`` replays of any
saved answer (a 500 included, as Stripe keeps it for 24 hours; see
``fail_next``) and Stripe's error objects; and it builds the events Stripe's
webhooks send (``payment_intent.succeeded``, ``charge.refunded``, a failed
refund's ``charge.refund.updated`` / ``refund.updated``) with their
``Stripe-Signature`` header (HMAC-SHA256 of ``<t>.<payload>``). Requests
naming a ``Stripe-Version`` other than ``API_VERSION`` are refused; requests
naming none are tolerated (as an account's default). It can be stopped
(connections refused) and started again on the same port.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEY = "sk_test_s3cr3t_stripe_key"
RESTRICTED_KEY = "rk_test_r3str1ct3d_stripe_key"
WEBHOOK_SECRET = "whsec_s3cr3t_stripe_signing"
# The version AccuBooks pins (accubooks-core's STRIPE_API_VERSION).
API_VERSION = "2020-08-27"


class FakeStripe:
    def __init__(self, key: str = KEY) -> None:
        self.key = key
        self.intents: dict[str, dict[str, Any]] = {}
        self.replays: dict[str, tuple[str, int, dict[str, Any]]] = {}
        self.failures = 0
        self.keys: list[str] = []
        self.lock = threading.Lock()
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Serves (again, on the same port once it had one)."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def admitted(self) -> str | None:
                """The key (``secret`` or ``restricted``), or None once refused."""
                version = self.headers.get("Stripe-Version")
                if version is not None and version != API_VERSION:
                    self.answer(400, {"error": {"type": "invalid_request_error",
                                                "message": f"Unsupported Stripe-Version {version}."}})
                    return None
                auth = self.headers.get("Authorization")
                if auth == f"Bearer {fake.key}":
                    return "secret"
                if auth == f"Bearer {RESTRICTED_KEY}":
                    return "restricted"
                self.answer(401, {"error": {"type": "invalid_request_error",
                                            "message": "Invalid API Key provided: sk_test_****"}})
                return None

            def do_GET(self) -> None:
                key = self.admitted()
                if key is None:
                    return
                path = urllib.parse.urlsplit(self.path).path
                if path == "/v1/payment_intents":
                    with fake.lock:
                        data = list(fake.intents.values())[-1:]
                    self.answer(200, {"object": "list", "data": data, "has_more": len(fake.intents) > len(data),
                                      "url": "/v1/payment_intents"})
                elif path == "/v1/balance" and key == "restricted":
                    self.answer(403, {"error": {"type": "invalid_request_error", "message": (
                        "The provided key 'rk_test_****_key' does not have the required permissions for this "
                        "endpoint on account 'acct_1Fake'. Having the 'rak_balance_read' permission would "
                        "allow this request to continue.")}})
                elif path == "/v1/balance":
                    self.answer(200, {"object": "balance", "available": [], "pending": [], "livemode": False})
                else:
                    self.answer(404, {"error": {"type": "invalid_request_error",
                                                "message": f"Unrecognized request URL (GET: {path})."}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode()
                if self.admitted() is None:
                    return
                self.answer(*fake.create_intent(body, self.headers.get("Idempotency-Key")))

        while True:
            try:
                self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
                break
            except OSError:
                time.sleep(0.05)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stops answering: connections are refused."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def fail_next(self, count: int = 1) -> None:
        """The next ``count`` creations fail with a 500, saved under their key."""
        with self.lock:
            self.failures += count

    def create_intent(self, body: str, key: str | None) -> tuple[int, dict[str, Any]]:
        form = dict(urllib.parse.parse_qsl(body))
        with self.lock:
            if key is not None:
                self.keys.append(key)
            if key is not None and key in self.replays:
                earlier, status, answer = self.replays[key]
                if earlier != body:
                    return 400, {"error": {"type": "idempotency_error", "message": "Keys for idempotent "
                                           "requests can only be used with the same parameters."}}
                return status, answer
            if self.failures > 0:
                self.failures -= 1
                failed = {"error": {"type": "api_error", "message": "An unknown error occurred."}}
                if key is not None:
                    self.replays[key] = (body, 500, failed)
                return 500, failed
            intent_id = f"pi_{uuid.uuid4().hex}"
            intent = {
                "id": intent_id,
                "object": "payment_intent",
                "amount": int(form["amount"]),
                "amount_capturable": 0,
                "amount_received": 0,
                "capture_method": "automatic",
                "confirmation_method": "automatic",
                "created": int(time.time()),
                "currency": form["currency"],
                "client_secret": f"{intent_id}_secret_{uuid.uuid4().hex}",
                "livemode": False,
                "payment_method_types": ["card"],
                "status": "requires_payment_method",
                "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
            }
            self.intents[intent_id] = intent
            if key is not None:
                self.replays[key] = (body, 200, intent)
            return 200, intent

    def event(self, kind: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
        return json.dumps({
            "id": event_id or f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "api_version": API_VERSION,
            "type": kind,
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "data": {"object": obj},
        }).encode()

    def succeeded(self, intent_id: str, event_id: str | None = None) -> bytes:
        """``payment_intent.succeeded`` for all of the intent's amount."""
        intent = self.intents[intent_id]
        obj = {**intent, "status": "succeeded", "amount_received": intent["amount"]}
        return self.event("payment_intent.succeeded", obj, event_id)

    def refunded(self, intent_id: str, amount_refunded: int, event_id: str | None = None) -> bytes:
        """``charge.refunded`` of the intent's charge, with its refunded total."""
        intent = self.intents[intent_id]
        obj = {"id": "ch_" + intent_id[3:], "object": "charge", "amount": intent["amount"],
               "amount_captured": intent["amount"], "amount_refunded": amount_refunded,
               "currency": intent["currency"], "payment_intent": intent_id, "paid": True,
               "refunded": amount_refunded == intent["amount"]}
        return self.event("charge.refunded", obj, event_id)

    def refund_failed(self, intent_id: str, refund_id: str, amount: int, kind: str = "charge.refund.updated",
                      event_id: str | None = None) -> bytes:
        """``kind`` (``charge.refund.updated`` or ``refund.updated``) of a refund that failed."""
        intent = self.intents[intent_id]
        obj = {"id": refund_id, "object": "refund", "amount": amount, "charge": "ch_" + intent_id[3:],
               "created": int(time.time()), "currency": intent["currency"], "payment_intent": intent_id,
               "status": "failed", "failure_reason": "expired_or_canceled_card", "metadata": {}}
        return self.event(kind, obj, event_id)


def sign(payload: bytes, secrets: Sequence[str] = (WEBHOOK_SECRET,), timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header of ``payload``, signed with each secret."""
    t = int(time.time()) if timestamp is None else timestamp
    parts = [f"t={t}"]
    for secret in secrets:
        mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256)
        parts.append(f"v1={mac.hexdigest()}")
    return ",".join(parts)

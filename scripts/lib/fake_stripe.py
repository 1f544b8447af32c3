"""A fake Stripe on loopback for the Python tests and scripts/chaos (stdlib only).

It speaks the part of Stripe's wire format AccuBooks uses: ``GET /v1/balance``
(the health probe) and ``POST /v1/payment_intents`` with form-encoded bodies,
``Authorization: Bearer <secret key>``, ``Idempotency-Key`` replays and
Stripe's error objects; and it builds the events Stripe's webhooks send
(``payment_intent.succeeded``, ``charge.refunded``) with their
``Stripe-Signature`` header (HMAC-SHA256 of ``<t>.<payload>``). It can be
stopped (connections refused) and started again on the same port.
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
WEBHOOK_SECRET = "whsec_s3cr3t_stripe_signing"


class FakeStripe:
    def __init__(self, key: str = KEY) -> None:
        self.key = key
        self.intents: dict[str, dict[str, Any]] = {}
        self.replays: dict[str, tuple[str, dict[str, Any]]] = {}
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

            def authorized(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {fake.key}":
                    return True
                self.answer(401, {"error": {"type": "invalid_request_error",
                                            "message": "Invalid API Key provided: sk_test_****"}})
                return False

            def do_GET(self) -> None:
                if self.authorized():
                    self.answer(200, {"object": "balance", "available": [], "pending": [], "livemode": False})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length).decode()
                if not self.authorized():
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

    def create_intent(self, body: str, key: str | None) -> tuple[int, dict[str, Any]]:
        form = dict(urllib.parse.parse_qsl(body))
        with self.lock:
            if key is not None and key in self.replays:
                earlier, answer = self.replays[key]
                if earlier != body:
                    return 400, {"error": {"type": "idempotency_error", "message": "Keys for idempotent "
                                           "requests can only be used with the same parameters."}}
                return 200, answer
            intent_id = f"pi_{uuid.uuid4().hex}"
            intent = {
                "id": intent_id,
                "object": "payment_intent",
                "amount": int(form["amount"]),
                "currency": form["currency"],
                "client_secret": f"{intent_id}_secret_{uuid.uuid4().hex}",
                "status": "requires_payment_method",
                "metadata": {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")},
            }
            self.intents[intent_id] = intent
            if key is not None:
                self.replays[key] = (body, intent)
            return 200, intent

    def event(self, kind: str, obj: dict[str, Any], event_id: str | None = None) -> bytes:
        return json.dumps({
            "id": event_id or f"evt_{uuid.uuid4().hex}",
            "object": "event",
            "api_version": "2024-06-20",
            "type": kind,
            "created": int(time.time()),
            "livemode": False,
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


def sign(payload: bytes, secrets: Sequence[str] = (WEBHOOK_SECRET,), timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header of ``payload``, signed with each secret."""
    t = int(time.time()) if timestamp is None else timestamp
    parts = [f"t={t}"]
    for secret in secrets:
        mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256)
        parts.append(f"v1={mac.hexdigest()}")
    return ",".join(parts)

"""A webhook receiver on loopback that verifies with the ``standardwebhooks``
library (the Standard Webhooks reference implementation from PyPI), for the
integration tests (``tests/integration/webhooks.rs``) and benchmarks.

    python webhook_receiver.py --port P --secret whsec_… [--secret whsec_…]

prints ``ready`` once it listens. ``POST /hook`` is the endpoint: each
request is verified against every configured secret (``verified`` lists the
outcome per secret) and recorded; it is answered 500 while ``fail`` > 0
(each such answer counts one down), after ``delay_ms`` when set, else 200.
``POST /control`` sets ``{"fail", "delay_ms", "secrets"}``; ``GET
/received`` answers every request recorded, in arrival order.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook  # type: ignore[import-untyped,unused-ignore]


class State:
    def __init__(self, secrets: list[str]) -> None:
        self.lock = threading.Lock()
        self.secrets = secrets
        self.fail = 0
        self.delay_ms = 0
        self.received: list[dict[str, Any]] = []


def handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/received":
                with state.lock:
                    self.answer(200, list(state.received))
            else:
                self.answer(404, {"error": "unknown path"})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            if self.path == "/control":
                change = json.loads(body)
                with state.lock:
                    state.fail = int(change.get("fail", state.fail))
                    state.delay_ms = int(change.get("delay_ms", state.delay_ms))
                    state.secrets = list(change.get("secrets", state.secrets))
                self.answer(200, {"ok": True})
                return
            if self.path != "/hook":
                self.answer(404, {"error": "unknown path"})
                return
            headers = {k: v for k, v in self.headers.items()}
            with state.lock:
                secrets = list(state.secrets)
                failing = state.fail > 0
                if failing:
                    state.fail -= 1
                delay_ms = state.delay_ms
            verified = []
            for secret in secrets:
                try:
                    Webhook(secret).verify(body, headers)
                    verified.append(True)
                except Exception:  # noqa: BLE001 - any refusal is "not verified"
                    verified.append(False)
            status = 500 if failing else 200
            record = {
                "webhook_id": self.headers.get("webhook-id"),
                "timestamp": self.headers.get("webhook-timestamp"),
                "signature": self.headers.get("webhook-signature"),
                "content_type": self.headers.get("content-type"),
                "verified": verified,
                "answered": status,
                "arrived_ms": int(time.time() * 1000),
                "body": json.loads(body) if body else None,
            }
            with state.lock:
                state.received.append(record)
            if delay_ms:
                time.sleep(delay_ms / 1000)
            self.answer(status, {"received": True, "answered": status})

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", action="append", default=[])
    parser.add_argument("--fail", type=int, default=0, help="answer the first N requests 500")
    args = parser.parse_args()
    state = State(args.secret)
    state.fail = args.fail
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(state))
    server.daemon_threads = True
    print("ready", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()

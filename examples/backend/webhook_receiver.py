#!/usr/bin/env python3
"""A coconnect webhook receiver for a clearance or issuing system (docs/backend.md).

It does what every receiver must do, with the Python standard library only:
  1. verify X-Coconnect-Signature: HMAC-SHA256 with the shared secret over
     "<X-Coconnect-Timestamp>.<body>", compared in constant time, and refuse a timestamp
     more than five minutes away (a captured request replayed later);
  2. de-duplicate by event ID (Idempotency-Key): delivery is at least once;
  3. answer 2xx only once the event is safely processed (here: appended to a JSON-lines
     file, flushed and fsync'd); anything else makes coconnect retry.

Usage:
  COCONNECT_WEBHOOK_SECRET=... webhook_receiver.py --port 8443 --out events.jsonl \
      [--tls-cert cert.pem --tls-key key.pem]
Each accepted event is printed as "accepted <seq> <kind> <event_id>", a repeat as
"duplicate <event_id>", a refused request as "refused <reason>".
"""
import argparse
import hashlib
import hmac
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_SKEW_SECONDS = 300


def signature_ok(secret: bytes, timestamp: str, body: bytes, header: str) -> bool:
    """True if `header` ("sha256=<hex>") is the HMAC of "<timestamp>.<body>"."""
    if not header.startswith("sha256="):
        return False
    expected = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len("sha256="):])


class Store:
    """The events processed so far, kept in a JSON-lines file (survives a restart)."""

    def __init__(self, path: str):
        self.path = path
        self.lock = threading.Lock()
        self.seen = set()
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                self.seen = {json.loads(line)["event_id"] for line in f if line.strip()}

    def add(self, event: dict) -> bool:
        """Appends `event` durably; False if it was processed before."""
        with self.lock:
            if event["event_id"] in self.seen:
                return False
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(event) + "\n")
                f.flush()
                os.fsync(f.fileno())
            self.seen.add(event["event_id"])
            return True


def handler(secret: bytes, store: Store):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            timestamp = self.headers.get("X-Coconnect-Timestamp", "")
            if not signature_ok(secret, timestamp, body, self.headers.get("X-Coconnect-Signature", "")):
                return self.refuse(401, "bad signature")
            if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_SKEW_SECONDS:
                return self.refuse(401, "stale timestamp")
            event = json.loads(body)
            if event.get("event_id") != self.headers.get("Idempotency-Key"):
                return self.refuse(400, "event ID and Idempotency-Key differ")
            # Process the event here (hand a document.received to the clearance system ...),
            # durably, before answering 2xx.
            if store.add(event):
                print(f"accepted {event['seq']} {event['kind']} {event['event_id']}", flush=True)
            else:
                print(f"duplicate {event['event_id']}", flush=True)
            self.send_response(204)
            self.end_headers()

        def refuse(self, status: int, reason: str):
            print(f"refused {reason}", flush=True)
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):
            pass

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True, help="JSON-lines file of processed events")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    secret = os.environ.get("COCONNECT_WEBHOOK_SECRET", "").encode()
    if len(secret) < 32:
        print("set COCONNECT_WEBHOOK_SECRET (the subscriber's secret, at least 32 characters)", file=sys.stderr)
        return 2
    server = ThreadingHTTPServer((args.host, args.port), handler(secret, Store(args.out)))
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"listening on {args.host}:{server.server_address[1]}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())

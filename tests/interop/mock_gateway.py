#!/usr/bin/env python3
"""Tiny stand-in HTTP endpoint for the interop peers' own tests (selftest.sh).

It does NOT check WS-Security: it checks the HTTP side (POST, Basic auth, Content-Type,
SOAPAction), saves each request body to --save-dir/request-N.xml and answers with the bytes
of --ack (a pre-signed Acknowledgement envelope). The saved requests are then verified with
the WSS4J peer's `process`.

Listens on 127.0.0.1 only; prints "PORT <n>" on stdout once listening; exits after
--max-requests requests or --timeout seconds, whichever comes first. stdlib only.
"""

import argparse
import base64
import os
import sys
import ssl
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ack", required=True, help="response body (signed Acknowledgement envelope)")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--save-dir", required=True)
    ap.add_argument("--max-requests", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--status", type=int, default=200, help="HTTP status to answer with")
    ap.add_argument("--tls-cert", help="serve https with this certificate (PEM)")
    ap.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
    args = ap.parse_args()

    with open(args.ack, "rb") as f:
        ack = f.read()
    os.makedirs(args.save_dir, exist_ok=True)
    expected_auth = "Basic " + base64.b64encode(
        f"{args.user}:{args.password}".encode()).decode()
    state = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            sys.stderr.write("mock_gateway: " + (fmt % a) + "\n")

        def _reply(self, code, body, ctype="text/xml; charset=utf-8"):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            state["n"] += 1
            n = state["n"]
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with open(os.path.join(args.save_dir, f"request-{n}.xml"), "wb") as f:
                f.write(body)
            with open(os.path.join(args.save_dir, f"request-{n}.headers"), "w") as f:
                for k, v in self.headers.items():
                    f.write(f"{k}: {v}\n")
            problems = []
            if self.headers.get("Authorization") != expected_auth:
                self._reply(401, b"unauthorized", "text/plain")
                return
            ctype = self.headers.get("Content-Type", "")
            if not ctype.lower().startswith("text/xml"):
                problems.append(f"Content-Type {ctype!r}")
            if not self.headers.get("SOAPAction"):
                problems.append("no SOAPAction")
            if problems:
                self._reply(400, ("; ".join(problems)).encode(), "text/plain")
                return
            self._reply(args.status, ack)

        def do_GET(self):
            self._reply(405, b"POST only", "text/plain")

    srv = HTTPServer(("127.0.0.1", args.port), Handler)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(f"PORT {srv.server_address[1]}", flush=True)
    deadline = time.monotonic() + args.timeout
    srv.timeout = 0.5
    try:
        while state["n"] < args.max_requests and time.monotonic() < deadline:
            srv.handle_request()
    finally:
        srv.server_close()


if __name__ == "__main__":
    main()

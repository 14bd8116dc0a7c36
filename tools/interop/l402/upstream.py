#!/usr/bin/env python3
"""The API our gateway sells in the interop suite: GET anything -> 200 JSON
{"data": "the answer is 42", "path", "authorization_forwarded"}. The gateway must not forward the
buyer's L402/LSAT credential, so authorization_forwarded is expected to be null.
Usage: upstream.py --port P
"""

import argparse
import http.server
import json

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
args = ap.parse_args()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"data": "the answer is 42", "path": self.path,
                           "authorization_forwarded": self.headers.get("Authorization")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a) -> None:
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()

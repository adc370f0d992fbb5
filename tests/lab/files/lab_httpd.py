#!/usr/bin/env python3
"""Lab stand-in for the node server (issue 4): a tiny HTTP service per node.

Not the TTS service: it only answers what the LVS/keepalived tests need.
  GET /         -> the host name (which node answered)
  GET /livez    -> 200
  GET /readyz   -> 200, or 503 while the file /run/lab-httpd/not-ready exists
  GET /stream?n=N&interval=S -> N lines, one every S seconds (a long-lived
                   connection for the director failover drill)
Standard library only; runs under systemd as lab-httpd.service.
"""

import os
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

NOT_READY = "/run/lab-httpd/not-ready"
HOST = socket.gethostname()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # journald gets one line per request
        sys.stderr.write(f"{self.client_address[0]} {fmt % args}\n")

    def reply(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/":
            self.reply(200, HOST + "\n")
        elif url.path == "/livez":
            self.reply(200, "live\n")
        elif url.path == "/readyz":
            if os.path.exists(NOT_READY):
                self.reply(503, "not ready\n")
            else:
                self.reply(200, "ready\n")
        elif url.path == "/stream":
            query = parse_qs(url.query)
            count = min(int(query.get("n", ["10"])[0]), 600)
            interval = min(float(query.get("interval", ["0.5"])[0]), 5.0)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            for i in range(count):
                self.wfile.write(f"{HOST} {i}\n".encode())
                self.wfile.flush()
                time.sleep(interval)
            self.close_connection = True
        else:
            self.reply(404, "not found\n")


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 7860
    ThreadingHTTPServer.daemon_threads = True
    # uvicorn's default backlog: a hung process still completes TCP handshakes
    # for a long while (the kernel queues them), as the real node server would.
    ThreadingHTTPServer.request_queue_size = 2048
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


if __name__ == "__main__":
    main()

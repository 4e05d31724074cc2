"""S3 for tests: moto's standalone server on loopback, and a counting reverse proxy.

Tests point ``AWS_ENDPOINT_URL`` at the proxy to count how often each object is fetched
(an independent count: the code under test does not know it is there).
"""

from __future__ import annotations

import collections
import http.client
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class CountingProxy:
    """Forwards every request to ``upstream``; ``counts[(method, path)]`` says how often."""

    def __init__(self, upstream: str, delay: float = 0.0) -> None:
        self.upstream = urlsplit(upstream)
        self.delay = delay  # seconds added to every GET (slow network)
        self.counts: collections.Counter = collections.Counter()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path = self.path.split("?", 1)[0]
                with proxy.lock:
                    proxy.counts[(self.command, path)] += 1
                if self.command == "GET" and proxy.delay:
                    time.sleep(proxy.delay)
                conn = http.client.HTTPConnection(
                    proxy.upstream.hostname, proxy.upstream.port, timeout=60
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def gets(self, suffix: str) -> dict[str, int]:
        """``path -> GET count`` of the paths ending with ``suffix``."""
        with self.lock:
            return {p: n for (m, p), n in self.counts.items() if m == "GET" and p.endswith(suffix)}

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def start_moto() -> tuple[subprocess.Popen, str]:
    """Start ``python -m moto.server`` on a free loopback port; ``(process, endpoint)``."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto server did not start on port {port}") from None
            time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server started by :func:`start_moto`."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()

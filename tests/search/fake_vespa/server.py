"""Serve the stand-in with Hypercorn on loopback: HTTP/1.1 and h2c (prior knowledge) on one port.

In a background thread of the test process (`FakeVespaServer().start()`), or as its own process
for benchmarks: `python -m tests.search.fake_vespa --port N`.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time

from hypercorn.asyncio import serve
from hypercorn.config import Config

from .app import FakeVespa


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _config(port: int, max_requests: int = 1_000_000_000) -> Config:
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.keep_alive_timeout = 30
    config.graceful_timeout = 0.5  # stopping need not wait for idle client connections
    config.h2_max_concurrent_streams = 256  # Vespa's container allows many streams per connection
    # Hypercorn closes a connection (HTTP/2 GOAWAY) after 1,000 requests by default; a self-hosted
    # Vespa container does not. httpr (pyvespa's client) then waits out its timeout on the next
    # request before reconnecting, which the backend survives (retries) but a test should not
    # pay for at every thousandth request.
    config.keep_alive_max_requests = max_requests
    return config


class FakeVespaServer:
    """One stand-in on a free loopback port; `url` is what VESPA_URL would be."""

    def __init__(
        self, app: FakeVespa | None = None, port: int | None = None, *, max_requests: int = 1_000_000_000
    ) -> None:
        """`max_requests`: close each connection (GOAWAY) after that many requests, as Vespa
        Cloud recycles connections."""
        self.app = app or FakeVespa()
        self.max_requests = max_requests
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FakeVespaServer:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._stop = asyncio.Event()
            ready.set()
            self._loop.run_until_complete(
                serve(self.app, _config(self.port, self.max_requests), shutdown_trigger=self._stop.wait)
            )
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-vespa", daemon=True)
        self._thread.start()
        ready.wait(5)
        _wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)


def _wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"the Vespa stand-in did not listen on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the Vespa stand-in (tests and benchmarks only).")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    import django

    django.setup()
    server = FakeVespa()
    port = args.port or free_port()
    print(f"http://127.0.0.1:{port}", flush=True)
    asyncio.run(serve(server, _config(port)))


if __name__ == "__main__":
    main()

"""A local stand-in of an OpenAI-compatible /v1/chat/completions endpoint, on a free loopback
port, that answers as told: success, malformed JSON, 429 with Retry-After, 500, or a hang."""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StandIn:
    def __init__(self) -> None:
        self.script: deque[str] = deque()  # behaviours for the next requests; then `default`
        self.default = "success"
        self.score = 0.73
        self.requests: list[dict] = []
        self.release = threading.Event()  # ends hangs at shutdown
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length))
                standin.requests.append(
                    {"path": self.path, "auth": self.headers.get("Authorization"), "body": body}
                )
                behaviour = standin.script.popleft() if standin.script else standin.default
                getattr(standin, f"_{behaviour.replace('-', '_')}")(self)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self) -> StandIn:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def _reply(self, handler, status: int, payload: bytes, headers: dict | None = None) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def _completion(self, content: str) -> bytes:
        return json.dumps(
            {
                "id": "x",
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
            }
        ).encode()

    def _success(self, handler) -> None:
        content = json.dumps({"score": self.score, "explanation": "Selling steadily and searched often."})
        self._reply(handler, 200, self._completion(content))

    def _malformed(self, handler) -> None:
        self._reply(handler, 200, self._completion('{"score": 0.9, "explanation": "cut off'))

    def _out_of_range(self, handler) -> None:
        self._reply(handler, 200, self._completion('{"score": 7, "explanation": "very"}'))

    def _rate_limited(self, handler) -> None:
        self._reply(handler, 429, b'{"error": "rate limited"}', {"Retry-After": "1"})

    def _server_error(self, handler) -> None:
        self._reply(handler, 500, b'{"error": "boom"}')

    def _hang(self, handler) -> None:
        self.release.wait(30)

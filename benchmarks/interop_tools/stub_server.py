"""A stub OpenAI-compatible server on 127.0.0.1 that records when each request arrives.

``python stub_server.py PORT_FILE LOG_FILE MAX_REQUESTS MAX_SECONDS``: binds 127.0.0.1 on a free
port (written to PORT_FILE), answers ``GET /v1/models`` and ``POST /v1/chat/completions`` /
``/v1/completions`` at once with a one-token reply, appends one JSON line per request to
LOG_FILE (``t``: ``time.time()`` when the request line was read, ``max_tokens``), and stops
after MAX_REQUESTS completions or MAX_SECONDS, whichever first. Standard library only;
loopback only.
"""
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main(port_file: str, log_file: str, max_requests: int, max_seconds: float) -> None:
    lock = threading.Lock()
    seen = {"n": 0}
    log = open(log_file, "a", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._send({"object": "list", "data": [{"id": "stub", "object": "model", "owned_by": "servelab"}]})

        def do_POST(self):
            t = time.time()
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            with lock:
                seen["n"] += 1
                log.write(json.dumps({"t": t, "path": self.path, "max_tokens": body.get("max_tokens",
                                      body.get("max_completion_tokens"))}) + "\n")
            usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
            if "chat" in self.path:
                self._send({"id": "x", "object": "chat.completion", "created": int(t), "model": "stub",
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                                         "finish_reason": "stop"}], "usage": usage})
            else:
                self._send({"id": "x", "object": "text_completion", "created": int(t), "model": "stub",
                            "choices": [{"index": 0, "text": "ok", "finish_reason": "stop"}], "usage": usage})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(port_file, "w") as fh:
        fh.write(str(server.server_address[1]))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    deadline = time.time() + max_seconds
    while time.time() < deadline and seen["n"] < max_requests:
        time.sleep(0.05)
    time.sleep(0.5)  # let the last replies go out
    server.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))

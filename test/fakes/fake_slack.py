#!/usr/bin/env python3
"""A fake Slack incoming-webhook receiver for butler's integration tests
(Python standard library only).

It listens on 127.0.0.1 (a free port unless one is given), accepts a POST on
any path (Slack's look like /services/T000/B000/XXXX), records each request
(path, headers, raw and parsed JSON body, arrival time, the answer given) and
answers as Slack does: 200 with the text/plain body `ok`. Answers can be
scripted per request, in arrival order:

    slack = FakeSlack().start()
    slack.script((500, "server_error"),
                 (429, "rate_limited", {"Retry-After": "1"}),
                 (404, "no_service"),
                 "stall",      # read the request, never answer until stopped
                 "close")      # read the request, close without an answer
    url = slack.url()   # http://127.0.0.1:<port>/services/T000/B000/XXXX
    ...
    posts = slack.wait_for(3, timeout=10)
    slack.stop()

Once the script is used up, every request gets `200 ok` again. Run as a
program it serves until interrupted and prints each request:

    python3 fake_slack.py [--port N]
"""

import argparse
import http.server
import json
import socket
import sys
import threading
import time

#: The path tests use for the webhook, shaped like Slack's.
DEFAULT_PATH = "/services/T000/B000/XXXX"

#: Reasons Slack gives with its status codes (for scripted answers).
OK = (200, "ok")


class Post:
    """One request the fake received.

    `headers` maps lower-case names to values; `json` is the body parsed as
    JSON (None if it is not JSON); `time` is time.monotonic() when the whole
    request had arrived; `answer` is the scripted answer: a (status, body,
    headers) tuple, "stall" or "close".
    """

    def __init__(self, method, path, headers, body, arrived, answer):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.time = arrived
        self.answer = answer
        try:
            self.json = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            self.json = None

    @property
    def status(self):
        """The status answered, or None for "stall" and "close"."""
        return self.answer[0] if isinstance(self.answer, tuple) else None

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return (f"Post({self.method} {self.path}, answer={self.answer!r}, "
                f"body={self.body[:300]!r})")


def _normalise(answer):
    """Returns a scripted answer as (status, body, headers), or the strings
    "stall" and "close" as they are."""
    if answer in ("stall", "close"):
        return answer
    if isinstance(answer, int):
        return (answer, "ok" if answer == 200 else "error", {})
    if not isinstance(answer, tuple) or len(answer) not in (2, 3):
        raise ValueError(f"not a scripted answer: {answer!r}")
    status, body = answer[0], answer[1]
    headers = dict(answer[2]) if len(answer) == 3 else {}
    return (int(status), str(body), headers)


class _Handler(http.server.BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive between posts, as Slack does (and as
    # libcurl expects); every answer carries a Content-Length.
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; without TCP_NODELAY the body
    # would wait for the client's delayed ACK (~40 ms), which Slack does not
    # make anyone wait.
    disable_nagle_algorithm = True
    server_version = "fake-slack"
    sys_version = ""

    def log_message(self, fmt, *args):  # BaseHTTPRequestHandler API
        if self.server.owner.verbose:
            sys.stderr.write("fake-slack: " + (fmt % args) + "\n")

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    # Trailer lines end with an empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()  # the CRLF after the chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self):
        owner = self.server.owner
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        answer = owner._record(self.command, self.path, headers, body)
        if answer == "stall":
            # Hold the connection open, unanswered, until the fake stops.
            owner._stopping.wait()
            self.close_connection = True
            return
        if answer == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        status, text, extra = answer
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    do_POST = _handle  # noqa: N815 - BaseHTTPRequestHandler API
    do_PUT = _handle  # noqa: N815
    do_GET = _handle  # noqa: N815


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner, address):
        self.owner = owner
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address):
        # A peer that goes away mid-request is not our error.
        if self.owner.verbose:
            super().handle_error(request, client_address)


class FakeSlack:
    """The fake webhook receiver. Thread-safe; see the module doc."""

    def __init__(self, port=0, host="127.0.0.1", verbose=False):
        self.host = host
        self.port = port
        self.verbose = verbose
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._posts = []
        self._script = []
        self._stopping = threading.Event()
        self._server = None
        self._thread = None

    # -- life cycle ---------------------------------------------------------

    def start(self):
        """Binds the port (a free one unless given) and serves in a thread."""
        self._stopping.clear()
        self._server = _Server(self, (self.host, self.port))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"fake-slack:{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stops serving and closes the socket; stalled requests end
        without an answer. Idempotent."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5.0)
            self._server = None
            self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- configuration ------------------------------------------------------

    def url(self, path=DEFAULT_PATH):
        """Returns the webhook URL for `path`."""
        return f"http://{self.host}:{self.port}{path}"

    def script(self, *answers):
        """Queues answers for the next requests, in order: (status, body),
        (status, body, {header: value}), a bare status, "stall" or "close".
        """
        normalised = [_normalise(a) for a in answers]
        with self._lock:
            self._script.extend(normalised)

    def clear(self):
        """Forgets the recorded requests and any queued answers."""
        with self._lock:
            self._posts.clear()
            self._script.clear()

    # -- what arrived -------------------------------------------------------

    def _record(self, method, path, headers, body):
        with self._changed:
            answer = self._script.pop(0) if self._script else \
                (OK[0], OK[1], {})
            self._posts.append(Post(method, path, headers, body,
                                    time.monotonic(), answer))
            self._changed.notify_all()
        if self.verbose:
            sys.stderr.write(f"fake-slack: {method} {path} -> {answer!r}\n"
                             f"  {body.decode('utf-8', 'replace')}\n")
        return answer

    def posts(self):
        """Returns every request received so far (a copy), oldest first."""
        with self._lock:
            return list(self._posts)

    def bodies(self):
        """Returns the parsed JSON bodies received so far."""
        return [p.json for p in self.posts()]

    def delivered(self):
        """Returns the requests answered with a 2xx."""
        return [p for p in self.posts()
                if p.status is not None and 200 <= p.status < 300]

    def pending_script(self):
        """Returns how many scripted answers are still queued."""
        with self._lock:
            return len(self._script)

    def wait_for(self, count, timeout=10.0):
        """Waits until at least `count` requests arrived; returns them all.

        Raises TimeoutError (naming what did arrive) after `timeout` s.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._posts) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"fake Slack got {len(self._posts)} of {count} "
                        f"request(s) within {timeout:g} s: {self._posts!r}")
                self._changed.wait(left)
            return list(self._posts)


def main():
    parser = argparse.ArgumentParser(description="A fake Slack incoming "
                                     "webhook that answers 200 ok.")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    slack = FakeSlack(port=args.port, verbose=True).start()
    print(f"fake Slack webhook at {slack.url()}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        slack.stop()


if __name__ == "__main__":
    main()

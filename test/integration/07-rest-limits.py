#!/usr/bin/env python3
"""HTTP limits: body over bodyLimitBytes -> 413 and close, header block over
headerLimitBytes -> 431, garbage -> 400, a stalled request -> 408, an idle
connection is closed after readTimeoutSeconds, more than maxConnections
connections -> 503 "too many connections"; butler answers ping after each."""

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

LIMIT = 1024
PING = b"GET /butlerPing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def check_rejected(port, data, status, message, what):
    """Sends raw `data`; checks one JSON error reply and that the server
    closed the connection."""
    reply, closed = h.raw_exchange(port, data)
    res, rest = h.parse_response(reply)
    h.check(res is not None, f"{what}: an HTTP response", repr(reply[:300]))
    h.check_error(res, status, message, what)
    h.check_eq(res.header("connection"), "close",
               f"{what}: the reply says Connection: close")
    h.check(closed and rest == b"", f"{what}: then the server closes the "
            "connection", f"closed={closed}, trailing {rest[:100]!r}")
    h.check_ping(port, f"ping works after {what}")


def test(ctx):
    port = h.free_port()
    cfg = h.base_config(port)
    cfg["Butler"]["restServerConfig"].update({
        "bodyLimitBytes": LIMIT, "headerLimitBytes": LIMIT,
        "readTimeoutSeconds": 1})
    butler = h.Butler(ctx.butler, cfg).start()
    # A second instance for the connection limit, so that connections of the
    # other checks cannot count against it.
    limited_port = h.free_port()
    limited_cfg = h.base_config(limited_port)
    limited_cfg["Butler"]["restServerConfig"]["maxConnections"] = 2
    limited = h.Butler(ctx.butler, limited_cfg, name="butler-max2").start()

    # -- body limit ------------------------------------------------------------
    body = b'{"topic": "butlertest/x", "message": "' + b"x" * 2000 + b'"}'
    head = (b"PUT /v4/mqttpublishmessage HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\n")
    check_rejected(port, head + b"Content-Length: %d\r\n\r\n" % len(body)
                   + body, 413, f"request body exceeds {LIMIT} bytes",
                   "a body over bodyLimitBytes (Content-Length) gets 413")
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    check_rejected(port, head + b"Transfer-Encoding: chunked\r\n\r\n" + chunked,
                   413, f"request body exceeds {LIMIT} bytes",
                   "a chunked body over bodyLimitBytes gets 413")
    # Exactly at the limit the body reaches the endpoint (MQTT is off here,
    # so the endpoint answers 503).
    exact = b'{"topic": "butlertest/x", "message": "y"}'
    exact = exact + b" " * (LIMIT - len(exact))
    res = h.http_request(port, "PUT", "/v4/mqttpublishmessage", body=exact)
    h.check(res.status == 503 and "mqttConfig.enable" in res.json["message"],
            "a body of exactly bodyLimitBytes passes the limit", repr(res))

    # -- header limit -----------------------------------------------------------
    check_rejected(port, b"GET /butlerPing HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   b"X-Pad: " + b"a" * 2000 + b"\r\n\r\n", 431,
                   f"request header exceeds {LIMIT} bytes",
                   "a header block over headerLimitBytes gets 431")
    many = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 40) for i in range(40))
    check_rejected(port, b"GET /butlerPing HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   + many + b"\r\n", 431,
                   f"request header exceeds {LIMIT} bytes",
                   "many small headers over headerLimitBytes get 431")
    check_rejected(port, b"GET /butlerPing?q=" + b"a" * 2000
                   + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 431,
                   f"request header exceeds {LIMIT} bytes",
                   "a request line over headerLimitBytes gets 431")

    # -- garbage -----------------------------------------------------------------
    def malformed(text):
        return text.startswith("malformed request")

    for data, what in (
            (b"\x00\x01\x02\xff garbage \xfe\r\n\r\n", "binary garbage"),
            (b"HELLO\r\n\r\n", "a request line without target and version"),
            (b"GET /butlerPing HTTP/1.1\r\nNo colon here\r\n\r\n",
             "a header line without a colon"),
            (b"GET /butlerPing HTTP/1.1\r\nHost: x\r\nContent-Length: abc"
             b"\r\n\r\n", "a non-numeric Content-Length"),
            (b"PUT /v4/mqttpublishmessage HTTP/1.1\r\nHost: x\r\n"
             b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", "a bad chunk size"),
    ):
        check_rejected(port, data, 400, malformed, f"{what} gets 400")

    # -- read timeout --------------------------------------------------------------
    # The three connections wait out the timeout side by side.
    stalled = h.raw_connect(port)
    stalled.sendall(b"GET /butlerPing HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    idle = h.raw_connect(port)
    kept = h.raw_connect(port)
    kept.sendall(PING)
    res = h.read_response(kept)
    h.check(res is not None and res.status == 200, "a keep-alive request is "
            "answered", repr(res))

    reply, closed = h.read_until_close(stalled, timeout=6)
    stalled.close()
    res, _ = h.parse_response(reply)
    h.check(res is not None and closed, "a stalled request is answered and "
            "closed after readTimeoutSeconds", repr(reply))
    h.check_error(res, 408, "request not received within the read timeout",
                  "a stalled request gets 408")

    reply, closed = h.read_until_close(idle, timeout=6)
    idle.close()
    h.check(closed and reply == b"", "a connection idle longer than "
            "readTimeoutSeconds is closed without a word",
            f"closed={closed}, {reply!r}")

    reply, closed = h.read_until_close(kept, timeout=6)
    kept.close()
    h.check(closed and reply == b"", "an idle keep-alive connection is "
            "closed after readTimeoutSeconds once its request was answered",
            f"closed={closed}, {reply!r}")
    h.check_ping(port, "ping works after the timeouts")

    # -- connection limit -------------------------------------------------------------
    held = [h.raw_connect(limited_port) for _ in range(2)]
    for i, sock in enumerate(held):
        sock.sendall(PING)
        res = h.read_response(sock)
        h.check(res is not None and res.status == 200,
                f"keep-alive connection {i + 1} of maxConnections 2 is served",
                repr(res))
    third = h.raw_connect(limited_port)
    reply, closed = h.read_until_close(third)
    third.close()
    res, _ = h.parse_response(reply)
    h.check(res is not None, "the third connection gets an HTTP answer",
            repr(reply))
    h.check_error(res, 503, "too many connections",
                  "the third connection gets 503 too many connections")
    h.check(closed, "the third connection is closed")
    held[0].sendall(PING)
    res = h.read_response(held[0])
    h.check(res is not None and res.status == 200, "the held connections "
            "are still served", repr(res))
    for sock in held:
        sock.close()

    def ping_ok():
        try:
            return h.http_request(limited_port, "GET", "/butlerPing").status \
                == 200
        except (OSError, ConnectionError):
            return False

    h.wait_until(ping_ok, "a ping once the held connections are closed")
    h.check(True, "ping works once the held connections are closed")

    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")
    h.check_eq(limited.stop(), 0, "the second butler exits 0 on SIGTERM")


if __name__ == "__main__":
    h.main(test)

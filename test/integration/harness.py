"""Shared helpers for butler's integration tests (Python standard library only).

Every test script runs the real `butler` binary against a real mosquitto
broker and real HTTP(S) clients, all on free loopback ports, and is started as

    python3 <script> --butler <path-to-butler-binary>

A script defines `test(ctx)` and ends with `harness.main(test)`. Checks go
through `check()`, `check_eq()` and `check_in()`, each printing one `ok` line;
the first failing check raises `CheckFailed`, after which `main` prints the
tail of every log file (butler, mosquitto, mosquitto_sub), kills every process
the harness started and exits 1. Waits poll a condition until a deadline
(`wait_until`), never sleep a fixed time.
"""

import argparse
import atexit
import ctypes
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from pathlib import Path

#: The repository root (this file is test/integration/harness.py).
REPO_ROOT = Path(__file__).resolve().parents[2]
#: The shipped example config.
EXAMPLE_CONFIG = REPO_ROOT / "deploy" / "butler.example.yaml"

#: Default time a wait may take before the check fails, seconds.
WAIT = 10.0


# -- checks ---------------------------------------------------------------------


class CheckFailed(AssertionError):
    """A check did not hold; the message says which and why."""


def check(condition, what, detail=""):
    """Prints `ok <what>` if `condition` holds, else raises CheckFailed."""
    if not condition:
        raise CheckFailed(f"{what}{': ' + str(detail) if detail else ''}")
    print(f"ok   {what}", flush=True)


def check_eq(actual, expected, what):
    """Checks `actual == expected`, showing both when it does not hold."""
    check(actual == expected, what,
          f"expected {expected!r}, got {actual!r}")


def check_in(needle, haystack, what):
    """Checks that `needle` occurs in `haystack` (a string or a list)."""
    shown = haystack if len(str(haystack)) < 2000 else str(haystack)[-2000:]
    check(needle in haystack, what, f"{needle!r} not found in {shown!r}")


def wait_until(predicate, what, timeout=WAIT, interval=0.02):
    """Polls `predicate` until it returns a truthy value, which is returned.

    Raises CheckFailed naming `what` when `timeout` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise CheckFailed(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# -- processes, logs and scratch directories ------------------------------------

_processes = []   # every Popen started by the harness
_logs = []        # (label, path) of every log file, printed on failure
_scratch = None   # this run's temporary directory


def _die_with_parent():
    """Makes the child get SIGKILL when the test process dies (Linux only)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: the atexit handler still kills children


def spawn(argv, label, log_path=None, env=None, stdout=None, cwd=None):
    """Starts `argv` in `cwd`; output goes to `log_path` (registered for
    failure dumps), or to `stdout` if given.

    Every spawned process is killed when the script ends.
    """
    log_file = None
    if stdout is None:
        log_file = open(log_path, "ab")
        stdout = log_file
        _logs.append((label, Path(log_path)))
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout,
                            stderr=log_file if log_file else subprocess.STDOUT,
                            env=env, cwd=cwd, preexec_fn=_die_with_parent)
    if log_file:
        log_file.close()  # the child holds its own descriptor
    _processes.append(proc)
    return proc


def end_process(proc, sig=signal.SIGTERM, timeout=5.0):
    """Sends `sig` and waits up to `timeout` s; kills it if it does not end.

    Returns the exit code, or None if it had to be killed.
    """
    if proc.poll() is not None:
        return proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def _kill_all():
    for proc in _processes:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if _scratch and not os.environ.get("BUTLER_TEST_KEEP"):
        shutil.rmtree(_scratch, ignore_errors=True)


atexit.register(_kill_all)


def scratch_dir(name):
    """Returns a new empty directory for `name` in this run's temp area."""
    global _scratch
    if _scratch is None:
        _scratch = tempfile.mkdtemp(prefix="butler-integ-")
    return Path(tempfile.mkdtemp(prefix=name + "-", dir=_scratch))


def tail(path, lines=40):
    """Returns the last `lines` lines of the file at `path`."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(text.splitlines()[-lines:])


def dump_logs():
    """Prints the tail of every registered log."""
    for label, path in _logs:
        print(f"---- last lines of {label} ({path}) ----")
        print(tail(path))
    print("---- end of logs ----", flush=True)


# -- ports ------------------------------------------------------------------------


def free_port():
    """Returns a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_accepts(port, host="127.0.0.1"):
    """Returns whether a TCP connect to `port` succeeds now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# -- mosquitto ----------------------------------------------------------------------


class Mosquitto:
    """A mosquitto broker on 127.0.0.1:`port`, restartable on the same port.

    With `persistent`, sessions and queued messages survive a restart (the
    database is written on SIGTERM and read on start).
    """

    def __init__(self, port=None, persistent=False):
        self.port = port or free_port()
        self.dir = scratch_dir("mosquitto")
        self.conf = self.dir / "mosquitto.conf"
        self.log_path = self.dir / "mosquitto.log"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            f"persistence {'true' if persistent else 'false'}",
            f"persistence_location {self.dir}/",
            "max_queued_messages 100000",
            # Started as root, mosquitto would switch to user "mosquitto",
            # which cannot write the persistence file in our temp dir.
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc = None

    def start(self, timeout=WAIT):
        """Starts the broker and waits until its port accepts connections."""
        self.proc = spawn(["mosquitto", "-c", str(self.conf)],
                          f"mosquitto :{self.port}", self.log_path)

        def up():
            if self.proc.poll() is not None:
                raise CheckFailed(f"mosquitto exited with {self.proc.returncode}"
                                  f":\n{tail(self.log_path)}")
            return port_accepts(self.port)

        wait_until(up, f"mosquitto to listen on port {self.port}", timeout)
        return self

    def stop(self, timeout=5.0):
        """Stops the broker (SIGTERM, which also saves the persistence db)."""
        if self.proc is not None:
            rc = end_process(self.proc, signal.SIGTERM, timeout)
            self.proc = None
            if rc is None:
                raise CheckFailed(f"mosquitto did not stop within {timeout} s")

    def restart(self):
        """Stops and starts the broker on the same port."""
        self.stop()
        return self.start()


class Subscriber:
    """`mosquitto_sub -v` on `topic`, collecting (topic, payload) in a thread.

    With `session_id`, it uses a persistent QoS 1 session (`-q 1 -c -i ID`),
    so the broker keeps messages for it while it is disconnected (including
    across a restart of a persistent broker). mosquitto_sub reconnects and
    resubscribes by itself when the broker goes away.
    """

    def __init__(self, port, topic, session_id=None, qos=None):
        """`topic` is one topic filter or a list of them."""
        self.port = port
        topics = [topic] if isinstance(topic, str) else list(topic)
        self.topic = " ".join(topics)
        # stdbuf: mosquitto_sub block-buffers its debug lines on a pipe.
        self.argv = ["stdbuf", "-oL", "mosquitto_sub", "-d", "-v",
                     "-h", "127.0.0.1", "-p", str(port)]
        for t in topics:
            self.argv += ["-t", t]
        if session_id:
            self.argv += ["-q", "1", "-c", "-i", session_id]
        elif qos is not None:
            self.argv += ["-q", str(qos)]
        self.dir = scratch_dir("subscriber")
        self.log_path = self.dir / "mosquitto_sub.log"
        self._lock = threading.Lock()
        self._messages = []
        self._subscribed = 0
        self.proc = None
        self._thread = None

    def start(self, timeout=WAIT):
        """Starts mosquitto_sub and waits until its subscription is acked."""
        before = self.subscribed_count()
        self.proc = spawn(self.argv, f"mosquitto_sub {self.topic}",
                          self.log_path, stdout=subprocess.PIPE)
        _logs.append((f"mosquitto_sub {self.topic} (debug and messages)",
                      self.log_path))
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        self.wait_subscribed(before + 1, timeout)
        return self

    def _read(self):
        # -d interleaves debug lines ("Client <id> ...", "Subscribed (mid: N):
        # Q") with "-v" message lines ("<topic> <payload>"); test topics never
        # start with "Client " or "Subscribed ".
        with open(self.log_path, "ab") as log:
            for raw in self.proc.stdout:
                log.write(raw)
                log.flush()
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                with self._lock:
                    if line.startswith("Subscribed (mid:"):
                        self._subscribed += 1
                    elif line.startswith("Client ") or not line:
                        pass
                    else:
                        topic, _, payload = line.partition(" ")
                        self._messages.append((topic, payload))

    def subscribed_count(self):
        """Returns how many SUBACKs mosquitto_sub has seen (one per connect)."""
        with self._lock:
            return self._subscribed

    def wait_subscribed(self, count=1, timeout=WAIT):
        """Waits until mosquitto_sub has subscribed `count` times in total."""
        def done():
            if self.proc.poll() is not None:
                raise CheckFailed(f"mosquitto_sub exited with "
                                  f"{self.proc.returncode}")
            return self.subscribed_count() >= count
        wait_until(done, f"mosquitto_sub to subscribe to {self.topic} "
                   f"({count} time(s))", timeout)

    def messages(self, topic=None):
        """Returns the (topic, payload) pairs received so far, or the
        payloads on `topic` if given."""
        with self._lock:
            if topic is None:
                return list(self._messages)
            return [p for t, p in self._messages if t == topic]

    def wait_for(self, condition, timeout=WAIT, topic=None, what=None):
        """Waits until `condition` holds and returns the messages.

        `condition` is a count (at least that many messages) or a predicate
        on the message list; with `topic`, only that topic's payloads count.
        """
        if isinstance(condition, int):
            count = condition
            condition = lambda msgs: len(msgs) >= count  # noqa: E731
            what = what or f"{count} message(s)"
        what = what or "the expected messages"
        where = f" on {topic}" if topic else ""
        try:
            wait_until(lambda: condition(self.messages(topic)),
                       f"{what}{where}", timeout)
        except CheckFailed as e:
            raise CheckFailed(f"{e}; received so far: {self.messages()!r}")
        return self.messages(topic)

    def stop(self):
        """Stops mosquitto_sub."""
        if self.proc is not None:
            end_process(self.proc, signal.SIGTERM, 5.0)
            self._thread.join(5.0)
            self.proc = None


def mosquitto_pub(port, topic, message, qos=0):
    """Publishes one message with mosquitto_pub; raises on failure."""
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port),
                    "-t", topic, "-m", message, "-q", str(qos)],
                   check=True, timeout=10, stdin=subprocess.DEVNULL)


# -- HTTP ---------------------------------------------------------------------------


class Response:
    """One HTTP response: status, headers (lower-case names), raw body and
    the body parsed as JSON (None when it is not JSON)."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body.decode("utf-8")) if body else None
        except (ValueError, UnicodeDecodeError):
            self.json = None

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return (f"Response({self.status}, {self.headers!r}, "
                f"{self.body[:300]!r})")


def _encode_body(body, headers):
    if body is None:
        return None
    if isinstance(body, (dict, list)):
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(body, ensure_ascii=False).encode("utf-8")
    if isinstance(body, str):
        return body.encode("utf-8")
    return body


def query(path, params):
    """Returns `path?k=v&...` with every value %-escaped (spaces as %20)."""
    return path + "?" + urllib.parse.urlencode(params,
                                               quote_via=urllib.parse.quote)


class HttpClient:
    """A keep-alive HTTP(S) client on one http.client connection.

    Requests reuse the connection while the server keeps it open;
    `local_port()` tells which TCP connection the last request used.
    """

    def __init__(self, port, ssl_context=None, host="127.0.0.1", timeout=10):
        if ssl_context is not None:
            self.conn = http.client.HTTPSConnection(host, port, timeout=timeout,
                                                    context=ssl_context)
        else:
            self.conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def request(self, method, path, body=None, headers=None):
        """Sends one request and returns its Response."""
        headers = dict(headers or {})
        data = _encode_body(body, headers)
        self.conn.request(method, path, body=data, headers=headers)
        res = self.conn.getresponse()
        payload = res.read()
        return Response(res.status,
                        {k.lower(): v for k, v in res.getheaders()}, payload)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def put(self, path, body=None, **kw):
        return self.request("PUT", path, body=body, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body=body, **kw)

    def local_port(self):
        """Returns the local port of the open connection (None if closed)."""
        sock = self.conn.sock
        return sock.getsockname()[1] if sock else None

    def close(self):
        self.conn.close()


def http_request(port, method, path, body=None, headers=None,
                 ssl_context=None, timeout=10):
    """Sends one request on a fresh connection and returns its Response."""
    client = HttpClient(port, ssl_context, timeout=timeout)
    try:
        return client.request(method, path, body, headers)
    finally:
        client.close()


def check_ping(port, what="butler still answers GET /butlerPing",
               ssl_context=None):
    """Checks that GET /butlerPing answers 200 with Butler's text."""
    res = http_request(port, "GET", "/butlerPing", ssl_context=ssl_context)
    check(res.status == 200 and res.json is not None
          and res.json.get("response") == "Butler reporting for duty",
          what, repr(res))


def check_error(res, status, message, what):
    """Checks a JSON error reply {"statusCode","error","message"}.

    `message` is the exact text, or a callable that judges the text.
    """
    body = res.json if isinstance(res.json, dict) else {}
    ok = (res.status == status and body.get("statusCode") == status
          and isinstance(body.get("error"), str) and body.get("error")
          and set(body) == {"statusCode", "error", "message"})
    if callable(message):
        ok = ok and message(body.get("message", ""))
    else:
        ok = ok and body.get("message") == message
    check(ok, what, f"expected {status} with message {message!r}, got {res!r}")


# -- raw sockets ----------------------------------------------------------------------


def raw_connect(port, timeout=5.0, ssl_context=None):
    """Returns a connected socket (TLS-wrapped with `ssl_context`)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if ssl_context is not None:
        sock = ssl_context.wrap_socket(sock, server_hostname="127.0.0.1")
    return sock


def read_until_close(sock, timeout=5.0):
    """Reads until the peer closes; returns (data, closed).

    `closed` is False if `timeout` s passed without the peer closing. A
    connection reset counts as closed.
    """
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, False
        except (ConnectionResetError, ssl.SSLError):
            return data, True
        if not chunk:
            return data, True
        data += chunk


def raw_exchange(port, data, timeout=5.0):
    """Sends `data` on a new connection and reads until the server closes.

    Returns (reply bytes, closed by the server).
    """
    with raw_connect(port, timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer and close before reading it all
        return read_until_close(sock, timeout)


def read_response(sock, timeout=5.0):
    """Reads one complete HTTP response from `sock`; returns it, or None if
    the peer closed or `timeout` s passed first."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        res, _ = parse_response(data)
        if res is not None:
            return res
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ConnectionResetError):
            return None
        if not chunk:
            return None
        data += chunk


def parse_response(data):
    """Parses one raw HTTP/1.x response (Content-Length framed).

    Returns (Response, rest of the bytes), or (None, data) if `data` does not
    start with a complete response.
    """
    head, sep, rest = data.partition(b"\r\n\r\n")
    if not sep or not head.startswith(b"HTTP/1."):
        return None, data
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if len(rest) < length:
        return None, data
    return Response(status, headers, rest[:length]), rest[length:]


# -- TLS ------------------------------------------------------------------------------


def make_certs(directory):
    """Makes a CA and a server certificate for 127.0.0.1/localhost with the
    openssl CLI. Returns a dict of paths: ca, server_cert, server_key."""
    d = Path(directory)

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True,
                       timeout=30)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    run("req", "-x509", *ec, "-nodes", "-days", "2", "-sha256",
        "-keyout", str(d / "ca-key.pem"), "-out", str(d / "ca.pem"),
        "-subj", "/CN=Butler integration test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-nodes", "-keyout", str(d / "server-key.pem"),
        "-out", str(d / "server.csr"), "-subj", "/CN=localhost")
    (d / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.pem"),
        "-CAkey", str(d / "ca-key.pem"), "-CAcreateserial", "-days", "2",
        "-sha256", "-out", str(d / "server.pem"),
        "-extfile", str(d / "server.ext"))
    return {"ca": str(d / "ca.pem"), "server_cert": str(d / "server.pem"),
            "server_key": str(d / "server-key.pem")}


def client_context(ca_file):
    """Returns an SSL context that verifies the server against `ca_file`."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.check_hostname = True
    return ctx


# -- butler -------------------------------------------------------------------------


def base_config(rest_port, mqtt_port=None):
    """Returns a config dict: REST on 127.0.0.1:`rest_port` with butlerping,
    apiListEnabledEndpoints and mqttPublishMessage on; MQTT to
    127.0.0.1:`mqtt_port` (off when None), reconnecting quickly."""
    mqtt = {"enable": mqtt_port is not None}
    if mqtt_port is not None:
        mqtt.update({"brokerHost": "127.0.0.1", "brokerPort": mqtt_port,
                     "reconnectMinMs": 50, "reconnectMaxMs": 500})
    return {
        "Butler": {
            "logLevel": "info",
            "restServerConfig": {"enable": True, "serverHost": "127.0.0.1",
                                 "serverPort": rest_port},
            "restServerEndpointsEnable": {"butlerping": True,
                                          "apiListEnabledEndpoints": True,
                                          "mqttPublishMessage": True},
            "mqttConfig": mqtt,
            "udpServerConfig": {"enable": False},
        }
    }


def write_config(config, path):
    """Writes a config dict as YAML (JSON is YAML); returns `path`."""
    Path(path).write_text(json.dumps(config, indent=2, ensure_ascii=False)
                          + "\n", encoding="utf-8")
    return Path(path)


class Butler:
    """The butler binary run with a config (a dict, written as YAML, or the
    path of an existing file), environment overrides `env` added to ours,
    logging to its own file.

    `rest_port` defaults to the config's serverPort; `ssl_context` is used to
    probe an HTTPS port.
    """

    def __init__(self, binary, config, env=None, rest_port=None,
                 ssl_context=None, name="butler"):
        self.binary = str(binary)
        self.name = name
        self.dir = scratch_dir(name)
        if isinstance(config, dict):
            self.config_path = write_config(config, self.dir / "butler.yaml")
            rest_port = rest_port or \
                config["Butler"]["restServerConfig"]["serverPort"]
        else:
            self.config_path = Path(config)
        self.rest_port = rest_port
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.ssl_context = ssl_context
        self.log_path = self.dir / "butler.log"
        self.proc = None

    def start(self, timeout=WAIT):
        """Starts butler and waits until its REST port answers HTTP."""
        self.proc = spawn([self.binary, "--config", str(self.config_path)],
                          f"{self.name} (REST :{self.rest_port})",
                          self.log_path, env=self.env, cwd=self.dir)

        def answers():
            if self.proc.poll() is not None:
                raise CheckFailed(f"{self.name} exited with "
                                  f"{self.proc.returncode} while starting:\n"
                                  f"{tail(self.log_path)}")
            try:
                http_request(self.rest_port, "GET", "/butlerPing",
                             ssl_context=self.ssl_context, timeout=2)
                return True
            except (OSError, http.client.HTTPException):
                return False

        wait_until(answers, f"{self.name} to answer on port {self.rest_port}",
                   timeout, interval=0.05)
        return self

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=5.0):
        """Waits for the process to end; returns the exit code.

        Raises CheckFailed (after killing it) if it runs past `timeout` s.
        """
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise CheckFailed(f"{self.name} did not exit within {timeout:g} s")

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Sends `sig` and returns the exit code; fails after `timeout` s."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit(timeout)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        """Returns the log written so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, text, timeout=WAIT, count=1):
        """Waits until `text` occurs `count` times in the log."""
        wait_until(lambda: self.log().count(text) >= count,
                   f"{count} x {text!r} in the {self.name} log", timeout)

    def client(self):
        """Returns a keep-alive HttpClient for the REST port."""
        return HttpClient(self.rest_port, self.ssl_context)


def run_cli(binary, *args, env=None, timeout=10):
    """Runs butler with `args`; returns CompletedProcess with text output."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([str(binary), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, env=full_env,
                          stdin=subprocess.DEVNULL)


# -- main ---------------------------------------------------------------------------


class Context:
    """What a test gets: the butler binary path."""

    def __init__(self, butler):
        self.butler = butler


def main(test):
    """Parses `--butler PATH`, runs `test(ctx)`, reports and exits."""
    parser = argparse.ArgumentParser(description=(sys.modules["__main__"]
                                                  .__doc__ or "").strip())
    parser.add_argument("--butler", required=True,
                        help="path of the butler binary under test")
    args = parser.parse_args()
    name = Path(sys.argv[0]).name
    binary = Path(args.butler).resolve()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        print(f"FAIL {name}: --butler {args.butler} is not an executable file")
        sys.exit(2)
    # ctest's timeout sends SIGTERM/SIGKILL; turn SIGTERM into a normal exit
    # so atexit kills the children (PDEATHSIG covers SIGKILL).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    try:
        test(Context(binary))
    except CheckFailed as e:
        print(f"FAIL {e}")
        dump_logs()
        print(f"FAIL {name} after {time.monotonic() - started:.1f} s")
        sys.exit(1)
    except Exception:
        traceback.print_exc()
        dump_logs()
        print(f"FAIL {name} (unexpected exception) after "
              f"{time.monotonic() - started:.1f} s")
        sys.exit(1)
    print(f"PASS {name} in {time.monotonic() - started:.1f} s")


# -- UDP log events and the fake Slack (used by scripts 12-19) ----------------

#: Test doubles shared by the integration scripts (fake_slack.py).
FAKES_DIR = REPO_ROOT / "test" / "fakes"


def free_udp_port(avoid=()):
    """Returns a UDP port on 127.0.0.1 that was free a moment ago and is not
    in `avoid`."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in avoid:
            return port


def send_udp(port, data, sock=None, host="127.0.0.1"):
    """Sends one datagram (str as UTF-8, or bytes) to `host`:`port`, from
    `sock` if given (to keep the source port), else from a fresh socket."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if sock is not None:
        sock.sendto(data, (host, port))
        return
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(data, (host, port))


def udp_config(rest_port, mqtt_port=None, task_port=None, session_port=None):
    """Returns base_config() with the UDP log-event server on 127.0.0.1, on
    free ports unless given; the ports are in
    cfg["Butler"]["udpServerConfig"]["portTaskFailure"] and
    ["portSessionConnectionEvents"]."""
    cfg = base_config(rest_port, mqtt_port)
    task_port = task_port or free_udp_port()
    session_port = session_port or free_udp_port(avoid=(task_port,))
    cfg["Butler"]["udpServerConfig"] = {
        "enable": True, "serverHost": "127.0.0.1",
        "portTaskFailure": task_port,
        "portSessionConnectionEvents": session_port}
    return cfg


def scheduler_datagram(kind, task_name="Reload of Sales",
                       app_name="Sales dashboard", host="sense-node-1",
                       user="CORP\\sa_scheduler",
                       task_id="e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e",
                       app_id="7552d9fc-d1bb-4975-9a38-18357de531ea",
                       timestamp="2024-05-01 10:11:12,123", level="ERROR",
                       execution_id="fb0f317d-da91-4b86-aafa-0174ae1e8c8f",
                       message="Max retries reached"):
    """Returns one of today's 11-field scheduler messages; `kind` is the
    type field as sent, e.g. "/scheduler-reload-failed/"."""
    return ";".join([kind, host, task_name, app_name, user, task_id, app_id,
                     timestamp, level, execution_id, message])


def load_fake_slack():
    """Returns the fake_slack module (test/fakes/fake_slack.py)."""
    if str(FAKES_DIR) not in sys.path:
        sys.path.insert(0, str(FAKES_DIR))
    import fake_slack  # noqa: E402 - found through FAKES_DIR
    return fake_slack


def wait_posts(slack, count, what, timeout=WAIT):
    """Waits until the fake Slack `slack` got `count` requests; returns them
    all. Fails the check naming `what` on a timeout."""
    try:
        return slack.wait_for(count, timeout)
    except TimeoutError as e:
        raise CheckFailed(f"waiting for {what}: {e}")


# -- Qlik Sense: certificates, the fake QRS and Engine (scripts 20-27) --------

#: The X-Qlik-User Butler sends to QRS and the Engine in the Sense scripts.
SENSE_USER = "UserDirectory=INTERNAL;UserId=sa_butler"
#: The common name of Butler's client certificate.
CLIENT_CN = "butler-client"
#: The common name of the client certificate signed by the other CA.
INTRUDER_CN = "intruder"
#: Every endpoint flag of the Sense features.
SENSE_FLAGS = ("senseQRSPing", "senseStartTask", "senseListApps",
               "senseAppDump", "senseAppReload")


def _openssl(*args, cwd=None):
    subprocess.run(["openssl", *args], check=True, capture_output=True,
                   timeout=30, cwd=cwd)


def _make_ca(d, name):
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-sha256", "-keyout", str(d / f"{name}-key.pem"),
             "-out", str(d / f"{name}.pem"), "-subj", f"/CN=Butler test {name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def _make_leaf(d, ca, name, cn, usage, san=None):
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(d / f"{name}-key.pem"),
             "-out", str(d / f"{name}.csr"), "-subj", f"/CN={cn}")
    ext = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature",
           f"extendedKeyUsage={usage}"]
    if san:
        ext.append(f"subjectAltName={san}")
    (d / f"{name}.ext").write_text("\n".join(ext) + "\n")
    _openssl("x509", "-req", "-in", str(d / f"{name}.csr"),
             "-CA", str(d / f"{ca}.pem"), "-CAkey", str(d / f"{ca}-key.pem"),
             "-CAcreateserial", "-days", "2", "-sha256",
             "-out", str(d / f"{name}.pem"), "-extfile", str(d / f"{name}.ext"))


def make_sense_certs(directory):
    """Makes, with the openssl CLI, what a Sense site and Butler hold: a CA
    ("ca"), a server certificate for 127.0.0.1/localhost ("server",
    "server_key"), Butler's client certificate with CN `CLIENT_CN`
    ("client", "client_key"), and a second CA ("other_ca") with a client
    certificate (CN `INTRUDER_CN`: "intruder", "intruder_key") and a server
    certificate for 127.0.0.1 ("other_server", "other_server_key").
    Returns a dict of those paths (str)."""
    d = Path(directory)
    _make_ca(d, "ca")
    _make_leaf(d, "ca", "server", "localhost", "serverAuth",
               "DNS:localhost,IP:127.0.0.1")
    _make_leaf(d, "ca", "client", CLIENT_CN, "clientAuth")
    _make_ca(d, "other-ca")
    _make_leaf(d, "other-ca", "intruder", INTRUDER_CN, "clientAuth")
    _make_leaf(d, "other-ca", "other-server", "localhost", "serverAuth",
               "DNS:localhost,IP:127.0.0.1")
    names = {"ca": "ca", "server": "server", "server_key": "server-key",
             "client": "client", "client_key": "client-key",
             "other_ca": "other-ca", "intruder": "intruder",
             "intruder_key": "intruder-key", "other_server": "other-server",
             "other_server_key": "other-server-key"}
    return {k: str(d / f"{v}.pem") for k, v in names.items()}


def _load_fake(name):
    if str(FAKES_DIR) not in sys.path:
        sys.path.insert(0, str(FAKES_DIR))
    return __import__(name)


def load_fake_qrs():
    """Returns the fake_qrs module (test/fakes/fake_qrs.py)."""
    return _load_fake("fake_qrs")


def load_fake_engine():
    """Returns the fake_engine module (test/fakes/fake_engine.py)."""
    return _load_fake("fake_engine")


class _Stoppable:
    """Stops fakes (in-process servers) when the script ends."""

    items = []

    @classmethod
    def add(cls, fake):
        cls.items.append(fake)
        return fake

    @classmethod
    def stop_all(cls):
        for fake in reversed(cls.items):
            try:
                fake.stop()
            except Exception:  # noqa: BLE001 - best effort at exit
                pass
        cls.items.clear()


atexit.register(_Stoppable.stop_all)


def start_fake_qrs(certs, server="server", ca="ca", data=None):
    """Starts a fake QRS (in this process) with the server certificate
    `server` ("server" or "other_server") that accepts client certificates
    signed by `ca`; it is stopped when the script ends. Returns it."""
    fq = load_fake_qrs()
    fake = fq.FakeQrs(certs[server], certs[server + "_key"], certs[ca],
                      data=data)
    return _Stoppable.add(fake.start())


def start_fake_engine(certs, server="server", ca="ca", data=None,
                      reload_ms=None):
    """Starts a fake Engine (in this process, quiet) with the server
    certificate `server` that accepts client certificates signed by `ca`;
    stopped when the script ends. Returns it."""
    fe = load_fake_engine()
    fake = fe.FakeEngine(certs[server], certs[server + "_key"], certs[ca],
                         data=data, reload_ms=reload_ms, verbose=False)
    return _Stoppable.add(fake.start())


def sense_config(rest_port, certs, qrs_port=None, engine_port=None,
                 flags=SENSE_FLAGS, mqtt_port=None, client="client",
                 qrs_timeout=5, engine_timeout=5, reject_unauthorized=True):
    """Returns base_config() with the Sense endpoint `flags` on, Butler's
    client certificate `client` ("client" or "intruder") and, for the ports
    given, configQRS / configEngine on 127.0.0.1 over TLS with X-Qlik-User
    `SENSE_USER`, rejectUnauthorized and the request timeouts (seconds)."""
    cfg = base_config(rest_port, mqtt_port)
    b = cfg["Butler"]
    for flag in flags:
        b["restServerEndpointsEnable"][flag] = True
    b["cert"] = {"clientCert": certs[client],
                 "clientCertKey": certs[client + "_key"],
                 "clientCertCA": certs["ca"]}
    headers = {"static": [{"name": "X-Qlik-User", "value": SENSE_USER}]}
    if qrs_port is not None:
        b["configQRS"] = {"host": "127.0.0.1", "port": qrs_port,
                          "useSSL": True, "headers": headers,
                          "rejectUnauthorized": reject_unauthorized,
                          "requestTimeoutSeconds": qrs_timeout}
    if engine_port is not None:
        b["configEngine"] = {"host": "127.0.0.1", "port": engine_port,
                             "useSSL": True, "headers": headers,
                             "rejectUnauthorized": reject_unauthorized,
                             "requestTimeoutSeconds": engine_timeout}
    return cfg


def wait_qrs_calls(qrs, count, what, timeout=WAIT):
    """Waits until the fake QRS got `count` calls in total; returns them."""
    try:
        return qrs.wait_for_calls(count, timeout)
    except TimeoutError as e:
        raise CheckFailed(f"waiting for {what}: {e}; calls: "
                          f"{[(c['method'], c['path']) for c in qrs.calls()]}")


def wait_engine_closed(engine, count, what, timeout=WAIT):
    """Waits until the fake Engine saw `count` connections that have all
    ended; returns the records."""
    def done(calls):
        return len(calls) >= count and all(not c.get("open") for c in calls)
    if not engine.wait_for(done, timeout):
        raise CheckFailed(f"timed out waiting for {what}: "
                          f"{engine.calls()!r}"[:3000])
    return engine.calls()


# -- systemd notifications (used by scripts 31 and 32) --------------------------


class NotifySocket:
    """A systemd-style notification socket ($NOTIFY_SOCKET): records every
    state line with its arrival time (time.monotonic())."""

    def __init__(self, name):
        self.path = scratch_dir(name) / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.sock.settimeout(0.1)
        self.lines = []  # (arrival time, line)
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.monotonic()
            with self.lock:
                for line in data.decode().splitlines():
                    self.lines.append((now, line))

    def all_lines(self):
        """Every line so far, in order."""
        with self.lock:
            return [x for _, x in self.lines]

    def times(self, line):
        """When `line` arrived, each time."""
        with self.lock:
            return [t for t, x in self.lines if x == line]

    def count(self, line):
        return len(self.times(line))

    def states(self):
        """The READY=1 and RELOADING=1 lines so far, in order."""
        return [x for x in self.all_lines() if x in ("READY=1", "RELOADING=1")]

    def env(self, watchdog_usec=None):
        """The environment that points Butler at this socket (and sets its
        watchdog period)."""
        env = {"NOTIFY_SOCKET": str(self.path)}
        if watchdog_usec is not None:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        return env

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()

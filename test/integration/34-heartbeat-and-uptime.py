#!/usr/bin/env python3
"""Butler.heartbeat and Butler.uptimeMonitor on the real binary.

A receiver on loopback (http.server in a thread) counts the heartbeat GETs:
the first comes at start and then one per `frequency`. When it answers 500
or is gone (connection refused), each failed ping is counted in /metrics
(butler_heartbeat_pings_total{outcome="failed"}) and logged at warn for the
first of a run and every 10th only; Butler keeps serving REST and MQTT;
when it answers again, that is logged once at info. The ping URL's path
(a monitor's token) never reaches the log.

The uptime monitor logs one line per `frequency` at its logLevel with the
uptime, RSS, heap and the events handled (a UDP task event accepted, MQTT
messages published). At logLevel verbose it is written only while
Butler.logLevel lets debug through (a SIGHUP that lowers logLevel brings it).
A bad frequency text or remoteURL stops start-up naming the key."""

import http.server
import re
import signal
import sys
import threading
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

TOKEN = "4f0c2d1e-beat-token"
TOPIC = "butlertest/34/msg"
UPTIME = re.compile(r"(\w+)\s+uptime-monitor reports Butler up \d+ days? "
                    r"\d\d:\d\d:\d\d, rss \d+\.\d MiB, heap \d+\.\d MiB, "
                    r"UDP events accepted (\d+|n/a), MQTT messages published "
                    r"(\d+|n/a)")


class Receiver:
    """A monitoring service stand-in: counts GETs, answers `status`."""

    def __init__(self):
        self.lock = threading.Lock()
        self.gets = []  # (time.monotonic(), path)
        self.status = 200
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                with receiver.lock:
                    receiver.gets.append((time.monotonic(), self.path))
                    status = receiver.status
                body = b"OK" if status == 200 else b"broken"
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass  # quiet

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def count(self):
        with self.lock:
            return len(self.gets)

    def all(self):
        with self.lock:
            return list(self.gets)

    def answer(self, status):
        with self.lock:
            self.status = status

    def wait_gets(self, count, what, timeout=h.WAIT):
        h.wait_until(lambda: self.count() >= count, what, timeout)

    def stop(self):
        """Closes the listening socket: new connections are refused."""
        self.server.shutdown()
        self.server.server_close()


def metric(port, name, labels=""):
    """Returns the value of one sample in GET /metrics (0 when absent)."""
    res = h.http_request(port, "GET", "/metrics")
    if res.status != 200:
        raise h.CheckFailed(f"GET /metrics answered {res!r}")
    for line in res.body.decode().splitlines():
        if line.startswith(name + labels + " "):
            return float(line.split(" ")[1])
    return 0.0


def uptime_lines(butler):
    return [m.groups() for m in UPTIME.finditer(butler.log())]


def test_heartbeat_and_uptime(ctx, broker):
    receiver = Receiver()
    port = h.free_port()
    cfg = h.udp_config(port, broker.port)
    url = f"http://127.0.0.1:{receiver.port}/ping/{TOKEN}?source=butler"
    cfg["Butler"]["heartbeat"] = {"enable": True, "remoteURL": url,
                                  "frequency": "every 1 second"}
    cfg["Butler"]["uptimeMonitor"] = {"enable": True,
                                      "frequency": "Every 1 Seconds",
                                      "logLevel": "info",
                                      "storeInInfluxdb": {"enable": False}}
    butler = h.Butler(ctx.butler, cfg, name="butler-heartbeat").start()
    h.check_in("config Butler.uptimeMonitor.storeInInfluxdb: not used by "
               "this Butler, ignored", butler.log(),
               "uptimeMonitor.storeInInfluxdb is accepted with a warning")

    # -- the heartbeat, answered ------------------------------------------------
    receiver.wait_gets(1, "the first heartbeat GET", timeout=5)
    receiver.wait_gets(4, "three more heartbeat GETs, one per second")
    gets = receiver.all()
    h.check(all(path == f"/ping/{TOKEN}?source=butler" for _, path in gets),
            "each GET asks for remoteURL's path and query",
            [p for _, p in gets])
    gaps = [b[0] - a[0] for a, b in zip(gets, gets[1:])]
    h.check(all(0.5 < g < 4 for g in gaps), "the GETs come about once per "
            "second (frequency: every 1 second)", gaps)
    h.wait_until(lambda: metric(port, "butler_heartbeat_pings_total",
                                '{outcome="ok"}') >= 3,
                 "butler_heartbeat_pings_total{outcome=\"ok\"} >= 3")

    # -- the uptime line, with the events handled ---------------------------------
    sub = h.Subscriber(broker.port, "qliksense/task_failure").start()
    h.send_udp(cfg["Butler"]["udpServerConfig"]["portTaskFailure"],
               "sense-node-1;Reload of Sales;Sales dashboard;sa_scheduler")
    sub.wait_for(1, topic="qliksense/task_failure", what="the task failure")
    res = h.http_request(port, "PUT", "/v4/mqttpublishmessage",
                         body={"topic": TOPIC, "message": "x"})
    h.check_eq(res.status, 201, "a REST publish is answered 201")
    h.wait_until(lambda: any(u == "1" and m not in ("n/a", "0")
                             and int(m) >= 2
                             for _, u, m in uptime_lines(butler)),
                 "an uptime line counting the UDP event and the MQTT "
                 "publishes")
    lines = uptime_lines(butler)
    h.check(all(level == "info" for level, _, _ in lines),
            "the uptime line is written at uptimeMonitor.logLevel (info)",
            lines)
    h.check(2 <= len(lines), "an uptime line per second", lines)

    # -- the receiver answers 500 ---------------------------------------------
    receiver.answer(500)
    butler.wait_log(f"heartbeat-pinger could not ping "
                    f"http://127.0.0.1:{receiver.port}: it answered 500 "
                    f"(failure 1 in a row")
    h.check_ping(port, "Butler serves REST while the monitor answers 500")
    failed = metric(port, "butler_heartbeat_pings_total", '{outcome="failed"}')
    h.check(failed >= 1, "a 500 counts as a failed ping in /metrics", failed)
    seen = receiver.count()
    receiver.wait_gets(seen + 2, "the pings going on while they fail")
    receiver.answer(200)
    butler.wait_log(f"heartbeat-pinger reaches "
                    f"http://127.0.0.1:{receiver.port} again after")
    receiver.wait_gets(receiver.count() + 2, "two more answered pings")
    h.check_eq(butler.log().count("again after"), 1,
               "only the first ping that works again is logged at info")

    # -- the receiver is gone: connection refused ----------------------------------
    before = butler.log().count("heartbeat-pinger could not ping")
    receiver.stop()
    butler.wait_log("heartbeat-pinger could not ping", count=before + 1)
    line = butler.log().split("heartbeat-pinger could not ping")[-1]
    line = line.split("\n")[0]
    h.check("(failure 1 in a row" in line and "it answered" not in line,
            "a refused connection is a failed ping, logged at warn", line)
    h.check_ping(port, "Butler serves REST while the monitor is down")
    res = h.http_request(port, "PUT", "/v4/mqttpublishmessage",
                         body={"topic": TOPIC, "message": "still here"})
    h.check_eq(res.status, 201, "MQTT publishes work while the monitor is "
               "down")
    butler.wait_log("(failure 10 in a row", timeout=20)
    h.check("(failure 2 in a row" not in butler.log()
            and "(failure 9 in a row" not in butler.log(),
            "failures between the 1st and the 10th are counted, not logged")
    h.check(metric(port, "butler_heartbeat_failures_in_a_row") >= 10,
            "butler_heartbeat_failures_in_a_row counts the run")
    h.check(TOKEN not in butler.log(), "the ping URL's token is not logged")
    h.check_ping(port)
    h.check_eq(butler.stop(), 0, "butler exits 0")


def test_uptime_level_follows_log_level(ctx):
    """uptimeMonitor.logLevel verbose is debug: no line at logLevel info,
    the line once a reload lowers logLevel to debug. A heartbeat to a
    closed port from the start does not keep Butler from serving."""
    port = h.free_port()
    cfg = h.base_config(port)
    closed = h.free_port()
    cfg["Butler"]["heartbeat"] = {"enable": True,
                                  "remoteURL": f"http://127.0.0.1:{closed}/p",
                                  "frequency": "every 1 second"}
    cfg["Butler"]["uptimeMonitor"] = {"enable": True,
                                      "frequency": "every 1 second",
                                      "logLevel": "verbose"}
    butler = h.Butler(ctx.butler, cfg, name="butler-verbose").start()
    h.check_ping(port, "Butler starts and serves with the monitor down")
    # The failed pings tell the time: 3 of them are 2 s or more.
    h.wait_until(lambda: metric(port, "butler_heartbeat_pings_total",
                                '{outcome="failed"}') >= 3,
                 "three failed pings")
    h.check_eq(uptime_lines(butler), [], "at logLevel info, an uptime line at "
               "verbose is not written")
    cfg["Butler"]["logLevel"] = "debug"
    h.write_config(cfg, butler.config_path)
    butler.send_signal(signal.SIGHUP)
    h.wait_until(lambda: uptime_lines(butler), "an uptime line after the "
                 "reload to logLevel debug")
    h.check(all(level == "debug" for level, _, _ in uptime_lines(butler)),
            "verbose is written at debug", uptime_lines(butler))
    h.check_ping(port)
    h.check_eq(butler.stop(), 0, "butler exits 0")


def test_bad_settings(ctx):
    tmp = h.scratch_dir("bad-heartbeat")
    cases = [
        ({"heartbeat": {"enable": True, "remoteURL": "http://m/p",
                        "frequency": "every day"}},
         'error: Butler.heartbeat.frequency: expected "every N seconds", '
         '"every N minutes" or "every N hours", got "every day"'),
        ({"heartbeat": {"frequency": "every 0 seconds"}},
         'error: Butler.heartbeat.frequency: expected an interval from 1 '
         'second to 365 days, got "every 0 seconds"'),
        ({"heartbeat": {"enable": True, "remoteURL": "monitor/ping"}},
         'error: Butler.heartbeat.remoteURL: expected an http:// or https:// '
         'URL with a host name, got "monitor/ping"'),
        ({"heartbeat": {"enable": True}},
         "error: Butler.heartbeat.remoteURL: missing (required when "
         "Butler.heartbeat.enable is true)"),
        ({"uptimeMonitor": {"frequency": "at 10:00"}},
         'error: Butler.uptimeMonitor.frequency: expected "every N seconds", '
         '"every N minutes" or "every N hours", got "at 10:00"'),
        ({"uptimeMonitor": {"logLevel": "chatty"}},
         "error: Butler.uptimeMonitor.logLevel: expected one of silly, debug, "
         'verbose, info, warn, error, got "chatty"'),
    ]
    for i, (section, error) in enumerate(cases):
        cfg = h.base_config(h.free_port())
        cfg["Butler"].update(section)
        path = h.write_config(cfg, tmp / f"bad-{i}.yaml")
        r = h.run_cli(ctx.butler, "--config", path)
        h.check_eq(r.returncode, 1, f"{section} stops start-up")
        h.check_in(error, r.stderr.splitlines(), f"{section} is reported "
                   "with its key")


def test(ctx):
    broker = h.Mosquitto().start()
    test_bad_settings(ctx)
    test_heartbeat_and_uptime(ctx, broker)
    test_uptime_level_follows_log_level(ctx)


if __name__ == "__main__":
    h.main(test)

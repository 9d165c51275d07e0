#!/usr/bin/env python3
"""Health, readiness and systemd notifications on the real binary.

A healthy Butler (MQTT to a real mosquitto, UDP on free ports), run with
NOTIFY_SOCKET (a datagram socket this script listens on) and WATCHDOG_USEC=1 s:
GET /healthz answers 200 {"status":"ok"}; GET /readyz answers 200 with
{"ready":true,"checks":[...]} naming config, mqtt-link, udp-ingest and
http-ingress, each ok with an ISO 8601 "since"; READY=1 arrives once, after
which WATCHDOG=1 arrives at least every half watchdog period; the probes
answer whatever restServerEndpointsEnable says; SIGTERM sends STOPPING=1 and
exits 0. With Butler.dockerHealthCheck on, GET /health answers 200 on its
own port (plain HTTP), which serves nothing else (butlerPing there is 404),
and the REST port has no /health.

The same with the broker stopped: /readyz answers 503 with the mqtt-link
check failing ("not connected to the MQTT broker"), READY=1 is not sent, the
watchdog is still fed (not ready is not unhealthy), and once the broker is
back READY=1 arrives and /readyz answers 200.

A Butler whose UDP port is held by another socket: udp-ingest fails on every
start; past Butler.supervisor.maxRestarts (2) the supervisor gives up, logs
it, /readyz answers 503 naming udp-ingest and the failure count, READY=1 is
never sent, WATCHDOG=1 stops, and the other endpoints keep answering."""

import json
import re
import socket
import sys
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

WATCHDOG_USEC = 1_000_000


def readyz(port):
    res = h.http_request(port, "GET", "/readyz")
    return res, json.loads(res.body)


def check_by_name(body, name):
    return next((c for c in body["checks"] if c["name"] == name), None)


def healthy_service(ctx):
    broker = h.Mosquitto().start()
    port = h.free_port()
    cfg = h.udp_config(port, broker.port)
    # Only butlerPing on: the probes are not endpoint flags.
    cfg["Butler"]["restServerEndpointsEnable"] = {"butlerping": True}
    cfg["Butler"]["supervisor"] = {"heartbeatIntervalMs": 200}
    docker_port = h.free_port()
    cfg["Butler"]["dockerHealthCheck"] = {"enable": True,
                                          "port": docker_port}
    notify = h.NotifySocket("notify-healthy")
    butler = h.Butler(ctx.butler, cfg, env=notify.env(WATCHDOG_USEC),
                      name="butler-healthy").start()

    h.wait_until(lambda: notify.count("READY=1") == 1, "READY=1")
    res = h.http_request(port, "GET", "/healthz")
    h.check_eq((res.status, json.loads(res.body)), (200, {"status": "ok"}),
               "GET /healthz answers 200 {\"status\":\"ok\"}")
    res, body = readyz(port)
    h.check_eq((res.status, body["ready"]), (200, True),
               "GET /readyz answers 200 and ready once READY=1 went out")
    names = [c["name"] for c in body["checks"]]
    for name in ("config", "mqtt-link", "udp-ingest", "http-ingress"):
        h.check_in(name, names, f"/readyz lists the {name} check")
    h.check(all(c["ok"] for c in body["checks"]), "every check is ok",
            body)
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    h.check(all(iso.match(c["since"]) for c in body["checks"]),
            "every check says since when, in ISO 8601 UTC", body)
    h.check_eq(check_by_name(body, "udp-ingest")["detail"], "running",
               "a running actor's detail")
    res = h.http_request(docker_port, "GET", "/health")
    h.check_eq((res.status, json.loads(res.body)), (200, {"status": "ok"}),
               "GET /health answers 200 on the dockerHealthCheck port")
    h.check_eq(h.http_request(docker_port, "GET", "/butlerPing").status, 404,
               "the dockerHealthCheck port serves no REST endpoint")
    h.check_eq(h.http_request(port, "GET", "/health").status, 404,
               "the REST port has no /health")

    # The watchdog: at least every half period while healthy.
    start = time.monotonic()
    time.sleep(2.0)
    beats = [t for t in notify.times("WATCHDOG=1") if t >= start]
    h.check(len(beats) >= 4, "WATCHDOG=1 at least every 500 ms over 2 s",
            f"{len(beats)} beats")
    gaps = [b - a for a, b in zip(beats, beats[1:])]
    h.check(max(gaps) <= 0.5 * WATCHDOG_USEC / 1e6 + 0.15,
            "no gap between WATCHDOG=1 longer than half the period",
            f"gaps {[round(g, 3) for g in gaps]}")
    h.check_eq(notify.count("READY=1"), 1, "READY=1 went out once")

    # The broker goes away: not ready, still healthy.
    broker.stop()
    h.wait_until(lambda: readyz(port)[0].status == 503,
                 "/readyz to answer 503 without the broker")
    res, body = readyz(port)
    link = check_by_name(body, "mqtt-link")
    h.check(not body["ready"] and not link["ok"]
            and link["detail"].startswith("not connected to the MQTT broker"),
            "/readyz names the mqtt-link check and why it fails", body)
    h.check(all(c["ok"] for c in body["checks"] if c["name"] != "mqtt-link"),
            "the other checks stay ok", body)
    before = notify.count("WATCHDOG=1")
    time.sleep(1.0)
    h.check(notify.count("WATCHDOG=1") > before,
            "the watchdog is still fed while the broker is away")
    h.check_eq(h.http_request(port, "GET", "/healthz").status, 200,
               "/healthz stays 200 while not ready")
    broker.start()
    h.wait_until(lambda: readyz(port)[0].status == 200,
                 "/readyz to answer 200 once the broker is back")

    butler.send_signal(15)
    h.check_eq(butler.wait_exit(10), 0, "butler exits 0 on SIGTERM")
    h.check(notify.count("STOPPING=1") == 1, "STOPPING=1 on shutdown")
    stop_at = notify.times("STOPPING=1")[0]
    h.check(all(t <= stop_at for t in notify.times("WATCHDOG=1")),
            "no WATCHDOG=1 after STOPPING=1")
    notify.close()
    broker.stop()


def held_port(ctx):
    port = h.free_port()
    task_port = h.free_udp_port()
    session_port = h.free_udp_port(avoid=(task_port,))
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind(("127.0.0.1", task_port))
    cfg = h.udp_config(port, None, task_port, session_port)
    cfg["Butler"]["supervisor"] = {"maxRestarts": 2,
                                   "restartBackoffMinMs": 50,
                                   "heartbeatIntervalMs": 200}
    notify = h.NotifySocket("notify-held")
    butler = h.Butler(ctx.butler, cfg, env=notify.env(WATCHDOG_USEC),
                      name="butler-held-port").start()
    butler.wait_log("supervisor gives up on udp-ingest")
    gave_up = time.monotonic()
    res, body = readyz(port)
    udp = check_by_name(body, "udp-ingest")
    h.check_eq((res.status, body["ready"], udp["ok"]), (503, False, False),
               "/readyz answers 503 with the udp-ingest check failing")
    h.check_in("failed 3 times within 60 s", udp["detail"],
               "the check says how often it failed")
    h.check_in(str(task_port), udp["detail"],
               "the check names the port it could not bind")
    h.check(all(c["ok"] for c in body["checks"] if c["name"] != "udp-ingest"),
            "only udp-ingest fails", body)
    h.check_ping(port, "the REST API keeps answering past the give-up")
    h.check_eq(h.http_request(port, "GET", "/healthz").status, 200,
               "/healthz stays 200: the process is alive")
    time.sleep(1.5)
    late = [t for t in notify.times("WATCHDOG=1") if t > gave_up + 0.3]
    h.check_eq(late, [], "no WATCHDOG=1 once udp-ingest is past its limit")
    h.check_eq(notify.count("READY=1"), 0, "READY=1 was never sent")
    h.check_eq(butler.log().count("supervisor gives up on udp-ingest"), 1,
               "the give-up is logged once")
    h.check_eq(butler.stop(), 0, "butler still exits 0 on SIGTERM")
    holder.close()
    notify.close()


def test(ctx):
    healthy_service(ctx)
    held_port(ctx)


if __name__ == "__main__":
    h.main(test)

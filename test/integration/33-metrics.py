#!/usr/bin/env python3
"""GET /metrics on the real binary (UDP ingest, MQTT to a real mosquitto).

The output passes `promtool check metrics` (Debian's prometheus package) and
has the Prometheus text Content-Type; it exposes the families every part of
Butler reports (actor states and restarts, readiness, UDP, routing, MQTT,
active users, HTTP requests with a latency histogram, process figures, build
info). Sending N valid task-failure datagrams with distinct execution ids
raises butler_udp_datagrams_accepted_total by exactly N and
butler_events_routed_total{sink="mqtt-link"} by N; the same datagram again
raises butler_udp_datagrams_rejected_total{reason="duplicate"} by 1; a
malformed one raises {reason="field_count"} by 1; K pings raise
butler_http_requests_total{route="butler_ping",status="200"} by exactly K and
an unknown route counts as route="unmatched", status 404.

With Butler.prometheus.port set, /metrics is served there (plain HTTP) and
the REST port answers 404 for it; with Butler.prometheus.enable false no
port serves it."""

import re
import sys
import subprocess
import uuid
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

N = 250
K = 7
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def scrape(port):
    res = h.http_request(port, "GET", "/metrics")
    h.check_eq(res.status, 200, "GET /metrics answers 200")
    res.text = res.body.decode("utf-8")
    return res


def parse(text):
    """Returns {(name, labels text): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        h.check(m is not None, "every sample line parses", line)
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def value(samples, name, labels=""):
    return samples.get((name, labels), 0.0)


def promtool_check(text, what):
    r = subprocess.run(["promtool", "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=30)
    h.check_eq((r.returncode, r.stdout + r.stderr), (0, ""),
               f"promtool check metrics accepts {what}")


def counted_service(ctx):
    broker = h.Mosquitto().start()
    port = h.free_port()
    cfg = h.udp_config(port, broker.port)
    task_port = cfg["Butler"]["udpServerConfig"]["portTaskFailure"]
    butler = h.Butler(ctx.butler, cfg).start()
    h.wait_until(lambda: value(parse(scrape(port).text), "butler_ready") == 1,
                 "butler_ready to be 1")

    res = scrape(port)
    h.check_eq(res.header("content-type"),
               "text/plain; version=0.0.4; charset=utf-8",
               "the Prometheus text Content-Type")
    promtool_check(res.text, "the first scrape")
    families = set(re.findall(r"^# TYPE (\S+) ", res.text, re.M))
    for name in ("butler_actor_up", "butler_actor_restarts_total",
                 "butler_actor_given_up", "butler_ready",
                 "butler_udp_datagrams_received_total",
                 "butler_udp_datagrams_accepted_total",
                 "butler_udp_datagrams_rejected_total",
                 "butler_udp_events_shed_total",
                 "butler_udp_kernel_drops_total",
                 "butler_udp_events_in_flight",
                 "butler_events_routed_total", "butler_events_dropped_total",
                 "butler_mqtt_connected", "butler_mqtt_publishes_total",
                 "butler_mqtt_publish_failures_total",
                 "butler_mqtt_backlog_messages",
                 "butler_active_users", "butler_session_events_total",
                 "butler_http_requests_total",
                 "butler_http_request_duration_seconds",
                 "butler_process_resident_memory_bytes",
                 "butler_process_cpu_seconds_total",
                 "butler_process_open_fds", "butler_process_threads",
                 "butler_process_uptime_seconds", "butler_build_info"):
        h.check_in(name, families, f"/metrics has the {name} family")
    before = parse(res.text)
    h.check_eq(value(before, "butler_mqtt_connected"), 1.0,
               "butler_mqtt_connected is 1")
    h.check_eq(value(before, "butler_actor_up", '{actor="udp-ingest"}'), 1.0,
               "butler_actor_up{actor=\"udp-ingest\"} is 1")

    # N distinct task failures, one duplicate, one malformed datagram.
    ids = [str(uuid.uuid4()) for _ in range(N)]
    for exec_id in ids:
        h.send_udp(task_port, h.scheduler_datagram(
            "/scheduler-reload-failed/", execution_id=exec_id))
    h.send_udp(task_port, h.scheduler_datagram(
        "/scheduler-reload-failed/", execution_id=ids[0]))
    h.send_udp(task_port, "/scheduler-reload-failed/;too;few;fields")
    accepted = "butler_udp_datagrams_accepted_total"

    def all_counted():
        now = parse(scrape(port).text)
        return (value(now, "butler_udp_datagrams_received_total")
                - value(before, "butler_udp_datagrams_received_total")
                >= N + 2)

    h.wait_until(all_counted, f"{N + 2} datagrams to be counted")
    routed = '{sink="mqtt-link"}'
    h.wait_until(lambda: value(parse(scrape(port).text),
                               "butler_events_routed_total", routed)
                 - value(before, "butler_events_routed_total", routed) >= N,
                 "the events to reach the mqtt-link sink")
    after = parse(scrape(port).text)
    h.check_eq(value(after, accepted) - value(before, accepted), float(N),
               f"{N} valid datagrams raise {accepted} by exactly {N}")
    h.check_eq(value(after, "butler_events_routed_total", routed)
               - value(before, "butler_events_routed_total", routed),
               float(N), f"{N} events routed to mqtt-link")
    dup = '{reason="duplicate"}'
    bad = '{reason="field_count"}'
    rejected = "butler_udp_datagrams_rejected_total"
    h.check_eq((value(after, rejected, dup) - value(before, rejected, dup),
                value(after, rejected, bad) - value(before, rejected, bad)),
               (1.0, 1.0),
               "the duplicate and the malformed datagram are counted by "
               "reason")

    # HTTP requests by route and status.
    ping = '{route="butler_ping",status="200"}'
    for _ in range(K):
        h.check_ping(port)
    h.check_eq(h.http_request(port, "GET", "/no/such/route").status, 404,
               "an unknown route answers 404")
    now = parse(scrape(port).text)
    h.check_eq(value(now, "butler_http_requests_total", ping)
               - value(after, "butler_http_requests_total", ping), float(K),
               f"{K} pings raise the butler_ping/200 counter by exactly {K}")
    h.check(value(now, "butler_http_requests_total",
                  '{route="unmatched",status="404"}') >= 1,
            "the unknown route is counted as unmatched/404")
    h.check(value(now, "butler_http_request_duration_seconds_count",
                  '{route="butler_ping"}') >= K,
            "the latency histogram counts the pings")
    h.check(value(now, "butler_process_resident_memory_bytes") > 1e6,
            "the process's RSS is reported")
    promtool_check(scrape(port).text, "the scrape after traffic")
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")
    broker.stop()


def own_port_and_off(ctx):
    port = h.free_port()
    metrics_port = h.free_port()
    cfg = h.base_config(port)
    cfg["Butler"]["prometheus"] = {"enable": True, "port": metrics_port}
    butler = h.Butler(ctx.butler, cfg, name="butler-metrics-port").start()
    res = scrape(metrics_port)
    h.check_in("butler_build_info", res.text,
               "/metrics is served on Butler.prometheus.port")
    h.check_eq(h.http_request(port, "GET", "/metrics").status, 404,
               "the REST port does not serve /metrics then")
    h.check_eq(h.http_request(metrics_port, "GET", "/butlerPing").status,
               404, "the metrics port serves no REST endpoint")
    h.check_eq(butler.stop(), 0, "butler exits 0")

    off_port = h.free_port()
    cfg = h.base_config(off_port)
    cfg["Butler"]["prometheus"] = {"enable": False}
    butler = h.Butler(ctx.butler, cfg, name="butler-metrics-off").start()
    h.check_eq(h.http_request(off_port, "GET", "/metrics").status, 404,
               "with prometheus.enable false, GET /metrics answers 404")
    h.check_eq(butler.stop(), 0, "butler exits 0")


def test(ctx):
    counted_service(ctx)
    own_port_and_off(ctx)


if __name__ == "__main__":
    h.main(test)

#!/usr/bin/env python3
"""The shipped deploy/butler.example.yaml, unchanged, boots with its ports
overridden by environment variables (Butler__<section>__<key>): ping and a
publish work, a task-failure datagram reaches MQTT, the default status topic
carries the default client id, and butler ignores foreign messages under its
subscription root."""

import socket
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

STATUS_TOPIC = "qliksense/butler/mqtt/status"
TOPIC = "butlertest/10/msg"
FAILURE_TOPIC = "qliksense/task_failure"


def free_udp_port():
    """Returns a UDP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test(ctx):
    example = h.EXAMPLE_CONFIG
    h.check(example.is_file(), f"{example} exists")
    before = example.read_bytes()
    broker = h.Mosquitto().start()
    sub = h.Subscriber(broker.port, [STATUS_TOPIC, TOPIC, FAILURE_TOPIC]).start()
    port = h.free_port()
    task_port = free_udp_port()
    env = {"Butler__restServerConfig__serverPort": str(port),
           "Butler__mqttConfig__brokerPort": str(broker.port),
           "Butler__udpServerConfig__portTaskFailure": str(task_port),
           "Butler__udpServerConfig__portSessionConnectionEvents":
               str(free_udp_port())}
    butler = h.Butler(ctx.butler, example, env=env, rest_port=port).start()
    h.check_in(f"http://127.0.0.1:{port}", butler.log(),
               "the REST port comes from the environment override")

    status = (f"Connected to MQTT broker 127.0.0.1:{broker.port} with client "
              f"ID butler-{socket.gethostname()}-{butler.proc.pid}")
    got = sub.wait_for(1, topic=STATUS_TOPIC, what="the status message")
    h.check_eq(got, [status], "the default status topic carries the default "
               "client id butler-<hostname>-<pid>")

    h.check_ping(port, "ping answers with the example config")
    res = h.http_request(port, "GET", "/v4/configfile/endpointsenabled")
    h.check_eq(sorted(res.json or []), sorted(["activeUserCount",
                                               "activeUsers",
                                               "apiListEnabledEndpoints",
                                               "butlerping",
                                               "mqttPublishMessage"]),
               "the example enables exactly ping, the list, publish and the "
               "active users")

    # The example listens for Sense's log events on UDP.
    h.wait_until(lambda: "udp-ingest receives task events" in butler.log(),
                 "udp-ingest to listen")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"sense-node-1;Reload of Sales;Sales dashboard;sa_scheduler",
                 ("127.0.0.1", task_port))
    got = sub.wait_for(1, topic=FAILURE_TOPIC, what="the task failure")
    h.check_eq(got, ["Reload of Sales"], "a Butler 2 task-failure datagram "
               "reaches qliksense/task_failure")

    # Messages under butler's own subscription (qliksense/#) that no handler
    # claims are ignored (smoke check: butler must survive them).
    h.mosquitto_pub(broker.port, "qliksense/unclaimed", "nobody wants this",
                    qos=1)
    h.mosquitto_pub(broker.port, "qliksense/start_task", "not-a-guid", qos=1)

    res = h.http_request(port, "PUT", "/v4/mqttpublishmessage",
                         body={"topic": TOPIC, "message": "from the example"})
    h.check_eq((res.status, res.json), (201, {"topic": TOPIC,
                                              "message": "from the example"}),
               "a v4 publish answers 201")
    res = h.http_request(port, "GET", h.query("/mqttPublishMessage", {
        "topic": TOPIC, "message": "seed from the example"}))
    h.check_eq(res.status, 200, "a seed publish answers 200")
    got = sub.wait_for(2, topic=TOPIC, what="the publishes")
    h.check_eq(got, ["from the example", "seed from the example"],
               "both publishes reached the subscriber")

    h.check_ping(port, "butler still answers after foreign MQTT messages")
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")
    h.check_in("butler stopped cleanly", butler.log(), "it stopped cleanly")
    h.check_eq(example.read_bytes(), before, "the example file is unchanged")
    sub.stop()
    broker.stop()


if __name__ == "__main__":
    h.main(test)

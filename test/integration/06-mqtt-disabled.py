#!/usr/bin/env python3
"""mqttConfig.enable false: every publish spelling answers 503 naming the
config key, butler never connects to the (running) broker, bad requests are
still 400, ping works."""

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

TOPIC = "butlertest/06/msg"


def test(ctx):
    broker = h.Mosquitto().start()
    sub = h.Subscriber(broker.port, "#").start()
    port = h.free_port()
    cfg = h.base_config(port, broker.port)
    cfg["Butler"]["mqttConfig"]["enable"] = False  # broker set, but off
    butler = h.Butler(ctx.butler, cfg).start()

    def names_key(text):
        return "Butler.mqttConfig.enable" in text

    for path in ("/mqttPublishMessage", "/v2/mqttPublishMessage"):
        res = h.http_request(port, "GET", h.query(path, {"topic": TOPIC,
                                                         "message": "x"}))
        h.check_error(res, 503, names_key,
                      f"GET {path} answers 503 naming mqttConfig.enable")
    res = h.http_request(port, "PUT", "/v4/mqttpublishmessage",
                         body={"topic": TOPIC, "message": "x"})
    h.check_error(res, 503, names_key,
                  "PUT /v4/mqttpublishmessage answers 503 naming "
                  "mqttConfig.enable")
    res = h.http_request(port, "PUT", "/v4/mqttpublishmessage",
                         body=b"{oops")
    h.check_error(res, 400, "Request body is not valid JSON",
                  "an invalid body is still a 400")

    res = h.http_request(port, "GET", "/v4/configfile/endpointsenabled")
    h.check(res.status == 200 and "mqttPublishMessage" in (res.json or []),
            "the endpoint flag itself is still listed as enabled", repr(res))
    h.check_ping(port)

    # A probe from mosquitto_pub proves the subscriber is live; butler
    # published nothing and never connected.
    h.mosquitto_pub(broker.port, "butlertest/06/probe", "probe")
    sub.wait_for(1, what="the probe")
    h.check_eq(sub.messages(), [("butlertest/06/probe", "probe")],
               "butler published nothing (not even a status message)")
    h.check("mqtt-client" not in butler.log(),
            "butler started no MQTT client", h.tail(butler.log_path))
    clients = [line for line in h.tail(broker.log_path, 1000).splitlines()
               if "New client connected" in line]
    h.check(len(clients) == 2 and all(" as auto-" in c for c in clients),
            "only mosquitto_sub and mosquitto_pub connected to the broker",
            clients)
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")
    sub.stop()
    broker.stop()


if __name__ == "__main__":
    h.main(test)

#!/usr/bin/env python3
"""MQTT backlog limit: with the broker down and backlogSize 3, three publishes
are held (200/201) and the fourth gets 503 saying the backlog is full; ping
still answers; once the broker is up the three held messages arrive and the
backlog takes messages again."""

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

TOPIC = "butlertest/05/msg"


def test(ctx):
    # Persistent broker + persistent QoS 1 subscriber session: the broker
    # queues butler's QoS 1 messages for the subscriber whichever of the two
    # reconnects first after the broker comes up (see 04).
    broker = h.Mosquitto(persistent=True).start()
    sub = h.Subscriber(broker.port, TOPIC, session_id="integ-05-sub").start()
    broker.stop()

    port = h.free_port()
    cfg = h.base_config(port, broker.port)
    cfg["Butler"]["mqttConfig"].update({"backlogSize": 3, "qos": 1})
    butler = h.Butler(ctx.butler, cfg).start()
    butler.wait_log("mqtt-client cannot connect")

    held = []
    for i, path in enumerate(("/mqttPublishMessage", "/v2/mqttPublishMessage",
                              "/v4/mqttpublishmessage")):
        message = f"held {i + 1}"
        if path.startswith("/v4"):
            res = h.http_request(port, "PUT", path,
                                 body={"topic": TOPIC, "message": message})
        else:
            res = h.http_request(port, "GET", h.query(path, {
                "topic": TOPIC, "message": message}))
        h.check(res.status in (200, 201) and res.json == {"topic": TOPIC,
                                                          "message": message},
                f"publish {i + 1} of 3 is held while the broker is down",
                repr(res))
        held.append(message)

    def backlog_full(text):
        return "backlog is full" in text

    res = h.http_request(port, "GET", h.query("/mqttPublishMessage", {
        "topic": TOPIC, "message": "refused 4"}))
    h.check_error(res, 503, backlog_full,
                  "the 4th publish gets 503 saying the backlog is full")
    res = h.http_request(port, "PUT", "/v4/mqttpublishmessage",
                         body={"topic": TOPIC, "message": "refused 5"})
    h.check_error(res, 503, backlog_full,
                  "a v4 publish on the full backlog gets 503 too")
    h.check_ping(port, "butler answers ping with a full backlog")

    broker.start()
    got = sub.wait_for(3, topic=TOPIC, what="the 3 held messages")
    h.check_eq(got, held, "the 3 held messages arrived in order")

    # The backlog drained: publishes are accepted again. The marker also
    # shows that neither refused message was sent later.
    butler.wait_log("mqtt-link is up")

    def accepted():
        res = h.http_request(port, "PUT", "/v4/mqttpublishmessage",
                             body={"topic": TOPIC, "message": "marker"})
        return res if res.status == 201 else None

    res = h.wait_until(accepted, "the backlog to take a message again")
    h.check_eq(res.json, {"topic": TOPIC, "message": "marker"},
               "a publish after the drain answers 201")
    got = sub.wait_for(4, topic=TOPIC, what="the marker")
    h.check_eq(got, held + ["marker"], "the refused messages were never "
               "published")
    h.check_ping(port)
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")
    sub.stop()
    broker.stop()


if __name__ == "__main__":
    h.main(test)

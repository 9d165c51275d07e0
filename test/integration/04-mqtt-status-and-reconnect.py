#!/usr/bin/env python3
"""MQTT connection: the status message on connect names broker and client
id; while the broker is down REST publishes are still answered and held;
after the broker comes back butler reconnects, publishes the status message
again and delivers all held messages in order."""

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

CLIENT_ID = "integ-04-butler"
STATUS_TOPIC = "butlertest/04/status"
TOPIC = "butlertest/04/msg"
COUNT = 20


def test(ctx):
    # Deterministic delivery across the restart, whoever reconnects first:
    # the broker is persistent and the subscriber holds a persistent QoS 1
    # session (clean session off), so the broker keeps the subscription
    # through its restart and queues butler's QoS 1 messages for the
    # subscriber until mosquitto_sub has reconnected by itself.
    broker = h.Mosquitto(persistent=True).start()
    sub = h.Subscriber(broker.port, [STATUS_TOPIC, TOPIC],
                       session_id="integ-04-sub").start()
    port = h.free_port()
    cfg = h.base_config(port, broker.port)
    cfg["Butler"]["mqttConfig"].update({"clientId": CLIENT_ID, "qos": 1,
                                        "statusTopic": STATUS_TOPIC})
    butler = h.Butler(ctx.butler, cfg).start()

    status = (f"Connected to MQTT broker 127.0.0.1:{broker.port} with client "
              f"ID {CLIENT_ID}")
    got = sub.wait_for(1, topic=STATUS_TOPIC, what="the status message")
    h.check_eq(got, [status], "on connect butler publishes the status "
               "message with broker and client id")

    broker.stop()
    # Publishing only after butler has seen the loss keeps the messages in
    # butler's backlog (none is written into the dying connection).
    butler.wait_log("mqtt-link is down")
    h.check(butler.running(), "butler keeps running without its broker")

    expected = []
    for i in range(COUNT):
        message = f"held {i:02d} while the broker is down"
        if i % 3 == 0:
            res = h.http_request(port, "PUT", "/v4/mqttpublishmessage",
                                 body={"topic": TOPIC, "message": message})
            want = 201
        else:
            path = "/mqttPublishMessage" if i % 3 == 1 \
                else "/v2/mqttPublishMessage"
            res = h.http_request(port, "GET", h.query(path, {
                "topic": TOPIC, "message": message}))
            want = 200
        h.check_eq((res.status, res.json),
                   (want, {"topic": TOPIC, "message": message}),
                   f"publish {i + 1}/{COUNT} with the broker down answers "
                   f"{want}")
        expected.append(message)
    h.check_ping(port, "butler answers ping while the broker is down")
    h.check_eq(sub.messages(TOPIC), [], "nothing arrived while the broker "
               "was down")

    broker.start()
    got = sub.wait_for(COUNT, topic=TOPIC,
                       what=f"{COUNT} held messages after the restart")
    h.check_eq(got, expected, f"all {COUNT} held messages arrived once, in "
               "order")
    got = sub.wait_for(2, topic=STATUS_TOPIC,
                       what="the status message after the reconnect")
    h.check_eq(got, [status, status], "the status message was published "
               "again after the reconnect")
    order = [t for t, _ in sub.messages()]
    h.check(order.index(TOPIC) > len(order) - 1 - order[::-1]
            .index(STATUS_TOPIC), "the status message came before the held "
            "messages", repr(order))

    # And live traffic flows again.
    res = h.http_request(port, "PUT", "/v4/mqttpublishmessage",
                         body={"topic": TOPIC, "message": "after"})
    h.check_eq(res.status, 201, "a publish after the reconnect answers 201")
    got = sub.wait_for(COUNT + 1, topic=TOPIC, what="the live message")
    h.check_eq(got[-1], "after", "the live message arrived after the held "
               "ones")
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")
    sub.stop()
    broker.stop()


if __name__ == "__main__":
    h.main(test)

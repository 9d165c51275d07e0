#!/usr/bin/env python3
"""Shutdown: SIGTERM and SIGINT end butler with exit 0 and "butler stopped
cleanly", also when a second signal follows at once; a burst of 200 publishes followed at once by SIGTERM reaches the
subscriber in full (at QoS 0 and QoS 1); with the broker down the held
messages are reported lost and butler still exits 0; SIGHUP is logged and
does not stop the service."""

import signal
import sys
import threading
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

BURST = 200
CLEAN = "butler stopped cleanly"


def check_signal_stop(ctx, sig, name):
    port = h.free_port()
    butler = h.Butler(ctx.butler, h.base_config(port), name=f"butler-{name}")
    butler.start()
    h.check_ping(port, f"butler answers before {name}")
    rc = butler.stop(sig, timeout=5)
    h.check_eq(rc, 0, f"{name} ends butler with exit code 0 within 5 s")
    h.check_in(CLEAN, butler.log(), f"after {name} the log says '{CLEAN}'")
    h.check(not h.port_accepts(port), f"after {name} the REST port is "
            "closed")


def check_burst(ctx, broker, qos):
    topic = f"butlertest/09/burst/qos{qos}"
    sub = h.Subscriber(broker.port, topic, qos=qos).start()
    port = h.free_port()
    cfg = h.base_config(port, broker.port)
    cfg["Butler"]["mqttConfig"]["qos"] = qos
    butler = h.Butler(ctx.butler, cfg, name=f"butler-burst-qos{qos}").start()
    butler.wait_log("mqtt-link is up")
    expected = [f"burst {i:03d}" for i in range(BURST)]
    # Two keep-alive connections in parallel make the burst arrive faster
    # than it is published; each connection's messages keep their order.
    halves = [expected[0::2], expected[1::2]]
    statuses = [[], []]

    def send(k):
        client = butler.client()
        for message in halves[k]:
            res = client.put("/v4/mqttpublishmessage",
                             body={"topic": topic, "message": message})
            statuses[k].append(res.status)
        client.close()

    threads = [threading.Thread(target=send, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    butler.send_signal(signal.SIGTERM)
    h.check_eq(statuses[0] + statuses[1], [201] * BURST,
               f"all {BURST} burst publishes (QoS {qos}) answered 201")
    rc = butler.wait_exit(10)
    h.check_eq(rc, 0, f"SIGTERM right after the QoS {qos} burst exits 0")
    h.check_in(CLEAN, butler.log(), f"the log says '{CLEAN}' after the burst")
    got = sub.wait_for(BURST, topic=topic,
                       what=f"the {BURST} QoS {qos} burst messages")
    for k in (0, 1):
        mine = [p for p in got if p in set(halves[k])]
        h.check_eq(mine, halves[k], f"connection {k + 1}'s messages arrived "
                   "once each, in order")
    h.check_eq(sorted(got), expected, f"all {BURST} QoS {qos} messages "
               "reached the subscriber (flushed on shutdown)")
    h.check("messages are lost" not in butler.log(),
            "the log reports no lost messages",
            h.tail(butler.log_path))
    sub.stop()


def check_second_signal(ctx):
    """A second signal while shutting down (an impatient Ctrl-C, or a wrapper
    script forwarding SIGTERM after the terminal's SIGINT) must not kill
    butler half-way."""
    port = h.free_port()
    butler = h.Butler(ctx.butler, h.base_config(port), name="butler-twice")
    butler.start()
    h.check_ping(port, "butler answers before SIGINT + SIGTERM")
    butler.send_signal(signal.SIGINT)
    butler.send_signal(signal.SIGTERM)
    rc = butler.wait_exit(5)
    h.check_eq(rc, 0, "SIGINT then SIGTERM at once still exits 0")
    h.check_in(CLEAN, butler.log(), f"after two signals the log says "
               f"'{CLEAN}'")


def test(ctx):
    check_signal_stop(ctx, signal.SIGTERM, "SIGTERM")
    check_signal_stop(ctx, signal.SIGINT, "SIGINT")
    check_second_signal(ctx)

    # SIGHUP is logged and ignored.
    port = h.free_port()
    butler = h.Butler(ctx.butler, h.base_config(port), name="butler-hup")
    butler.start()
    butler.send_signal(signal.SIGHUP)
    butler.wait_log("SIGHUP")
    h.check(butler.running(), "SIGHUP does not stop butler")
    h.check_ping(port, "butler answers ping after SIGHUP")
    butler.send_signal(signal.SIGHUP)
    butler.wait_log("SIGHUP", count=2)
    h.check_ping(port, "butler answers ping after a second SIGHUP")
    h.check_eq(butler.stop(), 0, "SIGTERM after SIGHUP still exits 0")

    broker = h.Mosquitto().start()
    check_burst(ctx, broker, 0)
    check_burst(ctx, broker, 1)

    # With the broker down, held messages cannot be flushed: shutdown waits
    # out shutdownGraceSeconds, reports the loss and still exits 0.
    broker.stop()
    port = h.free_port()
    cfg = h.base_config(port, broker.port)
    cfg["Butler"]["supervisor"] = {"shutdownGraceSeconds": 1}
    butler = h.Butler(ctx.butler, cfg, name="butler-broker-down").start()
    for i in range(3):
        res = h.http_request(port, "PUT", "/v4/mqttpublishmessage",
                             body={"topic": "butlertest/09/down",
                                   "message": f"held {i}"})
        h.check_eq(res.status, 201, f"publish {i + 1}/3 is held with the "
                   "broker down")
    rc = butler.stop(signal.SIGTERM, timeout=10)
    h.check_eq(rc, 0, "SIGTERM with the broker down exits 0")
    h.check_in("3 held messages are lost", butler.log(),
               "the log reports the 3 messages it could not deliver")


if __name__ == "__main__":
    h.main(test)

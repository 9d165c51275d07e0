#!/usr/bin/env python3
"""Task events across a broker outage: with qos 1, a persistent broker and
a persistent QoS 1 subscriber, 50 task-failure datagrams sent while the
broker is down are all published after it restarts, in order, none lost
and none twice; events flow live again afterwards."""

import socket
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

TOPIC = "qliksense/task_failure"
COUNT = 50


def datagram(i, name):
    return h.scheduler_datagram("/scheduler-reload-failed/", task_name=name,
                                task_id=f"00000000-0000-4000-8000-{i:012d}",
                                execution_id=f"fb0f317d-da91-4b86-aafa-"
                                             f"{i:012x}")


def test(ctx):
    # As in 04: the broker keeps the subscriber's QoS 1 session and queued
    # messages through its restart, whoever reconnects first.
    broker = h.Mosquitto(persistent=True).start()
    sub = h.Subscriber(broker.port, TOPIC, session_id="integ-19-sub").start()
    port = h.free_port()
    cfg = h.udp_config(port, broker.port)
    cfg["Butler"]["mqttConfig"].update({"qos": 1,
                                        "taskFailureSendFull": False})
    # "silly" logs each event the MQTT link holds for the broker.
    cfg["Butler"]["logLevel"] = "silly"
    task_port = cfg["Butler"]["udpServerConfig"]["portTaskFailure"]
    butler = h.Butler(ctx.butler, cfg).start()
    butler.wait_log("mqtt-link is up")

    h.send_udp(task_port, datagram(0, "before the outage"))
    got = sub.wait_for(1, topic=TOPIC, what="the live event")
    h.check_eq(got, ["before the outage"], "a live event is published")

    broker.stop()
    butler.wait_log("mqtt-link is down")
    names = [f"held task {i:02d}" for i in range(1, COUNT + 1)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for i, name in enumerate(names, start=1):
            h.send_udp(task_port, datagram(i, name), sock=s)
    # Events are numbered from e1 (the live one): e51 is the last held.
    butler.wait_log(f"mqtt-link holds e{COUNT + 1} for the broker")
    h.check_eq(sub.messages(TOPIC), ["before the outage"],
               "nothing arrived while the broker was down")
    log = butler.log()
    h.check("rejected a datagram" not in log and "udp-ingest shed" not in log
            and "the MQTT backlog is full" not in log,
            f"all {COUNT} datagrams were accepted and held",
            h.tail(butler.log_path))

    broker.start()
    got = sub.wait_for(COUNT + 1, topic=TOPIC,
                       what=f"the {COUNT} held events after the restart")
    h.check_eq(got[1:], names, f"all {COUNT} task names arrived in order, "
               "none lost")
    h.send_udp(task_port, datagram(COUNT + 1, "after the restart"))
    got = sub.wait_for(COUNT + 2, topic=TOPIC, what="the live event after")
    h.check_eq(got, ["before the outage"] + names + ["after the restart"],
               "a live event follows them; none arrived twice")
    h.check_ping(port)
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")
    sub.stop()
    broker.stop()


if __name__ == "__main__":
    h.main(test)

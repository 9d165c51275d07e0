#!/usr/bin/env python3
"""Config reload on SIGHUP, on the real binary.

Butler runs with logLevel info, MQTT to a real mosquitto, NOTIFY_SOCKET (a
datagram socket this script listens on) and the environment override
Butler__mqttConfig__backlogSize=500; a REST publish writes no debug line.

1. The file is rewritten with logLevel debug and another serverPort, then
   SIGHUP: the log says "butler reloaded FILE: applied logLevel (info ->
   debug)" and "butler: Butler.restServerConfig.serverPort changed (OLD ->
   NEW); restart Butler to apply it", and no other setting is called
   changed (so the environment override applies on reload as at start). A
   REST publish now writes its debug line ("mqtt-link holds ..."); Butler
   still answers on the old port and nothing listens on the new one.
2. The file gets brokerPort "abc", then SIGHUP: an error line names
   Butler.mqttConfig.brokerPort, then "butler keeps its running config: 1
   problem(s) in FILE"; Butler keeps running and answering, and the level
   stays debug (a publish still writes its debug line).
3. The file is back to the running settings (logLevel debug, the old
   serverPort), then SIGHUP: "butler reloaded FILE: nothing changed", since
   the running config is what Butler runs with, not what the last file said.
4. logLevel warn, then SIGHUP: "applied logLevel (debug -> warn)" is still
   written (the report goes out before the level rises), and after it no
   info or debug line: a publish writes no debug line.

Every SIGHUP sends RELOADING=1 (with MONOTONIC_USEC) and then READY=1, after
the one READY=1 of the start. SIGTERM ends Butler with exit code 0.

Live filters: a Butler with UDP ingest, MQTT and a subscriber. Reloading
with enableSourceValidation on and allowedSources [10.9.9.9] is applied
without a restart ("applied ...", "supervisor hands the reloaded config to
... udp-ingest ...", "udp-ingest took the reloaded filters"): a task failure
from 127.0.0.1 is rejected (butler_udp_datagrams_rejected_total
{reason="source_not_allowed"} rises by 1) and nothing is published; with
allowedSources [127.0.0.1] the next one is accepted and published. Reloading
with rateLimit on at 1 per minute lets one more through and rejects the next
as rate_limited. No "restart Butler" line is written for these keys."""

import copy
import re
import uuid
import signal
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

TOPIC = "butlertest/32/msg"
HOLDS = re.compile(r"mqtt-link holds \S+ for " + re.escape(TOPIC))
# A log line's level follows its date and time.
LEVEL = re.compile(r"^\S+ \S+ (\w+)\s", re.MULTILINE)


def publish(port):
    res = h.http_request(port, "PUT", "/v4/mqttpublishmessage",
                         body={"topic": TOPIC, "message": "x"})
    h.check_eq(res.status, 201, "a REST publish is answered 201")


def reload(butler, notify, cfg, reloads):
    """Writes `cfg` to Butler's config file, sends SIGHUP and waits for the
    READY=1 that ends reload number `reloads`."""
    h.write_config(cfg, butler.config_path)
    butler.send_signal(signal.SIGHUP)
    expected = ["READY=1"] + ["RELOADING=1", "READY=1"] * reloads
    h.wait_until(lambda: notify.states() == expected,
                 f"RELOADING=1 then READY=1 for reload {reloads}")
    h.check_eq(notify.states(), expected,
               f"reload {reloads}: RELOADING=1, then READY=1")


def test(ctx):
    broker = h.Mosquitto().start()
    port = h.free_port()
    cfg = h.base_config(port, broker.port)
    cfg["Butler"]["logLevel"] = "info"
    notify = h.NotifySocket("notify-reload")
    env = dict(notify.env(), Butler__mqttConfig__backlogSize="500")
    butler = h.Butler(ctx.butler, cfg, env=env, name="butler-reload").start()
    path = str(butler.config_path)
    butler.wait_log("mqtt-link is up")
    h.wait_until(lambda: notify.states() == ["READY=1"], "READY=1 at start")
    publish(port)

    # 1. logLevel debug (applied) and another serverPort (needs a restart).
    new_port = h.free_port()
    cfg["Butler"]["logLevel"] = "debug"
    cfg["Butler"]["restServerConfig"]["serverPort"] = new_port
    reload(butler, notify, cfg, 1)
    butler.wait_log(f"butler reloaded {path}: applied logLevel "
                    "(info -> debug)")
    butler.wait_log(f"butler: Butler.restServerConfig.serverPort changed "
                    f"({port} -> {new_port}); restart Butler to apply it")
    log = butler.log()
    before = log[:log.index("butler received SIGHUP")]
    h.check("debug" not in LEVEL.findall(before) and not HOLDS.search(before),
            "no debug line before the reload (logLevel info)", before[-2000:])
    h.check_eq(log.count("restart Butler to apply it"), 1,
               "only serverPort is called changed (the environment override "
               "of backlogSize applies on reload too)")
    reloading = [x for x in notify.all_lines() if x.startswith("MONOTONIC_USEC=")]
    h.check(len(reloading) == 1 and reloading[0][15:].isdigit(),
            "RELOADING=1 comes with MONOTONIC_USEC", notify.all_lines())
    publish(port)
    butler.wait_log("mqtt-link holds", count=1)
    h.check(HOLDS.search(butler.log()),
            "a REST publish now writes its debug line")
    h.check_ping(port, "Butler still answers on the old port")
    h.check(not h.port_accepts(new_port),
            "nothing listens on the new port before a restart")

    # 2. An invalid file: nothing changes.
    bad = copy.deepcopy(cfg)
    bad["Butler"]["mqttConfig"]["brokerPort"] = "abc"
    reload(butler, notify, bad, 2)
    butler.wait_log('error config Butler.mqttConfig.brokerPort: expected an '
                    'integer 1-65535, got "abc"')
    butler.wait_log(f"butler keeps its running config: 1 problem(s) in {path}")
    h.check(butler.running(), "Butler keeps running after an invalid file")
    h.check_ping(port, "Butler still answers after an invalid file")
    holds = len(HOLDS.findall(butler.log()))
    publish(port)
    h.wait_until(lambda: len(HOLDS.findall(butler.log())) > holds,
                 "the next publish's debug line")
    h.check(len(HOLDS.findall(butler.log())) > holds,
            "the level stays debug after an invalid file")

    # 3. Back to what Butler runs with: nothing changed.
    same = copy.deepcopy(cfg)
    same["Butler"]["restServerConfig"]["serverPort"] = port
    reload(butler, notify, same, 3)
    butler.wait_log(f"butler reloaded {path}: nothing changed")
    h.check_eq(butler.log().count("restart Butler to apply it"), 1,
               "no setting is called changed against the running config")

    # 4. A quieter level: the report still shows, then no info or debug.
    quiet = copy.deepcopy(same)
    quiet["Butler"]["logLevel"] = "warn"
    reload(butler, notify, quiet, 4)
    applied = f"butler reloaded {path}: applied logLevel (debug -> warn)"
    butler.wait_log(applied)
    holds = len(HOLDS.findall(butler.log()))
    publish(port)
    h.check_eq(butler.stop(), 0, "Butler exits 0 on SIGTERM")
    log = butler.log()
    after = log[log.index(applied) + len(applied):]
    h.check_eq(len(HOLDS.findall(log)), holds,
               "at logLevel warn a publish writes no debug line")
    h.check_eq([x for x in LEVEL.findall(after) if x in ("info", "debug")], [],
               "no info or debug line after the switch to warn")
    notify.close()
    broker.stop()


def rejected(port, reason):
    """Returns butler_udp_datagrams_rejected_total for `reason`."""
    text = h.http_request(port, "GET", "/metrics").body.decode()
    m = re.search(r'^butler_udp_datagrams_rejected_total\{reason="'
                  + reason + r'"\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def live_filters(ctx):
    broker = h.Mosquitto().start()
    port = h.free_port()
    cfg = h.udp_config(port, broker.port)
    udp = cfg["Butler"]["udpServerConfig"]
    sub = h.Subscriber(broker.port, "qliksense/#").start()
    notify = h.NotifySocket("notify-filters")
    butler = h.Butler(ctx.butler, cfg, env=notify.env(),
                      name="butler-live-filters").start()
    h.wait_until(lambda: notify.states() == ["READY=1"], "READY=1 at start")
    path = str(butler.config_path)

    def failure(name):
        h.send_udp(udp["portTaskFailure"], h.scheduler_datagram(
            "/scheduler-reload-failed/", task_name=name,
            execution_id=str(uuid.uuid4())))

    def published(name):
        return name in sub.messages("qliksense/task_failure")

    closed = copy.deepcopy(cfg)
    closed["Butler"]["udpServerConfig"].update(
        {"enableSourceValidation": True, "allowedSources": ["10.9.9.9"]})
    reload(butler, notify, closed, 1)
    butler.wait_log("udp-ingest took the reloaded filters: source validation "
                    "on (1 allowed addresses)")
    h.check_in("supervisor hands the reloaded config to", butler.log(),
               "the supervisor hands the config on")
    h.check_in(f"butler reloaded {path}: applied", butler.log(),
               "the allow-list is applied live")
    before = rejected(port, "source_not_allowed")
    failure("Reload from a stranger")
    h.wait_until(lambda: rejected(port, "source_not_allowed") == before + 1,
                 "the datagram from 127.0.0.1 to be rejected")
    open_ = copy.deepcopy(closed)
    open_["Butler"]["udpServerConfig"]["allowedSources"] = ["127.0.0.1"]
    reload(butler, notify, open_, 2)
    butler.wait_log("source validation on (1 allowed addresses)", count=2)
    failure("Reload from a friend")
    h.wait_until(lambda: published("Reload from a friend"),
                 "the allowed datagram to be published")
    h.check(not published("Reload from a stranger"),
            "the rejected datagram was not published")

    limited = copy.deepcopy(open_)
    limited["Butler"]["udpServerConfig"]["rateLimit"] = {
        "enable": True, "maxMessagesPerMinute": 1}
    reload(butler, notify, limited, 3)
    butler.wait_log("rate limit on (1 per minute)")
    before = rejected(port, "rate_limited")
    failure("First within the limit")
    failure("Over the limit")
    h.wait_until(lambda: rejected(port, "rate_limited") == before + 1,
                 "the second datagram to be rate limited")
    h.wait_until(lambda: published("First within the limit"),
                 "the first to be published")
    h.check_eq(butler.log().count("restart Butler to apply it"), 0,
               "the filters need no restart")
    h.check_eq(butler.stop(), 0, "Butler exits 0 on SIGTERM")
    sub.stop()
    notify.close()
    broker.stop()


def run_all(ctx):
    test(ctx)
    live_filters(ctx)


if __name__ == "__main__":
    h.main(run_all)

#!/usr/bin/env python3
"""Logging: logLevel decides what is written; fileLogging adds a rotating
file in logDirectory with the same lines as the console; every line about an
actor names it; a log directory that cannot be made is reported and butler
keeps running on the console."""

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

TOPIC = "butlertest/11/msg"


def test(ctx):
    broker = h.Mosquitto().start()

    # debug level, with a log file
    port = h.free_port()
    cfg = h.base_config(port, broker.port)
    log_dir = h.scratch_dir("logs") / "nested" / "log"
    cfg["Butler"].update({"logLevel": "debug", "fileLogging": True,
                          "logDirectory": str(log_dir)})
    butler = h.Butler(ctx.butler, cfg, name="butler-debug").start()
    butler.wait_log("mqtt-link is up")
    res = h.http_request(port, "PUT", "/v4/mqttpublishmessage",
                         body={"topic": TOPIC, "message": "x"})
    h.check_eq(res.status, 201, "a publish is answered 201")
    butler.wait_log(f"mqtt-link holds r1 for {TOPIC}")
    h.check_eq(butler.stop(), 0, "butler exits 0")
    log_file = log_dir / "butler.log"
    h.check(log_file.is_file(), f"fileLogging writes {log_file} (directories "
            "made as needed)")
    text = log_file.read_text()
    for line in ("http-ingress serves the REST API",
                 "mqtt-link is up",
                 f"mqtt-link holds r1 for {TOPIC}",
                 "butler stopped cleanly"):
        h.check_in(line, text, f"the log file has '{line}'")
    h.check_in("debug", text, "the log file carries debug lines at "
               "logLevel debug")

    # warn level: no info or debug lines
    port = h.free_port()
    cfg = h.base_config(port, broker.port)
    cfg["Butler"]["logLevel"] = "warn"
    butler = h.Butler(ctx.butler, cfg, name="butler-warn").start()
    h.http_request(port, "PUT", "/v4/mqttpublishmessage",
                   body={"topic": TOPIC, "message": "x"})
    h.check_eq(butler.stop(), 0, "butler at logLevel warn exits 0")
    h.check("info " not in butler.log() and "debug" not in butler.log(),
            "logLevel warn writes no info or debug lines", butler.log())

    # a log directory that cannot be made: reported, console logging goes on
    port = h.free_port()
    cfg = h.base_config(port, broker.port)
    blocker = h.scratch_dir("blocked") / "file"
    blocker.write_text("not a directory\n")
    cfg["Butler"].update({"fileLogging": True,
                          "logDirectory": str(blocker / "log")})
    butler = h.Butler(ctx.butler, cfg, name="butler-badlogdir").start()
    h.check_in("cannot open log file", butler.log(),
               "an unusable logDirectory is reported")
    h.check_ping(port)
    h.check_eq(butler.stop(), 0, "butler exits 0")


if __name__ == "__main__":
    h.main(test)

#!/usr/bin/env python3
"""Logging: logLevel decides what is written; fileLogging adds a rotating
file in logDirectory with the same lines as the console; every line about an
actor names it; a log directory that cannot be made is reported and butler
keeps running on the console.

Rotation: with logFileMaxSizeMB 1 and logFileMaxFiles 3, megabytes of lines
leave butler.log, butler.1.log and butler.2.log, none over 1 MiB, the newest
lines in butler.log and the oldest gone. logFormat json writes one JSON
object per line (time in UTC with ms, level, actor, message) on the console
and in the file, escaped whatever the text holds. Out-of-range sizes and an
unknown format stop start-up naming the key."""

import json
import re
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

TOPIC = "butlertest/11/msg"
MIB = 1024 * 1024
ISO_UTC_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LEVELS = {"trace", "debug", "info", "warning", "error", "critical"}
#: A key Butler does not know, so it logs it back in a warning: quotes, a
#: backslash, a tab, a control character and non-ASCII text.
ODD_KEY = 'we"ird\\key\t\x01 \u00fc\u20ac'


def json_lines(text, where):
    """Parses every line of `text` as one JSON log entry; returns them."""
    entries = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            entry = json.loads(line)
        except ValueError as e:
            raise h.CheckFailed(f"{where} line {n} is not JSON ({e}): {line!r}")
        if set(entry) != {"time", "level", "actor", "message"} or \
                not ISO_UTC_MS.match(entry["time"]) or \
                entry["level"] not in LEVELS:
            raise h.CheckFailed(f"{where} line {n} lacks time/level/actor/"
                                f"message: {line!r}")
        entries.append(entry)
    return entries


def test_rotation(ctx):
    """A tiny logFileMaxSizeMB and a few thousand kB of lines: the files
    rotate and no more than logFileMaxFiles are kept."""
    port = h.free_port()
    cfg = h.base_config(port)
    log_dir = h.scratch_dir("rotating")
    # Butler warns once per unknown key at start: 18,000 keys of about 230
    # characters make about 5 MiB of log lines in a moment.
    unknown = {f"unknownKey{i:05d}" + "x" * 200: i for i in range(18000)}
    cfg["Butler"].update({"fileLogging": True, "logDirectory": str(log_dir),
                          "logFileMaxSizeMB": 1, "logFileMaxFiles": 3,
                          **unknown})
    butler = h.Butler(ctx.butler, cfg, name="butler-rotating").start(
        timeout=30)
    h.check_ping(port)
    h.check_eq(butler.stop(), 0, "butler exits 0")
    files = sorted(p.name for p in log_dir.iterdir())
    h.check_eq(files, ["butler.1.log", "butler.2.log", "butler.log"],
               "logFileMaxFiles 3 keeps butler.log and two rotated files")
    for name in files:
        size = (log_dir / name).stat().st_size
        h.check(0 < size <= MIB, f"{name} holds at most logFileMaxSizeMB "
                "(1 MiB)", size)
    text = "".join((log_dir / n).read_text() for n in files)
    h.check("unknownKey00000" not in text, "the oldest lines were deleted "
            "with the oldest file")
    h.check_in("unknownKey17999", text, "the newest warnings are kept")
    newest = (log_dir / "butler.log").read_text().splitlines()
    h.check_in("butler stopped cleanly", newest[-1],
               "the last line is in butler.log")


def test_json(ctx, broker):
    """logFormat json: every console and file line is a JSON object that
    names the actor."""
    port = h.free_port()
    cfg = h.base_config(port, broker.port)
    log_dir = h.scratch_dir("json")
    cfg["Butler"].update({"logLevel": "debug", "logFormat": "json",
                          "fileLogging": True, "logDirectory": str(log_dir),
                          ODD_KEY: True})
    butler = h.Butler(ctx.butler, cfg, name="butler-json").start()
    butler.wait_log('"actor":"mqtt-link","message":"is up')
    res = h.http_request(port, "PUT", "/v4/mqttpublishmessage",
                         body={"topic": TOPIC, "message": "x"})
    h.check_eq(res.status, 201, "a publish is answered 201")
    butler.wait_log(f'"message":"holds r1 for {TOPIC}')
    h.check_eq(butler.stop(), 0, "butler exits 0")
    for where, text in (("the console", butler.log()),
                        ("butler.log", (log_dir / "butler.log").read_text())):
        entries = json_lines(text, where)
        h.check(len(entries) > 5, f"{where} has JSON lines", len(entries))
        for actor, start in (("mqtt-link", "is up: connected to"),
                             ("mqtt-link", f"holds r1 for {TOPIC}"),
                             ("http-ingress", "serves the REST API on"),
                             ("butler", "stopped cleanly")):
            h.check(any(e["actor"] == actor and e["message"].startswith(start)
                        for e in entries),
                    f"{where} has actor {actor!r} with message '{start}...'")
        h.check(all(e["actor"] and " " not in e["actor"] for e in entries),
                f"every line in {where} names an actor")
        h.check({"debug", "info"} <= {e["level"] for e in entries},
                f"{where} carries the levels")
        odd = [e for e in entries if e["actor"] == "config"
               and e["message"].startswith("Butler.we")]
        h.check_eq([e["message"] for e in odd],
                   [f"Butler.{ODD_KEY}: unknown key, ignored"],
                   f"{where}: quotes, backslash, tab, control characters "
                   "and non-ASCII text survive the JSON escaping")
        h.check_eq(odd[0]["level"], "warning", "a config warning is a "
                   "warning")


def test_bad_values(ctx):
    """Out-of-range sizes and an unknown format are start-up errors that
    name the key."""
    tmp = h.scratch_dir("bad-logging")
    for key, value, error in (
            ("logFileMaxSizeMB", 0, 'expected an integer 1-1024, got "0"'),
            ("logFileMaxSizeMB", 1025,
             'expected an integer 1-1024, got "1025"'),
            ("logFileMaxFiles", 0, 'expected an integer 1-100, got "0"'),
            ("logFileMaxFiles", 101, 'expected an integer 1-100, got "101"'),
            ("logFormat", "xml", 'expected one of text, json, got "xml"')):
        cfg = h.base_config(h.free_port())
        cfg["Butler"][key] = value
        path = h.write_config(cfg, tmp / f"{key}-{value}.yaml")
        r = h.run_cli(ctx.butler, "--config", path)
        h.check_eq(r.returncode, 1, f"{key}: {value} stops start-up")
        h.check_in(f"error: Butler.{key}: {error}", r.stderr.splitlines(),
                   f"{key}: {value} is reported with its key")


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

    test_rotation(ctx)
    test_json(ctx, broker)
    test_bad_values(ctx)


if __name__ == "__main__":
    h.main(test)

#!/usr/bin/env python3
"""Bad log-event datagrams: each reject reason (field count, task id, app
id, execution id, missing field, unknown type, unknown command, not UTF-8,
control character, oversize, source not allowed, duplicate execution id)
publishes nothing and logs a line naming the sender and the reason; 50 more
of one reason log far fewer lines; valid datagrams in between (also one
with a trailing CRLF and one of exactly maxMessageSize bytes) still go
through; with deduplication off a repeated execution id is published
again; butler still answers ping."""

import socket
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

MAX_SIZE = 600
FAILED = "/scheduler-reload-failed/"
# Butler only accepts datagrams from ALLOWED; the tests send from there
# unless they test the allow-list (127.0.0.1 is not in it).
ALLOWED = "127.0.0.2"


def exec_id(n):
    return f"fb0f317d-da91-4b86-aafa-{n:012x}"


def test(ctx):
    broker = h.Mosquitto().start()
    sub = h.Subscriber(broker.port, "qliksense/#").start()
    port = h.free_port()
    cfg = h.udp_config(port, broker.port)
    udp = cfg["Butler"]["udpServerConfig"]
    udp.update({"maxMessageSize": MAX_SIZE, "enableSourceValidation": True,
                "allowedSources": [ALLOWED, "10.9.8.7"],
                "deduplication": {"enable": True, "ttlMinutes": 10}})
    cfg["Butler"]["mqttConfig"]["taskFailureSendFull"] = False
    task_port, session_port = udp["portTaskFailure"], \
        udp["portSessionConnectionEvents"]
    butler = h.Butler(ctx.butler, cfg).start()
    sub.wait_for(lambda m: m == ["start"],
                 topic="qliksense/butler/task_failure_server",
                 what="the udp server's start message")
    base = len(sub.messages())

    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.bind((ALLOWED, 0))
    source = f"{ALLOWED}:{sender.getsockname()[1]}"
    outsider = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    outsider.bind(("127.0.0.1", 0))
    outsider_source = f"127.0.0.1:{outsider.getsockname()[1]}"

    expected = []   # (topic, payload) of everything that must be published
    counter = iter(range(1, 10_000))

    def good(name, n=None, send=True):
        """Sends a valid failure named `name` and waits until exactly the
        expected messages arrived."""
        data = h.scheduler_datagram(FAILED, task_name=name,
                                    execution_id=exec_id(n or next(counter)))
        if send:
            h.send_udp(task_port, data, sender)
        return data

    def without_full(msgs):
        """Full JSON payloads are checked by 12; here only their topic."""
        return [(t, None if t.endswith("_full") else p) for t, p in msgs]

    def expect_marker(name, what):
        good(name)
        expected.append(("qliksense/task_failure", name))
        got = sub.wait_for(lambda m: len(m) >= base + len(expected),
                           what=f"the marker {name!r}")[base:]
        h.check_eq(without_full(got), expected, what)

    logged = set()   # reasons whose (throttled) first line was checked

    def bad(data, reason, what, port=None, sock=None, src=None, kind="task"):
        h.send_udp(port or task_port, data, sock or sender)
        if reason not in logged:
            # Only the first rejection per reason within 10 s is logged.
            line = (f"udp-ingest rejected a datagram from {src or source} on "
                    f"the {kind} port: {reason} (")
            butler.wait_log(line)
            h.check(True, f"{what}: logged as {reason} with the sender")
            logged.add(reason)
        expect_marker(f"after {reason}: {what}",
                      f"{what}: nothing published, the next valid datagram "
                      "goes through")

    def lines(reason):
        return sum(1 for line in butler.log().splitlines()
                   if "udp-ingest rejected a datagram" in line
                   and f": {reason} (" in line)

    expect_marker("first valid", "a valid datagram from an allowed source "
                  "is published")

    # -- field counts and ids ----------------------------------------------
    bad(f"{FAILED};sense-node-1;Task;App", "field_count",
        "a scheduler message with 4 fields")
    bad(good("x", send=False).rsplit(";", 1)[0].rsplit(";", 1)[0] + ";y",
        "field_count", "a scheduler message with 10 fields")
    bad("sense-node-1;Legacy;App;sa;extra", "field_count",
        "an untyped message with 5 fields")
    bad(";".join(["/engine-reload-failed/", "h",
                  "7552d9fc-d1bb-4975-9a38-18357de531ea", "x", "CORP",
                  "anna", "t", "ERROR"]), "field_count",
        "an engine message with 8 fields")
    bad(h.scheduler_datagram(FAILED, task_id="not-a-guid",
                             execution_id=exec_id(900)),
        "bad_task_id", "a task id that is not a GUID")
    bad(h.scheduler_datagram(FAILED, task_id="", execution_id=exec_id(901)),
        "bad_task_id", "an empty task id")
    bad(h.scheduler_datagram(FAILED, app_id="7552d9fc-d1bb-4975-9a38-"
                             "18357de531eZ", execution_id=exec_id(902)),
        "bad_app_id", "an app id that is not a GUID")
    bad(h.scheduler_datagram(FAILED, execution_id="12345"),
        "bad_execution_id", "an execution id that is not a GUID")
    bad(h.scheduler_datagram(FAILED, host="", execution_id=exec_id(903)),
        "missing_field", "an empty host")
    bad(h.scheduler_datagram("/scheduler-reload-exploded/",
                             execution_id=exec_id(904)),
        "unknown_type", "an unknown /type/")

    # -- encoding -----------------------------------------------------------
    bad(h.scheduler_datagram(FAILED, execution_id=exec_id(905))
        .encode("utf-8").replace(b"Sales", b"Sa\xffles"), "not_utf8",
        "a byte that is not UTF-8")
    bad(h.scheduler_datagram(FAILED, task_name="Sales\x01",
                             execution_id=exec_id(906)),
        "control_character", "a control character in a field")
    h.check_in("Sales\\x01", butler.log(), "the log line shows the control "
               "character escaped")
    bad(h.scheduler_datagram(FAILED, task_name="Tab\there",
                             execution_id=exec_id(907)),
        "control_character", "a tab in a field")

    # -- size ---------------------------------------------------------------
    def sized(name, size):
        data = h.scheduler_datagram(FAILED, task_name=name,
                                    execution_id=exec_id(next(counter)),
                                    message="")
        return data + "x" * (size - len(data.encode()))

    over = sized("Too big", MAX_SIZE + 1)
    h.check_eq(len(over.encode()), MAX_SIZE + 1, "the oversize datagram is "
               "maxMessageSize + 1 bytes")
    bad(over, "oversize", "a datagram one byte over maxMessageSize")
    exact = sized("Exactly max", MAX_SIZE)
    h.send_udp(task_port, exact, sender)
    expected.append(("qliksense/task_failure", "Exactly max"))
    expect_marker("after exact", "a datagram of exactly maxMessageSize bytes "
                  "is published")
    h.send_udp(task_port, good("With CRLF", send=False) + "\r\n", sender)
    expected.append(("qliksense/task_failure", "With CRLF"))
    expect_marker("after CRLF", "a trailing CRLF (log4net's newline) is "
                  "accepted")

    # -- session port -------------------------------------------------------
    bad("sense-node-1;Start sessions;CORP;anna", "unknown_command",
        "an unknown audit command", port=session_port, kind="session")
    bad("sense-node-1;Start session;CORP;anna;x", "field_count",
        "an audit event with 5 fields", port=session_port, kind="session")
    bad("sense-node-1;Start session;CORP;", "missing_field",
        "an audit event without a user id", port=session_port,
        kind="session")

    # -- source -------------------------------------------------------------
    bad(good("From outside", send=False), "source_not_allowed",
        "a valid datagram from 127.0.0.1, not in allowedSources",
        sock=outsider, src=outsider_source)
    bad("sense-node-1;Start session;CORP;eve", "source_not_allowed",
        "an audit event from 127.0.0.1", port=session_port, sock=outsider,
        src=outsider_source, kind="session")
    h.check_eq(sub.messages("qliksense/session/start"), [],
               "the outsider's audit event was not published")

    # -- dedup --------------------------------------------------------------
    first = good("Dedup", n=5000, send=False)
    h.send_udp(task_port, first, sender)
    expected.append(("qliksense/task_failure", "Dedup"))
    expect_marker("after dedup first", "the first message with an execution "
                  "id is published")
    bad(first, "duplicate", "the same type and execution id again")
    bad(h.scheduler_datagram(FAILED, task_name="Dedup, other text",
                             execution_id=exec_id(5000)),
        "duplicate", "another failure with the same execution id")
    # The same execution id with another type is a different event.
    h.send_udp(task_port, h.scheduler_datagram(
        "/scheduler-reload-aborted/", task_name="Dedup aborted",
        execution_id=exec_id(5000), level="WARN",
        message="Execution State Change to Aborting"), sender)
    expected.append(("qliksense/task_aborted", "Dedup aborted"))
    expected.append(("qliksense/task_aborted_full", None))

    got = sub.wait_for(lambda m: len(m) >= base + len(expected),
                       what="the aborted event")[base:]
    h.check_eq(without_full(got), expected, "the same execution id with "
               "another type (aborted) is published")
    # Butler 2 failures carry no execution id: each one is published.
    for _ in range(2):
        h.send_udp(task_port, "sense-node-1;Legacy twice;App;sa", sender)
        expected.append(("qliksense/task_failure", "Legacy twice"))
    got = sub.wait_for(lambda m: len(m) >= base + len(expected),
                       what="both legacy failures")[base:]
    h.check_eq(without_full(got), expected, "two identical Butler 2 "
               "failures are both published (no execution id to dedup on)")

    # -- throttled logging --------------------------------------------------
    before = lines("field_count")
    h.check(before >= 1, "field_count rejections were logged before", before)
    for i in range(50):
        h.send_udp(task_port, f"{FAILED};flood {i}", sender)
    expect_marker("after the flood", "a valid datagram after 50 bad ones "
                  "goes through")
    after = lines("field_count")
    h.check(after - before <= 2, "50 more field_count rejections log at most "
            "2 more lines (throttled)", f"{after - before} more lines")
    h.check_eq(sub.messages("qliksense/task_failure")[-1], "after the flood",
               "none of the 50 was published")

    h.check_ping(port)
    sender.close()
    outsider.close()
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")

    # With deduplication off the same execution id is published twice.
    port = h.free_port()
    cfg = h.udp_config(port, broker.port)
    cfg["Butler"]["udpServerConfig"]["deduplication"] = {"enable": False}
    cfg["Butler"]["mqttConfig"]["taskFailureSendFull"] = False
    butler = h.Butler(ctx.butler, cfg).start()
    before = len(sub.messages("qliksense/task_failure"))
    for _ in range(2):
        h.send_udp(cfg["Butler"]["udpServerConfig"]["portTaskFailure"],
                   h.scheduler_datagram(FAILED, task_name="No dedup",
                                        execution_id=exec_id(7000)))
    got = sub.wait_for(before + 2, topic="qliksense/task_failure",
                       what="both copies")[before:]
    h.check_eq(got, ["No dedup", "No dedup"], "with deduplication.enable "
               "false both copies are published")
    h.check_ping(port)
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")
    sub.stop()
    broker.stop()


if __name__ == "__main__":
    h.main(test)

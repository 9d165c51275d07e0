#!/usr/bin/env python3
"""MQTT task starts through a real mosquitto and the fake QRS: a task id
published on qliksense/start_task (also in upper case with surrounding
white space) starts that task (one lookup, one start/many; the fake's
/started); with startTaskFilter on, a task allowed by its tag is started and
a task allowed by nothing is not (logged); a payload that is no GUID, an
empty payload and an unknown id start nothing and are logged; a QRS error
is logged; a task id on another topic under the subscription root
(qliksense/#) or below the start topic starts nothing; butler keeps
answering REST throughout."""

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

START = "qliksense/start_task"
SALES = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"      # allowed by id
TARGETS = "210832b5-6174-4572-bd19-3e61eda675ef"    # allowed by id
FIN2 = "09b3c78f-04dd-45e3-a4bf-1b074d6572fa"       # allowed by tag
ARCHIVE = "eaf1da4f-fd44-4cea-b2de-7b67a6496ee3"    # allowed by tag
NIGHTLY = "0a1b2c3d-1111-2222-3333-444455556666"    # not allowed
UNKNOWN = "deadbeef-0000-4000-8000-000000000000"
STARTER = "mqtt-task-starter"


def log_line(butler, text):
    """Returns the first line of the butler log that holds `text`."""
    return next(ln for ln in butler.log().splitlines() if text in ln)


def test(ctx):
    certs = h.make_sense_certs(h.scratch_dir("certs"))
    qrs = h.start_fake_qrs(certs)
    broker = h.Mosquitto().start()
    port = h.free_port()
    cfg = h.sense_config(port, certs, qrs_port=qrs.port, flags=(),
                         mqtt_port=broker.port)
    cfg["Butler"]["startTaskFilter"] = {
        "enable": True,
        "allowTask": {"taskId": [SALES, TARGETS], "tag": ["startTask2"]}}
    butler = h.Butler(ctx.butler, cfg).start()

    # Butler logs nothing when its subscription is acked: publish a probe
    # (no task id) until the starter logs that it ignored one.
    def probe_seen():
        h.mosquitto_pub(broker.port, START, "probe", qos=1)
        return "on qliksense/start_task: the payload is not a task id " \
               "(\"probe\")" in butler.log()
    h.wait_until(probe_seen, "butler to receive on qliksense/start_task",
                 interval=0.1)
    h.check(True, "a payload that is no task id is logged as ignored")
    h.check_eq(qrs.calls(), [], "the probes called no QRS")

    def publish(payload, topic=START):
        h.mosquitto_pub(broker.port, topic, payload, qos=1)

    def wait_started(ids, what):
        h.wait_until(lambda: len(qrs.started()) >= len(ids),
                     f"the fake QRS to start {what}")
        h.check_eq(qrs.started(), ids, what)

    # -- starts ---------------------------------------------------------------------
    publish(SALES)
    wait_started([SALES], "a task id on qliksense/start_task starts it")
    butler.wait_log(f"{STARTER} started task {SALES} for m")
    calls = qrs.calls()
    h.check_eq([(c["method"], c["path"], c["status"]) for c in calls],
               [("GET", "/qrs/task/full", 200),
                ("POST", "/qrs/task/start/many", 204)],
               "one lookup, then one start")
    h.check_eq((calls[0]["query"].get("filter"), calls[1]["body"]),
               (f"id eq {SALES}", [SALES]),
               "the lookup and the start name the task")
    h.check(all(c["client_cert_cn"] == h.CLIENT_CN
                and c["headers"].get("x-qlik-user") == h.SENSE_USER
                for c in calls),
            "the calls carry Butler's client cert and X-Qlik-User", calls)

    publish(f"  {TARGETS.upper()}\t\n")
    wait_started([SALES, TARGETS], "an upper-case id with surrounding white "
                 "space starts the task")
    butler.wait_log(f"{STARTER} started task {TARGETS.upper()} for m")
    publish(FIN2)
    wait_started([SALES, TARGETS, FIN2], "a task allowed by its tag starts")
    butler.wait_log(f"{STARTER} started task {FIN2} for m")

    # -- nothing started ------------------------------------------------------------
    def refused(payload, log_text, what, calls=0, topic=START):
        """Publishes `payload`, waits for `log_text`, checks nothing was
        started and `calls` QRS calls were made, and that REST answers."""
        mark = len(qrs.calls())
        started = qrs.started()
        publish(payload, topic)
        butler.wait_log(log_text)
        h.check(True, f"{what}: logged")
        h.check_eq(qrs.started(), started, f"{what}: nothing started")
        h.check_eq(len(qrs.calls()) - mark, calls,
                   f"{what}: {calls} QRS call(s)")
        h.check_ping(port, f"{what}: butler still answers REST")

    refused("not-a-guid", f'on {START}: the payload is not a task id '
            '("not-a-guid")', "a payload that is no GUID")
    refused(SALES[:-1], f'on {START}: the payload is not a task id '
            f'("{SALES[:-1]}")', "a GUID one digit short")
    refused("", f'on {START}: the payload is not a task id ("")',
            "an empty payload")
    refused("bad\x01id", f'on {START}: the payload is not a task id '
            '("bad?id")', "a payload with a control character (escaped in "
            "the log)")
    refused(UNKNOWN, f"did not start task {UNKNOWN} for m",
            "an unknown task", calls=1)
    h.check_in("Qlik Sense does not know it",
               log_line(butler, f"did not start task {UNKNOWN}"),
               "the unknown task is logged as unknown to Qlik Sense")
    refused(NIGHTLY, f"did not start task {NIGHTLY} for m",
            "a task startTaskFilter denies", calls=1)
    h.check_in("not allowed by Butler.startTaskFilter",
               log_line(butler, f"did not start task {NIGHTLY}"),
               "the denied task is logged as not allowed by the filter")

    qrs.script(match="POST /qrs/task/start/many", status=500,
               body={"message": "Repository busy"})
    refused(SALES, f"could not start task {SALES} for m",
            "QRS answering the start with 500", calls=2)
    line = log_line(butler, f"could not start task {SALES}")
    h.check_in("answered 500", line, "the QRS status is logged")
    h.check_in("Repository busy", line, "QRS's message is logged")

    # -- other topics ---------------------------------------------------------------
    mark = len(qrs.calls())
    publish(ARCHIVE, "qliksense/other")
    publish(ARCHIVE, START + "/more")
    publish(ARCHIVE, "qliksense/Start_Task")
    # A start after them: the link handles messages in order, so once this
    # one is done the others were dispatched (to nobody).
    publish(SALES)
    wait_started([SALES, TARGETS, FIN2, SALES],
                 "only the start on the start topic ran")
    h.check_eq(len(qrs.calls()) - mark, 2,
               "the messages on other topics called no QRS")
    h.check_ping(port)
    h.check_eq(butler.stop(), 0, "butler exits 0")


if __name__ == "__main__":
    h.main(test)

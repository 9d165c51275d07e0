#!/usr/bin/env python3
"""Task events (UDP) to MQTT: on start butler announces `start` on both
server status topics; every failed/aborted scheduler type and alias and
Butler 2's 4-field failure reach a real subscriber with the exact topic and
payload (task name; the full JSON with its key order, a single backslash in
`user` even when sent doubled, a log message with `;` kept whole);
success (also the `//` form), distribute and engine-reload-failed publish
nothing; with taskFailureSendFull false no full message is sent, and custom
topic names from the config are used."""

import json
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

HOST = "sense-node-1"
USER_SENT_DOUBLED = "CORP\\\\sa_scheduler"   # as some appenders send it
USER = "CORP\\sa_scheduler"                  # what Butler must publish
TASK_ID = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"
APP_ID = "7552d9fc-d1bb-4975-9a38-18357de531ea"
STAMP = "2024-05-01 10:11:12,123"


def exec_id(n):
    """Returns a distinct execution id per event (dedup is on)."""
    return f"fb0f317d-da91-4b86-aafa-{n:012x}"


def full_json(task, app, user, level, n, message, task_id=TASK_ID,
              app_id=APP_ID):
    """The full message exactly as Butler sends it: keys in this order, no
    spaces, UTF-8 as is."""
    return json.dumps({
        "hostName": HOST, "user": user, "taskName": task, "taskId": task_id,
        "appName": app, "appId": app_id, "logTimeStamp": STAMP,
        "logLevel": level, "executionId": exec_id(n), "logMessage": message,
        "qs_appTags": [], "qs_appCustomProperties": {}, "qs_taskTags": [],
        "qs_taskCustomProperties": {}, "qs_taskMetadata": {}},
        separators=(",", ":"), ensure_ascii=False)


def datagram(kind, task, n, app="Sales dashboard", user=USER,
             level="ERROR", message="Max retries reached", app_id=APP_ID):
    return h.scheduler_datagram(kind, task_name=task, app_name=app, host=HOST,
                                user=user, task_id=TASK_ID, app_id=app_id,
                                timestamp=STAMP, level=level,
                                execution_id=exec_id(n), message=message)


def default_topics(ctx):
    broker = h.Mosquitto().start()
    sub = h.Subscriber(broker.port, "qliksense/#").start()
    port = h.free_port()
    cfg = h.udp_config(port, broker.port)
    task_port = cfg["Butler"]["udpServerConfig"]["portTaskFailure"]
    butler = h.Butler(ctx.butler, cfg).start()

    sub.wait_for(lambda m: m == ["start"],
                 topic="qliksense/butler/task_failure_server",
                 what="start on the task server status topic")
    h.check_eq(sub.messages("qliksense/butler/task_failure_server"),
               ["start"], "butler publishes 'start' on "
               "qliksense/butler/task_failure_server")
    sub.wait_for(lambda m: m == ["start"],
                 topic="qliksense/butler/session_server",
                 what="start on the session server status topic")
    h.check_eq(sub.messages("qliksense/butler/session_server"), ["start"],
               "butler publishes 'start' on qliksense/butler/session_server")

    base = len(sub.messages())
    expected = []   # (topic, payload) in the order sent

    def send_and_expect(data, pairs, what):
        h.send_udp(task_port, data)
        expected.extend(pairs)
        got = sub.wait_for(lambda m: len(m) >= base + len(expected),
                           what=what)[base:]
        h.check_eq(got, expected, what)

    # Today's failure types: the name, then the full JSON.
    failed = "/scheduler-reload-failed/"
    task = "Reload of Sales ü 日本 \"Q1\""
    send_and_expect(datagram(failed, task, 1, user=USER_SENT_DOUBLED),
                    [("qliksense/task_failure", task),
                     ("qliksense/task_failure_full",
                      full_json(task, "Sales dashboard", USER, "ERROR", 1,
                                "Max retries reached"))],
                    f"{failed} (user sent as DIR\\\\user) publishes the task "
                    "name and the exact full JSON with DIR\\user")
    semi = "Failed to start session; the engine said: no; retry later"
    send_and_expect(datagram("/scheduler-task-failed/", "Nightly finance", 2,
                             app="Finance", message=semi),
                    [("qliksense/task_failure", "Nightly finance"),
                     ("qliksense/task_failure_full",
                      full_json("Nightly finance", "Finance", USER, "ERROR",
                                2, semi))],
                    "/scheduler-task-failed/ publishes name and full JSON; a "
                    "log message with ';' arrives whole")
    send_and_expect(datagram("/scheduler-reloadtask-failed/", "Non-app task",
                             3, app="", app_id=""),
                    [("qliksense/task_failure", "Non-app task"),
                     ("qliksense/task_failure_full",
                      full_json("Non-app task", "", USER, "ERROR", 3,
                                "Max retries reached", app_id=""))],
                    "/scheduler-reloadtask-failed/ (no app: empty name and "
                    "id) publishes name and full JSON")
    # Aborted types.
    abort_msg = "Execution State Change to Aborting"
    send_and_expect(datagram("/scheduler-reload-aborted/", "Aborted one", 4,
                             level="WARN", message=abort_msg,
                             user=USER_SENT_DOUBLED),
                    [("qliksense/task_aborted", "Aborted one"),
                     ("qliksense/task_aborted_full",
                      full_json("Aborted one", "Sales dashboard", USER,
                                "WARN", 4, abort_msg))],
                    "/scheduler-reload-aborted/ publishes the name and the "
                    "full JSON on the aborted topics")
    send_and_expect(datagram("/scheduler-task-aborted/", "Aborted two", 5,
                             level="WARN", message=abort_msg),
                    [("qliksense/task_aborted", "Aborted two"),
                     ("qliksense/task_aborted_full",
                      full_json("Aborted two", "Sales dashboard", USER,
                                "WARN", 5, abort_msg))],
                    "/scheduler-task-aborted/ publishes name and full JSON")
    # Butler 2's 4-field failure: the task name only.
    send_and_expect(f"{HOST};Legacy reload;Legacy app;sa_scheduler",
                    [("qliksense/task_failure", "Legacy reload")],
                    "a Butler 2 4-field failure publishes the task name on "
                    "qliksense/task_failure (no full message)")

    # Success, distribute and engine failures publish nothing: a failure
    # sent after them is the next message.
    ok_msg = "Execution State Change to FinishedSuccess"
    quiet = [
        datagram("/scheduler-reloadtask-success/", "Quiet 1", 6, level="INFO",
                 message=ok_msg),
        datagram("/scheduler-task-success/", "Quiet 2", 7, level="INFO",
                 message=ok_msg),
        datagram("/scheduler-task-success//", "Quiet 3", 8, level="INFO",
                 message=ok_msg),
        datagram("/scheduler-distribute/", "Quiet 4", 9, level="INFO",
                 message="Exiting execute of Distribute task request."),
        datagram("/scheduler-distribute/", "Quiet 5", 10, level="INFO",
                 message="Exiting execute of Distribute task request.")
        + ";extra;fields",
        ";".join(["/engine-reload-failed/", HOST, APP_ID, "x", "CORP",
                  "anna", STAMP, "ERROR", "Engine reload failed"]),
    ]
    for data in quiet:
        h.send_udp(task_port, data)
    send_and_expect(datagram(failed, "After the quiet ones", 11),
                    [("qliksense/task_failure", "After the quiet ones"),
                     ("qliksense/task_failure_full",
                      full_json("After the quiet ones", "Sales dashboard",
                                USER, "ERROR", 11, "Max retries reached"))],
                    "success (incl. the // form), distribute and "
                    "engine-reload-failed published nothing")
    h.check("rejected a datagram" not in butler.log(),
            "none of the valid datagrams was rejected",
            h.tail(butler.log_path))
    h.check_ping(port)
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")
    sub.stop()
    broker.stop()


def custom_topics(ctx):
    broker = h.Mosquitto().start()
    sub = h.Subscriber(broker.port, ["qliksense/#", "butlertest/#"]).start()
    port = h.free_port()
    cfg = h.udp_config(port, broker.port)
    task_port = cfg["Butler"]["udpServerConfig"]["portTaskFailure"]
    topics = {
        "taskFailureTopic": "butlertest/12/failed",
        "taskFailureFullTopic": "butlertest/12/failed/full",
        "taskAbortedTopic": "butlertest/12/aborted",
        "taskAbortedFullTopic": "butlertest/12/aborted/full",
        "taskFailureServerStatusTopic": "butlertest/12/status/task",
        "sessionServerStatusTopic": "butlertest/12/status/session",
    }
    cfg["Butler"]["mqttConfig"].update(topics)
    cfg["Butler"]["mqttConfig"].update({"taskFailureSendFull": False,
                                        "taskAbortedSendFull": True})
    butler = h.Butler(ctx.butler, cfg).start()
    sub.wait_for(lambda m: m == ["start"], topic="butlertest/12/status/task",
                 what="start on the custom task server status topic")
    sub.wait_for(lambda m: m == ["start"],
                 topic="butlertest/12/status/session",
                 what="start on the custom session server status topic")
    h.check(True, "'start' goes to the custom status topics")

    h.send_udp(task_port, datagram("/scheduler-reload-failed/", "Custom fail",
                                   21))
    h.send_udp(task_port, datagram("/scheduler-reload-aborted/",
                                   "Custom abort", 22, level="WARN",
                                   message="Execution State Change to "
                                   "Aborting"))
    h.send_udp(task_port, f"{HOST};Custom legacy;App;sa")
    expected = [
        ("butlertest/12/failed", "Custom fail"),
        ("butlertest/12/aborted", "Custom abort"),
        ("butlertest/12/aborted/full",
         full_json("Custom abort", "Sales dashboard", USER, "WARN", 22,
                   "Execution State Change to Aborting")),
        ("butlertest/12/failed", "Custom legacy"),
    ]
    got = sub.wait_for(lambda m: len([t for t, _ in m
                                      if t.startswith("butlertest/12/")
                                      and "/status/" not in t]) >= 4,
                       what="the events on the custom topics")
    got = [(t, p) for t, p in got
           if t.startswith("butlertest/12/") and "/status/" not in t]
    h.check_eq(got, expected, "custom topics are used; with "
               "taskFailureSendFull false there is no full failure message, "
               "the aborted full message still comes")
    default_used = [(t, p) for t, p in sub.messages()
                    if t.startswith("qliksense/")
                    and t != "qliksense/butler/mqtt/status"]
    h.check_eq(default_used, [], "nothing went to the default topics")
    h.check_ping(port)
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")
    sub.stop()
    broker.stop()


def test(ctx):
    default_topics(ctx)
    custom_topics(ctx)


if __name__ == "__main__":
    h.main(test)

#!/usr/bin/env python3
"""Seed and v2 senseStartTask against the fake QRS: GET /senseStartTask
?taskId=<id> and /v2/senseStartTask answer 200 {"taskId"} after one lookup
(GET /qrs/task/full?filter=id eq <id>) and one start (POST
/qrs/task/start/many [id]), and the fake started that task once; an
upper-case id works too; a malformed or empty id, a missing taskId and a bad
%-escape answer 400 naming the problem and call nothing; an unknown id
answers 404 and starts nothing. With startTaskFilter enabled, a task allowed
by id, by tag or by custom property is started, and a task allowed by none
(including one whose custom property value sits on another property) answers
403 and is not started."""

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

SALES = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"      # startTask1, tasks1
WEEKLY = "8d1b7c2e-3f4a-4b5c-9d6e-7f8091a2b3c4"     # taskGroup=tasks3,
#                                      legacyTaskGroup=tasks1
TARGETS = "210832b5-6174-4572-bd19-3e61eda675ef"    # startTask1, tasks1
NIGHTLY = "0a1b2c3d-1111-2222-3333-444455556666"    # nightly
FIN2 = "09b3c78f-04dd-45e3-a4bf-1b074d6572fa"       # startTask2, nightly
UNKNOWN = "deadbeef-0000-4000-8000-000000000000"


def expect_start(qrs, port, path, task_id, started_id, what):
    """Starts `task_id` through `path`; checks the reply, the two QRS calls
    and that the fake started `started_id` (its spelling) once."""
    mark = len(qrs.calls())
    before = qrs.started()
    res = h.http_request(port, "GET", h.query(path, {"taskId": task_id}))
    h.check_eq((res.status, res.json), (200, {"taskId": task_id}),
               f"{what}: 200 {{\"taskId\"}}")
    h.check_eq(qrs.started(), before + [started_id],
               f"{what}: the fake started the task once")
    calls = qrs.calls()[mark:]
    h.check_eq([(c["method"], c["path"], c["status"]) for c in calls],
               [("GET", "/qrs/task/full", 200),
                ("POST", "/qrs/task/start/many", 204)],
               f"{what}: one lookup, then one start")
    h.check_eq(calls[0]["query"].get("filter").lower(),
               f"id eq {task_id}".lower(), f"{what}: the lookup filters by id")
    h.check_eq((calls[1]["body"], calls[1]["headers"].get("content-type")),
               ([started_id], "application/json"),
               f"{what}: start/many names the task in a JSON body")
    for c in calls:
        h.check(c["client_cert_cn"] == h.CLIENT_CN
                and c["headers"].get("x-qlik-user") == h.SENSE_USER
                and c["query"].get("xrfkey")
                == c["headers"].get("x-qlik-xrfkey"),
                f"{what}: {c['method']} carries the client cert, X-Qlik-User "
                "and the Xrfkey", repr(c))


def expect_refused(qrs, port, target, status, message, what, calls=0):
    """Checks an error reply; `calls` QRS calls were made, nothing
    started."""
    mark = len(qrs.calls())
    before = qrs.started()
    res = h.http_request(port, "GET", target)
    h.check_error(res, status, message, what)
    h.check_eq(qrs.started(), before, f"{what}: nothing started")
    h.check_eq(len(qrs.calls()) - mark, calls, f"{what}: {calls} QRS call(s)")


def test(ctx):
    certs = h.make_sense_certs(h.scratch_dir("certs"))
    qrs = h.start_fake_qrs(certs)
    port = h.free_port()
    cfg = h.sense_config(port, certs, qrs_port=qrs.port,
                         flags=("senseStartTask",))
    butler = h.Butler(ctx.butler, cfg).start()

    expect_start(qrs, port, "/senseStartTask", SALES, SALES,
                 "seed GET /senseStartTask")
    expect_start(qrs, port, "/v2/senseStartTask", TARGETS, TARGETS,
                 "v2 GET /v2/senseStartTask")
    expect_start(qrs, port, "/senseStartTask", NIGHTLY.upper(), NIGHTLY,
                 "an upper-case task id")
    h.check_eq(qrs.started(), [SALES, TARGETS, NIGHTLY],
               "three starts, each once")

    # -- bad input: 400, nothing called -----------------------------------------
    for path in ("/senseStartTask", "/v2/senseStartTask"):
        for bad in ("not-a-guid", "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3",
                    "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3ez",
                    "{e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e}", ""):
            expect_refused(qrs, port, h.query(path, {"taskId": bad}), 400,
                           "Parameter taskId must be a Qlik Sense id (GUID), "
                           f"got \"{bad}\"",
                           f"{path} with taskId {bad!r} answers 400")
        expect_refused(qrs, port, path, 400,
                       "Required parameter taskId is missing",
                       f"{path} without taskId answers 400")
        expect_refused(qrs, port, h.query(path, {"taskid": SALES}), 400,
                       "Required parameter taskId is missing",
                       f"{path} with taskid (wrong case) answers 400")
        expect_refused(qrs, port, path + "?taskId=%zz", 400,
                       "Query string has a malformed %-escape",
                       f"{path} with a bad %-escape answers 400")

    # -- unknown task: 404 after the lookup, no start ------------------------------
    for path in ("/senseStartTask", "/v2/senseStartTask"):
        expect_refused(qrs, port, h.query(path, {"taskId": UNKNOWN}), 404,
                       f"Task {UNKNOWN} does not exist in Qlik Sense",
                       f"{path} with an unknown task answers 404", calls=1)
    h.check_ping(port)
    h.check_eq(butler.stop(), 0, "butler exits 0")

    # -- startTaskFilter ------------------------------------------------------------
    qrs.reset()
    port = h.free_port()
    cfg = h.sense_config(port, certs, qrs_port=qrs.port,
                         flags=("senseStartTask",))
    cfg["Butler"]["startTaskFilter"] = {
        "enable": True,
        "allowTask": {"taskId": [TARGETS], "tag": ["startTask2"],
                      "customProperty": [{"name": "taskGroup",
                                          "value": "tasks1"}]}}
    h.Butler(ctx.butler, cfg, name="butler-filter").start()
    expect_start(qrs, port, "/senseStartTask", TARGETS, TARGETS,
                 "filter: a task allowed by its id")
    expect_start(qrs, port, "/senseStartTask", FIN2, FIN2,
                 "filter: a task allowed by its tag (startTask2)")
    expect_start(qrs, port, "/v2/senseStartTask", SALES, SALES,
                 "filter: a task allowed by its custom property "
                 "(taskGroup=tasks1)")
    for task, why in ((NIGHTLY, "allowed by nothing"),
                      (WEEKLY, "with tasks1 only on legacyTaskGroup")):
        for path in ("/senseStartTask", "/v2/senseStartTask"):
            expect_refused(qrs, port, h.query(path, {"taskId": task}), 403,
                           f"Task {task} may not be started (not allowed by "
                           "Butler.startTaskFilter)",
                           f"filter: {path} of a task {why} answers 403",
                           calls=1)
    expect_refused(qrs, port, h.query("/senseStartTask", {"taskId": UNKNOWN}),
                   404, f"Task {UNKNOWN} does not exist in Qlik Sense",
                   "filter: an unknown task still answers 404", calls=1)
    h.check_eq(qrs.started(), [TARGETS, FIN2, SALES],
               "with the filter only the allowed tasks were started")
    h.check_ping(port)


if __name__ == "__main__":
    h.main(test)

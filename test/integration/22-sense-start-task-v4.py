#!/usr/bin/env python3
"""v4 task starts, PUT and POST /v4/reloadtask/{taskId}/start, against the
fake QRS: the exact reply ({"tasksId":{"started","invalid","denied"},
"tasksTag","tasksTagDenied","tasksCP","tasksCPDenied"}) for ids, tags and
custom properties from the optional body, checked against the fake's data;
the exact QRS calls (one lookup by all ids, one per tag and per custom
property, then one POST /qrs/task/start/many naming each task once, last);
"-" as the path id; allTaskIdsMustExist=true with an unknown id starts no
id-based task but still the tag-based ones; with startTaskFilter, denied
ids, tags and custom properties are reported and not looked up or started.
Every bad body or parameter answers 400 naming it and calls nothing."""

import json
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

SALES = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"
WEEKLY = "8d1b7c2e-3f4a-4b5c-9d6e-7f8091a2b3c4"
TARGETS = "210832b5-6174-4572-bd19-3e61eda675ef"
NIGHTLY = "0a1b2c3d-1111-2222-3333-444455556666"
FIN2 = "09b3c78f-04dd-45e3-a4bf-1b074d6572fa"
COCKPIT = "a1a11a11-b1c0-4879-88fc-c7cdd9c1cf3e"
ARCHIVE = "eaf1da4f-fd44-4cea-b2de-7b67a6496ee3"
SYNC = "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9"
UNKNOWN = "deadbeef-0000-4000-8000-000000000000"

NAMES = {SALES: "Reload of Sales", WEEKLY: "Reload of Sales (weekly)",
         TARGETS: "Reload of 2021 sales targets", NIGHTLY: "Nightly finance",
         FIN2: "Reload of Finance (step 2)", COCKPIT:
         "Reload of Manager's cockpit", ARCHIVE: "Archive QVD files",
         SYNC: "User sync of CORP"}

KEYS = ["tasksId", "tasksTag", "tasksTagDenied", "tasksCP", "tasksCPDenied"]


def ref(task_id, given=None):
    """A reply entry {"taskId" (as given), "taskName"}."""
    return {"taskId": given or task_id, "taskName": NAMES[task_id]}


def reply(started=(), invalid=(), denied=(), tag=(), tag_denied=(), cp=(),
          cp_denied=()):
    return {"tasksId": {"started": list(started),
                        "invalid": [{"taskId": i} for i in invalid],
                        "denied": [{"taskId": i} for i in denied]},
            "tasksTag": list(tag),
            "tasksTagDenied": [{"tag": t} for t in tag_denied],
            "tasksCP": list(cp),
            "tasksCPDenied": [{"name": n, "value": v} for n, v in cp_denied]}


def by_id(task_id):
    return {"type": "starttaskid", "payload": {"taskId": task_id}}


def by_tag(tag):
    return {"type": "starttasktag", "payload": {"tag": tag}}


def by_cp(name, value):
    return {"type": "starttaskcustomproperty",
            "payload": {"customPropertyName": name,
                        "customPropertyValue": value}}


def ids_filter(*ids):
    return " or ".join(f"id eq {i}" for i in ids)


def tag_filter(tag):
    return f"tags.name eq '{tag}'"


def cp_filter(name, value):
    return (f"customProperties.definition.name eq '{name}' and "
            f"customProperties.value eq '{value}'")


class Starter:
    """Sends v4 starts to one butler and checks them against the fake."""

    def __init__(self, port, qrs):
        self.port = port
        self.qrs = qrs

    def send(self, method, path_id, body=None, query=None, raw=None):
        target = f"/v4/reloadtask/{path_id}/start"
        if query:
            target = h.query(target, query)
        if raw is not None:
            return h.http_request(self.port, method, target, body=raw,
                                  headers={"Content-Type":
                                           "application/json"})
        return h.http_request(self.port, method, target, body=body)

    def start(self, what, method, path_id, body=None, query=None,
              expect=None, lookups=(), started=()):
        """Checks a 200 reply equal to `expect`, the lookups (filters, any
        order) followed by one start/many with `started` (none if empty),
        and that the fake started exactly those."""
        mark = len(self.qrs.calls())
        before = self.qrs.started()
        res = self.send(method, path_id, body, query)
        h.check_eq((res.status, res.json), (200, expect),
                   f"{what}: 200 with the exact reply")
        h.check_eq(list(res.json), KEYS, f"{what}: reply keys in order")
        calls = self.qrs.calls()[mark:]
        n = len(lookups)
        looked = [c for c in calls[:n]
                  if (c["method"], c["path"]) == ("GET", "/qrs/task/full")]
        h.check_eq(sorted(c["query"].get("filter") for c in looked),
                   sorted(lookups),
                   f"{what}: one lookup each for the ids, tags and custom "
                   "properties, first")
        rest = [(c["method"], c["path"], c["body"], c["status"])
                for c in calls[n:]]
        want = ([("POST", "/qrs/task/start/many", list(started), 204)]
                if started else [])
        h.check_eq(rest, want, f"{what}: then "
                   + ("one start/many naming each task once" if started
                      else "no start"))
        h.check_eq(self.qrs.started(), before + list(started),
                   f"{what}: the fake started exactly those tasks")
        for c in calls:
            h.check(c["client_cert_cn"] == h.CLIENT_CN
                    and c["headers"].get("x-qlik-user") == h.SENSE_USER
                    and c["query"].get("xrfkey")
                    == c["headers"].get("x-qlik-xrfkey"), f"{what}: "
                    f"{c['method']} {c['path']} is authenticated", repr(c))
        return res

    def refuse(self, what, message, method="PUT", path_id="-", body=None,
               query=None, raw=None):
        mark = len(self.qrs.calls())
        before = self.qrs.started()
        res = self.send(method, path_id, body, query, raw)
        h.check_error(res, 400, message, f"{what} answers 400")
        h.check_eq((len(self.qrs.calls()) - mark, self.qrs.started()),
                   (0, before), f"{what}: no QRS call, nothing started")


def test(ctx):
    certs = h.make_sense_certs(h.scratch_dir("certs"))
    qrs = h.start_fake_qrs(certs)
    port = h.free_port()
    cfg = h.sense_config(port, certs, qrs_port=qrs.port,
                         flags=("senseStartTask",))
    h.Butler(ctx.butler, cfg).start()
    s = Starter(port, qrs)

    # -- good requests ------------------------------------------------------------
    for method in ("PUT", "POST"):
        s.start(f"{method} of one task, no body", method, SALES,
                expect=reply(started=[ref(SALES)]),
                lookups=[ids_filter(SALES)], started=[SALES])
    s.start("an upper-case path id is reported as given", "PUT",
            SALES.upper(), expect=reply(started=[ref(SALES, SALES.upper())]),
            lookups=[ids_filter(SALES.upper())], started=[SALES])
    s.start("an empty array body", "PUT", TARGETS, body=[],
            expect=reply(started=[ref(TARGETS)]),
            lookups=[ids_filter(TARGETS)], started=[TARGETS])
    for method in ("PUT", "POST"):
        s.start(f"{method} with ids, a tag and a custom property", method,
                COCKPIT,
                body=[by_id(TARGETS), by_tag("startTask2"),
                      by_cp("taskGroup", "tasks1")],
                expect=reply(started=[ref(COCKPIT), ref(TARGETS)],
                             tag=[ref(FIN2), ref(ARCHIVE)],
                             cp=[ref(SALES), ref(TARGETS)]),
                lookups=[ids_filter(COCKPIT, TARGETS),
                         tag_filter("startTask2"),
                         cp_filter("taskGroup", "tasks1")],
                started=[COCKPIT, TARGETS, FIN2, ARCHIVE, SALES])
    s.start("\"-\" as the path id with a tag", "PUT", "-",
            body=[by_tag("nightly")],
            expect=reply(tag=[ref(NIGHTLY), ref(FIN2), ref(SYNC)]),
            lookups=[tag_filter("nightly")], started=[NIGHTLY, FIN2, SYNC])
    s.start("\"-\" with a custom property (pairs name and value)", "POST",
            "-", body=[by_cp("taskGroup", "tasks3")],
            expect=reply(cp=[ref(WEEKLY)]),
            lookups=[cp_filter("taskGroup", "tasks3")], started=[WEEKLY])
    s.start("a task reached by id, by tag and by custom property is "
            "started once", "PUT", SALES,
            body=[by_id(SALES), by_tag("startTask1"),
                  by_cp("taskGroup", "tasks1")],
            expect=reply(started=[ref(SALES)],
                         tag=[ref(SALES), ref(WEEKLY), ref(TARGETS)],
                         cp=[ref(SALES), ref(TARGETS)]),
            lookups=[ids_filter(SALES), tag_filter("startTask1"),
                     cp_filter("taskGroup", "tasks1")],
            started=[SALES, WEEKLY, TARGETS])
    s.start("a tag and a custom property that match nothing", "PUT", "-",
            body=[by_tag("no such tag"), by_cp("taskGroup", "none")],
            expect=reply(), lookups=[tag_filter("no such tag"),
                                     cp_filter("taskGroup", "none")])
    s.start("a tag with a quote is quoted for QRS", "PUT", "-",
            body=[by_tag("it's")], expect=reply(),
            lookups=["tags.name eq 'it''s'"])

    # -- unknown ids and allTaskIdsMustExist ------------------------------------------
    for query in (None, {"allTaskIdsMustExist": "false"}):
        s.start(f"an unknown id with allTaskIdsMustExist {query and 'false'}",
                "PUT", SALES, body=[by_id(UNKNOWN)], query=query,
                expect=reply(started=[ref(SALES)], invalid=[UNKNOWN]),
                lookups=[ids_filter(SALES, UNKNOWN)], started=[SALES])
    s.start("allTaskIdsMustExist=true with an unknown id starts no id "
            "task, but the tag's", "POST", SALES,
            body=[by_id(UNKNOWN), by_tag("startTask2")],
            query={"allTaskIdsMustExist": "true"},
            expect=reply(invalid=[UNKNOWN], tag=[ref(FIN2), ref(ARCHIVE)]),
            lookups=[ids_filter(SALES, UNKNOWN), tag_filter("startTask2")],
            started=[FIN2, ARCHIVE])
    s.start("allTaskIdsMustExist=true with only an unknown id starts "
            "nothing", "PUT", UNKNOWN, query={"allTaskIdsMustExist": "true"},
            expect=reply(invalid=[UNKNOWN]), lookups=[ids_filter(UNKNOWN)])
    s.start("allTaskIdsMustExist=true with known ids starts them", "PUT",
            SALES, body=[by_id(TARGETS)],
            query={"allTaskIdsMustExist": "true"},
            expect=reply(started=[ref(SALES), ref(TARGETS)]),
            lookups=[ids_filter(SALES, TARGETS)], started=[SALES, TARGETS])

    # -- every bad input: 400, no QRS call ------------------------------------------
    guid = 'Parameter taskId must be a Qlik Sense id (GUID), got "{}"'
    s.refuse("no id and no body", "No task to start: give a task id in the "
             "path or entries in the body")
    s.refuse("no id and an empty array", "No task to start: give a task id "
             "in the path or entries in the body", body=[])
    s.refuse("a malformed path id", guid.format("abc"), path_id="abc")
    s.refuse("a path id one digit short", guid.format(SALES[:-1]),
             path_id=SALES[:-1], method="POST")
    s.refuse("a malformed id in the body", guid.format("abc"), path_id=SALES,
             body=[by_id("abc")])
    s.refuse("invalid JSON", "Request body is not valid JSON", raw="[{")
    s.refuse("invalid JSON after a good entry",
             "Request body is not valid JSON",
             raw=json.dumps([by_id(SALES)]) + "]")
    not_array = ('Request body must be a JSON array of {"type","payload"} '
                 'entries')
    for body in (by_id(SALES), "text", 42, None):
        s.refuse(f"a body that is {json.dumps(body)}", not_array,
                 path_id=SALES, raw=json.dumps(body))
    for entry in ({"payload": {"taskId": SALES}}, {"type": 1}, 7, "x",
                  {"type": None, "payload": {}}):
        s.refuse(f"the entry {json.dumps(entry)}",
                 'Each body entry needs a "type"', path_id=SALES,
                 body=[entry])
    s.refuse("a bad entry after a good one", 'Each body entry needs a "type"',
             path_id=SALES, body=[by_tag("startTask1"), {}])
    s.refuse("an unknown type", 'Unknown body entry type "starttask" '
             '(starttaskid, starttasktag, starttaskcustomproperty)',
             body=[{"type": "starttask", "payload": {"taskId": SALES}}])
    s.refuse("a type in the wrong case", 'Unknown body entry type '
             '"StartTaskId" (starttaskid, starttasktag, '
             'starttaskcustomproperty)',
             body=[{"type": "StartTaskId", "payload": {"taskId": SALES}}])
    s.refuse("a keyvaluestore entry", "Body entries of type keyvaluestore "
             "are not supported: this Butler has no key-value store yet",
             path_id=SALES,
             body=[{"type": "keyvaluestore", "payload": {
                 "namespace": "ns", "key": "k", "value": "v", "ttl": 0}}])
    for payload in ("x", [], 3):
        s.refuse(f"a payload that is {json.dumps(payload)}",
                 "Body entry starttaskid needs a payload object",
                 body=[{"type": "starttaskid", "payload": payload}])
    missing = "Body entry payload needs a non-empty {}"
    for entry, field in (
            ({"type": "starttaskid"}, "taskId"),
            ({"type": "starttaskid", "payload": {}}, "taskId"),
            ({"type": "starttaskid", "payload": {"taskId": ""}}, "taskId"),
            ({"type": "starttaskid", "payload": {"taskId": 5}}, "taskId"),
            ({"type": "starttaskid", "payload": {"taskid": SALES}}, "taskId"),
            ({"type": "starttasktag", "payload": {}}, "tag"),
            ({"type": "starttasktag", "payload": {"tag": ""}}, "tag"),
            ({"type": "starttasktag", "payload": {"tag": ["a"]}}, "tag"),
            (by_cp("", "tasks1"), "customPropertyName"),
            ({"type": "starttaskcustomproperty",
              "payload": {"customPropertyValue": "tasks1"}},
             "customPropertyName"),
            ({"type": "starttaskcustomproperty",
              "payload": {"customPropertyName": "taskGroup"}},
             "customPropertyValue"),
            (by_cp("taskGroup", ""), "customPropertyValue")):
        s.refuse(f"the entry {json.dumps(entry)}", missing.format(field),
                 body=[entry])
    for value in ("yes", "1", "TRUE "):
        s.refuse(f"allTaskIdsMustExist={value!r}",
                 "Parameter allTaskIdsMustExist must be true or false, got "
                 f"\"{value}\"", path_id=SALES,
                 query={"allTaskIdsMustExist": value})
    res = h.http_request(port, "GET", f"/v4/reloadtask/{SALES}/start")
    h.check_eq((res.status, res.header("allow")), (405, "PUT, POST"),
               "GET on the v4 start answers 405 Allow: PUT, POST")
    h.check_ping(port)

    # -- startTaskFilter --------------------------------------------------------------
    port = h.free_port()
    cfg = h.sense_config(port, certs, qrs_port=qrs.port,
                         flags=("senseStartTask",))
    cfg["Butler"]["startTaskFilter"] = {
        "enable": True,
        "allowTask": {"taskId": [TARGETS], "tag": ["startTask2"],
                      "customProperty": [{"name": "taskGroup",
                                          "value": "tasks1"}]}}
    h.Butler(ctx.butler, cfg, name="butler-filter").start()
    f = Starter(port, qrs)
    f.start("filter: denied ids, tags and custom properties are reported",
            "PUT", NIGHTLY,
            body=[by_id(TARGETS), by_id(SALES), by_id(WEEKLY),
                  by_tag("nightly"), by_tag("startTask2"),
                  by_cp("taskGroup", "tasks3"), by_cp("taskGroup", "tasks1")],
            expect=reply(started=[ref(TARGETS), ref(SALES)],
                         denied=[NIGHTLY, WEEKLY],
                         tag=[ref(FIN2), ref(ARCHIVE)],
                         tag_denied=["nightly"],
                         cp=[ref(SALES), ref(TARGETS)],
                         cp_denied=[("taskGroup", "tasks3")]),
            lookups=[ids_filter(NIGHTLY, TARGETS, SALES, WEEKLY),
                     tag_filter("startTask2"),
                     cp_filter("taskGroup", "tasks1")],
            started=[TARGETS, SALES, FIN2, ARCHIVE])
    f.start("filter: only denied entries start nothing", "POST", NIGHTLY,
            body=[by_tag("startTask1"), by_cp("legacyTaskGroup", "tasks1")],
            expect=reply(denied=[NIGHTLY], tag_denied=["startTask1"],
                         cp_denied=[("legacyTaskGroup", "tasks1")]),
            lookups=[ids_filter(NIGHTLY)])
    f.start("filter: an unknown id is invalid, not denied", "PUT", UNKNOWN,
            expect=reply(invalid=[UNKNOWN]), lookups=[ids_filter(UNKNOWN)])
    f.refuse("filter: bad input is still 400", 'Each body entry needs a '
             '"type"', body=[{}])
    h.check_ping(port)


if __name__ == "__main__":
    h.main(test)

#!/usr/bin/env python3
"""senseAppDump against the fake Engine: GET /senseAppDump?appId=,
/v2/senseAppDump?appId=, /v4/senseappdump/{appId} and /v4/app/{appId}/dump
answer 200 with the dump JSON: exactly the contract's keys (appId,
properties, loadScript, lineage, sheets, stories, masterobjects, appprops,
dataconnections, dimensions, measures, bookmarks, embeddedmedia, snapshots,
fields, variables), each matching the fake's data (the script, every sheet
with its charts, the story with its slide, dimensions, measures, bookmarks,
snapshots, variables with their flags, fields, media, data connections,
lineage); an app without content dumps empty lists; an app with 190
objects dumps them all, in order; an object the engine
no longer knows (qHandle null) is left out. Each dump is one session
on /app/<appId> (X-Qlik-User, Butler's client certificate) that opens the
app without data, reads and never writes, and is closed cleanly. An unknown
app answers 422 with the engine's message (session closed cleanly too); a
malformed, empty or missing appId answers 400 and opens no session."""

import copy
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

UNKNOWN = "deadbeef-0000-4000-8000-000000000000"
DUMP_KEYS = {"appId", "properties", "loadScript", "lineage", "sheets",
             "stories", "masterobjects", "appprops", "dataconnections",
             "dimensions", "measures", "bookmarks", "embeddedmedia",
             "snapshots", "fields", "variables"}
#: Engine methods that change an app; a dump must not send them.
WRITES = {"DoReload", "DoSave", "SetScript", "SetProperties",
          "SetAppProperties", "DestroyObject", "CreateObject"}


def tree(obj):
    """An object and its children as GetFullPropertyTree gives them."""
    return {"qProperty": copy.deepcopy(obj["properties"]),
            "qChildren": [tree(c) for c in obj.get("children", [])]}


def expected_dump(app):
    """Builds the dump of a fake app record, straight from the data set."""
    objs = app.get("objects", [])

    def of_type(t):
        return [o for o in objs if o["properties"]["qInfo"]["qType"] == t]

    props = copy.deepcopy(app.get("properties", {}))
    props.setdefault("qTitle", app["name"])
    if app.get("last_reload_time"):
        props["qLastReloadTime"] = app["last_reload_time"]
    return {
        "appId": app["id"],
        "properties": props,
        "loadScript": app.get("script", ""),
        "lineage": {"qLineage": app.get("lineage", [])},
        "sheets": [tree(o) for o in of_type("sheet")],
        "stories": [tree(o) for o in of_type("story")],
        "masterobjects": [tree(o) for o in of_type("masterobject")],
        "appprops": [tree(o) for o in of_type("appprops")],
        "dataconnections": app.get("connections", []),
        "dimensions": [d["properties"] for d in app.get("dimensions", [])],
        "measures": [m["properties"] for m in app.get("measures", [])],
        "bookmarks": [b["properties"] for b in app.get("bookmarks", [])],
        "snapshots": [o["properties"] for o in of_type("snapshot")],
        "embeddedmedia": app.get("media", []),
        "fields": app.get("fields", []),
        "variables": [variable_item(v) for v in app.get("variables", [])],
    }


def variable_item(v):
    """The parts of a variable list item that come from the data set."""
    p = v["properties"]
    item = {"qName": p["qName"], "qDefinition": p["qDefinition"],
            "qInfo": p["qInfo"]}
    if p.get("qComment"):
        item["qDescription"] = p["qComment"]
    if v.get("reserved"):
        item["qIsReserved"] = True
    if v.get("script_created"):
        item["qIsScriptCreated"] = True
    return item


VARIABLE_KEYS = ("qName", "qDefinition", "qInfo", "qDescription",
                 "qIsReserved", "qIsScriptCreated")


def check_dump(res, app, what):
    h.check_eq(res.status, 200, f"{what}: 200")
    dump = res.json if isinstance(res.json, dict) else {}
    h.check_eq(set(dump), DUMP_KEYS, f"{what}: exactly the contract's keys")
    want = expected_dump(app)
    got_vars = [{k: v[k] for k in VARIABLE_KEYS if k in v}
                for v in dump.get("variables", [])]
    for key in sorted(DUMP_KEYS - {"variables"}):
        h.check_eq(dump.get(key), want[key], f"{what}: {key} as in the data")
    h.check_eq(got_vars, want["variables"],
               f"{what}: variables (names, definitions, comments, flags)")


BIG_APP = "0b1c2d3e-4f50-4617-8829-3a4b5c6d7e8f"


def big_app():
    """An app with more objects than Butler sends requests at once."""
    def obj(qid, qtype, title, **extra):
        props = {"qInfo": {"qId": qid, "qType": qtype},
                 "qMetaDef": {"title": title}}
        props.update(extra)
        return {"properties": props}

    sheets = []
    for i in range(30):
        sheet = obj(f"sheet-{i:02d}", "sheet", f"Sheet {i}", rank=i)
        sheet["children"] = [obj(f"chart-{i:02d}-{j}", "barchart",
                                 f"Chart {i}.{j}") for j in range(2)]
        sheets.append(sheet)
    return {
        "id": BIG_APP, "name": "Big app", "script": "LOAD 1 AS x "
        "AUTOGENERATE 1;", "last_reload_time": "2024-01-02T03:04:05.000Z",
        "properties": {"qTitle": "Big app"},
        "objects": sheets,
        "dimensions": [obj(f"dim-{i:02d}", "dimension", f"Dim {i}",
                           qDim={"qFieldDefs": [f"F{i}"], "qGrouping": "N"})
                       for i in range(40)],
        "measures": [obj(f"msr-{i:02d}", "measure", f"Measure {i}",
                         qMeasure={"qDef": f"Sum(F{i})", "qLabel": f"M{i}"})
                     for i in range(40)],
        "bookmarks": [obj(f"bm-{i:02d}", "bookmark", f"Bookmark {i}")
                      for i in range(20)],
    }


def test(ctx):
    fe = h.load_fake_engine()
    data = copy.deepcopy(fe.DEFAULT_DATA)
    data["apps"].append(big_app())
    apps = {a["id"]: a for a in data["apps"]}
    sales, finance, empty = (fe.SALES_APP_ID, fe.FINANCE_APP_ID,
                             fe.EMPTY_APP_ID)
    certs = h.make_sense_certs(h.scratch_dir("certs"))
    engine = h.start_fake_engine(certs, data=data)
    port = h.free_port()
    cfg = h.sense_config(port, certs, engine_port=engine.port,
                         flags=("senseAppDump",))
    h.Butler(ctx.butler, cfg).start()

    # The data set has what a dump must show.
    want = expected_dump(apps[sales])
    h.check(all(want[k] for k in DUMP_KEYS),
            "the fake's sales app has content for every dump key")
    h.check_eq([len(s["qChildren"]) for s in want["sheets"]], [3, 2],
               "its two sheets hold 3 and 2 charts")

    def targets(app_id):
        return [h.query("/senseAppDump", {"appId": app_id}),
                h.query("/v2/senseAppDump", {"appId": app_id}),
                f"/v4/senseappdump/{app_id}", f"/v4/app/{app_id}/dump"]

    def session_ok(rec, app_id, what):
        h.check_eq((rec["path"], rec["status"]), (f"/app/{app_id}", 101),
                   f"{what}: the session went to /app/<appId>")
        h.check_eq((rec["headers"].get("x-qlik-user"), rec["client_cert_cn"]),
                   (h.SENSE_USER, h.CLIENT_CN),
                   f"{what}: X-Qlik-User and Butler's client certificate")
        first = rec["requests"][0] if rec["requests"] else {}
        h.check_eq((first.get("handle"), first.get("method"),
                    first.get("params")),
                   (-1, "OpenDoc", {"qDocName": app_id, "qNoData": True}),
                   f"{what}: OpenDoc without data first")
        methods = {r["method"] for r in rec["requests"]}
        h.check(not methods & WRITES, f"{what}: no call changes the app",
                methods & WRITES)
        h.check_eq((rec["closed_cleanly"], rec.get("close_code")),
                   (True, 1000), f"{what}: the session was closed cleanly")
        return methods

    sessions = 0
    for target in targets(sales):
        res = h.http_request(port, "GET", target)
        check_dump(res, apps[sales], f"GET {target}")
        sessions += 1
        recs = h.wait_engine_closed(engine, sessions, "the dump session")
        h.check_eq(len(recs), sessions, f"GET {target}: one session")
        methods = session_ok(recs[-1], sales, f"GET {target}")
    h.check(methods >= {"GetAppProperties", "GetScript", "GetConnections",
                        "GetLineage", "CreateSessionObject", "GetLayout",
                        "GetObject", "GetFullPropertyTree", "GetDimension",
                        "GetMeasure", "GetBookmark", "GetProperties"},
            "the dump read the app through the engine's calls", methods)

    for app_id, target in ((finance, f"/v4/app/{finance}/dump"),
                           (empty, h.query("/senseAppDump",
                                           {"appId": empty})),
                           (BIG_APP, f"/v4/senseappdump/{BIG_APP}")):
        res = h.http_request(port, "GET", target)
        check_dump(res, apps[app_id], f"GET {target} ({apps[app_id]['name']})")
        sessions += 1
        session_ok(h.wait_engine_closed(engine, sessions, "the session")[-1],
                   app_id, f"the {apps[app_id]['name']} session")
    res = h.http_request(port, "GET", f"/v4/app/{empty}/dump")
    h.check(all(res.json[k] == [] for k in DUMP_KEYS - {
        "appId", "properties", "loadScript", "lineage"})
        and res.json["loadScript"] == ""
        and res.json["lineage"] == {"qLineage": []},
        "an app without content dumps empty lists and an empty script",
        repr(res))
    sessions += 1

    # An object that went away between the list and GetObject (the engine
    # answers qHandle null) is left out; the rest of the dump stands.
    engine.script({"match": "^GetObject$", "result": {
        "qReturn": {"qType": None, "qHandle": None}}})
    res = h.http_request(port, "GET", f"/v4/app/{sales}/dump")
    h.check_eq(res.status, 200, "a dump with a vanished object answers 200")
    objects = [res.json[k] for k in ("sheets", "stories", "masterobjects",
                                     "appprops")]
    full = [want[k] for k in ("sheets", "stories", "masterobjects",
                              "appprops")]
    h.check_eq(sum(map(len, objects)), sum(map(len, full)) - 1,
               "the vanished object is left out")
    h.check(all(o in f for got, f in zip(objects, full) for o in got),
            "the other objects are dumped as they are")
    h.check_eq(res.json["dimensions"], want["dimensions"],
               "the rest of the dump is complete")
    sessions += 1

    # -- an unknown app: 422 with the engine's message -------------------------------
    message = (f"the engine at 127.0.0.1:{engine.port} answered OpenDoc with "
               f"error 1003 (App not found: {UNKNOWN})")
    for target in targets(UNKNOWN):
        res = h.http_request(port, "GET", target)
        h.check_error(res, 422, message, f"GET {target} of an unknown app "
                      "answers 422 with the engine's message")
        sessions += 1
        rec = h.wait_engine_closed(engine, sessions, "the session")[-1]
        h.check_eq([r["method"] for r in rec["requests"]], ["OpenDoc"],
                   f"GET {target}: nothing after the failed OpenDoc")
        session_ok(rec, UNKNOWN, f"GET {target} of an unknown app")

    # -- bad input: 400, no session -----------------------------------------------------
    def bad(target, message, what):
        res = h.http_request(port, "GET", target)
        h.check_error(res, 400, message, f"{what} answers 400")
        h.check_eq(len(engine.calls()), sessions, f"{what}: no session")

    guid = 'Parameter appId must be a Qlik Sense id (GUID), got "{}"'
    for value in ("abc", sales[:-1], sales + "0", "", " " + sales,
                  "../" + sales):
        for target in targets(value)[:2]:
            bad(target, guid.format(value), f"GET {target}")
    for value in ("abc", sales[:-1], sales + "0", "x y"):
        for target in targets(value)[2:]:
            bad(target.replace(" ", "%20"), guid.format(value),
                f"GET {target}")
    for path in ("/senseAppDump", "/v2/senseAppDump"):
        bad(path, "Required parameter appId is missing",
            f"GET {path} without appId")
        bad(h.query(path, {"appid": sales}),
            "Required parameter appId is missing",
            f"GET {path} with appid (wrong case)")
        bad(path + "?appId=%g1", "Query string has a malformed %-escape",
            f"GET {path} with a bad %-escape")
    res = h.http_request(port, "POST", f"/v4/app/{sales}/dump")
    h.check_eq((res.status, res.header("allow")), (405, "GET"),
               "POST on the v4 dump answers 405 Allow: GET")
    h.check_eq(len(engine.calls()), sessions, "no session for the 405")
    h.check_ping(port)


if __name__ == "__main__":
    h.main(test)

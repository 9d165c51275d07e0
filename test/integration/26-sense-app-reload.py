#!/usr/bin/env python3
"""senseAppReload, PUT /v4/app/{appId}/reload, against the fake Engine and
the fake QRS: {"reloadMode":1,"partialReload":true,
"startQSEoWTaskOnSuccess":[a,b]} answers 201 {"appId"} after the engine saw
OpenDoc (with data), DoReload {qMode 1, qPartial true, qDebug false} and
DoSave, in one cleanly closed session, and QRS started a and b (one lookup,
one start/many); no body or {} reloads fully in mode 0 and starts nothing;
an unknown follow-up task is skipped. The fake's failing app answers 500
naming the app, is not saved, and its startQSEoWTaskOnFailure tasks are
started (not the success ones). An unknown app answers 422 and starts
nothing. POST with X-HTTP-Method-Override: PUT works, plain POST is 405.
Every bad body answers 400 naming the parameter, with no session and no
QRS call."""

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

SALES_TASK = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"
NIGHTLY = "0a1b2c3d-1111-2222-3333-444455556666"
FIN2 = "09b3c78f-04dd-45e3-a4bf-1b074d6572fa"
ARCHIVE = "eaf1da4f-fd44-4cea-b2de-7b67a6496ee3"
SYNC = "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9"
UNKNOWN = "deadbeef-0000-4000-8000-000000000000"


def test(ctx):
    fe = h.load_fake_engine()
    sales, finance = fe.SALES_APP_ID, fe.FINANCE_APP_ID
    certs = h.make_sense_certs(h.scratch_dir("certs"))
    engine = h.start_fake_engine(certs, reload_ms=50)
    qrs = h.start_fake_qrs(certs)
    port = h.free_port()
    cfg = h.sense_config(port, certs, qrs_port=qrs.port,
                         engine_port=engine.port,
                         flags=("senseAppReload",))
    h.Butler(ctx.butler, cfg).start()
    state = {"sessions": 0}

    def reload(what, app_id, body=None, status=201, message=None,
               engine_calls=None, started=(), lookups=None, raw=None,
               method="PUT", headers=None):
        """Reloads; checks the reply, the session's requests (a list of
        (method, params)), that it closed cleanly, and the QRS starts."""
        q_mark = len(qrs.calls())
        q_before = qrs.started()
        target = f"/v4/app/{app_id}/reload"
        if raw is not None:
            res = h.http_request(port, method, target, body=raw,
                                 headers=headers)
        else:
            res = h.http_request(port, method, target, body=body,
                                 headers=headers)
        if message is None:
            h.check_eq((res.status, res.json), (status, {"appId": app_id}),
                       f"{what}: {status} {{\"appId\"}}")
        else:
            h.check_error(res, status, message, f"{what}: {status} with the "
                          "message")
        if engine_calls is not None:
            state["sessions"] += 1
            recs = h.wait_engine_closed(engine, state["sessions"],
                                        f"{what}: the session to end")
            h.check_eq(len(recs), state["sessions"], f"{what}: one session")
            rec = recs[-1]
            h.check_eq((rec["path"], rec["headers"].get("x-qlik-user"),
                        rec["client_cert_cn"]),
                       (f"/app/{app_id}", h.SENSE_USER, h.CLIENT_CN),
                       f"{what}: session on /app/<appId> with X-Qlik-User "
                       "and the client certificate")
            h.check_eq([(r["method"], r["params"]) for r in rec["requests"]],
                       engine_calls, f"{what}: the engine saw "
                       + ", ".join(m for m, _ in engine_calls))
            h.check_eq((rec["closed_cleanly"], rec.get("close_code")),
                       (True, 1000), f"{what}: the session closed cleanly")
        else:
            h.check_eq(len(engine.calls()), state["sessions"],
                       f"{what}: no engine session")
        h.check_eq(qrs.started(), q_before + list(started),
                   f"{what}: QRS started {list(started) or 'nothing'}")
        calls = [(c["method"], c["path"], c["query"].get("filter"), c["body"])
                 for c in qrs.calls()[q_mark:]]
        want = []
        if lookups:
            want.append(("GET", "/qrs/task/full", lookups, None))
        if started:
            want.append(("POST", "/qrs/task/start/many", None,
                         list(started)))
        h.check_eq(calls, want, f"{what}: the QRS calls")
        return res

    def open_doc(app_id):
        return ("OpenDoc", {"qDocName": app_id, "qNoData": False})

    def do_reload(mode, partial):
        return ("DoReload", {"qMode": mode, "qPartial": partial,
                             "qDebug": False})

    save = ("DoSave", {})

    # -- success ------------------------------------------------------------------------
    reload("mode 1, partial, two success tasks", sales,
           {"reloadMode": 1, "partialReload": True,
            "startQSEoWTaskOnSuccess": [FIN2, ARCHIVE],
            "startQSEoWTaskOnFailure": [NIGHTLY]},
           engine_calls=[open_doc(sales), do_reload(1, True), save],
           lookups=f"id eq {FIN2} or id eq {ARCHIVE}", started=[FIN2, ARCHIVE])
    reload("no body: a full reload in mode 0", sales,
           engine_calls=[open_doc(sales), do_reload(0, False), save])
    reload("{}: a full reload in mode 0", sales, {},
           engine_calls=[open_doc(sales), do_reload(0, False), save])
    reload("nulls count as not given", sales,
           {"reloadMode": None, "partialReload": None,
            "startQSEoWTaskOnSuccess": None},
           engine_calls=[open_doc(sales), do_reload(0, False), save])
    reload("mode 2, full, an unknown success task is skipped", sales,
           {"reloadMode": 2, "partialReload": False,
            "startQSEoWTaskOnSuccess": [UNKNOWN, SYNC]},
           engine_calls=[open_doc(sales), do_reload(2, False), save],
           lookups=f"id eq {UNKNOWN} or id eq {SYNC}", started=[SYNC])
    reload("POST with X-HTTP-Method-Override: PUT", sales,
           {"startQSEoWTaskOnSuccess": [SALES_TASK]}, method="POST",
           headers={"X-HTTP-Method-Override": "PUT"},
           engine_calls=[open_doc(sales), do_reload(0, False), save],
           lookups=f"id eq {SALES_TASK}", started=[SALES_TASK])

    # -- failure --------------------------------------------------------------------------
    reload("the failing app with failure tasks", finance,
           {"reloadMode": 0, "startQSEoWTaskOnSuccess": [SALES_TASK],
            "startQSEoWTaskOnFailure": [NIGHTLY, SYNC]}, status=500,
           message=f"Reload of app {finance} failed; the tasks in "
                   "startQSEoWTaskOnFailure were started",
           engine_calls=[open_doc(finance), do_reload(0, False)],
           lookups=f"id eq {NIGHTLY} or id eq {SYNC}", started=[NIGHTLY, SYNC])
    reload("the failing app without failure tasks", finance,
           {"reloadMode": 1, "partialReload": True,
            "startQSEoWTaskOnSuccess": [SALES_TASK]}, status=500,
           message=f"Reload of app {finance} failed",
           engine_calls=[open_doc(finance), do_reload(1, True)])
    reload("an unknown app", UNKNOWN,
           {"startQSEoWTaskOnSuccess": [FIN2],
            "startQSEoWTaskOnFailure": [NIGHTLY]}, status=422,
           message=f"the engine at 127.0.0.1:{engine.port} answered OpenDoc "
                   f"with error 1003 (App not found: {UNKNOWN})",
           engine_calls=[open_doc(UNKNOWN)])

    # -- bad input: 400, no session, no QRS call -------------------------------------
    def bad(what, message, body=None, raw=None, app_id=sales):
        reload(what, app_id, body, status=400, message=message, raw=raw)

    bad("a malformed app id", 'Parameter appId must be a Qlik Sense id '
        '(GUID), got "abc"', {}, app_id="abc")
    bad("an app id one digit short", 'Parameter appId must be a Qlik Sense '
        f'id (GUID), got "{sales[:-1]}"', {}, app_id=sales[:-1])
    bad("invalid JSON", "Request body is not valid JSON", raw="{")
    bad("invalid JSON after an object", "Request body is not valid JSON",
        raw='{"reloadMode": 1}}')
    for body in ([], "text", 5, [{"reloadMode": 1}]):
        bad(f"a body that is {body!r}", "Request body must be a JSON object",
            body=body if not isinstance(body, (str, int)) else None,
            raw=None if isinstance(body, list) else
            ('"text"' if body == "text" else "5"))
    for mode in (3, -1, "1", 1.5, True, 4294967296, 4294967297,
                 -4294967295):
        bad(f"reloadMode {mode!r}", "Parameter reloadMode must be 0, 1 or 2",
            {"reloadMode": mode})
    for partial in ("true", 1, 0, [], {}):
        bad(f"partialReload {partial!r}",
            "Parameter partialReload must be true or false",
            {"partialReload": partial})
    for key in ("startQSEoWTaskOnSuccess", "startQSEoWTaskOnFailure"):
        for value in (FIN2, {"id": FIN2}, [1], [FIN2, None], [[FIN2]], True):
            bad(f"{key} {value!r}", f"Parameter {key} must be an array of "
                "task ids", {key: value})
        for value in ("abc", "", FIN2 + "0"):
            bad(f"{key} holding {value!r}", f"Parameter {key} must be a "
                f'Qlik Sense id (GUID), got "{value}"',
                {key: [FIN2, value]})
    res = h.http_request(port, "POST", f"/v4/app/{sales}/reload", body={})
    h.check_eq((res.status, res.header("allow")), (405, "PUT"),
               "POST without the override answers 405 Allow: PUT")
    h.check_eq(len(engine.calls()), state["sessions"],
               "no session for the 405")
    h.check_ping(port)


if __name__ == "__main__":
    h.main(test)

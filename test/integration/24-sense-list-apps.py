#!/usr/bin/env python3
"""senseListApps against the fake Engine (JSON-RPC over a TLS WebSocket with
client certificates): GET /senseListApps, /v2/senseListApps,
/v4/senselistapps and /v4/apps/list answer 200 with exactly
[{"id","name"}, ...] from GetDocList (qDocId, qDocName), in the engine's
order; each request is one session upgraded on /app/engineData with
X-Qlik-User from configEngine.headers.static and Butler's client
certificate, one GetDocList on handle -1, closed cleanly; names with quotes
and non-ASCII text pass through, an empty list gives []; six lists at
once get a session each; a GetDocList
answer without qDocList or an entry without qDocId answers 502 naming it;
other methods answer 405."""

import sys
import threading
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

PATHS = ("/senseListApps", "/v2/senseListApps", "/v4/senselistapps",
         "/v4/apps/list")


def test(ctx):
    fe = h.load_fake_engine()
    certs = h.make_sense_certs(h.scratch_dir("certs"))
    engine = h.start_fake_engine(certs)
    port = h.free_port()
    cfg = h.sense_config(port, certs, engine_port=engine.port,
                         flags=("senseListApps",))
    cfg["Butler"]["configEngine"]["headers"]["static"].append(
        {"name": "X-Butler-Site", "value": "site 1"})
    h.Butler(ctx.butler, cfg).start()
    expected = [{"id": a["id"], "name": a["name"]}
                for a in fe.DEFAULT_DATA["apps"]]
    h.check_eq(len(expected), 4, "the fake holds four apps")

    def session_ok(rec, what, methods=("GetDocList",)):
        h.check_eq((rec["path"], rec["status"]), ("/app/engineData", 101),
                   f"{what}: upgraded on /app/engineData")
        h.check_eq((rec["headers"].get("x-qlik-user"),
                    rec["headers"].get("x-butler-site")),
                   (h.SENSE_USER, "site 1"),
                   f"{what}: X-Qlik-User and the other static headers")
        h.check_eq(rec["client_cert_cn"], h.CLIENT_CN,
                   f"{what}: Butler's client certificate")
        h.check_eq([(r["handle"], r["method"], r["params"])
                    for r in rec["requests"]],
                   [(-1, m, []) for m in methods],
                   f"{what}: {', '.join(methods)} on the global handle")
        h.check_eq((rec["closed_cleanly"], rec.get("close_code")),
                   (True, 1000), f"{what}: the session was closed cleanly")

    for n, path in enumerate(PATHS, 1):
        res = h.http_request(port, "GET", path)
        h.check_eq((res.status, res.json), (200, expected),
                   f"GET {path} answers the engine's apps as [{{id, name}}]")
        h.check(all(list(a) == ["id", "name"] for a in res.json),
                f"GET {path}: each entry holds exactly id and name")
        recs = h.wait_engine_closed(engine, n, f"session {n} to end")
        h.check_eq(len(recs), n, f"GET {path}: one engine session")
        session_ok(recs[-1], f"GET {path}")
    res = h.http_request(port, "GET", PATHS[0] + "/")
    h.check_eq((res.status, res.json), (200, expected),
               "a trailing slash works too")

    # Lists at the same time: a session each.
    engine.reset()
    replies = [None] * 6

    def fetch(i):
        replies[i] = h.http_request(port, "GET", PATHS[i % len(PATHS)])
    threads = [threading.Thread(target=fetch, args=(i,))
               for i in range(len(replies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    h.check(all(r is not None and (r.status, r.json) == (200, expected)
                for r in replies), "six lists at once all answer the apps",
            replies)
    recs = h.wait_engine_closed(engine, 6, "the six sessions to end")
    h.check_eq(len(recs), 6, "six sessions")
    for i, rec in enumerate(recs):
        session_ok(rec, f"concurrent session {i + 1}")

    # What the engine lists comes back as given.
    engine.reset()
    odd = [{"qDocName": 'Säljrapport "2024" \\ 日本', "qDocId": "odd-id-1",
            "qMeta": {}},
           {"qDocName": "", "qDocId": "8e9f0a1b-2c3d-4e5f-8a9b-0c1d2e3f4a5b"}]
    engine.script({"match": "GetDocList", "result": {"qDocList": odd}},
                  {"match": "GetDocList", "result": {"qDocList": []}})
    res = h.http_request(port, "GET", "/v4/apps/list")
    h.check_eq((res.status, res.json),
               (200, [{"id": d["qDocId"], "name": d["qDocName"]}
                      for d in odd]),
               "names with quotes, backslashes and non-ASCII text and an "
               "empty name pass through")
    res = h.http_request(port, "GET", "/senseListApps")
    h.check_eq((res.status, res.json), (200, []),
               "an engine without apps gives []")

    # Answers Butler cannot use: 502 naming what is missing.
    where = f"the engine at 127.0.0.1:{engine.port}"
    engine.script({"match": "GetDocList", "result": {"qList": []}},
                  {"match": "GetDocList", "result": {"qDocList": [
                      {"qDocName": "no id"}]}})
    res = h.http_request(port, "GET", "/v4/senselistapps")
    h.check_error(res, 502, f"{where} answered GetDocList without qDocList",
                  "a GetDocList answer without qDocList answers 502")
    res = h.http_request(port, "GET", "/v2/senseListApps")
    h.check_error(res, 502, f"{where} answered GetDocList without qDocId and "
                  "qDocName in qDocList",
                  "an entry without qDocId answers 502")
    recs = h.wait_engine_closed(engine, 4, "the four sessions to end")
    for i, rec in enumerate(recs):
        session_ok(rec, f"scripted session {i + 1}")

    for method in ("POST", "PUT", "DELETE"):
        res = h.http_request(port, method, "/v4/apps/list")
        h.check_eq((res.status, res.header("allow")), (405, "GET"),
                   f"{method} /v4/apps/list answers 405 Allow: GET")
    h.check_eq(len(engine.calls()), 4, "the 405s opened no session")
    h.check_ping(port)


if __name__ == "__main__":
    h.main(test)

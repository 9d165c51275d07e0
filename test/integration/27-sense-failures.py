#!/usr/bin/env python3
"""Qlik Sense failures, each answered with the mapped status and a message
naming the cause, while butler keeps serving:
- QRS/Engine with a server certificate from another CA and
  rejectUnauthorized: true -> 502 naming the TLS failure (QRS with
  rejectUnauthorized: false is reached);
- Butler presenting a client certificate from another CA, or a client
  certificate file that is no certificate -> the handshake fails -> 502;
- QRS answering 403 / 409 / 500 / 302 -> 502, 404 -> 404 (502 for the
  ping, whose /qrs/about always exists), each with QRS's
  message (a redirect is not followed); an
  about reply that is not JSON -> 502; a failed lookup or start starts
  nothing; a failed tag lookup fails the whole v4 start;
- a QRS stall with configQRS.requestTimeoutSeconds: 1 -> 504, and a stalled
  start is sent once; ping and other endpoints answer meanwhile;
- QRS and the Engine not running (connection refused) -> 502;
- an Engine error frame on GetScript -> 502 naming it, session closed
  cleanly; an Engine stall with configEngine.requestTimeoutSeconds: 1 ->
  504 naming the call, session closed; the upgrade refused -> 502;
- a disabled Sense endpoint answers 404;
- --check-config errors: senseStartTask without configQRS.host,
  senseListApps without configEngine.host, missing certificate files (named
  under Butler.cert.*), no certificate at all, a non-GUID
  startTaskFilter.allowTask.taskId, a taskStartTopic outside the
  subscription root; --config refuses to start."""

import sys
import threading
import time
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

SALES_TASK = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"
TARGETS = "210832b5-6174-4572-bd19-3e61eda675ef"


def in_background(port, method, target):
    """Sends a request on a thread; returns a function that joins it and
    returns (Response, seconds taken)."""
    out = {}

    def run():
        started = time.monotonic()
        try:
            out["res"] = h.http_request(port, method, target, timeout=15)
        except Exception as e:  # noqa: BLE001 - reported by the check
            out["res"] = e
        out["took"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join():
        thread.join(20)
        return out.get("res"), out.get("took")
    return join


def message_starts(prefix):
    return lambda m: m.startswith(prefix)


def main_instance(ctx, certs, fe):
    """One butler with working QRS and Engine fakes and 1 s timeouts."""
    qrs = h.start_fake_qrs(certs)
    engine = h.start_fake_engine(certs)
    port = h.free_port()
    cfg = h.sense_config(port, certs, qrs_port=qrs.port,
                         engine_port=engine.port, qrs_timeout=1,
                         engine_timeout=1)
    h.Butler(ctx.butler, cfg).start()
    qrs_at = f"QRS at 127.0.0.1:{qrs.port}"
    engine_at = f"the engine at 127.0.0.1:{engine.port}"
    sales_app = fe.SALES_APP_ID

    # -- scripted QRS answers ---------------------------------------------------------
    qrs.script(match="GET /qrs/about", status=403, body="Forbidden by rule")
    res = h.http_request(port, "GET", "/senseQRSPing")
    h.check_error(res, 502, f"{qrs_at} answered 403: Forbidden by rule",
                  "QRS 403 -> 502 with QRS's text")
    qrs.script(match="GET /qrs/about", status=500,
               body={"message": "Repository is shutting down"})
    res = h.http_request(port, "GET", "/senseQRSPing")
    h.check_error(res, 502, f'{qrs_at} answered 500: {{"message": '
                  '"Repository is shutting down"}', "QRS 500 -> 502 with QRS's "
                  "JSON message")
    qrs.script(match="GET /qrs/about", status=404, body="No such route")
    res = h.http_request(port, "GET", "/senseQRSPing")
    h.check_error(res, 502, f"{qrs_at} answered 404: No such route",
                  "QRS 404 on /qrs/about -> 502 with QRS's text")
    qrs.script(match="GET /qrs/about", status=302, body="",
               headers={"Location": "https://elsewhere/"})
    res = h.http_request(port, "GET", "/senseQRSPing")
    h.check_error(res, 502, f"{qrs_at} answered 302",
                  "a QRS redirect -> 502 (not followed)")
    h.check_eq(qrs.calls()[-1]["path"], "/qrs/about",
               "the redirect was not followed")
    qrs.script(match="GET /qrs/about", status=409, body="Conflict")
    res = h.http_request(port, "GET", "/senseQRSPing")
    h.check_error(res, 502, f"{qrs_at} answered 409: Conflict",
                  "QRS 409 -> 502 with QRS's text")
    qrs.script(match="GET /qrs/about", status=200, body="<html>proxy</html>",
               headers={"Content-Type": "text/html"})
    res = h.http_request(port, "GET", "/senseQRSPing")
    h.check_error(res, 502, message_starts(
        f"{qrs_at} sent a bad reply to GET /qrs/about: "),
        "an about reply that is not JSON -> 502")

    start = h.query("/senseStartTask", {"taskId": SALES_TASK})
    qrs.script(match="GET /qrs/task/full", status=500, body="lookup failed")
    res = h.http_request(port, "GET", start)
    h.check_error(res, 502, f"{qrs_at} answered 500: lookup failed",
                  "a lookup answered 500 -> 502")
    qrs.script(match="POST /qrs/task/start/many", status=403,
               body="Access denied")
    res = h.http_request(port, "GET", start)
    h.check_error(res, 502, f"{qrs_at} answered 403: Access denied",
                  "a start answered 403 -> 502")
    qrs.script(match="POST /qrs/task/start/many", status=404)
    res = h.http_request(port, "GET", start)
    h.check_error(res, 404, f"{qrs_at} answered 404",
                  "a start answered 404 -> 404")
    mark = len(qrs.calls())
    qrs.script(match="GET /qrs/task/full", status=500, body="tag lookup "
               "failed")
    res = h.http_request(port, "PUT", f"/v4/reloadtask/{TARGETS}/start",
                         body=[{"type": "starttasktag",
                                "payload": {"tag": "startTask1"}}])
    h.check_error(res, 502, f"{qrs_at} answered 500: tag lookup failed",
                  "v4: one failed lookup -> 502")
    h.check_eq([c["path"] for c in qrs.calls()[mark:]],
               ["/qrs/task/full", "/qrs/task/full"],
               "v4: both lookups were made, no start")
    h.check_eq(qrs.started(), [], "no failed start started anything")

    # -- a QRS stall: 504 after configQRS.requestTimeoutSeconds ------------------------
    qrs.script(match="GET /qrs/about", stall=True)
    mark = len(qrs.calls())
    join = in_background(port, "GET", "/senseQRSPing")
    h.wait_qrs_calls(qrs, mark + 1, "the stalled about call")
    h.check_ping(port, "butler answers ping while QRS stalls")
    res = h.http_request(port, "GET", start)
    h.check_eq((res.status, res.json), (200, {"taskId": SALES_TASK}),
               "a task start works while the about call stalls")
    res = h.http_request(port, "GET", "/v4/apps/list")
    h.check_eq(res.status, 200, "the Engine answers while QRS stalls")
    res, took = join()
    h.check_error(res, 504, f"{qrs_at} did not answer within 1 s",
                  f"the stalled ping answers 504 ({took:.1f} s)")
    qrs.reset()

    qrs.script(match="POST /qrs/task/start/many", stall=True)
    res = h.http_request(port, "GET", start)
    h.check_error(res, 504, f"{qrs_at} did not answer within 1 s",
                  "a stalled start answers 504")
    h.check_eq([c["path"] for c in qrs.calls()],
               ["/qrs/task/full", "/qrs/task/start/many"],
               "the stalled start was sent once (not retried)")
    qrs.reset()
    res = h.http_request(port, "GET", "/senseQRSPing")
    h.check_eq(res.status, 200, "QRS is reached again after the stalls")

    # -- Engine errors -------------------------------------------------------------------
    dump = f"/v4/app/{sales_app}/dump"
    engine.script({"match": "GetScript", "body": {
        "code": 5, "parameter": "script", "message": "Access denied"}})
    res = h.http_request(port, "GET", dump)
    h.check_error(res, 502, f"{engine_at} answered GetScript with error 5 "
                  "(Access denied: script)",
                  "an error frame on GetScript -> 502 naming it")
    rec = h.wait_engine_closed(engine, 2, "the failed dump session")[-1]
    h.check_eq((rec["path"], rec["closed_cleanly"]),
               (f"/app/{sales_app}", True),
               "the session was closed cleanly after the error")

    engine.script({"match": "GetScript", "stall": True})
    join = in_background(port, "GET", dump)
    h.check(engine.wait_for(lambda calls: len(calls) == 3 and any(
        r["method"] == "GetScript" for r in calls[-1]["requests"])),
        "the dump reached the stalled GetScript")
    h.check_ping(port, "butler answers ping while the Engine stalls")
    res = h.http_request(port, "GET", "/senseQRSPing")
    h.check_eq(res.status, 200, "QRS answers while the Engine stalls")
    res, took = join()
    h.check_error(res, 504, f"{engine_at} did not answer GetScript within "
                  f"1 s (the dump of app {sales_app})",
                  f"the stalled dump answers 504 naming GetScript "
                  f"({took:.1f} s)")
    rec = h.wait_engine_closed(engine, 3, "the stalled session to end")[-1]
    h.check_eq((rec["open"], rec["closed_cleanly"]), (False, True),
               "the stalled session was closed (cleanly)")

    engine.script({"match": "UPGRADE", "status": 503, "body": "busy"})
    res = h.http_request(port, "GET", "/senseListApps")
    h.check_error(res, 502, f"{engine_at} refused the WebSocket upgrade to "
                  "/app/engineData with HTTP 503 Service Unavailable",
                  "a refused upgrade -> 502 naming the status")
    rec = h.wait_engine_closed(engine, 4, "the refused upgrade")[-1]
    h.check_eq((rec["status"], rec["requests"]), (503, []),
               "the fake refused the upgrade, no request was sent")
    engine.script({"match": "OpenDoc", "close": True})
    res = h.http_request(port, "GET", dump)
    h.check_error(res, 502, message_starts(f"{engine_at} "),
                  "the engine dropping the session -> 502")
    h.check_in("OpenDoc", res.json["message"],
               "the message names the pending OpenDoc")
    res = h.http_request(port, "GET", dump)
    h.check_eq(res.status, 200, "the next dump works")
    h.check_ping(port)


def bad_tls_instances(ctx, certs, fe):
    # Servers with a certificate from the other CA.
    qrs = h.start_fake_qrs(certs, server="other_server")
    engine = h.start_fake_engine(certs, server="other_server")
    port = h.free_port()
    cfg = h.sense_config(port, certs, qrs_port=qrs.port,
                         engine_port=engine.port)
    h.Butler(ctx.butler, cfg, name="butler-untrusted-servers").start()
    res = h.http_request(port, "GET", "/senseQRSPing")
    h.check_error(res, 502, message_starts(
        f"TLS with QRS at 127.0.0.1:{qrs.port} failed: "),
        "an untrusted QRS certificate -> 502 naming the TLS failure")
    h.check_in("certificate", res.json["message"],
               "the message names the certificate problem")
    h.check_eq(qrs.calls(), [], "no request reached the untrusted QRS")
    res = h.http_request(port, "GET", "/senseListApps")
    h.check_error(res, 502, message_starts(
        f"the TLS handshake with the engine at 127.0.0.1:{engine.port} "
        "failed: "), "an untrusted Engine certificate -> 502 naming the TLS "
        "handshake")
    h.check_in("certificate", res.json["message"],
               "the message names the certificate problem")
    h.check_eq(engine.calls(), [], "no upgrade reached the untrusted Engine")
    h.check_ping(port)

    # rejectUnauthorized: false (Butler 16's default) accepts them.
    port = h.free_port()
    cfg = h.sense_config(port, certs, qrs_port=qrs.port,
                         engine_port=engine.port, reject_unauthorized=False)
    h.Butler(ctx.butler, cfg, name="butler-no-verify").start()
    res = h.http_request(port, "GET", "/senseQRSPing")
    h.check_eq(res.status, 200, "rejectUnauthorized: false reaches that QRS")
    res = h.http_request(port, "GET", "/senseListApps")
    h.check_eq(res.status, 200, "rejectUnauthorized: false reaches that "
               "Engine")

    # Butler with a client certificate the servers do not trust.
    qrs = h.start_fake_qrs(certs)
    engine = h.start_fake_engine(certs)
    port = h.free_port()
    cfg = h.sense_config(port, certs, qrs_port=qrs.port,
                         engine_port=engine.port, client="intruder")
    h.Butler(ctx.butler, cfg, name="butler-intruder").start()
    res = h.http_request(port, "GET", "/senseQRSPing")
    h.check_error(res, 502, message_starts(
        f"TLS with QRS at 127.0.0.1:{qrs.port} failed: "),
        "QRS refusing Butler's client certificate -> 502")
    h.wait_until(lambda: qrs.handshake_failures() >= 1,
                 "the fake QRS to count the failed handshake")
    h.check_eq(qrs.calls(), [], "QRS recorded no request")
    res = h.http_request(port, "GET", h.query("/senseStartTask",
                                              {"taskId": SALES_TASK}))
    h.check_eq(res.status, 502, "a start with the refused certificate -> "
               "502")
    h.check_eq(qrs.started(), [], "nothing was started")
    res = h.http_request(port, "GET", "/senseListApps")
    h.check_error(res, 502, message_starts(
        f"the engine at 127.0.0.1:{engine.port} ended the TLS session"),
        "the Engine refusing Butler's client certificate -> 502")
    h.wait_until(lambda: engine.handshake_failures() >= 1,
                 "the fake Engine to count the failed handshake")
    h.check_eq(engine.calls(), [], "the Engine recorded no session")
    h.check_ping(port)

    # A client certificate file that holds no certificate.
    junk = Path(h.scratch_dir("junk")) / "junk.pem"
    junk.write_text("this is not a certificate\n")
    bad_certs = dict(certs, junk=str(junk), junk_key=certs["client_key"])
    port = h.free_port()
    cfg = h.sense_config(port, bad_certs, qrs_port=qrs.port,
                         engine_port=engine.port, client="junk")
    h.Butler(ctx.butler, cfg, name="butler-junk-cert").start()
    res = h.http_request(port, "GET", "/senseQRSPing")
    h.check_error(res, 502, message_starts(
        f"TLS with QRS at 127.0.0.1:{qrs.port} failed: "),
        "an unusable client certificate file -> 502 (QRS)")
    res = h.http_request(port, "GET", "/senseListApps")
    h.check_error(res, 502, message_starts(
        f"cannot set up TLS for the engine at 127.0.0.1:{engine.port}: "
        f"cannot load client certificate {junk}"),
        "an unusable client certificate file -> 502 naming it (Engine)")
    h.check_ping(port)


def unreachable_instance(ctx, certs):
    qrs_port, engine_port = h.free_port(), h.free_port()
    port = h.free_port()
    cfg = h.sense_config(port, certs, qrs_port=qrs_port,
                         engine_port=engine_port)
    h.Butler(ctx.butler, cfg, name="butler-unreachable").start()
    res = h.http_request(port, "GET", "/senseQRSPing")
    h.check_error(res, 502, message_starts(
        f"cannot reach QRS at 127.0.0.1:{qrs_port}: "),
        "QRS not running -> 502")
    res = h.http_request(port, "PUT", f"/v4/reloadtask/{SALES_TASK}/start")
    h.check_error(res, 502, message_starts(
        f"cannot reach QRS at 127.0.0.1:{qrs_port}: "),
        "a v4 start with QRS not running -> 502")
    for target in ("/v4/senselistapps",
                   f"/v4/senseappdump/{SALES_TASK}"):
        res = h.http_request(port, "GET", target)
        h.check_error(res, 502, message_starts(
            f"cannot connect to the engine at 127.0.0.1:{engine_port}"),
            f"GET {target} with the Engine not running -> 502")
    res = h.http_request(port, "PUT", f"/v4/app/{SALES_TASK}/reload",
                         body={"startQSEoWTaskOnFailure": [SALES_TASK]})
    h.check_error(res, 502, message_starts(
        f"cannot connect to the engine at 127.0.0.1:{engine_port}"),
        "a reload with the Engine not running -> 502")
    h.check_ping(port)


def disabled_endpoints(ctx, certs):
    qrs = h.start_fake_qrs(certs)
    port = h.free_port()
    cfg = h.sense_config(port, certs, qrs_port=qrs.port,
                         flags=("senseQRSPing",))
    h.Butler(ctx.butler, cfg, name="butler-ping-only").start()
    for method, target in (
            ("GET", h.query("/senseStartTask", {"taskId": SALES_TASK})),
            ("PUT", f"/v4/reloadtask/{SALES_TASK}/start"),
            ("GET", "/v4/apps/list"),
            ("GET", f"/v4/app/{SALES_TASK}/dump"),
            ("PUT", f"/v4/app/{SALES_TASK}/reload")):
        res = h.http_request(port, method, target)
        path = target.split("?")[0]
        h.check_error(res, 404, f"Route {method} {path} not found",
                      f"the disabled {method} {path} answers 404")
    h.check_eq(qrs.calls(), [], "disabled endpoints call no QRS")
    h.check_eq(h.http_request(port, "GET", "/senseQRSPing").status, 200,
               "the enabled senseQRSPing answers")


def config_errors(ctx, certs):
    tmp = h.scratch_dir("bad-configs")

    def problems(name, cfg):
        path = h.write_config(cfg, tmp / f"{name}.yaml")
        r = h.run_cli(ctx.butler, "--check-config", path)
        h.check_eq(r.returncode, 1, f"--check-config {name} exits 1")
        r2 = h.run_cli(ctx.butler, "--config", path)
        h.check_eq(r2.returncode, 1, f"--config {name} exits 1 without "
                   "starting")
        return r.stderr.splitlines()

    port = h.free_port()
    cfg = h.sense_config(port, certs, flags=("senseStartTask",))
    errors = problems("no-qrs-host", cfg)
    h.check_in("error: Butler.configQRS.host: missing (required when a QRS "
               "endpoint (senseStartTask, senseQRSPing, senseAppReload) is "
               "enabled)", errors,
               "senseStartTask without configQRS.host is an error")
    cfg = h.sense_config(port, certs, flags=("senseListApps",))
    errors = problems("no-engine-host", cfg)
    h.check_in("error: Butler.configEngine.host: missing (required when an "
               "Engine endpoint (senseListApps, senseAppDump, "
               "senseAppReload) is enabled)", errors,
               "senseListApps without configEngine.host is an error")

    missing = {k: str(tmp / f"missing-{k}.pem")
               for k in ("client", "client_key", "ca")}
    cfg = h.sense_config(port, missing, qrs_port=4242,
                         flags=("senseQRSPing",))
    errors = problems("missing-cert-files", cfg)
    for key, name in (("clientCert", "client"),
                      ("clientCertKey", "client_key"),
                      ("clientCertCA", "ca")):
        h.check_in(f"error: Butler.cert.{key}: cannot read {missing[name]}: "
                   "No such file or directory", errors,
                   f"a missing {key} file is named under Butler.cert.{key}")

    cfg = h.sense_config(port, certs, engine_port=4747,
                         flags=("senseAppDump",))
    del cfg["Butler"]["cert"]
    errors = problems("no-certs", cfg)
    h.check_in("error: Butler.cert.clientCert: missing (required when Qlik "
               "Sense is reached over TLS (configQRS/configEngine useSSL))",
               errors, "no client certificate for a TLS Engine is an error")

    cfg = h.sense_config(port, certs, qrs_port=4242,
                         flags=("senseStartTask",))
    cfg["Butler"]["startTaskFilter"] = {"enable": True, "allowTask": {
        "taskId": [SALES_TASK, "not-a-task"]}}
    errors = problems("bad-filter", cfg)
    h.check_in('error: Butler.startTaskFilter.allowTask.taskId: expected '
               'task ids (GUIDs), got "not-a-task"', errors,
               "a startTaskFilter id that is no GUID is an error")

    cfg = h.sense_config(port, certs, qrs_port=4242, flags=(),
                         mqtt_port=1883)
    cfg["Butler"]["mqttConfig"]["taskStartTopic"] = "other/start_task"
    errors = problems("start-topic", cfg)
    h.check_in('error: Butler.mqttConfig.taskStartTopic: must lie under '
               'Butler.mqttConfig.subscriptionRootTopic (qliksense/#), got '
               '"other/start_task"', errors,
               "a taskStartTopic outside the subscription root is an error")


def test(ctx):
    fe = h.load_fake_engine()
    certs = h.make_sense_certs(h.scratch_dir("certs"))
    main_instance(ctx, certs, fe)
    bad_tls_instances(ctx, certs, fe)
    unreachable_instance(ctx, certs)
    disabled_endpoints(ctx, certs)
    config_errors(ctx, certs)


if __name__ == "__main__":
    h.main(test)

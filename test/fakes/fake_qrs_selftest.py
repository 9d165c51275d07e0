#!/usr/bin/env python3
"""Self-test of fake_qrs.py (Python standard library + the openssl CLI).

Makes certificates in a temporary directory (a CA, a server certificate for
127.0.0.1/localhost, a client certificate, and a second CA with its own
client certificate), starts the fake as a child process with --port-file and
checks it over TLS with ssl + http.client. Prints one line per check and
exits non-zero if any check fails:

    python3 test/fakes/fake_qrs_selftest.py
"""

import http.client
import json
import os
import secrets
import signal
import ssl
import string
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_qrs.py")
USER = "UserDirectory=INTERNAL;UserId=sa_repository"

SALES_TASK = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"
WEEKLY_TASK = "8d1b7c2e-3f4a-4b5c-9d6e-7f8091a2b3c4"
TARGETS_TASK = "210832b5-6174-4572-bd19-3e61eda675ef"
NIGHTLY_TASK = "0a1b2c3d-1111-2222-3333-444455556666"
FIN2_TASK = "09b3c78f-04dd-45e3-a4bf-1b074d6572fa"
COCKPIT_TASK = "a1a11a11-b1c0-4879-88fc-c7cdd9c1cf3e"
ARCHIVE_TASK = "eaf1da4f-fd44-4cea-b2de-7b67a6496ee3"
SYNC_TASK = "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9"
SALES_APP = "7552d9fc-d1bb-4975-9a38-18357de531ea"
UNKNOWN = "deadbeef-0000-4000-8000-000000000000"
SALES_LOG_REF = "a1b2c3d4-e5f6-4789-9abc-def012345678"

failures = []


def check(name, condition, detail=""):
    """Prints one result line; remembers failures."""
    if condition:
        print(f"ok   - {name}")
    else:
        failures.append(name)
        print(f"FAIL - {name}: {detail}")
    return condition


def section(func):
    """Runs a group of checks; an exception fails the group."""
    try:
        func()
    except Exception:  # noqa: BLE001 - report and go on with the next group
        failures.append(func.__name__)
        print(f"FAIL - {func.__name__} raised:\n{traceback.format_exc()}")


# -- certificates ---------------------------------------------------------------


def openssl(cwd, *args):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_ca(d, name):
    openssl(d, "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            f"{name}-key.pem", "-out", f"{name}.pem", "-days", "2", "-subj",
            f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def make_leaf(d, ca, name, cn, usage, san=None):
    openssl(d, "req", "-new", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
            f"{name}-key.pem", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
    ext = ["basicConstraints=CA:FALSE",
           "keyUsage=critical,digitalSignature",
           f"extendedKeyUsage={usage}", "subjectKeyIdentifier=hash",
           "authorityKeyIdentifier=keyid,issuer"]
    if san:
        ext.append(f"subjectAltName={san}")
    with open(os.path.join(d, f"{name}.ext"), "w", encoding="utf-8") as f:
        f.write("\n".join(ext) + "\n")
    openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem",
            "-CAkey", f"{ca}-key.pem", "-CAcreateserial", "-out",
            f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")


def make_certs(d):
    make_ca(d, "ca")
    make_leaf(d, "ca", "server", "localhost", "serverAuth",
              "IP:127.0.0.1,DNS:localhost")
    make_leaf(d, "ca", "client", "butler-client", "clientAuth")
    make_ca(d, "other-ca")
    make_leaf(d, "other-ca", "intruder", "intruder", "clientAuth")
    return {n: os.path.join(d, n + ".pem") for n in
            ("ca", "server", "server-key", "client", "client-key",
             "intruder", "intruder-key")}


# -- clients --------------------------------------------------------------------


def xrfkey():
    return "".join(secrets.choice(string.ascii_letters + string.digits)
                   for _ in range(16))


class Client:
    """Talks to one fake: QRS calls over TLS, control calls over HTTP."""

    def __init__(self, certs, port, control_port, cert="client"):
        self.port = port
        self.control_port = control_port
        self.ca = certs["ca"]
        self.ctx = self.context(certs, cert)

    def context(self, certs, cert="client", tls12=False):
        ctx = ssl.create_default_context(cafile=self.ca)
        if cert:
            ctx.load_cert_chain(certs[cert], certs[cert + "-key"])
        if tls12:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def call(self, method, path, query=None, body=None, headers=None, *,
             xrf=True, user=USER, ctx=None, timeout=5.0, host="127.0.0.1",
             conn=None):
        """Returns (status, headers, raw body)."""
        query = dict(query or {})
        hdrs = {}
        if xrf:
            key = xrfkey()
            query["xrfkey"] = key
            hdrs["X-Qlik-Xrfkey"] = key
        if user is not None:
            hdrs["X-Qlik-User"] = user
        hdrs.update(headers or {})
        target = path
        if query:
            target += "?" + urllib.parse.urlencode(
                query, quote_via=urllib.parse.quote)
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            hdrs["Content-Type"] = "application/json"
        own = conn is None
        if own:
            conn = http.client.HTTPSConnection(host, self.port,
                                               context=ctx or self.ctx,
                                               timeout=timeout)
        try:
            conn.request(method, target, body=data, headers=hdrs)
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            if own:
                conn.close()

    def json(self, method, path, query=None, body=None, **kw):
        """Returns (status, parsed JSON body or None)."""
        status, _, raw = self.call(method, path, query, body, **kw)
        return status, (json.loads(raw) if raw else None)

    def tasks(self, flt, full=False):
        """Returns (status, sorted task ids) for a filter."""
        status, body = self.json("GET", "/qrs/task/full" if full else
                                 "/qrs/task", {"filter": flt})
        ids = sorted(t["id"] for t in body) if status == 200 else body
        return status, ids

    def ctl(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.control_port,
                                          timeout=5)
        try:
            conn.request(method, path,
                         body=None if body is None else json.dumps(body))
            resp = conn.getresponse()
            raw = resp.read()
            return resp.status, (json.loads(raw) if raw else None)
        finally:
            conn.close()


def start_fake(certs, port_file, extra=()):
    """Starts the fake as a child; returns (process, ports, stderr file)."""
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, FAKE, "--cert", certs["server"], "--key",
         certs["server-key"], "--ca", certs["ca"], "--port-file", port_file,
         *extra], stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if os.path.exists(port_file):
            with open(port_file, encoding="utf-8") as f:
                return proc, json.load(f), err
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    err.seek(0)
    raise RuntimeError("fake_qrs did not write its port file: "
                       + err.read().decode(errors="replace"))


def stop_fake(proc):
    """Sends SIGTERM; returns the exit code (None if it hung)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def fails_tls(client, ctx):
    """Returns (True, error) when a call with `ctx` fails at the TLS
    level, else (False, what happened)."""
    try:
        status, _, _ = client.call("GET", "/qrs/about", ctx=ctx)
    except TimeoutError as exc:
        return False, f"timed out: {exc!r}"
    except (ssl.SSLError, ConnectionError, http.client.HTTPException,
            OSError) as exc:
        return True, repr(exc)
    return False, f"got HTTP {status}"


def poll(func, done, timeout=5.0):
    """Calls func() until done(result) or the deadline; returns the last
    result."""
    deadline = time.monotonic() + timeout
    while True:
        result = func()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.02)


# -- the checks -----------------------------------------------------------------


def run_checks(c, certs):
    def tls_and_about():
        status, hdrs, raw = c.call("GET", "/qrs/about")
        body = json.loads(raw)
        check("about answers 200 with the client certificate", status == 200,
              status)
        check("about is JSON with charset", hdrs["Content-Type"] ==
              "application/json; charset=utf-8", hdrs["Content-Type"])
        check("about carries buildVersion 30.4.2.0",
              body.get("buildVersion") == "30.4.2.0" and
              body.get("schemaPath") == "About", body)
        status, _, _ = c.call("GET", "/qrs/about", host="localhost")
        check("server certificate verifies for localhost", status == 200)
        conn = http.client.HTTPSConnection("127.0.0.1", c.port,
                                           context=c.ctx, timeout=5)
        try:
            first = c.call("GET", "/qrs/about", conn=conn)[0]
            second = c.call("GET", "/qrs/task/count", conn=conn)[0]
        finally:
            conn.close()
        check("two calls on one kept-alive connection",
              (first, second) == (200, 200), (first, second))

    def handshakes():
        c.ctl("POST", "/reset")
        before = c.ctl("GET", "/handshake_failures")[1]["count"]
        failed, why = fails_tls(c, c.context(certs, None))
        check("no client certificate fails (TLS 1.3)", failed, why)
        failed, why = fails_tls(c, c.context(certs, None, tls12=True))
        check("no client certificate fails (TLS 1.2)", failed, why)
        try:
            raw = ssl.create_default_context(cafile=certs["ca"])
            raw.maximum_version = ssl.TLSVersion.TLSv1_2
            conn = http.client.HTTPSConnection("127.0.0.1", c.port,
                                               context=raw, timeout=5)
            conn.connect()
            conn.close()
            check("TLS 1.2 handshake itself fails without a certificate",
                  False, "connect succeeded")
        except ssl.SSLError as exc:
            check("TLS 1.2 handshake itself fails without a certificate",
                  True, exc)
        failed, why = fails_tls(c, c.context(certs, "intruder"))
        check("client certificate of another CA fails", failed, why)
        report = poll(lambda: c.ctl("GET", "/handshake_failures")[1],
                      lambda r: r["count"] >= before + 4)
        check("handshake failures are counted (4)",
              report["count"] == before + 4, report)
        check("failed handshakes record no call",
              c.ctl("GET", "/calls")[1] == [], c.ctl("GET", "/calls")[1])

    def auth_headers():
        key = xrfkey()
        cases = [
            ("missing xrfkey in query", {}, {"X-Qlik-Xrfkey": key}, USER,
             "XrfKey header and querystring values do not match"),
            ("missing X-Qlik-Xrfkey header", {"xrfkey": key}, {}, USER,
             "XrfKey header and querystring values do not match"),
            ("mismatched xrfkey", {"xrfkey": key},
             {"X-Qlik-Xrfkey": key[:-1] + ("a" if key[-1] != "a" else "b")},
             USER, "XrfKey header and querystring values do not match"),
            ("15-character xrfkey", {"xrfkey": key[:15]},
             {"X-Qlik-Xrfkey": key[:15]}, USER, "XrfKey must be"),
            ("xrfkey with a non-alphanumeric", {"xrfkey": key[:15] + "-"},
             {"X-Qlik-Xrfkey": key[:15] + "-"}, USER, "XrfKey must be"),
            ("missing X-Qlik-User", {"xrfkey": key}, {"X-Qlik-Xrfkey": key},
             None, "Missing X-Qlik-User"),
            ("malformed X-Qlik-User", {"xrfkey": key},
             {"X-Qlik-Xrfkey": key}, "sa_repository",
             "Invalid X-Qlik-User header"),
            ("X-Qlik-User without UserId", {"xrfkey": key},
             {"X-Qlik-Xrfkey": key}, "UserDirectory=INTERNAL",
             "Invalid X-Qlik-User header"),
        ]
        for name, query, headers, user, text in cases:
            status, hdrs, raw = c.call("GET", "/qrs/about", query,
                                       headers=headers, xrf=False, user=user)
            check(f"403 for {name}", status == 403 and
                  raw.decode().startswith(text) and
                  hdrs["Content-Type"].startswith("text/plain"),
                  (status, raw))
        status, _, _ = c.call("GET", "/qrs/about", {"Xrfkey": key},
                              headers={"x-qlik-xrfkey": key},
                              user="UserDirectory=CORP; UserId=anna",
                              xrf=False)
        check("Xrfkey name is case-insensitive, user may have spaces",
              status == 200, status)
        status, _, _ = c.call("GET", "/qrs/nothing", xrf=False)
        check("403 comes before 404 for an unknown path", status == 403,
              status)

    def lookups():
        cases = [
            ("by id (upper-case GUID)", f"id eq {SALES_TASK.upper()}",
             [SALES_TASK]),
            ("by name", "name eq 'Reload of Sales'", [SALES_TASK]),
            ("name is case-sensitive", "name eq 'reload of sales'", []),
            ("name with '' escaping", "name eq 'Reload of Manager''s "
             "cockpit'", [COCKPIT_TASK]),
            ("name sw", "name sw 'Reload of Sales'",
             [SALES_TASK, WEEKLY_TASK]),
            ("name ew", "name ew '(step 2)'", [FIN2_TASK]),
            ("name so", "name so 'finance'", [NIGHTLY_TASK]),
            ("by tag", "tags.name eq 'startTask1'",
             [SALES_TASK, WEEKLY_TASK, TARGETS_TASK]),
            ("by custom property pair",
             "customProperties.definition.name eq 'taskGroup' and "
             "customProperties.value eq 'tasks1'", [SALES_TASK, TARGETS_TASK]),
            ("custom property pair, value first",
             "customProperties.value eq 'tasks1' and "
             "customProperties.definition.name eq 'taskGroup'",
             [SALES_TASK, TARGETS_TASK]),
            ("custom property pair tasks2",
             "customProperties.definition.name eq 'taskGroup' and "
             "customProperties.value eq 'tasks2'", [FIN2_TASK, ARCHIVE_TASK]),
            ("legacy property pairs separately",
             "customProperties.definition.name eq 'legacyTaskGroup' and "
             "customProperties.value eq 'tasks1'", [WEEKLY_TASK]),
            ("two property pairs in one chain",
             "customProperties.definition.name eq 'taskGroup' and "
             "customProperties.value eq 'tasks3' and "
             "customProperties.definition.name eq 'legacyTaskGroup' and "
             "customProperties.value eq 'tasks1'", [WEEKLY_TASK]),
            ("tag or tag", "tags.name eq 'startTask2' or tags.name eq "
             "'nightly'", [FIN2_TASK, NIGHTLY_TASK, ARCHIVE_TASK, SYNC_TASK]),
            ("and binds tighter than or", "tags.name eq 'nightly' or "
             "tags.name eq 'startTask1' and enabled eq false",
             [WEEKLY_TASK, FIN2_TASK, NIGHTLY_TASK, SYNC_TASK]),
            ("parentheses", "(tags.name eq 'nightly' or tags.name eq "
             "'startTask1') and taskType eq 0",
             [SALES_TASK, WEEKLY_TASK, TARGETS_TASK, FIN2_TASK,
              NIGHTLY_TASK]),
            ("taskType ne 0", "taskType ne 0", [ARCHIVE_TASK, SYNC_TASK]),
            ("enabled eq false", "enabled eq false", [WEEKLY_TASK]),
            ("by app.id", f"app.id eq {SALES_APP}", [SALES_TASK, WEEKLY_TASK]),
            ("by app.name", "app.name eq 'Finance'", [FIN2_TASK,
                                                       NIGHTLY_TASK]),
            ("unknown tag", "tags.name eq 'noSuchTag'", []),
            ("empty filter is everything", "", sorted(
                [SALES_TASK, WEEKLY_TASK, TARGETS_TASK, NIGHTLY_TASK,
                 FIN2_TASK, COCKPIT_TASK, ARCHIVE_TASK, SYNC_TASK])),
        ]
        for name, flt, want in cases:
            status, ids = c.tasks(flt)
            check(f"task lookup {name}", status == 200 and
                  ids == sorted(want), (status, ids))
        status, body = c.json("GET", "/qrs/task/full",
                              {"filter": "tags.name eq 'startTask2'"})
        check("full lookup filters too", status == 200 and
              sorted(t["id"] for t in body) == [FIN2_TASK, ARCHIVE_TASK],
              body)

    def shapes():
        status, body = c.json("GET", "/qrs/task",
                              {"filter": "name eq 'Reload of Sales'"})
        check("condensed task is id, name, privileges null",
              status == 200 and body == [{"id": SALES_TASK,
                                          "name": "Reload of Sales",
                                          "privileges": None}], body)
        status, body = c.json("GET", "/qrs/task/full",
                              {"filter": "name eq 'Reload of Sales'"})
        t = body[0] if status == 200 and len(body) == 1 else {}
        last = t.get("operational", {}).get("lastExecutionResult", {})
        check("full task matches the reference shape",
              t.get("taskType") == 0 and t.get("enabled") is True and
              t.get("maxRetries") == 0 and
              t.get("app", {}).get("id") == SALES_APP and
              t["app"].get("name") == "Sales dashboard" and
              [g["name"] for g in t.get("tags", [])] == ["startTask1"] and
              [(p["definition"]["name"], p["value"])
               for p in t.get("customProperties", [])] ==
              [("taskGroup", "tasks1")], t)
        check("full task has lastExecutionResult",
              last.get("status") == 8 and last.get("duration") == 72000 and
              last.get("fileReferenceID") == SALES_LOG_REF and
              last.get("scriptLogAvailable") is True and
              last.get("executingNodeName") == "sense-node-1" and
              any(d["message"] == "Changing task state from Started to "
                  "Failed" for d in last.get("details", [])), last)
        status, body = c.json("GET", "/qrs/task/count",
                              {"filter": "tags.name eq 'nightly'"})
        check("count", status == 200 and body == {"value": 3}, body)
        status, body = c.json("GET", "/qrs/task/count")
        check("count without filter", body == {"value": 8}, body)
        status, body = c.json("GET", f"/qrs/reloadtask/{SALES_TASK}")
        check("reloadtask by id", status == 200 and
              body.get("id") == SALES_TASK and "operational" in body,
              (status, body))
        status, _ = c.json("GET", f"/qrs/reloadtask/{ARCHIVE_TASK}")
        check("reloadtask by id of an external program task is 404",
              status == 404, status)
        status, body = c.json("GET", "/qrs/reloadtask/full",
                              {"filter": f"id eq {TARGETS_TASK}"})
        check("reloadtask/full by id", status == 200 and
              [t["id"] for t in body] == [TARGETS_TASK], body)
        status, body = c.json("GET", "/qrs/reloadtask/full")
        check("reloadtask/full holds reload tasks only", status == 200 and
              len(body) == 6 and all(t["taskType"] == 0 for t in body),
              [t.get("taskType") for t in body])

    def apps_users_logs():
        status, body = c.json("GET", "/qrs/app",
                              {"filter": "name eq 'Sales dashboard'"})
        check("app lookup is condensed", status == 200 and len(body) == 1 and
              body[0]["id"] == SALES_APP and "owner" not in body[0] and
              body[0]["stream"]["name"] == "Everyone", body)
        status, body = c.json("GET", "/qrs/app/full")
        check("app/full lists 5 apps with owners", status == 200 and
              len(body) == 5 and all("userId" in a["owner"] for a in body),
              len(body))
        status, app = c.json("GET", f"/qrs/app/{SALES_APP.upper()}")
        check("app by id", status == 200 and
              app["owner"]["userId"] == "anna", (status, app))
        status, user = c.json("GET", f"/qrs/user/{app['owner']['id']}")
        emails = [a["attributeValue"] for a in user.get("attributes", [])
                  if a["attributeType"] == "email"]
        check("owner's e-mail from user attributes", status == 200 and
              emails == ["anna@example.com"], user)
        for path in (f"/qrs/app/{UNKNOWN}", f"/qrs/user/{UNKNOWN}",
                     f"/qrs/reloadtask/{UNKNOWN}"):
            status, _, raw = c.call("GET", path)
            check(f"404 for {path}", status == 404, status)
        status, body = c.json("GET", f"/qrs/reloadtask/{SALES_TASK}/scriptlog",
                              {"fileReferenceId": SALES_LOG_REF})
        ref = body.get("value") if status == 200 else None
        check("script log reference", isinstance(ref, str) and ref, body)
        status, hdrs, raw = c.call(
            "GET", f"/qrs/download/reloadtask/{ref}/scriptlog.txt")
        text = raw.decode()
        check("script log text is text/plain with CRLF lines",
              status == 200 and hdrs["Content-Type"].startswith(
                  "text/plain") and text.endswith("\r\n") and
              "Error: Field 'Amount' not found\r\n" in text and
              "\n" not in text.replace("\r\n", ""), (status, text[:200]))
        status, _ = c.json("GET", f"/qrs/reloadtask/{TARGETS_TASK}/scriptlog",
                           {"fileReferenceId": SALES_LOG_REF})
        check("script log of another task's file is 404", status == 404,
              status)
        status, _ = c.json("GET", f"/qrs/reloadtask/{SALES_TASK}/scriptlog")
        check("script log without fileReferenceId is 400", status == 400,
              status)
        status, _, _ = c.call(
            "GET", f"/qrs/download/reloadtask/{UNKNOWN}/scriptlog.txt")
        check("unknown download reference is 404", status == 404, status)

    def starts():
        c.ctl("POST", "/reset")
        status, _, raw = c.call("POST", f"/qrs/task/{SALES_TASK}/start")
        check("start one is 204", status == 204 and raw == b"", status)
        status, body = c.json("POST",
                              f"/qrs/task/{TARGETS_TASK}/start/synchronous")
        check("start synchronous is 201 with an execution GUID",
              status == 201 and len(body.get("value", "")) == 36 and
              body["value"].count("-") == 4, (status, body))
        status, _, _ = c.call("POST", "/qrs/task/start/many",
                              body=[FIN2_TASK, ARCHIVE_TASK])
        check("start many is 204", status == 204, status)
        status, _, _ = c.call("POST", "/qrs/task/start",
                              {"name": "Nightly finance"})
        check("start by name is 204", status == 204, status)
        started = c.ctl("GET", "/started")[1]
        check("/started lists starts in order", started ==
              [SALES_TASK, TARGETS_TASK, FIN2_TASK, ARCHIVE_TASK,
               NIGHTLY_TASK], started)
        status, _, _ = c.call("POST", f"/qrs/task/{UNKNOWN}/start")
        check("start of an unknown id is 404", status == 404, status)
        status, _, _ = c.call("POST", "/qrs/task/not-a-guid/start")
        check("start of a malformed id is 404", status == 404, status)
        status, _, _ = c.call("POST", f"/qrs/task/{UNKNOWN}/start/"
                              "synchronous")
        check("synchronous start of an unknown id is 404", status == 404,
              status)
        status, _, _ = c.call("POST", "/qrs/task/start/many",
                              body=[SALES_TASK, UNKNOWN])
        check("start many with an unknown id is 404", status == 404, status)
        status, _, _ = c.call("POST", "/qrs/task/start/many",
                              body={"id": SALES_TASK})
        check("start many with a non-array body is 400", status == 400,
              status)
        status, _, _ = c.call("POST", "/qrs/task/start",
                              {"name": "No such task"})
        check("start by unknown name is 404", status == 404, status)
        status, _, _ = c.call("POST", "/qrs/task/start",
                              {"name": "nightly finance"})
        check("start by name is case-sensitive", status == 404, status)
        check("failed starts start nothing", c.ctl("GET", "/started")[1] ==
              started, c.ctl("GET", "/started")[1])

    def errors():
        for flt in ("name eq", "name eq 'Reload of Sales", "foo eq 'x'",
                    "name xx 'x'", f"id eq '{SALES_TASK}'",
                    "enabled eq 'true'", "taskType sw 1",
                    "name eq 'x' and", "(name eq 'x'", "name eq 'x')",
                    "name eq 'x' or or name eq 'y'", "name == 'x'"):
            status, body = c.json("GET", "/qrs/task", {"filter": flt})
            check(f"400 for filter {flt!r}", status == 400 and
                  body.get("message") == "Invalid filter", (status, body))
        status, body = c.json("GET", "/qrs/task/count",
                              {"filter": "name eq"})
        check("400 for a bad filter on count", status == 400, status)
        for method, path in (("GET", f"/qrs/task/{SALES_TASK}/start"),
                             ("POST", "/qrs/about"),
                             ("DELETE", f"/qrs/app/{SALES_APP}"),
                             ("GET", "/qrs/task/start/many")):
            status, hdrs, _ = c.call(method, path)
            check(f"405 for {method} {path}", status == 405 and
                  hdrs.get("Allow"), (status, hdrs.get("Allow")))
        for path in ("/qrs/nothing", "/qrs/task/full/extra", "/other"):
            status, _, _ = c.call("GET", path)
            check(f"404 for unknown path {path}", status == 404, status)

    def scripts():
        c.ctl("POST", "/reset")
        status, _ = c.ctl("POST", "/script", {
            "match": "POST /qrs/task/.*/start", "status": 500,
            "body": {"message": "boom"}})
        check("script accepted", status == 200, status)
        status, body = c.json("POST", f"/qrs/task/{SALES_TASK}/start")
        check("scripted 500 with a JSON body", status == 500 and
              body == {"message": "boom"}, (status, body))
        check("a scripted start starts nothing",
              c.ctl("GET", "/started")[1] == [], c.ctl("GET", "/started")[1])
        status, _, _ = c.call("POST", f"/qrs/task/{SALES_TASK}/start")
        check("after the script, normal behaviour resumes", status == 204,
              status)
        c.ctl("POST", "/script", {"match": "^GET /qrs/about$",
                                  "status": 503, "body": "busy",
                                  "headers": {"Retry-After": "1"},
                                  "times": 2})
        c.ctl("POST", "/script", {"match": "about", "status": 502})
        got = [c.call("GET", "/qrs/about") for _ in range(4)]
        check("scripts are used in order, each `times` times",
              [g[0] for g in got] == [503, 503, 502, 200] and
              got[0][2] == b"busy" and got[0][1]["Retry-After"] == "1",
              [g[0] for g in got])
        c.ctl("POST", "/script", {"match": "GET /qrs/task", "status": 500})
        status, _, _ = c.call("GET", "/qrs/task", xrf=False)
        check("a scripted answer beats the Xrfkey check", status == 500,
              status)
        for bad in ({"status": 500}, {"match": "(", "status": 500},
                    {"match": "x"}, {"match": "x", "status": 500,
                                     "stall": True},
                    {"match": "x", "status": 99}, {"match": "x",
                                                   "close": True,
                                                   "times": 0}):
            status, _ = c.ctl("POST", "/script", bad)
            check(f"control rejects script {bad}", status == 400, status)

        c.ctl("POST", "/script", {"match": "GET /qrs/about", "stall": True})
        try:
            c.call("GET", "/qrs/about", timeout=0.5)
            check("stall: the client times out", False, "got an answer")
        except TimeoutError:
            check("stall: the client times out", True)
        calls = c.ctl("GET", "/calls")[1]
        check("stall: the call is recorded without a status",
              calls[-1]["path"] == "/qrs/about" and
              calls[-1]["status"] is None, calls[-1])
        c.ctl("POST", "/reset")
        status, _, _ = c.call("GET", "/qrs/about")
        check("reset ends the stall; about works again", status == 200,
              status)

        c.ctl("POST", "/script", {"match": "GET /qrs/about", "close": True})
        try:
            status, _, _ = c.call("GET", "/qrs/about")
            check("close: the connection closes unanswered", False, status)
        except (http.client.RemoteDisconnected, ConnectionError,
                ssl.SSLError) as exc:
            check("close: the connection closes unanswered", True, exc)
        status, _, _ = c.call("GET", "/qrs/about")
        check("after close, about works again", status == 200, status)

    def calls_and_reset():
        c.ctl("POST", "/reset")
        c.call("POST", "/qrs/task/start/many", {"extra": "x y"},
               body=[SALES_TASK, FIN2_TASK], headers={"X-Custom": "yes"})
        c.call("GET", "/qrs/about", xrf=False)
        status, calls = c.ctl("GET", "/calls")
        first = calls[0] if calls else {}
        check("/calls records both calls", status == 200 and
              len(calls) == 2, calls)
        check("/calls records method, path and query",
              first.get("method") == "POST" and
              first.get("path") == "/qrs/task/start/many" and
              first.get("query", {}).get("extra") == "x y" and
              len(first["query"].get("xrfkey", "")) == 16, first)
        check("/calls records lower-case headers",
              first["headers"].get("x-custom") == "yes" and
              first["headers"].get("x-qlik-user") == USER and
              first["headers"]["x-qlik-xrfkey"] == first["query"]["xrfkey"],
              first["headers"])
        check("/calls records the parsed body",
              first.get("body") == [SALES_TASK, FIN2_TASK], first.get("body"))
        check("/calls records the client certificate CN",
              first.get("client_cert_cn") == "butler-client", first)
        check("/calls records the status", first.get("status") == 204 and
              calls[1]["status"] == 403, [x["status"] for x in calls])
        c.ctl("POST", "/script", {"match": "about", "status": 500})
        c.ctl("POST", "/reset")
        check("/reset clears calls and started",
              c.ctl("GET", "/calls")[1] == [] and
              c.ctl("GET", "/started")[1] == [])
        status, _, _ = c.call("GET", "/qrs/about")
        check("/reset clears scripts", status == 200, status)
        check("control: unknown path 404, wrong method 405",
              c.ctl("GET", "/nothing")[0] == 404 and
              c.ctl("POST", "/calls")[0] == 405 and
              c.ctl("GET", "/reset")[0] == 405)

    for group in (tls_and_about, handshakes, auth_headers, lookups, shapes,
                  apps_users_logs, starts, errors, scripts, calls_and_reset):
        section(group)


def run_in_process(certs):
    """Checks the importable API."""
    sys.path.insert(0, HERE)
    import fake_qrs  # noqa: E402 - after the path tweak

    qrs = fake_qrs.FakeQrs(certs["server"], certs["server-key"],
                           certs["ca"]).start()
    try:
        c = Client(certs, qrs.port, qrs.control_port)
        qrs.script(match="POST /qrs/task/.*/start", status=500)
        status = c.call("POST", f"/qrs/task/{SALES_TASK}/start")[0]
        status2 = c.call("POST", f"/qrs/task/{SALES_TASK}/start")[0]
        check("import: script() and start", (status, status2) == (500, 204),
              (status, status2))
        check("import: started() and calls()",
              qrs.started() == [SALES_TASK] and len(qrs.calls()) == 2 and
              qrs.calls()[0]["client_cert_cn"] == "butler-client",
              (qrs.started(), qrs.calls()))
        check("import: wait_for_calls()", len(qrs.wait_for_calls(2, 1)) == 2)
        failed, _ = fails_tls(c, c.context(certs, None))
        n = poll(qrs.handshake_failures, lambda x: x >= 1)
        check("import: handshake_failures()", failed and n == 1, n)
        qrs.reset()
        check("import: reset()", qrs.calls() == [] and qrs.started() == [])
        qrs.script(match="about", stall=True)
        try:
            c.call("GET", "/qrs/about", timeout=0.3)
        except TimeoutError:
            pass
        try:
            qrs.script({"match": "x"})
            check("import: script() rejects a bad script", False)
        except ValueError:
            check("import: script() rejects a bad script", True)
    finally:
        began = time.monotonic()
        qrs.stop()
    check("import: stop() with a stalled request returns",
          time.monotonic() - began < 5)
    try:
        fake_qrs.FakeQrs(certs["server"], certs["server-key"], certs["ca"],
                         data={"tasks": [{"name": "no id"}]})
        check("import: a data set without ids is rejected", False)
    except ValueError:
        check("import: a data set without ids is rejected", True)


def run_data_file(certs, d):
    """Checks --data and bad --data."""
    data_file = os.path.join(d, "data.json")
    with open(data_file, "w", encoding="utf-8") as f:
        json.dump({"tasks": [{"id": UNKNOWN, "name": "Only task",
                              "taskType": 0, "enabled": True, "tags": [],
                              "customProperties": []}]}, f)
    proc, ports, err = start_fake(certs, os.path.join(d, "ports2.json"),
                                  ["--data", data_file])
    try:
        c = Client(certs, ports["port"], ports["control_port"])
        status, body = c.json("GET", "/qrs/task")
        check("--data replaces the data set", status == 200 and
              body == [{"id": UNKNOWN, "name": "Only task",
                        "privileges": None}], body)
        status, body = c.json("GET", "/qrs/about")
        check("--data without about keeps the built-in about",
              body.get("buildVersion") == "30.4.2.0", body)
    finally:
        check("--data child exits 0 on SIGTERM", stop_fake(proc) == 0)
        err.close()
    with open(data_file, "w", encoding="utf-8") as f:
        f.write("[]")
    proc = subprocess.run(
        [sys.executable, FAKE, "--cert", certs["server"], "--key",
         certs["server-key"], "--ca", certs["ca"], "--port-file",
         os.path.join(d, "ports3.json"), "--data", data_file],
        capture_output=True, timeout=10)
    check("bad --data exits 2 without a port file", proc.returncode == 2 and
          not os.path.exists(os.path.join(d, "ports3.json")),
          (proc.returncode, proc.stderr[-300:]))


def main():
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fake-qrs-selftest-") as d:
        certs = make_certs(d)
        port_file = os.path.join(d, "ports.json")
        proc, ports, err = start_fake(certs, port_file)
        try:
            check("port file names both ports", isinstance(
                ports.get("port"), int) and isinstance(
                ports.get("control_port"), int), ports)
            run_checks(Client(certs, ports["port"], ports["control_port"]),
                       certs)
        finally:
            rc = stop_fake(proc)
            err.seek(0)
            log = err.read().decode(errors="replace")
            err.close()
        check("child exits 0 on SIGTERM", rc == 0, rc)
        check("child logs one line per request to stderr",
              "fake-qrs: GET /qrs/about" in log and "-> 200" in log,
              log[-500:])
        section(lambda: run_in_process(certs))
        section(lambda: run_data_file(certs, d))
    total = time.monotonic() - began
    if failures:
        print(f"{len(failures)} check(s) FAILED in {total:.1f} s: "
              f"{failures}")
        return 1
    print(f"all checks passed in {total:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

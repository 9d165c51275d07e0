#!/usr/bin/env python3
"""Self-test of fake_engine.py (Python standard library + the openssl CLI).

Makes certificates in a temp directory (a CA, a server certificate for
127.0.0.1/localhost, a client certificate, and a second CA with its own client
certificate), starts the fake as a child process and talks to it with a small
WebSocket client of its own. Prints one line per check and exits non-zero if
any check fails:

    python3 test/fakes/fake_engine_selftest.py [-v]
"""

import base64
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_engine.py")
sys.path.insert(0, HERE)
import fake_engine  # noqa: E402  (for the in-process check and the app ids)

SALES = fake_engine.SALES_APP_ID
FINANCE = fake_engine.FINANCE_APP_ID
EMPTY = fake_engine.EMPTY_APP_ID
USER = "UserDirectory=Internal;UserId=sa_repository"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TIMEOUT = 5.0


# --------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------

def _openssl(*args):
    res = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {res.stderr}")


def _ca(d, name, cn):
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "2", "-sha256", "-keyout", f"{d}/{name}-key.pem",
             "-out", f"{d}/{name}.pem", "-subj", f"/CN={cn}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")


def _issue(d, ca, name, cn, ext):
    with open(f"{d}/{name}.ext", "w") as f:
        f.write(ext + "\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{d}/{name}-key.pem", "-out", f"{d}/{name}.csr", "-subj", f"/CN={cn}")
    _openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/{ca}.pem",
             "-CAkey", f"{d}/{ca}-key.pem", "-set_serial", str(random.randrange(1, 2 ** 62)),
             "-days", "2", "-sha256", "-out", f"{d}/{name}.pem", "-extfile", f"{d}/{name}.ext")


def make_certs(d):
    _ca(d, "ca", "Fake engine selftest CA")
    _issue(d, "ca", "server", "127.0.0.1",
           "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth")
    _issue(d, "ca", "client", "selftest-client", "extendedKeyUsage=clientAuth")
    _ca(d, "other-ca", "Some other CA")
    _issue(d, "other-ca", "intruder", "intruder", "extendedKeyUsage=clientAuth")


# --------------------------------------------------------------------------
# A small WebSocket client
# --------------------------------------------------------------------------

class Closed(Exception):
    """The connection ended; `frame` says whether a close frame came."""


class Ws:
    def __init__(self, port, certs, path="/app/engineData", user=USER, client="client",
                 extra_headers=None):
        self.port = port
        self.certs = certs
        self.path = path
        self.user = user
        self.client = client
        self.extra = extra_headers or {}
        self.sock = None
        self.buf = bytearray()
        self.notes = []            # notifications (no id)
        self.pending = {}          # answers read while waiting for another id
        self.next_id = 1
        self.status = None
        self.body = b""
        self.resp_headers = {}

    def connect(self):
        """Does TLS and the upgrade; returns the HTTP status."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=f"{self.certs}/ca.pem")
        if self.client:
            ctx.load_cert_chain(f"{self.certs}/{self.client}.pem",
                                f"{self.certs}/{self.client}-key.pem")
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)
        self.sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {self.path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}",
                 "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        if self.user is not None:
            lines.append(f"X-Qlik-User: {self.user}")
        lines += [f"{k}: {v}" for k, v in self.extra.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Closed("no upgrade answer")
            self.buf += chunk
        head, rest = bytes(self.buf).split(b"\r\n\r\n", 1)
        self.buf = bytearray(rest)
        lines = head.decode("iso-8859-1").split("\r\n")
        self.status = int(lines[0].split(" ")[1])
        self.resp_headers = {ln.split(":", 1)[0].strip().lower(): ln.split(":", 1)[1].strip()
                             for ln in lines[1:] if ":" in ln}
        if self.status == 101:
            want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
            if self.resp_headers.get("sec-websocket-accept") != want:
                raise AssertionError("bad Sec-WebSocket-Accept")
        else:
            length = int(self.resp_headers.get("content-length", "0"))
            while len(self.buf) < length:
                chunk = self.sock.recv(4096)
                if not chunk:
                    break
                self.buf += chunk
            self.body = bytes(self.buf[:length])
        return self.status

    # -- frames -------------------------------------------------------------

    def send_frame(self, opcode, payload, fin=True, mask=True, rsv=0, length=None):
        n = len(payload) if length is None else length
        b0 = (0x80 if fin else 0) | rsv | opcode
        mbit = 0x80 if mask else 0
        if n < 126:
            head = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            head = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            head = struct.pack("!BBQ", b0, mbit | 127, n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            head += key
        self.sock.sendall(head + payload)

    def send_text(self, text):
        self.send_frame(0x1, text.encode("utf-8") if isinstance(text, str) else text)

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def _fill(self, need, timeout):
        self.sock.settimeout(timeout)
        while len(self.buf) < need:
            try:
                chunk = self.sock.recv(65536)
            except (ssl.SSLError, ConnectionError) as exc:
                raise Closed(f"connection error: {exc}") from None
            if not chunk:
                raise Closed("EOF")
            self.buf += chunk

    def recv_frame(self, timeout=TIMEOUT):
        """Returns (fin, opcode, payload); raises Closed on EOF."""
        self._fill(2, timeout)
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            raise AssertionError("server frames must not be masked")
        n, pos = b1 & 0x7F, 2
        if n == 126:
            self._fill(4, timeout)
            n, pos = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._fill(10, timeout)
            n, pos = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._fill(pos + n, timeout)
        payload = bytes(self.buf[pos:pos + n])
        del self.buf[:pos + n]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_json(self, timeout=TIMEOUT):
        """Returns the next JSON message (fragments joined); a close frame
        raises Closed with the code in .code."""
        data = b""
        while True:
            fin, opcode, payload = self.recv_frame(timeout)
            if opcode == 0x8:
                err = Closed("close frame")
                err.code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise err
            if opcode in (0x9, 0xA):
                continue
            data += payload
            if fin:
                return json.loads(data.decode("utf-8"))

    def call(self, method, params=None, handle=-1, rid=None, raw=False):
        """Sends a request and returns the answer with its id (the whole
        message if raw, else result or raises RpcError)."""
        if rid is None:
            rid = self.next_id
            self.next_id += 1
        self.send_json({"jsonrpc": "2.0", "id": rid, "handle": handle, "method": method,
                        "params": [] if params is None else params})
        msg = self.wait_id(rid)
        if raw:
            return msg
        if "error" in msg:
            raise RpcError(msg["error"])
        return msg["result"]

    def wait_id(self, rid, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while rid not in self.pending:
            msg = self.recv_json(max(0.01, deadline - time.monotonic()))
            if "id" in msg:
                self.pending[msg["id"]] = msg
            else:
                self.notes.append(msg)
        return self.pending.pop(rid)

    def close(self, code=1000):
        """Closes cleanly; returns the code the server echoed."""
        self.send_frame(0x8, struct.pack("!H", code) + b"bye")
        while True:
            fin, opcode, payload = self.recv_frame()
            if opcode == 0x8:
                break
        self.sock.close()
        return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None

    def answer_close(self):
        """Waits for the server's close frame, answers it; returns its code."""
        while True:
            fin, opcode, payload = self.recv_frame()
            if opcode == 0x8:
                self.send_frame(0x8, payload[:2])
                self.sock.close()
                return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None

    def abort(self):
        self.sock.close()


class RpcError(Exception):
    def __init__(self, error):
        super().__init__(json.dumps(error))
        self.error = error


def open_session(port, certs, app=SALES, no_data=True, **kw):
    ws = Ws(port, certs, path=f"/app/{app}", **kw)
    if ws.connect() != 101:
        raise AssertionError(f"upgrade answered {ws.status}")
    ws.recv_json()          # OnConnected
    ret = ws.call("OpenDoc", {"qDocName": app, "qNoData": no_data})["qReturn"]
    return ws, ret["qHandle"]


# --------------------------------------------------------------------------
# Control API
# --------------------------------------------------------------------------

class Control:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path):
        with urllib.request.urlopen(self.base + path, timeout=TIMEOUT) as r:
            return json.loads(r.read())

    def post(self, path, body=None):
        data = json.dumps(body).encode() if body is not None else b""
        req = urllib.request.Request(self.base + path, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def wait(self, predicate, timeout=TIMEOUT):
        """Polls GET /calls until predicate(calls) is truthy; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate(self.get("/calls"))
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.02)

    def wait_failures(self, count, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            n = self.get("/handshake_failures")["count"]
            if n >= count or time.monotonic() > deadline:
                return n
            time.sleep(0.02)


def conn_entry(calls, number):
    for c in calls:
        if c["connection"] == number:
            return c
    return None


# --------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------

class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, cond, detail=""):
        if cond:
            self.passed += 1
            print(f"ok   - {name}")
        else:
            self.failed += 1
            print(f"FAIL - {name}" + (f": {detail}" if detail else ""))
        sys.stdout.flush()
        return cond

    def group(self, name, fn, *args):
        try:
            fn(self, *args)
        except Exception as exc:  # a crashed group is one failed check
            self.failed += 1
            print(f"FAIL - {name}: {exc!r}")
            traceback.print_exc(file=sys.stdout)


def start_child(certs, tmp, extra=()):
    port_file = os.path.join(tmp, f"ports-{random.randrange(1 << 30)}.json")
    log = open(os.path.join(tmp, "fake.log"), "a")
    proc = subprocess.Popen([sys.executable, FAKE, "--cert", f"{certs}/server.pem",
                             "--key", f"{certs}/server-key.pem", "--ca", f"{certs}/ca.pem",
                             "--port-file", port_file, *extra],
                            stdout=log, stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if os.path.exists(port_file):
            with open(port_file) as f:
                return proc, json.load(f)
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("the fake did not start; see " + log.name)


def stop_child(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return None


def t_connect_and_global(c, port, certs, ctl, state):
    ws = Ws(port, certs)
    c.check("upgrade to /app/engineData answers 101", ws.connect() == 101, ws.status)
    first = ws.recv_json()
    c.check("OnConnected is the first message",
            first == {"jsonrpc": "2.0", "method": "OnConnected",
                      "params": {"qSessionState": "SESSION_CREATED"}}, first)
    docs = ws.call("GetDocList")["qDocList"]
    sales = [d for d in docs if d["qDocId"] == SALES]
    c.check("GetDocList lists 4 apps including Sales dashboard", len(docs) == 4 and sales, docs)
    s = sales[0] if sales else {}
    c.check("GetDocList entry has the documented shape",
            s.get("qDocName") == "Sales dashboard" and s.get("qTitle") == "Sales dashboard"
            and s["qMeta"].get("title") == "Sales dashboard"
            and s["qMeta"].get("stream", {}).get("name") == "Everyone"
            and s["qMeta"].get("published") is True and isinstance(s.get("qFileSize"), int)
            and s.get("qLastReloadTime") == "2024-05-01T08:11:12.000Z"
            and isinstance(s.get("qThumbnail"), dict), s)
    ver = ws.call("EngineVersion")
    c.check("EngineVersion gives qVersion.qComponentVersion",
            isinstance(ver.get("qVersion", {}).get("qComponentVersion"), str), ver)
    c.check("IsDesktopMode is false", ws.call("IsDesktopMode") == {"qReturn": False})
    c.check("GetActiveDoc without an open doc gives a null handle",
            ws.call("GetActiveDoc") == {"qReturn": {"qType": None, "qHandle": None}})
    c.check("GetAuthenticatedUser names the X-Qlik-User",
            ws.call("GetAuthenticatedUser")["qReturn"] == "UserDirectory=Internal; UserId=sa_repository")
    code = ws.close(1000)
    c.check("a clean close is echoed with 1000", code == 1000, code)
    calls = ctl.wait(lambda cs: cs and not cs[0]["open"] and cs)
    e = calls[0] if calls else {}
    c.check("/calls: path, lower-case headers, client certificate CN",
            e.get("path") == "/app/engineData" and e["headers"].get("x-qlik-user") == USER
            and "sec-websocket-key" in e["headers"] and e.get("client_cert_cn") == "selftest-client"
            and e.get("status") == 101, e)
    methods = [r["method"] for r in e.get("requests", [])]
    c.check("/calls: every request in order with id, handle, method, params",
            methods == ["GetDocList", "EngineVersion", "IsDesktopMode", "GetActiveDoc",
                        "GetAuthenticatedUser"]
            and e["requests"][0] == {"id": 1, "handle": -1, "method": "GetDocList", "params": []},
            e.get("requests"))
    c.check("/calls: closed_cleanly true after a close frame, with its code",
            e.get("closed_cleanly") is True and e.get("close_code") == 1000, e)
    state["first_conn"] = e.get("connection")


def t_dump(c, port, certs, ctl, state):
    ws = Ws(port, certs, path=f"/app/{SALES}")
    ws.connect()
    ws.recv_json()
    ret = ws.call("OpenDoc", {"qDocName": SALES, "qNoData": True})
    c.check("OpenDoc (named params) returns the Doc handle 1",
            ret == {"qReturn": {"qType": "Doc", "qHandle": 1, "qGenericId": SALES}}, ret)
    c.check("GetActiveDoc returns the open doc",
            ws.call("GetActiveDoc") == ret)
    err = ws.call("OpenDoc", [SALES], raw=True).get("error", {})
    c.check("a second OpenDoc in the session answers 1002", err.get("code") == 1002, err)
    prop = ws.call("GetAppProperties", handle=1)["qProp"]
    c.check("GetAppProperties: qProp with qTitle and qLastReloadTime",
            prop.get("qTitle") == "Sales dashboard" and prop.get("qLastReloadTime"), prop)
    lay = ws.call("GetAppLayout", handle=1)["qLayout"]
    c.check("GetAppLayout: qLastReloadTime, qHasScript, qLocaleInfo, opened without data",
            lay.get("qLastReloadTime") and lay.get("qHasScript") is True
            and isinstance(lay.get("qLocaleInfo"), dict) and lay.get("qIsOpenedWithoutData") is True,
            lay)
    script = ws.call("GetScript", handle=1)["qScript"]
    c.check("GetScript: a multi-line CRLF load script",
            script.count("\r\n") > 10 and "LOAD" in script and "SET ThousandSep" in script)
    infos = ws.call("GetAllInfos", handle=1)["qInfos"]
    types = {i["qType"] for i in infos}
    c.check("GetAllInfos covers every object type",
            {"sheet", "story", "masterobject", "dimension", "measure", "bookmark", "appprops",
             "variable", "snapshot", "barchart"} <= types, types)
    conns = ws.call("GetConnections", handle=1)["qConnections"]
    c.check("GetConnections: 2 with qId, qName, qConnectionString, qType",
            len(conns) == 2 and all({"qId", "qName", "qConnectionString", "qType"} <= set(x)
                                    for x in conns), conns)
    one = ws.call("GetConnection", [conns[0]["qId"]], handle=1)["qConnection"]
    c.check("GetConnection by id", one == conns[0], one)
    lin = ws.call("GetLineage", handle=1)["qLineage"]
    c.check("GetLineage: qDiscriminator/qStatement entries",
            len(lin) == 3 and all({"qDiscriminator", "qStatement"} <= set(x) for x in lin), lin)

    handles = []

    def listing(prop, key):
        r = ws.call("CreateSessionObject", [prop], handle=1)["qReturn"]
        handles.append(r["qHandle"])
        ok = r["qType"] == "GenericObject" and r["qGenericType"] == prop["qInfo"]["qType"]
        layout = ws.call("GetLayout", handle=r["qHandle"])["qLayout"]
        return ok, layout.get(key, {}).get("qItems"), layout

    for qtype, count in (("sheet", 2), ("story", 1), ("masterobject", 1), ("appprops", 1),
                         ("snapshot", 1)):
        ok, items, _ = listing({"qInfo": {"qType": qtype + "List"},
                                "qAppObjectListDef": {"qType": qtype,
                                                      "qData": {"title": "/qMetaDef/title",
                                                                "cells": "/cells"}}},
                               "qAppObjectList")
        c.check(f"qAppObjectListDef {qtype}: {count} item(s) with qInfo/qMeta/qData",
                ok and items is not None and len(items) == count
                and all(i["qInfo"]["qType"] == qtype and "qMeta" in i and "qData" in i
                        for i in items), items)
        if qtype == "sheet" and items:
            c.check("sheet list qData resolves /qMetaDef/title and /cells",
                    [i["qData"]["title"] for i in items] == ["Overview", "Product analysis"]
                    and len(items[0]["qData"]["cells"]) == 3, items)
            state["sheet"] = items[0]["qInfo"]["qId"]
    ok, items, _ = listing({"qInfo": {"qType": "DimensionList"},
                            "qDimensionListDef": {"qType": "dimension",
                                                  "qData": {"info": "/qDimInfos",
                                                            "title": "/qMetaDef/title"}}},
                           "qDimensionList")
    c.check("qDimensionListDef: 2 master dimensions, qData from properties and layout",
            ok and len(items) == 2 and items[0]["qData"]["title"] == "Country"
            and isinstance(items[0]["qData"]["info"], list), items)
    dim = items[0]["qInfo"]["qId"] if items else ""
    ok, items, _ = listing({"qInfo": {"qType": "MeasureList"},
                            "qMeasureListDef": {"qType": "measure",
                                                "qData": {"title": "/qMetaDef/title"}}},
                           "qMeasureList")
    c.check("qMeasureListDef: 2 measures", ok and len(items) == 2, items)
    mea = items[0]["qInfo"]["qId"] if items else ""
    ok, items, _ = listing({"qInfo": {"qType": "BookmarkList"},
                            "qBookmarkListDef": {"qType": "bookmark",
                                                 "qData": {"title": "/qMetaDef/title",
                                                           "sheetId": "/sheetId"}}},
                           "qBookmarkList")
    c.check("qBookmarkListDef: 2 bookmarks with title and sheetId",
            ok and len(items) == 2 and items[0]["qData"]["title"] == "Nordics 2024"
            and items[0]["qData"]["sheetId"], items)
    bmk = items[0]["qInfo"]["qId"] if items else ""
    ok, items, _ = listing({"qInfo": {"qType": "BookmarkList"},
                            "qBookmarkListDef": {"qType": "snapshot", "qData": {}}},
                           "qBookmarkList")
    c.check("qBookmarkListDef snapshot: 1 snapshot", ok and len(items) == 1
            and items[0]["qInfo"]["qType"] == "snapshot", items)
    ok, items, _ = listing({"qInfo": {"qType": "VariableList"},
                            "qVariableListDef": {"qType": "variable", "qShowReserved": False,
                                                 "qShowConfig": False, "qData": {}}},
                           "qVariableList")
    c.check("qVariableListDef without reserved: 2 variables, no false flags",
            ok and [i["qName"] for i in items] == ["vCurrentYear", "vTargetRevenue"]
            and all("qIsReserved" not in i for i in items), items)
    ok, items, _ = listing({"qInfo": {"qType": "VariableList"},
                            "qVariableListDef": {"qType": "variable", "qShowReserved": True,
                                                 "qShowConfig": True, "qData": {}}},
                           "qVariableList")
    c.check("qVariableListDef with reserved: 3 variables, ThousandSep reserved",
            ok and len(items) == 3 and items[2].get("qIsReserved") is True
            and items[2].get("qIsScriptCreated") is True, items)
    var = items[0]["qInfo"]["qId"] if items else ""
    ok, items, _ = listing({"qInfo": {"qType": "FieldList"},
                            "qFieldListDef": {"qShowSystem": True, "qShowHidden": True,
                                              "qShowSrcTables": True, "qShowSemantic": True}},
                           "qFieldList")
    c.check("qFieldListDef with system fields and source tables",
            ok and any(i["qName"] == "$Field" for i in items)
            and all("qSrcTables" in i for i in items)
            and {"Country", "Amount"} <= {i["qName"] for i in items}, items)
    ok, items, _ = listing({"qInfo": {"qType": "FieldList"}, "qFieldListDef": {}}, "qFieldList")
    c.check("qFieldListDef default: no system fields, no source tables",
            ok and items and not any(i["qName"].startswith("$") for i in items)
            and not any("qSrcTables" in i for i in items), items)
    ok, items, _ = listing({"qInfo": {"qId": "mediaList", "qType": "MediaList"},
                            "qMediaListDef": {}}, "qMediaList")
    c.check("qMediaListDef: embedded media with qUrlDef",
            ok and len(items) == 3 and all("qUrlDef" in i and "qUrl" in i for i in items), items)

    sheet = state.get("sheet", "")
    ret = ws.call("GetObject", [sheet], handle=1)["qReturn"]
    c.check("GetObject(sheet) returns a GenericObject handle",
            ret.get("qType") == "GenericObject" and ret.get("qGenericType") == "sheet"
            and ret.get("qGenericId") == sheet, ret)
    again = ws.call("GetObject", {"qId": sheet}, handle=1)["qReturn"]
    c.check("GetObject of the same id gives the same handle",
            again.get("qHandle") == ret.get("qHandle"), again)
    sh = ret.get("qHandle")
    tree = ws.call("GetFullPropertyTree", handle=sh)["qPropEntry"]
    kids = [k["qProperty"]["qInfo"]["qType"] for k in tree.get("qChildren", [])]
    c.check("GetFullPropertyTree: the sheet and its 3 objects",
            tree["qProperty"]["qInfo"]["qId"] == sheet and kids == ["kpi", "barchart", "linechart"],
            tree)
    lay = ws.call("GetLayout", handle=sh)["qLayout"]
    c.check("sheet GetLayout: qMeta title and qChildList",
            lay["qMeta"].get("title") == "Overview" and len(lay["qChildList"]["qItems"]) == 3
            and "qMetaDef" not in lay and "qChildListDef" not in lay, lay)
    c.check("sheet GetProperties: qProp with qMetaDef and cells",
            ws.call("GetProperties", handle=sh)["qProp"]["qMetaDef"]["title"] == "Overview")
    chart = ws.call("GetObject", ["XmHwaQ"], handle=1)["qReturn"]["qHandle"]
    cube = ws.call("GetLayout", handle=chart)["qLayout"].get("qHyperCube", {})
    c.check("chart GetLayout: qHyperCube with dimension and measure info",
            len(cube.get("qDimensionInfo", [])) == 1 and len(cube.get("qMeasureInfo", [])) == 1,
            cube)

    d = ws.call("GetDimension", [dim], handle=1)["qReturn"]
    dp = ws.call("GetProperties", handle=d["qHandle"])["qProp"]
    dl = ws.call("GetLayout", handle=d["qHandle"])["qLayout"]
    c.check("GetDimension: GenericDimension with qDim and qDimInfos",
            d["qType"] == "GenericDimension" and dp["qDim"]["qFieldDefs"] == ["Country"]
            and len(dl["qDimInfos"]) == 1, (d, dp, dl))
    m = ws.call("GetMeasure", [mea], handle=1)["qReturn"]
    mp = ws.call("GetProperties", handle=m["qHandle"])["qProp"]
    c.check("GetMeasure: GenericMeasure with qMeasure.qDef",
            m["qType"] == "GenericMeasure" and mp["qMeasure"]["qDef"] == "Sum(Amount)", mp)
    b = ws.call("GetBookmark", [bmk], handle=1)["qReturn"]
    bl = ws.call("GetLayout", handle=b["qHandle"])["qLayout"]
    c.check("GetBookmark: GenericBookmark with layout qMeta title",
            b["qType"] == "GenericBookmark" and bl["qMeta"]["title"] == "Nordics 2024", bl)
    v = ws.call("GetVariableById", [var], handle=1)["qReturn"]
    vp = ws.call("GetProperties", handle=v["qHandle"])["qProp"]
    vl = ws.call("GetLayout", handle=v["qHandle"])["qLayout"]
    c.check("GetVariableById: GenericVariable with qName, qDefinition and qText",
            v["qType"] == "GenericVariable" and vp["qName"] == "vCurrentYear"
            and vp["qDefinition"] == "=Year(Today())" and vl["qText"] == "2024", (vp, vl))
    missing = ws.call("GetObject", ["no-such-object"], handle=1)
    c.check("GetObject of an unknown id: qType and qHandle null",
            missing == {"qReturn": {"qType": None, "qHandle": None}}, missing)
    allh = [1] + handles + [sh, chart, d["qHandle"], m["qHandle"], b["qHandle"], v["qHandle"]]
    c.check("handles count up per session",
            allh == sorted(allh) and len(set(allh)) == len(allh) and allh[1] == 2, allh)
    err = ws.call("GetLayout", handle=1, raw=True).get("error", {})
    c.check("a method of another class answers -32601", err.get("code") == -32601, err)
    ws.close()


def t_errors(c, port, certs, ctl, state):
    ws = Ws(port, certs)
    ws.connect()
    ws.recv_json()
    err = ws.call("OpenDoc", {"qDocName": "00000000-0000-0000-0000-000000000000"}, raw=True)
    c.check("unknown app: 1003 error frame with the app id",
            err.get("error") == {"code": 1003, "parameter": "00000000-0000-0000-0000-000000000000",
                                 "message": "App not found"} and "result" not in err, err)
    ret = ws.call("OpenDoc", [SALES, "", "", "", True])["qReturn"]
    c.check("OpenDoc with positional params", ret["qGenericId"] == SALES and ret["qHandle"] == 1,
            ret)
    err = ws.call("NoSuchMethod", raw=True).get("error", {})
    c.check("unknown method: -32601 Method not found",
            err.get("code") == -32601 and err.get("message") == "Method not found", err)
    err = ws.call("GetScript", handle=77, raw=True).get("error", {})
    c.check("unknown handle: -32600 Invalid handle",
            err.get("code") == -32600 and "Invalid handle" in json.dumps(err), err)
    for name, method, params in (("a wrong type", "GetObject", {"qId": 5}),
                                 ("a missing param", "GetObject", []),
                                 ("too many params", "GetObject", ["a", "b"]),
                                 ("an unknown named param", "GetObject", {"qID": "a"}),
                                 ("a bad qMode", "DoReload", {"qMode": 7})):
        err = ws.call(method, params, handle=1, raw=True).get("error", {})
        c.check(f"bad params ({name}): -32602", err.get("code") == -32602, err)
    ws.send_text("{this is not json")
    msg = ws.recv_json()
    c.check("malformed JSON: -32700 error with id null",
            msg.get("id", "absent") is None and msg.get("error", {}).get("code") == -32700, msg)
    ws.send_text("[1, 2]")
    msg = ws.recv_json()
    c.check("a non-object message: -32600 with id null",
            msg.get("id", "absent") is None and msg.get("error", {}).get("code") == -32600, msg)
    ws.send_json({"id": 90, "handle": -1, "method": "GetDocList", "params": []})
    msg = ws.wait_id(90)
    c.check("a request without jsonrpc 2.0: -32600", msg.get("error", {}).get("code") == -32600,
            msg)
    c.check("the session still works after errors", len(ws.call("GetDocList")["qDocList"]) == 4)
    ws.close()


def t_reload(c, port, certs, ctl, state):
    ws, doc = open_session(port, certs, SALES)
    ws.send_json({"jsonrpc": "2.0", "id": 10, "handle": doc, "method": "DoReload",
                  "params": [0, False, False]})
    ws.send_json({"jsonrpc": "2.0", "id": 11, "handle": -1, "method": "GetProgress",
                  "params": {"qRequestId": 10}})
    first = ws.recv_json()
    p = first.get("result", {}).get("qProgressData", {})
    c.check("GetProgress during a reload: started, not finished, progress text",
            first.get("id") == 11 and p.get("qStarted") is True and p.get("qFinished") is False
            and p.get("qPersistentProgress") and p.get("qTransientProgress"), first)
    done = ws.wait_id(10)
    c.check("DoReload (positional) answers qReturn true, with a change list",
            done.get("result") == {"qReturn": True} and doc in done.get("change", []), done)
    during = first.get("result", {}).get("qProgressData", {}).get("qPersistentProgress", "")
    p = ws.call("GetProgress", [10])["qProgressData"]
    c.check("GetProgress after the reload: finished, no errors",
            p["qFinished"] is True and p["qErrorData"] == [], p)
    log = fake_engine.DEFAULT_DATA["apps"][0]["reload_log"]
    c.check("persistent progress comes once: each call gives only the new lines",
            during.split("\n") + p["qPersistentProgress"].split("\n") == log,
            (during, p["qPersistentProgress"]))
    c.check("DoSave answers {}", ws.call("DoSave", {}, handle=doc) == {})
    docs = {d["qDocId"]: d for d in ws.call("GetDocList")["qDocList"]}
    c.check("a reload updates qLastReloadTime",
            docs[SALES].get("qLastReloadTime") != "2024-05-01T08:11:12.000Z", docs[SALES])
    ws.close()

    ws, doc = open_session(port, certs, FINANCE)
    r = ws.call("DoReload", {"qMode": 0, "qPartial": False, "qDebug": False}, handle=doc, rid=20)
    c.check("DoReload (named) of the failing app answers qReturn false", r == {"qReturn": False}, r)
    p = ws.call("GetProgress", {"qRequestId": 20})["qProgressData"]
    c.check("GetProgress after a failed reload: finished with qErrorData",
            p["qFinished"] is True and "Amoutn" in p["qErrorData"][0]["qErrorString"], p)
    ws.close()

    ws, doc = open_session(port, certs, EMPTY)
    c.check("the empty app: no script, no objects, reload true",
            ws.call("GetScript", handle=doc) == {"qScript": ""}
            and ws.call("GetAllInfos", handle=doc) == {"qInfos": []}
            and ws.call("DoReload", [], handle=doc) == {"qReturn": True})
    ws.close()


def t_upgrade_and_tls(c, port, certs, ctl, state):
    ws = Ws(port, certs, user=None)
    c.check("missing X-Qlik-User: upgrade refused with 403", ws.connect() == 403, ws.status)
    ws = Ws(port, certs, user="UserId=sa_repository")
    c.check("X-Qlik-User without UserDirectory: 403", ws.connect() == 403, ws.status)
    ws = Ws(port, certs, path="/qrs/about")
    c.check("a path outside /app/: 404", ws.connect() == 404, ws.status)
    calls = ctl.get("/calls")
    c.check("/calls lists refused upgrades with their status",
            [x["status"] for x in calls[-3:]] == [403, 403, 404], calls[-3:])
    ws_v8 = _raw_upgrade(port, certs, "Sec-WebSocket-Version: 8")
    c.check("Sec-WebSocket-Version 8: 426 naming version 13",
            ws_v8[0] == 426 and ws_v8[1].get("sec-websocket-version") == "13", ws_v8)
    no_upgrade = _raw_upgrade(port, certs, None)
    c.check("a GET without the Upgrade headers: 400", no_upgrade[0] == 400, no_upgrade)
    ws = Ws(port, certs, path="/app/")
    c.check("/app/ with anything after it is accepted", ws.connect() == 101, ws.status)
    ws.recv_json()
    ws.close()
    ws = Ws(port, certs, user="UserDirectory=INTERNAL; UserId=sa_scheduler")
    ws.connect()
    ws.recv_json()
    c.check("X-Qlik-User with spaces is accepted and names the session user",
            ws.call("GetAuthenticatedUser")["qReturn"] == "UserDirectory=INTERNAL; UserId=sa_scheduler")
    ws.close()
    ws = Ws(port, certs)
    ctx_ok = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    ctx_ok.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx_ok.load_cert_chain(f"{certs}/client.pem", f"{certs}/client-key.pem")
    with ctx_ok.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT),
                            server_hostname="127.0.0.1") as tls12:
        c.check("TLS 1.2 is accepted", tls12.version() == "TLSv1.2", tls12.version())
    before = ctl.get("/handshake_failures")["count"]
    for name, client in (("no client certificate", None), ("a certificate of another CA", "intruder")):
        ws = Ws(port, certs, client=client)
        try:
            status = ws.connect()
            refused = False
        except (ssl.SSLError, OSError, Closed):
            refused, status = True, None
        before += 1
        n = ctl.wait_failures(before)
        c.check(f"{name}: TLS handshake fails and is counted", refused and n == before,
                (status, n))


def _raw_upgrade(port, certs, version_line):
    """Sends a hand-made upgrade request; returns (status, headers)."""
    ctx = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    ctx.load_cert_chain(f"{certs}/client.pem", f"{certs}/client-key.pem")
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT),
                         server_hostname="127.0.0.1") as s:
        lines = ["GET /app/engineData HTTP/1.1", "Host: 127.0.0.1", f"X-Qlik-User: {USER}"]
        if version_line:
            lines += ["Upgrade: websocket", "Connection: Upgrade",
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", version_line]
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n")[0].decode("iso-8859-1").split("\r\n")
    headers = {ln.split(":", 1)[0].lower(): ln.split(":", 1)[1].strip() for ln in head[1:] if ":" in ln}
    return int(head[0].split(" ")[1]), headers


def t_scripts(c, port, certs, ctl, state):
    st, _ = ctl.post("/script", {"match": "OpenDoc",
                                 "body": {"code": 5, "parameter": SALES, "message": "Access denied"}})
    c.check("POST /script answers 200", st == 200, st)
    ws = Ws(port, certs)
    ws.connect()
    ws.recv_json()
    err = ws.call("OpenDoc", [SALES], raw=True).get("error")
    c.check("a scripted error is answered", err == {"code": 5, "parameter": SALES,
                                                    "message": "Access denied"}, err)
    c.check("after `times` uses normal answers resume",
            ws.call("OpenDoc", [SALES])["qReturn"]["qHandle"] == 1)
    ctl.post("/script", {"match": "^GetScript$", "result": {"qScript": "LOAD 1 as x AutoGenerate 1;"},
                         "times": 2})
    a = ws.call("GetScript", handle=1)
    b = ws.call("GetScript", handle=1)
    z = ws.call("GetScript", handle=1)
    c.check("a scripted result with times 2",
            a == b == {"qScript": "LOAD 1 as x AutoGenerate 1;"} and z["qScript"].startswith("///$tab"),
            (a, b, z["qScript"][:20]))
    ctl.post("/script", {"match": "GetDocList", "stall": True})
    ws.send_json({"jsonrpc": "2.0", "id": 50, "handle": -1, "method": "GetDocList", "params": []})
    ws.send_json({"jsonrpc": "2.0", "id": 51, "handle": -1, "method": "EngineVersion", "params": []})
    nxt = ws.recv_json()
    c.check("a stalled request stays unanswered while later ones are answered",
            nxt.get("id") == 51 and 50 not in ws.pending, nxt)
    ctl.post("/script", {"match": "GetAppLayout", "close": True})
    ws.send_json({"jsonrpc": "2.0", "id": 52, "handle": 1, "method": "GetAppLayout", "params": []})
    try:
        got = ws.recv_json()
        closed, how = False, got
    except Closed as exc:
        closed, how = not hasattr(exc, "code"), str(exc)
    c.check("a scripted close drops the connection without a close frame", closed, how)
    number = ctl.get("/calls")[-1]["connection"]
    e = ctl.wait(lambda cs: (x := conn_entry(cs, number)) and not x["open"] and x)
    c.check("/calls: closed_cleanly false after an abrupt close",
            e and e["closed_cleanly"] is False
            and [r["method"] for r in e["requests"]][-2:] == ["EngineVersion", "GetAppLayout"], e)
    ctl.post("/script", {"match": "UPGRADE", "status": 503, "body": "engine busy"})
    ws = Ws(port, certs)
    st = ws.connect()
    c.check("a scripted UPGRADE refusal", st == 503 and ws.body == b"engine busy", (st, ws.body))
    ctl.post("/script", {"match": "UPGRADE", "close": True})
    ws = Ws(port, certs)
    try:
        got = f"answered {ws.connect()}"
    except (Closed, OSError, ssl.SSLError):
        got = "closed"
    c.check("a scripted UPGRADE close: no answer, the connection ends", got == "closed", got)
    ws = Ws(port, certs)
    c.check("the next upgrade works again", ws.connect() == 101)
    ws.recv_json()
    ws.abort()
    n = ctl.get("/calls")[-1]["connection"]
    e = ctl.wait(lambda cs: (x := conn_entry(cs, n)) and not x["open"] and x)
    c.check("/calls: closed_cleanly false when the client just drops the socket",
            e and e["closed_cleanly"] is False, e)
    for bad in ({"body": {}}, {"match": "x"}, {"match": "(", "close": True},
                {"match": "x", "close": True, "times": 0}, {"match": "UPGRADE", "status": 99}):
        st, _ = ctl.post("/script", bad)
        c.check(f"a bad script is refused with 400: {json.dumps(bad)}", st == 400, st)


def t_frames(c, port, certs, ctl, state):
    ws = Ws(port, certs)
    ws.connect()
    ws.recv_json()
    ws.send_frame(0x9, b"are you there")
    fin, op, payload = ws.recv_frame()
    c.check("ping is answered with a pong carrying its payload",
            op == 0xA and payload == b"are you there", (op, payload))
    text = json.dumps({"jsonrpc": "2.0", "id": 7, "handle": -1, "method": "GetDocList",
                       "params": []}).encode()
    ws.send_frame(0x1, text[:10], fin=False)
    ws.send_frame(0x9, b"mid")
    ws.send_frame(0x0, text[10:30], fin=False)
    ws.send_frame(0x0, text[30:], fin=True)
    msg = ws.wait_id(7)
    c.check("a fragmented message (with a ping between) is answered",
            len(msg.get("result", {}).get("qDocList", [])) == 4, msg)
    big = json.dumps({"jsonrpc": "2.0", "id": 8, "handle": -1, "method": "EngineVersion",
                      "params": [], "pad": "x" * 200000}).encode()
    ws.send_frame(0x1, big)
    c.check("a 200 kB message (64-bit length) is answered", "result" in ws.wait_id(8))
    head = b'{"jsonrpc":"2.0","id":9,"handle":-1,"method":"EngineVersion","params":[],"pad":"'
    limit = head + b"x" * (16 * 1024 * 1024 - len(head) - 2) + b'"}'
    ws.send_frame(0x1, limit)
    c.check("a message of exactly 16 MiB is answered",
            len(limit) == 16 * 1024 * 1024 and "result" in ws.wait_id(9))
    ws.send_json({"jsonrpc": "2.0", "handle": -1, "method": "GetDocList", "params": []})
    nxt = ws.call("EngineVersion", raw=True)
    c.check("a notification (no id) gets no answer",
            "qVersion" in nxt.get("result", {}) and not ws.pending and not ws.notes, (nxt, ws.pending))
    ws.send_frame(0x8, b"")
    fin, op, payload = ws.recv_frame()
    ws.sock.close()
    c.check("a close frame without a code is answered with an empty close frame",
            op == 0x8 and payload == b"", (op, payload))
    n = ctl.get("/calls")[-1]["connection"]
    e = ctl.wait(lambda cs: (x := conn_entry(cs, n)) and not x["open"] and x)
    c.check("/calls: closed_cleanly true for a close frame without a code",
            e and e["closed_cleanly"] is True and e["close_code"] is None, e)

    for name, action, want in (
            ("an unmasked frame", lambda w: w.send_frame(0x1, b"{}", mask=False), 1002),
            ("reserved bits", lambda w: w.send_frame(0x1, b"{}", rsv=0x40), 1002),
            ("a continuation without a message", lambda w: w.send_frame(0x0, b"{}"), 1002),
            ("a binary message", lambda w: w.send_frame(0x2, b"\x00\x01"), 1003),
            ("invalid UTF-8", lambda w: w.send_frame(0x1, b"\xff\xfe"), 1007),
            ("a ping over 125 bytes", lambda w: w.send_frame(0x9, b"p" * 126), 1002),
            ("a fragmented ping", lambda w: w.send_frame(0x9, b"p", fin=False), 1002),
            ("a close frame with a 1-byte payload", lambda w: w.send_frame(0x8, b"\x03"), 1002),
            ("a close frame with code 1005", lambda w: w.send_frame(0x8, struct.pack("!H", 1005)),
             1002),
            ("a message over 16 MiB", lambda w: w.send_frame(0x1, b"", fin=True,
                                                            length=16 * 1024 * 1024 + 1), 1009),
            ("fragments adding up to over 16 MiB",
             lambda w: (w.send_frame(0x1, b"[", fin=False),
                        w.send_frame(0x0, b"", fin=False, length=16 * 1024 * 1024)), 1009)):
        ws = Ws(port, certs)
        ws.connect()
        ws.recv_json()
        action(ws)
        try:
            code = ws.answer_close()
        except Closed as exc:
            code = f"no close frame: {exc}"
        c.check(f"{name}: the server closes with {want}", code == want, code)
        n = ctl.get("/calls")[-1]["connection"]
        e = ctl.wait(lambda cs: (x := conn_entry(cs, n)) and not x["open"] and x)
        c.check(f"{name}: /calls has close_code {want}, closed_cleanly false",
                e and e["close_code"] == want and e["closed_cleanly"] is False, e)


def t_reset(c, port, certs, ctl, state):
    ctl.post("/script", {"match": "OpenDoc", "stall": True})
    st, _ = ctl.post("/reset")
    calls = ctl.get("/calls")
    c.check("/reset clears calls, scripts and handshake failures",
            st == 200 and calls == [] and ctl.get("/scripts") == []
            and ctl.get("/handshake_failures")["count"] == 0, calls)
    ws = Ws(port, certs)
    ws.connect()
    ws.recv_json()
    docs = {d["qDocId"]: d for d in ws.call("GetDocList")["qDocList"]}
    c.check("/reset restores the data set",
            docs[SALES]["qLastReloadTime"] == "2024-05-01T08:11:12.000Z", docs[SALES])
    ws.close()
    calls = ctl.wait(lambda cs: len(cs) == 1 and not cs[0]["open"] and cs)
    c.check("/calls after the reset holds only the new connection",
            calls and [r["method"] for r in calls[0]["requests"]] == ["GetDocList"], calls)


def t_reset_survivor(c, port, certs, ctl, state):
    ws = Ws(port, certs)
    ws.connect()
    ws.recv_json()
    ws.call("GetDocList")
    ctl.post("/reset")
    ws.call("EngineVersion")
    calls = ctl.get("/calls")
    c.check("a connection that outlives /reset shows up again with its new requests",
            len(calls) == 1 and [r["method"] for r in calls[0]["requests"]] == ["EngineVersion"],
            calls)
    ws.close()


def t_upgrade_stall(c, port, certs, ctl, state):
    ctl.post("/reset")
    ctl.post("/script", {"match": "UPGRADE", "stall": True})
    ws = Ws(port, certs)
    ctx = ssl.create_default_context(cafile=f"{certs}/ca.pem")
    ctx.load_cert_chain(f"{certs}/client.pem", f"{certs}/client-key.pem")
    ws.sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT),
                              server_hostname="127.0.0.1")
    ws.sock.sendall(("GET /app/engineData HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     f"Sec-WebSocket-Version: 13\r\nX-Qlik-User: {USER}\r\n\r\n").encode())
    seen = ctl.wait(lambda cs: cs and cs[-1]["status"] is None and cs)
    ctl.post("/reset")
    try:
        ws._fill(1, TIMEOUT)
        got = f"answered {bytes(ws.buf[:20])!r}"
    except Closed:
        got = "closed"
    c.check("a scripted UPGRADE stall: listed, unanswered, closed by /reset",
            bool(seen) and got == "closed", (seen, got))


def t_stall_reset(c, port, certs, ctl, state):
    ctl.post("/script", {"match": "GetDocList", "stall": True})
    ws = Ws(port, certs)
    ws.connect()
    ws.recv_json()
    ws.send_json({"jsonrpc": "2.0", "id": 1, "handle": -1, "method": "GetDocList", "params": []})
    ctl.wait(lambda cs: cs and cs[-1]["requests"])
    ctl.post("/reset")
    try:
        msg = ws.recv_json()
        ended = f"got {msg}"
    except Closed:
        ended = True
    c.check("/reset closes a connection that holds a stalled request", ended is True, ended)


def t_more_doc_methods(c, port, certs, ctl, state):
    ws, doc = open_session(port, certs, SALES)
    objs = ws.call("GetObjects", {"qOptions": {"qTypes": ["sheet"], "qData": {"t": "/qMetaDef/title"}}},
                   handle=doc)["qList"]
    c.check("GetObjects by type", [o["qData"]["t"] for o in objs] == ["Overview", "Product analysis"],
            objs)
    bms = ws.call("GetBookmarks", {"qOptions": {"qTypes": ["bookmark"], "qData": {}}},
                  handle=doc)["qList"]
    c.check("GetBookmarks", len(bms) == 2, bms)
    v = ws.call("GetVariableByName", ["vTargetRevenue"], handle=doc)["qReturn"]
    raw = ws.call("GetRawContent", handle=v["qHandle"])
    c.check("GetVariableByName + GetRawContent", raw == {"qReturn": "1500000"}, raw)
    sheet = ws.call("GetObject", ["b7d3a4e2-3c1f-4e8a-9d2b-6f5e4c3b2a10"], handle=doc)["qReturn"]
    kids = ws.call("GetChildInfos", handle=sheet["qHandle"])["qInfos"]
    c.check("GetChildInfos of a sheet", [k["qId"] for k in kids] == ["kPjTvR", "XmHwaQ", "RqPzJd"],
            kids)
    so = ws.call("CreateSessionObject", [{"qInfo": {"qId": "mine", "qType": "custom"}, "x": 1}],
                 handle=doc)["qReturn"]
    lay = ws.call("GetLayout", handle=so["qHandle"])["qLayout"]
    found = ws.call("GetObject", ["mine"], handle=doc)["qReturn"]
    c.check("a session object: layout echoes its properties, GetObject finds it",
            lay.get("x") == 1 and lay["qInfo"] == {"qId": "mine", "qType": "custom"}
            and found["qHandle"] == so["qHandle"], (lay, found))
    gone = ws.call("DestroySessionObject", ["mine"], handle=doc)
    err = ws.call("GetLayout", handle=so["qHandle"], raw=True).get("error", {})
    c.check("DestroySessionObject closes its handle",
            gone == {"qSuccess": True} and err.get("code") == -32600, (gone, err))
    err = ws.call("CreateSessionObject", [{"qInfo": {}}], handle=doc, raw=True).get("error", {})
    c.check("CreateSessionObject without qInfo.qType: -32602", err.get("code") == -32602, err)
    ws.close()


def t_data_file(c, certs, tmp):
    data = {"apps": [{"id": "11111111-2222-4333-8444-555555555555", "name": "Only app",
                      "script": "LOAD 1 as x AutoGenerate 1;"}]}
    path = os.path.join(tmp, "data.json")
    with open(path, "w") as f:
        json.dump(data, f)
    proc, ports = start_child(certs, tmp, ["--data", path, "--reload-ms", "0"])
    try:
        ws = Ws(ports["port"], certs)
        ws.connect()
        ws.recv_json()
        docs = ws.call("GetDocList")["qDocList"]
        c.check("--data replaces the data set",
                [d["qDocName"] for d in docs] == ["Only app"], docs)
        ws.call("OpenDoc", ["11111111-2222-4333-8444-555555555555"])
        c.check("a minimal app from --data opens and reloads",
                ws.call("DoReload", [], handle=1) == {"qReturn": True}
                and ws.call("GetScript", handle=1)["qScript"].startswith("LOAD"))
        ws.close()
    finally:
        rc = stop_child(proc)
    c.check("SIGTERM stops the fake with exit code 0", rc == 0, rc)


def t_in_process(c, certs):
    engine = fake_engine.FakeEngine(f"{certs}/server.pem", f"{certs}/server-key.pem",
                                    f"{certs}/ca.pem", verbose=False, reload_ms=0).start()
    try:
        engine.script(match="GetScript", body={"code": 5, "parameter": "", "message": "Access denied"})
        ws, doc = open_session(engine.port, certs, SALES)
        err = ws.call("GetScript", handle=doc, raw=True).get("error", {})
        ws.close()
        calls = engine.wait_for(lambda cs: cs and not cs[0]["open"] and cs)
        c.check("in-process FakeEngine: script(), calls(), wait_for()",
                err.get("code") == 5 and calls and calls[0]["closed_cleanly"] is True
                and [r["method"] for r in calls[0]["requests"]] == ["OpenDoc", "GetScript"], calls)
        engine.reset()
        c.check("in-process reset()", engine.calls() == [] and engine.scripts() == [])
        try:
            engine.script({"match": "x"})
            refused = False
        except ValueError:
            refused = True
        c.check("in-process script() refuses a bad script", refused)
    finally:
        engine.stop()
    c.check("in-process stop() closes the port",
            _refused(engine.port), engine.port)


def t_sigterm(c, proc, port, certs):
    ws = Ws(port, certs)
    ws.connect()
    ws.recv_json()
    proc.send_signal(signal.SIGTERM)
    try:
        code = ws.answer_close()
    except Closed as exc:
        code = str(exc)
    c.check("SIGTERM: open sessions get a 1001 close frame", code == 1001, code)
    try:
        rc = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = "still running"
    c.check("SIGTERM: the fake exits with code 0", rc == 0, rc)


def _refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except OSError:
        return True


def main():
    verbose = "-v" in sys.argv
    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="fake-engine-selftest-")
    c = Checks()
    proc = None
    try:
        make_certs(tmp)
        proc, ports = start_child(tmp, tmp)
        c.check("the fake writes its port file", {"port", "control_port"} <= set(ports), ports)
        port, ctl, state = ports["port"], Control(ports["control_port"]), {}
        for fn in (t_connect_and_global, t_dump, t_errors, t_reload, t_upgrade_and_tls,
                   t_scripts, t_frames, t_reset, t_reset_survivor, t_upgrade_stall,
                   t_stall_reset, t_more_doc_methods):
            c.group(fn.__name__, fn, port, tmp, ctl, state)
        c.group("t_sigterm", t_sigterm, proc, port, tmp)
        proc = None
        c.group("t_data_file", t_data_file, tmp, tmp)
        c.group("t_in_process", t_in_process, tmp)
    except Exception as exc:
        c.failed += 1
        print(f"FAIL - setup: {exc!r}")
    finally:
        if proc is not None:
            proc.kill()
        log = os.path.join(tmp, "fake.log")
        if (c.failed or verbose) and os.path.exists(log):
            with open(log) as f:
                print("---- fake log (tail) ----")
                print("".join(f.readlines()[-60:]))
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{c.passed} passed, {c.failed} failed in {time.monotonic() - started:.1f} s")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())

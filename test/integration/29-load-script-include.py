#!/usr/bin/env python3
"""The load-script include deploy/sense/butler.qvs against a real Butler.

Offline part: a small interpreter for the Qlik script the include uses
(statements, // and /* */ comments, IF/END IF at top level, SUB/END SUB,
SET, LET with string expressions - &, Replace, Chr, If, Len, Trim, Lower,
PurgeChar, comparisons, and/or -, $(var) and $(var(arg)) expansion, LIB
CONNECT TO, SQL SELECT ... WITH CONNECTION (URL, QUERY, HTTPHEADER, BODY)
with "" escapes) runs the include's top level (checking the defaults
vButlerBaseUrl 'http://localhost:8080', vButlerConnection 'Butler REST' and
vButlerConnectionPost 'Butler REST POST'), then every SUB with the sample
values of SAMPLES and the base URL set to the Butler under test. From each
call it takes the URL (with QUERY parameters URL-encoded), the method the
connector sends (the GET connection sends GET, the POST connection POST),
the X-HTTP-Method-Override header and the body. It fails on a statement,
expression, function, $-expansion or WITH CONNECTION item it does not know,
an undefined variable, a SUB without a call or with more than one, a GET
call with a body or an override, a POST call without an explicit body, a
SUB whose parameters differ from its SAMPLES entry, a SUB missing from
SAMPLES or the reverse, a call whose effective method and path are not the
route of its endpoint (v4 contract spelling where the contract has one:
/v4/butlerping, /v4/configfile/endpointsenabled, POST /v4/createdir and
/v4/createdirqvd, PUT /v4/mqttpublishmessage and /v4/slackpostmessage,
PUT|POST /v4/reloadtask/{taskId}/start, /v4/apps/list or /v4/senselistapps,
/v4/app/{appId}/dump or /v4/senseappdump/{appId}, PUT /v4/app/{appId}/reload;
seed/v2 otherwise: /v2/getDiskSpace, /v2/activeUserCount, /v2/activeUsers,
/senseQRSPing), a body that is not exactly the expected JSON for the sample
values (quotes, backslashes, line breaks, tabs, an apostrophe and non-ASCII
text escaped correctly), and unless the SUBs together cover all fourteen
endpoints.

Live part: a Butler with every flag of restServerEndpointsEnable in
deploy/butler.example.yaml switched on, a real mosquitto, qvdPath in a
scratch directory, the fake Slack webhook, the fake QRS and the fake Engine
(TLS, client certificates). Every extracted call is sent as the connector
would (GET, or POST with the body and the HTTPHEADERs, override included).
None may answer 404 or 405, and each must answer the contract's success
status - all fourteen can succeed here: 200 for butlerping,
endpointsenabled, reloadtask start, apps list and app dump; 201 for
createdir, createdirqvd, mqttpublishmessage, slackpostmessage and app reload;
200 (rest-api.md) for the seed/v2 getDiskSpace, activeUserCount,
activeUsers and senseQRSPing. The effects are checked too: the enabled list
is every flag, the directories exist (createDirQVD's below qvdPath), the
disk-space reply names the sample path, the message reaches a mosquitto_sub
subscriber as given, the Slack post carries the sample text, QRS started
the sample task, the app list is the fake's four apps, the dump is of the
sample app, the reload ran in the Engine with the sample mode and partial
flag (and the defaults, mode 0 and full, for empty arguments) and started
the success tasks, and QRS ping reports the fake's version."""

import json
import os
import re
import sys
import urllib.parse
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

QVS = h.REPO_ROOT / "deploy" / "sense" / "butler.qvs"

SALES_TASK = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"   # in the fake QRS
FIN2 = "09b3c78f-04dd-45e3-a4bf-1b074d6572fa"
ARCHIVE = "eaf1da4f-fd44-4cea-b2de-7b67a6496ee3"
NIGHTLY = "0a1b2c3d-1111-2222-3333-444455556666"
SALES_APP = "7552d9fc-d1bb-4975-9a38-18357de531ea"    # in the fake Engine

MQTT_TOPIC = "qliksense/butler-qvs/sales"
MQTT_MESSAGE = 'Reload of "Sales" done: C:\\QVD\\2024 it\'s 100% ü 日本'
SLACK_MSG = 'Line 1 "quoted"\nLine 2\twith a tab, C:\\QVD\\ and it\'s ü 日本'
FROM_USER = 'Load script "Sales"'

#: The fourteen endpoints (named by their restServerEndpointsEnable flag) and
#: the routes (effective method, path pattern) a SUB may use for each: the v4
#: contract spelling where the contract has one, else the seed/v2 one; and
#: the success status (contract or rest-api.md).
ENDPOINTS = {
    "butlerping": ([("GET", "/v4/butlerping")], 200),
    "apiListEnabledEndpoints": ([("GET", "/v4/configfile/endpointsenabled")],
                                200),
    "createDir": ([("POST", "/v4/createdir")], 201),
    "createDirQVD": ([("POST", "/v4/createdirqvd")], 201),
    "getDiskSpace": ([("GET", "/v2/getDiskSpace"), ("GET", "/getDiskSpace")],
                     200),
    "mqttPublishMessage": ([("PUT", "/v4/mqttpublishmessage")], 201),
    "slackPostMessage": ([("PUT", "/v4/slackpostmessage")], 201),
    "senseStartTask": ([("POST", "/v4/reloadtask/{taskId}/start"),
                        ("PUT", "/v4/reloadtask/{taskId}/start")], 200),
    "senseListApps": ([("GET", "/v4/apps/list"), ("GET", "/v4/senselistapps")],
                      200),
    "senseAppDump": ([("GET", "/v4/app/{appId}/dump"),
                      ("GET", "/v4/senseappdump/{appId}")], 200),
    "senseAppReload": ([("PUT", "/v4/app/{appId}/reload")], 201),
    "activeUserCount": ([("GET", "/v2/activeUserCount")], 200),
    "activeUsers": ([("GET", "/v2/activeUsers")], 200),
    "senseQRSPing": ([("GET", "/senseQRSPing")], 200),
}


def samples(work):
    """The sample values per SUB: a list of cases, each with the arguments
    (in the SUB's parameter order), the endpoint it must reach, its path
    parameters, and the expected body (JSON) or query. `work` is a scratch
    directory; qvdPath is work/qvd."""
    return {
        "ButlerPing": [dict(args={}, endpoint="butlerping")],
        "ButlerEnabledEndpoints": [dict(args={"pTable": "Endpoints"},
                                        endpoint="apiListEnabledEndpoints")],
        "ButlerCreateDir": [dict(
            args={"pDirectory": str(work / 'made by qvs' /
                                    'it\'s "quoted" \\ back ü')},
            endpoint="createDir",
            body={"directory": str(work / 'made by qvs' /
                                   'it\'s "quoted" \\ back ü')})],
        "ButlerCreateDirQVD": [dict(
            args={"pDirectory": 'sales/2024-05 "final"'},
            endpoint="createDirQVD",
            body={"directory": 'sales/2024-05 "final"'})],
        "ButlerGetDiskSpace": [dict(
            args={"pPath": str(work / "disk space & ü")},
            endpoint="getDiskSpace",
            query={"path": str(work / "disk space & ü")})],
        "ButlerMqttPublishMessage": [dict(
            args={"pTopic": MQTT_TOPIC, "pMessage": MQTT_MESSAGE},
            endpoint="mqttPublishMessage",
            body={"topic": MQTT_TOPIC, "message": MQTT_MESSAGE})],
        "ButlerSlackPostMessage": [dict(
            args={"pChannel": "#reload-notification", "pFromUser": FROM_USER,
                  "pMessage": SLACK_MSG, "pEmoji": "thumbsup"},
            endpoint="slackPostMessage",
            body={"channel": "#reload-notification", "from_user": FROM_USER,
                  "msg": SLACK_MSG, "emoji": "thumbsup"})],
        "ButlerStartTask": [dict(args={"pTaskId": SALES_TASK},
                                 endpoint="senseStartTask",
                                 path_params=[SALES_TASK], body=[])],
        "ButlerListApps": [dict(args={"pTable": ""},
                                endpoint="senseListApps")],
        "ButlerAppDump": [dict(args={"pAppId": SALES_APP},
                               endpoint="senseAppDump",
                               path_params=[SALES_APP])],
        "ButlerAppReload": [
            dict(args={"pAppId": SALES_APP, "pPartialReload": "true",
                       "pReloadMode": "1",
                       "pTasksOnSuccess": f"{FIN2}, {ARCHIVE}",
                       "pTasksOnFailure": NIGHTLY},
                 endpoint="senseAppReload", path_params=[SALES_APP],
                 body={"reloadMode": 1, "partialReload": True,
                       "startQSEoWTaskOnSuccess": [FIN2, ARCHIVE],
                       "startQSEoWTaskOnFailure": [NIGHTLY]}),
            dict(args={"pAppId": SALES_APP, "pPartialReload": "",
                       "pReloadMode": "", "pTasksOnSuccess": "",
                       "pTasksOnFailure": ""},
                 endpoint="senseAppReload", path_params=[SALES_APP],
                 body={"reloadMode": 0, "partialReload": False,
                       "startQSEoWTaskOnSuccess": [],
                       "startQSEoWTaskOnFailure": []})],
        "ButlerActiveUserCount": [dict(args={}, endpoint="activeUserCount")],
        "ButlerActiveUsers": [dict(args={"pTable": "Users"},
                                   endpoint="activeUsers")],
        "ButlerQRSPing": [dict(args={}, endpoint="senseQRSPing")],
    }


# -- a small interpreter for the Qlik script the include uses -----------------


class QvsError(h.CheckFailed):
    """The include holds something the interpreter does not understand."""


class Opaque:
    """A value only a real reload knows (Peek, NoOfRows, ...)."""

    def __init__(self, what):
        self.what = what

    def __repr__(self):
        return f"<{self.what}>"


CONTROL = {"if", "elseif", "else", "end", "endif", "sub", "endsub", "for",
           "next", "do", "loop", "exit", "switch", "case", "default"}


def split_statements(text):
    """Returns [(line, statement text)], comments removed. A statement ends
    at a ; outside '...', "..." and [...]; a control statement (IF, END IF,
    SUB, ...) also at the end of its line."""
    out = []
    i, n = 0, len(text)

    def skip_comment(i):
        if text.startswith("//", i):
            j = text.find("\n", i)
            return n if j < 0 else j
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise QvsError(f"line {text.count(chr(10), 0, i) + 1}: "
                               "unterminated /* comment")
            return j + 2
        return None

    while i < n:
        if text[i].isspace():
            i += 1
            continue
        j = skip_comment(i)
        if j is not None:
            i = j
            continue
        line = text.count("\n", 0, i) + 1
        word = re.match(r"[A-Za-z]*", text[i:]).group(0).lower()
        control = word in CONTROL
        buf = []
        while i < n:
            c = text[i]
            if c in "'\"[":
                close = "]" if c == "[" else c
                j = i + 1
                while True:
                    if j >= n or (text[j] == "\n" and close == "]"):
                        raise QvsError(f"line {line}: unterminated {c}")
                    if text[j] == close:
                        if close != "]" and text[j + 1:j + 2] == close:
                            j += 2
                            continue
                        break
                    j += 1
                buf.append(text[i:j + 1])
                i = j + 1
                continue
            j = skip_comment(i)
            if j is not None:
                i = j
                continue
            if c == ";":
                i += 1
                break
            if c == "\n" and control:
                break
            buf.append(c)
            i += 1
        out.append((line, "".join(buf).strip()))
    return out


_EXPANSION = re.compile(r"\$\(([A-Za-z_][\w.]*)(?:\(([^()]*)\))?\)")


def _text(value):
    if isinstance(value, bool):
        return "-1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Scope:
    """Variables: the SUB's parameters over the global ones."""

    def __init__(self, globals_, params=None):
        self.globals = globals_
        self.params = params if params is not None else {}

    def get(self, name):
        for d in (self.params, self.globals):
            for key, value in d.items():
                if key.lower() == name.lower():
                    return value
        return None

    def set(self, name, value):
        target = self.params if self.get_key(self.params, name) else \
            self.globals
        key = self.get_key(target, name) or name
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value

    @staticmethod
    def get_key(d, name):
        for key in d:
            if key.lower() == name.lower():
                return key
        return None


def expand(text, scope, where, undefined_ok=False):
    """Does the $(name) and $(name(a, b)) expansions of one statement."""
    out = []
    i = 0
    while True:
        j = text.find("$(", i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        m = _EXPANSION.match(text, j)
        if not m:
            raise QvsError(f"{where}: cannot read the $-expansion at "
                           f"{text[j:j + 40]!r}")
        value = scope.get(m.group(1))
        if value is None:
            if not undefined_ok:
                raise QvsError(f"{where}: $({m.group(1)}) is not defined")
            value = ""
        if isinstance(value, Opaque):
            raise QvsError(f"{where}: $({m.group(1)}) holds {value!r}, known "
                           "only to a real reload")
        value = _text(value)
        if m.group(2) is not None:
            args = [a.strip() for a in m.group(2).split(",")]

            def arg(mm):
                k = int(mm.group(1))
                if k > len(args):
                    raise QvsError(f"{where}: $({m.group(1)}) uses ${k} but "
                                   f"got {len(args)} argument(s)")
                return args[k - 1]
            value = re.sub(r"\$(\d)", arg, value)
        out.append(value)
        i = m.end()


_TOKEN = re.compile(r"""\s*(?:(?P<str>'(?:[^']|'')*')
                      |(?P<num>\d+(?:\.\d+)?)
                      |(?P<name>[A-Za-z_@][\w.@]*)
                      |(?P<op><>|<=|>=|[&=<>+\-*/(),]))""", re.X)


def _num(v):
    if isinstance(v, (int, float)):
        return v
    try:
        return float(v) if "." in v else int(v)
    except ValueError:
        return None


def _truth(v):
    n = _num(v)
    return bool(n) if n is not None else False


def _compare(op, a, b):
    na, nb = _num(a), _num(b)
    if na is not None and nb is not None:
        x, y = na, nb
    else:  # Qlik compares text case-insensitively
        x, y = _text(a).lower(), _text(b).lower()
    return {"=": x == y, "<>": x != y, "<": x < y, ">": x > y, "<=": x <= y,
            ">=": x >= y}[op]


def _if(c, a, b=None):
    return a if _truth(c) else ("" if b is None else b)


FUNCTIONS = {
    "replace": (3, lambda s, a, b: _text(s).replace(_text(a), _text(b))),
    "chr": (1, lambda n: chr(int(_num(n)))),
    "len": (1, lambda s: len(_text(s))),
    "trim": (1, lambda s: _text(s).strip(" ")),
    "lower": (1, lambda s: _text(s).lower()),
    "upper": (1, lambda s: _text(s).upper()),
    "purgechar": (2, lambda s, cs: "".join(c for c in _text(s)
                                           if c not in _text(cs))),
    "if": (3, _if),
}
#: Functions that read what a reload loaded: their value is opaque here.
RESULT_FUNCTIONS = {"peek", "noofrows", "fieldvalue", "fieldvaluecount"}


class Expr:
    """Evaluates one Qlik script expression (the subset in FUNCTIONS)."""

    def __init__(self, text, scope, where):
        self.where = where
        self.scope = scope
        self.tokens = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise QvsError(f"{where}: cannot read the expression at "
                               f"{text[pos:pos + 40]!r}")
            kind = m.lastgroup
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def peek(self):
        return self.tokens[self.i] if self.i < len(self.tokens) else (None,
                                                                      None)

    def take(self, value=None):
        tok = self.peek()
        if tok[0] is None or (value is not None and tok[1].lower() != value):
            raise QvsError(f"{self.where}: expected {value or 'more'}, got "
                           f"{tok[1]!r}")
        self.i += 1
        return tok

    def is_word(self, word):
        kind, value = self.peek()
        return kind == "name" and value.lower() == word

    def value(self):
        v = self.or_()
        if self.peek()[0] is not None:
            raise QvsError(f"{self.where}: unexpected {self.peek()[1]!r}")
        return v

    @staticmethod
    def _opaque(*vs):
        return next((v for v in vs if isinstance(v, Opaque)), None)

    def or_(self):
        v = self.and_()
        while self.is_word("or"):
            self.take()
            w = self.and_()
            v = self._opaque(v, w) or (-1 if _truth(v) or _truth(w) else 0)
        return v

    def and_(self):
        v = self.not_()
        while self.is_word("and"):
            self.take()
            w = self.not_()
            v = self._opaque(v, w) or (-1 if _truth(v) and _truth(w) else 0)
        return v

    def not_(self):
        if self.is_word("not"):
            self.take()
            v = self.not_()
            return self._opaque(v) or (0 if _truth(v) else -1)
        return self.rel()

    def rel(self):
        v = self.concat()
        while self.peek()[1] in ("=", "<>", "<", ">", "<=", ">="):
            op = self.take()[1]
            w = self.concat()
            v = self._opaque(v, w) or (-1 if _compare(op, v, w) else 0)
        return v

    def concat(self):
        v = self.add()
        while self.peek()[1] == "&":
            self.take()
            w = self.add()
            v = self._opaque(v, w) or _text(v) + _text(w)
        return v

    def add(self):
        v = self.mul()
        while self.peek()[1] in ("+", "-"):
            op = self.take()[1]
            w = self.mul()
            v = self._opaque(v, w) or self._arith(op, v, w)
        return v

    def mul(self):
        v = self.unary()
        while self.peek()[1] in ("*", "/"):
            op = self.take()[1]
            w = self.unary()
            v = self._opaque(v, w) or self._arith(op, v, w)
        return v

    def _arith(self, op, a, b):
        x, y = _num(a), _num(b)
        if x is None or y is None:
            raise QvsError(f"{self.where}: {a!r} {op} {b!r} is not numeric")
        return {"+": x + y, "-": x - y, "*": x * y, "/": x / y}[op]

    def unary(self):
        if self.peek()[1] == "-":
            self.take()
            v = self.unary()
            return self._opaque(v) or -_num(v)
        return self.primary()

    def primary(self):
        kind, value = self.take()
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if kind == "num":
            return _num(value)
        if value == "(":
            v = self.or_()
            self.take(")")
            return v
        if kind != "name":
            raise QvsError(f"{self.where}: unexpected {value!r}")
        if self.peek()[1] == "(":
            self.take("(")
            args = []
            if self.peek()[1] != ")":
                args.append(self.or_())
                while self.peek()[1] == ",":
                    self.take()
                    args.append(self.or_())
            self.take(")")
            name = value.lower()
            if name in RESULT_FUNCTIONS:
                return Opaque(f"{value}()")
            if name not in FUNCTIONS:
                raise QvsError(f"{self.where}: unknown function {value}()")
            arity, fn = FUNCTIONS[name]
            if len(args) != arity and not (name == "if" and len(args) == 2):
                raise QvsError(f"{self.where}: {value}() takes {arity} "
                               f"arguments, got {len(args)}")
            return self._opaque(*args) or fn(*args)
        v = self.scope.get(value)
        if v is None:
            raise QvsError(f"{self.where}: variable {value} is not defined")
        return v


def read_double_quoted(text, pos, where):
    """Reads a "..." literal ("" is a quote) at `pos`; returns (value, end)."""
    if text[pos:pos + 1] != '"':
        raise QvsError(f"{where}: expected a \"...\" string at "
                       f"{text[pos:pos + 40]!r}")
    out = []
    j = pos + 1
    while True:
        if j >= len(text):
            raise QvsError(f"{where}: unterminated \"...\" string")
        if text[j] == '"':
            if text[j + 1:j + 2] == '"':
                out.append('"')
                j += 2
                continue
            return "".join(out), j + 1
        out.append(text[j])
        j += 1


def find_outside_quotes(text, pattern):
    """Returns the match of `pattern` outside quoted text, or None."""
    rx = re.compile(pattern, re.I)
    i = 0
    while i < len(text):
        c = text[i]
        if c in "'\"[":
            close = "]" if c == "[" else c
            j = text.find(close, i + 1)
            while close != "]" and j >= 0 and text[j + 1:j + 2] == close:
                j = text.find(close, j + 2)
            if j < 0:
                return None
            i = j + 1
            continue
        m = rx.match(text, i)
        if m:
            return m
        i += 1
    return None


def parse_with_connection(sql, where):
    """Parses SQL SELECT ... WITH CONNECTION (...): returns a dict with url,
    query [(k, v)], headers [(k, v)] and body (None if absent)."""
    if not re.search(r"\bFROM\s+JSON\b", sql, re.I):
        raise QvsError(f"{where}: SQL SELECT without FROM JSON")
    m = find_outside_quotes(sql, r"WITH\s+CONNECTION\s*\(")
    if not m:
        raise QvsError(f"{where}: SQL SELECT without WITH CONNECTION, which "
                       "would call the connection's own URL")
    rest = sql[m.end():].rstrip()
    if not rest.endswith(")"):
        raise QvsError(f"{where}: WITH CONNECTION ( ... ) not closed at the "
                       "end of the statement")
    inner = rest[:-1]
    call = {"url": None, "query": [], "headers": [], "body": None}
    arity = {"url": 1, "query": 2, "httpheader": 2, "body": 1}
    pos = 0
    while True:
        while pos < len(inner) and inner[pos].isspace():
            pos += 1
        if pos >= len(inner):
            break
        wm = re.compile(r"[A-Za-z]+").match(inner, pos)
        word = wm.group(0).lower() if wm else None
        if word not in arity:
            raise QvsError(f"{where}: unknown WITH CONNECTION item at "
                           f"{inner[pos:pos + 40]!r}")
        pos = wm.end()
        values = []
        for _ in range(arity[word]):
            while pos < len(inner) and inner[pos].isspace():
                pos += 1
            value, pos = read_double_quoted(inner, pos, where)
            values.append(value)
        if word == "url":
            if call["url"] is not None:
                raise QvsError(f"{where}: two URLs")
            call["url"] = values[0]
        elif word == "body":
            if call["body"] is not None:
                raise QvsError(f"{where}: two BODYs")
            call["body"] = values[0]
        elif word == "query":
            call["query"].append(tuple(values))
        else:
            call["headers"].append(tuple(values))
        while pos < len(inner) and inner[pos].isspace():
            pos += 1
        if pos < len(inner):
            if inner[pos] != ",":
                raise QvsError(f"{where}: expected , in WITH CONNECTION at "
                               f"{inner[pos:pos + 40]!r}")
            pos += 1
    if call["url"] is None:
        raise QvsError(f"{where}: WITH CONNECTION without URL")
    return call


_LABEL = re.compile(r"^(?:(\[[^\]]*\]|[A-Za-z_][\w.]*)\s*:(?!/))?\s*(.*)$",
                    re.S)


class Include:
    """butler.qvs run as far as the REST calls go."""

    def __init__(self, path, preset=None):
        self.path = Path(path)
        self.globals = dict(preset or {})
        self.subs = {}
        self._run_top(split_statements(self.path.read_text(encoding="utf-8")))

    def _run_top(self, stmts):
        scope = Scope(self.globals)
        i = 0
        skipping = []  # one entry per open IF: True while its branch is off
        while i < len(stmts):
            line, raw = stmts[i]
            where = f"{self.path.name}:{line}"
            i += 1
            word = re.match(r"[A-Za-z]*", raw).group(0).lower()
            if word == "if":
                if any(skipping):
                    skipping.append(True)
                    continue
                m = re.match(r"IF\s+(.*)\s+THEN\s*$", raw, re.I | re.S)
                if not m:
                    raise QvsError(f"{where}: IF without THEN on its line")
                cond = Expr(expand(m.group(1), scope, where, True), scope,
                            where).value()
                if isinstance(cond, Opaque):
                    raise QvsError(f"{where}: IF on {cond!r}")
                skipping.append(not _truth(cond))
                continue
            if re.fullmatch(r"END\s*IF", raw, re.I):
                if not skipping:
                    raise QvsError(f"{where}: END IF without IF")
                skipping.pop()
                continue
            if any(skipping):
                continue
            if word == "sub":
                i = self._define_sub(stmts, i - 1)
                continue
            if word in ("let", "set"):
                self._assign(expand(raw, scope, where, True), scope, where)
                continue
            raise QvsError(f"{where}: cannot run {raw[:60]!r} at the top "
                           "level")
        if skipping:
            raise QvsError(f"{self.path.name}: IF without END IF")

    def _define_sub(self, stmts, i):
        line, raw = stmts[i]
        where = f"{self.path.name}:{line}"
        m = re.fullmatch(r"SUB\s+([A-Za-z_][\w.]*)\s*(?:\((.*)\))?", raw,
                         re.I | re.S)
        if not m:
            raise QvsError(f"{where}: cannot read the SUB line {raw!r}")
        name = m.group(1)
        params = [p.strip() for p in (m.group(2) or "").split(",")
                  if p.strip()]
        body = []
        i += 1
        while True:
            if i >= len(stmts):
                raise QvsError(f"{where}: SUB {name} without END SUB")
            if re.fullmatch(r"END\s*SUB", stmts[i][1], re.I):
                break
            if re.match(r"SUB\b", stmts[i][1], re.I):
                raise QvsError(f"{self.path.name}:{stmts[i][0]}: SUB inside "
                               f"SUB {name}")
            body.append(stmts[i])
            i += 1
        if name.lower() in (n.lower() for n in self.subs):
            raise QvsError(f"{where}: SUB {name} defined twice")
        self.subs[name] = (params, body)
        return i + 1

    @staticmethod
    def _assign(text, scope, where):
        m = re.fullmatch(r"(LET|SET)\s+([A-Za-z_][\w.]*)\s*=\s*(.*)", text,
                         re.I | re.S)
        if not m:
            raise QvsError(f"{where}: cannot read {text[:60]!r}")
        kind, name, rhs = m.group(1).upper(), m.group(2), m.group(3).strip()
        if kind == "SET":
            scope.set(name, rhs if rhs else None)
        else:
            scope.set(name, Expr(rhs, scope, where).value() if rhs else None)

    def call(self, name, args, connections):
        """Runs SUB `name` with `args` (a dict in parameter order); returns
        its REST calls: dicts with connection, method, url, query, headers,
        override, body. `connections` maps connection names to methods."""
        params, body = self.subs[name]
        if list(args) != params:
            raise h.CheckFailed(f"SUB {name} has parameters {params}, the "
                                f"samples give {list(args)}")
        scope = Scope(self.globals, dict(args))
        connection = None
        calls = []
        for line, raw in body:
            where = f"{self.path.name}:{line} (SUB {name})"
            word = re.match(r"[A-Za-z]*", raw).group(0).lower()
            if word in CONTROL:
                raise QvsError(f"{where}: control statement {raw[:40]!r} "
                               "inside a SUB is not understood here")
            text = expand(raw, scope, where)
            label, stmt = _LABEL.match(text).groups()
            first = re.match(r"[A-Za-z]*", stmt).group(0).lower()
            if label is None and first in ("let", "set"):
                self._assign(stmt, scope, where)
            elif label is None and re.match(r"LIB\s+CONNECT\s+TO\s", stmt,
                                            re.I):
                m = re.fullmatch(r"LIB\s+CONNECT\s+TO\s+'((?:[^']|'')*)'",
                                 stmt, re.I | re.S)
                if not m:
                    raise QvsError(f"{where}: cannot read {stmt!r}")
                connection = m.group(1).replace("''", "'")
                if connection not in connections:
                    raise QvsError(f"{where}: LIB CONNECT TO {connection!r}, "
                                   "which is neither the GET nor the POST "
                                   "connection")
            elif re.match(r"SQL\s+SELECT\b", stmt, re.I):
                if connection is None:
                    raise QvsError(f"{where}: SQL SELECT before LIB CONNECT")
                call = parse_with_connection(stmt, where)
                call["connection"] = connection
                call["method"] = connections[connection]
                overrides = [v for k, v in call["headers"]
                             if k.lower() == "x-http-method-override"]
                names = [k.lower() for k, _ in call["headers"]]
                if len(set(names)) != len(names):
                    raise QvsError(f"{where}: a header given twice: {names}")
                call["override"] = overrides[0] if overrides else None
                if call["method"] == "GET" and (call["body"] is not None
                                                or call["override"]):
                    raise QvsError(f"{where}: the GET connection sends no "
                                   "body and needs no override")
                if call["method"] == "POST" and call["body"] is None:
                    raise QvsError(f"{where}: a POST call without BODY would "
                                   "send the connection's stored body")
                call["where"] = where
                calls.append(call)
            elif re.match(r"(NoConcatenate\s+)?LOAD\b.*\bRESIDENT\b", stmt,
                          re.I | re.S):
                pass  # reads what the call loaded
            elif label is None and re.match(r"(DROP\s+TABLES?|TRACE)\b",
                                            stmt, re.I):
                pass
            else:
                raise QvsError(f"{where}: cannot run {stmt[:60]!r}")
        return calls


# -- the test -----------------------------------------------------------------


def endpoint_flags():
    """Returns the restServerEndpointsEnable section of the example config
    with every flag true (nested newRelic/scheduler kept), and the flat
    list of flag names."""
    lines = h.EXAMPLE_CONFIG.read_text(encoding="utf-8").splitlines()
    start = next(i for i, l in enumerate(lines)
                 if l.strip() == "restServerEndpointsEnable:")
    base = len(lines[start]) - len(lines[start].lstrip())
    section, flat, stack = {}, [], [(base, None)]
    current = {base: section}
    for line in lines[start + 1:]:
        text = line.split("#", 1)[0].rstrip()
        if not text.strip():
            continue
        indent = len(text) - len(text.lstrip())
        if indent <= base:
            break
        key, _, value = text.strip().partition(":")
        while stack[-1][0] >= indent:
            stack.pop()
        parent = current[stack[-1][0]]
        if value.strip():
            if value.strip() not in ("true", "false"):
                raise h.CheckFailed(f"example config: flag {key} is "
                                    f"{value.strip()!r}, not a boolean")
            parent[key] = True
            flat.append(key)
        else:
            parent[key] = {}
            current[indent] = parent[key]
            stack.append((indent, key))
    return section, flat


def extract(include, cases, connections, base_url):
    """Runs every SUB with its samples; returns [(sub, case, call)]."""
    h.check_eq(sorted(include.subs), sorted(cases),
               "the include's SUBs are exactly the SUBs with sample values")
    out = []
    for sub, sub_cases in cases.items():
        for n, case in enumerate(sub_cases, 1):
            what = f"SUB {sub}" + (f" (sample {n})" if len(sub_cases) > 1
                                   else "")
            case["what"] = what
            calls = include.call(sub, case["args"], connections)
            h.check_eq(len(calls), 1, f"{what} makes exactly one REST call")
            call = calls[0]
            h.check(call["url"].startswith(base_url + "/"),
                    f"{what}: the URL starts with $(vButlerBaseUrl)/",
                    call["url"])
            call["path"] = call["url"][len(base_url):]
            print(f"call {what}: {call['method']} {call['path']}"
                  + "".join(f" query {k}={v!r}" for k, v in call["query"])
                  + (f" override {call['override']}" if call["override"]
                     else "")
                  + (f" body {call['body']}" if call["body"] is not None
                     else ""), flush=True)
            out.append((sub, case, call))
    return out


def match_route(pattern, path):
    """Returns the path parameters if `path` matches `pattern`, else None."""
    p_parts, parts = pattern.split("/"), path.split("/")
    if len(p_parts) != len(parts):
        return None
    params = []
    for p, s in zip(p_parts, parts):
        if p.startswith("{"):
            if not s:
                return None
            params.append(urllib.parse.unquote(s))
        elif p != s:
            return None
    return params


def check_calls(calls):
    """Checks routes, path parameters, bodies and endpoint coverage."""
    covered = set()
    for _, case, call in calls:
        what = case["what"]
        effective = call["override"] or call["method"]
        path = call["path"]
        h.check("?" not in path, f"{what}: query parameters go in QUERY, not "
                "the URL", path)
        routes, _ = ENDPOINTS[case["endpoint"]]
        found = None
        for method, pattern in routes:
            params = match_route(pattern, path)
            if method == effective and params is not None:
                found = (method, pattern, params)
        h.check(found is not None, f"{what}: {effective} {path} is the "
                f"{case['endpoint']} route "
                f"({' or '.join(m + ' ' + p for m, p in routes)})")
        h.check_eq(found[2], case.get("path_params", []),
                   f"{what}: the path parameters are the sample values")
        if effective != call["method"]:
            h.check_eq((call["method"], effective in ("PUT", "DELETE")),
                       ("POST", True), f"{what}: {effective} is sent as POST "
                       f"with X-HTTP-Method-Override: {effective}")
        if "body" in case:
            try:
                body = json.loads(call["body"])
            except (TypeError, ValueError) as e:
                raise h.CheckFailed(f"{what}: the body is not JSON ({e}): "
                                    f"{call['body']!r}")
            h.check_eq(body, case["body"], f"{what}: the body is the sample "
                       "values as JSON")
        h.check_eq(dict(call["query"]), case.get("query", {}),
                   f"{what}: the QUERY parameters")
        covered.add(case["endpoint"])
    h.check_eq(sorted(covered), sorted(ENDPOINTS),
               "the SUBs cover all fourteen endpoints")


def send(port, call):
    """Sends `call` as the REST connector would; returns the Response."""
    target = call["path"]
    if call["query"]:
        target += "?" + urllib.parse.urlencode(call["query"],
                                               quote_via=urllib.parse.quote)
    headers = dict(call["headers"])
    body = None
    if call["method"] == "POST":
        body = call["body"].encode("utf-8")
    return h.http_request(port, call["method"], target, body=body,
                          headers=headers, timeout=20)


def test(ctx):
    # -- defaults -------------------------------------------------------------
    plain = Include(QVS)
    h.check_eq({k: plain.globals.get(k) for k in
                ("vButlerBaseUrl", "vButlerConnection",
                 "vButlerConnectionPost")},
               {"vButlerBaseUrl": "http://localhost:8080",
                "vButlerConnection": "Butler REST",
                "vButlerConnectionPost": "Butler REST POST"},
               "the include's defaults: base URL and the two connections")

    # -- extraction -----------------------------------------------------------
    work = h.scratch_dir("qvs")
    qvd = work / "qvd"
    qvd.mkdir()
    disk = work / "disk space & ü"
    disk.mkdir()
    port = h.free_port()
    base_url = f"http://127.0.0.1:{port}"
    include = Include(QVS, {"vButlerBaseUrl": base_url})
    h.check_eq(include.globals["vButlerBaseUrl"], base_url,
               "a vButlerBaseUrl set before the include is kept")
    connections = {include.globals["vButlerConnection"]: "GET",
                   include.globals["vButlerConnectionPost"]: "POST"}
    h.check_eq(len(connections), 2, "the GET and POST connections differ")
    cases = samples(work)
    calls = extract(include, cases, connections, base_url)
    check_calls(calls)

    # -- a Butler with everything on ------------------------------------------
    fe = h.load_fake_engine()
    h.check_eq(fe.SALES_APP_ID, SALES_APP, "the sample app is the fake's "
               "sales app")
    certs = h.make_sense_certs(h.scratch_dir("certs"))
    qrs = h.start_fake_qrs(certs)
    engine = h.start_fake_engine(certs, reload_ms=50)
    slack = h.load_fake_slack().FakeSlack().start()
    broker = h.Mosquitto().start()
    sub = h.Subscriber(broker.port, MQTT_TOPIC).start()
    section, flags = endpoint_flags()
    h.check(set(ENDPOINTS) <= set(flags), "the example config has the "
            "flags of the fourteen endpoints", sorted(set(ENDPOINTS)
                                                      - set(flags)))
    cfg = h.sense_config(port, certs, qrs_port=qrs.port,
                         engine_port=engine.port, mqtt_port=broker.port,
                         flags=())
    b = cfg["Butler"]
    b["restServerEndpointsEnable"] = section
    b["configDirectories"] = {"qvdPath": str(qvd)}
    b["slackNotification"] = {
        "restMessage": {"webhookURL": slack.url("/services/T000/B000/QVS")}}
    h.Butler(ctx.butler, cfg).start()

    version = h.load_fake_qrs().DEFAULT_DATA["about"]["buildVersion"]
    sessions = 0
    for _, case, call in calls:
        what = (f"{case['what']}: {call['method']} {call['path']}"
                + (f" (override {call['override']})"
                   if call["override"] else ""))
        q_mark, started_before = len(qrs.calls()), qrs.started()
        res = send(port, call)
        h.check(res.status not in (404, 405), f"{what} is routed "
                "(not 404/405)", repr(res))
        status = ENDPOINTS[case["endpoint"]][1]
        h.check_eq(res.status, status, f"{what} answers {status}")
        reply = res.json
        ep = case["endpoint"]
        if ep == "butlerping":
            h.check_eq(reply.get("response"), "Butler reporting for duty",
                       f"{what}: Butler's ping text")
        elif ep == "apiListEnabledEndpoints":
            h.check_eq(sorted(reply), sorted(flags),
                       f"{what}: every flag of the example config is on")
        elif ep in ("createDir", "createDirQVD"):
            d = case["args"]["pDirectory"]
            h.check_eq(reply, {"directory": d}, f"{what}: the reply")
            made = Path(d) if ep == "createDir" else qvd / d
            h.check(made.is_dir(), f"{what}: {made} exists")
        elif ep == "getDiskSpace":
            h.check_eq((reply.get("path"), reply.get("total")),
                       (str(disk), os.statvfs(disk).f_blocks
                        * os.statvfs(disk).f_frsize),
                       f"{what}: the reply names the sample path (QUERY "
                       "encoded)")
        elif ep == "mqttPublishMessage":
            h.check_eq(reply, case["body"], f"{what}: the reply")
            got = sub.wait_for(lambda m: MQTT_MESSAGE in m, topic=MQTT_TOPIC,
                               what="the message from the include")
            h.check_eq(got, [MQTT_MESSAGE], f"{what}: the subscriber got the "
                       "message as given")
        elif ep == "slackPostMessage":
            h.check_eq(reply, case["body"], f"{what}: the reply")
            post = h.wait_posts(slack, 1, "the Slack post")[0].json
            h.check_eq(post, {"channel": "#reload-notification",
                              "text": SLACK_MSG, "username": FROM_USER,
                              "icon_emoji": ":thumbsup:"},
                       f"{what}: Slack got the sample text")
        elif ep == "senseStartTask":
            h.check_eq([t["taskId"] for t in
                        reply["tasksId"]["started"]], [SALES_TASK],
                       f"{what}: the reply lists the task as started")
            h.check_eq(qrs.started(), started_before + [SALES_TASK],
                       f"{what}: QRS started the sample task")
        elif ep == "senseListApps":
            h.check_eq([a["id"] for a in reply],
                       [a["id"] for a in fe.DEFAULT_DATA["apps"]],
                       f"{what}: the fake's apps")
            sessions += 1
        elif ep == "senseAppDump":
            h.check_eq(reply.get("appId"), SALES_APP,
                       f"{what}: the dump of the sample app")
            sessions += 1
        elif ep == "senseAppReload":
            h.check_eq(reply, {"appId": SALES_APP}, f"{what}: the reply")
            sessions += 1
            recs = h.wait_engine_closed(engine, sessions,
                                        f"{what}: the session to end")
            body = case["body"]
            h.check_in(("DoReload", {"qMode": body["reloadMode"],
                                     "qPartial": body["partialReload"],
                                     "qDebug": False}),
                       [(r["method"], r["params"])
                        for r in recs[-1]["requests"]],
                       f"{what}: the Engine reloaded with the sample mode "
                       "and partial flag")
            h.check_eq(qrs.started(), started_before
                       + body["startQSEoWTaskOnSuccess"],
                       f"{what}: QRS started the success tasks")
        elif ep == "activeUserCount":
            h.check_eq(reply, 0, f"{what}: no sessions yet")
        elif ep == "activeUsers":
            h.check_eq(reply, [], f"{what}: no users yet")
        elif ep == "senseQRSPing":
            h.check_eq(reply, {"response": "QRS reachable",
                               "version": version},
                       f"{what}: QRS reachable with the fake's version")
        if ep not in ("senseStartTask", "senseAppReload", "senseQRSPing"):
            h.check_eq(len(qrs.calls()), q_mark, f"{what}: no QRS call")
    h.check_ping(port)


if __name__ == "__main__":
    h.main(test)

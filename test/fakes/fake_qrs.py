#!/usr/bin/env python3
"""A fake Qlik Repository Service (QRS) for butler's tests (Python 3
standard library only).

It follows the QRS reference (qrs-api.md) and the shared contract of the fake
Sense servers (same command line and control API as fake_engine.py).

Service port (HTTPS only, TLS 1.2+): the client must present a certificate
signed by `--ca`, otherwise the TLS handshake fails (nothing is recorded, the
failure is counted). Every call must carry `?xrfkey=<16 letters/digits>` and
the same value in `X-Qlik-Xrfkey`, and `X-Qlik-User: UserDirectory=<dir>;
UserId=<id>`; otherwise 403 with a short text body. Routes:

    GET  /qrs/about
    GET  /qrs/task[?filter=]            condensed tasks (id, name, privileges)
    GET  /qrs/task/full[?filter=]       full tasks (all task types)
    GET  /qrs/task/count[?filter=]      {"value": n}
    POST /qrs/task/{id}/start           204, 404 for an unknown id
    POST /qrs/task/{id}/start/synchronous  201 {"value": "<execution GUID>"}
    POST /qrs/task/start/many           body ["id", ...]; 204, 404 (and no
                                        start at all) if any id is unknown
    POST /qrs/task/start?name=<name>    204 (starts every task of that name),
                                        404 if none
    GET  /qrs/reloadtask[/full|/count][?filter=]   reload tasks only
    GET  /qrs/reloadtask/{id}           a reload task (404 for other types)
    GET  /qrs/reloadtask/{id}/scriptlog?fileReferenceId=<GUID>
                                        {"value": "<download reference>"}
    GET  /qrs/download/reloadtask/{ref}/scriptlog.txt   text/plain, CRLF
    GET  /qrs/app[/full|/count][?filter=], GET /qrs/app/{id}
    GET  /qrs/user[/full|/count][?filter=], GET /qrs/user/{id}

An unknown path answers 404, a known path with another method 405, a bad
filter 400 {"message": "Invalid filter", "detail": "..."}. Paths and query
parameter names are matched case-insensitively (QRS is an ASP.NET service).
Checks run in this order: scripted answer, Xrfkey, X-Qlik-User, route.

Filter syntax (the `filter` query parameter, URL-decoded): comparisons
`<field> <op> <literal>` joined by `and` / `or` (`and` binds tighter),
optionally in parentheses. Operators: eq, ne, sw (starts with), ew (ends
with), so (substring); sw/ew/so only on text fields. Literals: 'text' (a
quote is written ''), bare GUIDs, integers, true/false. Keywords, operators
and field names are case-insensitive; text comparisons are case-sensitive,
GUID comparisons are not. Each field has a type (see _FIELDS) and a literal of
another type is an invalid filter (e.g. `id eq 'e3b2...'` is rejected, as QRS
wants a bare GUID). A field that is missing or null on an object matches only
`ne`. Collection fields (tags.*, customProperties.*) match if ANY element
matches (so `tags.name ne 'x'` means "has a tag not named x", as QRS's Any
translation does). customProperties: the comparisons on customProperties.*
inside one `and` chain are grouped per property: each
`customProperties.definition.name` comparison opens a group and the
`customProperties.value` comparisons next to it (up to the next definition
comparison) join it; a group matches if ONE customProperties entry satisfies
all of its comparisons. So `customProperties.definition.name eq 'taskGroup'
and customProperties.value eq 'tasks1'` needs a taskGroup property whose value
is tasks1 (a task with taskGroup=tasks3 and legacyTaskGroup=tasks1 does not
match), and `... eq 'A' and ...value eq 'x' and ...name eq 'B' and ...value eq
'y'` needs both A=x and B=y. Comparisons in parentheses that contain `or` are
evaluated on their own.

Control port (plain HTTP on 127.0.0.1, JSON):

    GET  /calls               the calls so far, oldest first: {"method",
                              "path", "query", "headers", "body",
                              "client_cert_cn", "status", "reply"}
                              (status/reply are null for stall and close)
    POST /script              {"match": "<regex on 'METHOD /path'>",
                              "status": 500, "body": <json or text>,
                              "headers": {...}, "times": 1}, or with
                              "stall": true / "close": true
    POST /reset               clears calls, scripts and started tasks, and
                              releases stalled requests (closed unanswered)
    GET  /started             task ids started so far, in order
    GET  /handshake_failures  {"count": n, "errors": ["..."]}; every TLS
                              handshake that fails counts, including plain
                              TCP connects that close without a handshake

Importable:

    qrs = FakeQrs(cert, key, ca).start()
    qrs.script({"match": "POST /qrs/task/.*/start", "status": 500})
    ... qrs.port, qrs.control_port, qrs.calls(), qrs.started(), qrs.reset()
    qrs.stop()

Command line (the shared contract):

    python3 fake_qrs.py --cert SERVER.pem --key SERVER-key.pem --ca CA.pem \\
        --port-file PATH [--port 0] [--control-port 0] [--data FILE]

`--data FILE` is JSON shaped like DEFAULT_DATA ("about", "tasks", "apps",
"users", "scriptLogs"); it replaces the built-in data set (a missing "about"
falls back to the built-in one, other missing keys are empty).
"""

import argparse
import copy
import http.server
import json
import os
import re
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
import uuid

# -- the built-in data set ------------------------------------------------------

_ZERO_GUID = "00000000-0000-0000-0000-000000000000"


def _tag(tag_id, name):
    return {"id": tag_id, "name": name, "privileges": None}


def _cp(value_id, definition_id, definition_name, value, choices):
    return {"id": value_id, "createdDate": "2023-11-02T09:00:00.000Z",
            "modifiedDate": "2023-11-02T09:00:00.000Z",
            "modifiedByUserName": "CORP\\anna",
            "definition": {"id": definition_id, "name": definition_name,
                           "valueType": "Text", "choiceValues": choices,
                           "privileges": None},
            "value": value, "schemaPath": "CustomPropertyValue"}


def _result(status, start, stop, duration, file_ref, node, details):
    return {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, file_ref + start)),
            "executingNodeName": node, "status": status,
            "startTime": start, "stopTime": stop, "duration": duration,
            "fileReferenceID": file_ref,
            "scriptLogAvailable": file_ref != _ZERO_GUID,
            "scriptLogLocation": "" if file_ref == _ZERO_GUID else
            f"{node}\\Script\\{file_ref}.log",
            "scriptLogSize": 0 if file_ref == _ZERO_GUID else 2048,
            "details": [{"id": str(uuid.uuid5(uuid.NAMESPACE_URL,
                                              file_ref + m)),
                         "detailsType": t, "message": m,
                         "detailCreatedDate": d} for t, m, d in details],
            "schemaPath": "ExecutionResult"}


_TAG_START1 = _tag("6c6c1a3e-2f4b-4d1e-9a3c-1b2d3e4f5a61", "startTask1")
_TAG_START2 = _tag("6c6c1a3e-2f4b-4d1e-9a3c-1b2d3e4f5a62", "startTask2")
_TAG_NIGHTLY = _tag("6c6c1a3e-2f4b-4d1e-9a3c-1b2d3e4f5a63", "nightly")
_CPDEF_GROUP = "b5e1f0c2-7d3a-4e8b-9c1d-2a3b4c5d6e71"
_CPDEF_LEGACY = "b5e1f0c2-7d3a-4e8b-9c1d-2a3b4c5d6e72"
_GROUPS = ["tasks1", "tasks2", "tasks3"]
_STREAM_EVERYONE = {"id": "aaec8d41-5201-43ab-809f-3063750dfafd",
                    "name": "Everyone", "privileges": None}
_STREAM_FINANCE = {"id": "d1e2f3a4-b5c6-4d7e-8f90-a1b2c3d4e5f6",
                   "name": "Finance", "privileges": None}
_ANNA = {"id": "3f2e1d0c-4b5a-4697-8877-665544332211", "userId": "anna",
         "userDirectory": "CORP", "name": "Anna Andersson", "privileges": None}
_BOB = {"id": "4a5b6c7d-8e9f-4a0b-8c1d-2e3f4a5b6c7d", "userId": "bob",
        "userDirectory": "CORP", "name": "Bob Berg", "privileges": None}
_SA_SCHEDULER = {"id": "5b6c7d8e-9fa0-4b1c-9d2e-3f4a5b6c7d8e",
                 "userId": "sa_scheduler", "userDirectory": "INTERNAL",
                 "name": "sa_scheduler", "privileges": None}


def _app_ref(app_id, name, stream, published=True):
    """Returns the condensed app embedded in a reload task."""
    return {"id": app_id, "name": name, "appId": "",
            "publishTime": "2024-01-15T08:00:00.000Z" if published else
            "1753-01-01T00:00:00.000Z",
            "published": published, "stream": stream,
            "savedInProductVersion": "14.187.4", "migrationHash":
            "9d4b3c27e4bc6a1bdf1cff77c8fb1af4e3d3f8f2",
            "availabilityStatus": 0, "privileges": None}


def _task(task_id, name, task_type, enabled, max_retries, app, tags, cps,
          result, **extra):
    schema = {0: "ReloadTask", 1: "ExternalProgramTask",
              2: "UserSyncTask"}[task_type]
    task = {"id": task_id, "createdDate": "2023-11-02T09:00:00.000Z",
            "modifiedDate": "2024-04-30T12:00:00.000Z",
            "modifiedByUserName": "CORP\\anna",
            "customProperties": cps, "name": name, "taskType": task_type,
            "enabled": enabled, "taskSessionTimeout": 1440,
            "maxRetries": max_retries, "tags": tags, "privileges": None,
            "schemaPath": schema, "app": app,
            "isManuallyTriggered": False,
            "operational": {"id": str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                 task_id)),
                            "lastExecutionResult": result,
                            "nextExecution": "1753-01-01T00:00:00.000Z",
                            "privileges": None},
            "timeToLive": 0}
    task.update(extra)
    return task


DEFAULT_DATA = {
    "about": {"buildVersion": "30.4.2.0", "buildDate": "5/10/2024 12:00:00 AM",
              "databaseProvider": "Devart.Data.PostgreSql", "nodeType": 1,
              "sharedPersistence": True, "requiresBootstrap": False,
              "singleNodeOnly": False, "schemaPath": "About"},
    "tasks": [
        _task("e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e", "Reload of Sales", 0,
              True, 0,
              _app_ref("7552d9fc-d1bb-4975-9a38-18357de531ea",
                       "Sales dashboard", _STREAM_EVERYONE),
              [_TAG_START1],
              [_cp("11111111-aaaa-4bbb-8ccc-000000000001", _CPDEF_GROUP,
                   "taskGroup", "tasks1", _GROUPS)],
              _result(8, "2024-05-01T08:10:00.000Z",
                      "2024-05-01T08:11:12.000Z", 72000,
                      "a1b2c3d4-e5f6-4789-9abc-def012345678", "sense-node-1",
                      [(0, "Trying to start task. Sending task to slave "
                        "scheduler sense-node-1", "2024-05-01T08:10:00.000Z"),
                       (1, "Changing task state from Started to Failed",
                        "2024-05-01T08:11:12.000Z")]),
              isPartialReload=False),
        _task("8d1b7c2e-3f4a-4b5c-9d6e-7f8091a2b3c4",
              "Reload of Sales (weekly)", 0, False, 1,
              _app_ref("7552d9fc-d1bb-4975-9a38-18357de531ea",
                       "Sales dashboard", _STREAM_EVERYONE),
              [_TAG_START1],
              # A migration left the old grouping behind: this task must NOT
              # match taskGroup=tasks1 (QRS pairs name and value per entry).
              [_cp("11111111-aaaa-4bbb-8ccc-000000000002", _CPDEF_GROUP,
                   "taskGroup", "tasks3", _GROUPS),
               _cp("11111111-aaaa-4bbb-8ccc-000000000003", _CPDEF_LEGACY,
                   "legacyTaskGroup", "tasks1", _GROUPS)],
              _result(0, "1753-01-01T00:00:00.000Z",
                      "1753-01-01T00:00:00.000Z", 0, _ZERO_GUID, "", []),
              isPartialReload=False),
        _task("210832b5-6174-4572-bd19-3e61eda675ef",
              "Reload of 2021 sales targets", 0, True, 0,
              _app_ref("5d7ae888-61cd-4539-97b2-6cf5baaa6f9d",
                       "2021 sales targets", _STREAM_EVERYONE),
              [_TAG_START1],
              [_cp("11111111-aaaa-4bbb-8ccc-000000000004", _CPDEF_GROUP,
                   "taskGroup", "tasks1", _GROUPS)],
              _result(7, "2024-05-01T06:00:00.000Z",
                      "2024-05-01T06:02:30.000Z", 150000,
                      "b2c3d4e5-f6a7-4890-8bcd-ef0123456789", "sense-node-1",
                      [(1, "Changing task state from Started to "
                        "FinishedSuccess", "2024-05-01T06:02:30.000Z")]),
              isPartialReload=False),
        _task("0a1b2c3d-1111-2222-3333-444455556666", "Nightly finance", 0,
              True, 2,
              _app_ref("9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff", "Finance",
                       _STREAM_FINANCE),
              [_TAG_NIGHTLY], [],
              _result(6, "2024-05-01T21:00:00.000Z",
                      "2024-05-01T21:00:01.000Z", 1000,
                      "c3d4e5f6-a7b8-4901-9cde-f01234567890", "sense-node-2",
                      [(1, "Changing task state from Started to Aborted",
                        "2024-05-01T21:00:01.000Z")]),
              isPartialReload=False),
        _task("09b3c78f-04dd-45e3-a4bf-1b074d6572fa",
              "Reload of Finance (step 2)", 0, True, 0,
              _app_ref("9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff", "Finance",
                       _STREAM_FINANCE),
              [_TAG_START2, _TAG_NIGHTLY],
              [_cp("11111111-aaaa-4bbb-8ccc-000000000005", _CPDEF_GROUP,
                   "taskGroup", "tasks2", _GROUPS)],
              _result(7, "2024-05-01T21:05:00.000Z",
                      "2024-05-01T21:06:00.000Z", 60000,
                      "d4e5f6a7-b8c9-4012-8def-012345678901", "sense-node-2",
                      []),
              isPartialReload=False),
        _task("a1a11a11-b1c0-4879-88fc-c7cdd9c1cf3e",
              "Reload of Manager's cockpit", 0, True, 0,
              _app_ref("c4d5e6f7-0819-4a2b-bc3d-4e5f60718293",
                       "Manager's cockpit", None, published=False),
              [], [],
              _result(7, "2024-05-01T07:00:00.000Z",
                      "2024-05-01T07:00:40.000Z", 40000,
                      "e5f6a7b8-c9d0-4123-9ef0-123456789012", "sense-node-1",
                      []),
              isPartialReload=False),
        _task("eaf1da4f-fd44-4cea-b2de-7b67a6496ee3", "Archive QVD files", 1,
              True, 0, None, [_TAG_START2],
              [_cp("11111111-aaaa-4bbb-8ccc-000000000006", _CPDEF_GROUP,
                   "taskGroup", "tasks2", _GROUPS)],
              _result(7, "2024-05-01T22:00:00.000Z",
                      "2024-05-01T22:00:05.000Z", 5000, _ZERO_GUID,
                      "sense-node-1", []),
              path="C:\\Scripts\\archive_qvds.cmd",
              parameters="--older-than 30"),
        _task("f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9", "User sync of CORP", 2,
              True, 0, None, [_TAG_NIGHTLY], [],
              _result(7, "2024-05-01T02:00:00.000Z",
                      "2024-05-01T02:01:00.000Z", 60000, _ZERO_GUID,
                      "sense-node-1", []),
              userDirectory={"id": "7e8f9a0b-1c2d-4e3f-8a4b-5c6d7e8f9a0b",
                             "name": "CORP", "userDirectoryName": "CORP",
                             "privileges": None}),
    ],
    "apps": [
        {**_app_ref("7552d9fc-d1bb-4975-9a38-18357de531ea", "Sales dashboard",
                    _STREAM_EVERYONE),
         "owner": _ANNA, "tags": [], "customProperties": [],
         "description": "Daily sales by region", "fileSize": 5242880,
         "lastReloadTime": "2024-04-30T08:11:00.000Z", "schemaPath": "App"},
        {**_app_ref("9f8e7d6c-aaaa-bbbb-cccc-ddddeeeeffff", "Finance",
                    _STREAM_FINANCE),
         "owner": _BOB, "tags": [_TAG_NIGHTLY], "customProperties": [],
         "description": "General ledger", "fileSize": 10485760,
         "lastReloadTime": "2024-04-30T21:06:00.000Z", "schemaPath": "App"},
        {**_app_ref("5d7ae888-61cd-4539-97b2-6cf5baaa6f9d",
                    "2021 sales targets", _STREAM_EVERYONE),
         "owner": _ANNA, "tags": [], "customProperties": [],
         "description": "", "fileSize": 1048576,
         "lastReloadTime": "2024-05-01T06:02:30.000Z", "schemaPath": "App"},
        {**_app_ref("c4d5e6f7-0819-4a2b-bc3d-4e5f60718293",
                    "Manager's cockpit", None, published=False),
         "owner": _BOB, "tags": [], "customProperties": [],
         "description": "Work in progress", "fileSize": 524288,
         "lastReloadTime": "2024-05-01T07:00:40.000Z", "schemaPath": "App"},
        {**_app_ref("e8f9a0b1-c2d3-4e4f-a5b6-c7d8e9f0a1b2",
                    "Operations monitor", _STREAM_EVERYONE),
         "owner": _SA_SCHEDULER, "tags": [], "customProperties": [],
         "description": "Sense site monitoring", "fileSize": 2097152,
         "lastReloadTime": "2024-05-01T05:00:00.000Z", "schemaPath": "App"},
    ],
    "users": [
        {**_ANNA, "createdDate": "2023-01-10T10:00:00.000Z",
         "modifiedDate": "2024-01-10T10:00:00.000Z",
         "modifiedByUserName": "INTERNAL\\sa_repository",
         "roles": ["ContentAdmin"], "inactive": False,
         "removedExternally": False, "blacklisted": False,
         "deleteProhibited": False, "tags": [], "customProperties": [],
         "attributes": [{"id": "9a8b7c6d-0001-4e5f-8a9b-0c1d2e3f4a51",
                         "attributeType": "email",
                         "attributeValue": "anna@example.com",
                         "externalId": "anna@example.com"}],
         "schemaPath": "User"},
        {**_BOB, "createdDate": "2023-01-10T10:00:00.000Z",
         "modifiedDate": "2024-01-10T10:00:00.000Z",
         "modifiedByUserName": "INTERNAL\\sa_repository",
         "roles": [], "inactive": False, "removedExternally": False,
         "blacklisted": False, "deleteProhibited": False, "tags": [],
         "customProperties": [],
         "attributes": [{"id": "9a8b7c6d-0002-4e5f-8a9b-0c1d2e3f4a52",
                         "attributeType": "email",
                         "attributeValue": "bob@example.com",
                         "externalId": "bob@example.com"},
                        {"id": "9a8b7c6d-0003-4e5f-8a9b-0c1d2e3f4a53",
                         "attributeType": "displayName",
                         "attributeValue": "Bob Berg",
                         "externalId": "Bob Berg"}],
         "schemaPath": "User"},
        {**_SA_SCHEDULER, "createdDate": "2023-01-10T10:00:00.000Z",
         "modifiedDate": "2023-01-10T10:00:00.000Z",
         "modifiedByUserName": "INTERNAL\\sa_repository",
         "roles": [], "inactive": False, "removedExternally": False,
         "blacklisted": False, "deleteProhibited": True, "tags": [],
         "customProperties": [], "attributes": [], "schemaPath": "User"},
    ],
    # fileReferenceID (of an execution result) -> the script log.
    "scriptLogs": {
        "a1b2c3d4-e5f6-4789-9abc-def012345678": {
            "taskId": "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e",
            "lines": [
                "20240501T101000.000+0200 Execution started.",
                "20240501T101000.000+0200 Qlik Sense Server Version 14.187.4",
                "20240501T101000.000+0200 CPU Threads: 8",
                "20240501T101001.000+0200 0002  SET ThousandSep=','",
                "20240501T101002.000+0200 0010  Sales:",
                "20240501T101002.000+0200 0011  LOAD Region, Amount",
                "20240501T101002.000+0200 0012  FROM [lib://Data/sales.qvd]"
                " (qvd)",
                "20240501T101111.000+0200 Error: Field 'Amount' not found",
                "20240501T101111.000+0200 Execution Failed",
                "20240501T101111.000+0200 Execution finished.",
            ]},
        "b2c3d4e5-f6a7-4890-8bcd-ef0123456789": {
            "taskId": "210832b5-6174-4572-bd19-3e61eda675ef",
            "lines": [
                "20240501T080000.000+0200 Execution started.",
                "20240501T080230.000+0200 Execution finished.",
            ]},
        "c3d4e5f6-a7b8-4901-9cde-f01234567890": {
            "taskId": "0a1b2c3d-1111-2222-3333-444455556666",
            "lines": [
                "20240501T230000.000+0200 Execution started.",
                "20240501T230001.000+0200 Execution aborted by user.",
            ]},
    },
}

# -- constants ------------------------------------------------------------------

JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"
HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 120.0

GUID_RE = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
                     r"[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
XRFKEY_RE = re.compile(r"[A-Za-z0-9]{16}")

_CP = "customProperties."
_COMMON_FIELDS = {"id": "guid", "name": "str", "tags.id": "guid",
                  "tags.name": "str",
                  "customProperties.definition.name": "str",
                  "customProperties.value": "str"}
_TASK_FIELDS = {**_COMMON_FIELDS, "enabled": "bool", "taskType": "int",
                "app.id": "guid", "app.name": "str"}
#: The fields a filter may name, per kind of object, with their types.
_FIELDS = {
    "task": _TASK_FIELDS,
    "reloadtask": _TASK_FIELDS,
    "app": {**_COMMON_FIELDS, "published": "bool", "stream.id": "guid",
            "stream.name": "str", "owner.id": "guid", "owner.userId": "str",
            "owner.userDirectory": "str", "owner.name": "str"},
    "user": {"id": "guid", "name": "str", "userId": "str",
             "userDirectory": "str"},
}
_OPS = {"eq", "ne", "sw", "ew", "so"}
_TEXT_ONLY_OPS = {"sw", "ew", "so"}
_LITERAL_TYPE = {"string": "str", "guid": "guid", "number": "int",
                 "bool": "bool"}

# -- the QRS filter language ----------------------------------------------------


class FilterError(ValueError):
    """A filter QRS would reject (400)."""


_TOKEN_RE = re.compile(r"""
    (?P<lparen>\() | (?P<rparen>\)) |
    (?P<string>'(?:[^']|'')*') |
    (?P<guid>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-
        [0-9A-Fa-f]{12})(?![\w.'-]) |
    (?P<number>-?[0-9]+)(?![\w.'-]) |
    (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)(?![\w.'-])
    """, re.X)


def _tokenize(text):
    tokens = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return tokens
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise FilterError(f"unexpected text at offset {pos}: "
                              f"{text[pos:pos + 20]!r}")
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "string":
            value = value[1:-1].replace("''", "'")
        elif kind == "number":
            value = int(value)
        tokens.append((kind, value, pos))
        pos = m.end()


class _Parser:
    """expr := and ('or' and)*; and := unary ('and' unary)*;
    unary := '(' expr ')' | field op literal."""

    def __init__(self, tokens, fields):
        self.tokens = tokens
        self.i = 0
        self.fields = {name.lower(): (name, kind)
                       for name, kind in fields.items()}

    def parse(self):
        node = self.or_expr()
        if self.i != len(self.tokens):
            raise FilterError(f"unexpected {self.tokens[self.i][1]!r} at "
                              f"offset {self.tokens[self.i][2]}")
        return node

    def peek_word(self, word):
        if self.i < len(self.tokens):
            kind, value, _ = self.tokens[self.i]
            return kind == "word" and value.lower() == word
        return False

    def next(self, what):
        if self.i == len(self.tokens):
            raise FilterError(f"the filter ends where {what} should follow")
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def or_expr(self):
        items = [self.and_expr()]
        while self.peek_word("or"):
            self.i += 1
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else ("or", items)

    def and_expr(self):
        items = []

        def add(node):
            # `and` is associative, so parenthesised and-chains flatten
            # into this one (which matters for customProperties pairing).
            if node[0] == "and":
                items.extend(node[1])
            else:
                items.append(node)

        add(self.unary())
        while self.peek_word("and"):
            self.i += 1
            add(self.unary())
        return items[0] if len(items) == 1 else ("and", items)

    def unary(self):
        kind, value, pos = self.next("a comparison")
        if kind == "lparen":
            node = self.or_expr()
            kind, value, pos = self.next("')'")
            if kind != "rparen":
                raise FilterError(f"expected ')' at offset {pos}")
            return node
        if kind != "word" or value.lower() in ("and", "or"):
            raise FilterError(f"expected a field name at offset {pos}, "
                              f"got {value!r}")
        if value.lower() not in self.fields:
            raise FilterError(f"unknown field {value!r}")
        field, ftype = self.fields[value.lower()]
        kind, op, pos = self.next("an operator")
        if kind != "word" or op.lower() not in _OPS:
            raise FilterError(f"unknown operator {op!r} at offset {pos}")
        op = op.lower()
        if op in _TEXT_ONLY_OPS and ftype != "str":
            raise FilterError(f"operator {op} needs a text field, "
                              f"not {field}")
        kind, literal, pos = self.next("a value")
        if kind == "word" and literal.lower() in ("true", "false"):
            kind, literal = "bool", literal.lower() == "true"
        if _LITERAL_TYPE.get(kind) != ftype:
            raise FilterError(f"field {field} needs a {ftype} value, got "
                              f"{literal!r} at offset {pos}")
        return ("cmp", field, op, literal, ftype)


def parse_filter(text, kind):
    """Returns the filter's syntax tree (None for an empty filter) for
    objects of `kind` ("task", "reloadtask", "app", "user"), or raises
    FilterError."""
    tokens = _tokenize(text or "")
    if not tokens:
        return None
    return _Parser(tokens, _FIELDS[kind]).parse()


def _compare(actual, op, literal, ftype):
    if actual is None:
        return op == "ne"
    if ftype == "guid":
        equal = str(actual).lower() == literal.lower()
    elif ftype == "str":
        actual = str(actual)
        if op == "sw":
            return actual.startswith(literal)
        if op == "ew":
            return actual.endswith(literal)
        if op == "so":
            return literal in actual
        equal = actual == literal
    elif ftype == "bool":
        equal = actual is literal
    else:
        equal = (not isinstance(actual, bool)) and actual == literal
    return equal if op == "eq" else not equal


def _leaves(obj, path):
    """Returns (values, is_collection) found under a dotted path."""
    values = [obj]
    collection = False
    for part in path.split("."):
        found = []
        for v in values:
            v = v.get(part) if isinstance(v, dict) else None
            if isinstance(v, list):
                collection = True
                found.extend(v)
            else:
                found.append(v)
        values = found
    return values, collection


def _cp_group_matches(group, obj):
    entries = obj.get("customProperties") or []
    for entry in entries:
        if all(_compare(_leaves(entry, c[1][len(_CP):])[0][0], c[2], c[3],
                        c[4]) for c in group):
            return True
    return False


def _cp_groups(items):
    """Splits an and-chain into its other items and its customProperties
    groups (see the module doc)."""
    others, groups, current = [], [], None
    for node in items:
        if node[0] != "cmp" or not node[1].startswith(_CP):
            others.append(node)
            continue
        is_definition = node[1] == _CP + "definition.name"
        if current is None or (is_definition and any(
                c[1] == _CP + "definition.name" for c in current)):
            current = []
            groups.append(current)
        current.append(node)
    return others, groups


def matches(node, obj):
    """Returns whether `obj` passes the filter tree `node`."""
    if node is None:
        return True
    kind = node[0]
    if kind == "or":
        return any(matches(n, obj) for n in node[1])
    if kind == "and":
        others, groups = _cp_groups(node[1])
        return (all(matches(n, obj) for n in others)
                and all(_cp_group_matches(g, obj) for g in groups))
    _, field, op, literal, ftype = node
    if field.startswith(_CP):
        return _cp_group_matches([node], obj)
    values, collection = _leaves(obj, field)
    if collection:
        return any(_compare(v, op, literal, ftype) for v in values)
    return _compare(values[0], op, literal, ftype)


# -- replies --------------------------------------------------------------------


class _Reply:
    def __init__(self, status, data=b"", ctype=None, headers=None,
                 recorded=None):
        self.status = status
        self.data = data
        self.ctype = ctype
        self.headers = headers or {}
        self.recorded = recorded


def _json(status, obj, headers=None):
    return _Reply(status, json.dumps(obj).encode("utf-8"), JSON_TYPE, headers,
                  obj)


def _text(status, text, headers=None):
    return _Reply(status, text.encode("utf-8"), TEXT_TYPE, headers, text)


def _empty(status, headers=None):
    return _Reply(status, b"", None, headers, None)


def _bad_request(message):
    return _json(400, {"message": message})


def _parse_body(raw):
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _query_get(query, name):
    """Returns a query parameter by case-insensitive name (or None)."""
    for key, value in query.items():
        if key.lower() == name.lower():
            return value
    return None


def _cert_cn(tls):
    try:
        cert = tls.getpeercert()
    except (ValueError, OSError):
        return None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


def _read_body(handler):
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return body
            body += handler.rfile.read(size)
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""


def _check_user(value):
    """Returns an error text for a bad X-Qlik-User header, or None."""
    if value is None:
        return "Missing X-Qlik-User"
    parts = {}
    for item in value.split(";"):
        if not item.strip():
            continue
        name, sep, val = item.partition("=")
        if not sep or not val.strip():
            return "Invalid X-Qlik-User header"
        parts[name.strip().lower()] = val.strip()
    if set(parts) != {"userdirectory", "userid"}:
        return "Invalid X-Qlik-User header"
    return None


# -- the HTTPS service ----------------------------------------------------------


class _QrsHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "fake-qrs"
    sys_version = ""
    timeout = IDLE_TIMEOUT

    def version_string(self):  # BaseHTTPRequestHandler API
        return self.server_version

    def log_request(self, code="-", size="-"):  # BaseHTTPRequestHandler API
        pass  # _dispatch logs one line per request itself

    def log_message(self, fmt, *args):  # BaseHTTPRequestHandler API
        # Only protocol errors (bad request lines, timeouts) get here.
        if self.server.owner.verbose:
            sys.stderr.write("fake-qrs: " + (fmt % args) + "\n")

    def _dispatch(self):
        owner = self.server.owner
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)
        query = {}
        for key, value in urllib.parse.parse_qsl(split.query,
                                                 keep_blank_values=True):
            query.setdefault(key, value)
        headers = {}
        for key, value in self.headers.items():
            key = key.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers \
                else value
        try:
            raw = _read_body(self)
        except ValueError:
            self.send_error(400, "Bad body framing")
            self.close_connection = True
            return
        cn = _cert_cn(self.connection)
        record, action, release = owner._begin_call(
            self.command, path, query, headers, _parse_body(raw), cn)
        if action is not None and action["kind"] == "stall":
            owner._log(f"{self.command} {self.path} -> stall (cn={cn})")
            release.wait()
            self._drop()
            return
        if action is not None and action["kind"] == "close":
            owner._log(f"{self.command} {self.path} -> close (cn={cn})")
            self._drop()
            return
        if action is not None:
            reply = owner._scripted_reply(action)
        else:
            try:
                reply = owner._answer(self.command, path, query, headers,
                                      raw)
            except Exception:  # noqa: BLE001 - a fake bug must be visible
                text = traceback.format_exc()
                sys.stderr.write("fake-qrs: internal error\n" + text)
                reply = _text(500, "fake-qrs internal error\n" + text)
        owner._finish_call(record, reply)
        owner._log(f"{self.command} {self.path} -> {reply.status} "
                   f"(cn={cn})")
        self._send(reply)

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, reply):
        self.send_response(reply.status)
        headers = {"Content-Type": reply.ctype} if reply.ctype else {}
        headers.update(reply.headers)
        for name, value in headers.items():
            self.send_header(name, str(value))
        if reply.status != 204 and reply.status >= 200 and not any(
                n.lower() == "content-length" for n in reply.headers):
            self.send_header("Content-Length", str(len(reply.data)))
        self.end_headers()
        if reply.data and self.command != "HEAD" and reply.status != 204:
            self.wfile.write(reply.data)
        self.wfile.flush()

    do_GET = _dispatch  # noqa: N815 - BaseHTTPRequestHandler API
    do_POST = _dispatch  # noqa: N815
    do_PUT = _dispatch  # noqa: N815
    do_DELETE = _dispatch  # noqa: N815
    do_PATCH = _dispatch  # noqa: N815
    do_HEAD = _dispatch  # noqa: N815


class _TlsServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner, address, context):
        self.owner = owner
        self.context = context
        super().__init__(address, _QrsHandler)

    def server_bind(self):
        # Skips HTTPServer's getfqdn(), a reverse DNS look-up.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def finish_request(self, request, client_address):
        # Runs on the connection's own thread, so a slow or failing
        # handshake never holds up the accept loop.
        request.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            self.owner._handshake_failed(client_address, exc)
            return
        self.owner._track(tls, True)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            self.owner._track(tls, False)
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        # A peer that goes away mid-request is not our error.
        if self.owner.verbose:
            super().handle_error(request, client_address)


# -- the control service --------------------------------------------------------


class _ControlHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "fake-qrs-control"
    sys_version = ""

    def log_message(self, fmt, *args):  # BaseHTTPRequestHandler API
        pass

    def _reply(self, status, obj):
        data = json.dumps(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", JSON_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self):
        owner = self.server.owner
        path = urllib.parse.urlsplit(self.path).path
        try:
            raw = _read_body(self)
        except ValueError:
            self._reply(400, {"message": "bad body framing"})
            return
        gets = {"/calls": owner.calls, "/started": owner.started,
                "/handshake_failures": owner._handshake_report}
        posts = {"/script", "/reset"}
        if path not in gets and path not in posts:
            self._reply(404, {"message": f"no control route {path}"})
            return
        if self.command != ("GET" if path in gets else "POST"):
            self._reply(405, {"message": f"{self.command} not allowed on "
                                         f"{path}"})
            return
        if path in gets:
            self._reply(200, gets[path]())
        elif path == "/reset":
            owner.reset()
            self._reply(200, {"reset": True})
        else:
            try:
                spec = json.loads(raw.decode("utf-8"))
                queued = owner.script(spec)
            except (ValueError, TypeError, re.error) as exc:
                self._reply(400, {"message": f"bad script: {exc}"})
                return
            self._reply(200, {"queued": queued})

    do_GET = _dispatch  # noqa: N815 - BaseHTTPRequestHandler API
    do_POST = _dispatch  # noqa: N815
    do_PUT = _dispatch  # noqa: N815
    do_DELETE = _dispatch  # noqa: N815


class _ControlServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner, address):
        self.owner = owner
        super().__init__(address, _ControlHandler)

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        if self.owner.verbose:
            super().handle_error(request, client_address)


# -- the fake -------------------------------------------------------------------


def _prepare_data(data):
    """Returns a deep copy of a data set with every key present; raises
    ValueError for a malformed one."""
    if not isinstance(data, dict):
        raise ValueError("the data set must be a JSON object")
    out = {"about": copy.deepcopy(data.get("about", DEFAULT_DATA["about"]))}
    for key in ("tasks", "apps", "users"):
        items = copy.deepcopy(data.get(key, []))
        if not isinstance(items, list) or not all(
                isinstance(i, dict) and isinstance(i.get("id"), str)
                and GUID_RE.fullmatch(i["id"]) for i in items):
            raise ValueError(f"'{key}' must be an array of objects with a "
                             f"GUID 'id'")
        out[key] = items
    logs = data.get("scriptLogs", {})
    if not isinstance(logs, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("taskId"), str)
            and isinstance(v.get("lines"), list) for v in logs.values()):
        raise ValueError("'scriptLogs' must map file reference ids to "
                         "{\"taskId\", \"lines\"}")
    out["scriptLogs"] = {k.lower(): copy.deepcopy(v) for k, v in logs.items()}
    return out


def _condensed(kind, obj):
    if kind in ("task", "reloadtask"):
        return {"id": obj["id"], "name": obj.get("name"), "privileges": None}
    if kind == "app":
        keys = ("id", "name", "appId", "publishTime", "published", "stream",
                "savedInProductVersion", "migrationHash",
                "availabilityStatus")
    else:
        keys = ("id", "userId", "userDirectory", "name")
    out = {k: obj.get(k) for k in keys}
    out["privileges"] = None
    return out


def _normalise_script(spec):
    if not isinstance(spec, dict):
        raise ValueError("a script is a JSON object")
    pattern = spec.get("match")
    if not isinstance(pattern, str):
        raise ValueError("'match' must be a regex string")
    compiled = re.compile(pattern)
    times = spec.get("times", 1)
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ValueError("'times' must be a positive integer")
    kinds = [k for k in ("stall", "close") if spec.get(k)]
    if "status" in spec:
        kinds.append("status")
    if len(kinds) != 1:
        raise ValueError("give exactly one of 'status', 'stall', 'close'")
    action = {"pattern": pattern, "regex": compiled, "times": times,
              "kind": kinds[0]}
    if kinds[0] == "status":
        status = spec["status"]
        if isinstance(status, bool) or not isinstance(status, int) or \
                not 100 <= status <= 599:
            raise ValueError("'status' must be an HTTP status code")
        headers = spec.get("headers") or {}
        if not isinstance(headers, dict):
            raise ValueError("'headers' must be an object")
        action.update(status=status, body=spec.get("body"),
                      headers={str(k): str(v) for k, v in headers.items()})
    return action


class FakeQrs:
    """The fake QRS. Thread-safe; see the module doc."""

    def __init__(self, cert, key, ca, data=None, port=0, control_port=0,
                 host="127.0.0.1", verbose=False):
        self.cert = cert
        self.key = key
        self.ca = ca
        self.host = host
        self.port = port
        self.control_port = control_port
        self.verbose = verbose
        self._data = _prepare_data(DEFAULT_DATA if data is None else data)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._calls = []
        self._scripts = []
        self._started = []
        self._downloads = {}
        self._handshake_errors = []
        self._release = threading.Event()
        self._connections = set()
        self._servers = []
        self._threads = []
        self._routes = self._make_routes()

    # -- life cycle ---------------------------------------------------------

    def _context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert, self.key)
        ctx.load_verify_locations(cafile=self.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def start(self):
        """Binds both ports (free ones unless given) and serves in
        threads; returns self."""
        context = self._context()
        service = _TlsServer(self, (self.host, self.port), context)
        try:
            control = _ControlServer(self, (self.host, self.control_port))
        except OSError:
            service.server_close()
            raise
        self.port = service.server_address[1]
        self.control_port = control.server_address[1]
        self._servers = [service, control]
        for server, name in ((service, "qrs"), (control, "control")):
            thread = threading.Thread(target=server.serve_forever,
                                      kwargs={"poll_interval": 0.05},
                                      name=f"fake-qrs-{name}:{self.port}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self):
        """Stops serving, closes every connection (stalled requests end
        unanswered). Idempotent."""
        with self._lock:
            self._release.set()
            connections = list(self._connections)
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(5.0)
        self._servers = []
        self._threads = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def url(self, path="/qrs/about"):
        """Returns the https URL of `path` on the service port."""
        return f"https://{self.host}:{self.port}{path}"

    # -- scripting and state ------------------------------------------------

    def script(self, *specs, **spec):
        """Queues scripted answers: dicts as POST /script takes, or one as
        keyword arguments (match=..., status=..., body=..., headers=...,
        times=..., stall=True, close=True). Returns how many scripts are
        queued."""
        actions = [_normalise_script(s) for s in specs]
        if spec:
            actions.append(_normalise_script(spec))
        with self._lock:
            self._scripts.extend(actions)
            return len(self._scripts)

    def reset(self):
        """Clears calls, scripts and started tasks; releases stalls."""
        with self._lock:
            self._calls.clear()
            self._scripts.clear()
            self._started.clear()
            self._release.set()
            self._release = threading.Event()

    def calls(self):
        """Returns the calls so far (copies), oldest first."""
        with self._lock:
            return copy.deepcopy(self._calls)

    def started(self):
        """Returns the ids of the tasks started so far, in order."""
        with self._lock:
            return list(self._started)

    def handshake_failures(self):
        """Returns how many TLS handshakes failed."""
        with self._lock:
            return len(self._handshake_errors)

    def _handshake_report(self):
        with self._lock:
            return {"count": len(self._handshake_errors),
                    "errors": list(self._handshake_errors)}

    def wait_for_calls(self, count, timeout=10.0):
        """Waits until at least `count` calls arrived; returns them all.
        Raises TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._calls) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"fake QRS got {len(self._calls)} of "
                                       f"{count} call(s) in {timeout:g} s")
                self._changed.wait(left)
            return copy.deepcopy(self._calls)

    def _log(self, line):
        if self.verbose:
            sys.stderr.write(f"fake-qrs: {line}\n")
            sys.stderr.flush()

    def _track(self, conn, add):
        with self._lock:
            (self._connections.add if add else self._connections.discard)(
                conn)

    def _handshake_failed(self, address, exc):
        with self._lock:
            self._handshake_errors.append(f"{address[0]}:{address[1]}: "
                                          f"{exc}")
        self._log(f"TLS handshake failed from {address[0]}:{address[1]}: "
                  f"{exc}")

    def _begin_call(self, method, path, query, headers, body, cn):
        """Records a call; returns (record, scripted action or None, the
        event that releases stalls)."""
        record = {"method": method, "path": path, "query": query,
                  "headers": headers, "body": body, "client_cert_cn": cn,
                  "status": None, "reply": None}
        key = f"{method} {path}"
        with self._changed:
            self._calls.append(record)
            action = None
            for script in self._scripts:
                if script["regex"].search(key):
                    action = script
                    script["times"] -= 1
                    if script["times"] == 0:
                        self._scripts.remove(script)
                    break
            self._changed.notify_all()
            return record, action, self._release

    def _finish_call(self, record, reply):
        with self._lock:
            record["status"] = reply.status
            record["reply"] = copy.deepcopy(reply.recorded)

    @staticmethod
    def _scripted_reply(action):
        body = action["body"]
        if body is None:
            reply = _empty(action["status"])
        elif isinstance(body, str):
            reply = _text(action["status"], body)
        else:
            reply = _json(action["status"], body)
        for name, value in action["headers"].items():
            if name.lower() == "content-type":
                reply.ctype = value
            else:
                reply.headers[name] = value
        return reply

    # -- QRS behaviour ------------------------------------------------------

    def _answer(self, method, path, query, headers, raw):
        xrf_query = _query_get(query, "xrfkey")
        xrf_header = headers.get("x-qlik-xrfkey")
        if xrf_query is None or xrf_header is None or \
                xrf_query != xrf_header:
            return _text(403, "XrfKey header and querystring values do "
                              "not match")
        if not XRFKEY_RE.fullmatch(xrf_query):
            return _text(403, "XrfKey must be 16 characters of letters "
                              "and digits")
        problem = _check_user(headers.get("x-qlik-user"))
        if problem:
            return _text(403, problem)
        for regex, methods in self._routes:
            m = regex.fullmatch(path)
            if m is None:
                continue
            handler = methods.get("GET" if method == "HEAD" else method)
            if handler is None:
                return _empty(405, {"Allow": ", ".join(sorted(methods))})
            return handler(m.groups(), query, _parse_body(raw))
        return _empty(404)

    def _make_routes(self):
        def lister(kind, shape):
            return lambda groups, query, body: self._list(kind, shape, query)

        routes = [("/qrs/about", {"GET": lambda g, q, b: _json(
            200, self._data["about"])})]
        for kind in ("task", "reloadtask", "app", "user"):
            routes += [(f"/qrs/{kind}", {"GET": lister(kind, "condensed")}),
                       (f"/qrs/{kind}/full", {"GET": lister(kind, "full")}),
                       (f"/qrs/{kind}/count", {"GET": lister(kind, "count")})]
        routes += [
            ("/qrs/task/start", {"POST": self._start_by_name}),
            ("/qrs/task/start/many", {"POST": self._start_many}),
            ("/qrs/task/([^/]+)/start", {"POST": self._start_one}),
            ("/qrs/task/([^/]+)/start/synchronous",
             {"POST": self._start_synchronous}),
            ("/qrs/reloadtask/([^/]+)", {"GET": self._get_reloadtask}),
            ("/qrs/reloadtask/([^/]+)/scriptlog", {"GET": self._scriptlog}),
            ("/qrs/download/reloadtask/([^/]+)/scriptlog\\.txt",
             {"GET": self._download_scriptlog}),
            ("/qrs/app/([^/]+)", {"GET": lambda g, q, b: self._get_one(
                "apps", g[0])}),
            ("/qrs/user/([^/]+)", {"GET": lambda g, q, b: self._get_one(
                "users", g[0])}),
        ]
        return [(re.compile(p, re.I), m) for p, m in routes]

    def _items(self, kind):
        if kind == "task":
            return self._data["tasks"]
        if kind == "reloadtask":
            return [t for t in self._data["tasks"] if t.get("taskType") == 0]
        return self._data[kind + "s"]

    def _find(self, collection, object_id):
        object_id = object_id.lower()
        for obj in self._data[collection]:
            if obj["id"].lower() == object_id:
                return obj
        return None

    def _list(self, kind, shape, query):
        try:
            tree = parse_filter(_query_get(query, "filter"), kind)
        except FilterError as exc:
            return _json(400, {"message": "Invalid filter",
                               "detail": str(exc)})
        items = [o for o in self._items(kind) if matches(tree, o)]
        if shape == "count":
            return _json(200, {"value": len(items)})
        if shape == "condensed":
            items = [_condensed(kind, o) for o in items]
        return _json(200, items)

    def _get_one(self, collection, object_id):
        obj = self._find(collection, object_id)
        return _json(200, obj) if obj is not None else _empty(404)

    def _get_reloadtask(self, groups, query, body):
        task = self._find("tasks", groups[0])
        if task is None or task.get("taskType") != 0:
            return _empty(404)
        return _json(200, task)

    def _start_one(self, groups, query, body):
        task = self._find("tasks", groups[0])
        if task is None:
            return _empty(404)
        with self._lock:
            self._started.append(task["id"])
        return _empty(204)

    def _start_synchronous(self, groups, query, body):
        task = self._find("tasks", groups[0])
        if task is None:
            return _empty(404)
        with self._lock:
            self._started.append(task["id"])
        return _json(201, {"value": str(uuid.uuid4())})

    def _start_many(self, groups, query, body):
        if not isinstance(body, list) or not all(isinstance(i, str)
                                                 for i in body):
            return _bad_request("The body must be an array of task ids")
        tasks = [self._find("tasks", i) for i in body]
        if any(t is None for t in tasks):
            return _empty(404)
        with self._lock:
            self._started.extend(t["id"] for t in tasks)
        return _empty(204)

    def _start_by_name(self, groups, query, body):
        name = _query_get(query, "name")
        if not name:
            return _bad_request("Missing parameter: name")
        tasks = [t for t in self._data["tasks"] if t.get("name") == name]
        if not tasks:
            return _empty(404)
        with self._lock:
            self._started.extend(t["id"] for t in tasks)
        return _empty(204)

    def _scriptlog(self, groups, query, body):
        task = self._find("tasks", groups[0])
        if task is None or task.get("taskType") != 0:
            return _empty(404)
        ref = _query_get(query, "fileReferenceId")
        if not ref or not GUID_RE.fullmatch(ref):
            return _bad_request("fileReferenceId must be a GUID")
        log = self._data["scriptLogs"].get(ref.lower())
        if log is None or log["taskId"].lower() != task["id"].lower():
            return _empty(404)
        download = str(uuid.uuid4())
        with self._lock:
            self._downloads[download] = ref.lower()
        return _json(200, {"value": download})

    def _download_scriptlog(self, groups, query, body):
        with self._lock:
            ref = self._downloads.get(groups[0].lower())
        if ref is None:
            return _empty(404)
        lines = self._data["scriptLogs"][ref]["lines"]
        return _text(200, "".join(line + "\r\n" for line in lines))


# -- command line ---------------------------------------------------------------


def _write_port_file(path, ports):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(ports, f)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description="A fake Qlik Repository "
                                     "Service (HTTPS, client certificates).")
    parser.add_argument("--cert", required=True, help="server certificate")
    parser.add_argument("--key", required=True, help="server key")
    parser.add_argument("--ca", required=True,
                        help="CA that must have signed client certificates")
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--data", help="JSON data set replacing the "
                        "built-in one")
    parser.add_argument("--quiet", action="store_true",
                        help="log no line per request")
    args = parser.parse_args(argv)
    data = None
    try:
        if args.data:
            with open(args.data, encoding="utf-8") as f:
                data = json.load(f)
        fake = FakeQrs(args.cert, args.key, args.ca, data=data,
                       port=args.port, control_port=args.control_port,
                       verbose=not args.quiet).start()
    except (OSError, ValueError, ssl.SSLError) as exc:
        sys.stderr.write(f"fake-qrs: cannot start: {exc}\n")
        return 2
    stopping = threading.Event()

    def on_signal(signum, frame):
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    _write_port_file(args.port_file, {"port": fake.port,
                                      "control_port": fake.control_port})
    fake._log(f"listening on https://{fake.host}:{fake.port} (control "
              f"http://{fake.host}:{fake.control_port})")
    while not stopping.wait(1.0):
        pass
    fake._log("stopping")
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

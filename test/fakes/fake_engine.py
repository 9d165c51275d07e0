#!/usr/bin/env python3
"""A fake Qlik Sense Engine (QIX) for butler's tests: JSON-RPC 2.0 over a
secure WebSocket, Python 3 standard library only (the WebSocket server side,
RFC 6455, is implemented here).

It follows /work/shared/reference/engine-api.md and the shared contract of
the fake Sense servers (test/fakes, see fake_qrs.py):

    python3 fake_engine.py --cert SERVER.pem --key SERVER-key.pem --ca CA.pem \
        --port-file PATH [--port 0] [--control-port 0] [--data FILE] \
        [--reload-ms 200] [--quiet]

or, from Python:

    engine = FakeEngine(cert, key, ca).start()      # data=None: built-in set
    engine.port, engine.control_port
    engine.script({"match": "OpenDoc", "body": {"code": 5, ...}})
    engine.calls(); engine.reset(); engine.stop()

The service port (127.0.0.1) speaks TLS 1.2+ and REQUIRES a client
certificate signed by --ca; failed handshakes are counted (GET
/handshake_failures on the control port). The WebSocket upgrade must go to
/app/engineData or /app/<anything> and carry `X-Qlik-User:
UserDirectory=...;UserId=...` (else 403; another path gives 404). After the
upgrade the engine sends the OnConnected notification, then answers requests
in the engine's way:

- Global (handle -1): GetDocList, OpenDoc, GetActiveDoc, GetProgress,
  EngineVersion, IsDesktopMode, GetAuthenticatedUser, ProductVersion,
  QTProduct, OSName.
- Doc: GetAppProperties, GetAppLayout, GetScript, GetAllInfos,
  GetConnections, GetConnection, GetLineage, CreateSessionObject,
  DestroySessionObject, GetObject, GetObjects, GetDimension, GetMeasure,
  GetBookmark, GetBookmarks, GetVariableById, GetVariableByName, DoReload,
  DoSave.
- GenericObject / GenericDimension / GenericMeasure / GenericBookmark /
  GenericVariable: GetLayout, GetProperties, GetInfo (objects also
  GetFullPropertyTree, GetChildInfos; variables GetRawContent).

Engine quirks kept on purpose: an unknown object id gives
`{"qReturn":{"qType":null,"qHandle":null}}` (no error, enigma.js turns it
into "Object not found"); asking twice for the same object gives the same
handle; list items leave out false flags (qIsReserved, qIsScriptCreated,
...); GetProgress returns the persistent progress lines that are new since
the previous GetProgress call for that request; a successful DoReload answer
carries `"change": [handles]`. Errors: unknown method (or a method of another
class) -32601, bad params -32602, unknown handle -32600 "Invalid handle",
malformed JSON -32700 with id null, not a request object -32600, unknown app
1003, a second OpenDoc in a session 1002.

Frames: client frames must be masked; text messages only (binary: close
1003); fragmentation, ping/pong and close codes as RFC 6455; protocol errors
close with 1002, invalid UTF-8 with 1007, messages over 16 MiB with 1009.

Control API (plain HTTP on 127.0.0.1, JSON):
- GET /calls: one entry per connection, oldest first: {"connection", "path",
  "headers" (lower-case names), "client_cert_cn", "status" (101 or the
  refusal), "requests": [{"id","handle","method","params"}],
  "closed_cleanly" (the client started the closing handshake with a close
  frame), "close_code" (the client's, or the server's when it closed),
  "open"}. Malformed messages are listed with "method": null and "raw".
- POST /script: {"match": regex, "body": error object} or {"match", "result":
  result object} or {"match", "stall": true} or {"match", "close": true},
  optional "times" (default 1). `match` is searched in the JSON-RPC method
  name; the script "match": "UPGRADE" (exactly) acts on WebSocket upgrades
  instead, with "status" (HTTP status to refuse with, "body", "headers") or
  stall/close. The body may also be an array of scripts. Scripts are used in
  order, each `times` times. Stalled requests stay unanswered until /reset
  or stop, which close their connections.
- POST /reset: forgets calls, scripts and handshake failures and restores the
  data set (reloads change qLastReloadTime).
- GET /handshake_failures: {"count": n, "errors": ["..."]}.
- GET /scripts: the scripts not used up yet.

--data FILE replaces the built-in data set (DEFAULT_DATA below, same shape:
{"engine_version", "reload_ms", "apps": [...]}); `reload_ms` in an app
overrides the reload time for that app, `reload_fails` makes DoReload answer
qReturn false.
"""

import argparse
import base64
import collections
import copy
import datetime
import hashlib
import http.server
import json
import os
import re
import select
import signal
import socket
import ssl
import struct
import sys
import threading
import time

# --------------------------------------------------------------------------
# The built-in data set
# --------------------------------------------------------------------------

SALES_APP_ID = "7552d9fc-d1bb-4975-9a38-18357de531ea"
FINANCE_APP_ID = "b1a4f3c2-5e6d-4f70-8a9b-0c1d2e3f4a5b"
EMPTY_APP_ID = "e2d5c7a1-9b3f-4c8e-a6d4-2f1b0e9c8d7a"
OPS_APP_ID = "3f9a8e2b-7c6d-4e5f-9a0b-1c2d3e4f5a6b"

_EVERYONE = {"id": "aaec8d41-5201-43ab-809f-3063750dfafd", "name": "Everyone"}
_OWNER = {"id": "4d9a5ee4-8b53-4e21-9d4b-1e7f0c3a2b6d", "userId": "sa_repository",
          "userDirectory": "INTERNAL", "name": "sa_repository"}
_PRIVILEGES = ["read", "update", "delete", "exportdata", "publish", "approve"]

_SALES_SCRIPT = "\r\n".join([
    "///$tab Main",
    "SET ThousandSep=',';",
    "SET DecimalSep='.';",
    "SET MoneyThousandSep=',';",
    "SET MoneyDecimalSep='.';",
    "SET MoneyFormat='$#,##0.00;-$#,##0.00';",
    "SET TimeFormat='h:mm:ss TT';",
    "SET DateFormat='M/D/YYYY';",
    "SET TimestampFormat='M/D/YYYY h:mm:ss[.fff] TT';",
    "SET FirstWeekDay=6;",
    "SET BrokenWeeks=1;",
    "SET ReferenceDay=0;",
    "SET FirstMonthOfYear=1;",
    "SET CollationLocale='en-US';",
    "SET MonthNames='Jan;Feb;Mar;Apr;May;Jun;Jul;Aug;Sep;Oct;Nov;Dec';",
    "SET DayNames='Mon;Tue;Wed;Thu;Fri;Sat;Sun';",
    "LET vReloadStart = Now();",
    "",
    "///$tab Orders",
    "LIB CONNECT TO 'SalesDB (qlik_sa)';",
    "",
    "Orders:",
    "LOAD OrderID,",
    "     CustomerID,",
    "     ProductID,",
    "     Date(OrderDate) as OrderDate,",
    "     Quantity,",
    "     UnitPrice,",
    "     Quantity * UnitPrice as Amount;",
    "SQL SELECT * FROM sales.dbo.orders;",
    "",
    "///$tab Customers",
    "Customers:",
    "LOAD CustomerID, CustomerName, Country, Region",
    "FROM [lib://DataFiles/customers.qvd] (qvd);",
    "",
    "Products:",
    "LOAD ProductID, ProductName, Category",
    "FROM [lib://DataFiles/products.xlsx]",
    "(ooxml, embedded labels, table is Products);",
    "",
])

_FINANCE_SCRIPT = "\r\n".join([
    "///$tab Main",
    "SET ThousandSep=',';",
    "SET DecimalSep='.';",
    "",
    "///$tab Ledger",
    "Ledger:",
    "LOAD AccountID, Period, Amoutn",
    "FROM [lib://Finance DW/ledger.qvd] (qvd);",
    "",
])

_OPS_SCRIPT = "\r\n".join([
    "///$tab Main",
    "SET ThousandSep=',';",
    "SET DecimalSep='.';",
    "",
    "Tasks:",
    "LOAD TaskName, Status, Duration",
    "FROM [lib://DataFiles/task_history.csv]",
    "(txt, utf8, embedded labels, delimiter is ',');",
    "",
])


def _sheet_meta(created):
    return {"createdDate": created, "modifiedDate": created, "published": True,
            "publishTime": created, "approved": True, "owner": _OWNER,
            "privileges": _PRIVILEGES}


def _chart(qid, vtype, title, dims=(), measures=()):
    """Returns a chart object (a sheet's child) in the fake's record shape."""
    return {"properties": {
        "qInfo": {"qId": qid, "qType": vtype},
        "qExtendsId": "",
        "qMetaDef": {},
        "qStateName": "",
        "visualization": vtype,
        "title": title,
        "showTitles": True,
        "qHyperCubeDef": {
            "qDimensions": [{"qLibraryId": d, "qDef": {"qFieldDefs": [], "autoSort": True}}
                            for d in dims],
            "qMeasures": [{"qLibraryId": m, "qDef": {"qDef": "", "autoSort": True}}
                          for m in measures],
            "qInterColumnSortOrder": list(range(len(dims) + len(measures))),
            "qSuppressZero": False,
            "qMode": "S",
            "qInitialDataFetch": [{"qLeft": 0, "qTop": 0, "qWidth": 10, "qHeight": 500}],
        },
    }}


DEFAULT_DATA = {
    "engine_version": "12.1823.0",
    "product_version": "14.173.3",
    "reload_ms": 200,
    "apps": [
        {
            "id": SALES_APP_ID,
            "name": "Sales dashboard",
            "file_size": 123456,
            "file_time": 45413.34111,
            "last_reload_time": "2024-05-01T08:11:12.000Z",
            "meta": {
                "createdDate": "2023-11-02T09:14:51.125Z",
                "modifiedDate": "2024-05-01T08:11:13.031Z",
                "published": True,
                "publishTime": "2023-11-06T12:00:03.587Z",
                "privileges": _PRIVILEGES,
                "description": "Sales by region, product and sales rep",
                "qFileSize": 123456,
                "dynamicColor": "",
                "stream": _EVERYONE,
                "canCreateDataConnections": True,
            },
            "properties": {
                "qTitle": "Sales dashboard",
                "qLastReloadTime": "2024-05-01T08:11:12.000Z",
                "qMigrationHash": "9b2e7f5c1a0d4e3b8c6f2a1d0e9b8c7a6f5e4d3c",
                "qSavedInProductVersion": "14.173.3",
                "qThumbnail": {"qUrl": "/appcontent/" + SALES_APP_ID + "/sales-thumbnail.png"},
                "description": "Sales by region, product and sales rep",
                "sheetTitleBgColor": "#ffffff",
                "sheetTitleGradientColor": "#ffffff",
                "sheetTitleColor": "#404040",
                "sheetLogoThumbnail": {"qStaticContentUrlDef": {
                    "qUrl": "/appcontent/" + SALES_APP_ID + "/company-logo.png"}},
                "sheetLogoPosition": "left",
                "rtl": False,
                "theme": "sense",
                "disableCellNavMenu": False,
            },
            "script": _SALES_SCRIPT,
            "connections": [
                {"qId": "a3c1e5f7-2b4d-4c6e-8f0a-1b3d5f7a9c01", "qName": "DataFiles",
                 "qConnectionString": "C:\\ProgramData\\Qlik\\Sense\\Apps\\DataFiles\\",
                 "qType": "folder", "qMeta": {"name": "DataFiles"},
                 "qModifiedDate": "2023-10-30T15:22:41.000Z"},
                {"qId": "b4d2f6a8-3c5e-4d7f-9a1b-2c4e6a8b0d12", "qName": "SalesDB (qlik_sa)",
                 "qConnectionString": "OLEDB CONNECT TO [Provider=SQLOLEDB.1;"
                                      "Persist Security Info=True;Data Source=sqlprod01;"
                                      "Initial Catalog=sales]",
                 "qType": "OLEDB", "qMeta": {"name": "SalesDB (qlik_sa)"},
                 "qModifiedDate": "2023-11-02T09:30:00.000Z", "qLogOn": "LOG_ON_SERVICE_USER"},
            ],
            "lineage": [
                {"qDiscriminator": "SalesDB (qlik_sa)",
                 "qStatement": "SQL SELECT * FROM sales.dbo.orders"},
                {"qDiscriminator": "lib://DataFiles/customers.qvd", "qStatement": ""},
                {"qDiscriminator": "lib://DataFiles/products.xlsx", "qStatement": ""},
            ],
            "fields": [
                {"qName": "OrderID", "qSrcTables": ["Orders"], "qTags": ["$key", "$numeric", "$integer"], "qCardinal": 48213},
                {"qName": "CustomerID", "qSrcTables": ["Orders", "Customers"], "qTags": ["$key", "$numeric", "$integer"], "qCardinal": 1204},
                {"qName": "ProductID", "qSrcTables": ["Orders", "Products"], "qTags": ["$key", "$numeric", "$integer"], "qCardinal": 312},
                {"qName": "OrderDate", "qSrcTables": ["Orders"], "qTags": ["$numeric", "$integer", "$timestamp", "$date"], "qCardinal": 1826},
                {"qName": "Quantity", "qSrcTables": ["Orders"], "qTags": ["$numeric", "$integer"], "qCardinal": 50},
                {"qName": "UnitPrice", "qSrcTables": ["Orders"], "qTags": ["$numeric"], "qCardinal": 287},
                {"qName": "Amount", "qSrcTables": ["Orders"], "qTags": ["$numeric"], "qCardinal": 9120},
                {"qName": "CustomerName", "qSrcTables": ["Customers"], "qTags": ["$text"], "qCardinal": 1198},
                {"qName": "Country", "qSrcTables": ["Customers"], "qTags": ["$ascii", "$text", "$geoname"], "qCardinal": 23},
                {"qName": "Region", "qSrcTables": ["Customers"], "qTags": ["$ascii", "$text"], "qCardinal": 5},
                {"qName": "ProductName", "qSrcTables": ["Products"], "qTags": ["$text"], "qCardinal": 312},
                {"qName": "Category", "qSrcTables": ["Products"], "qTags": ["$ascii", "$text"], "qCardinal": 8},
                {"qName": "$Field", "qSrcTables": [], "qTags": ["$system", "$text"], "qCardinal": 12, "qIsSystem": True, "qIsHidden": True},
                {"qName": "$Table", "qSrcTables": [], "qTags": ["$system", "$text"], "qCardinal": 3, "qIsSystem": True, "qIsHidden": True},
                {"qName": "$Rows", "qSrcTables": [], "qTags": ["$system", "$numeric", "$integer"], "qCardinal": 3, "qIsSystem": True, "qIsHidden": True},
                {"qName": "$Fields", "qSrcTables": [], "qTags": ["$system", "$numeric", "$integer"], "qCardinal": 3, "qIsSystem": True, "qIsHidden": True},
            ],
            "media": [
                {"qUrlDef": "/appcontent/" + SALES_APP_ID + "/company-logo.png",
                 "qUrl": "/appcontent/" + SALES_APP_ID + "/company-logo.png"},
                {"qUrlDef": "/appcontent/" + SALES_APP_ID + "/sales-thumbnail.png",
                 "qUrl": "/appcontent/" + SALES_APP_ID + "/sales-thumbnail.png"},
                {"qUrlDef": "/media/Logos/qlik.png", "qUrl": "/media/Logos/qlik.png"},
            ],
            # App objects: sheets (with their charts), a story (with a slide),
            # a master visualization, the app properties object, a snapshot.
            "objects": [
                {"properties": {
                    "qInfo": {"qId": "b7d3a4e2-3c1f-4e8a-9d2b-6f5e4c3b2a10", "qType": "sheet"},
                    "qMetaDef": {"title": "Overview", "description": "Revenue and orders at a glance"},
                    "rank": 0,
                    "thumbnail": {"qStaticContentUrlDef": {}},
                    "columns": 24, "rows": 12,
                    "cells": [
                        {"name": "kPjTvR", "type": "kpi", "col": 0, "row": 0, "colspan": 6, "rowspan": 3},
                        {"name": "XmHwaQ", "type": "barchart", "col": 6, "row": 0, "colspan": 18, "rowspan": 6},
                        {"name": "RqPzJd", "type": "linechart", "col": 0, "row": 6, "colspan": 24, "rowspan": 6},
                    ],
                    "qChildListDef": {"qData": {"title": "/title"}},
                 },
                 "meta": _sheet_meta("2023-11-02T09:40:12.000Z"),
                 "children": [
                     _chart("kPjTvR", "kpi", "Revenue", measures=["fJQTmw"]),
                     _chart("XmHwaQ", "barchart", "Revenue by country", dims=["hRZaKk"], measures=["fJQTmw"]),
                     _chart("RqPzJd", "linechart", "Orders over time", measures=["nmKPtX"]),
                 ]},
                {"properties": {
                    "qInfo": {"qId": "c8e4b5f3-4d2a-4f9b-8e3c-7a6f5d4c3b21", "qType": "sheet"},
                    "qMetaDef": {"title": "Product analysis", "description": ""},
                    "rank": 1,
                    "thumbnail": {"qStaticContentUrlDef": {}},
                    "columns": 24, "rows": 12,
                    "cells": [
                        {"name": "bTrsEx", "type": "table", "col": 0, "row": 0, "colspan": 14, "rowspan": 12},
                        {"name": "JvaPsm", "type": "piechart", "col": 14, "row": 0, "colspan": 10, "rowspan": 12},
                    ],
                    "qChildListDef": {"qData": {"title": "/title"}},
                 },
                 "meta": _sheet_meta("2023-11-03T14:02:55.000Z"),
                 "children": [
                     _chart("bTrsEx", "table", "Products", dims=["PbJkqv"], measures=["fJQTmw", "nmKPtX"]),
                     _chart("JvaPsm", "piechart", "Revenue by category", dims=["PbJkqv"], measures=["fJQTmw"]),
                 ]},
                {"properties": {
                    "qInfo": {"qId": "d9f5c6a4-5e3b-4a0c-9f4d-8b7a6e5d4c32", "qType": "story"},
                    "qMetaDef": {"title": "Quarterly review", "description": "Q1 2024 for the board"},
                    "rank": 0,
                    "thumbnail": {"qStaticContentUrlDef": {}},
                    "qChildListDef": {"qData": {"title": "/title", "rank": "/rank"}},
                 },
                 "meta": _sheet_meta("2024-04-03T10:00:00.000Z"),
                 "children": [
                     {"properties": {
                         "qInfo": {"qId": "sLdWq01", "qType": "slide"},
                         "qMetaDef": {},
                         "title": "Revenue", "rank": 0,
                         "qChildListDef": {"qData": {"title": "/title"}},
                     }},
                 ]},
                {"properties": {
                    "qInfo": {"qId": "tGpSjmW", "qType": "masterobject"},
                    "qMetaDef": {"title": "Revenue by country", "description": "Bar chart, sorted by revenue",
                                 "tags": ["sales"]},
                    "visualization": "barchart",
                    "title": "Revenue by country",
                    "qHyperCubeDef": _chart("x", "barchart", "", ["hRZaKk"], ["fJQTmw"])["properties"]["qHyperCubeDef"],
                 },
                 "meta": {"privileges": _PRIVILEGES, "published": True, "approved": True, "owner": _OWNER}},
                {"properties": {
                    "qInfo": {"qId": "AppPropsList", "qType": "appprops"},
                    "qMetaDef": {},
                    "sheetTitleBgColor": "#ffffff",
                    "sheetTitleGradientColor": "#ffffff",
                    "sheetTitleColor": "#404040",
                    "sheetLogoThumbnail": {"qStaticContentUrlDef": {
                        "qUrl": "/appcontent/" + SALES_APP_ID + "/company-logo.png"}},
                    "sheetLogoPosition": "left",
                    "theme": "sense",
                 }},
                {"properties": {
                    "qInfo": {"qId": "5e0a2c4b-6d8f-4a1c-9e3b-7f5d1a3c5e77", "qType": "snapshot"},
                    "qMetaDef": {"title": "Revenue by country, April 2024"},
                    "title": "Revenue by country, April 2024",
                    "libraryTitle": "Revenue by country",
                    "description": "",
                    "sourceObjectId": "XmHwaQ",
                    "visualizationType": "barchart",
                    "timestamp": 1714550400000,
                    "isClone": False,
                    "snapshotData": {"object": {"size": {"w": 902, "h": 377}}, "isZoomed": False},
                 },
                 "meta": {"privileges": _PRIVILEGES, "published": True, "approved": True}},
            ],
            "dimensions": [
                {"properties": {
                    "qInfo": {"qId": "hRZaKk", "qType": "dimension"},
                    "qDim": {"qGrouping": "N", "qFieldDefs": ["Country"], "qFieldLabels": [""],
                             "title": "Country", "coloring": {}},
                    "qMetaDef": {"title": "Country", "description": "Customer country", "tags": ["geo"]},
                 },
                 "meta": {"privileges": _PRIVILEGES, "published": True, "approved": True,
                          "createdDate": "2023-11-02T09:35:00.000Z"}},
                {"properties": {
                    "qInfo": {"qId": "PbJkqv", "qType": "dimension"},
                    "qDim": {"qGrouping": "H", "qFieldDefs": ["Category", "ProductName"],
                             "qFieldLabels": ["", ""], "title": "Product drill-down"},
                    "qMetaDef": {"title": "Product drill-down", "description": "Category, then product",
                                 "tags": []},
                 },
                 "meta": {"privileges": _PRIVILEGES, "published": True, "approved": True,
                          "createdDate": "2023-11-02T09:36:00.000Z"}},
            ],
            "measures": [
                {"properties": {
                    "qInfo": {"qId": "fJQTmw", "qType": "measure"},
                    "qMeasure": {"qLabel": "Revenue", "qDef": "Sum(Amount)", "qGrouping": "N",
                                 "qExpressions": [], "qActiveExpression": 0,
                                 "qNumFormat": {"qType": "M", "qnDec": 2, "qUseThou": 1,
                                                "qFmt": "$#,##0.00;-$#,##0.00", "qDec": ".", "qThou": ","}},
                    "qMetaDef": {"title": "Revenue", "description": "Quantity times unit price",
                                 "tags": ["sales"]},
                 },
                 "meta": {"privileges": _PRIVILEGES, "published": True, "approved": True}},
                {"properties": {
                    "qInfo": {"qId": "nmKPtX", "qType": "measure"},
                    "qMeasure": {"qLabel": "Orders", "qDef": "Count(DISTINCT OrderID)", "qGrouping": "N",
                                 "qExpressions": [], "qActiveExpression": 0},
                    "qMetaDef": {"title": "Orders", "description": "", "tags": []},
                 },
                 "meta": {"privileges": _PRIVILEGES, "published": True, "approved": True}},
            ],
            "bookmarks": [
                {"properties": {
                    "qInfo": {"qId": "0c7e9a2b-4f6d-4b8a-8c1e-3a5b7d9f1e43", "qType": "bookmark"},
                    "qMetaDef": {"title": "Nordics 2024", "description": "Sweden, Norway, Denmark, Finland"},
                    "creationDate": "2024-04-12T10:15:00.000Z",
                    "sheetId": "b7d3a4e2-3c1f-4e8a-9d2b-6f5e4c3b2a10",
                    "selectionFields": "Country, OrderDate",
                 },
                 "meta": {"privileges": _PRIVILEGES, "published": True, "approved": False},
                 "layout": {"qBookmark": {"qId": "0c7e9a2b-4f6d-4b8a-8c1e-3a5b7d9f1e43",
                                          "qStateData": [{"qStateName": "$", "qFieldItems": [
                                              {"qDef": {"qName": "Country"}, "qSelectInfo": {
                                                  "qTextSearch": "", "qRangeLo": "NaN", "qRangeHi": "NaN",
                                                  "qNumberFormat": {}, "qRangeInfo": [], "qSoftLock": False,
                                                  "qContinuousRangeInfo": []},
                                               "qValues": [], "qExcludedValues": []}]}],
                                          "qUtcModifyTime": 45394.42708, "qUtcRecallTime": 45394.42708}}},
                {"properties": {
                    "qInfo": {"qId": "1d8f0b3c-5a7e-4c9b-9d2f-4b6c8e0a2f54", "qType": "bookmark"},
                    "qMetaDef": {"title": "Top products", "description": ""},
                    "creationDate": "2024-04-20T07:55:31.000Z",
                    "sheetId": "c8e4b5f3-4d2a-4f9b-8e3c-7a6f5d4c3b21",
                    "selectionFields": "Category",
                 },
                 "meta": {"privileges": _PRIVILEGES, "published": False}},
            ],
            "variables": [
                {"properties": {
                    "qInfo": {"qId": "f3a5c7e9-1b2d-4f4a-8c6e-0a2b4c6d8e65", "qType": "variable"},
                    "qMetaDef": {},
                    "qName": "vCurrentYear",
                    "qComment": "The calendar year to show by default",
                    "qNumberPresentation": {"qType": "U", "qnDec": 10, "qUseThou": 0},
                    "qIncludeInBookmark": False,
                    "qDefinition": "=Year(Today())",
                 },
                 "text": "2024", "num": 2024},
                {"properties": {
                    "qInfo": {"qId": "a4b6d8f0-2c3e-4a5b-9d7f-1b3c5d7e9f76", "qType": "variable"},
                    "qMetaDef": {},
                    "qName": "vTargetRevenue",
                    "qComment": "Yearly revenue target",
                    "qNumberPresentation": {"qType": "U", "qnDec": 10, "qUseThou": 0},
                    "qIncludeInBookmark": False,
                    "qDefinition": "1500000",
                 },
                 "text": "1500000", "num": 1500000},
                {"properties": {
                    "qInfo": {"qId": "b5c7e9a1-3d4f-4b6c-8e0a-2c4d6e8f0a87", "qType": "variable"},
                    "qMetaDef": {},
                    "qName": "ThousandSep",
                    "qComment": "",
                    "qNumberPresentation": {"qType": "U", "qnDec": 10, "qUseThou": 0},
                    "qIncludeInBookmark": False,
                    "qDefinition": ",",
                 },
                 "text": ",", "reserved": True, "script_created": True},
            ],
            "reload_log": [
                "Started loading data",
                "",
                "Connecting to SalesDB (qlik_sa)",
                "Connected",
                "Orders << orders",
                "Lines fetched: 48,213",
                "Customers << customers",
                "Lines fetched: 1,204",
                "Products << Products",
                "Lines fetched: 312",
                "",
                "Creating search index",
                "Search index creation completed successfully",
                "",
                "App saved",
                "",
                "Finished successfully",
                "0 forced error(s)",
                "0 synthetic key(s)",
            ],
        },
        {
            "id": FINANCE_APP_ID,
            "name": "Finance reporting",
            "file_size": 40960,
            "file_time": 45400.25,
            "last_reload_time": "2024-04-18T05:00:41.000Z",
            "reload_fails": True,
            "meta": {
                "createdDate": "2023-06-12T08:00:00.000Z",
                "modifiedDate": "2024-04-18T05:00:42.000Z",
                "published": True,
                "publishTime": "2023-06-13T08:00:00.000Z",
                "privileges": _PRIVILEGES,
                "description": "General ledger by period",
                "qFileSize": 40960,
                "dynamicColor": "",
                "stream": {"id": "d2b8a7c4-6e1f-4b3a-9c5d-0e7f8a9b1c2d", "name": "Finance"},
                "canCreateDataConnections": True,
            },
            "properties": {
                "qTitle": "Finance reporting",
                "qLastReloadTime": "2024-04-18T05:00:41.000Z",
                "qThumbnail": {},
                "description": "General ledger by period",
                "theme": "sense",
            },
            "script": _FINANCE_SCRIPT,
            "connections": [
                {"qId": "c5e3a7b9-4d6f-4e8a-8b2c-3d5f7b9c1e23", "qName": "Finance DW",
                 "qConnectionString": "\\\\fileserver01\\finance\\qvd\\",
                 "qType": "folder", "qMeta": {"name": "Finance DW"},
                 "qModifiedDate": "2023-06-12T08:05:00.000Z"},
            ],
            "lineage": [{"qDiscriminator": "lib://Finance DW/ledger.qvd", "qStatement": ""}],
            "fields": [
                {"qName": "AccountID", "qSrcTables": ["Ledger"], "qTags": ["$numeric", "$integer"], "qCardinal": 410},
                {"qName": "Period", "qSrcTables": ["Ledger"], "qTags": ["$ascii", "$text"], "qCardinal": 36},
                {"qName": "Amount", "qSrcTables": ["Ledger"], "qTags": ["$numeric"], "qCardinal": 20113},
            ],
            "media": [],
            "objects": [
                {"properties": {
                    "qInfo": {"qId": "e0a6d7b5-6f4c-4b1d-8a5e-9c8b7f6e5d43", "qType": "sheet"},
                    "qMetaDef": {"title": "Ledger", "description": ""},
                    "rank": 0, "thumbnail": {"qStaticContentUrlDef": {}},
                    "columns": 24, "rows": 12,
                    "cells": [{"name": "pTbLdg", "type": "table", "col": 0, "row": 0,
                               "colspan": 24, "rowspan": 12}],
                    "qChildListDef": {"qData": {"title": "/title"}},
                 },
                 "meta": _sheet_meta("2023-06-12T08:30:00.000Z"),
                 "children": [_chart("pTbLdg", "table", "Ledger")]},
                {"properties": {"qInfo": {"qId": "AppPropsList", "qType": "appprops"},
                                "qMetaDef": {}, "theme": "sense"}},
            ],
            "dimensions": [],
            "measures": [],
            "bookmarks": [],
            "variables": [
                {"properties": {
                    "qInfo": {"qId": "c6d8f0a2-4e5a-4c7d-9f1b-3d5e7f9a1b98", "qType": "variable"},
                    "qMetaDef": {}, "qName": "ThousandSep", "qComment": "",
                    "qNumberPresentation": {"qType": "U", "qnDec": 10, "qUseThou": 0},
                    "qIncludeInBookmark": False, "qDefinition": ",",
                 },
                 "text": ",", "reserved": True, "script_created": True},
            ],
            "reload_log": [
                "Started loading data",
                "",
                "Ledger << ledger",
                "The following error occurred:",
                "Field 'Amoutn' not found",
                "",
                "The error occurred here:",
                "Ledger: LOAD AccountID, Period, Amoutn FROM [lib://Finance DW/ledger.qvd] (qvd)",
                "",
                "Data has not been loaded. Please correct the error and try loading again.",
            ],
            "reload_error": {
                "qErrorString": "Field 'Amoutn' not found",
                "qLineEnd": "",
                "qLine": "Ledger: LOAD AccountID, Period, Amoutn FROM [lib://Finance DW/ledger.qvd] (qvd)",
                "qErrorDataCode": 11,
            },
        },
        {
            "id": EMPTY_APP_ID,
            "name": "Empty app",
            "file_size": 2048,
            "file_time": 45410.5,
            "last_reload_time": "",
            "meta": {
                "createdDate": "2024-04-28T13:37:00.000Z",
                "modifiedDate": "2024-04-28T13:37:00.000Z",
                "published": False,
                "privileges": _PRIVILEGES,
                "description": "",
                "qFileSize": 2048,
                "dynamicColor": "",
                "canCreateDataConnections": True,
            },
            "properties": {"qTitle": "Empty app", "qThumbnail": {}},
            "script": "",
            "connections": [], "lineage": [], "fields": [], "media": [],
            "objects": [], "dimensions": [], "measures": [], "bookmarks": [], "variables": [],
            "reload_log": ["Started loading data", "", "App saved", "", "Finished successfully"],
        },
        {
            "id": OPS_APP_ID,
            "name": "Operations monitor",
            "file_size": 65536,
            "file_time": 45412.9,
            "last_reload_time": "2024-04-30T22:00:05.000Z",
            "meta": {
                "createdDate": "2024-01-08T11:00:00.000Z",
                "modifiedDate": "2024-04-30T22:00:06.000Z",
                "published": True,
                "publishTime": "2024-01-09T11:00:00.000Z",
                "privileges": _PRIVILEGES,
                "description": "Reload task history",
                "qFileSize": 65536,
                "dynamicColor": "",
                "stream": {"id": "f1e2d3c4-b5a6-4978-8a9b-0c1d2e3f4a5c", "name": "Monitoring apps"},
                "canCreateDataConnections": True,
            },
            "properties": {"qTitle": "Operations monitor",
                           "qLastReloadTime": "2024-04-30T22:00:05.000Z",
                           "qThumbnail": {}, "description": "Reload task history"},
            "script": _OPS_SCRIPT,
            "connections": [
                {"qId": "d6f4b8c0-5e7a-4f9b-9c3d-4e6a8c0d2f34", "qName": "DataFiles",
                 "qConnectionString": "C:\\ProgramData\\Qlik\\Sense\\Apps\\DataFiles\\",
                 "qType": "folder", "qMeta": {"name": "DataFiles"}},
            ],
            "lineage": [{"qDiscriminator": "lib://DataFiles/task_history.csv", "qStatement": ""}],
            "fields": [
                {"qName": "TaskName", "qSrcTables": ["Tasks"], "qTags": ["$text"], "qCardinal": 42},
                {"qName": "Status", "qSrcTables": ["Tasks"], "qTags": ["$ascii", "$text"], "qCardinal": 4},
                {"qName": "Duration", "qSrcTables": ["Tasks"], "qTags": ["$numeric"], "qCardinal": 4011},
            ],
            "media": [],
            "objects": [
                {"properties": {
                    "qInfo": {"qId": "f7b3c9d1-8a2e-4f6b-9c0d-1e2f3a4b5c66", "qType": "sheet"},
                    "qMetaDef": {"title": "Task history", "description": ""},
                    "rank": 0, "thumbnail": {"qStaticContentUrlDef": {}},
                    "columns": 24, "rows": 12,
                    "cells": [{"name": "lnDurTk", "type": "linechart", "col": 0, "row": 0,
                               "colspan": 24, "rowspan": 12}],
                    "qChildListDef": {"qData": {"title": "/title"}},
                 },
                 "meta": _sheet_meta("2024-01-08T11:20:00.000Z"),
                 "children": [_chart("lnDurTk", "linechart", "Duration per day")]},
            ],
            "dimensions": [], "measures": [], "bookmarks": [], "variables": [],
            "reload_log": ["Started loading data", "", "Tasks << task_history", "Lines fetched: 8,022",
                           "", "App saved", "", "Finished successfully"],
        },
    ],
}

# --------------------------------------------------------------------------
# Constants of the protocol
# --------------------------------------------------------------------------

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_MESSAGE = 16 * 1024 * 1024        # bigger messages are closed with 1009
MAX_UPGRADE_REQUEST = 16 * 1024       # the upgrade request's header block
HANDSHAKE_TIMEOUT = 10.0              # TLS handshake and upgrade request
CLOSE_WAIT = 2.0                      # for the client's close frame
WRITE_TIMEOUT = 10.0                  # for a client that does not read
DEFAULT_RELOAD_MS = 200

# Close codes a peer may send (RFC 6455 7.4 and the IANA registry).
_VALID_CLOSE_CODES = set(range(1000, 1004)) | set(range(1007, 1015)) | set(range(3000, 5000))

_LOCALE_INFO = {
    "qDecimalSep": ".", "qThousandSep": ",", "qListSep": ",",
    "qMoneyDecimalSep": ".", "qMoneyThousandSep": ",", "qCurrentYear": 2024,
    "qMoneyFmt": "$#,##0.00;-$#,##0.00", "qTimeFmt": "h:mm:ss TT", "qDateFmt": "M/D/YYYY",
    "qTimestampFmt": "M/D/YYYY h:mm:ss[.fff] TT",
    "qCalendarStrings": {
        "qDayNames": ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
        "qMonthNames": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                        "Nov", "Dec"],
        "qLongDayNames": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
                          "Sunday"],
        "qLongMonthNames": ["January", "February", "March", "April", "May", "June", "July",
                            "August", "September", "October", "November", "December"],
    },
    "qFirstWeekDay": 6, "qBrokenWeeks": True, "qReferenceDay": 0, "qFirstMonthOfYear": 1,
    "qCollation": "en-US",
}

# Definitions the engine turns into computed parts of a layout.
_LIST_DEFS = {
    "qChildListDef": "qChildList",
    "qAppObjectListDef": "qAppObjectList",
    "qDimensionListDef": "qDimensionList",
    "qMeasureListDef": "qMeasureList",
    "qBookmarkListDef": "qBookmarkList",
    "qVariableListDef": "qVariableList",
    "qFieldListDef": "qFieldList",
    "qMediaListDef": "qMediaList",
    "qHyperCubeDef": "qHyperCube",
    "qListObjectDef": "qListObject",
}


def _log(verbose, text):
    if verbose:
        sys.stderr.write("fake-engine: " + text + "\n")
        sys.stderr.flush()


def _now_iso():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _pointer(doc, path):
    """Resolves a JSON pointer ("/qMetaDef/title"); returns (found, value)."""
    if path in ("", "/"):
        return True, doc
    if not isinstance(path, str) or not path.startswith("/"):
        return False, None
    cur = doc
    for part in path[1:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return False, None
    return True, cur


class _RpcError(Exception):
    """A JSON-RPC error answer: {"code", "parameter", "message"}."""

    def __init__(self, code, parameter, message):
        super().__init__(message)
        self.error = {"code": code, "parameter": parameter, "message": message}


def _invalid_params(detail):
    return _RpcError(-32602, detail, "Invalid Params")


# --------------------------------------------------------------------------
# The app model: look-ups and layouts
# --------------------------------------------------------------------------

class _App:
    """One app of the data set, indexed. `record` is the data set's dict
    (shared, so that a reload's new qLastReloadTime is seen by everyone)."""

    def __init__(self, record):
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            raise ValueError("every app needs a string \"id\"")
        self.record = record
        self.id = record["id"]
        self.name = record.get("name", self.id)
        self.objects = {}        # qId -> object record, sheets' children included
        self.parents = {}        # qId -> the parent's qId
        for obj in record.get("objects", []):
            self._add_object(obj, None)
        self.dimensions = self._index("dimensions")
        self.measures = self._index("measures")
        self.bookmarks = self._index("bookmarks")
        self.variables = self._index("variables")

    def _add_object(self, obj, parent):
        qid = obj["properties"]["qInfo"]["qId"]
        self.objects[qid] = obj
        if parent is not None:
            self.parents[qid] = parent
        for child in obj.get("children", []):
            self._add_object(child, qid)

    def _index(self, key):
        return {r["properties"]["qInfo"]["qId"]: r for r in self.record.get(key, [])}

    @property
    def reload_fails(self):
        return bool(self.record.get("reload_fails"))

    @property
    def last_reload_time(self):
        return self.record.get("last_reload_time", "")

    def fields(self):
        return self.record.get("fields", [])

    def field(self, name):
        for f in self.fields():
            if f.get("qName") == name:
                return f
        return None

    def snapshots(self):
        return {q: o for q, o in self.objects.items()
                if o["properties"]["qInfo"].get("qType") == "snapshot"}

    # -- answers of the Doc class -------------------------------------------

    def doc_list_entry(self):
        rec = self.record
        meta = {"title": self.name}
        meta.update(copy.deepcopy(rec.get("meta", {})))
        entry = {"qDocName": self.name, "qConnectedUsers": 0,
                 "qFileTime": rec.get("file_time", 0), "qFileSize": rec.get("file_size", 0),
                 "qDocId": self.id, "qMeta": meta}
        if self.last_reload_time:
            entry["qLastReloadTime"] = self.last_reload_time
        entry["qTitle"] = self.name
        entry["qThumbnail"] = copy.deepcopy(rec.get("properties", {}).get("qThumbnail", {}))
        return entry

    def app_properties(self):
        prop = copy.deepcopy(self.record.get("properties", {}))
        prop.setdefault("qTitle", self.name)
        if self.last_reload_time:
            prop["qLastReloadTime"] = self.last_reload_time
        return prop

    def app_layout(self, no_data):
        rec = self.record
        prop = self.app_properties()
        layout = {"qTitle": self.name, "qFileName": self.id}
        if self.last_reload_time:
            layout["qLastReloadTime"] = self.last_reload_time
        layout.update({
            "qModified": False,
            "qHasScript": bool(rec.get("script")),
            "qStateNames": [],
            "qMeta": copy.deepcopy(rec.get("meta", {})),
            "qLocaleInfo": copy.deepcopy(_LOCALE_INFO),
            "qHasData": bool(self.fields()) and not no_data,
            "qReadOnly": False,
            "qIsOpenedWithoutData": bool(no_data),
            "qThumbnail": prop.get("qThumbnail", {}),
            "qUsage": "ANALYTICS",
        })
        for key, value in prop.items():   # custom app properties show up too
            if not key.startswith("q"):
                layout[key] = value
        return layout

    def all_infos(self):
        infos = [copy.deepcopy(o["properties"]["qInfo"]) for o in self.objects.values()]
        for group in (self.dimensions, self.measures, self.bookmarks, self.variables):
            infos.extend(copy.deepcopy(r["properties"]["qInfo"]) for r in group.values())
        return infos


def _meta(rec):
    meta = copy.deepcopy(rec["properties"].get("qMetaDef") or {})
    meta.update(copy.deepcopy(rec.get("meta", {})))
    meta.setdefault("privileges", list(_PRIVILEGES))
    return meta


def _qdata(app, rec, qdata_def, layout_of):
    """Evaluates a list definition's qData (name -> JSON pointer) for one
    item: properties first, then the item's layout."""
    if not isinstance(qdata_def, dict):
        return {}
    out = {}
    layout = None
    for key, path in qdata_def.items():
        if isinstance(path, dict):
            out[key] = _qdata(app, rec, path, layout_of)
            continue
        found, value = _pointer(rec["properties"], path)
        if not found:
            if layout is None:
                layout = layout_of(app, rec)
            found, value = _pointer(layout, path)
        out[key] = copy.deepcopy(value) if found else None
    return out


def _entry(app, rec, qdata_def, layout_of):
    """Returns a list item (NxContainerEntry): qInfo, qMeta, qData."""
    return {"qInfo": copy.deepcopy(rec["properties"]["qInfo"]), "qMeta": _meta(rec),
            "qData": _qdata(app, rec, qdata_def, layout_of)}


def _hypercube(app, hc):
    dims, measures = [], []
    for d in hc.get("qDimensions", []):
        lib = app.dimensions.get(d.get("qLibraryId") or "")
        qdef = lib["properties"]["qDim"] if lib else d.get("qDef", {})
        fields = qdef.get("qFieldDefs", [])
        title = (qdef.get("title") if lib else None) or (fields[0] if fields else "")
        f = app.field(fields[0]) if fields else None
        dims.append({"qFallbackTitle": title, "qApprMaxGlyphCount": 0,
                     "qCardinal": f.get("qCardinal", 0) if f else 0,
                     "qSortIndicator": "A", "qGroupFallbackTitles": [title], "qGroupPos": 0,
                     "qTags": list(f.get("qTags", [])) if f else [],
                     "qDimensionType": "D", "qGrouping": qdef.get("qGrouping", "N"),
                     "qGroupFieldDefs": list(fields), "qLibraryId": d.get("qLibraryId", "")})
    for m in hc.get("qMeasures", []):
        lib = app.measures.get(m.get("qLibraryId") or "")
        label = lib["properties"]["qMeasure"].get("qLabel") if lib else m.get("qDef", {}).get("qLabel", "")
        measures.append({"qFallbackTitle": label, "qApprMaxGlyphCount": 0, "qCardinal": 0,
                         "qSortIndicator": "D", "qMin": "NaN", "qMax": "NaN",
                         "qLibraryId": m.get("qLibraryId", "")})
    rows = dims[0]["qCardinal"] if dims else (1 if measures else 0)
    return {"qStateName": "$", "qSize": {"qcx": len(dims) + len(measures), "qcy": rows},
            "qDimensionInfo": dims, "qMeasureInfo": measures,
            "qEffectiveInterColumnSortOrder": list(range(len(dims) + len(measures))),
            "qGrandTotalRow": [], "qDataPages": [], "qPivotDataPages": [], "qStackedDataPages": [],
            "qMode": hc.get("qMode", "S"), "qNoOfLeftDims": -1, "qTreeNodesOnDim": [],
            "qColumnOrder": []}


def _generic_layout(app, rec, session=None):
    """Returns the layout of a generic object (app object, session object,
    dimension, measure, bookmark): its properties without the definitions,
    plus qMeta and the computed lists."""
    props = rec["properties"]
    layout = {k: copy.deepcopy(v) for k, v in props.items()
              if k != "qMetaDef" and k not in _LIST_DEFS}
    layout["qMeta"] = _meta(rec)
    qtype = props.get("qInfo", {}).get("qType")
    if qtype == "dimension":
        infos = []
        for name in props.get("qDim", {}).get("qFieldDefs", []):
            f = app.field(name) or {}
            info = {"qApprMaxGlyphCount": len(name), "qCardinal": f.get("qCardinal", 0),
                    "qTags": list(f.get("qTags", []))}
            infos.append(info)
        layout["qDimInfos"] = infos
    elif qtype not in ("measure", "bookmark", "snapshot"):
        layout["qSelectionInfo"] = {}
    for def_key, list_key in _LIST_DEFS.items():
        if def_key in props:
            layout[list_key] = _computed_list(app, rec, def_key, props[def_key], session)
    layout.update(copy.deepcopy(rec.get("layout", {})))
    return layout


def _variable_layout(app, rec, session=None):
    props = rec["properties"]
    layout = {"qInfo": copy.deepcopy(props["qInfo"]), "qMeta": _meta(rec),
              "qText": rec.get("text", props.get("qDefinition", ""))}
    if "num" in rec:
        layout["qNum"] = rec["num"]
    if rec.get("script_created"):
        layout["qIsScriptCreated"] = True
    return layout


def _computed_list(app, rec, def_key, definition, session):
    definition = definition if isinstance(definition, dict) else {}
    qdata = definition.get("qData", {})
    if def_key == "qChildListDef":
        children = rec.get("children", [])
        return {"qItems": [_entry(app, c, qdata, _generic_layout) for c in children]}
    if def_key == "qAppObjectListDef":
        qtype = definition.get("qType", "")
        return {"qItems": [_entry(app, o, qdata, _generic_layout) for o in app.objects.values()
                           if o["properties"]["qInfo"].get("qType") == qtype]}
    if def_key == "qDimensionListDef":
        return {"qItems": [_entry(app, d, qdata, _generic_layout)
                           for d in app.dimensions.values()]}
    if def_key == "qMeasureListDef":
        return {"qItems": [_entry(app, m, qdata, _generic_layout)
                           for m in app.measures.values()]}
    if def_key == "qBookmarkListDef":
        qtype = definition.get("qType", "bookmark")
        source = app.snapshots() if qtype == "snapshot" else app.bookmarks
        return {"qItems": [_entry(app, b, qdata, _generic_layout) for b in source.values()]}
    if def_key == "qVariableListDef":
        items = []
        for v in app.variables.values():
            if v.get("reserved") and not definition.get("qShowReserved"):
                continue
            if v.get("config") and not definition.get("qShowConfig"):
                continue
            p = v["properties"]
            item = {"qName": p.get("qName", ""), "qDefinition": p.get("qDefinition", "")}
            if p.get("qComment"):
                item["qDescription"] = p["qComment"]
            # The engine leaves out flags that are false.
            for flag, key in (("reserved", "qIsReserved"), ("config", "qIsConfig"),
                              ("script_created", "qIsScriptCreated")):
                if v.get(flag):
                    item[key] = True
            item.update(_entry(app, v, qdata, _variable_layout))
            items.append(item)
        return {"qItems": items}
    if def_key == "qFieldListDef":
        items = []
        for f in app.fields():
            if f.get("qIsSystem") and not definition.get("qShowSystem"):
                continue
            if f.get("qIsHidden") and not f.get("qIsSystem") and not definition.get("qShowHidden"):
                continue
            if f.get("qIsSemantic") and not definition.get("qShowSemantic"):
                continue
            item = copy.deepcopy(f)
            if not definition.get("qShowSrcTables"):
                item.pop("qSrcTables", None)
            items.append(item)
        return {"qItems": items}
    if def_key == "qMediaListDef":
        return {"qItems": copy.deepcopy(app.record.get("media", []))}
    if def_key == "qHyperCubeDef":
        return _hypercube(app, definition)
    if def_key == "qListObjectDef":
        return {"qStateName": "$", "qSize": {"qcx": 1, "qcy": 0}, "qDimensionInfo": {},
                "qDataPages": []}
    return {}


def _property_tree(rec):
    entry = {"qProperty": copy.deepcopy(rec["properties"]),
             "qChildren": [_property_tree(c) for c in rec.get("children", [])]}
    return entry


# --------------------------------------------------------------------------
# JSON-RPC: one session per WebSocket connection
# --------------------------------------------------------------------------

class _Handle:
    def __init__(self, number, qtype, app, rec=None, layout_of=None):
        self.number = number
        self.qtype = qtype           # "Doc", "GenericObject", ...
        self.app = app
        self.rec = rec               # object record, None for the Doc
        self.layout_of = layout_of

    def q_return(self):
        ret = {"qType": self.qtype, "qHandle": self.number}
        if self.rec is not None:
            ret["qGenericType"] = self.rec["properties"]["qInfo"].get("qType", "")
            ret["qGenericId"] = self.rec["properties"]["qInfo"]["qId"]
        else:
            ret["qGenericId"] = self.app.id
        return ret


class _Reload:
    def __init__(self, request_id, app, duration, fails):
        self.request_id = request_id
        self.app = app
        self.started = time.monotonic()
        self.duration = duration
        self.fails = fails
        self.lines = list(app.record.get("reload_log") or ["Started loading data"])
        self.cursor = 0
        self.finished = False
        self.timer = None


_NULL_RETURN = {"qReturn": {"qType": None, "qHandle": None}}

# Parameter specs: (name, kind, required, default).
_S = "str"
_I = "int"
_B = "bool"
_O = "object"


class _Session:
    """The engine side of one connection: handles, the open doc, reloads."""

    def __init__(self, engine, conn, user):
        self.engine = engine
        self.conn = conn
        self.user = user             # (directory, id) from X-Qlik-User
        self.lock = threading.Lock()
        self.handles = {}
        self.next_handle = 1
        self.doc = None
        self.no_data = False
        self.open_objects = {}       # (qtype, qId) -> handle number
        self.session_objects = {}    # qId -> record
        self.reloads = {}            # request id -> _Reload
        self.latest_reload = None
        self.stalled = 0
        self.session_counter = 0

    # -- plumbing -------------------------------------------------------------

    def _new_handle(self, qtype, app, rec=None, layout_of=None):
        number = self.next_handle
        self.next_handle += 1
        handle = _Handle(number, qtype, app, rec, layout_of)
        self.handles[number] = handle
        return handle

    def _object_handle(self, qtype, app, rec, layout_of):
        key = (qtype, rec["properties"]["qInfo"]["qId"])
        number = self.open_objects.get(key)
        if number in self.handles:
            return {"qReturn": self.handles[number].q_return()}
        handle = self._new_handle(qtype, app, rec, layout_of)
        self.open_objects[key] = handle.number
        return {"qReturn": handle.q_return()}

    def send_result(self, rid, result, extra=None):
        msg = {"jsonrpc": "2.0", "id": rid, "result": result}
        if extra:
            msg.update(extra)
        self.conn.post_json(msg)

    def send_error(self, rid, error):
        self.conn.post_json({"jsonrpc": "2.0", "id": rid, "error": error})

    # -- one message ------------------------------------------------------------

    def handle_text(self, text):
        """Handles one text message. Raises _Abort for a scripted close."""
        eng = self.engine
        try:
            msg = json.loads(text)
        except ValueError as exc:
            eng._record_request(self.conn, {"id": None, "handle": None, "method": None,
                                            "params": None, "raw": text[:2000]})
            eng.log(f"#{self.conn.number} malformed JSON -> -32700")
            self.send_error(None, {"code": -32700, "parameter": str(exc), "message": "Parse error"})
            return
        if not isinstance(msg, dict):
            eng._record_request(self.conn, {"id": None, "handle": None, "method": None,
                                            "params": None, "raw": text[:2000]})
            eng.log(f"#{self.conn.number} not a request object -> -32600")
            self.send_error(None, {"code": -32600, "parameter": "not a request object",
                                   "message": "Invalid Request"})
            return
        rid = msg.get("id")
        has_id = "id" in msg
        method = msg.get("method")
        handle = msg.get("handle")
        params = msg.get("params")
        eng._record_request(self.conn, {"id": copy.deepcopy(rid), "handle": copy.deepcopy(handle),
                                        "method": copy.deepcopy(method),
                                        "params": copy.deepcopy(params)})
        try:
            if has_id and (isinstance(rid, bool) or not isinstance(rid, (int, str))):
                rid = None
                raise _RpcError(-32600, "id must be a number or a string", "Invalid Request")
            if msg.get("jsonrpc") != "2.0":
                raise _RpcError(-32600, "jsonrpc must be \"2.0\"", "Invalid Request")
            if not isinstance(method, str) or not method:
                raise _RpcError(-32600, "method is missing", "Invalid Request")
            if isinstance(handle, bool) or not isinstance(handle, int):
                raise _RpcError(-32600, "handle is missing", "Invalid Request")
            script = eng._take_method_script(method)
            if script is not None:
                self._scripted(script, rid, has_id, method, handle)
                return
            result = self._dispatch(rid, has_id, handle, method, params)
        except _RpcError as err:
            eng.log(f"#{self.conn.number} {method} id={rid} handle={handle} -> "
                    f"error {err.error['code']}")
            if has_id:
                self.send_error(rid, err.error)
            return
        if result is None:           # answered later (DoReload)
            return
        eng.log(f"#{self.conn.number} {method} id={rid} handle={handle} -> result")
        if has_id:
            self.send_result(rid, result)

    def _scripted(self, script, rid, has_id, method, handle):
        eng = self.engine
        kind = script["kind"]
        eng.log(f"#{self.conn.number} {method} id={rid} handle={handle} -> scripted {kind}")
        if kind == "stall":
            self.stalled += 1
            return
        if kind == "close":
            raise _Abort()
        if not has_id:
            return
        if kind == "result":
            self.send_result(rid, copy.deepcopy(script["result"]))
        else:
            self.send_error(rid, copy.deepcopy(script["body"]))

    def _dispatch(self, rid, has_id, number, method, params):
        if number == -1:
            qtype, handle = "Global", None
        else:
            with self.lock:
                handle = self.handles.get(number)
            if handle is None:
                raise _RpcError(-32600, "Invalid handle", "Invalid Request")
            qtype = handle.qtype
        entry = _METHODS[qtype].get(method)
        if entry is None:
            raise _RpcError(-32601, method, "Method not found")
        spec, fn = entry
        args = _bind(spec, params)
        if fn is _Session.do_reload:
            return fn(self, handle, args, rid, has_id)
        return fn(self, handle, args)

    # -- Global ---------------------------------------------------------------

    def get_doc_list(self, _h, _a):
        return {"qDocList": [app.doc_list_entry() for app in self.engine._app_list()]}

    def open_doc(self, _h, a):
        with self.lock:
            if self.doc is not None:
                raise _RpcError(1002, a["qDocName"], "App already open")
            app = self.engine._app(a["qDocName"])
            if app is None:
                raise _RpcError(1003, a["qDocName"], "App not found")
            self.doc = self._new_handle("Doc", app)
            self.no_data = bool(a["qNoData"])
            return {"qReturn": self.doc.q_return()}

    def get_active_doc(self, _h, _a):
        with self.lock:
            if self.doc is None:
                return copy.deepcopy(_NULL_RETURN)
            return {"qReturn": self.doc.q_return()}

    def get_progress(self, _h, a):
        with self.lock:
            rid = a["qRequestId"]
            reload = self.reloads.get(rid) if rid != 0 else self.latest_reload
            if reload is None:
                return {"qProgressData": _progress_data(False, False, 0, 0, 0, "", "", [])}
            elapsed = time.monotonic() - reload.started
            lines = reload.lines
            if reload.finished:
                upto, frac = len(lines), 1.0
            else:
                frac = min(elapsed / reload.duration, 0.99) if reload.duration > 0 else 0.99
                upto = max(1, min(len(lines) - 1, int(len(lines) * frac)))
            # Like the engine: each call returns the persistent lines that
            # are new since the previous call.
            new = lines[reload.cursor:upto] if upto > reload.cursor else []
            reload.cursor = max(reload.cursor, upto)
            transient = ""
            if not reload.finished:
                loading = [ln for ln in lines[:upto] if "<<" in ln]
                transient = (f"{loading[-1]} {int(frac * 10000):,} Lines fetched" if loading
                             else lines[upto - 1] or "Loading")
            errors = []
            if reload.finished and reload.fails:
                err = reload.app.record.get("reload_error") or {
                    "qErrorString": "The reload failed", "qLineEnd": "", "qLine": "",
                    "qErrorDataCode": 11}
                errors = [copy.deepcopy(err)]
            return {"qProgressData": _progress_data(True, reload.finished, upto, len(lines),
                                                    int(elapsed * 1000), "\n".join(new),
                                                    transient, errors)}

    def engine_version(self, _h, _a):
        return {"qVersion": {"qComponentVersion": self.engine._data.get("engine_version",
                                                                        "12.1823.0")}}

    def is_desktop_mode(self, _h, _a):
        return {"qReturn": False}

    def get_authenticated_user(self, _h, _a):
        return {"qReturn": f"UserDirectory={self.user[0]}; UserId={self.user[1]}"}

    def product_version(self, _h, _a):
        return {"qReturn": self.engine._data.get("product_version", "14.173.3")}

    def qt_product(self, _h, _a):
        return {"qReturn": "Qlik Sense"}

    def os_name(self, _h, _a):
        return {"qReturn": "windows"}

    # -- Doc ------------------------------------------------------------------

    def get_app_properties(self, h, _a):
        return {"qProp": h.app.app_properties()}

    def get_app_layout(self, h, _a):
        return {"qLayout": h.app.app_layout(self.no_data)}

    def get_script(self, h, _a):
        return {"qScript": h.app.record.get("script", "")}

    def get_all_infos(self, h, _a):
        return {"qInfos": h.app.all_infos()}

    def get_connections(self, h, _a):
        return {"qConnections": copy.deepcopy(h.app.record.get("connections", []))}

    def get_connection(self, h, a):
        for c in h.app.record.get("connections", []):
            if c.get("qId") == a["qConnectionId"]:
                return {"qConnection": copy.deepcopy(c)}
        raise _RpcError(2, a["qConnectionId"], "Connection not found")

    def get_lineage(self, h, _a):
        return {"qLineage": copy.deepcopy(h.app.record.get("lineage", []))}

    def create_session_object(self, h, a):
        prop = copy.deepcopy(a["qProp"])
        info = prop.get("qInfo")
        if not isinstance(info, dict) or not isinstance(info.get("qType"), str) \
                or not info["qType"]:
            raise _invalid_params("qProp.qInfo.qType is missing")
        with self.lock:
            if not info.get("qId"):
                self.session_counter += 1
                info["qId"] = f"{info['qType']}-session-{self.session_counter}"
            rec = {"properties": prop}
            self.session_objects[info["qId"]] = rec
            handle = self._new_handle("GenericObject", h.app, rec, _generic_layout)
            self.open_objects[("GenericObject", info["qId"])] = handle.number
            return {"qReturn": handle.q_return()}

    def destroy_session_object(self, _h, a):
        with self.lock:
            rec = self.session_objects.pop(a["qId"], None)
            if rec is None:
                return {"qSuccess": False}
            for number in [n for n, x in self.handles.items() if x.rec is rec]:
                del self.handles[number]
            self.open_objects.pop(("GenericObject", a["qId"]), None)
            return {"qSuccess": True}

    def get_object(self, h, a):
        with self.lock:
            rec = self.session_objects.get(a["qId"]) or h.app.objects.get(a["qId"])
            if rec is None:
                return copy.deepcopy(_NULL_RETURN)
            return self._object_handle("GenericObject", h.app, rec, _generic_layout)

    def _get_from(self, h, group, qid, qtype, layout_of):
        with self.lock:
            rec = group.get(qid)
            if rec is None:
                return copy.deepcopy(_NULL_RETURN)
            return self._object_handle(qtype, h.app, rec, layout_of)

    def get_dimension(self, h, a):
        return self._get_from(h, h.app.dimensions, a["qId"], "GenericDimension", _generic_layout)

    def get_measure(self, h, a):
        return self._get_from(h, h.app.measures, a["qId"], "GenericMeasure", _generic_layout)

    def get_bookmark(self, h, a):
        group = dict(h.app.bookmarks)
        group.update(h.app.snapshots())
        return self._get_from(h, group, a["qId"], "GenericBookmark", _generic_layout)

    def get_variable_by_id(self, h, a):
        return self._get_from(h, h.app.variables, a["qId"], "GenericVariable", _variable_layout)

    def get_variable_by_name(self, h, a):
        by_name = {v["properties"].get("qName"): v for v in h.app.variables.values()}
        rec = by_name.get(a["qName"])
        if rec is None:
            return copy.deepcopy(_NULL_RETURN)
        with self.lock:
            return self._object_handle("GenericVariable", h.app, rec, _variable_layout)

    def get_objects(self, h, a):
        opts = a["qOptions"]
        types = opts.get("qTypes") or None
        recs = list(h.app.objects.values())
        if opts.get("qIncludeSessionObjects"):
            with self.lock:
                recs += list(self.session_objects.values())
        return {"qList": [_entry(h.app, r, opts.get("qData", {}), _generic_layout) for r in recs
                          if types is None or r["properties"]["qInfo"].get("qType") in types]}

    def get_bookmarks(self, h, a):
        opts = a["qOptions"]
        types = opts.get("qTypes") or ["bookmark"]
        recs = []
        if "bookmark" in types:
            recs += list(h.app.bookmarks.values())
        if "snapshot" in types:
            recs += list(h.app.snapshots().values())
        return {"qList": [_entry(h.app, r, opts.get("qData", {}), _generic_layout) for r in recs]}

    def do_reload(self, h, a, rid, has_id):
        if a["qMode"] not in (0, 1, 2):
            raise _invalid_params("qMode must be 0, 1 or 2")
        eng = self.engine
        duration = eng._reload_seconds(h.app)
        reload = _Reload(rid, h.app, duration, h.app.reload_fails)
        with self.lock:
            if rid is not None:
                self.reloads[rid] = reload
            self.latest_reload = reload
        eng.log(f"#{self.conn.number} DoReload id={rid} handle={h.number} -> reloading "
                f"{h.app.id} for {int(duration * 1000)} ms")

        def finish():
            with self.lock:
                reload.finished = True
                changed = sorted(self.handles)
            ok = not reload.fails
            if ok:
                eng._reloaded(h.app)
            eng.log(f"#{self.conn.number} DoReload id={rid} -> qReturn {str(ok).lower()}")
            if has_id:
                self.send_result(rid, {"qReturn": ok}, {"change": changed} if ok else None)

        reload.timer = threading.Timer(duration, finish)
        reload.timer.daemon = True
        reload.timer.start()
        self.conn.timers.append(reload.timer)
        return None

    def do_save(self, _h, _a):
        return {}

    # -- generic objects ------------------------------------------------------

    def get_layout(self, h, _a):
        return {"qLayout": h.layout_of(h.app, h.rec, self)}

    def get_properties(self, h, _a):
        return {"qProp": copy.deepcopy(h.rec["properties"])}

    def get_effective_properties(self, h, _a):
        return {"qProp": copy.deepcopy(h.rec["properties"])}

    def get_info(self, h, _a):
        return {"qInfo": copy.deepcopy(h.rec["properties"]["qInfo"])}

    def get_full_property_tree(self, h, _a):
        return {"qPropEntry": _property_tree(h.rec)}

    def get_child_infos(self, h, _a):
        return {"qInfos": [copy.deepcopy(c["properties"]["qInfo"])
                           for c in h.rec.get("children", [])]}

    def get_raw_content(self, h, _a):
        return {"qReturn": h.rec["properties"].get("qDefinition", "")}


def _progress_data(started, finished, completed, total, millis, persistent, transient, errors):
    return {"qStarted": started, "qFinished": finished, "qCompleted": completed,
            "qTotal": total, "qKB": 0, "qMillisecs": millis, "qUserInteractionWanted": False,
            "qPersistentProgress": persistent, "qTransientProgress": transient,
            "qErrorData": errors, "qPersistentProgressMessages": [],
            "qTransientProgressMessage": {}}


def _check_kind(name, kind, value):
    if kind == _S:
        ok = isinstance(value, str)
    elif kind == _I:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == _B:
        ok = isinstance(value, bool)
    elif kind == _O:
        ok = isinstance(value, dict)
    else:
        ok = True
    if not ok:
        names = {_S: "a string", _I: "an integer", _B: "a boolean", _O: "an object"}
        raise _invalid_params(f"{name} must be {names.get(kind, 'valid')}")


def _bind(spec, params):
    """Binds positional or named params to `spec`; raises -32602."""
    names = [s[0] for s in spec]
    if params is None:
        given = {}
    elif isinstance(params, list):
        if len(params) > len(spec):
            raise _invalid_params(f"expected at most {len(spec)} parameters, got {len(params)}")
        given = dict(zip(names, params))
    elif isinstance(params, dict):
        unknown = [k for k in params if k not in names]
        if unknown:
            raise _invalid_params(f"unknown parameter {unknown[0]}")
        given = params
    else:
        raise _invalid_params("params must be an array or an object")
    out = {}
    for name, kind, required, default in spec:
        value = given.get(name)
        if value is None:
            if required:
                raise _invalid_params(f"{name} is missing")
            out[name] = default
            continue
        _check_kind(name, kind, value)
        out[name] = value
    return out


_OBJECT_METHODS = {
    "GetLayout": ([], _Session.get_layout),
    "GetProperties": ([], _Session.get_properties),
    "GetInfo": ([], _Session.get_info),
}

_METHODS = {
    "Global": {
        "GetDocList": ([], _Session.get_doc_list),
        "OpenDoc": ([("qDocName", _S, True, None), ("qUserName", _S, False, ""),
                     ("qPassword", _S, False, ""), ("qSerial", _S, False, ""),
                     ("qNoData", _B, False, False)], _Session.open_doc),
        "GetActiveDoc": ([], _Session.get_active_doc),
        "GetProgress": ([("qRequestId", _I, True, None)], _Session.get_progress),
        "EngineVersion": ([], _Session.engine_version),
        "IsDesktopMode": ([], _Session.is_desktop_mode),
        "GetAuthenticatedUser": ([], _Session.get_authenticated_user),
        "ProductVersion": ([], _Session.product_version),
        "QTProduct": ([], _Session.qt_product),
        "OSName": ([], _Session.os_name),
    },
    "Doc": {
        "GetAppProperties": ([], _Session.get_app_properties),
        "GetAppLayout": ([], _Session.get_app_layout),
        "GetScript": ([], _Session.get_script),
        "GetAllInfos": ([], _Session.get_all_infos),
        "GetConnections": ([], _Session.get_connections),
        "GetConnection": ([("qConnectionId", _S, True, None)], _Session.get_connection),
        "GetLineage": ([], _Session.get_lineage),
        "CreateSessionObject": ([("qProp", _O, True, None)], _Session.create_session_object),
        "DestroySessionObject": ([("qId", _S, True, None)], _Session.destroy_session_object),
        "GetObject": ([("qId", _S, True, None)], _Session.get_object),
        "GetObjects": ([("qOptions", _O, True, None)], _Session.get_objects),
        "GetDimension": ([("qId", _S, True, None)], _Session.get_dimension),
        "GetMeasure": ([("qId", _S, True, None)], _Session.get_measure),
        "GetBookmark": ([("qId", _S, True, None)], _Session.get_bookmark),
        "GetBookmarks": ([("qOptions", _O, True, None)], _Session.get_bookmarks),
        "GetVariableById": ([("qId", _S, True, None)], _Session.get_variable_by_id),
        "GetVariableByName": ([("qName", _S, True, None)], _Session.get_variable_by_name),
        "DoReload": ([("qMode", _I, False, 0), ("qPartial", _B, False, False),
                      ("qDebug", _B, False, False)], _Session.do_reload),
        "DoSave": ([("qFileName", _S, False, "")], _Session.do_save),
    },
    "GenericObject": dict(_OBJECT_METHODS, **{
        "GetFullPropertyTree": ([], _Session.get_full_property_tree),
        "GetChildInfos": ([], _Session.get_child_infos),
        "GetEffectiveProperties": ([], _Session.get_effective_properties),
    }),
    "GenericDimension": dict(_OBJECT_METHODS),
    "GenericMeasure": dict(_OBJECT_METHODS),
    "GenericBookmark": dict(_OBJECT_METHODS),
    "GenericVariable": dict(_OBJECT_METHODS, **{
        "GetRawContent": ([], _Session.get_raw_content),
    }),
}


# --------------------------------------------------------------------------
# WebSocket (RFC 6455), server side, over TLS
# --------------------------------------------------------------------------

class _ProtocolError(Exception):
    """The client broke the WebSocket protocol: close with `code`."""

    def __init__(self, code, reason):
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Abort(Exception):
    """Close the connection at once, without a close frame."""


def _frame(opcode, payload):
    """Returns one unmasked, final server frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def _close_payload(code, reason=""):
    return struct.pack("!H", code) + reason.encode("utf-8")[:120]


def _unmask(data, key):
    n = len(data)
    if n == 0:
        return b""
    k = (bytes(key) * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def _parse_qlik_user(value):
    """Returns (directory, user) from `UserDirectory=X; UserId=Y`, or None."""
    parts = {}
    for item in (value or "").split(";"):
        if "=" in item:
            key, val = item.split("=", 1)
            parts[key.strip().lower()] = val.strip()
    if parts.get("userdirectory") and parts.get("userid"):
        return parts["userdirectory"], parts["userid"]
    return None


def _peer_cn(sock):
    try:
        cert = sock.getpeercert() or {}
    except (ValueError, OSError):
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 426: "Upgrade Required",
            431: "Request Header Fields Too Large", 500: "Internal Server Error",
            502: "Bad Gateway", 503: "Service Unavailable"}


class _Connection:
    """One client connection: TLS handshake, upgrade, then frames. A single
    thread owns the socket; other threads (reload timers, stop, reset) hand
    it frames through a queue and wake it through a socket pair."""

    def __init__(self, engine, raw, number):
        self.engine = engine
        self.raw = raw
        self.number = number
        self.sock = None
        self.record = None
        self.session = None
        self.wake_r, self.wake_w = socket.socketpair()
        self.out = collections.deque()
        self.out_lock = threading.Lock()
        self.closed = False
        self.abort_requested = False
        self.going_away = False
        self.timers = []
        self.inbuf = bytearray()
        self.frag_opcode = None
        self.frag = bytearray()
        self.closing_deadline = None   # set once the server sent a close frame
        self.done = False
        self.listed = False            # its record is in /calls

    # -- called from other threads ------------------------------------------

    def _wake(self):
        try:
            self.wake_w.send(b"x")
        except OSError:
            pass

    def post(self, data):
        with self.out_lock:
            if self.closed:
                return
            self.out.append(data)
        self._wake()

    def post_json(self, obj):
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        self.post(_frame(0x1, text.encode("utf-8")))

    def abort(self):
        self.abort_requested = True
        self._wake()
        if self.session is None:
            # Still in the TLS handshake or the upgrade, in blocking calls:
            # shutting the socket down ends them.
            try:
                self.raw.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def go_away(self):
        self.going_away = True
        self._wake()

    def has_stalled(self):
        return self.session is not None and self.session.stalled > 0

    # -- the connection's thread ---------------------------------------------

    def run(self):
        eng = self.engine
        try:
            try:
                self.raw.settimeout(HANDSHAKE_TIMEOUT)
                sock = eng._tls.wrap_socket(self.raw, server_side=True,
                                            do_handshake_on_connect=False)
                self.sock = sock
                sock.do_handshake()
            except (ssl.SSLError, OSError, ValueError) as exc:
                eng._handshake_failed(self.number, exc)
                return
            if self._upgrade(_peer_cn(sock)):
                self._ws_loop()
        except _Abort:
            self._abrupt_close()
        except Exception as exc:  # a fake must not die on a bad peer
            eng.log(f"#{self.number} connection error: {exc!r}")
        finally:
            self._finish()

    def _finish(self):
        with self.out_lock:
            self.closed = True
        for t in self.timers:
            t.cancel()
        for s in (self.sock, self.raw, self.wake_r, self.wake_w):
            try:
                if s is not None:
                    s.close()
            except OSError:
                pass
        self.engine._connection_done(self)

    def _abrupt_close(self):
        target = self.sock or self.raw
        try:
            target.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.engine.log(f"#{self.number} closed abruptly")

    # -- the upgrade ------------------------------------------------------------

    def _read_request(self):
        """Reads the upgrade request; returns (request line, headers, rest)
        or None if the client went away. Raises ValueError if malformed."""
        buf = b""
        while b"\r\n\r\n" not in buf:
            if len(buf) > MAX_UPGRADE_REQUEST:
                raise OverflowError("request header too large")
            try:
                chunk = self.sock.recv(4096)
            except (OSError, ssl.SSLError):
                return None
            if not chunk:
                return None
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("iso-8859-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            raise ValueError("bad request line")
        headers = {}
        for line in lines[1:]:
            if ":" not in line:
                raise ValueError("bad header line")
            name, value = line.split(":", 1)
            name, value = name.strip().lower(), value.strip()
            headers[name] = headers[name] + ", " + value if name in headers else value
        return parts, headers, rest

    def _refuse(self, status, body=None, headers=None):
        if body is None:
            body = _REASONS.get(status, "Refused")
        if isinstance(body, (dict, list)):
            data, ctype = json.dumps(body).encode("utf-8"), "application/json"
        else:
            data, ctype = str(body).encode("utf-8"), "text/plain; charset=utf-8"
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
                 f"Content-Type: {ctype}", f"Content-Length: {len(data)}", "Connection: close"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        # Recorded before the answer goes out: a client that reads /calls
        # after the answer sees it.
        self.engine._set_record(self, status=status)
        try:
            self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("iso-8859-1") + data)
        except (OSError, ssl.SSLError):
            pass
        self.engine.log(f"#{self.number} upgrade refused with {status}")

    def _upgrade(self, cn):
        eng = self.engine
        try:
            req = self._read_request()
        except OverflowError:
            self._refuse(431)
            return False
        except ValueError:
            self._refuse(400)
            return False
        if req is None:
            eng.log(f"#{self.number} closed before the upgrade request")
            return False
        (method, target, _version), headers, rest = req
        self.record = {"connection": self.number, "path": target, "headers": headers,
                       "client_cert_cn": cn, "status": None, "requests": [],
                       "closed_cleanly": False, "close_code": None, "open": True}
        eng._add_record(self)
        eng.log(f"#{self.number} {method} {target} (client certificate CN={cn})")
        script = eng._take_upgrade_script()
        if script is not None:
            if script["kind"] == "stall":
                eng.log(f"#{self.number} upgrade stalled (scripted)")
                self._wait_for_abort()
                raise _Abort()
            if script["kind"] == "close":
                eng._set_record(self, open=False)
                raise _Abort()
            self._refuse(script["status"], script.get("body"), script.get("headers"))
            return False
        path = target.split("?", 1)[0]
        if method != "GET":
            self._refuse(405)
            return False
        if not path.startswith("/app/"):
            self._refuse(404)
            return False
        tokens = [t.strip().lower() for t in headers.get("connection", "").split(",")]
        if headers.get("upgrade", "").lower() != "websocket" or "upgrade" not in tokens:
            self._refuse(400, "not a WebSocket upgrade")
            return False
        if headers.get("sec-websocket-version") != "13":
            self._refuse(426, "unsupported WebSocket version", {"Sec-WebSocket-Version": "13"})
            return False
        key = headers.get("sec-websocket-key", "")
        try:
            if len(base64.b64decode(key, validate=True)) != 16:
                raise ValueError(key)
        except ValueError:
            self._refuse(400, "bad Sec-WebSocket-Key")
            return False
        user = _parse_qlik_user(headers.get("x-qlik-user"))
        if user is None:
            self._refuse(403, "X-Qlik-User header missing or malformed")
            return False
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode("ascii")).digest())
        eng._set_record(self, status=101)
        self.sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        self.inbuf += rest
        self.session = _Session(eng, self, user)
        self.post_json({"jsonrpc": "2.0", "method": "OnConnected",
                        "params": {"qSessionState": "SESSION_CREATED"}})
        return True

    def _wait_for_abort(self):
        while not self.abort_requested and not self.going_away:
            r, _, _ = select.select([self.sock, self.wake_r], [], [])
            if self.wake_r in r:
                self._drain_wake()
            if self.sock in r:
                try:
                    if not self.sock.recv(4096):
                        return
                except ssl.SSLWantReadError:
                    continue
                except (OSError, ssl.SSLError):
                    return

    def _drain_wake(self):
        try:
            self.wake_r.recv(4096)
        except OSError:
            pass

    # -- frames -----------------------------------------------------------------

    def _write_all(self, data):
        view = memoryview(data)
        deadline = time.monotonic() + WRITE_TIMEOUT
        while view:
            try:
                n = self.sock.send(view)
                view = view[n:]
                continue
            except ssl.SSLWantWriteError:
                wait = ([], [self.sock])
            except ssl.SSLWantReadError:
                wait = ([self.sock], [])
            left = deadline - time.monotonic()
            if left <= 0:
                raise OSError("the client does not read")
            select.select(wait[0], wait[1], [], left)

    def _flush(self):
        while True:
            with self.out_lock:
                if not self.out:
                    return
                data = self.out.popleft()
            self._write_all(data)

    def _send_close(self, code, reason):
        self.post(_frame(0x8, _close_payload(code, reason)))
        self._flush()
        self.closing_deadline = time.monotonic() + CLOSE_WAIT

    def _ws_loop(self):
        eng = self.engine
        self.sock.setblocking(False)
        while not self.done:
            if self.abort_requested:
                self._flush()
                raise _Abort()
            if self.going_away and self.closing_deadline is None:
                eng._set_record(self, close_code=1001)
                self._send_close(1001, "server stopping")
                self.closing_deadline = time.monotonic() + 0.5
            self._flush()
            timeout = None
            if self.closing_deadline is not None:
                timeout = self.closing_deadline - time.monotonic()
                if timeout <= 0:
                    eng.log(f"#{self.number} no close frame from the client")
                    raise _Abort()
            if self.sock.pending() == 0:
                r, _, _ = select.select([self.sock, self.wake_r], [], [], timeout)
                if self.wake_r in r:
                    self._drain_wake()
                if self.sock not in r:
                    continue
            try:
                data = self.sock.recv(65536)
            except ssl.SSLWantReadError:
                continue
            except ssl.SSLWantWriteError:
                select.select([], [self.sock], [], 1.0)
                continue
            except (OSError, ssl.SSLError) as exc:
                eng.log(f"#{self.number} connection lost: {exc}")
                return
            if not data:
                eng.log(f"#{self.number} connection closed without a close frame")
                return
            self.inbuf += data
            try:
                self._process_frames()
            except _ProtocolError as err:
                if self.closing_deadline is not None:
                    raise _Abort()
                eng.log(f"#{self.number} protocol error, closing with {err.code}: {err.reason}")
                eng._set_record(self, close_code=err.code)
                # Frame boundaries are lost: only a close frame sent after
                # ours can still be read.
                del self.inbuf[:]
                self.frag_opcode, self.frag = None, bytearray()
                self._send_close(err.code, err.reason)
        self._flush()
        self._tls_shutdown()

    def _tls_shutdown(self):
        try:
            self.sock.settimeout(1.0)
            self.sock.unwrap()
        except (OSError, ssl.SSLError, ValueError):
            pass

    def _next_frame(self):
        buf = self.inbuf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        fin, rsv, opcode = bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F
        masked, n = bool(b1 & 0x80), b1 & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                return None
            n = struct.unpack("!H", buf[2:4])[0]
            pos = 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n = struct.unpack("!Q", buf[2:10])[0]
            pos = 10
            if n >> 63:
                raise _ProtocolError(1002, "bad payload length")
        if rsv:
            raise _ProtocolError(1002, "reserved bits set")
        if opcode not in (0x0, 0x1, 0x2, 0x8, 0x9, 0xA):
            raise _ProtocolError(1002, f"unknown opcode {opcode}")
        if not masked:
            raise _ProtocolError(1002, "client frames must be masked")
        if opcode >= 0x8:
            if not fin:
                raise _ProtocolError(1002, "fragmented control frame")
            if n > 125:
                raise _ProtocolError(1002, "control frame too long")
        elif (len(self.frag) if opcode == 0x0 else 0) + n > MAX_MESSAGE:
            raise _ProtocolError(1009, "message too big")
        end = pos + 4 + n
        if len(buf) < end:
            return None
        payload = _unmask(bytes(buf[pos + 4:end]), buf[pos:pos + 4])
        del buf[:end]
        return fin, opcode, payload

    def _process_frames(self):
        while not self.done:
            frame = self._next_frame()
            if frame is None:
                return
            fin, opcode, payload = frame
            if opcode == 0x8:
                self._on_close(payload)
                return
            if self.closing_deadline is not None:
                continue          # closing: only the close frame matters
            if opcode == 0x9:
                self.post(_frame(0xA, payload))
            elif opcode == 0xA:
                pass
            elif opcode == 0x0:
                if self.frag_opcode is None:
                    raise _ProtocolError(1002, "continuation frame without a message")
                self.frag += payload
                if fin:
                    op, data = self.frag_opcode, bytes(self.frag)
                    self.frag_opcode, self.frag = None, bytearray()
                    self._on_message(op, data)
            else:
                if self.frag_opcode is not None:
                    raise _ProtocolError(1002, "new message inside a fragmented one")
                if fin:
                    self._on_message(opcode, payload)
                else:
                    self.frag_opcode, self.frag = opcode, bytearray(payload)

    def _on_message(self, opcode, data):
        if opcode == 0x2:
            raise _ProtocolError(1003, "binary messages are not supported")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise _ProtocolError(1007, "invalid UTF-8") from None
        self.session.handle_text(text)
        self._flush()

    def _on_close(self, payload):
        eng = self.engine
        if self.closing_deadline is not None:
            self.done = True       # the answer to our close frame
            return
        code, valid, reason = None, True, ""
        if len(payload) == 1:
            valid = False
        elif len(payload) >= 2:
            code = struct.unpack("!H", payload[:2])[0]
            try:
                reason = payload[2:].decode("utf-8")
            except UnicodeDecodeError:
                valid = False
            if code not in _VALID_CLOSE_CODES:
                valid = False
        if valid:
            eng._set_record(self, closed_cleanly=True, close_code=code)
            eng.log(f"#{self.number} client closed with {code} {reason!r}".rstrip())
            self.post(_frame(0x8, struct.pack("!H", code) if code is not None else b""))
        else:
            eng._set_record(self, close_code=1002)
            eng.log(f"#{self.number} client sent a bad close frame")
            self.post(_frame(0x8, _close_payload(1002, "bad close frame")))
        self._flush()
        self.done = True


# --------------------------------------------------------------------------
# Scripts and the control API
# --------------------------------------------------------------------------

def _normalise_script(spec):
    """Validates one script; returns it with "kind" (error, result, stall,
    close, refuse) and "left". Raises ValueError."""
    if not isinstance(spec, dict):
        raise ValueError("a script is a JSON object")
    match = spec.get("match")
    if not isinstance(match, str) or not match:
        raise ValueError("match must be a non-empty string")
    times = spec.get("times", 1)
    if isinstance(times, bool) or not isinstance(times, int) or times < 1:
        raise ValueError("times must be a positive integer")
    out = {"match": match, "times": times, "left": times}
    if spec.get("stall") is True:
        out["kind"] = "stall"
    elif spec.get("close") is True:
        out["kind"] = "close"
    elif match == "UPGRADE":
        status = spec.get("status", 403)
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599 \
                or status == 101:
            raise ValueError("status must be an HTTP status to refuse the upgrade with")
        headers = spec.get("headers", {})
        if not isinstance(headers, dict):
            raise ValueError("headers must be an object")
        out.update(kind="refuse", status=status, headers={str(k): str(v) for k, v in headers.items()})
        if "body" in spec:
            out["body"] = spec["body"]
    elif "body" in spec:
        body = spec["body"]
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except ValueError:
                pass
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON-RPC error object")
        out.update(kind="error", body=body)
    elif "result" in spec:
        out.update(kind="result", result=spec["result"])
    else:
        raise ValueError("a script needs body, result, stall or close")
    if match != "UPGRADE":
        try:
            out["regex"] = re.compile(match)
        except re.error as exc:
            raise ValueError(f"bad regex: {exc}") from None
    return out


class _ControlHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-engine-control"
    sys_version = ""
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # BaseHTTPRequestHandler API
        self.server.engine.log("control: " + (fmt % args))

    def _send(self, status, obj):
        data = json.dumps(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self):  # noqa: N802 - BaseHTTPRequestHandler API
        eng = self.server.engine
        path = self.path.split("?", 1)[0]
        if path == "/calls":
            self._send(200, eng.calls())
        elif path == "/handshake_failures":
            self._send(200, eng._handshake_report())
        elif path == "/scripts":
            self._send(200, eng.scripts())
        else:
            self._send(404, {"error": f"no such control endpoint: {path}"})

    def do_POST(self):  # noqa: N802
        eng = self.server.engine
        path = self.path.split("?", 1)[0]
        body = self._body()
        if path == "/script":
            try:
                spec = json.loads(body.decode("utf-8") or "null")
                eng.script(*(spec if isinstance(spec, list) else [spec]))
            except (ValueError, UnicodeDecodeError) as exc:
                self._send(400, {"error": str(exc)})
                return
            self._send(200, {"ok": True})
        elif path == "/reset":
            eng.reset()
            self._send(200, {"ok": True})
        else:
            self._send(404, {"error": f"no such control endpoint: {path}"})


class _ControlServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, engine, address):
        self.engine = engine
        super().__init__(address, _ControlHandler)

    def handle_error(self, request, client_address):
        pass  # a client that goes away mid-request is not our error


# --------------------------------------------------------------------------
# The fake engine
# --------------------------------------------------------------------------

class FakeEngine:
    """The fake Qlik Engine; see the module doc. Thread-safe."""

    def __init__(self, cert, key, ca, data=None, port=0, control_port=0, reload_ms=None,
                 verbose=True, host="127.0.0.1"):
        self.cert, self.key, self.ca = cert, key, ca
        self.host = host
        self.verbose = verbose
        self._want_port = port
        self._want_control_port = control_port
        if isinstance(data, (str, os.PathLike)):
            with open(data, encoding="utf-8") as f:
                data = json.load(f)
        self._original = copy.deepcopy(DEFAULT_DATA if data is None else data)
        if not isinstance(self._original, dict) or not isinstance(self._original.get("apps"), list):
            raise ValueError("the data set needs an \"apps\" array")
        self._reload_ms = reload_ms
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._records = []
        self._scripts = []
        self._failures = []
        self._connections = set()
        self._counter = 0
        self._load_data()
        self._tls = None
        self._listener = None
        self._control = None
        self._threads = []
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = None, None
        self.port = None
        self.control_port = None

    # -- life cycle ---------------------------------------------------------

    def start(self):
        """Listens on the service and control ports; returns self."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.cert, self.key)
        ctx.load_verify_locations(cafile=self.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
        self._tls = ctx
        self._stopping.clear()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self._want_port))
        listener.listen(64)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._control = _ControlServer(self, (self.host, self._want_control_port))
        self.control_port = self._control.server_address[1]
        self._wake_r, self._wake_w = socket.socketpair()
        for target, name in ((self._accept_loop, "accept"),
                             (lambda: self._control.serve_forever(poll_interval=0.1), "control")):
            t = threading.Thread(target=target, name=f"fake-engine-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        self.log(f"listening on {self.host}:{self.port}, control port {self.control_port}")
        return self

    def stop(self):
        """Closes every connection and both ports. Idempotent."""
        if self._listener is None:
            return
        self._stopping.set()
        try:
            self._wake_w.send(b"x")
        except OSError:
            pass
        self._control.shutdown()
        for t in self._threads:
            t.join(5.0)
        self._threads = []
        self._control.server_close()
        self._listener.close()
        for s in (self._wake_r, self._wake_w):
            s.close()
        with self._lock:
            conns = list(self._connections)
        for c in conns:
            if c.session is not None and not c.has_stalled():
                c.go_away()
            else:
                c.abort()
        with self._lock:
            self._changed.wait_for(lambda: not self._connections, timeout=5.0)
        self._listener = None
        self.log("stopped")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept_loop(self):
        while not self._stopping.is_set():
            r, _, _ = select.select([self._listener, self._wake_r], [], [])
            if self._stopping.is_set():
                return
            if self._listener not in r:
                continue
            try:
                raw, _addr = self._listener.accept()
            except OSError:
                continue
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._counter += 1
                conn = _Connection(self, raw, self._counter)
                self._connections.add(conn)
            threading.Thread(target=conn.run, name=f"fake-engine-conn-{conn.number}",
                             daemon=True).start()

    # -- the control API, also for in-process use -------------------------

    def calls(self):
        """Returns a copy of the connection records, oldest first."""
        with self._lock:
            return copy.deepcopy(self._records)

    def wait_for(self, predicate, timeout=5.0):
        """Waits until predicate(calls) is true; returns it (falsy on
        timeout)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                result = predicate(copy.deepcopy(self._records))
                left = deadline - time.monotonic()
                if result or left <= 0:
                    return result
                self._changed.wait(left)

    def script(self, *specs, **spec):
        """Adds scripts (dicts as for POST /script, or keyword arguments for
        one). Raises ValueError for a bad one (and adds none)."""
        specs = list(specs) + ([spec] if spec else [])
        normalised = [_normalise_script(s) for s in specs]
        with self._lock:
            self._scripts.extend(normalised)

    def scripts(self):
        with self._lock:
            return [{k: v for k, v in s.items() if k != "regex"} for s in self._scripts]

    def reset(self):
        """Forgets calls, scripts and handshake failures, restores the data
        set and closes connections that hold stalled requests."""
        with self._lock:
            self._records = []
            self._scripts = []
            self._failures = []
            self._load_data()
            conns = list(self._connections)
            for c in conns:
                c.listed = False
            self._changed.notify_all()
        for c in conns:
            if c.session is None or c.has_stalled():
                c.abort()
        self.log("reset")

    def handshake_failures(self):
        with self._lock:
            return len(self._failures)

    # -- internals ------------------------------------------------------------

    def log(self, text):
        _log(self.verbose, text)

    def _load_data(self):
        self._data = copy.deepcopy(self._original)
        self._apps = {}
        for record in self._data["apps"]:
            app = _App(record)
            self._apps[app.id] = app

    def _app(self, app_id):
        with self._lock:
            return self._apps.get(app_id)

    def _app_list(self):
        with self._lock:
            return list(self._apps.values())

    def _reload_seconds(self, app):
        ms = app.record.get("reload_ms")
        if ms is None:
            ms = self._reload_ms
        if ms is None:
            ms = self._data.get("reload_ms", DEFAULT_RELOAD_MS)
        return max(0.0, float(ms) / 1000.0)

    def _reloaded(self, app):
        with self._lock:
            app.record["last_reload_time"] = _now_iso()

    def _handshake_failed(self, number, exc):
        with self._lock:
            self._failures.append(str(exc))
            self._changed.notify_all()
        self.log(f"#{number} TLS handshake failed: {exc}")

    def _handshake_report(self):
        with self._lock:
            return {"count": len(self._failures), "errors": list(self._failures)}

    def _add_record(self, conn):
        with self._lock:
            conn.listed = True
            self._records.append(conn.record)
            self._changed.notify_all()

    def _set_record(self, conn, **fields):
        with self._lock:
            if conn.record is not None:
                conn.record.update(fields)
            self._changed.notify_all()

    def _record_request(self, conn, entry):
        with self._lock:
            conn.record["requests"].append(entry)
            if not conn.listed:
                # A connection that outlived a reset shows up again with
                # the requests made since.
                conn.record = dict(conn.record, requests=[entry])
                conn.listed = True
                self._records.append(conn.record)
            self._changed.notify_all()

    def _connection_done(self, conn):
        with self._lock:
            if conn.record is not None:
                conn.record["open"] = False
            self._connections.discard(conn)
            self._changed.notify_all()

    def _take_method_script(self, method):
        with self._lock:
            for s in self._scripts:
                if s["match"] != "UPGRADE" and s["regex"].search(method):
                    return self._use(s)
        return None

    def _take_upgrade_script(self):
        with self._lock:
            for s in self._scripts:
                if s["match"] == "UPGRADE":
                    return self._use(s)
        return None

    def _use(self, s):
        s["left"] -= 1
        if s["left"] <= 0:
            self._scripts.remove(s)
        return s


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------

def _write_port_file(path, ports):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(ports, f)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description="A fake Qlik Sense Engine (JSON-RPC over wss).")
    parser.add_argument("--cert", required=True, help="server certificate (PEM)")
    parser.add_argument("--key", required=True, help="server key (PEM)")
    parser.add_argument("--ca", required=True, help="CA that signs accepted client certificates")
    parser.add_argument("--port-file", required=True,
                        help="where to write {\"port\": ..., \"control_port\": ...}")
    parser.add_argument("--port", type=int, default=0, help="service port (0: a free one)")
    parser.add_argument("--control-port", type=int, default=0, help="control port (0: a free one)")
    parser.add_argument("--data", help="JSON file replacing the built-in data set")
    parser.add_argument("--reload-ms", type=int, default=None,
                        help=f"how long DoReload takes (default: the data set's, {DEFAULT_RELOAD_MS})")
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    args = parser.parse_args(argv)

    stop = threading.Event()

    def on_signal(_signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        engine = FakeEngine(args.cert, args.key, args.ca, data=args.data, port=args.port,
                            control_port=args.control_port, reload_ms=args.reload_ms,
                            verbose=not args.quiet)
        engine.start()
    except (OSError, ssl.SSLError, ValueError) as exc:
        sys.stderr.write(f"fake-engine: cannot start: {exc}\n")
        return 2
    try:
        _write_port_file(args.port_file, {"port": engine.port, "control_port": engine.control_port})
        while not stop.wait(1.0):
            pass
    finally:
        engine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

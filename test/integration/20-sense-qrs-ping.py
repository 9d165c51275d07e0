#!/usr/bin/env python3
"""senseQRSPing against the fake QRS over TLS with client certificates made
at test time: GET /senseQRSPing answers 200 {"response":"QRS reachable",
"version":<the fake's /qrs/about buildVersion>}; the fake saw exactly one
GET /qrs/about per ping, with an xrfkey query equal to X-Qlik-Xrfkey (16
letters and digits, a fresh one per call), X-Qlik-User and the other
configQRS.headers.static headers and Butler's client certificate (its CN);
another
version in the fake's data comes back as given; POST answers 405."""

import re
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

XRFKEY = re.compile(r"[A-Za-z0-9]{16}")


def check_about_call(call, what):
    h.check_eq((call["method"], call["path"], call["status"]),
               ("GET", "/qrs/about", 200), f"{what}: GET /qrs/about, 200")
    key = call["query"].get("xrfkey")
    h.check(key is not None and XRFKEY.fullmatch(key), f"{what}: xrfkey is "
            "16 letters and digits", repr(call["query"]))
    h.check_eq(call["headers"].get("x-qlik-xrfkey"), key,
               f"{what}: X-Qlik-Xrfkey equals the xrfkey query")
    h.check_eq(call["headers"].get("x-qlik-user"), h.SENSE_USER,
               f"{what}: X-Qlik-User from configQRS.headers.static")
    h.check_eq(call["client_cert_cn"], h.CLIENT_CN,
               f"{what}: Butler presented its client certificate")
    return key


def test(ctx):
    certs = h.make_sense_certs(h.scratch_dir("certs"))
    qrs = h.start_fake_qrs(certs)
    port = h.free_port()
    cfg = h.sense_config(port, certs, qrs_port=qrs.port,
                         flags=("senseQRSPing",))
    cfg["Butler"]["configQRS"]["headers"]["static"].append(
        {"name": "X-Butler-Site", "value": "test site 1"})
    h.Butler(ctx.butler, cfg).start()

    res = h.http_request(port, "GET", "/senseQRSPing")
    h.check_eq((res.status, res.json, list(res.json or {})),
               (200, {"response": "QRS reachable", "version": "30.4.2.0"},
                ["response", "version"]),
               "GET /senseQRSPing answers 200 with the fake's buildVersion")
    calls = h.wait_qrs_calls(qrs, 1, "the about call")
    h.check_eq(len(calls), 1, "one QRS call per ping")
    first = check_about_call(calls[0], "first ping")
    h.check_eq(calls[0]["headers"].get("x-butler-site"), "test site 1",
               "every static header is sent")

    res = h.http_request(port, "GET", "/senseQRSPing/")
    h.check_eq(res.status, 200, "a trailing slash is accepted too")
    calls = h.wait_qrs_calls(qrs, 2, "the second about call")
    h.check_eq(len(calls), 2, "again one QRS call")
    second = check_about_call(calls[1], "second ping")
    h.check(first != second, "each QRS call has its own Xrfkey",
            f"{first} twice")

    res = h.http_request(port, "POST", "/senseQRSPing")
    h.check_eq((res.status, res.header("allow")), (405, "GET"),
               "POST /senseQRSPing answers 405 Allow: GET")
    h.check_eq(len(qrs.calls()), 2, "the 405 made no QRS call")

    # Another site's version comes back as that site says.
    data = {"about": {"buildVersion": "29.11.3.0", "buildDate":
                      "1/2/2023 12:00:00 AM", "schemaPath": "About"}}
    other = h.start_fake_qrs(certs, data=data)
    port2 = h.free_port()
    cfg2 = h.sense_config(port2, certs, qrs_port=other.port,
                          flags=("senseQRSPing",))
    h.Butler(ctx.butler, cfg2, name="butler-2").start()
    res = h.http_request(port2, "GET", "/senseQRSPing")
    h.check_eq((res.status, res.json),
               (200, {"response": "QRS reachable", "version": "29.11.3.0"}),
               "another QRS's buildVersion is passed on as given")
    check_about_call(h.wait_qrs_calls(other, 1, "the other about call")[0],
                     "other QRS")
    h.check_ping(port)
    h.check_ping(port2)


if __name__ == "__main__":
    h.main(test)

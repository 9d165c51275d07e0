#!/usr/bin/env python3
"""REST basics: butlerPing in its three spellings with the exact body,
keep-alive, the enabled-endpoint list, 404 for an unknown route and for a
disabled endpoint, 405 with Allow for a wrong method."""

import json
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402


def test(ctx):
    version = h.run_cli(ctx.butler, "--version").stdout.split()[1]
    expected_body = json.dumps({"response": "Butler reporting for duty",
                                "butlerVersion": version},
                               separators=(",", ":")).encode()

    port = h.free_port()
    butler = h.Butler(ctx.butler, h.base_config(port))
    # A second instance with butlerping switched off.
    off_port = h.free_port()
    off_cfg = h.base_config(off_port)
    off_cfg["Butler"]["restServerEndpointsEnable"]["butlerping"] = False
    butler_off = h.Butler(ctx.butler, off_cfg, name="butler-ping-off")
    butler.start()
    butler_off.start()

    for path in ("/butlerPing", "/v2/butlerPing", "/v4/butlerping"):
        res = h.http_request(port, "GET", path)
        h.check_eq((res.status, res.body), (200, expected_body),
                   f"GET {path} answers 200 with the exact ping body")
        h.check_in("application/json", res.header("content-type") or "",
                   f"GET {path} is JSON")
    for path in ("/butlerPing/", "/BUTLERPING", "/butlerPing?x=1"):
        res = h.http_request(port, "GET", path)
        h.check_eq((res.status, res.body), (200, expected_body),
                   f"GET {path} (trailing slash, case, query) also pings")

    # Keep-alive: five requests on one TCP connection.
    client = butler.client()
    ports = set()
    for i in range(5):
        res = client.get("/butlerPing")
        h.check_eq(res.status, 200, f"keep-alive request {i + 1} answers 200")
        ports.add(client.local_port())
    h.check_eq(len(ports), 1, "the five requests used one connection")
    res = client.get("/nope")
    h.check_eq(res.status, 404, "a 404 on the keep-alive connection")
    res = client.get("/butlerPing")
    h.check(res.status == 200 and client.local_port() in ports,
            "the connection stays usable after a 404", repr(res))
    client.close()

    res = h.http_request(port, "GET", "/v4/configfile/endpointsenabled")
    h.check_eq(res.status, 200, "GET /v4/configfile/endpointsenabled "
               "answers 200")
    h.check(isinstance(res.json, list), "the endpoint list is a JSON array",
            repr(res))
    h.check_eq(sorted(res.json), sorted(["apiListEnabledEndpoints",
                                         "butlerping", "mqttPublishMessage"]),
               "the endpoint list names exactly the enabled flags")

    res = h.http_request(port, "GET", "/nope")
    h.check_error(res, 404, "Route GET /nope not found",
                  "an unknown path answers 404 JSON")
    res = h.http_request(port, "GET", "/v4/nope/deeper?x=1")
    h.check_error(res, 404, "Route GET /v4/nope/deeper not found",
                  "an unknown nested path with a query answers 404 JSON")

    # A disabled endpoint is indistinguishable from an unknown one.
    for path in ("/butlerPing", "/v2/butlerPing", "/v4/butlerping"):
        res = h.http_request(off_port, "GET", path)
        h.check_error(res, 404, f"Route GET {path} not found",
                      f"GET {path} answers 404 when butlerping is off")
    res = h.http_request(off_port, "GET", "/v4/configfile/endpointsenabled")
    h.check(res.status == 200 and isinstance(res.json, list)
            and "butlerping" not in res.json
            and "mqttPublishMessage" in res.json,
            "the endpoint list leaves out the disabled butlerping", repr(res))

    for method, path, allow in (("PUT", "/butlerPing", "GET"),
                                ("POST", "/v4/butlerping", "GET"),
                                ("DELETE", "/v2/butlerPing", "GET"),
                                ("GET", "/v4/mqttpublishmessage", "PUT"),
                                ("PUT", "/mqttPublishMessage", "GET")):
        res = h.http_request(port, method, path)
        h.check_error(res, 405, f"Method {method} is not allowed on {path}",
                      f"{method} {path} answers 405 JSON")
        h.check_eq(res.header("allow"), allow,
                   f"the 405 for {method} {path} says Allow: {allow}")

    h.check_ping(port)
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")
    h.check_eq(butler_off.stop(), 0, "the second butler exits 0 on SIGTERM")


if __name__ == "__main__":
    h.main(test)

#!/usr/bin/env python3
"""mqttPublishMessage: seed, v2 and v4 publishes reach a real subscriber with
the right topic and payload; every bad request gets 400 with its message and
publishes nothing; X-HTTP-Method-Override; the service still answers."""

import json
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

TRICKY = 'a b = c & d ü 日本 {"k": [1, 2], "s": "x y"} 100%'


def test(ctx):
    broker = h.Mosquitto().start()
    sub = h.Subscriber(broker.port, "butlertest/#").start()
    port = h.free_port()
    butler = h.Butler(ctx.butler, h.base_config(port, broker.port)).start()
    expected = []  # (topic, payload) in the order sent

    def get_publish(path, topic, message, what):
        res = h.http_request(port, "GET", h.query(path, {"topic": topic,
                                                         "message": message}))
        h.check_eq((res.status, res.json), (200, {"topic": topic,
                                                  "message": message}),
                   what)
        expected.append((topic, message))

    def put_publish(topic, message, what, method="PUT", headers=None):
        res = h.http_request(port, method, "/v4/mqttpublishmessage",
                             body={"topic": topic, "message": message},
                             headers=headers)
        h.check_eq((res.status, res.json), (201, {"topic": topic,
                                                  "message": message}),
                   what)
        expected.append((topic, message))

    get_publish("/mqttPublishMessage", "butlertest/seed", "hello",
                "seed GET /mqttPublishMessage answers 200 {topic,message}")
    get_publish("/v2/mqttPublishMessage", "butlertest/v2/deep/level", TRICKY,
                "v2 GET with spaces, =, &, %, UTF-8 and JSON answers 200")
    put_publish("butlertest/v4", TRICKY,
                "v4 PUT with spaces, =, &, %, UTF-8 and JSON answers 201")
    put_publish("butlertest/v4/json", json.dumps({"event": "reload",
                                                  "ok": True}),
                "v4 PUT with a JSON document as message answers 201")
    put_publish("butlertest/override", "via POST",
                "POST + X-HTTP-Method-Override: PUT reaches the v4 PUT route",
                method="POST", headers={"X-HTTP-Method-Override": "PUT"})
    put_publish("butlertest/override-lower", "via lower-case override",
                "a lower-case override value (put) works too",
                method="POST", headers={"X-HTTP-Method-Override": "put"})
    # A literal '+' in a query string is a space, as in Butler (Express).
    res = h.http_request(port, "GET", "/mqttPublishMessage?topic=butlertest/"
                         "plus&message=a+b%2Bc")
    h.check_eq((res.status, res.json), (200, {"topic": "butlertest/plus",
                                              "message": "a b+c"}),
               "'+' in the query decodes as a space, %2B as '+'")
    expected.append(("butlertest/plus", "a b+c"))

    got = sub.wait_for(len(expected), what="every good publish")
    h.check_eq(got, expected, "the subscriber got each topic and payload "
               "exactly, in order")

    # -- bad requests: 400 with a message, nothing published ----------------
    missing_topic = "Required parameter topic is missing"
    wildcard = "Parameter topic must not contain the MQTT wildcards + or #"
    for path in ("/mqttPublishMessage", "/v2/mqttPublishMessage"):
        cases = [
            ({"message": "x"}, missing_topic, "no topic"),
            ({"topic": "butlertest/x"},
             "Required parameter message is missing", "no message"),
            ({"topic": "", "message": "x"},
             "Parameter topic must not be empty", "an empty topic"),
            ({"topic": "butlertest/x", "message": ""},
             "Parameter message must not be empty", "an empty message"),
            ({"topic": "butlertest/+/x", "message": "x"}, wildcard,
             "a + wildcard"),
            ({"topic": "butlertest/#", "message": "x"}, wildcard,
             "a # wildcard"),
            ({"topic": "butlertest/a\x00b", "message": "x"},
             "Parameter topic must be valid UTF-8 without NUL characters",
             "a NUL in the topic"),
            ({"topic": "$SYS/x", "message": "x"},
             "Parameter topic must not start with $ (reserved for the broker)",
             "a $ topic"),
        ]
        for params, message, what in cases:
            res = h.http_request(port, "GET", h.query(path, params))
            h.check_error(res, 400, message, f"GET {path} with {what} -> 400")
        res = h.http_request(port, "GET", path + "?topic=%zz&message=x")
        h.check_error(res, 400, "Query string has a malformed %-escape",
                      f"GET {path} with a malformed %-escape -> 400")
        res = h.http_request(port, "GET", path)
        h.check_error(res, 400, missing_topic,
                      f"GET {path} without a query -> 400")

    v4 = "/v4/mqttpublishmessage"
    v4_cases = [
        (b'{"topic": "butlertest/x", "message": ', "Request body is not valid "
         "JSON", "truncated JSON"),
        (b"", "Request body is not valid JSON", "an empty body"),
        (b"topic=butlertest/x&message=y", "Request body is not valid JSON",
         "a form body"),
        (b'["butlertest/x", "y"]', "Request body must be a JSON object with "
         "topic and message", "a JSON array"),
        (b'{"message": "x"}', missing_topic, "no topic"),
        (b'{"topic": null, "message": "x"}', missing_topic, "a null topic"),
        (b'{"topic": "butlertest/x"}', "Required parameter message is missing",
         "no message"),
        (b'{"topic": 42, "message": "x"}', "Parameter topic must be a string",
         "a numeric topic"),
        (b'{"topic": "butlertest/x", "message": {"a": 1}}',
         "Parameter message must be a string", "an object message"),
        (b'{"topic": "", "message": "x"}', "Parameter topic must not be empty",
         "an empty topic"),
        (b'{"topic": "butlertest/x", "message": ""}',
         "Parameter message must not be empty", "an empty message"),
        (b'{"topic": "butlertest/+", "message": "x"}', wildcard,
         "a + wildcard"),
        (b'{"topic": "#", "message": "x"}', wildcard, "a # wildcard"),
    ]
    for body, message, what in v4_cases:
        res = h.http_request(port, "PUT", v4, body=body,
                             headers={"Content-Type": "application/json"})
        h.check_error(res, 400, message, f"PUT {v4} with {what} -> 400")
    res = h.http_request(port, "POST", v4, body=b"{not json",
                         headers={"X-HTTP-Method-Override": "PUT"})
    h.check_error(res, 400, "Request body is not valid JSON",
                  "an overridden POST with invalid JSON -> 400")

    # Nothing from the bad requests reached the broker: a marker sent last
    # arrives right after the good messages.
    put_publish("butlertest/marker", "last", "a final publish answers 201")
    got = sub.wait_for(len(expected), what="the marker")
    h.check_eq(got, expected, "no bad request published anything")

    h.check_ping(port)

    # Invalid UTF-8 in a topic can never be published (MQTT topics are
    # UTF-8): a bad request, not an outage of the MQTT link.
    res = h.http_request(port, "GET", "/mqttPublishMessage?topic=butlertest/"
                         "%FF%FE&message=x")
    h.check(res.status == 400 and res.json is not None
            and res.json.get("statusCode") == 400,
            "a topic with invalid UTF-8 -> 400", repr(res))
    h.check_ping(port)
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")
    sub.stop()
    broker.stop()


if __name__ == "__main__":
    h.main(test)

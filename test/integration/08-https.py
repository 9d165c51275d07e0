#!/usr/bin/env python3
"""HTTPS: with restServerConfig.tls on and certificates made at test time,
verified HTTPS ping (keep-alive) and publish work; a client that does not
trust the CA is refused; plain HTTP on the TLS port gets no HTTP answer and
the server keeps serving HTTPS; --check-config and --config reject a missing
certificate or key file, naming the key."""

import ssl
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

TOPIC = "butlertest/08/msg"


def tls_config(port, mqtt_port, cert, key, ca=None):
    cfg = h.base_config(port, mqtt_port)
    tls = {"enable": True, "cert": str(cert), "key": str(key)}
    if ca:
        tls["ca"] = str(ca)
    cfg["Butler"]["restServerConfig"]["tls"] = tls
    return cfg


def test(ctx):
    certs = h.make_certs(h.scratch_dir("certs"))
    verified = h.client_context(certs["ca"])
    broker = h.Mosquitto().start()
    sub = h.Subscriber(broker.port, TOPIC).start()
    port = h.free_port()
    cfg = tls_config(port, broker.port, certs["server_cert"],
                     certs["server_key"], certs["ca"])
    butler = h.Butler(ctx.butler, cfg, ssl_context=verified).start()

    client = h.HttpClient(port, verified)
    conns = set()
    for path in ("/butlerPing", "/v2/butlerPing", "/v4/butlerping"):
        res = client.get(path)
        h.check(res.status == 200 and res.json["response"]
                == "Butler reporting for duty",
                f"verified HTTPS GET {path} answers 200", repr(res))
        conns.add(client.local_port())
    h.check_eq(len(conns), 1, "the HTTPS requests shared one connection")
    client.close()

    by_name = h.HttpClient(port, verified, host="localhost")
    res = by_name.get("/butlerPing")
    h.check_eq(res.status, 200, "HTTPS to https://localhost verifies too "
               "(DNS name in the certificate)")
    by_name.close()

    res = h.http_request(port, "PUT", "/v4/mqttpublishmessage",
                         body={"topic": TOPIC, "message": "over https"},
                         ssl_context=verified)
    h.check_eq((res.status, res.json), (201, {"topic": TOPIC,
                                              "message": "over https"}),
               "an HTTPS v4 publish answers 201")
    res = h.http_request(port, "GET", h.query("/mqttPublishMessage", {
        "topic": TOPIC, "message": "seed over https"}), ssl_context=verified)
    h.check_eq(res.status, 200, "an HTTPS seed publish answers 200")
    got = sub.wait_for(2, what="the HTTPS publishes")
    h.check_eq(got, [(TOPIC, "over https"), (TOPIC, "seed over https")],
               "the HTTPS publishes reached the subscriber")

    # A client that does not trust the test CA must fail verification.
    untrusting = ssl.create_default_context()
    try:
        h.http_request(port, "GET", "/butlerPing", ssl_context=untrusting)
        refused = False
    except ssl.SSLCertVerificationError:
        refused = True
    h.check(refused, "a client without the test CA rejects the certificate")
    h.check_ping(port, "HTTPS still works after a failed handshake",
                 ssl_context=verified)

    # Plain HTTP on the TLS port: no HTTP answer, the connection is closed.
    reply, closed = h.raw_exchange(
        port, b"GET /butlerPing HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    h.check(not reply.startswith(b"HTTP/"), "plain HTTP on the TLS port gets "
            "no HTTP answer", repr(reply[:200]))
    h.check(closed, "the server closes the plain-HTTP connection")
    reply, closed = h.raw_exchange(port, b"\x16\x03\x01\x00\x05garbage")
    h.check(not reply.startswith(b"HTTP/") and closed,
            "a broken TLS hello gets no HTTP answer and is closed",
            repr(reply[:200]))
    h.check_ping(port, "HTTPS still works after plain HTTP",
                 ssl_context=verified)
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")

    # A config without the optional ca works too.
    port2 = h.free_port()
    no_ca = h.Butler(ctx.butler, tls_config(port2, None, certs["server_cert"],
                                            certs["server_key"]),
                     ssl_context=verified, name="butler-no-ca").start()
    h.check_ping(port2, "HTTPS without tls.ca answers ping",
                 ssl_context=verified)
    h.check_eq(no_ca.stop(), 0, "that butler exits 0 on SIGTERM")

    # Missing files are config errors that name the key.
    tmp = h.scratch_dir("bad-tls")
    missing = tmp / "missing-cert.pem"
    bad = h.write_config(tls_config(h.free_port(), None, missing,
                                    certs["server_key"]), tmp / "bad.yaml")
    r = h.run_cli(ctx.butler, "--check-config", bad)
    h.check_eq(r.returncode, 1, "--check-config with a missing cert file "
               "exits 1")
    h.check_in(f"error: Butler.restServerConfig.tls.cert: cannot read "
               f"{missing}: No such file or directory", r.stderr.splitlines(),
               "the missing cert file is reported under its key")
    r = h.run_cli(ctx.butler, "--config", bad)
    h.check_eq(r.returncode, 1, "--config with a missing cert file exits 1 "
               "without starting")

    missing_key = tmp / "missing-key.pem"
    bad_key = h.write_config(tls_config(h.free_port(), None,
                                        certs["server_cert"], missing_key),
                             tmp / "bad-key.yaml")
    r = h.run_cli(ctx.butler, "--check-config", bad_key)
    h.check(r.returncode == 1 and f"error: Butler.restServerConfig.tls.key: "
            f"cannot read {missing_key}: No such file or directory"
            in r.stderr.splitlines(),
            "a missing key file is reported under its key", r.stderr)

    no_cert = h.base_config(h.free_port())
    no_cert["Butler"]["restServerConfig"]["tls"] = {"enable": True}
    r = h.run_cli(ctx.butler, "--check-config",
                  h.write_config(no_cert, tmp / "no-cert.yaml"))
    h.check(r.returncode == 1 and "error: Butler.restServerConfig.tls.cert: "
            "missing (required when Butler.restServerConfig.tls.enable is "
            "true)" in r.stderr.splitlines(),
            "tls.enable without a cert is reported", r.stderr)
    sub.stop()
    broker.stop()


if __name__ == "__main__":
    h.main(test)

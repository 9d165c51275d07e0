#!/usr/bin/env python3
"""slackPostMessage: seed and v2 GET and v4 PUT post the exact Slack body
({"channel","text","username","icon_emoji"}, colons added to the emoji) to
restMessage.webhookURL and reply after Slack answered (200 / 201 with
{"channel","msg","from_user","emoji"} as given); every missing, empty or
ill-typed parameter and invalid JSON gets 400 naming it and posts nothing;
Slack 404 -> 500 with Slack's answer, 5xx after all attempts and an
unreachable Slack -> 503, no answer within slackNotification
.requestTimeoutSeconds -> 504, and the REST requestTimeoutSeconds when that
is shorter -> 504; without a webhook the config check names
Butler.slackNotification.restMessage.webhookURL."""

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

PATH = "/services/T000/B000/REST"
V4 = "/v4/slackpostmessage"
MSG = 'Reload done: ü 日本 "quoted" 100% a+b=c'


def config(port, webhook, rest_timeout=None, slack_timeout=1,
           max_attempts=2):
    cfg = h.base_config(port)
    cfg["Butler"]["restServerEndpointsEnable"]["slackPostMessage"] = True
    cfg["Butler"]["slackNotification"] = {
        "restMessage": {"webhookURL": webhook},
        "requestTimeoutSeconds": slack_timeout, "maxAttempts": max_attempts,
        "retryMinMs": 100, "retryMaxMs": 200}
    if rest_timeout:
        cfg["Butler"]["restServerConfig"]["requestTimeoutSeconds"] = \
            rest_timeout
    return cfg


def main_instance(ctx, fake_slack):
    slack = fake_slack.FakeSlack().start()
    port = h.free_port()
    butler = h.Butler(ctx.butler, config(port, slack.url(PATH))).start()

    def slack_body(index, what):
        post = h.wait_posts(slack, index + 1, what)[index]
        h.check_eq((post.method, post.path, post.header("content-type")),
                   ("POST", PATH, "application/json; charset=utf-8"),
                   f"{what}: POST to restMessage.webhookURL as JSON")
        return post.json

    # -- good requests ---------------------------------------------------------
    params = {"channel": "#general", "from_user": "Load script",
              "msg": MSG, "emoji": "thumbsup"}
    res = h.http_request(port, "GET", h.query("/slackPostMessage", params))
    h.check_eq((res.status, res.json, list(res.json or {})),
               (200, params, ["channel", "msg", "from_user", "emoji"]),
               "seed GET /slackPostMessage answers 200 with the parameters "
               "as given")
    body = slack_body(0, "the seed post")
    h.check_eq((body, list(body or {})),
               ({"channel": "#general", "text": MSG,
                 "username": "Load script", "icon_emoji": ":thumbsup:"},
                ["channel", "text", "username", "icon_emoji"]),
               "the Slack body is {channel,text,username,icon_emoji} with "
               "colons added to the emoji")

    params = {"channel": "@anna", "from_user": "Butler v2",
              "msg": "second", "emoji": ":tada:"}
    res = h.http_request(port, "GET", h.query("/v2/slackPostMessage", params))
    h.check_eq((res.status, res.json), (200, params),
               "v2 GET /v2/slackPostMessage answers 200")
    h.check_eq(slack_body(1, "the v2 post"),
               {"channel": "@anna", "text": "second", "username": "Butler v2",
                "icon_emoji": ":tada:"},
               "an emoji that has its colons keeps them")

    params = {"channel": "#ops", "from_user": "v4 user", "msg": MSG,
              "emoji": "rocket"}
    res = h.http_request(port, "PUT", V4, body=params)
    h.check_eq((res.status, res.json), (201, params),
               "v4 PUT /v4/slackpostmessage answers 201 with the body as "
               "given")
    h.check_eq(slack_body(2, "the v4 post"),
               {"channel": "#ops", "text": MSG, "username": "v4 user",
                "icon_emoji": ":rocket:"}, "the v4 Slack body")
    res = h.http_request(port, "POST", V4, body={
        "channel": "#ops", "from_user": "override", "msg": "via POST"},
        headers={"X-HTTP-Method-Override": "PUT"})
    h.check_eq(res.status, 201, "POST with X-HTTP-Method-Override: PUT "
               "reaches the v4 route; emoji is optional")
    body = slack_body(3, "the overridden post")
    h.check_eq({k: body.get(k) for k in ("channel", "text", "username")},
               {"channel": "#ops", "text": "via POST",
                "username": "override"}, "the post without an emoji")

    # -- bad requests: 400 naming the parameter, nothing posted ---------------
    posted = len(slack.posts())
    full = {"channel": "#c", "from_user": "u", "msg": "m"}
    for name in ("channel", "from_user", "msg"):
        missing = {k: v for k, v in full.items() if k != name}
        empty = dict(full, **{name: ""})
        for path in ("/slackPostMessage", "/v2/slackPostMessage"):
            res = h.http_request(port, "GET", h.query(path, missing))
            h.check_error(res, 400, f"Required parameter {name} is missing",
                          f"GET {path} without {name} -> 400")
            res = h.http_request(port, "GET", h.query(path, empty))
            h.check_error(res, 400, f"Parameter {name} must not be empty",
                          f"GET {path} with an empty {name} -> 400")
        res = h.http_request(port, "PUT", V4, body=missing)
        h.check_error(res, 400, f"Required parameter {name} is missing",
                      f"PUT {V4} without {name} -> 400")
        res = h.http_request(port, "PUT", V4, body=dict(full, **{name: None}))
        h.check_error(res, 400, f"Required parameter {name} is missing",
                      f"PUT {V4} with a null {name} -> 400")
        res = h.http_request(port, "PUT", V4, body=empty)
        h.check_error(res, 400, f"Parameter {name} must not be empty",
                      f"PUT {V4} with an empty {name} -> 400")
        res = h.http_request(port, "PUT", V4, body=dict(full, **{name: 7}))
        h.check_error(res, 400, f"Parameter {name} must be a string",
                      f"PUT {V4} with a numeric {name} -> 400")
    res = h.http_request(port, "PUT", V4, body=dict(full, emoji=["x"]))
    h.check_error(res, 400, "Parameter emoji must be a string",
                  f"PUT {V4} with an array as emoji -> 400")
    for raw, what in ((b'{"channel": "#c", "from_user": "u", "msg": ',
                       "truncated JSON"), (b"", "an empty body"),
                      (b"channel=%23c&from_user=u&msg=m", "a form body")):
        res = h.http_request(port, "PUT", V4, body=raw,
                             headers={"Content-Type": "application/json"})
        h.check_error(res, 400, "Request body is not valid JSON",
                      f"PUT {V4} with {what} -> 400")
    res = h.http_request(port, "PUT", V4, body=b'["#c", "u", "m"]',
                         headers={"Content-Type": "application/json"})
    h.check_error(res, 400, "Request body must be a JSON object with "
                  "channel, from_user and msg",
                  f"PUT {V4} with a JSON array -> 400")
    res = h.http_request(port, "GET", "/slackPostMessage?channel=%zz&"
                         "from_user=u&msg=m")
    h.check_error(res, 400, "Query string has a malformed %-escape",
                  "a malformed %-escape -> 400")
    h.check_eq(len(slack.posts()), posted, "no bad request posted anything")

    # -- Slack's answers --------------------------------------------------------
    slack.script((404, "no_service"))
    res = h.http_request(port, "GET", h.query("/slackPostMessage", full))
    h.check_error(res, 500, lambda m: "404" in m and "no_service" in m,
                  "Slack 404 -> 500 with Slack's answer")
    h.check_eq(len(slack.posts()), posted + 1, "the 404 was not retried")

    slack.script((500, "rollup_error"), (503, "service_unavailable"))
    res = h.http_request(port, "PUT", V4, body=full)
    h.check_error(res, 503, lambda m: "503" in m,
                  "Slack 5xx on all maxAttempts (2) attempts -> 503")
    h.check_eq(len(slack.posts()), posted + 3, "two attempts were made")

    slack.script("stall")
    res = h.http_request(port, "GET", h.query("/v2/slackPostMessage", full))
    h.check_error(res, 504, lambda m: bool(m),
                  "Slack not answering within requestTimeoutSeconds (1) "
                  "-> 504")
    h.check_eq(len(slack.posts()), posted + 4, "the unanswered post was sent "
               "once and not retried")

    res = h.http_request(port, "PUT", V4, body=dict(full, msg="after"))
    h.check_eq(res.status, 201, "a post after all that answers 201")
    h.check_eq(h.wait_posts(slack, posted + 5, "the last post")[-1]
               .json.get("text"), "after", "and reaches Slack")
    h.check_ping(port)
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")
    slack.stop()


def unreachable_and_rest_timeout(ctx, fake_slack):
    # Nothing listens on the webhook's port: every attempt fails to connect.
    closed = h.free_port()
    port = h.free_port()
    butler = h.Butler(ctx.butler, config(
        port, f"http://127.0.0.1:{closed}{PATH}")).start()
    res = h.http_request(port, "PUT", V4, body={"channel": "#c",
                                                "from_user": "u", "msg": "m"})
    h.check_error(res, 503, lambda m: bool(m),
                  "an unreachable Slack after all attempts -> 503")
    butler.wait_log("gave up on r1 after 2 attempts")
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")

    # The REST deadline (1 s) comes before Slack's (3 s).
    slack = fake_slack.FakeSlack().start()
    slack.script("stall")
    port = h.free_port()
    butler = h.Butler(ctx.butler, config(port, slack.url(PATH),
                                         rest_timeout=1,
                                         slack_timeout=3)).start()
    res = h.http_request(port, "GET", h.query("/slackPostMessage", {
        "channel": "#c", "from_user": "u", "msg": "m"}))
    h.check_error(res, 504, "slack-egress did not answer within 1000 ms",
                  "the REST requestTimeoutSeconds (1) when shorter -> 504")
    h.check_eq(len(slack.posts()), 1, "the post was made once")
    h.check_ping(port)
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")
    slack.stop()


def no_webhook(ctx):
    port = h.free_port()
    cfg = h.base_config(port)
    cfg["Butler"]["restServerEndpointsEnable"]["slackPostMessage"] = True
    path = h.write_config(cfg, h.scratch_dir("no-webhook") / "butler.yaml")
    r = h.run_cli(ctx.butler, "--check-config", path)
    h.check_eq(r.returncode, 1, "--check-config with slackPostMessage on and "
               "no webhook exits 1")
    h.check(any(line.startswith("error: Butler.slackNotification.restMessage"
                                ".webhookURL: missing")
                for line in r.stderr.splitlines()),
            "the error names Butler.slackNotification.restMessage.webhookURL",
            r.stderr)
    # The seed's slackConfig.webhookURL is enough.
    cfg["Butler"]["slackConfig"] = {"webhookURL": "http://127.0.0.1:9/x"}
    h.write_config(cfg, path)
    r = h.run_cli(ctx.butler, "--check-config", path)
    h.check_eq(r.returncode, 0, "with slackConfig.webhookURL instead the "
               "config is valid")


def test(ctx):
    fake_slack = h.load_fake_slack()
    main_instance(ctx, fake_slack)
    unreachable_and_rest_timeout(ctx, fake_slack)
    no_webhook(ctx)


if __name__ == "__main__":
    h.main(test)

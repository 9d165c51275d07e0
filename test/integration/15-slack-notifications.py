#!/usr/bin/env python3
"""Slack notifications for log events, at a fake Slack webhook: failed and
aborted reloads with a basic template (exact body: channel, text with the
fields filled and Slack's & < > escaped, username, icon_emoji; POST with
Content-Type application/json; charset=utf-8); a formatted JSON template
(fields filled, quotes in a task name JSON-escaped, channel and icon_emoji
added from the config); a template that does not give a JSON object and
one that does not parse fall back to a plain message; the per-task rate
limit; the seed's slackConfig posts for user audit events and Butler 2
failures (username = host)."""

import json
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

FAILED = "/scheduler-reload-failed/"
ABORTED = "/scheduler-reload-aborted/"
FAIL_PATH = "/services/T000/B000/FAIL"
ABORT_PATH = "/services/T000/B000/ABORT"
SEED_PATH = "/services/T000/B000/SEED"
CONTENT_TYPE = "application/json; charset=utf-8"
TASK_1 = "11111111-1111-4111-8111-111111111111"
TASK_2 = "22222222-2222-4222-8222-222222222222"
TASK_3 = "33333333-3333-4333-8333-333333333333"


def exec_id(n):
    return f"fb0f317d-da91-4b86-aafa-{n:012x}"


def slack_escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def event(kind, task, task_id, n, **kw):
    return h.scheduler_datagram(kind, task_name=task, task_id=task_id,
                                execution_id=exec_id(n), **kw)


def check_request(post, path, what):
    h.check_eq((post.method, post.path, post.header("content-type")),
               ("POST", path, CONTENT_TYPE),
               f"{what}: POST to {path} with Content-Type {CONTENT_TYPE}")


def basic_and_formatted(ctx, fake_slack):
    slack = fake_slack.FakeSlack().start()
    tmp = h.scratch_dir("slack-templates")
    template = tmp / "aborted.json"
    template.write_text(json.dumps({
        "username": "fmt-bot",
        "text": "Aborted: {{taskName}} ({{appName}})",
        "blocks": [{"type": "section", "text": {
            "type": "mrkdwn",
            "text": "*{{taskName}}* on {{hostName}} by {{user}}: "
                    "{{logMessage}}"}}]}, indent=2))
    port = h.free_port()
    cfg = h.udp_config(port)
    task_port = cfg["Butler"]["udpServerConfig"]["portTaskFailure"]
    cfg["Butler"]["slackNotification"] = {
        "enable": True,
        "reloadTaskFailure": {
            "enable": True, "webhookURL": slack.url(FAIL_PATH),
            "channel": "#reload-failures", "messageType": "basic",
            "basicMsgTemplate": "Task {{taskName}} failed on {{hostName}}: "
                                "app {{appName}}, user {{user}}, "
                                "{{logMessage}} ({{executionId}})",
            "fromUser": "Butler & co", "iconEmoji": ":boom:",
            "rateLimit": 60},
        "reloadTaskAborted": {
            "enable": True, "webhookURL": slack.url(ABORT_PATH),
            "channel": "#reload-aborts", "messageType": "formatted",
            "templateFile": str(template), "fromUser": "unused",
            "iconEmoji": ":stop:", "rateLimit": 60},
    }
    butler = h.Butler(ctx.butler, cfg).start()

    # -- basic ----------------------------------------------------------------
    task = 'Sales & <Leads> "Q1"'
    h.send_udp(task_port, event(FAILED, task, TASK_1, 1,
                                app_name="Sales <app>",
                                message="Max retries reached & gave up"))
    post = h.wait_posts(slack, 1, "the failure notification")[0]
    check_request(post, FAIL_PATH, "the basic failure notification")
    text = (f"Task {slack_escape(task)} failed on sense-node-1: app "
            "Sales &lt;app&gt;, user CORP\\sa_scheduler, Max retries reached "
            f"&amp; gave up ({exec_id(1)})")
    h.check_eq(post.json, {"channel": "#reload-failures", "text": text,
                           "username": "Butler & co",
                           "icon_emoji": ":boom:"},
               "the basic body has channel, the filled template with & < > "
               "escaped, username and icon_emoji")
    h.check_eq(list(post.json), ["channel", "text", "username", "icon_emoji"],
               "the basic body's keys come in Slack's documented order")

    # -- formatted ---------------------------------------------------------
    quoted = 'Say "hi" \\ & <bye>'
    h.send_udp(task_port, event(ABORTED, quoted, TASK_1, 2, level="WARN",
                                message="Execution State Change to Aborting"))
    post = h.wait_posts(slack, 2, "the aborted notification")[1]
    check_request(post, ABORT_PATH, "the formatted aborted notification")
    esc = slack_escape(quoted)
    h.check_eq(post.json, {
        "username": "fmt-bot",
        "text": f"Aborted: {esc} (Sales dashboard)",
        "blocks": [{"type": "section", "text": {
            "type": "mrkdwn",
            "text": f"*{esc}* on sense-node-1 by CORP\\sa_scheduler: "
                    "Execution State Change to Aborting"}}],
        "channel": "#reload-aborts", "icon_emoji": ":stop:"},
        "the formatted body is the filled template (quotes and backslash in "
        "the task name JSON-escaped, & < > Slack-escaped) plus channel and "
        "icon_emoji from the config; the template's username wins")

    # -- per-task rate limit (60 s) -----------------------------------------
    h.send_udp(task_port, event(FAILED, task, TASK_1, 3))
    butler.wait_log(f"skips e3 for task {task}: rate limit of 60 s per task")
    h.send_udp(task_port, event(FAILED, "Other task", TASK_2, 4))
    posts = h.wait_posts(slack, 3, "the other task's failure")
    h.check_eq([p.json["text"].split(" failed")[0] for p in posts[2:]],
               ["Task Other task"], "the same task's second failure within "
               "rateLimit is not posted; another task's is")
    h.check_eq(len(slack.posts()), 3, "exactly 3 posts so far")
    h.check_ping(port)
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")
    h.check_eq(len(slack.posts()), 3, "nothing more was posted")
    slack.stop()


def fallbacks_and_seed(ctx, fake_slack):
    slack = fake_slack.FakeSlack().start()
    tmp = h.scratch_dir("slack-templates")
    not_object = tmp / "array.json"
    not_object.write_text('["{{taskName}}"]\n')
    unparsable = tmp / "unclosed.json"
    unparsable.write_text('{"text": "{{#taskName}} never closed"}\n')
    port = h.free_port()
    cfg = h.udp_config(port)
    udp = cfg["Butler"]["udpServerConfig"]
    cfg["Butler"]["slackNotification"] = {
        "enable": True,
        "reloadTaskFailure": {
            "enable": True, "webhookURL": slack.url(FAIL_PATH),
            "channel": "#fail", "messageType": "formatted",
            "templateFile": str(not_object), "fromUser": "Butler",
            "iconEmoji": ":x:"},
        "reloadTaskAborted": {
            "enable": True, "webhookURL": slack.url(ABORT_PATH),
            "channel": "#abort", "messageType": "formatted",
            "templateFile": str(unparsable), "fromUser": "Butler",
            "iconEmoji": ":warning:"},
    }
    cfg["Butler"]["slackConfig"] = {
        "webhookURL": slack.url(SEED_PATH),
        "loginNotificationChannel": "#logins",
        "taskFailureChannel": "#legacy-failures"}
    butler = h.Butler(ctx.butler, cfg).start()

    def plain(post, path, channel, emoji, task, what):
        check_request(post, path, what)
        body = post.json or {}
        h.check(list(body) == ["channel", "text", "username", "icon_emoji"]
                and body["channel"] == channel and body["username"] == "Butler"
                and body["icon_emoji"] == emoji
                and slack_escape(task) in body["text"],
                f"{what}: a plain message with the config's channel, "
                "username and icon_emoji naming the task", repr(post))

    task = "Broken <template> & co"
    h.send_udp(udp["portTaskFailure"], event(FAILED, task, TASK_1, 1))
    post = h.wait_posts(slack, 1, "the fallback failure notification")[0]
    plain(post, FAIL_PATH, "#fail", ":x:", task,
          "a template giving a JSON array")
    butler.wait_log("sends a plain message for e1")
    h.send_udp(udp["portTaskFailure"], event(ABORTED, task, TASK_3, 2,
                                             level="WARN"))
    post = h.wait_posts(slack, 2, "the fallback aborted notification")[1]
    plain(post, ABORT_PATH, "#abort", ":warning:", task,
          "a template that does not parse")
    butler.wait_log("sends a plain message for e2")

    # -- the seed's slackConfig -----------------------------------------------
    h.send_udp(udp["portTaskFailure"],
               "sense-node-7;Legacy & <reload>;Old \"app\";sa_scheduler")
    post = h.wait_posts(slack, 3, "the Butler 2 failure post")[2]
    check_request(post, SEED_PATH, "the Butler 2 failure post")
    body = dict(post.json or {})
    body.pop("icon_emoji", None)
    h.check_eq(body, {"channel": "#legacy-failures",
                      "text": 'Failed task: "Legacy &amp; &lt;reload&gt;", '
                              'linked to app "Old "app"".',
                      "username": "sense-node-7"},
               "a Butler 2 failure posts 'Failed task: \"<task>\", linked to "
               "app \"<app>\".' to taskFailureChannel as the host")

    commands = ["Start session", "Open connection", "Close connection",
                "Stop session"]
    for command in commands:
        h.send_udp(udp["portSessionConnectionEvents"],
                   f"sense-node-2;{command};CORP;anna")
    posts = h.wait_posts(slack, 7, "the 4 audit posts")[3:]
    for p in posts:
        check_request(p, SEED_PATH, "an audit post")
    bodies = []
    for p in posts:
        body = dict(p.json or {})
        body.pop("icon_emoji", None)
        bodies.append(body)
    want = [{"channel": "#logins", "text": f"{c} for user CORP/anna",
             "username": "sense-node-2"} for c in commands]
    key = lambda b: b.get("text", "")  # noqa: E731 - posts run concurrently
    h.check_eq(sorted(bodies, key=key), sorted(want, key=key),
               "each audit event posts '<Command> for user <dir>/<user>' to "
               "loginNotificationChannel as the host")
    h.check_ping(port)
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")
    h.check_eq(len(slack.posts()), 7, "nothing more was posted")
    slack.stop()


def test(ctx):
    fake_slack = h.load_fake_slack()
    basic_and_formatted(ctx, fake_slack)
    fallbacks_and_seed(ctx, fake_slack)


if __name__ == "__main__":
    h.main(test)

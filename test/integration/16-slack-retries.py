#!/usr/bin/env python3
"""Slack delivery: 500 then 200 is delivered once after a retry; 429 with
Retry-After: 1 delays the retry, and other posts to that webhook, by at
least 1 s; 404 is not retried; a post Slack never answers
(requestTimeoutSeconds) or answers by closing the connection is sent once
and never again; a refused connection is retried until the receiver is up;
after maxAttempts butler gives up (logged); with backlogSize 2 and Slack
stalling, further events are shed (logged) and butler stays responsive."""

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

FAILED = "/scheduler-reload-failed/"
ABORTED = "/scheduler-reload-aborted/"
FAIL_PATH = "/services/T000/B000/FAIL"
LATE_PATH = "/services/T000/B000/LATE"
MAX_ATTEMPTS = 5


def test(ctx):
    fake_slack = h.load_fake_slack()
    slack = fake_slack.FakeSlack().start()
    late_port = h.free_port()   # nothing listens here until part (f)
    port = h.free_port()
    cfg = h.udp_config(port)
    task_port = cfg["Butler"]["udpServerConfig"]["portTaskFailure"]

    def channel(url):
        # The text is the task name, which identifies each post.
        return {"enable": True, "webhookURL": url, "channel": "#ops",
                "messageType": "basic", "basicMsgTemplate": "{{taskName}}",
                "fromUser": "Butler", "iconEmoji": ":robot_face:"}

    cfg["Butler"]["slackNotification"] = {
        "enable": True, "retryMinMs": 150, "retryMaxMs": 600,
        "maxAttempts": MAX_ATTEMPTS, "requestTimeoutSeconds": 1,
        "backlogSize": 2,
        "reloadTaskFailure": channel(slack.url(FAIL_PATH)),
        "reloadTaskAborted": channel(
            f"http://127.0.0.1:{late_port}{LATE_PATH}"),
    }
    butler = h.Butler(ctx.butler, cfg).start()
    ids = iter(range(1, 1000))
    events = {}   # task name -> butler's event id ("e<n>")

    def fail(name, kind=FAILED):
        # A task id per event: the per-task rate limit stays out of the way.
        n = next(ids)
        events[name] = f"e{n}"
        h.send_udp(task_port, h.scheduler_datagram(
            kind, task_name=name,
            task_id=f"00000000-0000-4000-8000-{n:012d}",
            execution_id=f"fb0f317d-da91-4b86-aafa-{n:012x}"))

    def texts(posts):
        return [(p.json or {}).get("text") for p in posts]

    def answers(posts):
        return [p.status if p.status is not None else p.answer
                for p in posts]

    def since(mark, count, what):
        """Waits for `count` requests after the first `mark`; returns them."""
        return h.wait_posts(slack, mark + count, what)[mark:]

    # (a) 500, then 200 --------------------------------------------------------
    slack.script((500, "server_error"))
    fail("A")
    posts = since(0, 2, "the retried post")
    h.check_eq((texts(posts), answers(posts)), (["A", "A"], [500, 200]),
               "500 then 200: the fake saw 2 requests, 1 success")
    h.check_eq(posts[1].body, posts[0].body, "the retry sends the same body")
    # The fake records a post before butler has its answer: each part waits
    # for butler's outcome, so no post is still held when the next begins.
    butler.wait_log(f"posted {events['A']} to Slack")
    h.check_in(f"retries {events['A']} in 150 ms (attempt 2 of "
               f"{MAX_ATTEMPTS}): Slack answered 500", butler.log(),
               "the retry after the 500 is logged")

    # (b) 429 with Retry-After: 1 ------------------------------------------------
    mark = len(slack.posts())
    slack.script((429, "rate_limited", {"Retry-After": "1"}))
    fail("B")
    butler.wait_log(f"retries {events['B']} in 1000 ms")
    fail("C")   # same webhook, sent while it is paused
    posts = since(mark, 3, "the post after the 429 and the paused one")
    h.check_eq(sorted(texts(posts)), ["B", "B", "C"],
               "after the 429: B again and C")
    h.check_eq(answers(posts), [429, 200, 200], "one 429, then 200s")
    butler.wait_log(f"posted {events['B']} to Slack")
    butler.wait_log(f"posted {events['C']} to Slack")
    for p in posts[1:]:
        h.check(p.time - posts[0].time >= 1.0, f"{p.json['text']} came at "
                "least Retry-After (1 s) after the 429",
                f"{p.time - posts[0].time:.3f} s")

    # (c) 404: no retry ----------------------------------------------------------
    mark = len(slack.posts())
    slack.script((404, "no_service"))
    fail("D")
    butler.wait_log(f"could not post {events['D']}: Slack answered 404 "
                    "no_service")
    fail("E")
    posts = since(mark, 2, "the post after the 404")
    h.check_eq((texts(posts), answers(posts)), (["D", "E"], [404, 200]),
               "404 is not retried: 1 request, then the next event's post")
    butler.wait_log(f"posted {events['E']} to Slack")

    # (d) no answer within requestTimeoutSeconds: never sent twice ---------------
    mark = len(slack.posts())
    slack.script("stall")
    fail("F")
    since(mark, 1, "the stalled post")
    butler.wait_log(f"does not know whether {events['F']} reached Slack")
    h.check(True, "a post without an answer within requestTimeoutSeconds is "
            "logged as of unknown outcome")
    fail("G")
    posts = since(mark, 2, "the post after the stall")
    h.check_eq((texts(posts), answers(posts)), (["F", "G"], ["stall", 200]),
               "the stalled post was sent exactly once (at most once)")
    butler.wait_log(f"posted {events['G']} to Slack")

    # (e) maxAttempts exhausted --------------------------------------------------
    mark = len(slack.posts())
    slack.script(*[(503, "service_unavailable")] * MAX_ATTEMPTS)
    fail("J")
    butler.wait_log(f"gave up on {events['J']} after {MAX_ATTEMPTS} attempts: "
                    "Slack answered 503")
    posts = slack.posts()[mark:]
    h.check_eq((texts(posts), answers(posts)),
               (["J"] * MAX_ATTEMPTS, [503] * MAX_ATTEMPTS),
               f"{MAX_ATTEMPTS} attempts, then butler gave up (logged)")

    # (f) connection refused, then the receiver comes up -------------------------
    fail("K", ABORTED)
    butler.wait_log(f"retries {events['K']} in 150 ms (attempt 2 of "
                    f"{MAX_ATTEMPTS})")
    h.check(True, "a refused connection is retried")
    late = fake_slack.FakeSlack(port=late_port).start()
    posts = h.wait_posts(late, 1, "the post once the receiver is up")
    h.check_eq((texts(posts), posts[0].path, answers(posts)),
               (["K"], LATE_PATH, [200]),
               "the refused post is delivered once the receiver listens")
    butler.wait_log(f"posted {events['K']} to Slack")

    # (g) backlog full -------------------------------------------------------------
    mark = len(slack.posts())
    slack.script("stall", "stall")
    fail("L")
    fail("M")
    since(mark, 2, "both stalled posts")
    fail("N")
    fail("O")
    butler.wait_log(f"shed {events['N']}: the Slack backlog is full (2 held")
    h.check(True, "with 2 posts held (backlogSize 2) the next event is shed "
            "and logged")
    h.check_ping(port, "butler answers ping with a full Slack backlog")
    for name in ("L", "M"):
        butler.wait_log(f"does not know whether {events[name]} reached Slack")
    fail("P")
    posts = since(mark, 3, "the post after the backlog freed up")
    h.check_eq(sorted(texts(posts)), ["L", "M", "P"],
               "the shed events (N, O) were never posted; P was")
    butler.wait_log(f"posted {events['P']} to Slack")

    # (h) the connection drops after Slack read the post -------------------------
    # Slack keeps connections alive, so the post goes out on a reused one;
    # it may have reached Slack, so it must not be sent again.
    mark = len(slack.posts())
    slack.script("close")
    fail("H")
    unknown = f"does not know whether {events['H']} reached Slack"
    h.wait_until(lambda: unknown in butler.log()
                 or texts(slack.posts()[mark:]).count("H") > 1,
                 "butler to give up on H or to send it again")
    fail("I")
    posts = since(mark, 2, "the post after the closed connection")
    h.check_eq((texts(posts), answers(posts)), (["H", "I"], ["close", 200]),
               "a post answered by closing the connection was sent exactly "
               "once (at most once)")
    h.check_in(unknown, butler.log(), "the closed connection is logged as "
               "of unknown outcome")
    butler.wait_log(f"posted {events['I']} to Slack")

    total = len(slack.posts())
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")
    h.check_eq((len(slack.posts()), len(late.posts())), (total, 1),
               "nothing more was posted")
    late.stop()
    slack.stop()

if __name__ == "__main__":
    h.main(test)

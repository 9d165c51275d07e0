#!/usr/bin/env python3
"""User audit events (UDP session port): Start/Stop session and
Open/Close connection publish `<host>: <dir>/<user>` on their topics; the
active users (count as text, JSON array of user ids) are published after
every change and only then; connections do not make a user active, a stop
for an unknown user changes nothing, a user with two sessions stays active
until both stopped; GET /activeUserCount, /v2/activeUserCount, /activeUsers
and /v2/activeUsers answer the same."""

import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

COUNT = "qliksense/users/active/count"
USERS = "qliksense/users/active/usernames"
TOPIC = {"Start session": "qliksense/session/start",
         "Stop session": "qliksense/session/stop",
         "Open connection": "qliksense/connection/open",
         "Close connection": "qliksense/connection/close"}


def test(ctx):
    broker = h.Mosquitto().start()
    sub = h.Subscriber(broker.port, "qliksense/#").start()
    port = h.free_port()
    cfg = h.udp_config(port, broker.port)
    cfg["Butler"]["restServerEndpointsEnable"].update({
        "activeUserCount": True, "activeUsers": True})
    session_port = cfg["Butler"]["udpServerConfig"][
        "portSessionConnectionEvents"]
    butler = h.Butler(ctx.butler, cfg).start()
    sub.wait_for(lambda m: m == ["start"],
                 topic="qliksense/butler/session_server",
                 what="start on the session server status topic")

    counts, lists = [], []   # every active-user publish expected so far
    audit = []               # (topic, payload) of the audit events

    def event(host, command, directory, user):
        h.send_udp(session_port, f"{host};{command};{directory};{user}")
        audit.append((TOPIC[command], f"{host}: {directory}/{user}"))

    def audit_messages():
        return [(t, p) for t, p in sub.messages() if t in TOPIC.values()]

    def expect_audit(what):
        got = h.wait_until(lambda: (lambda m: m if len(m) >= len(audit)
                                    else None)(audit_messages()),
                           f"{len(audit)} audit messages")
        h.check_eq(got, audit, what)

    def expect_change(count, users, what):
        counts.append(str(count))
        lists.append(users)
        got_counts = sub.wait_for(len(counts), topic=COUNT,
                                  what=f"active user count {count}")
        got_lists = sub.wait_for(len(lists), topic=USERS,
                                 what=f"active users {users}")
        h.check_eq((got_counts, got_lists), (counts, lists), what)

    def rest_check(count, users, what):
        for path in ("/activeUserCount", "/v2/activeUserCount"):
            res = h.http_request(port, "GET", path)
            h.check_eq((res.status, res.body.decode()), (200, str(count)),
                       f"GET {path} answers {count} ({what})")
        for path in ("/activeUsers", "/v2/activeUsers"):
            res = h.http_request(port, "GET", path)
            h.check_eq((res.status, res.body.decode()), (200, users),
                       f"GET {path} answers {users} ({what})")

    rest_check(0, "[]", "before any event")

    event("sense-node-1", "Start session", "CORP", "anna")
    expect_audit("Start session publishes 'sense-node-1: CORP/anna' on "
                 "qliksense/session/start")
    expect_change(1, '["anna"]', "after anna's start: count 1 and [\"anna\"]")

    event("sense-node-1", "Open connection", "CORP", "anna")
    event("sense-node-1", "Open connection", "LAB", "dave")
    expect_audit("Open connection publishes on qliksense/connection/open")
    event("sense-node-2", "Start session", "LAB", "bo")
    expect_change(2, '["anna","bo"]', "bo's start publishes count 2 and "
                  "[\"anna\",\"bo\"]; the connections changed nothing "
                  "(dave, with a connection only, does not count)")
    expect_audit("bo's start published on qliksense/session/start")
    rest_check(2, '["anna","bo"]', "anna and bo")

    # None of these changes the set of active users: anna opens a second
    # session and stops one, dave closes his connection, carl (unknown)
    # stops a session. zed's start afterwards is the next change published.
    event("sense-node-2", "Start session", "CORP", "anna")
    event("sense-node-1", "Stop session", "CORP", "anna")
    event("sense-node-1", "Close connection", "LAB", "dave")
    event("sense-node-1", "Stop session", "CORP", "carl")
    expect_audit("second session, stop, close connection and an unknown "
                 "user's stop are each published on their topic")
    event("sense-node-1", "Start session", "LAB", "zed")
    expect_change(3, '["anna","bo","zed"]', "anna stays active with one of "
                  "two sessions stopped; the unknown user's stop and the "
                  "connection changed nothing; zed's start is the next "
                  "publish")
    expect_audit("zed's start published")
    rest_check(3, '["anna","bo","zed"]', "anna still has a session")

    event("sense-node-2", "Stop session", "CORP", "anna")
    expect_change(2, '["bo","zed"]', "anna's second stop removes her")
    event("sense-node-2", "Stop session", "LAB", "bo")
    expect_change(1, '["zed"]', "bo's stop removes him")
    event("sense-node-1", "Stop session", "LAB", "zed")
    expect_change(0, "[]", "zed's stop leaves count 0 and []")
    expect_audit("every audit event was published once, in order")
    rest_check(0, "[]", "everyone stopped")

    # A burst: datagrams sent back to back are handled together, and still
    # every change is published, in order.
    burst = ["u1", "u2", "u3", "u4", "u5"]
    for user in burst:
        h.send_udp(session_port, f"sense-node-1;Start session;BURST;{user}")
        audit.append((TOPIC["Start session"], f"sense-node-1: BURST/{user}"))
    for i in range(1, len(burst) + 1):
        counts.append(str(i))
        lists.append("[" + ",".join(f'"{u}"' for u in burst[:i]) + "]")
    got_counts = sub.wait_for(len(counts), topic=COUNT, what="the burst counts")
    got_lists = sub.wait_for(len(lists), topic=USERS, what="the burst lists")
    h.check_eq((got_counts, got_lists), (counts, lists),
               "five session starts sent at once publish 1, 2, 3, 4, 5 in "
               "order, with the list after each")
    expect_audit("the burst's audit events were published in order")

    h.check("rejected a datagram" not in butler.log(),
            "no audit event was rejected", h.tail(butler.log_path))
    h.check_ping(port)
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")
    sub.stop()
    broker.stop()


if __name__ == "__main__":
    h.main(test)

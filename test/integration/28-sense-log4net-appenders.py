#!/usr/bin/env python3
"""The log4net appender files Butler ships for Sense (deploy/sense/**/*.xml):
every file and every UdpAppender in it is in this script's table and vice
versa; each appender is a log4net.Appender.UdpAppender sending UTF-8 to the
placeholder `butler.example.com` on its table port (9998 task events, 9997
session events), is referenced by exactly the table's logger, has exactly the
table's filter chain (its StringMatchFilter texts in order, or a
LevelRangeFilter ERROR..FATAL, then a DenyAllFilter), uses a PatternLayout
whose %hostname converter is Qlik's, and starts with the table's message
type. Then, with a real mosquitto and Butler (logLevel debug), every filter
of every appender gets a sample log line: the filter chain as log4net applies
it must accept it (and deny a line no filter matches); the ConversionPattern
is rendered as log4net would (%hostname, %property{Name}, %date as
`yyyy-MM-dd HH:mm:ss,fff`, %level, %message, %newline as nothing, %%; any
other token, a format modifier or a property without a sample value fails
the test) and sent over UDP to Butler's port for the appender's RemotePort.
Each datagram must be accepted and routed: failed and aborted reloads
publish the task name and the exact full JSON, the Butler 2 failure the task
name, proxy events `<host>: <dir>/<user>` on their topic (and the active
users change with sessions); success, distribute and engine events, which
publish nothing, must each log `no sink takes <kind> events`. Nothing else
is published and nothing is rejected."""

import datetime
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

SENSE_DIR = h.REPO_ROOT / "deploy" / "sense"
UDP_APPENDER = "log4net.Appender.UdpAppender"
PATTERN_LAYOUT = "log4net.Layout.PatternLayout"
STRING_MATCH = "log4net.Filter.StringMatchFilter"
LEVEL_RANGE = "log4net.Filter.LevelRangeFilter"
DENY_ALL = "log4net.Filter.DenyAllFilter"
HOSTNAME_CONVERTER = \
    "Qlik.Sense.Logging.log4net.Layout.Pattern.HostNamePatternConverter"
PLACEHOLDER = "butler.example.com"
TASK_PORT, SESSION_PORT = 9998, 9997   # as the XML files name them

TASK_SESSION = "System.Scheduler.Scheduler.Master.Task.TaskSession"
RELOAD_TASK = "System.Scheduler.Scheduler.Slave.Tasks.ReloadTask"
ERROR_AND_UP = [(LEVEL_RANGE, "ERROR", "FATAL"), (DENY_ALL,)]


def string_filters(*texts):
    return [(STRING_MATCH, t) for t in texts] + [(DENY_ALL,)]


# What log-events.md gives per message type. Per appender: the message type
# (first field; None when the pattern has none), the logger, the port, the
# filter chain, how Butler handles it ("kind"), and per filter a sample log
# line: its level, message and the properties that differ per line.
EXPECTED = {
    "scheduler/LocalLogConfig.xml": {
        "ButlerReloadFailed": {
            "type": "/scheduler-reload-failed/", "logger": TASK_SESSION,
            "port": TASK_PORT, "kind": "failed",
            "filters": string_filters(
                "Max retries reached", "Failed to start session",
                "Could not reserve an executor for task"),
            "samples": [
                ("ERROR", "Task finished with state FinishedFail. "
                 "Max retries reached", {}),
                ("ERROR", "Failed to start session for preload task", {}),
                ("ERROR", "Could not reserve an executor for task "
                 "after 3 attempts", {}),
            ]},
        "ButlerReloadAborted": {
            "type": "/scheduler-reload-aborted/", "logger": TASK_SESSION,
            "port": TASK_PORT, "kind": "aborted",
            "filters": string_filters("Execution State Change to Aborting"),
            "samples": [("WARN", "Execution State Change to Aborting", {})]},
        "ButlerReloadSuccess": {
            "type": "/scheduler-reloadtask-success/", "logger": TASK_SESSION,
            "port": TASK_PORT, "kind": "quiet:reload_success",
            "filters": string_filters(
                "Execution State Change to FinishedSuccess"),
            "samples": [("INFO", "Execution State Change to FinishedSuccess",
                         {})]},
        "ButlerDistribute": {
            "type": "/scheduler-distribute/", "logger": RELOAD_TASK,
            "port": TASK_PORT, "kind": "quiet:distribute",
            "filters": string_filters(
                "Exiting execute of Distribute task request."),
            "samples": [("INFO", "Exiting execute of Distribute task "
                         "request.", {})]},
    },
    "scheduler-butler2/LocalLogConfig.xml": {
        "ButlerTaskFailureButler2": {
            "type": None, "logger": RELOAD_TASK, "port": TASK_PORT,
            "kind": "legacy", "filters": ERROR_AND_UP,
            "samples": [("ERROR", "Message from ReloadProvider: reload "
                         "failed", {"UserId": "sa_scheduler"})]},
    },
    "engine/LocalLogConfig.xml": {
        "ButlerEngineReloadFailed": {
            "type": "/engine-reload-failed/", "logger": "System.Engine",
            "port": TASK_PORT, "kind": "quiet:engine_reload_failed",
            "filters": ERROR_AND_UP,
            "samples": [("ERROR", "Reload failed: script error in line 12",
                         {})]},
    },
    "proxy/LocalLogConfig.xml": {
        "ButlerUserSession": {
            "type": None, "logger": "AuditActivity.Proxy",
            "port": SESSION_PORT, "kind": "session",
            "filters": string_filters("Start session for user",
                                      "Stop session for user"),
            "samples": [
                ("INFO", "Start session for user 'CORP\\anna'",
                 {"Command": "Start session"}),
                ("INFO", "Stop session for user 'CORP\\anna'",
                 {"Command": "Stop session"}),
            ]},
        "ButlerUserConnection": {
            "type": None, "logger": "AuditActivity.Proxy",
            "port": SESSION_PORT, "kind": "session",
            "filters": string_filters("connection Opened for session",
                                      "connection Closed for session"),
            "samples": [
                ("INFO", "Websocket connection Opened for session x",
                 {"Command": "Open connection"}),
                ("INFO", "Websocket connection Closed for session x",
                 {"Command": "Close connection"}),
            ]},
    },
}

# Sample values for one log line (a line's own properties override them).
HOST = "sense-node-1"
STAMP = datetime.datetime(2024, 5, 1, 10, 11, 12, 123000)
STAMP_TEXT = "2024-05-01 10:11:12,123"   # log4net's default %date format
TASK_ID = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"
APP_ID = "7552d9fc-d1bb-4975-9a38-18357de531ea"
BASE_PROPERTIES = {
    "TaskName": "Reload of Sales ü 日本",
    "AppName": "Sales dashboard",
    "User": "CORP\\sa_scheduler",
    "UserId": "anna",
    "UserDirectory": "CORP",
    "TaskId": TASK_ID,
    "AppId": APP_ID,
    "SessionId": "4c0a9a8e-8f35-4a6e-9d2c-2b1f0e6d7c5b",
    "ActiveUserDirectory": "CORP",
    "ActiveUserId": "anna",
}
LEVELS = ["DEBUG", "INFO", "WARN", "ERROR", "FATAL"]

TOPIC = {"Start session": "qliksense/session/start",
         "Stop session": "qliksense/session/stop",
         "Open connection": "qliksense/connection/open",
         "Close connection": "qliksense/connection/close"}
COUNT = "qliksense/users/active/count"
USERS = "qliksense/users/active/usernames"


# -- reading the XML ------------------------------------------------------------


def param(elem, name, where):
    """Returns the value of property `name` of `elem` as log4net reads it:
    `<param name="Name" value="..."/>` or `<Name value="..."/>`, names
    case-insensitive. None when absent; fails when given twice."""
    found = []
    for child in elem:
        tag = child.tag if isinstance(child.tag, str) else ""
        key = child.get("name") if tag.lower() == "param" else tag
        if key is not None and key.lower() == name.lower():
            found.append(child.get("value"))
    if len(found) > 1:
        raise h.CheckFailed(f"{where}: {name} is set {len(found)} times")
    return found[0] if found else None


def read_filters(appender, where):
    """Returns the filter chain as tuples: (STRING_MATCH, text,
    accept_on_match), (LEVEL_RANGE, min, max, accept_on_match), (DENY_ALL,)."""
    chain = []
    for f in appender.findall("filter"):
        kind = f.get("type")
        accept = (param(f, "AcceptOnMatch", where) or "true").lower() == "true"
        if kind == STRING_MATCH:
            chain.append((kind, param(f, "StringToMatch", where), accept))
        elif kind == LEVEL_RANGE:
            chain.append((kind, param(f, "LevelMin", where),
                          param(f, "LevelMax", where), accept))
        elif kind == DENY_ALL:
            chain.append((kind,))
        else:
            h.check(False, f"{where}: filter type {kind} is one the test "
                    "knows")
    return chain


def comparable(chain):
    """The chain without the AcceptOnMatch flags (all must be true)."""
    out = []
    for f in chain:
        if f[0] == STRING_MATCH:
            out.append((f[0], f[1]))
        elif f[0] == LEVEL_RANGE:
            out.append((f[0], f[1], f[2]))
        else:
            out.append(f)
    return out


def decide(chain, level, message):
    """Applies the filter chain the way log4net does: the first filter that
    does not answer Neutral decides; all Neutral means accepted."""
    for f in chain:
        if f[0] == STRING_MATCH:
            if f[1] and f[1] in message:
                return "accept" if f[2] else "deny"
        elif f[0] == LEVEL_RANGE:
            rank = LEVELS.index(level)
            if f[1] and rank < LEVELS.index(f[1]):
                return "deny"
            if f[2] and rank > LEVELS.index(f[2]):
                return "deny"
            if f[3]:
                return "accept"
        elif f[0] == DENY_ALL:
            return "deny"
    return "accept"


def load_appenders():
    """Parses every XML file under deploy/sense and checks it against
    EXPECTED; returns [(file, name, spec, pattern, converters, chain)]."""
    files = sorted(p.relative_to(SENSE_DIR).as_posix()
                   for p in SENSE_DIR.rglob("*.xml"))
    h.check_eq(files, sorted(EXPECTED), "the XML files under deploy/sense "
               "are exactly the ones in the table")
    result = []
    for rel in files:
        root = ET.parse(SENSE_DIR / rel).getroot()
        h.check_eq(root.tag, "configuration",
                   f"{rel}: the root element is <configuration>")
        appenders = root.findall("appender")
        names = [a.get("name") for a in appenders]
        h.check_eq(sorted(names), sorted(EXPECTED[rel]),
                   f"{rel}: its appenders are exactly {sorted(EXPECTED[rel])}")
        refs = {}   # appender name -> loggers that reference it
        for logger in root.findall("logger"):
            for ref in logger.findall("appender-ref"):
                refs.setdefault(ref.get("ref"), []).append(logger.get("name"))
        h.check(set(refs) <= set(names),
                f"{rel}: every appender-ref names an appender of the file",
                sorted(set(refs) - set(names)))
        h.check(root.find("root") is None,
                f"{rel}: no <root> element (only named loggers)")
        for appender in appenders:
            name = appender.get("name")
            spec = EXPECTED[rel][name]
            where = f"{rel} {name}"
            h.check_eq(appender.get("type"), UDP_APPENDER,
                       f"{where}: is a {UDP_APPENDER}")
            h.check_eq(refs.get(name), [spec["logger"]],
                       f"{where}: is used by logger {spec['logger']} only")
            h.check_eq(param(appender, "RemoteAddress", where), PLACEHOLDER,
                       f"{where}: RemoteAddress is the placeholder "
                       f"{PLACEHOLDER}")
            h.check_eq(param(appender, "RemotePort", where),
                       str(spec["port"]), f"{where}: RemotePort is "
                       f"{spec['port']}")
            h.check_eq((param(appender, "Encoding", where) or "").lower(),
                       "utf-8", f"{where}: Encoding is utf-8")
            h.check_eq(param(appender, "Threshold", where), None,
                       f"{where}: no Threshold (levels go through filters)")
            chain = read_filters(appender, where)
            h.check_eq(comparable(chain), spec["filters"],
                       f"{where}: filters are {spec['filters']}")
            h.check(all(f[-1] is True for f in chain if f[0] != DENY_ALL),
                    f"{where}: every match filter accepts on match")
            layouts = appender.findall("layout")
            h.check(len(layouts) == 1 and
                    layouts[0].get("type") == PATTERN_LAYOUT,
                    f"{where}: has one {PATTERN_LAYOUT}")
            converters = {}
            for conv in layouts[0].findall("converter"):
                converters[param(conv, "Name", where)] = \
                    param(conv, "Type", where)
            pattern = param(layouts[0], "ConversionPattern", where)
            h.check(pattern, f"{where}: has a ConversionPattern")
            first = pattern.split(";", 1)[0]
            if spec["type"] is None:
                h.check_eq(first, "%hostname", f"{where}: the pattern has no "
                           "type field and starts with %hostname")
            else:
                h.check_eq(first, spec["type"], f"{where}: the message type "
                           f"is {spec['type']}")
            result.append((rel, name, spec, pattern, converters, chain))
    return result


# -- rendering as log4net -------------------------------------------------------

TOKEN = re.compile(r"%(?:(%)|(?P<mod>[-.0-9]*)(?P<name>[A-Za-z]+)"
                   r"(?:\{(?P<opt>[^}]*)\})?)")


def render(pattern, converters, level, message, properties, where):
    """Returns what log4net's PatternLayout writes for one line, failing on
    any token this renderer does not know."""
    out, pos = [], 0

    def literal(text):
        if "%" in text:
            raise h.CheckFailed(f"{where}: a stray % in the pattern "
                                f"{pattern!r}")
        out.append(text)

    for m in TOKEN.finditer(pattern):
        literal(pattern[pos:m.start()])
        pos = m.end()
        if m.group(1):
            out.append("%")
            continue
        mod, name, opt = m.group("mod"), m.group("name"), m.group("opt")
        token = m.group(0)
        known = not mod
        if known and name == "hostname" and opt is None:
            known = converters.get("hostname") == HOSTNAME_CONVERTER
            out.append(HOST)
        elif known and name == "property" and opt in properties:
            out.append(properties[opt])
        elif known and name == "date" and opt in (None, "ISO8601"):
            out.append(STAMP.strftime("%Y-%m-%d %H:%M:%S,")
                       + f"{STAMP.microsecond // 1000:03d}")
        elif known and name == "level" and opt is None:
            out.append(level)
        elif known and name == "message" and opt is None:
            out.append(message)
        elif known and name == "newline" and opt is None:
            pass   # a UDP datagram: Butler strips one trailing newline
        else:
            known = False
        if not known:
            raise h.CheckFailed(f"{where}: pattern token {token} is not one "
                                "the renderer knows (or lacks its converter "
                                f"or a sample value): {pattern!r}")
    literal(pattern[pos:])
    return "".join(out)


def full_json(props, level, message, execution_id):
    """Butler's full message for a failed/aborted scheduler event."""
    return json.dumps({
        "hostName": HOST, "user": props["User"],
        "taskName": props["TaskName"], "taskId": props["TaskId"],
        "appName": props["AppName"], "appId": props["AppId"],
        "logTimeStamp": STAMP_TEXT, "logLevel": level,
        "executionId": execution_id, "logMessage": message,
        "qs_appTags": [], "qs_appCustomProperties": {}, "qs_taskTags": [],
        "qs_taskCustomProperties": {}, "qs_taskMetadata": {}},
        separators=(",", ":"), ensure_ascii=False)


# -- the test -------------------------------------------------------------------


def test(ctx):
    appenders = load_appenders()

    broker = h.Mosquitto().start()
    sub = h.Subscriber(broker.port, "qliksense/#").start()
    rest_port = h.free_port()
    cfg = h.udp_config(rest_port, broker.port)
    cfg["Butler"]["logLevel"] = "debug"
    udp = cfg["Butler"]["udpServerConfig"]
    port_for = {TASK_PORT: udp["portTaskFailure"],
                SESSION_PORT: udp["portSessionConnectionEvents"]}
    butler = h.Butler(ctx.butler, cfg).start()
    sub.wait_for(lambda m: m == ["start"], topic="qliksense/butler/"
                 "session_server", what="start on the session server topic")
    sub.wait_for(lambda m: m == ["start"], topic="qliksense/butler/"
                 "task_failure_server", what="start on the task server topic")

    def events():
        """Published messages other than Butler's status topics."""
        return [(t, p) for t, p in sub.messages()
                if not t.startswith("qliksense/butler/")
                and t not in (COUNT, USERS)]

    expected = []            # (topic, payload) of events(), in order
    counts, lists = [], []   # active-user publishes expected
    active = []              # active users, in start order
    quiet = {}               # kind -> "no sink takes" lines expected
    n = 0

    # Appenders whose events publish nothing go first, so that anything
    # they published by mistake would show up among the later events.
    appenders.sort(key=lambda a: not a[2]["kind"].startswith("quiet:"))
    for rel, name, spec, pattern, converters, chain in appenders:
        where = f"{rel} {name}"
        h.check_eq(len(spec["samples"]), len(spec["filters"]) - 1
                   if spec["filters"][0][0] == STRING_MATCH else 1,
                   f"{where}: the table has one sample line per match filter")
        texts = [f[1] for f in chain if f[0] == STRING_MATCH]
        if texts:
            h.check(all(t in m for t, (_, m, _) in zip(texts,
                                                       spec["samples"])),
                    f"{where}: sample line i contains filter text i", texts)
        for level, message, own in spec["samples"]:
            n += 1
            execution_id = f"fb0f317d-da91-4b86-aafa-{n:012x}"
            props = dict(BASE_PROPERTIES, ExecutionId=execution_id, **own)
            h.check_eq(decide(chain, level, message), "accept",
                       f"{where}: log4net's filters accept the {level} line "
                       f"{message!r}")
            h.check_eq(decide(chain, "WARN" if level != "WARN" else "INFO",
                              "Execution State Change to Started"), "deny",
                       f"{where}: a line no filter matches is denied")
            data = render(pattern, converters, level, message, props, where)
            h.check(True, f"{where}: the pattern renders with known tokens "
                    f"only: {data!r}")
            h.send_udp(port_for[spec["port"]], data)
            kind = spec["kind"]
            if kind.startswith("quiet:"):
                k = kind.split(":", 1)[1]
                quiet[k] = quiet.get(k, 0) + 1
                butler.wait_log(f"no sink takes {k} events", count=quiet[k])
                h.check(True, f"{where}: accepted as event kind {k} "
                        "(nothing to publish)")
                continue
            if kind == "failed":
                pairs = [("qliksense/task_failure", props["TaskName"]),
                         ("qliksense/task_failure_full",
                          full_json(props, level, message, execution_id))]
            elif kind == "aborted":
                pairs = [("qliksense/task_aborted", props["TaskName"]),
                         ("qliksense/task_aborted_full",
                          full_json(props, level, message, execution_id))]
            elif kind == "legacy":
                pairs = [("qliksense/task_failure", props["TaskName"])]
            else:   # session
                command = props["Command"]
                pairs = [(TOPIC[command], f"{HOST}: {props['UserDirectory']}"
                          f"/{props['UserId']}")]
                user = props["UserId"]
                changed = False
                if command == "Start session" and user not in active:
                    active.append(user)
                    changed = True
                elif command == "Stop session" and user in active:
                    active.remove(user)
                    changed = True
                if changed:
                    counts.append(str(len(active)))
                    lists.append(json.dumps(active, separators=(",", ":")))
            expected.extend(pairs)
            got = h.wait_until(lambda: (lambda m: m if len(m) >= len(expected)
                                        else None)(events()),
                               f"{where}: the MQTT messages for {data!r}")
            h.check_eq(got, expected, f"{where}: accepted and published "
                       f"on {[t for t, _ in pairs]} with the expected "
                       "payload")

    got_counts = sub.wait_for(len(counts), topic=COUNT,
                              what="the active user counts")
    got_lists = sub.wait_for(len(lists), topic=USERS,
                             what="the active user lists")
    h.check_eq((got_counts, got_lists), (counts, lists),
               "session starts and stops change the active users")
    h.check_eq(events(), expected, "nothing else was published")
    h.check("rejected a datagram" not in butler.log(),
            "no datagram rendered from an appender was rejected",
            h.tail(butler.log_path))
    h.check_ping(rest_port)
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")
    sub.stop()
    broker.stop()


if __name__ == "__main__":
    h.main(test)

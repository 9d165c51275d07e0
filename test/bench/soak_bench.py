#!/usr/bin/env python3
"""Soak benchmark of Butler: the real binary under steady mixed load for a
long time (UDP task failures forwarded to a real mosquitto, REST pings and
MQTT publishes through REST), watching its memory, file descriptors,
threads and every counter that shows loss or shedding.

    python3 test/bench/soak_bench.py --butler build/butler [--minutes 30]
        [--udp-rate 25000] [--sample-seconds 10] [--warmup-minutes 2]
        [--ping-rate 200] [--publish-rate 20] [--full]

Load, for --minutes:
  - valid /scheduler-reload-failed/ datagrams on the task port at --udp-rate
    per second (default: half the 50,000/s Butler forwards without loss),
    each with its own execution id so deduplication keeps them all, sent in
    batches every 2 ms from a process of their own;
  - GET /v4/butlerping at --ping-rate per second and
    PUT /v4/mqttpublishmessage (topic qliksense/soak/rest) at --publish-rate
    per second, each on one keep-alive connection, from another process;
  - mosquitto_sub on qliksense/# counts what Butler publishes, per topic.
Butler runs with the MQTT settings udp_bench measured the 50,000/s under:
each event is published on qliksense/task_failure (the task name) only
(taskFailureSendFull off; --full turns it on, as Butler's default is, which
doubles the messages on the MQTT side), and Butler subscribes to qliksense/#
(the default), so the broker also sends every message Butler publishes back
to it.

Every --sample-seconds it scrapes GET /metrics and prints one line: rates
over the interval, RSS, open fds, threads, the MQTT backlog and the sum of
the loss and shedding counters. At the end it prints the achieved rates;
datagrams sent against butler_udp_datagrams_accepted_total against the
messages the subscriber received; the RSS slope and growth after warm-up
(least-squares fit over the samples after --warmup-minutes; aim: under 1 MB);
fds and threads first and last (aim: no growth); every counter that shows
loss or shedding (aim: zero). It exits non-zero only if Butler crashed or
did not exit 0 on SIGTERM: a missed aim is reported, not failed.

Figures depend on the machine: the load generator (two Python processes and
mosquitto_sub), mosquitto and Butler share its cores, so a busy or small
machine shows up as a send rate below the target or as loss that Butler
alone would not have.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import harness as h  # noqa: E402

FAILURE_TOPIC = "qliksense/task_failure"
FULL_TOPIC = "qliksense/task_failure_full"
REST_TOPIC = "qliksense/soak/rest"
PROBE_TOPIC = "qliksense/soak/probe"
BATCH_SECONDS = 0.002
#: The aim for RSS growth after warm-up, bytes.
RSS_AIM = 1_000_000

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")

#: Counters (every label set) that stay zero unless Butler lost, shed or
#: refused something: every datagram sent is valid and distinct.
LOSS_COUNTERS = (
    "butler_udp_kernel_drops_total",
    "butler_udp_events_shed_total",
    "butler_udp_datagrams_rejected_total",
    "butler_events_dropped_total",
    "butler_events_unrouted_total",
    "butler_mqtt_publish_failures_total",
    "butler_mqtt_events_shed_total",
)
#: Counters that stay zero in a healthy run without being loss themselves.
TROUBLE_COUNTERS = (
    "butler_actor_restarts_total",
    "butler_mqtt_connect_failures_total",
)

# -- /metrics -----------------------------------------------------------------


def parse_metrics(text):
    """Returns {(name, labels text): value} of a Prometheus text scrape."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if m:
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def scrape(port):
    """Returns the parsed GET /metrics of Butler on `port`."""
    res = h.http_request(port, "GET", "/metrics", timeout=10)
    if res.status != 200:
        raise RuntimeError(f"GET /metrics answered {res.status}")
    return parse_metrics(res.body.decode("utf-8"))


def value(samples, name, labels=""):
    return samples.get((name, labels), 0.0)


def family(samples, name):
    """Returns {labels text: value} of every sample of `name`."""
    return {lab: v for (n, lab), v in samples.items() if n == name}


def loss_total(samples):
    return sum(sum(family(samples, name).values()) for name in LOSS_COUNTERS)


def proc_status(pid):
    """Returns (VmRSS bytes, Threads, open fds) from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        fields[key] = rest.split()
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return int(fields["VmRSS"][0]) * 1024, int(fields["Threads"][0]), fds


def cpu_seconds(pid):
    """Returns the user+system CPU time `pid` has used, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- load generators (each in a process of its own) ---------------------------


def udp_sender(port, rate, start, stop, shared):
    """Sends valid task-failure datagrams with distinct execution ids at
    `rate` per second in batches every BATCH_SECONDS, catching up after a
    late wake-up but never by more than 100 ms of datagrams at once (a
    longer stall is skipped and counted). shared: [sent, send errors,
    skipped, CPU microseconds of this process]."""
    tag = random.getrandbits(32)
    template = h.scheduler_datagram(
        "/scheduler-reload-failed/", task_name="Reload of Soak",
        execution_id=f"{tag:08x}-0000-4000-8000-@@@@")
    head, tail = template.encode().split(b"@@@@")
    head += b"%012x"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    send = sock.send
    max_burst = max(1, int(rate * 0.1))
    start.wait()
    begin = time.monotonic()
    n = 0        # datagrams attempted
    skipped = 0  # datagrams dropped from the schedule after a stall
    errors = 0
    tick = 0
    while not stop.is_set():
        tick += 1
        due = int(rate * (time.monotonic() - begin)) - n - skipped
        if due > max_burst:
            skipped += due - max_burst
            due = max_burst
        for i in range(n, n + due):
            try:
                send(head % i + tail)
            except OSError:
                errors += 1
        n += due
        shared[0] = n - errors
        shared[1] = errors
        shared[2] = skipped
        left = begin + tick * BATCH_SECONDS - time.monotonic()
        if left > 0:
            time.sleep(left)
    shared[3] = int(time.process_time() * 1e6)
    sock.close()


def http_load(port, ping_rate, publish_rate, start, stop, shared):
    """GET /v4/butlerping at `ping_rate`/s and PUT /v4/mqttpublishmessage at
    `publish_rate`/s, each on its own keep-alive connection. shared: [pings
    ok, publishes ok, non-2xx answers, request errors, connections opened,
    CPU microseconds of this process]."""
    ping = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    put = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json"}

    def call(conn, method, path, body, ok_slot):
        if conn.sock is None:
            shared[4] += 1
        try:
            conn.request(method, path, body=body,
                         headers=headers if body else {})
            res = conn.getresponse()
            res.read()
            if 200 <= res.status < 300:
                shared[ok_slot] += 1
            else:
                shared[2] += 1
        except (OSError, http.client.HTTPException):
            shared[3] += 1
            conn.close()
            time.sleep(0.05)

    start.wait()
    begin = time.monotonic()
    pings = puts = 0
    while not stop.is_set():
        elapsed = time.monotonic() - begin
        for _ in range(min(int(ping_rate * elapsed) - pings, 50)):
            call(ping, "GET", "/v4/butlerping", None, 0)
            pings += 1
        for _ in range(min(int(publish_rate * elapsed) - puts, 10)):
            body = json.dumps({"topic": REST_TOPIC,
                               "message": f"soak message {puts}"})
            call(put, "PUT", "/v4/mqttpublishmessage", body, 1)
            puts += 1
        time.sleep(0.005)
    ping.close()
    put.close()
    shared[5] = int(time.process_time() * 1e6)


# -- the MQTT subscriber ------------------------------------------------------


class TopicCounter:
    """mosquitto_sub -v on qliksense/#, counting the messages per topic in
    a thread (it keeps no payloads: a soak run receives tens of millions)."""

    def __init__(self, port):
        self.proc = h.spawn(["mosquitto_sub", "-h", "127.0.0.1", "-p",
                             str(port), "-t", "qliksense/#", "-v"],
                            "mosquitto_sub qliksense/#",
                            stdout=subprocess.PIPE)
        self.lock = threading.Lock()
        self.counts = {}
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        fd = self.proc.stdout.fileno()
        carry = b""
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return
            lines = (carry + chunk).split(b"\n")
            carry = lines.pop()
            local = {}
            for line in lines:
                topic = line.split(b" ", 1)[0]
                local[topic] = local.get(topic, 0) + 1
            with self.lock:
                for topic, count in local.items():
                    key = topic.decode("utf-8", "replace")
                    self.counts[key] = self.counts.get(key, 0) + count

    def count(self, topic):
        with self.lock:
            return self.counts.get(topic, 0)

    def all_counts(self):
        with self.lock:
            return dict(self.counts)

    def wait_subscribed(self, broker_port):
        """Publishes probes until one comes back: the subscription is on."""
        def probed():
            if self.proc.poll() is not None:
                raise h.CheckFailed(f"mosquitto_sub exited with "
                                    f"{self.proc.returncode}")
            h.mosquitto_pub(broker_port, PROBE_TOPIC, "probe")
            return self.count(PROBE_TOPIC) > 0
        h.wait_until(probed, "mosquitto_sub to subscribe", 10, interval=0.2)

    def stop(self):
        """Stops mosquitto_sub (which flushes its output on SIGTERM) and
        waits until everything it printed has been counted."""
        h.end_process(self.proc, signal.SIGTERM, 5.0)
        self.thread.join(10.0)


# -- figures ------------------------------------------------------------------


def least_squares(points):
    """Returns (slope, intercept) of the least-squares line through the
    (x, y) `points`."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    sxy = sum((x - mx) * (y - my) for x, y in points)
    slope = sxy / sxx if sxx else 0.0
    return slope, my - slope * mx


def thousands(x):
    return f"{x:,.0f}"


def mib(b):
    return f"{b / 1048576:.1f} MiB"


class Run:
    """One soak run: the processes, the load and the samples."""

    def __init__(self, args):
        self.args = args
        self.samples = []   # (t, metrics, sent, pings, puts, received)
        self.crashed = False

    # -- setup --

    def start(self):
        a = self.args
        self.broker = h.Mosquitto().start()
        self.port = h.free_port()
        cfg = h.udp_config(self.port, self.broker.port)
        cfg["Butler"]["logLevel"] = "info"
        cfg["Butler"]["mqttConfig"]["taskFailureSendFull"] = a.full
        self.task_port = cfg["Butler"]["udpServerConfig"]["portTaskFailure"]
        self.butler = h.Butler(a.butler, cfg, name="butler-soak").start()
        self.pid = self.butler.proc.pid

        def ready():
            m = scrape(self.port)
            return (value(m, "butler_ready") == 1
                    and value(m, "butler_mqtt_connected") == 1)
        h.wait_until(ready, "butler_ready and butler_mqtt_connected", 10,
                     interval=0.1)

        # The load generators are forked before any thread starts here.
        ctx = multiprocessing.get_context("fork")
        self.go = ctx.Event()
        self.halt = ctx.Event()
        self.udp_shared = ctx.RawArray("q", 4)
        self.http_shared = ctx.RawArray("q", 6)
        self.udp_proc = ctx.Process(
            target=udp_sender, daemon=True,
            args=(self.task_port, a.udp_rate, self.go, self.halt,
                  self.udp_shared))
        self.http_proc = ctx.Process(
            target=http_load, daemon=True,
            args=(self.port, a.ping_rate, a.publish_rate, self.go, self.halt,
                  self.http_shared))
        self.udp_proc.start()
        self.http_proc.start()

        self.sub = TopicCounter(self.broker.port)
        self.sub.wait_subscribed(self.broker.port)
        time.sleep(1.0)  # start-up allocations settle before the first figure
        self.idle = scrape(self.port)
        self.idle_proc = proc_status(self.pid)

    def print_header(self):
        a = self.args
        rss, threads, fds = self.idle_proc
        m = self.idle
        rmem = Path("/proc/sys/net/core/rmem_max").read_text().strip()
        print(f"soak_bench: butler {a.butler} (pid {self.pid})")
        print(f"  {os.cpu_count()} cores, load average "
              f"{os.getloadavg()[0]:.2f}, net.core.rmem_max {rmem}")
        print(f"  {a.minutes:g} min of load, warm-up {a.warmup_minutes:g} "
              f"min, a sample every {a.sample_seconds:g} s")
        print(f"  load: {thousands(a.udp_rate)} task-failure datagrams/s "
              f"(UDP :{self.task_port}), {a.ping_rate:g} GET "
              f"/v4/butlerping/s and {a.publish_rate:g} PUT "
              f"/v4/mqttpublishmessage/s (REST :{self.port}, keep-alive)")
        print(f"  mosquitto :{self.broker.port}; mosquitto_sub on "
              f"qliksense/#; butler subscribes to qliksense/# (default), so "
              f"it also gets its own messages back; taskFailureSendFull "
              f"{'on' if a.full else 'off'}")
        idle_rss = value(m, "butler_process_resident_memory_bytes")
        print(f"  at idle: RSS {mib(idle_rss)} (/proc: {mib(rss)}), open fds "
              f"{value(m, 'butler_process_open_fds'):.0f} (/proc: {fds}), "
              f"threads {value(m, 'butler_process_threads'):.0f} "
              f"(/proc: {threads})")
        print()
        print(f"{'t s':>6} {'UDP sent/s':>10} {'accept/s':>9} "
              f"{'MQTT rx/s':>9} {'ping/s':>6} {'put/s':>5} {'RSS MiB':>8} "
              f"{'fds':>4} {'thr':>4} {'backlog':>7} {'inflight':>8} "
              f"{'loss ctr':>8} {'CPU %':>5}")
        print("  (rates over each interval; loss ctr: the loss and shedding "
              "counters summed, so far; CPU %: butler's, of one core)")
        sys.stdout.flush()

    # -- the run --

    def snapshot(self, t, m):
        self.samples.append((t, m, self.udp_shared[0], self.http_shared[0],
                             self.http_shared[1],
                             self.sub.count(FAILURE_TOPIC)))

    def print_sample(self):
        t, m, sent, pings, puts, rx = self.samples[-1]
        pt, pm, psent, ppings, pputs, prx = self.samples[-2]
        dt = t - pt
        cpu = (value(m, "butler_process_cpu_seconds_total")
               - value(pm, "butler_process_cpu_seconds_total"))
        rss = value(m, "butler_process_resident_memory_bytes")
        accepted = (value(m, "butler_udp_datagrams_accepted_total")
                    - value(pm, "butler_udp_datagrams_accepted_total"))
        print(f"{t:6.0f} {(sent - psent) / dt:10,.0f} {accepted / dt:9,.0f} "
              f"{(rx - prx) / dt:9,.0f} {(pings - ppings) / dt:6.0f} "
              f"{(puts - pputs) / dt:5.0f} "
              f"{rss / 1048576:8.1f} "
              f"{value(m, 'butler_process_open_fds'):4.0f} "
              f"{value(m, 'butler_process_threads'):4.0f} "
              f"{value(m, 'butler_mqtt_backlog_messages'):7.0f} "
              f"{value(m, 'butler_udp_events_in_flight'):8.0f} "
              f"{loss_total(m):8,.0f} {cpu / dt * 100:5.0f}", flush=True)

    def butler_alive(self):
        if self.butler.proc.poll() is None:
            return True
        self.crashed = True
        print(f"\nbutler exited with {self.butler.proc.returncode} during the "
              f"run; last lines of its log:\n{h.tail(self.butler.log_path)}",
              flush=True)
        return False

    def load(self):
        a = self.args
        self.go.set()
        self.begin = time.monotonic()
        self.cpu_begin = self.other_cpu()
        self.snapshot(0.0, self.idle)
        end = self.begin + a.minutes * 60
        next_sample = self.begin + a.sample_seconds
        while True:
            now = time.monotonic()
            if now >= end:
                break
            time.sleep(min(1.0, next_sample - now, end - now))
            if not self.butler_alive():
                break
            if time.monotonic() >= next_sample:
                next_sample += a.sample_seconds
                t = time.monotonic() - self.begin
                try:
                    m = scrape(self.port)
                except (OSError, http.client.HTTPException,
                        RuntimeError) as e:
                    print(f"{t:6.0f} GET /metrics failed: {e}", flush=True)
                    continue
                self.snapshot(t, m)
                self.print_sample()
        self.halt.set()
        self.load_seconds = time.monotonic() - self.begin
        self.udp_proc.join(10)
        self.http_proc.join(10)

    def drain(self):
        """Waits until Butler has read every datagram sent and handed every
        event to the broker, then stops the subscriber."""
        sent = self.udp_shared[0]
        stable = [None, 0]

        def settled():
            m = scrape(self.port)
            seen = (value(m, "butler_udp_datagrams_received_total")
                    + value(m, "butler_udp_kernel_drops_total"))
            key = (seen, value(m, "butler_mqtt_publishes_total"),
                   self.sub.count(FAILURE_TOPIC))
            stable[1] = stable[1] + 1 if key == stable[0] else 0
            stable[0] = key
            return (seen >= sent
                    and value(m, "butler_udp_events_in_flight") == 0
                    and value(m, "butler_mqtt_backlog_messages") == 0
                    and stable[1] >= 3)
        try:
            h.wait_until(settled, "butler to forward what was sent", 60,
                         interval=0.5)
        except h.CheckFailed as e:
            print(f"  ({e}: the figures below include what was still on its "
                  f"way)")
        self.final = scrape(self.port)
        self.final_proc = proc_status(self.pid)
        self.cpu_end = self.other_cpu()
        self.sub.stop()

    def other_cpu(self):
        """CPU seconds used so far by mosquitto_sub, this process (its
        counting thread) and mosquitto."""
        return (cpu_seconds(self.sub.proc.pid), time.process_time(),
                cpu_seconds(self.broker.proc.pid))

    # -- the summary --

    def report_rates(self):
        a = self.args
        secs = self.load_seconds
        sent, errors, skipped, udp_cpu = self.udp_shared
        pings, puts, non2xx, req_errors, conns, http_cpu = self.http_shared
        print(f"  load ran {secs:.1f} s")
        print(f"  UDP: {thousands(sent / secs)} datagrams/s achieved of "
              f"{thousands(a.udp_rate)} targeted ({thousands(sent)} sent"
              + (f", {thousands(errors)} send errors" if errors else "")
              + (f", {thousands(skipped)} left out after sender stalls "
                 f"over 100 ms" if skipped else "")
              + f"); the sender used {udp_cpu / 1e6 / secs * 100:.0f}% of a "
              f"core")
        print(f"  REST: {pings / secs:,.0f} pings/s of {a.ping_rate:g}, "
              f"{puts / secs:,.1f} publishes/s of {a.publish_rate:g}; "
              f"{non2xx} non-2xx, {req_errors} request errors, {conns} "
              f"connections opened; the client used "
              f"{http_cpu / 1e6 / secs * 100:.0f}% of a core")
        sub, counter, broker = (e - b for e, b in zip(self.cpu_end,
                                                      self.cpu_begin))
        print(f"  other CPU, % of a core: mosquitto_sub {sub / secs * 100:.0f}"
              f", its counter and the sampling {counter / secs * 100:.0f}, "
              f"mosquitto {broker / secs * 100:.0f}")
        m0, m = self.idle, self.final
        cpu = (value(m, "butler_process_cpu_seconds_total")
               - value(m0, "butler_process_cpu_seconds_total"))
        print(f"  butler CPU: {cpu / secs * 100:.0f}% of a core on average, "
              f"{cpu / max(sent, 1) * 1e6:.1f} us per datagram (all its work "
              f"counted)")

    def report_counts(self):
        m0, m = self.idle, self.final
        sent = self.udp_shared[0]

        def grew(name, labels=""):
            return value(m, name, labels) - value(m0, name, labels)
        received = grew("butler_udp_datagrams_received_total")
        accepted = grew("butler_udp_datagrams_accepted_total")
        routed = grew("butler_events_routed_total", '{sink="mqtt-link"}')
        rx = self.sub.count(FAILURE_TOPIC)
        full_rx = self.sub.count(FULL_TOPIC)
        rest_rx = self.sub.count(REST_TOPIC)
        backlog = value(m, "butler_mqtt_backlog_messages")
        print(f"  datagrams sent {thousands(sent)}, read by butler "
              f"{thousands(received)}, accepted {thousands(accepted)}, "
              f"routed to mqtt-link {thousands(routed)}, received on "
              f"{FAILURE_TOPIC} by the subscriber {thousands(rx)}"
              + (f" (and {thousands(full_rx)} on {FULL_TOPIC})"
                 if self.args.full else ""))
        lost = sent - rx
        print(f"  loss (sent - received): {thousands(lost)} "
              f"({lost / max(sent, 1) * 100:.4f}%), MQTT backlog at the end "
              f"{backlog:.0f} (aim: 0)")
        puts = self.http_shared[1]
        print(f"  REST publishes answered 2xx {thousands(puts)}, received on "
              f"{REST_TOPIC} {thousands(rest_rx)}")
        others = {t: c for t, c in self.sub.all_counts().items()
                  if t not in (FAILURE_TOPIC, FULL_TOPIC, REST_TOPIC,
                                PROBE_TOPIC)}
        if others:
            print("  other topics the subscriber saw: "
                  + ", ".join(f"{t} {c}" for t, c in sorted(others.items())))

    def report_memory(self):
        a = self.args
        warm = a.warmup_minutes * 60
        points = [(t, value(m, "butler_process_resident_memory_bytes"))
                  for t, m, *_ in self.samples if t >= warm and t > 0]
        rss = [(t, value(m, "butler_process_resident_memory_bytes"))
               for t, m, *_ in self.samples if t > 0]
        idle = value(self.idle, "butler_process_resident_memory_bytes")
        if rss:
            print(f"  RSS: idle {mib(idle)}, under load first "
                  f"{mib(rss[0][1])}, peak {mib(max(r for _, r in rss))}, "
                  f"last {mib(rss[-1][1])}")
        if len(points) < 3:
            print(f"  RSS after warm-up: only {len(points)} sample(s) after "
                  f"{warm:g} s, too few for a slope")
            return
        slope, _ = least_squares(points)      # bytes per second
        span = points[-1][0] - points[0][0]
        growth = slope * span
        print(f"  RSS after warm-up ({len(points)} samples over "
              f"{span / 60:.1f} min): from {mib(points[0][1])} to "
              f"{mib(points[-1][1])}, min {mib(min(r for _, r in points))}, "
              f"max {mib(max(r for _, r in points))}")
        print(f"  RSS slope after warm-up: {slope * 3600 / 1024:+,.0f} KiB/h "
              f"(least squares); growth over the {span / 60:.1f} min: "
              f"{growth / 1024:+,.0f} KiB; aim under "
              f"{RSS_AIM / 1024:,.0f} KiB (1 MB): "
              f"{'met' if growth < RSS_AIM else 'MISSED'}")

    def report_resources(self):
        # The figures of /metrics include the scrape's own connection; under
        # load, also the two keep-alive REST connections.
        under = [m for t, m, *_ in self.samples if t > 0] or [self.final]
        for name, what in (("butler_process_open_fds", "open fds"),
                           ("butler_process_threads", "threads")):
            vals = [value(m, name) for m in under]
            idle, after = value(self.idle, name), value(self.final, name)
            met = vals[-1] <= vals[0] and after <= idle
            print(f"  {what}: under load first {vals[0]:.0f}, last "
                  f"{vals[-1]:.0f}, max {max(vals):.0f}; idle before "
                  f"{idle:.0f}, after {after:.0f} (aim: no growth): "
                  f"{'met' if met else 'MISSED'}")
        rss, threads, fds = self.final_proc
        print(f"  /proc after the load: RSS {mib(rss)}, fds {fds} (no "
              f"request open), threads {threads}")

    def report_loss_counters(self):
        m = self.final
        found = []
        for name in LOSS_COUNTERS + TROUBLE_COUNTERS:
            for labels, v in sorted(family(m, name).items()):
                if v:
                    found.append(f"{name}{labels} {v:,.0f}")
        for labels, v in sorted(family(m, "butler_http_requests_total")
                                .items()):
            status = re.search(r'status="(\d+)"', labels)
            if v and status and not status.group(1).startswith("2"):
                found.append(f"butler_http_requests_total{labels} {v:,.0f}")
        connects = value(m, "butler_mqtt_connects_total")
        if connects > 1:
            found.append(f"butler_mqtt_connects_total {connects:,.0f} "
                         f"(reconnected)")
        if found:
            print("  counters showing loss, shedding or trouble (aim: none):")
            for line in found:
                print(f"    {line}")
        else:
            print("  counters showing loss or shedding: none (every one "
                  "is 0; aim met)")
        log = self.butler.log()
        warnings = sum(1 for line in log.splitlines()
                       if re.search(r"\b(warn|warning|error|critical)\b",
                                    line, re.I))
        print(f"  butler log: {len(log.splitlines())} lines, {warnings} at "
              f"warning or error")

    def report(self):
        print("\nsummary")
        self.report_rates()
        self.report_counts()
        self.report_memory()
        self.report_resources()
        self.report_loss_counters()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--butler", required=True)
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--udp-rate", type=float, default=25000,
                    help="task-failure datagrams per second")
    ap.add_argument("--sample-seconds", type=float, default=10)
    ap.add_argument("--warmup-minutes", type=float, default=2,
                    help="samples before this are left out of the RSS fit")
    ap.add_argument("--ping-rate", type=float, default=200,
                    help="GET /v4/butlerping per second")
    ap.add_argument("--publish-rate", type=float, default=20,
                    help="PUT /v4/mqttpublishmessage per second")
    ap.add_argument("--full", action="store_true",
                    help="also publish each event's JSON on "
                         "qliksense/task_failure_full (Butler's default)")
    args = ap.parse_args()
    args.butler = str(Path(args.butler).resolve())
    for tool in ("mosquitto", "mosquitto_sub", "mosquitto_pub"):
        if not shutil.which(tool):
            sys.exit(f"soak_bench: {tool} is not installed (apt-get install "
                     f"mosquitto mosquitto-clients)")

    run = Run(args)
    try:
        run.start()
    except h.CheckFailed as e:
        h.dump_logs()
        sys.exit(f"soak_bench: {e}")
    run.print_header()
    run.load()
    if not run.crashed:
        try:
            run.drain()
        except (OSError, http.client.HTTPException, RuntimeError):
            if run.butler_alive():
                raise
    if run.crashed:
        run.sub.stop()
        run.broker.stop()
        sys.exit(1)
    run.report()
    try:
        rc = run.butler.stop(timeout=30)
    except h.CheckFailed as e:
        rc = f"none ({e})"
    print(f"  butler exit code on SIGTERM: {rc}")
    run.broker.stop()
    if rc != 0:
        print(f"last lines of butler's log:\n{h.tail(run.butler.log_path)}")
        sys.exit(1)


if __name__ == "__main__":
    main()

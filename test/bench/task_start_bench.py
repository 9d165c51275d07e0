#!/usr/bin/env python3
"""Benchmark of Sense task starts through Butler: the real binary against
the fake QRS (HTTPS with client certificates, in its own process) and a real
mosquitto.

Prints, as the median (min-max) of several runs:
  - REST: wrk keep-alive load on PUT /v4/reloadtask/{taskId}/start, in
    starts/s (each start is one task lookup and one start/many call to QRS),
    with latency p50/p99 and the count of non-2xx answers;
  - MQTT: N task ids published at once on qliksense/start_task (one
    mosquitto_pub -l), in starts/s from the first publish until the fake QRS
    has started all N.

    python3 test/bench/task_start_bench.py --butler build/butler [--runs 3]
        [--seconds 10] [--connections 16] [--messages 2000]

Needs wrk (Debian package wrk). The fake QRS is Python (one thread per
connection), so it is the ceiling here, not Butler: the figures say how fast
Butler drives a QRS that answers within about a millisecond, not how fast a
real QRS starts tasks.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import harness as h  # noqa: E402
import http_bench  # noqa: E402  (same directory: wrk runner and summary)

SALES = "e3b27f50-b1c0-4879-88fc-c7cdd9c1cf3e"
START_TOPIC = "qliksense/start_task"
FAKE_QRS = Path(__file__).resolve().parents[1] / "fakes" / "fake_qrs.py"

PUT_SCRIPT = """
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
wrk.body = "[]"
"""


class FakeQrsProcess:
    """fake_qrs.py in a child process (its own interpreter, so it does not
    share this script's GIL), driven through its control port."""

    def __init__(self, certs):
        self.dir = h.scratch_dir("fake-qrs")
        port_file = self.dir / "ports.json"
        self.proc = h.spawn([sys.executable, str(FAKE_QRS), "--quiet",
                             "--cert", certs["server"],
                             "--key", certs["server_key"],
                             "--ca", certs["ca"],
                             "--port-file", str(port_file)],
                            "fake-qrs", self.dir / "fake-qrs.log")
        h.wait_until(port_file.exists, "the fake QRS to write its ports")
        ports = json.loads(port_file.read_text())
        self.port = ports["port"]
        self.control = f"http://127.0.0.1:{ports['control_port']}"

    def _call(self, method, path):
        req = urllib.request.Request(self.control + path, method=method,
                                     data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=10) as res:
            return json.loads(res.read())

    def started_count(self):
        return len(self._call("GET", "/started"))

    def reset(self):
        self._call("POST", "/reset")

    def stop(self):
        h.end_process(self.proc)


def cpu_seconds(pid):
    """Returns the user+system CPU time `pid` has used, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle_and_reset(fake):
    """Lets starts still in flight from the last run finish, then clears
    the fake's record."""
    time.sleep(1.0)
    fake.reset()


def rest_runs(args, butler, fake, work_dir):
    script = work_dir / "start.lua"
    script.write_text(PUT_SCRIPT)
    url = f"http://127.0.0.1:{butler.rest_port}/v4/reloadtask/{SALES}/start"
    results = []
    for _ in range(args.runs):
        settle_and_reset(fake)
        rps, p50, p99, bad = http_bench.run_wrk(url, args.seconds,
                                                args.connections, 1,
                                                str(script))
        started = fake.started_count()
        results.append((rps, p50, p99, bad, started))
    return results


def mqtt_runs(args, broker, fake):
    lines = (SALES + "\n") * args.messages
    results = []
    for _ in range(args.runs):
        settle_and_reset(fake)
        begin = time.monotonic()
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p",
                        str(broker.port), "-t", START_TOPIC, "-q", "1",
                        "-l"], input=lines, text=True, check=True)
        deadline = begin + 60 + args.messages / 50
        while True:
            count = fake.started_count()
            if count >= args.messages or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        elapsed = time.monotonic() - begin
        results.append((count / elapsed, count))
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--butler", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--messages", type=int, default=2000,
                    help="task ids per MQTT run (at most the starter's "
                         "backlog of 10000 plus 16 in flight)")
    args = ap.parse_args()
    args.butler = str(Path(args.butler).resolve())
    if not shutil.which("wrk"):
        sys.exit("task_start_bench: wrk is not installed (apt-get install "
                 "wrk)")

    certs = h.make_sense_certs(h.scratch_dir("certs"))
    fake = FakeQrsProcess(certs)
    broker = h.Mosquitto().start()
    port = h.free_port()
    cfg = h.sense_config(port, certs, qrs_port=fake.port,
                         flags=("senseStartTask",), mqtt_port=broker.port)
    cfg["Butler"]["logLevel"] = "warn"
    butler = h.Butler(args.butler, cfg, name="butler-bench").start()
    h.wait_until(lambda: h.port_accepts(broker.port), "mosquitto", 10)
    time.sleep(1.0)  # MQTT connect and subscription

    print(f"butler {args.butler}, fake QRS in Python over HTTPS, "
          f"{args.runs} runs, median (min-max)")
    cpu = [cpu_seconds(butler.proc.pid), cpu_seconds(fake.proc.pid)]
    rest = rest_runs(args, butler, fake, butler.dir)
    bad = sum(r[3] for r in rest)
    print(f"  REST PUT /v4/reloadtask/{{id}}/start, {args.connections} "
          f"connections, {args.seconds} s: "
          f"{http_bench.summary([r[0] for r in rest], lambda x: f'{x:,.0f}')}"
          f" starts/s, p50 "
          f"{http_bench.summary([r[1] for r in rest], lambda x: f'{x:.2f}')}"
          f" ms, p99 "
          f"{http_bench.summary([r[2] for r in rest], lambda x: f'{x:.2f}')}"
          f" ms, {bad} non-2xx, tasks started per run "
          f"{[r[4] for r in rest]}")
    mqtt = mqtt_runs(args, broker, fake)
    total = sum(r[4] for r in rest) + sum(r[1] for r in mqtt)
    used = [cpu_seconds(butler.proc.pid) - cpu[0],
            cpu_seconds(fake.proc.pid) - cpu[1]]
    print(f"  MQTT {START_TOPIC}, {args.messages} ids per run: "
          f"{http_bench.summary([r[0] for r in mqtt], lambda x: f'{x:,.0f}')}"
          f" starts/s, started per run {[r[1] for r in mqtt]}")
    print(f"  CPU per start: butler {used[0] / total * 1e6:,.0f} us, fake "
          f"QRS {used[1] / total * 1e6:,.0f} us ({total} starts)")
    rc = butler.stop()
    broker.stop()
    fake.stop()
    if rc != 0:
        sys.exit(f"butler exited with {rc}")
    if any(r[1] < args.messages for r in mqtt):
        sys.exit("task_start_bench: not every MQTT start reached the fake "
                 "QRS")


if __name__ == "__main__":
    main()

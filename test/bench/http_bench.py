#!/usr/bin/env python3
"""Benchmark of Butler's REST ingress: keep-alive load from wrk against the
real binary (with MQTT connected to a real mosquitto, as in production), and
the service's memory at idle, under load and after.

Prints, per load: requests/s and latency p50/p99 as the median (min-max) of
several runs, and RSS before, at the peak during, and after the runs.

    python3 test/bench/http_bench.py --butler build/butler [--runs 3]
        [--seconds 10] [--connections 50]

Needs wrk (Debian package wrk). Figures depend on the machine: wrk, butler
and mosquitto share its cores.
"""

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
import harness as h  # noqa: E402

PUT_SCRIPT = """
wrk.method = "PUT"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"topic":"butlerbench/put","message":"dt=20201028 bench message"}'
"""


def rss_kib(pid):
    """Returns the resident set size of `pid` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url, seconds, connections, threads, script=None):
    """Runs wrk once; returns (requests/s, p50 ms, p99 ms, non-2xx count)."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
            "--latency"]
    if script:
        argv += ["-s", script]
    out = subprocess.run(argv + [url], capture_output=True, text=True,
                         check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = {p: to_ms(v, u) for p, v, u in
           re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if errors:
        print(f"    wrk socket errors: {errors.group(1)}")
    return rps, pct["50"], pct["99"], int(bad.group(1)) if bad else 0


def summary(values, fmt):
    med = statistics.median(values)
    return f"{fmt(med)} ({fmt(min(values))}-{fmt(max(values))})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--butler", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1,
                    help="wrk threads (one leaves a core for butler)")
    args = ap.parse_args()
    args.butler = str(Path(args.butler).resolve())
    if not shutil.which("wrk"):
        sys.exit("http_bench: wrk is not installed (apt-get install wrk)")

    broker = h.Mosquitto().start()
    port = h.free_port()
    cfg = h.base_config(port, broker.port)
    cfg["Butler"]["logLevel"] = "warn"
    butler = h.Butler(args.butler, cfg, name="butler-bench").start()
    pid = butler.proc.pid
    h.wait_until(lambda: "mqtt-link is up" in butler.log() or
                 butler.log() == "", "mqtt-link to connect", 10)
    time.sleep(1.0)  # let start-up allocations settle before the idle figure
    idle = rss_kib(pid)

    peak = [idle]
    sampling = [True]

    def sample():
        while sampling[0]:
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    script = butler.dir / "put.lua"
    script.write_text(PUT_SCRIPT)
    loads = [
        ("GET /v4/butlerping", f"http://127.0.0.1:{port}/v4/butlerping",
         None, args.connections),
        ("GET /v4/butlerping", f"http://127.0.0.1:{port}/v4/butlerping",
         None, 1),
        ("PUT /v4/mqttpublishmessage",
         f"http://127.0.0.1:{port}/v4/mqttpublishmessage", str(script),
         args.connections),
    ]
    print(f"butler {args.butler}, wrk -t{args.threads}, {args.seconds} s per "
          f"run, {args.runs} runs per load, median (min-max)")
    for name, url, lua, conns in loads:
        results = [run_wrk(url, args.seconds, conns,
                           min(args.threads, conns), lua)
                   for _ in range(args.runs)]
        rps = [r[0] for r in results]
        p50 = [r[1] for r in results]
        p99 = [r[2] for r in results]
        bad = sum(r[3] for r in results)
        print(f"  {name}, {conns} connection{'s' if conns > 1 else ''}: "
              f"{summary(rps, lambda x: f'{x:,.0f}')} req/s, "
              f"p50 {summary(p50, lambda x: f'{x:.2f}')} ms, "
              f"p99 {summary(p99, lambda x: f'{x:.2f}')} ms"
              + (f", {bad} non-2xx" if bad else ""))
    sampling[0] = False
    sampler.join()
    time.sleep(1.0)
    after = rss_kib(pid)
    print(f"  RSS: idle {idle / 1024:.1f} MiB, peak under load "
          f"{peak[0] / 1024:.1f} MiB, after load {after / 1024:.1f} MiB")
    rc = butler.stop()
    broker.stop()
    if rc != 0:
        sys.exit(f"butler exited with {rc}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""butler's command line: --version, --help, --check-config (valid, invalid,
unknown key, missing file, YAML syntax error, environment override),
--config with an invalid file (exit 1, nothing started), no arguments
(exit 2), an unknown option."""

import re
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402


def test(ctx):
    b = ctx.butler
    tmp = h.scratch_dir("cli")

    r = h.run_cli(b, "--version")
    h.check_eq(r.returncode, 0, "--version exits 0")
    h.check(re.fullmatch(r"butler \d+\.\d+\.\d+\n", r.stdout),
            "--version prints 'butler <x.y.z>'", repr(r.stdout))

    r = h.run_cli(b, "--help")
    h.check_eq(r.returncode, 0, "--help exits 0")
    for option in ("--config", "--check-config", "--version"):
        h.check_in(option, r.stdout, f"--help mentions {option}")

    # The shipped example is valid as it is.
    example = h.EXAMPLE_CONFIG
    r = h.run_cli(b, "--check-config", example)
    h.check_eq(r.returncode, 0, "--check-config deploy/butler.example.yaml "
               "exits 0")
    h.check_eq(r.stdout, f"{example}: config is valid\n",
               "--check-config prints '<file>: config is valid'")
    h.check_eq(r.stderr, "", "the example config has no warnings or errors")

    # Two bad values: each is reported with its key path, exit 1.
    bad = tmp / "bad.yaml"
    bad.write_text("Butler:\n"
                   "  mqttConfig:\n"
                   "    brokerPort: abc\n"
                   "  restServerConfig:\n"
                   "    serverPort: 70000\n")
    r = h.run_cli(b, "--check-config", bad)
    h.check_eq(r.returncode, 1, "--check-config on a bad file exits 1")
    errors = r.stderr.splitlines()
    h.check_in('error: Butler.mqttConfig.brokerPort: expected an integer '
               '1-65535, got "abc"', errors,
               "the bad brokerPort is reported with its key path")
    h.check_in('error: Butler.restServerConfig.serverPort: expected an '
               'integer 1-65535, got "70000"', errors,
               "the out-of-range serverPort is reported with its key path")
    h.check(not r.stdout.strip().endswith("config is valid"),
            "a bad file is not called valid", r.stdout)

    # An unknown key is a warning only.
    unknown = tmp / "unknown.yaml"
    unknown.write_text("Butler:\n"
                       "  restServerConfig:\n"
                       "    serverPort: 8080\n"
                       "    colour: blue\n")
    r = h.run_cli(b, "--check-config", unknown)
    h.check_eq(r.returncode, 0, "--check-config with an unknown key exits 0")
    h.check_in("warning: Butler.restServerConfig.colour: unknown key, "
               "ignored", r.stderr.splitlines(),
               "the unknown key is reported as a warning")
    h.check(not any(line.startswith("error:")
                    for line in r.stderr.splitlines()),
            "an unknown key is not an error", r.stderr)

    missing = tmp / "does-not-exist.yaml"
    r = h.run_cli(b, "--check-config", missing)
    h.check_eq(r.returncode, 1, "--check-config on a missing file exits 1")
    h.check_in(f"error: {missing}: cannot read: No such file or directory",
               r.stderr.splitlines(), "the missing file is named")

    syntax = tmp / "syntax.yaml"
    syntax.write_text("Butler: [\n")
    r = h.run_cli(b, "--check-config", syntax)
    h.check_eq(r.returncode, 1, "--check-config on broken YAML exits 1")
    h.check(any(line.startswith(f"error: {syntax}:2:")
                for line in r.stderr.splitlines()),
            "the YAML error names file and line", r.stderr)

    # Environment variables override keys, and are validated like them.
    r = h.run_cli(b, "--check-config", example,
                  env={"Butler__mqttConfig__brokerPort": "abc"})
    h.check_eq(r.returncode, 1, "a bad environment override makes the "
               "config invalid")
    h.check_in('error: Butler.mqttConfig.brokerPort: expected an integer '
               '1-65535, got "abc"', r.stderr.splitlines(),
               "the overridden key is reported with its key path")
    r = h.run_cli(b, "--check-config", bad,
                  env={"Butler__mqttConfig__brokerPort": "1884",
                       "Butler__restServerConfig__serverPort": "18123"})
    h.check_eq((r.returncode, r.stderr), (0, ""),
               "good environment overrides repair the bad file's keys")

    # --config with a bad file: problems printed, exit 1, nothing started.
    port = h.free_port()
    bad_run = tmp / "bad-run.yaml"
    bad_run.write_text("Butler:\n"
                       "  restServerConfig:\n"
                       f"    serverPort: {port}\n"
                       "  mqttConfig:\n"
                       "    brokerPort: abc\n")
    r = h.run_cli(b, "--config", bad_run)
    h.check_eq(r.returncode, 1, "--config with a bad file exits 1")
    h.check_in('error: Butler.mqttConfig.brokerPort: expected an integer '
               '1-65535, got "abc"', r.stderr.splitlines(),
               "--config prints the problem with its key path")
    h.check_in("not starting", r.stderr, "--config says it does not start")
    h.check("REST API" not in r.stdout and "running" not in r.stdout,
            "--config with a bad file logs no start-up", r.stdout)
    h.check(not h.port_accepts(port), "--config with a bad file opened no "
            "port")

    r = h.run_cli(b, "--config", missing)
    h.check_eq(r.returncode, 1, "--config with a missing file exits 1")
    h.check_in("cannot read", r.stderr, "--config names the unreadable file")

    r = h.run_cli(b)
    h.check_eq(r.returncode, 2, "no arguments exits 2")
    h.check_in("--config", r.stderr, "no arguments points to --config")

    r = h.run_cli(b, "--bogus")
    h.check(r.returncode not in (0, 1, 2), "an unknown option exits with a "
            "usage error code", f"rc {r.returncode}")
    h.check_in("--bogus", r.stdout + r.stderr, "an unknown option is named")


if __name__ == "__main__":
    h.main(test)

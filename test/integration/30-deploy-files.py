#!/usr/bin/env python3
"""The deployment files agree with Butler and with each other. Nothing is
started; the butler binary is only run as `--check-config`.

deploy/systemd/butler.service:
- `systemd-analyze verify` passes (exit 0, no line about the unit) on a copy
  in which /usr/local/bin/butler is replaced by the --butler binary;
- ExecStart is `/usr/local/bin/butler --config /etc/butler/butler.yaml` and
  ExecStartPre runs `--check-config` on the same file;
- Type=notify, NotifyAccess=main, WatchdogSec > 0, an ExecReload of
  `/bin/kill -HUP $MAINPID`, Restart=on-failure, RestartSec, TimeoutStopSec at
  least Butler's worst-case shutdown with the default supervisor settings
  (4 x shutdownGraceSeconds + 2 s = 22 s), User=/Group= or DynamicUser=,
  LimitNOFILE above 1024 (the default maxConnections);
- the hardening: ProtectSystem=strict, LogsDirectory=butler, ReadWritePaths=
  with /var/log/butler and at least one more path (the QVD directory),
  NoNewPrivileges, PrivateTmp, CapabilityBoundingSet= and AmbientCapabilities=
  present and empty, ProtectHome, ProtectKernelTunables, ProtectKernelModules,
  ProtectControlGroups, RestrictAddressFamilies exactly AF_INET AF_INET6
  AF_UNIX, RestrictNamespaces, LockPersonality, MemoryDenyWriteExecute,
  SystemCallArchitectures=native.

deploy/k8s/*.yaml (every document parses and has apiVersion, kind and a
name; exactly one Deployment, Service, ConfigMap, Secret and
PodDisruptionBudget), checked against the config in the ConfigMap:
- the container runs `--config` on the file the ConfigMap volume puts there;
- REST and UDP listen on 0.0.0.0, fileLogging is off, the broker is not on
  loopback;
- the container ports are exactly serverPort/TCP, portTaskFailure/UDP and
  portSessionConnectionEvents/UDP; each Service port's targetPort resolves
  to the container port of the same protocol and number as the Service port,
  and together they cover the same three;
- the liveness probe is GET /healthz and the readiness probe GET /readyz, on
  a port that resolves to serverPort, with the scheme the REST TLS setting
  implies;
- the pod's prometheus.io/scrape is "true", prometheus.io/port is serverPort,
  prometheus.io/path is /metrics, and Butler.prometheus.enable is not false;
- every Butler.cert path lies under the Secret volume's mountPath and names a
  key of the Secret; the ConfigMap and Secret volumes name those objects and
  are mounted read-only;
- one replica, strategy Recreate, a PodDisruptionBudget, and the Service's
  and the budget's selectors match the pod's labels;
- runAsNonRoot, readOnlyRootFilesystem, capabilities drop ALL,
  allowPrivilegeEscalation false;
- cpu and memory requests and limits are set, each limit at least its
  request, the memory limit above Butler's measured peak RSS (60 MiB);
- terminationGracePeriodSeconds covers the shutdown budget of the config's
  supervisor.shutdownGraceSeconds;
- `butler --check-config` on the config as shipped reports at most the
  certificate files under the Secret's mountPath as unreadable (they exist
  only in the pod); on a scratch copy whose certificate paths (only those)
  point at placeholder files it exits 0;
- the config sets Butler.dockerHealthCheck.enable and
  Butler.prometheus.enable, and every key path in it appears in
  deploy/butler.example.yaml as an active or a commented-out key (list items
  are not descended into); the example also has
  Butler.dockerHealthCheck.enable, Butler.dockerHealthCheck.port and
  Butler.prometheus.enable;
- check-config reports no warnings (no unknown keys) for that copy.
"""

import re
import shutil
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402

import yaml  # noqa: E402 - Debian's python3-yaml

UNIT = h.REPO_ROOT / "deploy" / "systemd" / "butler.service"
K8S = h.REPO_ROOT / "deploy" / "k8s"
#: Where the unit expects the binary; the verify copy points at --butler.
INSTALLED_BINARY = "/usr/local/bin/butler"
INSTALLED_CONFIG = "/etc/butler/butler.yaml"
#: Butler's shutdown budget (actors/main.cpp): 4 stages of the grace + 2 s.
DEFAULT_SHUTDOWN_GRACE = 5
#: Keys the example config must document whatever the ConfigMap sets.
EXAMPLE_MUST_HAVE = ("Butler.dockerHealthCheck.enable",
                     "Butler.dockerHealthCheck.port",
                     "Butler.prometheus.enable")
#: Butler's measured peak RSS under overload, bytes.
PEAK_RSS = 60 * 1024 * 1024


# -- the systemd unit -----------------------------------------------------------


def parse_unit(text):
    """Returns {(section, key): [values in order]} of a unit file."""
    entries = {}
    section = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if sep != "=" or section is None:
            raise h.CheckFailed(f"unit line {line!r} is not key=value inside "
                                "a section")
        entries.setdefault((section, key.strip()), []).append(value.strip())
    return entries


def seconds(span):
    """Returns a systemd time span ("30s", "1min", "90") in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", span)
    if not parts or not all(u in units for _, u in parts):
        raise h.CheckFailed(f"time span {span!r} is not understood")
    for number, unit in parts:
        total += float(number) * units[unit]
    return total


def check_unit(ctx):
    h.check(UNIT.is_file(), f"{UNIT} exists")
    text = UNIT.read_text()
    unit = parse_unit(text)

    def values(key, section="Service"):
        return unit.get((section, key), [])

    def one(key, section="Service"):
        got = values(key, section)
        if len(got) != 1:
            raise h.CheckFailed(f"the unit sets [{section}] {key}= once: got "
                                f"{got!r}")
        return got[0]

    h.check_eq(one("ExecStart"), f"{INSTALLED_BINARY} --config "
               f"{INSTALLED_CONFIG}", "ExecStart runs the installed binary on "
               "/etc/butler/butler.yaml")
    h.check_eq(values("ExecStartPre"), [f"{INSTALLED_BINARY} --check-config "
                                        f"{INSTALLED_CONFIG}"],
               "ExecStartPre checks that config first")

    # systemd-analyze verify checks that the Exec binaries exist, so it runs
    # on a copy that points at the binary under test.
    systemd_analyze = shutil.which("systemd-analyze")
    h.check(systemd_analyze, "systemd-analyze is installed")
    scratch = h.scratch_dir("unit")
    copy = scratch / "butler.service"
    copy.write_text(text.replace(INSTALLED_BINARY, str(ctx.butler)))
    r = h.run_cli(systemd_analyze, "verify", copy, timeout=60)
    output = r.stdout + r.stderr
    h.check_eq(r.returncode, 0, f"systemd-analyze verify exits 0 (with "
               f"{INSTALLED_BINARY} -> {ctx.butler}); output: {output!r}")
    about_unit = [line for line in output.splitlines()
                  if "butler.service" in line]
    h.check_eq(about_unit, [], "systemd-analyze verify has nothing to say "
               "about butler.service")

    h.check_eq(one("Type"), "notify", "Type=notify")
    h.check_eq(one("NotifyAccess"), "main", "NotifyAccess=main")
    h.check(seconds(one("WatchdogSec")) > 0, "WatchdogSec is set and "
            "non-zero", one("WatchdogSec"))
    h.check_in("/bin/kill -HUP $MAINPID", values("ExecReload"),
               "ExecReload sends SIGHUP to the main process")
    h.check_eq(one("Restart"), "on-failure", "Restart=on-failure")
    h.check(seconds(one("RestartSec")) > 0, "RestartSec is set",
            one("RestartSec"))
    budget = 4 * DEFAULT_SHUTDOWN_GRACE + 2
    h.check(seconds(one("TimeoutStopSec")) >= budget,
            f"TimeoutStopSec covers Butler's worst-case shutdown ({budget} s)",
            one("TimeoutStopSec"))
    dynamic = values("DynamicUser") == ["yes"]
    h.check(dynamic or (values("User") and values("Group")),
            "the unit runs as a dedicated user (User= and Group=, or "
            "DynamicUser=yes)", f"User={values('User')} "
            f"Group={values('Group')} DynamicUser={values('DynamicUser')}")
    h.check(values("User") != ["root"], "the user is not root")
    h.check(int(one("LimitNOFILE").split(":")[-1]) > 1024,
            "LimitNOFILE is above the default maxConnections (1024)",
            one("LimitNOFILE"))

    h.check_eq(one("ProtectSystem"), "strict", "ProtectSystem=strict")
    h.check_eq(one("LogsDirectory"), "butler",
               "LogsDirectory=butler creates /var/log/butler for the user")
    writable = [p.lstrip("-") for v in values("ReadWritePaths")
                for p in v.split()]
    h.check_in("/var/log/butler", writable, "ReadWritePaths= has the log "
               "directory")
    h.check(len([p for p in writable if p != "/var/log/butler"]) >= 1,
            "ReadWritePaths= has a further path (the QVD directory)",
            writable)
    for key, expected in (("NoNewPrivileges", "yes"), ("PrivateTmp", "yes"),
                          ("ProtectKernelTunables", "yes"),
                          ("ProtectKernelModules", "yes"),
                          ("ProtectControlGroups", "yes"),
                          ("RestrictNamespaces", "yes"),
                          ("LockPersonality", "yes"),
                          ("MemoryDenyWriteExecute", "yes"),
                          ("SystemCallArchitectures", "native")):
        h.check_eq(one(key), expected, f"{key}={expected}")
    h.check(one("ProtectHome") in ("yes", "read-only", "tmpfs"),
            "ProtectHome hides or protects /home", one("ProtectHome"))
    for key in ("CapabilityBoundingSet", "AmbientCapabilities"):
        h.check_eq(values(key), [""], f"{key}= is present and empty")
    h.check_eq(sorted(one("RestrictAddressFamilies").split()),
               ["AF_INET", "AF_INET6", "AF_UNIX"],
               "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX")


# -- the Kubernetes manifests ----------------------------------------------------


def load_manifests():
    """Returns {kind: [document]} of every YAML document in deploy/k8s."""
    files = sorted(K8S.glob("*.yaml"))
    h.check(files, f"{K8S} has manifests")
    by_kind = {}
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        h.check(docs, f"{path.name} parses and is not empty")
        for doc in docs:
            h.check(isinstance(doc, dict) and doc.get("apiVersion")
                    and doc.get("kind") and doc.get("metadata", {})
                    .get("name"), f"{path.name}: {doc.get('kind')} has "
                    "apiVersion, kind and metadata.name")
            by_kind.setdefault(doc["kind"], []).append(doc)
    for kind in ("Deployment", "Service", "ConfigMap", "Secret",
                 "PodDisruptionBudget"):
        h.check_eq(len(by_kind.get(kind, [])), 1, f"exactly one {kind}")
    return {kind: docs[0] for kind, docs in by_kind.items()}


def cpu_cores(quantity):
    text = str(quantity)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def memory_bytes(quantity):
    suffixes = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
                "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", str(quantity))
    if not match or match.group(2) not in suffixes.keys() | {""}:
        raise h.CheckFailed(f"memory quantity {quantity!r} is not understood")
    return float(match.group(1)) * suffixes.get(match.group(2), 1)


def subset(labels, of):
    return bool(labels) and all(of.get(k) == v for k, v in labels.items())


def resolve_port(port, container_ports):
    """Returns the container port entry a probe or targetPort names."""
    for entry in container_ports:
        if port == entry.get("name") or port == entry["containerPort"]:
            return entry
    return None


def key_paths(node, prefix=""):
    """Returns every key path ("Butler.a.b") of nested mappings."""
    paths = set()
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths.add(path)
            paths |= key_paths(value, path)
    return paths


def example_key_paths(text):
    """Returns the key paths of deploy/butler.example.yaml, counting
    commented-out keys ("  # cert:" is the key cert at indentation 2)."""
    paths = set()
    stack = []  # (indent, key)
    for raw in text.splitlines():
        line = raw.rstrip()
        stripped = line.lstrip(" ")
        if stripped.startswith("#"):
            rest = stripped[1:]
            rest = rest[1:] if rest.startswith(" ") else rest
            line = " " * (len(line) - len(stripped)) + rest
        match = re.match(r"^( *)([A-Za-z_][A-Za-z0-9_]*):(\s|$)", line)
        if not match:
            continue
        indent, key = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        paths.add(".".join(k for _, k in stack))
    return paths


def check_k8s(ctx):
    m = load_manifests()
    cm, secret, deploy = m["ConfigMap"], m["Secret"], m["Deployment"]
    service, pdb = m["Service"], m["PodDisruptionBudget"]

    # The config the pod runs with.
    pod = deploy["spec"]["template"]
    spec = pod["spec"]
    containers = spec["containers"]
    h.check_eq(len(containers), 1, "the pod has one container")
    c = containers[0]
    argv = list(c.get("command", [])) + list(c.get("args", []))
    h.check_in("--config", argv, "the container runs butler --config")
    config_file = argv[argv.index("--config") + 1]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = {mt["name"]: mt for mt in c.get("volumeMounts", [])}
    cm_volumes = [v for v in volumes.values()
                  if v.get("configMap", {}).get("name")
                  == cm["metadata"]["name"]]
    h.check_eq(len(cm_volumes), 1, "one volume holds the ConfigMap")
    cm_mount = mounts.get(cm_volumes[0]["name"])
    h.check(cm_mount and cm_mount.get("readOnly"), "the ConfigMap is "
            "mounted read-only", cm_mount)
    items = {i["path"]: i["key"]
             for i in cm_volumes[0]["configMap"].get("items", [])} or \
        {k: k for k in cm["data"]}
    rel = config_file[len(cm_mount["mountPath"].rstrip("/")) + 1:]
    h.check(config_file.startswith(cm_mount["mountPath"].rstrip("/") + "/")
            and rel in items, f"--config {config_file} is a file of the "
            f"ConfigMap volume at {cm_mount['mountPath']}", items)
    config_text = cm["data"][items[rel]]
    config = yaml.safe_load(config_text)
    h.check(isinstance(config, dict) and isinstance(config.get("Butler"),
                                                    dict),
            "the ConfigMap's config has a Butler mapping")
    b = config["Butler"]
    rest = b.get("restServerConfig", {})
    udp = b.get("udpServerConfig", {})
    mqtt = b.get("mqttConfig", {})
    rest_port = rest.get("serverPort", 8080)
    task_port = udp.get("portTaskFailure", 9998)
    session_port = udp.get("portSessionConnectionEvents", 9997)
    h.check(rest.get("enable", True) is True and
            rest.get("serverHost") == "0.0.0.0",
            "the REST API is on and listens on 0.0.0.0", rest)
    h.check(udp.get("enable") is True and udp.get("serverHost") == "0.0.0.0",
            "the UDP servers are on and listen on 0.0.0.0", udp)
    h.check(b.get("fileLogging", False) is False, "fileLogging is off (logs "
            "go to standard output)")
    h.check(mqtt.get("enable", True) is True and mqtt.get("brokerHost")
            not in (None, "", "127.0.0.1", "localhost", "::1"),
            "MQTT goes to a broker by name, not to loopback",
            mqtt.get("brokerHost"))

    # Ports.
    ports = c.get("ports", [])
    expected = {(rest_port, "TCP"), (task_port, "UDP"),
                (session_port, "UDP")}
    h.check_eq({(p["containerPort"], p.get("protocol", "TCP"))
                for p in ports}, expected,
               "the container ports are serverPort/TCP, portTaskFailure/UDP "
               "and portSessionConnectionEvents/UDP")
    served = set()
    for sp in service["spec"]["ports"]:
        protocol = sp.get("protocol", "TCP")
        target = resolve_port(sp.get("targetPort", sp["port"]), ports)
        h.check(target is not None and target.get("protocol", "TCP")
                == protocol and target["containerPort"] == sp["port"],
                f"Service port {sp.get('name', sp['port'])} "
                f"({sp['port']}/{protocol}) reaches the container port "
                f"{sp['port']}/{protocol}", f"targetPort "
                f"{sp.get('targetPort')!r} resolves to {target}")
        served.add((sp["port"], protocol))
    h.check_eq(served, expected, "the Service has the REST port and both UDP "
               "ports")

    # Probes.
    scheme = "HTTPS" if rest.get("tls", {}).get("enable") else "HTTP"
    for kind, path in (("livenessProbe", "/healthz"),
                       ("readinessProbe", "/readyz")):
        get = c.get(kind, {}).get("httpGet")
        h.check(get, f"the {kind} is an httpGet", c.get(kind))
        h.check_eq(get.get("path"), path, f"the {kind} asks {path}")
        target = resolve_port(get.get("port"), ports)
        h.check(target is not None and target["containerPort"] == rest_port
                and target.get("protocol", "TCP") == "TCP",
                f"the {kind} port {get.get('port')!r} is the REST port "
                f"{rest_port}", f"resolves to {target}")
        h.check_eq(get.get("scheme", "HTTP"), scheme,
                   f"the {kind} scheme matches restServerConfig.tls")

    # Prometheus.
    notes = pod.get("metadata", {}).get("annotations", {})
    h.check_eq(notes.get("prometheus.io/scrape"), "true",
               "prometheus.io/scrape is \"true\"")
    h.check_eq(notes.get("prometheus.io/port"), str(rest_port),
               "prometheus.io/port is the REST port")
    h.check_eq(notes.get("prometheus.io/path"), "/metrics",
               "prometheus.io/path is /metrics")
    h.check(b.get("prometheus", {}).get("enable", True) is True,
            "Butler.prometheus.enable is not off")

    # Certificates from the Secret.
    secret_volumes = [v for v in volumes.values()
                      if v.get("secret", {}).get("secretName")
                      == secret["metadata"]["name"]]
    h.check_eq(len(secret_volumes), 1, "one volume holds the Secret")
    secret_mount = mounts.get(secret_volumes[0]["name"])
    h.check(secret_mount and secret_mount.get("readOnly"),
            "the Secret is mounted read-only", secret_mount)
    cert_dir = secret_mount["mountPath"].rstrip("/")
    secret_keys = set(secret.get("data", {}) or {}) | \
        set(secret.get("stringData", {}) or {})
    secret_files = {i["path"]: i["key"] for i in
                    secret_volumes[0]["secret"].get("items", [])} or \
        {k: k for k in secret_keys}
    certs = b.get("cert", {})
    for key in ("clientCert", "clientCertKey", "clientCertCA"):
        path = certs.get(key, "")
        h.check(path.startswith(cert_dir + "/"),
                f"Butler.cert.{key} {path!r} is under the Secret's mountPath "
                f"{cert_dir}")
        name = path[len(cert_dir) + 1:]
        h.check(secret_files.get(name) in secret_keys,
                f"Butler.cert.{key} names a key of the Secret ({name})",
                sorted(secret_keys))

    # Deployment shape, selectors, disruption budget.
    labels = pod.get("metadata", {}).get("labels", {})
    h.check_eq(deploy["spec"].get("replicas"), 1, "one replica")
    h.check_eq(deploy["spec"].get("strategy", {}).get("type"), "Recreate",
               "strategy Recreate")
    h.check(subset(deploy["spec"]["selector"].get("matchLabels"), labels),
            "the Deployment's selector matches its pods")
    h.check(subset(service["spec"].get("selector"), labels),
            "the Service's selector matches the pods")
    h.check(subset(pdb["spec"].get("selector", {}).get("matchLabels"),
                   labels), "the PodDisruptionBudget's selector matches "
            "the pods")
    h.check("minAvailable" in pdb["spec"] or "maxUnavailable" in pdb["spec"],
            "the PodDisruptionBudget sets minAvailable or maxUnavailable")

    # Security context.
    pod_sc, sc = spec.get("securityContext", {}), c.get("securityContext", {})
    h.check(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True,
            "runAsNonRoot")
    h.check(sc.get("runAsUser", pod_sc.get("runAsUser")) != 0,
            "runAsUser is not 0")
    h.check(sc.get("readOnlyRootFilesystem") is True,
            "readOnlyRootFilesystem")
    h.check(sc.get("allowPrivilegeEscalation") is False,
            "allowPrivilegeEscalation false")
    h.check_in("ALL", sc.get("capabilities", {}).get("drop", []),
               "capabilities drop ALL")

    # Resources.
    res = c.get("resources", {})
    requests, limits = res.get("requests", {}), res.get("limits", {})
    for name, parse in (("cpu", cpu_cores), ("memory", memory_bytes)):
        h.check(name in requests and name in limits,
                f"{name} request and limit are set", res)
        h.check(parse(limits[name]) >= parse(requests[name]),
                f"the {name} limit {limits[name]} is at least the request "
                f"{requests[name]}")
    h.check(memory_bytes(limits["memory"]) > PEAK_RSS,
            f"the memory limit {limits['memory']} is above the measured "
            "peak of 60 MiB")

    grace = b.get("supervisor", {}).get("shutdownGraceSeconds",
                                        DEFAULT_SHUTDOWN_GRACE)
    budget = 4 * grace + 2
    h.check(spec.get("terminationGracePeriodSeconds", 30) >= budget,
            f"terminationGracePeriodSeconds covers the shutdown budget "
            f"({budget} s)", spec.get("terminationGracePeriodSeconds"))

    # butler --check-config on the config.
    scratch = h.scratch_dir("k8s-config")
    shipped = scratch / "butler.yaml"
    shipped.write_text(config_text)
    r = h.run_cli(ctx.butler, "--check-config", shipped)
    errors = [line for line in r.stderr.splitlines()
              if line.startswith("error:")]
    h.check(r.returncode == 0 or errors and all(
        re.match(rf"error: Butler\.cert\.\w+: cannot read {re.escape(cert_dir)}"
                 r"/", line) for line in errors),
            "check-config on the shipped config finds no problem but "
            "certificate files that exist only in the pod", r.stderr)

    # The same config with the certificate paths (only) on placeholder files.
    cert_copy = scratch / "certs"
    for key in ("clientCert", "clientCertKey", "clientCertCA"):
        placeholder = cert_copy / certs[key][len(cert_dir) + 1:]
        placeholder.parent.mkdir(parents=True, exist_ok=True)
        placeholder.write_text("placeholder for the Secret's file\n")
    text = config_text.replace(cert_dir + "/", f"{cert_copy}/")
    rewritten = yaml.safe_load(text)
    for key in ("clientCert", "clientCertKey", "clientCertCA"):
        h.check_eq(rewritten["Butler"]["cert"][key],
                   f"{cert_copy}/{certs[key][len(cert_dir) + 1:]}",
                   f"the copy's Butler.cert.{key} points at its placeholder")
        rewritten["Butler"]["cert"][key] = certs[key]
    h.check_eq(rewritten, config, "the copy differs from the ConfigMap's "
               "config in the certificate paths only")
    copy = scratch / "butler-local-certs.yaml"
    copy.write_text(text)
    r = h.run_cli(ctx.butler, "--check-config", copy)
    h.check_eq(r.returncode, 0, f"check-config on the ConfigMap's config "
               f"exits 0 (certificates on placeholders); stderr: "
               f"{r.stderr!r}")
    h.check_eq(r.stdout, f"{copy}: config is valid\n",
               "check-config calls it valid")

    # Every key is documented in the example config.
    example = example_key_paths(h.EXAMPLE_CONFIG.read_text())
    for required in ("Butler.dockerHealthCheck.enable",
                     "Butler.prometheus.enable"):
        h.check_in(required, key_paths(config), f"the config sets "
                   f"{required}")
    missing = sorted(key_paths(config) - example)
    h.check_eq(missing, [], "every key of the ConfigMap's config appears in "
               "deploy/butler.example.yaml")
    missing = sorted(set(EXAMPLE_MUST_HAVE) - example)
    h.check_eq(missing, [], "deploy/butler.example.yaml documents the health "
               "check and Prometheus keys")

    warnings = [line for line in r.stderr.splitlines()
                if line.startswith("warning:")]
    h.check_eq(warnings, [], "check-config has no warnings (no unknown "
               "keys) for the ConfigMap's config")


def test(ctx):
    check_unit(ctx)
    check_k8s(ctx)


if __name__ == "__main__":
    h.main(test)

#!/usr/bin/env python3
"""Filesystem endpoints: createDir, createDirQVD and getDiskSpace in every
spelling reply exactly (after the directory really exists); createDirQVD
refuses `..`, absolute paths outside the QVD root and symlinks (even one
pointing inside) with 400 naming the root, and nothing is created outside
it; a file in the way is a 500 with the OS error; missing and empty
parameters are 400, a missing path for getDiskSpace 404; createDirQVD
without qvdPath is a config error."""

import os
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402


def test(ctx):
    work = h.scratch_dir("fs")
    qvd = work / "qvd"
    qvd.mkdir()
    outside = work / "outside"
    outside.mkdir()
    (qvd / "inside").mkdir()
    (qvd / "link-out").symlink_to(outside)
    (qvd / "link-in").symlink_to(qvd / "inside")
    (qvd / "a-file").write_text("not a directory\n")
    (work / "plain-file").write_text("not a directory\n")

    port = h.free_port()
    cfg = h.base_config(port)
    cfg["Butler"]["restServerEndpointsEnable"].update({
        "createDir": True, "createDirQVD": True, "getDiskSpace": True})
    cfg["Butler"]["configDirectories"] = {"qvdPath": str(qvd)}
    butler = h.Butler(ctx.butler, cfg).start()

    def get(path, params):
        return h.http_request(port, "GET", h.query(path, params))

    def post(path, body):
        return h.http_request(port, "POST", path, body=body)

    # -- createDir ---------------------------------------------------------------
    target = work / "made" / "by seed" / "ü"
    res = get("/createDir", {"directory": str(target)})
    h.check_eq((res.status, res.json), (200, {"directory": str(target)}),
               "GET /createDir answers 200 {directory: as given}")
    h.check(target.is_dir(), "the directory and its parents exist")
    res = get("/createDir", {"directory": str(target)})
    h.check_eq((res.status, res.json), (200, {"directory": str(target)}),
               "an existing directory is fine (mkdir -p)")
    res = get("/v2/createDir", {"directory": "relative/v2"})
    h.check_eq((res.status, res.json), (200, {"directory": "relative/v2"}),
               "GET /v2/createDir with a relative path answers 200")
    h.check((butler.dir / "relative" / "v2").is_dir(),
            "a relative directory is made below butler's working directory")
    v4 = work / "made" / "v4"
    res = post("/v4/createdir", {"directory": str(v4) + "/"})
    h.check_eq((res.status, res.json), (201, {"directory": str(v4) + "/"}),
               "POST /v4/createdir answers 201 {directory: as given}")
    h.check(v4.is_dir(), "the v4 directory exists")

    in_the_way = work / "plain-file" / "sub"
    for spelling, res in (
            ("GET /createDir", get("/createDir", {"directory":
                                                 str(in_the_way)})),
            ("POST /v4/createdir", post("/v4/createdir",
                                        {"directory": str(in_the_way)}))):
        h.check_error(res, 500, lambda m: str(work / "plain-file") in m
                      and "Not a directory" in m,
                      f"{spelling} with a file in the way -> 500 with the OS "
                      "error")
    for path in ("/createDir", "/v2/createDir", "/createDirQVD",
                 "/v2/createDirQVD"):
        res = get(path, {})
        h.check_error(res, 400, "Required parameter directory is missing",
                      f"GET {path} without directory -> 400")
        res = get(path, {"directory": ""})
        h.check_error(res, 400, "Parameter directory must not be empty",
                      f"GET {path} with an empty directory -> 400")
    for path in ("/v4/createdir", "/v4/createdirqvd"):
        res = post(path, {})
        h.check_error(res, 400, "Required parameter directory is missing",
                      f"POST {path} without directory -> 400")
        res = post(path, {"directory": ""})
        h.check_error(res, 400, "Parameter directory must not be empty",
                      f"POST {path} with an empty directory -> 400")
        res = post(path, {"directory": 5})
        h.check_error(res, 400, "Parameter directory must be a string",
                      f"POST {path} with a numeric directory -> 400")
        res = h.http_request(port, "POST", path, body=b"{directory: x}",
                             headers={"Content-Type": "application/json"})
        h.check_error(res, 400, "Request body is not valid JSON",
                      f"POST {path} with invalid JSON -> 400")

    # -- createDirQVD ------------------------------------------------------------
    for path, directory, made in (
            ("/createDirQVD", "seed/one", qvd / "seed" / "one"),
            ("/v2/createDirQVD", "v2/./x/../y", qvd / "v2" / "y"),
            ("/createDirQVD", str(qvd / "abs" / "inside"),
             qvd / "abs" / "inside"),
            ("/v2/createDirQVD", "inside/deeper//z/", qvd / "inside" /
             "deeper" / "z")):
        res = get(path, {"directory": directory})
        h.check_eq((res.status, res.json), (200, {"directory": directory}),
                   f"GET {path} {directory!r} answers 200 as given")
        h.check(made.is_dir() and not made.is_symlink(),
                f"{made.relative_to(work)} exists below the QVD root")
    h.check(not (qvd / "v2" / "x").exists(), "'x/..' made no directory x")
    res = post("/v4/createdirqvd", {"directory": "v4/dir"})
    h.check_eq((res.status, res.json), (201, {"directory": "v4/dir"}),
               "POST /v4/createdirqvd answers 201")
    h.check((qvd / "v4" / "dir").is_dir(), "the v4 QVD directory exists")

    before = sorted(p.name for p in work.iterdir())
    refusals = [
        ("../escaped", "a path starting with .."),
        ("a/../../escaped", "a path whose .. climbs out"),
        ("ok/../../../escaped", "a deeper climb"),
        (str(work / "escaped"), "an absolute path outside the root"),
        (str(qvd) + "/../escaped", "an absolute path with .. out of the root"),
        ("link-out/escaped", "a symlink inside the root pointing outside"),
        ("link-in/escaped", "a symlink pointing inside the root"),
        ("link-out", "the symlink itself"),
    ]
    for directory, what in refusals:
        for spelling, res in (
                ("GET /createDirQVD", get("/createDirQVD",
                                          {"directory": directory})),
                ("POST /v4/createdirqvd", post("/v4/createdirqvd",
                                               {"directory": directory}))):
            h.check_error(res, 400, lambda m: str(qvd) in m
                          and directory in m,
                          f"{spelling} with {what} -> 400 naming the "
                          "directory and the QVD root")
    h.check_eq(sorted(p.name for p in work.iterdir()), before,
               "nothing was created next to the QVD root")
    h.check_eq(list(outside.iterdir()), [], "nothing was created through "
               "the symlink")
    h.check(not (qvd / "inside" / "escaped").exists(),
            "nothing was created through the inside symlink")
    res = get("/createDirQVD", {"directory": "a-file/sub"})
    h.check_error(res, 500, lambda m: str(qvd) in m and "a-file" in m
                  and "Not a directory" in m,
                  "createDirQVD with a file in the way -> 500 with the OS "
                  "error")

    # -- getDiskSpace -----------------------------------------------------------
    vfs = os.statvfs(qvd)
    total = vfs.f_blocks * vfs.f_frsize
    for method, path in (("GET", "/getDiskSpace"), ("GET", "/v2/getDiskSpace"),
                         ("GET", "/v4/getdiskspace")):
        res = get(path, {"path": str(qvd)})
        body = res.json if isinstance(res.json, dict) else {}
        h.check(res.status == 200
                and list(body) == ["path", "available", "free", "total"]
                and body["path"] == str(qvd)
                and all(isinstance(body[k], int)
                        for k in ("available", "free", "total"))
                and 0 <= body["available"] <= body["free"] <= body["total"]
                and body["total"] == total,
                f"{method} {path} answers 200 {{path,available,free,total}} "
                "in bytes (statvfs)", repr(res))
    missing = str(work / "does-not-exist")
    for path in ("/getDiskSpace", "/v2/getDiskSpace", "/v4/getdiskspace"):
        res = get(path, {"path": missing})
        h.check_error(res, 404, f"path {missing} does not exist",
                      f"GET {path} for a missing path -> 404")
        res = get(path, {})
        h.check_error(res, 400, "Required parameter path is missing",
                      f"GET {path} without path -> 400")
        res = get(path, {"path": ""})
        h.check_error(res, 400, "Parameter path must not be empty",
                      f"GET {path} with an empty path -> 400")
    res = get("/getDiskSpace", {"path": str(work / "plain-file" / "x")})
    h.check_error(res, 404, lambda m: "does not exist" in m,
                  "a path through a file -> 404")
    h.check_ping(port)
    h.check_eq(butler.stop(), 0, "butler exits 0 on SIGTERM")

    # -- config ------------------------------------------------------------------
    del cfg["Butler"]["configDirectories"]
    path = h.write_config(cfg, work / "no-qvd.yaml")
    r = h.run_cli(ctx.butler, "--check-config", path)
    h.check_eq(r.returncode, 1, "--check-config with createDirQVD on and no "
               "qvdPath exits 1")
    h.check(any(line.startswith("error: Butler.configDirectories.qvdPath: "
                                "missing")
                for line in r.stderr.splitlines()),
            "the error names Butler.configDirectories.qvdPath", r.stderr)


if __name__ == "__main__":
    h.main(test)

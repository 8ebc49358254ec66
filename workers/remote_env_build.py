"""Builds and finds suite environments on a remote host or in a VM guest; run there by the worker as
`python3 -c SOURCE COMMAND ...` (workers/remote_env.py), or in an image's tree by `farm image build`.

Standard library only, any Python 3.8+: it runs under the host's own python3, which needs nothing
installed (Debian's has no pip, no ensurepip, no pytest). Commands, each printing one JSON line:

    probe ENVS [KEY]
        the interpreter: {"version": "3.11", "full": "3.11.2", "implementation": "cp", "abi": "cp311",
        "machine": "x86_64", "glibc": "2.36", "executable": REALPATH, "ready": [KEY, ...], "envs": ENVS}: the
        environments ready in ENVS (each ENVS/KEY/farm-env.json), for the worker to pick its key,
        and "plain": {KEY: [NAME, ...]}, the plain installs each has (see `plain`);
        with KEY (the worker's guess from an earlier probe of this interpreter), that one is marked
        used if ready ("touched": KEY), saving a second command.
    build ENVS KEY WHEELS MAX_KEPT PLAN
        build ENVS/KEY from the wheels in WHEELS (one of them pip's own) as PLAN (JSON of
        {"env_dir", "create", "requirement_files", "install"}: workers/env_plan.py's plan, its
        installer pip run from its wheel, `--no-index --find-links WHEELS`) says: a venv without
        pip (`python3 -m venv --without-pip`, which Debian's python3 has without python3-venv), the
        requirement files, the install, in PLAN's env_dir (ENVS/.KEY-RANDOM) first, renamed into place
        once whole (a concurrent build of the same key that renamed first wins; this one is
        dropped). Then the least recently used environments beyond MAX_KEPT go. WHEELS is removed
        either way. {"ok": true, "python": PATH, "built": true}
        or {"ok": false, "tail": "the installer's last lines"}.
    touch ENVS KEY [NAME ...]
        mark ENVS/KEY used now (its farm-env.json's mtime orders eviction), and the plain installs
        ENVS/KEY/farm-plain/NAME (their directories' mtimes order theirs).
    plain ENVS KEY NAME WHEEL
        a plain install of a bundle's project (a pure-Python wheel the worker built and shipped):
        WHEEL unpacked as `pip install --no-deps --target` lays a pure wheel out (its `.data`
        purelib and platlib merged in, scripts, headers and data left out) into
        ENVS/KEY/farm-plain/NAME, through a temporary directory renamed into place; the least
        recently used beyond PLAIN_KEPT there go. WHEEL's directory is removed either way.
        {"ok": true, "path": PATH} or {"ok": false, "tail": why}.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from typing import Any

MARKER = "farm-env.json"
#: Where in an environment the plain installs of bundles' projects are, and how many are kept.
PLAIN = "farm-plain"
PLAIN_KEPT = 4


def _envs(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def probe(envs: str, key: str = "") -> dict[str, Any]:
    major, minor = sys.version_info[:2]
    name = sys.implementation.name
    short = {"cpython": "cp", "pypy": "pp"}.get(name, name)
    try:
        glibc = (os.confstr("CS_GNU_LIBC_VERSION") or "").split()[-1]  # "glibc 2.36"
    except (ValueError, OSError, AttributeError, IndexError):
        glibc = ""
    ready = []
    if os.path.isdir(envs):
        ready = sorted(k for k in os.listdir(envs) if os.path.isfile(os.path.join(envs, k, MARKER)))
    plain = {}
    for k in ready:
        where = os.path.join(envs, k, PLAIN)
        if os.path.isdir(where):
            plain[k] = sorted(n for n in os.listdir(where) if not n.startswith("."))
    touched = ""
    if key and key in ready:
        os.utime(os.path.join(envs, key, MARKER))
        touched = key
    return {"touched": touched, "version": f"{major}.{minor}", "full": "{}.{}.{}".format(*sys.version_info[:3]),
            "implementation": short, "abi": f"{short}{major}{minor}", "machine": os.uname().machine,
            "glibc": glibc, "executable": os.path.realpath(sys.executable), "ready": ready, "envs": envs,
            "plain": plain}


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _evict(envs: str, keep: str, max_kept: int) -> None:
    """workers/suite_envs.py's `evictions` (least recently used past the bound, never `keep`), written
    out again: this file runs alone on the remote, importing nothing of farm."""
    entries = []
    for key in os.listdir(envs):
        marker = os.path.join(envs, key, MARKER)
        if key != keep and os.path.isfile(marker):
            entries.append((os.path.getmtime(marker), key))
    entries.sort()
    for _, key in entries[:max(0, len(entries) - (max_kept - 1))]:
        shutil.rmtree(os.path.join(envs, key), ignore_errors=True)


def build(envs: str, key: str, wheels: str, max_kept: int, plan: dict[str, Any]) -> dict[str, Any]:
    """Carry out `plan` (workers/env_plan.py's EnvPlan, as JSON: its env_dir is `tmp`) and rename
    its directory to ENVS/KEY."""
    started = time.time()
    final = os.path.join(envs, key)
    tmp = plan["env_dir"]
    try:
        os.makedirs(envs, exist_ok=True)
        if os.path.isfile(os.path.join(final, MARKER)):
            return {"ok": True, "python": os.path.join(final, "bin", "python"), "built": False}
        made = subprocess.run(plan["create"], capture_output=True, text=True)
        if made.returncode != 0:
            return {"ok": False, "tail": _tail(made.stdout + made.stderr)}
        for path, text in plan["requirement_files"]:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text)
        env = dict(os.environ, PIP_CONFIG_FILE=os.devnull)  # this host's pip settings do not apply
        installed = subprocess.run(plan["install"], capture_output=True, text=True, cwd=wheels, env=env)
        if installed.returncode != 0:
            return {"ok": False, "tail": _tail(installed.stdout + installed.stderr)}
        with open(os.path.join(tmp, MARKER), "w") as fh:
            json.dump({"key": key, "install": plan["install"], "built_s": round(time.time() - started, 2)}, fh)
        try:
            os.rename(tmp, final)
        except OSError:  # built meanwhile by another run: use that one
            if not os.path.isfile(os.path.join(final, MARKER)):
                raise
        _evict(envs, key, max_kept)
        return {"ok": True, "python": os.path.join(final, "bin", "python"), "built": True,
                "built_s": round(time.time() - started, 2)}
    except OSError as exc:
        return {"ok": False, "tail": f"{type(exc).__name__}: {exc}"}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(wheels, ignore_errors=True)


def _unpack_wheel(wheel: str, dest: str) -> None:
    """Lay a pure wheel out in `dest` as `pip install --target` does: its `NAME.data/purelib` and
    `platlib` merged into the top, its other `.data` parts left out; no member outside `dest`."""
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            parts = info.filename.split("/")
            if parts[0].endswith(".data") and len(parts) > 2:
                if parts[1] not in ("purelib", "platlib"):
                    continue
                parts = parts[2:]
            if info.is_dir() or not parts[-1]:
                continue
            if any(p in ("", ".", "..") for p in parts) or info.filename.startswith("/"):
                raise OSError(f"wheel member {info.filename!r} would land outside {dest}")
            path = os.path.join(dest, *parts)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with archive.open(info) as src, open(path, "wb") as out:
                shutil.copyfileobj(src, out)


def plain(envs: str, key: str, name: str, wheel: str) -> dict[str, Any]:
    """Unpack `wheel` into ENVS/KEY/PLAIN/NAME (see the module's docstring)."""
    where = os.path.join(envs, key, PLAIN)
    final = os.path.join(where, name)
    tmp = os.path.join(where, f".{name}-{os.getpid()}")
    try:
        if not os.path.isfile(os.path.join(envs, key, MARKER)):
            return {"ok": False, "tail": f"no environment {key} in {envs}"}
        if os.path.isdir(final):
            return {"ok": True, "path": final}
        os.makedirs(tmp)
        _unpack_wheel(wheel, tmp)
        try:
            os.rename(tmp, final)
        except OSError:  # made meanwhile by another run: use that one
            if not os.path.isdir(final):
                raise
        kept = sorted((os.path.getmtime(os.path.join(where, n)), n) for n in os.listdir(where)
                      if not n.startswith(".") and n != name)
        for _, old in kept[:max(0, len(kept) - (PLAIN_KEPT - 1))]:
            shutil.rmtree(os.path.join(where, old), ignore_errors=True)
        return {"ok": True, "path": final}
    except (OSError, zipfile.BadZipFile) as exc:
        return {"ok": False, "tail": f"{type(exc).__name__}: {exc}"}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(os.path.dirname(wheel), ignore_errors=True)


def main(argv: list[str]) -> int:
    command, envs = argv[0], _envs(argv[1])
    if command == "probe":
        out: dict[str, Any] = probe(envs, argv[2] if len(argv) > 2 else "")
    elif command == "build":
        out = build(envs, argv[2], argv[3], int(argv[4]), json.loads(argv[5]))
    elif command == "plain":
        out = plain(envs, argv[2], argv[3], argv[4])
    elif command == "touch":
        marker = os.path.join(envs, argv[2], MARKER)
        try:
            os.utime(marker)
            for name in argv[3:]:  # plain installs used now: the last used are the ones `plain` keeps
                os.utime(os.path.join(envs, argv[2], PLAIN, name))
            out = {"ok": True}
        except OSError as exc:
            out = {"ok": False, "tail": str(exc)}
    else:
        out = {"ok": False, "tail": f"unknown command {command!r}"}
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

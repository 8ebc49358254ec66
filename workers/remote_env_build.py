"""Builds and finds suite environments on a remote host or in a VM guest; run there by the worker as
`python3 -c SOURCE COMMAND ...` (workers/remote_env.py), or in an image's tree by `farm image build`.

Standard library only, any Python 3.8+: it runs under the host's own python3, which needs nothing
installed (Debian's has no pip, no ensurepip, no pytest). Commands, each printing one JSON line:

    probe ENVS [KEY]
        the interpreter: {"version": "3.11", "full": "3.11.2", "implementation": "cp", "abi": "cp311",
        "machine": "x86_64", "glibc": "2.36", "executable": REALPATH, "ready": [KEY, ...], "envs": ENVS}: the
        environments ready in ENVS (each ENVS/KEY/farm-env.json), for the worker to pick its key;
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
    touch ENVS KEY
        mark ENVS/KEY used now (its farm-env.json's mtime orders eviction).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

MARKER = "farm-env.json"


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
    touched = ""
    if key and key in ready:
        os.utime(os.path.join(envs, key, MARKER))
        touched = key
    return {"touched": touched, "version": f"{major}.{minor}", "full": "{}.{}.{}".format(*sys.version_info[:3]),
            "implementation": short, "abi": f"{short}{major}{minor}", "machine": os.uname().machine,
            "glibc": glibc, "executable": os.path.realpath(sys.executable), "ready": ready, "envs": envs}


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


def main(argv: list[str]) -> int:
    command, envs = argv[0], _envs(argv[1])
    if command == "probe":
        out: dict[str, Any] = probe(envs, argv[2] if len(argv) > 2 else "")
    elif command == "build":
        out = build(envs, argv[2], argv[3], int(argv[4]), json.loads(argv[5]))
    elif command == "touch":
        marker = os.path.join(envs, argv[2], MARKER)
        try:
            os.utime(marker)
            out = {"ok": True}
        except OSError as exc:
            out = {"ok": False, "tail": str(exc)}
    else:
        out = {"ok": False, "tail": f"unknown command {command!r}"}
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

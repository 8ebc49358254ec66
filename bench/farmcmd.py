"""A farm command to benchmark: its argv, the environment it needs, and which tree it really runs.

`--farm "env PYTHONPATH=/work/wt/before /work/main/.venv/bin/python -m farm"` and
`--farm "PYTHONPATH=/x python -m farm"` both become argv `[python, -m, farm]` plus env
`{PYTHONPATH: /work/wt/before}`; `--farm-env VAR=VALUE` adds more. Relative PYTHONPATH entries are
made absolute: `farm up` starts its services in its own directory, and they inherit the variable.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")

# Printed by the farm's interpreter: where farm, coordinator and workers are imported from.
_WHERE = """\
import json, importlib.util as u
print(json.dumps({m: (u.find_spec(m).origin if u.find_spec(m) else None)
                  for m in ("farm", "coordinator", "workers")}))
"""


@dataclass
class FarmCommand:
    """One farm under test: a label for the table ("farm", or "before"/"after"), argv and env."""

    label: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    tree: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "argv": self.argv, "env": self.env, "tree": self.tree}


def parse(label: str, text: str, extra_env: list[str]) -> FarmCommand:
    """Split CMD like a shell; leading `env` and VAR=VALUE words become environment."""
    words = shlex.split(text)
    env: dict[str, str] = {}
    if words and words[0] == "env":
        words = words[1:]
    while words and ASSIGNMENT.match(words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    for item in extra_env:
        if not ASSIGNMENT.match(item):
            raise ValueError(f"--farm-env wants VAR=VALUE, got {item!r}")
        name, _, value = item.partition("=")
        env[name] = value
    if not words:
        raise ValueError(f"farm command {text!r} has no program")
    if "PYTHONPATH" in env:
        env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in env["PYTHONPATH"].split(os.pathsep) if p)
    if os.sep in words[0]:
        words[0] = os.path.abspath(words[0])
    return FarmCommand(label, words, env)


def problem(farm: FarmCommand) -> str | None:
    """Why the farm cannot be run, or None if its executable exists."""
    exe = farm.argv[0]
    if os.sep in exe:
        if not os.path.isfile(exe):
            return f"farm executable not found: {exe} (not built yet? pass --farm CMD)"
        if not os.access(exe, os.X_OK):
            return f"farm executable is not executable: {exe}"
        return None
    if shutil.which(exe) is None:
        return f"farm executable not found on PATH: {exe} (pass --farm CMD)"
    return None


def locate(farm: FarmCommand, env: dict[str, str], cwd: str) -> dict[str, Any]:
    """Where the farm's interpreter imports farm, coordinator and workers from (its services use
    the same interpreter and inherit PYTHONPATH). cwd: where the farm's commands run (Python puts it
    first on sys.path for `-m` and `-c`: never a source tree). An entry-point script's interpreter
    is its shebang's."""
    python = farm.argv[0]
    if farm.argv[1:3] != ["-m", "farm"]:
        python = _shebang(python) or ""
    if not python:
        return {"error": "cannot tell the farm's interpreter"}
    try:
        out = subprocess.run(
            [python, "-c", _WHERE], env={**env, **farm.env}, cwd=cwd, capture_output=True, text=True, timeout=60,
            check=True,
        ).stdout
        found: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        return {"error": f"cannot ask {python} where farm is: {exc}"}
    found["python"] = python
    return found


def _shebang(path: str) -> str | None:
    exe = path if os.sep in path else shutil.which(path)
    if not exe:
        return None
    try:
        with open(exe, "rb") as script:
            first = script.readline(300)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode(errors="replace").split()
    return words[0] if words else None


def service_env(pid: int) -> dict[str, str]:
    """PYTHONPATH as a running service of the cluster sees it (proof that it was inherited)."""
    try:
        raw = open(f"/proc/{pid}/environ", "rb").read()
    except OSError:
        return {}
    pairs = (item.decode(errors="replace").partition("=") for item in raw.split(b"\0") if item)
    return {k: v for k, _, v in pairs if k == "PYTHONPATH"}

"""A pytest process started before its assignment arrives: Python started, pytest and its built-in
plugins imported. Shared by the local backend (this file run as a script, one request per process)
and a VM's runner (workers/vm_runner.py imports it and forks per request).

Standard library and pytest only: it runs under the worker's `--python`, which may be Debian's
3.11 with pytest 7.2, and nothing of the user's project is imported before the request.

As a script (`python pytest_standby.py`, the local backend): it imports pytest, writes one line on
stdout, `{"k": "standby", "modules": [top-level names of the modules it has loaded]}`, then reads one
line on stdin:

    {"argv": [...], "env": {...}, "cwd": DIR, "niceness": N, "log": PATH}

and becomes `argv` (`python -m pytest ARGS`) as if started fresh in DIR: its stdin /dev/null, its
stdout and stderr into PATH, os.environ exactly `env`, sys.path as `python -m` and PYTHONPATH would
have made it, its CPU niceness raised by N. It is already in its own session (the worker starts it
so). EOF instead of a request: it exits 0. What only a fresh start can apply (the other PYTHON*
variables, locale, -X options) the worker checks before it hands a request over.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import runpy
import sys
import types
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
#: The interpreter's own sys.path: without this file's directory, which running it as a script put first.
BASE_PATH = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
#: The stdio objects the standby started with, kept alive once replaced (`_reopen_stdio`).
_STARTED_STDIO: list[object] = []


def preload() -> None:
    """Import pytest and what pytest.main imports at its start. Not the runner plugin: pytest
    rewrites the asserts of `-p` plugins and warns about one imported before."""
    import pytest  # noqa: F401
    from _pytest.config import default_plugins

    for name in default_plugins:
        try:
            importlib.import_module(f"_pytest.{name}")
        except ImportError:
            pass


def loaded_modules() -> list[str]:
    """The top-level names of every module loaded: a project file of one of these names would have
    shadowed it in a fresh `python -m pytest` (whose sys.path starts with the project)."""
    builtin = set(sys.builtin_module_names) | {"__main__"}  # never shadowed by a project's file
    return sorted({name.partition(".")[0] for name in sys.modules} - builtin)


def _reopen_stdio() -> None:
    """sys.stdin/stdout/stderr made anew on the descriptors as they are now (the run's /dev/null
    and log file): Python decides at start whether they can seek, buffer or are a terminal, and
    the standby started on pipes. Same encoding, errors and buffering as Python gave them."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        old = getattr(sys, f"__{name}__")
        if old is None:
            continue
        _STARTED_STDIO.append(old)
        raw = io.FileIO(fd, mode, closefd=False)
        unbuffered = isinstance(getattr(old, "buffer", None), io.FileIO)  # -u / PYTHONUNBUFFERED
        buffered: Any = raw if unbuffered and mode == "w" else (
            io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw))
        new = io.TextIOWrapper(buffered, encoding=old.encoding, errors=old.errors,
                               line_buffering=old.line_buffering or raw.isatty(),
                               write_through=getattr(old, "write_through", False))
        setattr(sys, name, new)
        setattr(sys, f"__{name}__", new)


def become_pytest(argv: list[str], env: dict[str, str], cwd: str, base_path: list[str] | None = None) -> None:
    """Turn this process into `argv` (`python -m pytest ARGS`) started in `cwd` with `env`: raises
    SystemExit with pytest's exit code, as `python -m pytest` ends. `base_path`: the interpreter's
    own sys.path (default: this process's, without this file's directory)."""
    _reopen_stdio()
    os.environ.clear()
    os.environ.update(env)
    sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
    os.chdir(cwd)
    extra = [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    # as `python -m` in cwd would have it: cwd first (not under PYTHONSAFEPATH / -P), then
    # PYTHONPATH, then the interpreter's own
    first = [] if getattr(sys.flags, "safe_path", False) else [os.getcwd()]
    sys.path[:] = [*first, *extra, *(BASE_PATH if base_path is None else base_path)]
    args = argv[3:] if argv[1:3] == ["-m", "pytest"] else argv[1:]
    sys.argv = ["-m", *args]  # runpy puts the module's file in argv[0], as `-m` does
    # pytest runs in a __main__ of its own, as under `-m`, not in this script's globals (kept
    # alive: this function's code runs in them).
    _STARTED_STDIO.append(sys.modules["__main__"])
    sys.modules["__main__"] = types.ModuleType("__main__")
    runpy._run_module_as_main("pytest", alter_argv=True)  # type: ignore[attr-defined]  # what `-m` runs


def _read_line(fd: int) -> bytes | None:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return None
        data += chunk
    return data


def main() -> None:
    # Nothing is imported from this file's directory (farm's workers/): a file there of a standard
    # module's name must not be what the preload imports.
    sys.path[:] = BASE_PATH
    preload()
    # The files it loaded: the worker checks them before it hands a run over (an upgrade on disk
    # while it waited makes it stale).
    files = {sys.executable}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str):
            files.add(path)
    ready = {"k": "standby", "pid": os.getpid(), "modules": loaded_modules(), "files": sorted(files)}
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    line = _read_line(0)
    if line is None:
        sys.exit(0)  # the worker closed without a request (it stops, or discards this standby)
    request = json.loads(line)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    log = os.open(str(request["log"]), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    niceness = int(request.get("niceness", 0))
    if niceness > 0:
        os.nice(niceness)
    become_pytest([str(a) for a in request["argv"]], {str(k): str(v) for k, v in request["env"].items()},
                  str(request["cwd"]))


if __name__ == "__main__":
    main()

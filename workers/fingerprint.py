"""The runners' interpreter fingerprint: a script run under that interpreter names it and its
installed distributions (for the collection cache's key), started ahead and read once.

Standard library only: `python -m workers` starts it first thing, before it imports redis-py and
Celery (workers.backends.local imports both; this module neither)."""

from __future__ import annotations

import os
import subprocess

#: The script that names an interpreter and its installed distributions (run under that interpreter).
FINGERPRINT_SCRIPT = """\
import json, platform, sys
try:
    from importlib import metadata
    dists = sorted({(d.metadata["Name"] or "", d.version or "") for d in metadata.distributions()})
except Exception as exc:
    dists = [("?", repr(exc))]
print(json.dumps([sys.version, sys.platform, platform.machine(), sys.executable, dists]))
"""

#: Each interpreter's fingerprint, computed once per worker process (local.environment_fingerprint).
FINGERPRINTS: dict[str, str] = {}
#: Fingerprint scripts started ahead (start_fingerprint), each with the pid of the process that
#: started it: only that process may read it (a forked pool process could not wait for it).
PROBES: dict[str, tuple[int, subprocess.Popen[str]]] = {}


def runner_base_env(base: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    """The worker's environment minus farm's and Celery's own variables."""
    return {k: v for k, v in base.items() if not k.startswith(("FARM_", "CELERY_", "PYTHONPATH"))}


def start_fingerprint(python: str) -> None:
    """Start the fingerprint script under `python` now, in the background; probe_output reads its
    answer. The worker's main process starts it beside Celery's start-up and reads it before its
    pool forks, so the pool processes inherit the answer: neither the collection nor the first
    assignment then waits for a Python start of its own (0.2 s of CPU each)."""
    if python in FINGERPRINTS or python in PROBES:
        return
    try:
        proc = subprocess.Popen([python, "-c", FINGERPRINT_SCRIPT], env=runner_base_env(os.environ),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
    except OSError:
        return  # environment_fingerprint tries again, and says "" if it cannot tell
    PROBES[python] = (os.getpid(), proc)


def probe_output(python: str) -> tuple[int, str] | None:
    """The exit code and output of the fingerprint script under `python` (started ahead by this
    process, or now); None when it could not run."""
    started = PROBES.pop(python, None)
    if started is not None and started[0] == os.getpid():
        proc = started[1]
        try:
            out, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None
        return proc.returncode, out
    if started is not None and started[1].stdout is not None:  # inherited through a fork: not ours to read
        started[1].stdout.close()
    try:
        done = subprocess.run([python, "-c", FINGERPRINT_SCRIPT], env=runner_base_env(os.environ),
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.returncode, done.stdout

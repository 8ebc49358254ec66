"""Start a `farm up` cluster for a benchmark, find its broker URL, and stop it for sure."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from bench.procs import group_alive, kill_group
from bench.sampler import services

# The URL `farm up` prints, e.g. "broker: redis://127.0.0.1:41234/0".
BROKER_URL = re.compile(r"redis://[^\s'\"<>]+")
# How long a stopped cluster gets after SIGINT before its process group is killed.
STOP_GRACE_S = 30.0
# Lines of the cluster's output kept for error messages.
TAIL_LINES = 15


class ClusterError(Exception):
    """The cluster could not be started (the message is one line for the user)."""


class FarmCluster:
    """`farm up --workers W --slots S` as a process group, for use in a with-block."""

    def __init__(
        self,
        farm: list[str],
        workers: int,
        slots: int,
        log: Path,
        startup_timeout_s: float,
        env: dict[str, str] | None = None,
        python: str | None = None,
        extra: list[str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.command = [*farm, "up", "--workers", str(workers), "--slots", str(slots), *(extra or [])]
        if python:  # the same interpreter runs the suite under farm as under pytest and xdist
            self.command += ["--python", python]
        self.log = log
        # `python -m farm` imports from its working directory first: run it where there is no farm tree.
        self.cwd = cwd
        self.startup_timeout_s = startup_timeout_s
        self.env = env
        self.broker_url: str | None = None
        self.startup_s: float | None = None
        self.stop_note: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._tail: list[str] = []
        self._drain: threading.Thread | None = None

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        """The pid of `farm up` while it runs (its services are its children, in sessions of their own)."""
        return None if self._proc is None else self._proc.pid

    def _start(self) -> None:
        start = time.perf_counter()
        try:
            self._proc = subprocess.Popen(
                self.command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.cwd,
            )
        except OSError as exc:
            raise ClusterError(f"cannot start {self.command[0]!r}: {exc.strerror or exc}") from None
        self._drain = threading.Thread(target=self._read_output, daemon=True)
        self._drain.start()
        deadline = start + self.startup_timeout_s
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise ClusterError(
                    f"no redis:// URL from `farm up` within {self.startup_timeout_s:g} s" + self._tail_text()
                )
            try:
                line = self._lines.get(timeout=min(remaining, 0.5))
            except queue.Empty:
                # A child that inherited stdout can keep the pipe open after `farm up` died.
                line = None if self._proc.poll() is not None else ""
            if line is None:
                code = self._proc.wait()
                time.sleep(0.2)  # let the reader catch its last lines for the message
                raise ClusterError(
                    f"`farm up` exited with code {code} before printing a redis:// URL" + self._tail_text()
                )
            match = BROKER_URL.search(line)
            if match:
                self.broker_url = match.group(0)
                self.startup_s = time.perf_counter() - start
                return

    def _read_output(self) -> None:
        """Copy the cluster's output to the log for as long as it runs (the pipe never fills)."""
        assert self._proc is not None and self._proc.stdout is not None
        with open(self.log, "w") as out:
            for raw in self._proc.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                out.write(line + "\n")
                out.flush()
                self._tail = [*self._tail[-(TAIL_LINES - 1) :], line]
                self._lines.put(line)
        self._lines.put(None)

    def _tail_text(self) -> str:
        if not self._tail:
            return " (it printed nothing)"
        return "; its last output: " + " | ".join(self._tail[-5:])

    def stop(self) -> None:
        """SIGINT, up to STOP_GRACE_S to exit, then SIGKILL for whatever is left of the group."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        # Its services run in sessions of their own: remember them, to kill what outlives the stop.
        left = [pid for pids in services(proc.pid).values() for pid in pids]
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    self.stop_note = f"`farm up` ignored SIGINT for {STOP_GRACE_S:g} s: killed"
            if group_alive(proc.pid) and self.stop_note is None:
                # The leader is gone but left children behind (workers, redis ...).
                time.sleep(1.0)
                if group_alive(proc.pid):
                    self.stop_note = "`farm up` exited but left processes behind: killed"
        finally:
            kill_group(proc.pid)
            proc.wait()
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)  # a no-op on the zombies init is about to reap
                except OSError:
                    pass
            if self._drain is not None:
                self._drain.join(timeout=5)

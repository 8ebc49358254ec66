"""The small protocol every execution backend implements."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from farm.suite_env import SuiteEnv


@dataclass(frozen=True)
class RunRequest:
    """One pytest process to start: collect a bundle, or run some of its tests."""

    mode: str  # "collect" or "run"
    bundle: Path  # the local bundle archive
    pytest_args: tuple[str, ...]
    test_ids: tuple[str, ...]
    label: str  # names the environment (assignment id or suite id)
    output_cap: int = 64 * 1024
    longrepr_cap: int = 256 * 1024
    niceness: int = 0  # added to the runner's CPU niceness (0: as the worker)
    test_timeout_s: float = 0.0  # per-test limit enforced inside the runner (0: none)
    # Parallel to test_ids: (position among its function's parametrized items in the plan, how
    # many there were), (-1, 0) without parameters; empty when unknown (see Assignment.param_index).
    positions: tuple[tuple[int, int], ...] = ()
    # How many items the plan's collection found in each file of test_ids, for the runner to
    # compare with its own collection (a "stale" line when they differ); empty: not checked.
    planned_files: tuple[tuple[str, int], ...] = ()
    # Collect mode: (i, K), collect only shard i of K of the files (workers/collect_shards.py);
    # (0, 1): the whole collection.
    shard: tuple[int, int] = (0, 1)
    # The suite's environment (empty: the backend's interpreter as it is). The ssh and libvirt
    # backends build it on the remote themselves (workers/remote_env.py).
    env: SuiteEnv = SuiteEnv()
    # The suite's environment (workers/suite_envs.py): the interpreter runners use instead of the
    # backend's own ("": the backend's), and PYTHONPATH entries after the plugin's (a relative one
    # is in the run's project directory: an editable project's `src`; an absolute one: a plain install).
    python: str = ""
    paths: tuple[str, ...] = ()


def tests_file_text(request: RunRequest) -> str:
    """The runner plugin's FARM_TESTS_FILE: the ids to run, with their planned positions and the
    plan's item count per file if known."""
    if not request.positions and not request.planned_files:
        return json.dumps(list(request.test_ids))
    data: dict[str, object] = {"ids": list(request.test_ids)}
    if request.positions:
        data["positions"] = [list(p) for p in request.positions]
    if request.planned_files:
        data["files"] = dict(request.planned_files)
    return json.dumps(data)


def runner_env(request: RunRequest, workdir: str, plugin_dir: str, project: str = "") -> dict[str, str]:
    """The runner plugin's environment (docs/how-it-works.md, "The runner plugin's line protocol")
    for a run whose tests file and stacks file are in `workdir`, whose plugin is in `plugin_dir`
    and whose project is in `project` (where request.paths are taken from; shared by every
    backend; each adds where the record lines go)."""
    paths = [p if p.startswith("/") else f"{project or workdir + '/project'}/{p}" for p in request.paths]
    return {
        "PYTHONPATH": ":".join([plugin_dir, *paths]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "FARM_MODE": request.mode,
        "FARM_TESTS_FILE": f"{workdir}/tests.json",
        "FARM_OUTPUT_CAP": str(request.output_cap),
        "FARM_LONGREPR_CAP": str(request.longrepr_cap),
        "FARM_TEST_TIMEOUT": repr(request.test_timeout_s),
        "FARM_STACK_FILE": f"{workdir}/stacks.txt",
        **({"FARM_COLLECT_SHARD": f"{request.shard[0]}/{request.shard[1]}"} if request.shard[1] > 1 else {}),
    }


class RunningPytest(Protocol):
    """A started runner: its record lines, its end, and how to stop it."""

    node: str  # the environment it runs in, as reports name it

    def read_lines(self, timeout: float) -> list[bytes]:
        """Record lines that arrived within `timeout` seconds (maybe none)."""

    def poll(self) -> int | None:
        """The exit code once the runner ended and every line was read, else None."""

    def stop(self, grace: float, *, stacks: bool = False) -> int:
        """Stop the runner and everything it started (TERM, grace, KILL); return the exit code.

        With `stacks`, first ask the runner to write where every thread is (for stack_dump)."""

    def output_tail(self, limit: int = 4000) -> str:
        """The end of the runner's stdout and stderr."""

    def stack_dump(self) -> str:
        """The stacks the runner dumped when a test ran past its timeout ("" if it did not)."""

    def close(self) -> None:
        """Remove the environment (work directory, VM, ...)."""


@runtime_checkable
class Fencing(Protocol):
    """A runner that can be told, while it runs, where to stop (run-time balancing; the local
    backend's: a fence file its plugin polls between tests, workers/pytest_plugin/fence.py)."""

    def fence(self, seq: int, tail: tuple[str, ...]) -> None:
        """Ask the runner to run none of `tail` (request `seq`), if none of it started."""

    def fence_reply(self) -> tuple[int, list[str]] | None:
        """The runner's answer to the last fence: (seq, the tests it cut: none of them will run),
        or None while it has not answered."""


@dataclass(frozen=True)
class Usage:
    """What a runner's process tree used, and what it left: each process still alive when it ended
    (when it started, epoch seconds; its command line)."""

    peak_rss_bytes: int = 0
    cpu_s: float = 0.0
    leftovers: tuple[tuple[float, str], ...] = ()


@runtime_checkable
class Measured(Protocol):
    """A runner whose process tree the worker can measure (the local backend's: processes on this
    machine; docs/how-it-works.md, "Resources and leaks", says why the others are not)."""

    def sample(self) -> int:
        """Sample the tree now; its resident memory in bytes (0 once the runner is gone)."""

    def usage(self) -> Usage:
        """Once closed: its peak, its CPU seconds, and what it left behind."""


#: Runs one trivial test through a backend, as a worker would run it: the seconds it took, or
#: InfrastructureError (workers.image_check.check_backend; passed in, so backends need not import it).
HealthCheck = Callable[["ExecutionBackend"], float]


class ExecutionBackend(Protocol):
    """Starts runners somewhere; the worker calls its lifecycle hooks, whatever backend it is."""

    name: str

    def start(self, request: RunRequest) -> RunningPytest:
        """Prepare an environment with the bundle unpacked and start pytest in it."""

    def prepare(self, check: HealthCheck) -> None:
        """Once, in the worker's main process, before its pool forks and before it consumes: clean
        up what an earlier run of this worker left, and run `check` through a backend like this
        one if its environments may fail to come up (VMs). InfrastructureError: do not start."""

    def process_started(self) -> None:
        """In each new pool process, before its first assignment."""

    def health(self) -> str:
        """Why the worker should stop consuming ("" while all is well); asked every heartbeat."""

    def shutdown(self) -> None:
        """When the worker stops: remove what would outlive it (VMs live in libvirtd)."""


class WithoutLifecycle:
    """The lifecycle hooks of a backend whose environments need no preparing or cleaning up
    beyond each run's own (local processes, SSH hosts): a runner that cannot start says so in
    its assignment."""

    def prepare(self, check: HealthCheck) -> None:
        pass

    def process_started(self) -> None:
        pass

    def health(self) -> str:
        return ""

    def shutdown(self) -> None:
        pass

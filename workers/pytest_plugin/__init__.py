"""farm's runner plugin: reports collection and per-test results as JSON lines on a file descriptor.

It travels with each assignment into the sandbox, SSH host or VM, so it uses only the standard
library and pytest (7.2 or newer), and its modules import each other relatively: the backends copy
the whole package (workers.backends.local.plugin_files) into the run's `plugin/` directory as the
package `farm_runner_plugin`. The runner loads it with `-p farm_runner_plugin` and sets:

  FARM_RECORD_FD    the descriptor to write JSON lines to (one object per line)
  FARM_MODE         "collect" (report what --collect-only found) or "run"
  FARM_COLLECT_SHARD in collect mode: "i/K", collect only shard i of K of the files (collect_shard.py)
  FARM_TESTS_FILE   in run mode: a JSON list of the node ids to run; everything else is deselected
  FARM_OUTPUT_CAP   bytes of captured output kept per section (default 65536)
  FARM_LONGREPR_CAP bytes of failure report kept per phase (default 262144)
  FARM_TEST_TIMEOUT seconds one test may take (0 or unset: no limit; up to a tenth more, at most
                    1 s, as the watchdog is re-armed only that often). Past it, faulthandler
                    writes every thread's stack to FARM_STACK_FILE and ends the process; the
                    worker records the test as `timeout` and starts a new runner for the rest.

Lines it writes: {"k": "item", "id"} per collected test (collect mode); {"k": "session", "id": "",
...} once at the end of a collection: the session's effective options (after the ini's addopts),
how many tests it deselected, its versions; {"k": "collect", "id", "cat", "msg", "longrepr"} per
failed or skipped collector; `S<i> <t>` when test i (its position in the tests file) starts, or
{"k": "start", "id", "t", "ran_as"} when it runs a renamed item; `P<i> <setup_s> <call_s>
<teardown_s>` when it ends in a plain pass, else {"k": "test", "id", "t", "duration_s", "phases":
{phase: {"cat", "msg", "longrepr", "s"}}, "sections"} ("s": the phase's duration); a test's end
line goes out with the next start (see run_mode); {"k": "missing", "id", "collected", "more", "planned"} for an
assigned id that was not collected ("collected": the first ids the runner did collect for its
function, or its module; "more": how many more; "planned": how many items its function had in
the plan). Folding the phases into one outcome is the worker's job (farm.outcomes.fold_phases).

`-x`/`--maxfail` never stop a runner: the farm applies them to the whole suite (the coordinator
counts failures across assignments and stops them all), so this plugin turns them off here.

FARM_TESTS_FILE holds a JSON list of node ids, or {"ids": [...], "positions": [[index, count],
...]}: each id's position among the parametrized items of its function in the plan, and how many
there were ([-1, 0] for an id without parameters). A test whose parameter ids changed since the
plan (parameters made from the time, a random seed, an unordered set) is not collected under its
planned id; when the runner collected that function with as many parametrized items as the plan,
the item at the planned position runs in its place, reported under the planned id with
"ran_as": the id it ran as (start and test lines). With "files": {file: items}, the number of
items the plan's collection found in each file of the assigned tests, a file where this runner
collected another number gets {"k": "stale", "id": file, "planned", "collected"}.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .collect_check import CollectionCheck, narrowed_args
from .collect_mode import CollectRecorder
from .collect_shard import CollectShard, read_shard
from .fence import register as register_fence
from .record_pipe import RecordPipe
from .run_mode import RunRecorder, read_tests_file

PLUGIN_NAME = "farm-recorder"


def pytest_configure(config: Any) -> None:
    fd = os.environ.get("FARM_RECORD_FD")
    if not fd:
        return
    mode = os.environ.get("FARM_MODE", "run")
    emitter = RecordPipe(int(fd))
    maxfail = int(getattr(config.option, "maxfail", 0) or 0)
    config.option.maxfail = 0  # suite-wide, the coordinator's job: see the module docstring
    if mode == "collect":
        index, count = read_shard(os.environ.get("FARM_COLLECT_SHARD", ""))
        shard = CollectShard(config, emitter, index, count) if count > 1 else None
        if shard is not None:
            config.pluginmanager.register(shard, PLUGIN_NAME + "-shard")
        config.pluginmanager.register(CollectRecorder(config, emitter, maxfail, shard), PLUGIN_NAME)
        return
    with open(os.environ["FARM_TESTS_FILE"], encoding="utf-8") as fh:
        data = json.load(fh)
    wanted, positions = read_tests_file(data)
    planned_files = read_planned_files(data)
    if planned_files:  # registered before the recorder: see CollectionCheck
        config.pluginmanager.register(CollectionCheck(emitter, planned_files), PLUGIN_NAME + "-check")
    recorder = RunRecorder(config, emitter, wanted, positions)
    config.pluginmanager.register(recorder, PLUGIN_NAME)
    register_fence(config)  # run-time balancing: FARM_FENCE_FILE / FARM_FENCE_REPLY (fence.py)
    # Collect only the files the assignment needs: replace the positional arguments (the user's
    # paths) with the assigned tests' files, keeping every other option as the user gave it. This
    # happens here, after pytest chose the rootdir, the ini file and the initial conftests from the
    # user's own arguments, so node ids and configuration stay those of the plan's collection.
    # Not under --pyargs: the user's arguments name packages there, and ids may not be files. Not
    # when the user named node ids (`file::test`): they already select, and a whole file would
    # collect more than the plan's collection found there.
    if not getattr(config.option, "pyargs", False) and not any("::" in str(a) for a in config.args):
        config.args[:] = narrowed_args(config.rootpath, wanted, list(config.args))


def read_planned_files(data: Any) -> dict[str, int]:
    """FARM_TESTS_FILE's "files": how many items the plan's collection found in each file of the
    assigned tests ({} when not sent: nothing is checked)."""
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return {}
    return {str(f): int(n) for f, n in files.items() if isinstance(n, int)}

"""The runner a warm VM starts before its assignment (workers/vm_runner.py), run here on the host
under an interpreter with pytest, as the libvirt backend drives it in the guest: it waits with
pytest imported, takes a collection and then a run on the same channel, each in a process of
its own, obeys a stop, and ends at EOF."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import IO

import psutil
import pytest

from farm.bundle import make_bundle
from workers.backends.base import RunRequest
from workers.backends.vm_run import RUNNER_DIR, request_header, runner_archive
from workers.records import LineReader
from workers.records import test_record as record

PROJECT = {
    "conftest.py": "import os\nSTART = os.getpid()\n",
    "test_a.py": ("import os, sys, time\nimport conftest\n\n"
                  "def test_pass():\n    assert 1 + 1 == 2\n\n"
                  "def test_fail():\n    print('shown')\n    assert 0\n\n"
                  "def test_where():\n    assert os.getcwd().endswith('/project')\n"
                  "    assert sys.path[0] == os.getcwd()\n    assert os.environ['FARM_MODE'] == 'run'\n\n"
                  "def test_hangs():\n    time.sleep(600)\n"),
}


@pytest.fixture
def runner(tmp_path: Path):  # type: ignore[no-untyped-def]
    home = tmp_path / "runner"
    with tarfile.open(fileobj=io.BytesIO(runner_archive())) as tar:
        tar.extractall(home)  # our own archive
    proc = subprocess.Popen([sys.executable, str(home / "vm_runner.py"), str(home)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert json.loads(proc.stdout.readline())["k"] == "standby"
    yield proc, home
    if proc.poll() is None:
        # Its pytest children run in sessions of their own: a test that failed midway leaves one.
        for child in psutil.Process(proc.pid).children(recursive=True):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
        proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        assert stream is not None
        stream.close()


def _bundle(tmp_path: Path) -> bytes:
    src = tmp_path / "src"
    src.mkdir()
    for name, text in PROJECT.items():
        (src / name).write_text(text)
    return make_bundle(src, 1 << 20).data


def _send(proc: subprocess.Popen[bytes], home: Path, mode: str, ids: tuple[str, ...], bundle: bytes) -> str:
    req = RunRequest(mode=mode, bundle=Path("unused"), pytest_args=("-q", "-p", "no:cacheprovider"), test_ids=ids,
                     label=f"s-{mode}")
    label, header = request_header(req, len(bundle), runner_dir=str(home))
    assert proc.stdin is not None
    proc.stdin.write(b"run " + json.dumps(header).encode() + b"\n" + bundle)
    proc.stdin.flush()
    return label


def _until_exit(stdout: IO[bytes], ids: tuple[str, ...] = ()) -> list[dict]:
    """The runner's lines up to its exit line, read as the worker reads them (compact S/P lines too)."""
    reader, lines = LineReader(ids), []
    while True:
        raw = stdout.readline().rstrip(b"\n")
        obj = reader.read(raw) if raw[:1] in (b"S", b"P") else json.loads(raw)  # pid and exit lines name no test
        assert obj is not None, f"a line the worker cannot read: {raw!r}"
        lines.append(obj)
        if obj["k"] == "exit":
            return lines


def test_a_collection_then_a_run_on_one_runner_each_in_a_process_of_its_own(runner, tmp_path: Path) -> None:
    proc, home = runner
    bundle = _bundle(tmp_path)
    _send(proc, home, "collect", (), bundle)
    collected = _until_exit(proc.stdout)
    assert collected[0]["k"] == "pid" and collected[0]["pid"] != proc.pid
    items = [o["id"] for o in collected if o["k"] == "item"]
    assert items == [f"test_a.py::test_{n}" for n in ("pass", "fail", "where", "hangs")]
    assert collected[-1] == {"k": "exit", "code": 0}
    ids = ("test_a.py::test_pass", "test_a.py::test_fail", "test_a.py::test_where")
    label = _send(proc, home, "run", ids, bundle)
    ran = _until_exit(proc.stdout, ids)
    assert ran[0]["pid"] not in (proc.pid, collected[0]["pid"])
    outcomes = {r.test_id.split("::")[1]: r.outcome.value for r in (record(o) for o in ran if o["k"] == "test")}
    outcomes |= {str(o["id"]).split("::")[1]: "passed" for o in ran if o["k"] == "pass"}  # a plain pass's line
    assert outcomes == {"test_pass": "passed", "test_fail": "failed", "test_where": "passed"}
    assert ran[-1] == {"k": "exit", "code": 1}  # pytest's own exit code: a test failed
    assert "shown" in (home / label / "output.log").read_text()
    assert proc.stdin is not None
    proc.stdin.close()  # the worker is done with the VM
    assert proc.wait(timeout=60) == 0


def test_a_stop_ends_the_hanging_run_and_a_stale_stop_is_ignored_by_the_next(runner, tmp_path: Path) -> None:
    proc, home = runner
    bundle = _bundle(tmp_path)
    _send(proc, home, "run", ("test_a.py::test_hangs",), bundle)
    assert proc.stdout is not None and proc.stdin is not None
    reader = LineReader(("test_a.py::test_hangs",))
    while (reader.read(proc.stdout.readline().rstrip(b"\n")) or {}).get("k") != "start":  # S0 or a JSON start
        pass
    proc.stdin.write(b"stop 1\n")
    proc.stdin.flush()
    lines = _until_exit(proc.stdout)
    assert lines[-1]["code"] < 0, lines  # killed by a signal
    proc.stdin.write(b"stop 1\n")  # sent as the run ended: the next request still runs
    proc.stdin.flush()
    _send(proc, home, "run", ("test_a.py::test_pass",), bundle)
    assert _until_exit(proc.stdout, ("test_a.py::test_pass",))[-1] == {"k": "exit", "code": 0}


def test_the_archive_holds_the_runner_its_helpers_and_the_plugin() -> None:
    with tarfile.open(fileobj=io.BytesIO(runner_archive())) as tar:
        names = set(tar.getnames())
    assert {"vm_runner.py", "remote_runner.py", "farm_unpack.py", "plugin/farm_runner_plugin/__init__.py"} <= names
    assert RUNNER_DIR.startswith("/tmp/")

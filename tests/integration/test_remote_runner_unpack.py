"""The remote runner (SSH hosts, VMs) unpacks bundles as safely as farm does, under any python3."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from farm import unpack

ROOT = Path(__file__).resolve().parent.parent.parent
#: Debian 12's own python3 (3.11.2: tarfile has no filters), as in farm's VM image; else ours.
PYTHONS = sorted({p for p in ("/usr/bin/python3", sys.executable) if os.path.exists(p)})


def _workdir(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "workers" / "remote_runner.py", work / "remote_runner.py")
    shutil.copy(unpack.__file__, work / "farm_unpack.py")  # as the SSH backend uploads it
    with tarfile.open(work / "bundle.tar.gz", "w:gz") as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (work / "request.json").write_text(json.dumps({"argv": [sys.executable, "-c", "print('ran')"], "env": {}}))
    return work


def _run(python: str, work: Path) -> tuple[list[dict], str]:
    # Its stdin stays open, as the worker's channel does (EOF there means: the worker is gone, stop).
    proc = subprocess.Popen([python, str(work / "remote_runner.py"), str(work)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.close()
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == 0, err
    return [json.loads(line) for line in out.splitlines()], err


@pytest.mark.parametrize("python", PYTHONS)
def test_a_member_that_climbs_out_of_the_project_is_refused_and_nothing_runs(tmp_path: Path, python: str) -> None:
    work = _workdir(tmp_path, [(tarfile.TarInfo("../../escaped.txt"), b"out")])
    lines, err = _run(python, work)
    assert not (tmp_path / "escaped.txt").exists() and not (work / "escaped.txt").exists()
    assert lines == [{"k": "exit", "code": 3}], lines
    assert "the bundle cannot be unpacked" in err and "Traceback" not in err
    assert "the bundle cannot be unpacked" in (work / "output.log").read_text()


@pytest.mark.parametrize("python", PYTHONS)
def test_a_plain_bundle_is_unpacked_and_run(tmp_path: Path, python: str) -> None:
    work = _workdir(tmp_path, [(tarfile.TarInfo("tests/test_a.py"), b"def test_a():\n    pass\n")])
    lines, _ = _run(python, work)
    assert (work / "project" / "tests" / "test_a.py").is_file()
    assert [line["k"] for line in lines] == ["pid", "exit"] and lines[-1]["code"] == 0

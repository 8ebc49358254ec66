"""A project that unpacks to gigabytes: refused at submit (exit 4), and by a worker (one line)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.helpers import LEAN, farm, running_cluster

from farm.cluster import ClusterSpec
from farm.report.schema import load_report


def _project(root: Path) -> Path:
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test_a.py").write_text("def test_a():\n    pass\n")
    return root


def test_submit_refuses_a_project_that_unpacks_past_the_cap_in_one_line_exit_4(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    with open(root / "disk.img", "wb") as fh:
        fh.truncate(2 * 1024**3)  # a 2 GiB sparse file: a 2 MiB bundle, 2 GiB in every run directory
    result = farm("submit-suite", str(root), "--", *LEAN, "tests", timeout=120)
    assert result.returncode == 4, result.stdout + result.stderr
    assert result.stderr.splitlines() == [
        f"farm: error: project {root} unpacks to more than 1 GiB (disk.img alone is 2 GiB) "
        "(raise FARM_MAX_UNPACKED_MB or leave large files out of the project)"]
    assert not list(tmp_path.glob("farm-cluster-*")), "a farm was started for a refused project"


def test_a_worker_refuses_a_bundle_over_its_own_cap_and_the_suite_says_so_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _project(tmp_path / "p")
    (root / "zeros.bin").write_bytes(bytes(4 * 1024 * 1024))
    monkeypatch.setenv("FARM_MAX_UNPACKED_MB", "1")  # the workers' cap; the submitter keeps 1 GiB
    with running_cluster(ClusterSpec(workers=1, slots=1)) as cluster:
        report_path = tmp_path / "r.json"
        result = farm("submit-suite", str(root), "--broker", cluster.broker_url, "--json", str(report_path),
                      "--", *LEAN, "tests")
        cluster.check_alive()
    assert result.returncode == 3, result.stdout + result.stderr
    report = load_report(report_path)
    assert report["status"] == "error"
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "unpacks to more than" in line]
    assert len(lines) == 1, result.stdout + result.stderr
    assert "1 MiB" in lines[0] and "FARM_MAX_UNPACKED_MB" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr

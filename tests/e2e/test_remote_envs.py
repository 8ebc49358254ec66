"""Suite environments on the ssh and libvirt backends, through `farm up` and `farm submit-suite
--requirements`: the edge-case suite, whose subtests need pytest 9, gives plain pytest 9's outcomes
on a host in a network namespace (no package index there; its python3 is Debian's, whose pytest is
7.2.1, and has no pip) and in a VM (its image carries the same pytest 7.2.1). The worker fetched the
wheels, shipped them, and the environment was built on the remote; `farm image build
--requirements` bakes it instead."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from support import sshd
from support.helpers import LEAN, copy_fixture, farm, need, netns_usable
from support.reference import run_reference

from farm.report.schema import load_report
from workers.image import DEFAULT_DIR

DEBIAN_PYTHON = "/usr/bin/python3"  # 3.11.2, Debian's pytest 7.2.1, no pip: pytest 9 comes from the environment
SUBTESTS = "tests/test_subtests.py::test_one_subtest_fails"


def _outcomes(report: dict) -> dict[str, str]:
    return {t["id"]: t["outcome"] for t in report["tests"]}


def _requirements(tmp_path: Path, text: str = "pytest>=9\n") -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    return path


def _fetched(tmp: Path) -> list[str]:
    """The wheel sets the farm's workers fetched (each worker's cache is in farm up's TMPDIR): one
    per environment a remote lacked and had built."""
    return sorted(p.name for p in tmp.glob("farm-cluster-*/worker-*/wheels/*") if (p / "done").exists())


def _submit(broker: str, project: Path, requirements: Path, report_path: Path, *args: str):  # type: ignore[no-untyped-def]
    return farm("submit-suite", str(project), "--broker", broker, "--requirements", str(requirements),
                "--json", str(report_path), *args, "--", *LEAN, "tests", timeout=1500)


@pytest.fixture
def host_in_namespace(tmp_path: Path):  # type: ignore[no-untyped-def]
    need(sshd.available(), "sshd (openssh-server) is not installed")
    why = netns_usable()
    need(not why, why)
    need(Path(DEBIAN_PYTHON).exists(), f"{DEBIAN_PYTHON} is missing")
    key = sshd.keygen(tmp_path / "client_ed25519")
    with sshd.sshd_in_namespace(tmp_path / "h2", key.with_suffix(".pub")) as server:
        known = tmp_path / "known_hosts"
        known.write_text(server.known_hosts_line())
        hosts = tmp_path / "hosts.toml"
        envs = tmp_path / "host-envs"
        hosts.write_text(f'known_hosts = "{known}"\nkey = "{key}"\n'
                         + server.toml(slots=2, python=DEBIAN_PYTHON, workdir=tmp_path / "remote-runs")
                         + f'envs = "{envs}"\n')
        yield hosts, envs


def test_ssh_host_builds_the_suite_environment_and_gives_pytest_9_outcomes(farm_up, host_in_namespace,
                                                                           tmp_path: Path) -> None:
    hosts, envs = host_in_namespace
    project = copy_fixture("correctness", tmp_path)
    code, expected = run_reference(project, [*LEAN, "tests"], tmp_path / "reference.json")
    assert expected[SUBTESTS] == "failed"  # the reference is pytest 9: the subtests ran
    farm_tmp = tmp_path / "farm-tmp"
    farm_tmp.mkdir()
    running = farm_up("--backend", "ssh", "--hosts", str(hosts), "--workers", "1", "--slots", "2",
                      env={"TMPDIR": str(farm_tmp)})
    requirements = _requirements(tmp_path)
    report_path = tmp_path / "report.json"
    result = _submit(running.broker, project, requirements, report_path)
    assert result.returncode == code == 1, result.stdout + result.stderr
    report = load_report(report_path)
    assert _outcomes(report) == expected
    assert {a["node"] for a in report["assignments"]} == {"ssh:h2"}
    (built,) = [p for p in envs.iterdir() if (p / "farm-env.json").exists()]  # one, renamed into place whole
    assert not list(envs.glob(".*")), "a half-built environment was left"
    assert _fetched(farm_tmp) == [built.name]  # fetched once: the collection built it, the runs reused it
    first = (built / "farm-env.json").stat().st_ino
    # A second suite with the same requirements: nothing fetched, shipped or built again.
    again = _submit(running.broker, project, requirements, tmp_path / "again.json")
    assert again.returncode == 1, again.stdout + again.stderr
    assert _outcomes(load_report(tmp_path / "again.json")) == expected
    assert [p.name for p in envs.iterdir()] == [built.name]
    assert (built / "farm-env.json").stat().st_ino == first


def test_a_requirement_no_index_has_ends_the_suite_in_one_line(farm_up, host_in_namespace, tmp_path: Path) -> None:
    hosts, envs = host_in_namespace
    project = copy_fixture("correctness", tmp_path)
    running = farm_up("--backend", "ssh", "--hosts", str(hosts), "--workers", "1", "--slots", "1")
    requirements = _requirements(tmp_path, "farm-no-such-package-anywhere==1.0\n")
    report_path = tmp_path / "report.json"
    result = _submit(running.broker, project, requirements, report_path)
    assert result.returncode == 3, result.stdout + result.stderr  # an infrastructure error, not the tests'
    assert "Traceback" not in result.stdout + result.stderr
    report = load_report(report_path)
    assert report["status"] == "error"
    message = report["message"]
    assert message.startswith(f"ssh:h2: could not build the suite's environment ({requirements}): cannot fetch "
                              "wheels for cp311 x86_64: pip download exit 1: ERROR: No matching distribution found "
                              "for farm-no-such-package-anywhere==1.0"), message
    assert "\n" not in message and message in result.stdout.splitlines()
    # pip's last lines are shown above it, without its progress and skipped locations.
    assert "ERROR: Could not find a version that satisfies the requirement" in report["collection"]["output"]
    assert "Looking in" not in report["collection"]["output"]
    assert not envs.exists() or not list(envs.iterdir())  # nothing was shipped or built on the host


def _libvirt_ready() -> None:
    need(os.path.exists("/var/run/libvirt/libvirt-sock"), "libvirtd is not running (bash .ci/libvirt-setup)")


def test_vm_builds_the_suite_environment_in_the_guest_and_gives_pytest_9_outcomes(farm_up, tmp_path: Path) -> None:
    _libvirt_ready()
    project = copy_fixture("correctness", tmp_path)
    code, expected = run_reference(project, [*LEAN, "tests"], tmp_path / "reference.json")
    farm_tmp = tmp_path / "farm-tmp"
    farm_tmp.mkdir()
    running = farm_up("--backend", "libvirt", "--workers", "1", "--slots", "2", "--image", str(DEFAULT_DIR),
                      timeout=900, env={"TMPDIR": str(farm_tmp)})
    report_path = tmp_path / "report.json"
    result = _submit(running.broker, project, _requirements(tmp_path), report_path)
    assert result.returncode == code == 1, result.stdout + result.stderr
    report = load_report(report_path)
    assert _outcomes(report) == expected  # the image's pytest 7.2.1 would have skipped the subtests
    ran = [a for a in report["assignments"] if a["node"]]
    assert ran and all(a["node"].startswith("vm:farm-") for a in ran), report["assignments"]
    assert len(_fetched(farm_tmp)) == 1  # fetched once on the worker, shipped from its cache to each VM


def test_image_build_requirements_bakes_the_environment_so_vms_build_nothing(farm_up, tmp_path: Path) -> None:
    _libvirt_ready()
    need(shutil.which("mmdebstrap") is not None, "mmdebstrap is not installed")
    project = copy_fixture("correctness", tmp_path)
    code, expected = run_reference(project, [*LEAN, "tests"], tmp_path / "reference.json")
    requirements = _requirements(tmp_path)
    image = tmp_path / "image"
    # Named as typed in another directory than the suite's: the same file, the same key.
    built = farm("image", "build", "--output", str(image), "--requirements", requirements.name, cwd=tmp_path,
                 timeout=1200)
    assert built.returncode == 0, built.stdout + built.stderr
    baked = json.loads((image / "image.json").read_text())["envs"]
    assert len(baked) == 1 and baked[0]["describe"] == "requirements.txt", baked
    farm_tmp = tmp_path / "farm-tmp"
    farm_tmp.mkdir()
    running = farm_up("--backend", "libvirt", "--workers", "1", "--slots", "2", "--image", str(image),
                      timeout=900, env={"TMPDIR": str(farm_tmp)})
    report_path = tmp_path / "report.json"
    result = _submit(running.broker, project, requirements, report_path)
    assert result.returncode == code == 1, result.stdout + result.stderr
    assert _outcomes(load_report(report_path)) == expected
    assert _fetched(farm_tmp) == []  # every VM found it in the image: nothing fetched, shipped or built


@pytest.mark.parametrize(("args", "says"), [
    (("--install", ".[test]"), "farm image: --install .[test]: the bundle's own project cannot be installed"),
    (("--requirements", "/nonexistent/requirements.txt"), "farm image: --requirements /nonexistent/requirements.txt: "
                                                          "cannot read it"),
])
def test_image_build_refuses_what_it_cannot_bake_in_one_line(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    result = farm("image", "build", "--output", str(tmp_path / "image"), *args)
    assert result.returncode == 4, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and result.stderr.startswith(says)
    assert not (tmp_path / "image").exists()

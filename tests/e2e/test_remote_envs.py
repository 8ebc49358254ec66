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


#: The fixture suite's own project: a src layout whose `test` extra needs pytest 9 (absent from the
#: host's python3) and docopt (only an sdist on the index: the worker builds its pure wheel).
OWN_PYPROJECT = """\
[project]
name = "farm-own-demo"
version = "1.0"
dependencies = []

[project.optional-dependencies]
test = ["pytest>=9", "docopt==0.6.2"]

[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"
"""
OWN_TESTS = """\
import importlib.metadata

import docopt
import farm_own_demo


def test_the_projects_code_and_its_sdist_only_dependency_import():
    assert farm_own_demo.answer() == 42
    assert docopt.docopt("usage: prog <name>", ["x"]) == {"<name>": "x"}


def test_the_project_is_an_installed_distribution():
    assert importlib.metadata.version("farm-own-demo") == "1.0"


def test_the_projects_code_is_the_runs_own_tree():
    assert "/farm-plain/" not in farm_own_demo.__file__, farm_own_demo.__file__
"""
OWN = "tests/test_own_project.py::"
#: What each mode makes of the own-project tests: editable runs the bundle's tree (no distribution
#: installed), plain an installed copy beside the environment.
OWN_OUTCOMES = {
    "editable": {"test_the_projects_code_and_its_sdist_only_dependency_import": "passed",
                 "test_the_project_is_an_installed_distribution": "failed",
                 "test_the_projects_code_is_the_runs_own_tree": "passed"},
    "plain": {"test_the_projects_code_and_its_sdist_only_dependency_import": "passed",
              "test_the_project_is_an_installed_distribution": "passed",
              "test_the_projects_code_is_the_runs_own_tree": "failed"},
}


def _own_project(tmp_path: Path) -> tuple[Path, int, dict[str, str]]:
    """The edge-case suite with a project of its own, and plain pytest 9's outcomes of its edge cases."""
    project = copy_fixture("correctness", tmp_path)
    code, expected = run_reference(project, [*LEAN, "tests"], tmp_path / "reference.json")
    assert expected[SUBTESTS] == "failed"  # the reference is pytest 9: the subtests ran
    (project / "pyproject.toml").write_text(OWN_PYPROJECT)
    (project / "src" / "farm_own_demo").mkdir(parents=True)
    (project / "src" / "farm_own_demo" / "__init__.py").write_text("def answer():\n    return 42\n")
    (project / "tests" / "test_own_project.py").write_text(OWN_TESTS)
    return project, code, expected


def _submit_own(broker: str, project: Path, report_path: Path, mode: str):  # type: ignore[no-untyped-def]
    return farm("submit-suite", str(project), "--broker", broker, "--install", ".[test]", "--install-mode", mode,
                "--json", str(report_path), "--", *LEAN, "tests", timeout=1500)


def _expected_own(expected: dict[str, str], mode: str) -> dict[str, str]:
    return {**expected, **{OWN + name: outcome for name, outcome in OWN_OUTCOMES[mode].items()}}


@pytest.mark.parametrize("mode", ["editable", "plain"])
def test_ssh_host_installs_the_bundles_own_project_with_its_test_extra(farm_up, host_in_namespace, tmp_path: Path,
                                                                       mode: str) -> None:
    hosts, envs = host_in_namespace
    project, code, expected = _own_project(tmp_path)
    farm_tmp = tmp_path / "farm-tmp"
    farm_tmp.mkdir()
    running = farm_up("--backend", "ssh", "--hosts", str(hosts), "--workers", "1", "--slots", "2",
                      env={"TMPDIR": str(farm_tmp)})
    result = _submit_own(running.broker, project, tmp_path / "report.json", mode)
    assert result.returncode == code == 1, result.stdout + result.stderr
    report = load_report(tmp_path / "report.json")
    assert _outcomes(report) == _expected_own(expected, mode)  # pytest 9's edge cases, the project's mode
    assert {a["node"] for a in report["assignments"]} == {"ssh:h2"}
    (built,) = [p for p in envs.iterdir() if (p / "farm-env.json").exists()]
    (wheels,) = _fetched(farm_tmp)
    assert wheels == built.name
    shipped = sorted(p.name for p in next(farm_tmp.glob(f"farm-cluster-*/worker-*/wheels/{wheels}")).iterdir())
    assert "docopt-0.6.2-py2.py3-none-any.whl" in shipped, shipped  # built from its sdist on the worker
    assert not any(n.startswith("farm_own_demo") for n in shipped)  # the project's code is not in the env
    plain = sorted(p.name for p in (built / "farm-plain").glob("*")) if (built / "farm-plain").exists() else []
    assert len(plain) == (1 if mode == "plain" else 0), plain
    # The project's code changes, its metadata does not: the same environment, no new fetch.
    (project / "src" / "farm_own_demo" / "__init__.py").write_text("def answer():\n    return 43\n")
    again = _submit_own(running.broker, project, tmp_path / "again.json", mode)
    assert again.returncode == 1, again.stdout + again.stderr
    changed = _expected_own(expected, mode)
    changed[OWN + "test_the_projects_code_and_its_sdist_only_dependency_import"] = "failed"  # 43: the new code ran
    assert _outcomes(load_report(tmp_path / "again.json")) == changed
    assert [p.name for p in envs.iterdir() if not p.name.startswith(".")] == [built.name]
    assert _fetched(farm_tmp) == [wheels]
    if mode == "plain":  # a plain install per bundle: the new code's beside the old one
        assert len(list((built / "farm-plain").glob("*"))) == 2


def test_an_sdist_only_requirement_is_built_on_the_worker_for_the_ssh_host(farm_up, host_in_namespace,
                                                                            tmp_path: Path) -> None:
    hosts, envs = host_in_namespace
    project = tmp_path / "docopt-suite"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_docopt.py").write_text(
        "import docopt\n\n\ndef test_docopt_parses():\n    assert docopt.docopt('usage: p <a>', ['1']) == "
        "{'<a>': '1'}\n\n\ndef test_it_came_from_the_environment():\n    assert '/host-envs/' in docopt.__file__\n")
    farm_tmp = tmp_path / "farm-tmp"
    farm_tmp.mkdir()
    running = farm_up("--backend", "ssh", "--hosts", str(hosts), "--workers", "1", "--slots", "1",
                      env={"TMPDIR": str(farm_tmp)})
    requirements = _requirements(tmp_path, "docopt==0.6.2\n")  # the index has docopt 0.6.2 as a .tar.gz only
    result = _submit(running.broker, project, requirements, tmp_path / "report.json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(_outcomes(load_report(tmp_path / "report.json")).values()) == {"passed"}
    (wheels,) = farm_tmp.glob("farm-cluster-*/worker-*/wheels/*/done")
    assert (wheels.parent / "docopt-0.6.2-py2.py3-none-any.whl").exists()


def _compiled_sdist(where: Path) -> None:
    """An sdist of a package with a C extension (`farm-compiled-demo` 1.0), absent from the index."""
    import tarfile

    tree = where / "src" / "farm_compiled_demo-1.0"
    (tree / "farm_compiled_demo").mkdir(parents=True)
    (tree / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: farm-compiled-demo\nVersion: 1.0\n")
    (tree / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools>=61"]\n'
                                         'build-backend = "setuptools.build_meta"\n')
    (tree / "setup.py").write_text(
        "from setuptools import Extension, setup\n"
        "setup(name='farm-compiled-demo', version='1.0', packages=['farm_compiled_demo'],\n"
        "      ext_modules=[Extension('farm_compiled_demo._speed', ['farm_compiled_demo/_speed.c'])])\n")
    (tree / "farm_compiled_demo" / "__init__.py").write_text("")
    (tree / "farm_compiled_demo" / "_speed.c").write_text(
        "#include <Python.h>\nstatic struct PyModuleDef m = {PyModuleDef_HEAD_INIT, \"_speed\", 0, -1, 0};\n"
        "PyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&m); }\n")
    with tarfile.open(where / "farm_compiled_demo-1.0.tar.gz", "w:gz") as tar:
        tar.add(tree, arcname=tree.name)


def test_an_sdist_only_requirement_that_compiles_ends_the_suite_in_one_line(farm_up, host_in_namespace,
                                                                             tmp_path: Path) -> None:
    need(shutil.which("cc") is not None, "no C compiler: the sdist would not build at all")
    hosts, envs = host_in_namespace
    links = tmp_path / "links"
    links.mkdir()
    _compiled_sdist(links)  # found through the worker host's own pip settings (PIP_FIND_LINKS)
    project = copy_fixture("correctness", tmp_path)
    running = farm_up("--backend", "ssh", "--hosts", str(hosts), "--workers", "1", "--slots", "1",
                      env={"PIP_FIND_LINKS": f"{os.environ.get('PIP_FIND_LINKS', '')} {links}".strip()})
    requirements = _requirements(tmp_path, "farm-compiled-demo==1.0\n")
    result = _submit(running.broker, project, requirements, tmp_path / "report.json")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    message = load_report(tmp_path / "report.json")["message"]
    assert message.startswith(f"ssh:h2: could not build the suite's environment ({requirements}): "
                              "farm-compiled-demo==1.0: no wheel for cp311 x86_64 on the index, and its sdist builds "
                              "a compiled wheel (farm_compiled_demo-1.0-cp311-cp311-linux_x86_64.whl) that the worker "
                              "cannot build for the remote"), message
    assert "\n" not in message and message in result.stdout.splitlines()
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


def test_vm_installs_the_bundles_own_project_with_its_test_extra(farm_up, tmp_path: Path) -> None:
    _libvirt_ready()
    project, code, expected = _own_project(tmp_path)
    farm_tmp = tmp_path / "farm-tmp"
    farm_tmp.mkdir()
    running = farm_up("--backend", "libvirt", "--workers", "1", "--slots", "2", "--image", str(DEFAULT_DIR),
                      timeout=900, env={"TMPDIR": str(farm_tmp)})
    result = _submit_own(running.broker, project, tmp_path / "report.json", "editable")
    assert result.returncode == code == 1, result.stdout + result.stderr
    report = load_report(tmp_path / "report.json")
    assert _outcomes(report) == _expected_own(expected, "editable")  # the image's pytest is 7.2.1, docopt absent
    ran = [a for a in report["assignments"] if a["node"]]
    assert ran and all(a["node"].startswith("vm:farm-") for a in ran), report["assignments"]
    (wheels,) = farm_tmp.glob("farm-cluster-*/worker-*/wheels/*/done")  # fetched once, shipped to each VM
    assert (wheels.parent / "docopt-0.6.2-py2.py3-none-any.whl").exists()


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
    (("--install", ".[test]"), "farm image: --install .[test]: the bundle's own project cannot be installed into "
                               "an image"),
    (("--requirements", "/nonexistent/requirements.txt"), "farm image: --requirements /nonexistent/requirements.txt: "
                                                          "cannot read it"),
])
def test_image_build_refuses_what_it_cannot_bake_in_one_line(tmp_path: Path, args: tuple[str, ...], says: str) -> None:
    result = farm("image", "build", "--output", str(tmp_path / "image"), *args)
    assert result.returncode == 4, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and result.stderr.startswith(says)
    assert not (tmp_path / "image").exists()

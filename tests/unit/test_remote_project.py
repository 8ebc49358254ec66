"""The bundle's own project and sdist-only packages for remote environments (workers/remote_project.py,
workers/sdist_wheels.py): the project read from a bundle archive, its plain install's name, and
what a failed wheel download and an sdist's build come to."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.bundle import make_bundle
from farm.errors import InfrastructureError
from farm.suite_env import SuiteEnv
from workers import remote_env, remote_project, sdist_wheels

PYPROJECT = ('[project]\nname = "demo"\ndependencies = ["attrs"]\n'
             '[project.optional-dependencies]\ntest = ["pytest>=9"]\n')


def _archive(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "tree"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    bundle = make_bundle(root, 10**8)
    archive = tmp_path / f"{bundle.digest}.tar.gz"
    archive.write_bytes(bundle.data)
    return archive


def test_the_projects_metadata_and_src_layout_are_read_from_the_bundle_archive(tmp_path: Path) -> None:
    archive = _archive(tmp_path, {"pyproject.toml": PYPROJECT, "src/demo/__init__.py": "", "sub/setup.cfg": "[x]\n",
                                  "tests/test_a.py": ""})
    env = SuiteEnv(install=(".[test]", "./sub", "attrs"))
    root, sub = remote_project.read(archive, env)
    assert (root.path, root.extras, root.files, root.has_src) == (".", ("test",), (("pyproject.toml", PYPROJECT),),
                                                                  True)
    assert (sub.path, sub.files, sub.has_src) == ("sub", (("setup.cfg", "[x]\n"),), False)
    prepared = remote_env.prepared(SuiteEnv(install=(".[test]",)), archive)
    assert prepared.paths == ("src",) and prepared.python == ""  # editable: the run's tree, its src layout
    assert remote_project.plain_name(archive, root) == f"{archive.name[:16]}-root"
    assert remote_project.plain_name(archive, sub) == f"{archive.name[:16]}-sub"


@pytest.mark.parametrize(("spec", "says"), [
    ("./nowhere", "--install ./nowhere: no such directory in the bundle"),
    ("../up", "--install ../up: no such directory in the bundle"),
    ("./tests", "--install ./tests: no pyproject.toml, setup.cfg or setup.py in tests"),
])
def test_a_spec_naming_no_project_in_the_bundle_is_one_line(tmp_path: Path, spec: str, says: str) -> None:
    archive = _archive(tmp_path, {"pyproject.toml": PYPROJECT, "tests/test_a.py": ""})
    with pytest.raises(InfrastructureError) as caught:
        remote_project.read(archive, SuiteEnv(install=(spec,)))
    assert str(caught.value) == says


PIP_FAILED = """\
Collecting docopt>=0.6 (from demo[test])
ERROR: Could not find a version that satisfies the requirement docopt>=0.6 (from versions: none)
ERROR: No matching distribution found for docopt>=0.6
"""


def test_a_requirement_with_no_wheel_is_built_once_and_other_failures_are_not() -> None:
    assert sdist_wheels.to_build(PIP_FAILED, []) == "docopt>=0.6"
    assert sdist_wheels.to_build(PIP_FAILED, ["docopt>=0.6"]) is None  # built, still unsatisfied: give up
    assert sdist_wheels.to_build("ERROR: Cannot install a==1 and b==2 (conflict)\n", []) is None
    assert sdist_wheels.project_name("docopt>=0.6") == "docopt"


def test_only_pure_python_wheels_are_taken_for_a_remote() -> None:
    assert sdist_wheels.is_pure("docopt-0.6.2-py2.py3-none-any.whl")
    assert sdist_wheels.is_pure("x-1.0-1-py3-none-any.whl")  # with a build tag
    assert not sdist_wheels.is_pure("x-1.0-cp311-cp311-linux_x86_64.whl")
    assert not sdist_wheels.is_pure("x-1.0-py3-none-manylinux_2_17_x86_64.whl")
    assert not sdist_wheels.is_pure("x-1.0.tar.gz")


def test_what_building_an_sdist_comes_to() -> None:
    target = "cp311 x86_64"
    assert sdist_wheels.judge("docopt", target, 0, "", ["docopt-0.6.2-py2.py3-none-any.whl"]) == (
        sdist_wheels.BUILT, "")
    assert sdist_wheels.judge("nope", target, 1, "ERROR: No matching distribution found for nope", []) == (
        sdist_wheels.NO_SDIST, "")  # no sdist either: pip download's own failure is reported
    assert sdist_wheels.judge("Foo_Bar>=1", target, 1, "No matching distribution found for foo-bar>=1", [])[0] == \
        sdist_wheels.NO_SDIST  # names compared as the index does
    missing_build_dep = sdist_wheels.judge("old==1", target, 1, "No matching distribution found for setuptools>=61",
                                           [])
    assert missing_build_dep[0] == "failed"  # its build failed: not "the index has no sdist"
    verdict, why = sdist_wheels.judge("fast==1", target, 0, "", ["fast-1-cp311-cp311-linux_x86_64.whl"])
    assert verdict == "compiled" and why == ("fast==1: no wheel for cp311 x86_64 on the index, and its sdist builds a "
                                             "compiled wheel (fast-1-cp311-cp311-linux_x86_64.whl) that the worker "
                                             "cannot build for the remote")
    verdict, why = sdist_wheels.judge("broken", target, 1, "error: subprocess-exited-with-error", [])
    assert verdict == "failed" and why.endswith("its sdist did not build on the worker: pip wheel exit 1")


def test_a_change_of_code_keeps_the_remote_key_and_a_change_of_dependencies_makes_a_new_one(tmp_path: Path) -> None:
    env = SuiteEnv(install=(".[test]",))
    keys = []
    for n, (code, pyproject) in enumerate([("X = 1\n", PYPROJECT), ("X = 2\n", PYPROJECT),
                                           ("X = 2\n", PYPROJECT.replace('"attrs"', '"attrs>=23"'))]):
        archive = _archive(tmp_path / str(n), {"pyproject.toml": pyproject, "src/demo/__init__.py": code})
        keys.append(remote_env.env_key(env, remote_env_target(), remote_project.read(archive, env)))
    assert keys[0] == keys[1] != keys[2]


def remote_env_target() -> remote_env.Target:
    return remote_env.Target.from_probe({"version": "3.11", "full": "3.11.2", "implementation": "cp", "abi": "cp311",
                                         "machine": "x86_64", "glibc": "2.36", "executable": "/usr/bin/python3.11"})

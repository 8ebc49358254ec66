"""The pure parts of suite environments on remotes (workers/remote_env.py): the target's wheel tags,
the key, the plans, pip's download command line."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from farm.errors import InfrastructureError
from farm.suite_env import SuiteEnv
from workers import installer_output, remote_env, remote_project
from workers.env_plan import LocalProject
from workers.remote_env import Target

DEBIAN = Target("3.11", "3.11.2", "cp", "cp311", "x86_64", "2.36", "/usr/bin/python3.11")
ENV = SuiteEnv(requirements=(("ci/requirements.txt", "pytest>=9\n"),), install=("pytest-timeout",))


def test_a_glibc_target_takes_manylinux_wheels_down_to_2_17_and_pure_ones() -> None:
    tags = DEBIAN.platforms()
    assert tags[0] == "manylinux_2_36_x86_64" and "manylinux_2_17_x86_64" in tags
    assert "manylinux_2_16_x86_64" not in tags
    assert tags[-2:] == ["manylinux2014_x86_64", "any"]
    assert Target("3.12", "3.12.1", "cp", "cp312", "aarch64", "", "/usr/bin/python3").platforms() == ["any"]


def test_the_key_counts_the_interpreter_and_the_requirements_but_not_the_path_typed() -> None:
    key = remote_env.env_key(ENV, DEBIAN)
    moved = SuiteEnv(requirements=(("/src/project/requirements.txt", "pytest>=9\n"),), install=("pytest-timeout",))
    assert remote_env.env_key(moved, DEBIAN) == key  # `farm image build` run elsewhere finds the suite's key
    assert remote_env.env_key(SuiteEnv(requirements=(("requirements.txt", "pytest>=8\n"),),
                                       install=("pytest-timeout",)), DEBIAN) != key
    other = Target("3.11", "3.11.7", "cp", "cp311", "x86_64", "2.36", "/usr/local/bin/python3.11")
    assert remote_env.env_key(ENV, other) != key


def test_the_download_fetches_pytest_the_files_the_packages_and_pip_for_the_target(tmp_path) -> None:
    argv, made = remote_env.download_argv("/venv/bin/python", DEBIAN, ENV, str(tmp_path))
    assert argv[:4] == ["/venv/bin/python", "-m", "pip", "download"]
    assert "--only-binary=:all:" in argv
    assert argv[argv.index("--python-version") + 1] == "3.11" and argv[argv.index("--abi") + 1] == "cp311"
    assert argv[argv.index("--implementation") + 1] == "cp"
    (path, text), = made.requirement_files
    assert path.startswith(str(tmp_path)) and text == "pytest>=9\n"
    assert argv[-5:] == ["pytest", "-r", path, "pytest-timeout", "pip"]


def test_the_remote_plan_installs_offline_from_the_shipped_wheels_with_pip_from_its_wheel() -> None:
    made = remote_env.remote_plan(ENV, DEBIAN, env_dir="/opt/farm/envs/.k-1", wheels="/tmp/w",
                                  pip_wheel="pip-26.3-py3-none-any.whl")
    assert made.create == ("/usr/bin/python3.11", "-m", "venv", "--without-pip", "/opt/farm/envs/.k-1")
    assert made.install[:2] == ("/usr/bin/python3.11", "/tmp/w/pip-26.3-py3-none-any.whl/pip")
    assert ("--no-index", "--find-links", "/tmp/w") == made.install[-6:-3]
    assert made.python == "/opt/farm/envs/.k-1/bin/python"


OWN = LocalProject(".[test]", ".", ("test",), (("pyproject.toml", """\
[project]
name = "demo"
dependencies = ["attrs"]
[project.optional-dependencies]
test = ["pytest>=9", "docopt==0.6.2"]
"""),), has_src=True)
OWN_ENV = SuiteEnv(install=(".[test]",))


def test_the_bundles_project_brings_its_dependencies_and_extras_into_the_download_and_the_remote_install(
        tmp_path) -> None:
    argv, _ = remote_env.download_argv("/venv/bin/python", DEBIAN, OWN_ENV, str(tmp_path), (OWN,))
    assert argv[-5:] == ["pytest", "attrs", "pytest>=9", "docopt==0.6.2", "pip"]
    assert argv[argv.index("--find-links") + 1] == str(tmp_path)  # wheels built there from sdists count
    made = remote_env.remote_plan(OWN_ENV, DEBIAN, env_dir="/e", wheels="/w", pip_wheel="p", projects=(OWN,))
    assert remote_env.package_args(made)[:4] == ("pytest", "attrs", "pytest>=9", "docopt==0.6.2")
    assert made.source_paths == ("src",) and made.strip == () and made.plain == ()
    plain = remote_env.remote_plan(SuiteEnv(install=(".[test]",), install_mode="plain"), DEBIAN, env_dir="/e",
                                   wheels="/w", pip_wheel="p", projects=(OWN,))
    assert plain.source_paths == () and plain.plain == (".",)


def test_the_remote_key_counts_the_projects_metadata_not_its_code() -> None:
    key = remote_env.env_key(OWN_ENV, DEBIAN, (OWN,))
    files = (("pyproject.toml", OWN.files[0][1].replace("attrs", "attrs>=23")),)
    assert remote_env.env_key(OWN_ENV, DEBIAN, (replace(OWN, files=files),)) != key
    assert remote_env.env_key(OWN_ENV, DEBIAN, ()) != key


def test_a_project_whose_dependencies_are_not_static_is_refused_on_remotes_in_one_line() -> None:
    dynamic = replace(OWN, files=(("pyproject.toml", '[project]\nname = "d"\ndynamic = ["dependencies"]\n'),))
    with pytest.raises(InfrastructureError, match=r"^--install \.\[test\]: its dependencies are not static in "
                                                  r"pyproject\.toml's \[project\] table .*requirements file$"):
        remote_env.remote_plan(OWN_ENV, DEBIAN, env_dir="/e", wheels="/w", pip_wheel="p", projects=(dynamic,))
    with pytest.raises(InfrastructureError, match="not static"):
        remote_project.check((replace(OWN, files=(("setup.py", "setup()"),)),))


def test_an_image_refuses_the_bundles_own_project_in_one_line() -> None:
    with pytest.raises(InfrastructureError, match=r"--install \.\[test\]: the bundle's own project cannot be "
                                                  "installed into an image"):
        remote_env.check_bakeable(OWN_ENV)
    remote_env.check_bakeable(ENV)


def test_the_installers_tail_leaves_out_its_progress_and_skipped_locations() -> None:
    text = "Looking in links: /x\nCollecting a\n  ━━━━ 1/1 MB\nWARNING: Location 'file:///x' is ignored\n" \
           "ERROR: No matching distribution found for a==1\n"
    assert installer_output.tail(text) == "ERROR: No matching distribution found for a==1"


def test_the_builders_probe_names_this_interpreter(tmp_path) -> None:
    source = remote_env.BUILDER.read_text()
    out = subprocess.run([sys.executable, "-c", source, "probe", str(tmp_path / "envs")], capture_output=True,
                         text=True, check=True).stdout
    probe = json.loads(out)
    target = Target.from_probe(probe)
    assert target.version == "{}.{}".format(*sys.version_info[:2]) and target.abi.startswith("cp")
    assert probe["ready"] == [] and probe["envs"] == str(tmp_path / "envs")

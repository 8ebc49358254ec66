"""The suite environment's planning core: its key, what it installs, and what goes on the path."""

from __future__ import annotations

from farm.suite_env import PLAIN, SuiteEnv
from workers.env_plan import (
    PIP,
    UV,
    Installer,
    LocalProject,
    env_key,
    parse_local_spec,
    plain_argv,
    plan,
    source_paths,
    static_dependencies,
    uninstall_argv,
)
from workers.suite_envs import CachedEntry, evictions, installer_env

PIP_INSTALLER = Installer(PIP, ("/w/python", "-m", "pip"))
UV_INSTALLER = Installer(UV, ("/bin/uv",))
PYPROJECT = """\
[project]
name = "Demo_Pkg"
dependencies = ["attrs>=20"]
[project.optional-dependencies]
test = ["iniconfig", "demo-pkg[more]"]
more = ["packaging; python_version >= '3'"]
[tool.setuptools]
package-dir = {"" = "src"}
"""


def _project(spec: str = ".[test]", files: tuple[tuple[str, str], ...] = (("pyproject.toml", PYPROJECT),),
             has_src: bool = False) -> LocalProject:
    path, extras = parse_local_spec(spec)
    return LocalProject(spec, path, extras, files, has_src)


def test_local_specs_parse_into_a_directory_and_extras() -> None:
    assert parse_local_spec(".") == (".", ())
    assert parse_local_spec(".[test]") == (".", ("test",))
    assert parse_local_spec("./sub/[a, b]") == ("sub", ("a", "b"))


def test_the_key_changes_with_requirements_metadata_and_interpreter_only() -> None:
    env = SuiteEnv(requirements=(("r.txt", "pytest>=9\n"),))
    base = env_key(env, [], "py311")
    assert env_key(SuiteEnv(requirements=(("r.txt", "pytest>=9\n"),)), [], "py311") == base
    assert env_key(SuiteEnv(requirements=(("r.txt", "pytest>=8\n"),)), [], "py311") != base
    assert env_key(env, [], "py312") != base
    local = SuiteEnv(install=(".[test]",))
    one = env_key(local, [_project()], "py")
    assert env_key(local, [_project()], "py") == one
    assert env_key(local, [_project(files=(("pyproject.toml", PYPROJECT + "\n# changed"),))], "py") != one


def test_static_dependencies_follow_extras_and_the_projects_own_extras() -> None:
    assert static_dependencies(_project()) == ["attrs>=20", "iniconfig", "packaging; python_version >= '3'"]
    assert static_dependencies(_project(".")) == ["attrs>=20"]


def test_dynamic_or_missing_metadata_has_no_static_dependencies() -> None:
    dynamic = '[project]\nname = "x"\ndynamic = ["dependencies"]\n'
    assert static_dependencies(_project(".", (("pyproject.toml", dynamic),))) is None
    assert static_dependencies(_project(".", (("setup.py", "from setuptools import setup; setup()"),))) is None
    assert static_dependencies(_project(".", (("pyproject.toml", "not [ toml"),))) is None


def test_source_paths_find_src_layouts() -> None:
    assert source_paths(_project()) == ("src",)
    flat = '[project]\nname = "x"\n'
    assert source_paths(_project(".", (("pyproject.toml", flat),))) == ()
    assert source_paths(_project(".", (("pyproject.toml", flat),), has_src=True)) == ("src",)
    assert source_paths(_project("./sub", (("pyproject.toml", flat),))) == ("sub",)
    cfg = "[options]\npackage_dir =\n    =lib\n"
    assert source_paths(_project(".", (("setup.cfg", cfg),))) == ("lib",)
    find = '[tool.setuptools.packages.find]\nwhere = ["code"]\n'
    assert source_paths(_project(".", (("pyproject.toml", find),))) == ("code",)


def test_pip_plan_installs_pytest_the_files_the_packages_and_the_projects_dependencies() -> None:
    env = SuiteEnv(requirements=(("reqs/r.txt", "pytest>=9\n"),), install=("pytest-timeout", ".[test]"))
    p = plan(env, [_project()], "fp", base_python="/usr/bin/python3", env_dir="/c/env", bundle_root="/t/project",
             installer=PIP_INSTALLER)
    assert p.key == env_key(env, [_project()], "fp")
    assert p.python == "/c/env/bin/python"
    assert p.requirement_files == (("/c/env/farm-requirements/0-r.txt", "pytest>=9\n"),)
    assert p.create == ("/usr/bin/python3", "-m", "venv", "--without-pip", "/c/env")
    assert p.install[:4] == ("/w/python", "-m", "pip", "--python")
    assert p.install[4:6] == ("/c/env/bin/python", "install")
    tail = p.install[p.install.index("pytest"):]
    assert tail == ("pytest", "-r", "/c/env/farm-requirements/0-r.txt", "pytest-timeout", "attrs>=20", "iniconfig",
                    "packaging; python_version >= '3'")
    assert p.strip == () and p.source_paths == ("src",) and p.plain == ()


def test_uv_plan_and_a_project_without_static_metadata_is_installed_then_stripped() -> None:
    env = SuiteEnv(install=("./sub[test]",), install_mode=PLAIN)
    project = _project("./sub[test]", (("setup.py", "setup()"),))
    p = plan(env, [project], "fp", base_python="/py", env_dir="/c/env", bundle_root="/t/project",
             installer=UV_INSTALLER)
    assert p.create == ("/bin/uv", "venv", "--quiet", "--python", "/py", "/c/env")
    assert p.install == ("/bin/uv", "pip", "install", "--python", "/c/env/bin/python", "pytest",
                         "/t/project/sub[test]")
    assert p.strip == ("/t/project/sub",)
    assert p.source_paths == () and p.plain == ("sub",)  # plain: the installed copy, not the tree, is on the path


def test_uninstall_and_plain_command_lines() -> None:
    assert uninstall_argv(UV_INSTALLER, "/e/py", ["a"]) == ("/bin/uv", "pip", "uninstall", "--python", "/e/py", "a")
    assert uninstall_argv(PIP_INSTALLER, "/e/py", ["a"])[-3:] == ("uninstall", "--yes", "a")
    argv = plain_argv(PIP_INSTALLER, "/e/py", "/t/p", "/c/plain/x")
    assert argv[-4:] == ("--no-deps", "--target", "/c/plain/x", "/t/p")


def test_evictions_take_the_least_recently_used_beyond_the_bound_never_the_one_kept() -> None:
    entries = [CachedEntry("a", 1.0), CachedEntry("b", 3.0), CachedEntry("c", 2.0), CachedEntry("d", 4.0)]
    assert evictions(entries, 2) == ["a", "c"]
    assert evictions(entries, 2, keep="a") == ["c", "b"]
    assert evictions(entries, 4) == []
    assert evictions(entries, 2, keep="a", busy={"c"}) == ["b", "d"]  # in use: passed over
    assert evictions(entries, 2, busy={"a", "b", "c"}) == ["d"]  # one more than the bound left


def test_uv_runs_with_the_hosts_certificate_store_unless_the_host_chose() -> None:
    assert installer_env(UV, {"PATH": "/bin"}) == {"PATH": "/bin", "UV_SYSTEM_CERTS": "1", "UV_NATIVE_TLS": "1"}
    assert installer_env(UV, {"SSL_CERT_FILE": "/ca.pem"}) == {"SSL_CERT_FILE": "/ca.pem"}
    assert installer_env(UV, {"UV_SYSTEM_CERTS": "0"}) == {"UV_SYSTEM_CERTS": "0"}
    assert installer_env(PIP, {"PATH": "/bin"}) == {"PATH": "/bin"}

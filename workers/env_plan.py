"""Planning a suite's environment (pure): its cache key, the installer's command lines, and what of
the bundle's own project goes on the runner's path. Fed values (the suite's SuiteEnv, the bundle
project's metadata files, an interpreter fingerprint, paths); runs nothing. workers/suite_envs.py
carries a plan out on the local backend; other backends reuse the same plan with their own paths.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import posixpath
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass

from farm.suite_env import PLAIN, SuiteEnv, is_local_spec

#: What every environment gets besides what the suite asks for: the runner is `python -m pytest`
#: with farm's plugin, which needs pytest and the standard library only (workers/pytest_plugin).
#: Unpinned: the suite's requirement files, installed in the same resolution, decide its version.
ALWAYS = ("pytest",)
#: A bundle project's files that decide its dependencies (read where a local spec points).
METADATA_FILES = ("pyproject.toml", "setup.cfg", "setup.py")
UV = "uv"
PIP = "pip"


@dataclass(frozen=True)
class Installer:
    """The installer a host uses: `uv` (its command: `("/usr/bin/uv",)`) or pip (its command:
    `("/path/python", "-m", "pip")`, a pip that installs into another interpreter's environment
    with `--python`, pip >= 22.3, so the environment needs no pip of its own)."""

    kind: str  # UV or PIP
    command: tuple[str, ...]


@dataclass(frozen=True)
class LocalProject:
    """A local install spec (`.[test]`, `./sub[a,b]`) resolved in the bundle: its directory relative
    to the bundle's root (`.` for the root), its extras, and its metadata files as found there."""

    spec: str
    path: str
    extras: tuple[str, ...]
    files: tuple[tuple[str, str], ...] = ()  # (name in METADATA_FILES, text), the ones present
    has_src: bool = False  # a `src` directory beside them (a src layout)


@dataclass(frozen=True)
class EnvPlan:
    """What building one environment takes, with concrete paths."""

    key: str  # env_key(): names the cached environment
    python: str  # the environment's interpreter (`ENV/bin/python`)
    requirement_files: tuple[tuple[str, str], ...]  # (path to write, text) before `install` runs
    create: tuple[str, ...]  # makes the virtualenv
    install: tuple[str, ...]  # installs pytest, the requirement files, the packages and the project's dependencies
    # Local projects whose dependencies could not be read statically (a setup.py, a dynamic
    # `dependencies`): `install` installs them whole, then their own distribution is uninstalled
    # (uninstall_argv with the names strip_names finds): the shared environment never keeps bundle code.
    strip: tuple[str, ...] = ()  # their directories, as given to `install`
    # On the runner's PYTHONPATH, relative to the project's directory in the run (editable mode).
    source_paths: tuple[str, ...] = ()
    # Plain mode: the local projects' directories (relative to the bundle root) that plain_argv installs.
    plain: tuple[str, ...] = ()


def parse_local_spec(spec: str) -> tuple[str, tuple[str, ...]]:
    """`./sub[a, b]` -> (`sub`, (`a`, `b`)); `.` -> (`.`, ())."""
    match = re.fullmatch(r"(.*?)(?:\[([^\]]*)\])?", spec.strip())
    assert match is not None  # the pattern matches any text
    path = posixpath.normpath(match.group(1) or ".")
    extras = tuple(e.strip() for e in (match.group(2) or "").split(",") if e.strip())
    return path, extras


def local_projects(env: SuiteEnv) -> list[tuple[str, str, tuple[str, ...]]]:
    """(spec, path, extras) of each local spec of `env`, in order."""
    return [(spec, *parse_local_spec(spec)) for spec in env.install if is_local_spec(spec)]


def env_key(env: SuiteEnv, projects: Sequence[LocalProject], interpreter: str) -> str:
    """The environment's name: sha256 of the suite's digest (requirement texts, specs, mode), the
    local projects' metadata files, and the fingerprint of the interpreter it is made from."""
    data = json.dumps({"env": env.digest(), "interpreter": interpreter,
                       "projects": [[p.path, list(p.extras), [list(f) for f in p.files], p.has_src]
                                    for p in projects]}, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()


def static_dependencies(project: LocalProject) -> list[str] | None:
    """The project's requirements with its extras, read from pyproject.toml's [project] table;
    None when they cannot be read without building it (no such table, `dependencies` or
    `optional-dependencies` dynamic, a malformed file). An extra naming the project itself
    (`proj[test]` in its own optional-dependencies) is followed."""
    text = dict(project.files).get("pyproject.toml")
    if text is None:
        return None
    try:
        table = tomllib.loads(text).get("project")
    except tomllib.TOMLDecodeError:
        return None
    if not isinstance(table, dict) or not isinstance(table.get("name"), str):
        return None
    dynamic = table.get("dynamic", [])
    if "dependencies" in dynamic or (project.extras and "optional-dependencies" in dynamic):
        return None
    deps, optional = table.get("dependencies", []), table.get("optional-dependencies", {})
    if not isinstance(deps, list) or not isinstance(optional, dict):
        return None
    name = _normal(table["name"])
    out = [str(d) for d in deps]
    seen: set[str] = set()
    todo = list(project.extras)
    while todo:
        extra = _normal(todo.pop(0))
        if extra in seen:
            continue
        seen.add(extra)
        for req in next((v for k, v in optional.items() if _normal(k) == extra), []):
            own = re.fullmatch(r"\s*([A-Za-z0-9._-]+)\s*\[([^\]]*)\]\s*", str(req))
            if own and _normal(own.group(1)) == name:  # the project's own extras: followed, not installed
                todo += [e.strip() for e in own.group(2).split(",") if e.strip()]
            else:
                out.append(str(req))
    return out


def source_paths(project: LocalProject) -> tuple[str, ...]:
    """Where the project's importable code is, relative to the project root of a run: its `src`
    directory in a src layout (setuptools' `package-dir`, `packages.find.where`, setup.cfg's
    `package_dir`, or a `src` directory), else its directory (`.`: the runner's working
    directory, on the path already)."""
    files = dict(project.files)
    where = ""
    try:
        tool = tomllib.loads(files.get("pyproject.toml", "")).get("tool", {}).get("setuptools", {})
    except tomllib.TOMLDecodeError:
        tool = {}
    package_dir = tool.get("package-dir", {}) if isinstance(tool, dict) else {}
    find = tool.get("packages", {}) if isinstance(tool, dict) else {}
    if isinstance(package_dir, dict) and isinstance(package_dir.get(""), str):
        where = package_dir[""]
    elif isinstance(find, dict) and isinstance(find.get("find"), dict) and find["find"].get("where"):
        where = str(find["find"]["where"][0])
    elif "setup.cfg" in files:
        conf = configparser.ConfigParser()
        try:
            conf.read_string(files["setup.cfg"])
            raw = conf.get("options", "package_dir", fallback="")
        except configparser.Error:
            raw = ""
        found = re.search(r"^\s*=\s*(\S+)", raw, re.MULTILINE)
        where = found.group(1) if found else ""
    if not where and project.has_src:
        where = "src"
    path = posixpath.normpath(posixpath.join(project.path, where or "."))
    return () if path == "." else (path,)


def plan(env: SuiteEnv, projects: Sequence[LocalProject], interpreter: str, *, base_python: str, env_dir: str,
         bundle_root: str, installer: Installer) -> EnvPlan:
    """The plan for `env` built at `env_dir` from `base_python` with `installer`, the bundle
    unpacked at `bundle_root` (where local specs point), named by `interpreter`'s fingerprint."""
    key = env_key(env, projects, interpreter)
    python = f"{env_dir}/bin/python"
    files = tuple((f"{env_dir}/farm-requirements/{i}-{posixpath.basename(name) or 'requirements.txt'}", text)
                  for i, (name, text) in enumerate(env.requirements))
    packages = [spec for spec in env.install if not is_local_spec(spec)]
    deps: list[str] = []
    strip: list[str] = []
    for project in projects:
        static = static_dependencies(project)
        if static is not None:
            deps += static
        else:
            where = posixpath.normpath(posixpath.join(bundle_root, project.path))
            strip.append(where)
            deps.append(where + (f"[{','.join(project.extras)}]" if project.extras else ""))
    args = [*ALWAYS, *[a for path, _ in files for a in ("-r", path)], *packages, *deps]
    if installer.kind == UV:
        create = (*installer.command, "venv", "--quiet", "--python", base_python, env_dir)
        install = (*installer.command, "pip", "install", "--python", python, *args)
    else:
        create = (base_python, "-m", "venv", "--without-pip", env_dir)
        install = (*installer.command, "--python", python, "install", "--disable-pip-version-check",
                   "--no-input", *args)
    plain = env.install_mode == PLAIN
    return EnvPlan(key, python, files, create, install, tuple(strip),
                   () if plain else tuple(p for project in projects for p in source_paths(project)),
                   tuple(project.path for project in projects) if plain else ())


def uninstall_argv(installer: Installer, python: str, names: Sequence[str]) -> tuple[str, ...]:
    """Uninstalls distributions `names` from the environment of `python`."""
    if installer.kind == UV:
        return (*installer.command, "pip", "uninstall", "--python", python, *names)
    return (*installer.command, "--python", python, "uninstall", "--yes", *names)


def plain_argv(installer: Installer, python: str, project_dir: str, target: str) -> tuple[str, ...]:
    """Installs the project at `project_dir`, without its dependencies (they are in the
    environment of `python`), into `target`: a plain install of one bundle's copy, put on the
    runner's PYTHONPATH."""
    if installer.kind == UV:
        return (*installer.command, "pip", "install", "--python", python, "--no-deps", "--target", target, project_dir)
    return (*installer.command, "--python", python, "install", "--disable-pip-version-check", "--no-input",
            "--no-deps", "--target", target, project_dir)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()

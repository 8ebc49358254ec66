"""Suite environments on SSH hosts and in VM guests, which reach no package index: the worker learns
the remote interpreter (one command over the run's SSH session), fetches wheels for it from the
index its own host is configured for (cached here per environment key; sdist-only packages built
into pure wheels here, workers/sdist_wheels.py), ships them over SFTP only when the remote lacks
that environment, and has workers/remote_env_build.py build it there. The bundle's own project
(workers/remote_project.py) brings its static dependencies; in plain mode its wheel is unpacked
beside the environment.

`Target`, `env_key`, `remote_plan` and `download_argv` are pure (the plans are workers/env_plan.py's);
`WheelCache` and `ensure` are the edges (pip on this host, paramiko to the remote).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import paramiko

from farm.suite_env import PLAIN, SuiteEnv
from workers import env_plan, remote_project, sdist_wheels
from workers.env_plan import LocalProject
from workers.installer_output import failure
from workers.suite_envs import EnvBuildError, PreparedEnv, evictions, stamped

BUILDER = Path(__file__).resolve().parent / "remote_env_build.py"
#: Where a VM guest keeps its environments (on its root filesystem: an image bakes them there).
VM_ENVS = "/opt/farm/envs"
#: How many an SSH host keeps (least recently used go; where: the hosts file's `envs`).
HOST_MAX_KEPT = 4
#: Wheel sets the worker keeps for remote targets (least recently used go).
WHEELS_MAX_KEPT = 8
#: The oldest glibc whose manylinux wheels a target may take (manylinux2014's).
OLDEST_GLIBC_MINOR = 17
#: How long a remote build may take (a slow VM under TCG installs pytest in tens of seconds).
BUILD_TIMEOUT_S = 900.0
#: Where in a remote environment the plain installs of bundles' projects are (remote_env_build.py's).
PLAIN_DIR = "farm-plain"

log = logging.getLogger("farm.worker")


@dataclass(frozen=True)
class Target:
    """A remote interpreter, as the wheels it can install are chosen (workers/remote_env_build.py's probe)."""

    version: str  # "3.11"
    full: str  # "3.11.2"
    implementation: str  # "cp"
    abi: str  # "cp311"
    machine: str  # "x86_64"
    glibc: str  # "2.36" ("" when not glibc: then only pure wheels)
    executable: str  # its real path: a venv links to it

    @classmethod
    def from_probe(cls, data: dict[str, Any]) -> Target:
        return cls(*(str(data[k]) for k in ("version", "full", "implementation", "abi", "machine", "glibc",
                                             "executable")))

    def identity(self) -> str:
        """What names the interpreter in an environment key (`cp311-cp-x86_64-glibc2.36 3.11.2 /usr/bin/python3.11`)."""
        return f"{self.abi}-{self.implementation}-{self.machine}-glibc{self.glibc} {self.full} {self.executable}"

    def platforms(self) -> list[str]:
        """pip's --platform values: manylinux tags from the target's glibc down to 2.17, then `any`."""
        tags: list[str] = []
        if self.glibc.count(".") == 1 and self.glibc.replace(".", "").isdigit():
            major, minor = (int(p) for p in self.glibc.split("."))
            if major == 2:
                tags += [f"manylinux_2_{m}_{self.machine}" for m in range(minor, OLDEST_GLIBC_MINOR - 1, -1)]
                tags += [f"manylinux2014_{self.machine}"]
        return tags + ["any"]


def env_key(env: SuiteEnv, target: Target, projects: Sequence[LocalProject] = ()) -> str:
    """The environment's key on a remote (workers/env_plan.py's, the interpreter named by its
    target; the bundle's projects by their metadata files, as on the local backend): the same for
    a suite and for `farm image build` given the same requirements and the image's python3.
    Requirement files count by their file names, not the paths typed (SuiteEnv.digest: `-r requirements.txt` in
    one directory and `-r /src/requirements.txt` are the same file)."""
    return env_plan.env_key(env, projects, target.identity())


def prepared(env: SuiteEnv, archive: Path) -> PreparedEnv:
    """What the worker prepares of a suite's environment for the ssh and libvirt backends: its
    name and, for the bundle's own project in editable mode, its source paths in the run's tree
    (each run builds or reuses the environment on the remote, `ensure`); the key, the requirement
    set's, is what the collection cache counts (the remote's interpreter is the backend's, the
    project's metadata is in the bundle's digest)."""
    projects = remote_project.read(archive, env)
    remote_project.check(projects)
    made = env_plan.plan(env, projects, "", base_python="", env_dir="", bundle_root="",
                         installer=env_plan.Installer(env_plan.PIP, ("pip",)))
    return PreparedEnv(key=env.digest(), python="", paths=made.source_paths)


def check_bakeable(env: SuiteEnv) -> None:
    """EnvBuildError (one line) for what an image cannot bake: the bundle's own project (it comes with a suite)."""
    local = env_plan.local_projects(env)
    if local:
        raise EnvBuildError(f"--install {local[0][0]}: the bundle's own project cannot be installed into an image "
                            "(it comes with each suite: submit the suite with it)")


def remote_plan(env: SuiteEnv, target: Target, *, env_dir: str, wheels: str, pip_wheel: str,
                projects: Sequence[LocalProject] = ()) -> env_plan.EnvPlan:
    """The plan building `env` at `env_dir` on the remote from the wheels shipped to `wheels`, pip
    run from its own wheel there (`python WHEEL/pip`), offline; the projects' static dependencies
    go in with the rest (remote_project.check refused the others)."""
    remote_project.check(projects)
    installer = env_plan.Installer(env_plan.PIP, (target.executable, f"{wheels}/{pip_wheel}/pip"))
    made = env_plan.plan(env, projects, target.identity(), base_python=target.executable, env_dir=env_dir,
                         bundle_root="", installer=installer)
    return replace(made, install=(*made.install, "--no-index", "--find-links", wheels, "--no-cache-dir",
                                  "--no-warn-script-location", "--quiet"))


def package_args(made: env_plan.EnvPlan) -> tuple[str, ...]:
    """What a plan's pip install installs (pytest, `-r` files, packages), without the options before it."""
    return made.install[made.install.index("--no-input") + 1:]


def download_argv(python: str, target: Target, env: SuiteEnv, dest: str,
                  projects: Sequence[LocalProject] = ()) -> tuple[list[str], env_plan.EnvPlan]:
    """`pip download` of the environment's wheels (and pip's own) for `target` into `dest`, and the
    plan whose requirement files (under `dest`) it reads: write them first. Wheels already in
    `dest` count (`--find-links`: the ones built there from sdists, workers/sdist_wheels.py)."""
    remote_project.check(projects)
    made = env_plan.plan(env, projects, target.identity(), base_python=python, env_dir=dest, bundle_root="",
                         installer=env_plan.Installer(env_plan.PIP, (python, "-m", "pip")))
    argv = [python, "-m", "pip", "download", "--only-binary=:all:", "--dest", dest, "--find-links", dest,
            "--disable-pip-version-check", "--no-input", "--python-version", target.version, "--implementation",
            target.implementation, "--abi", target.abi]
    for platform in target.platforms():
        argv += ["--platform", platform]
    return argv + list(package_args(made)) + ["pip"], made


class WheelCache:
    """Wheel sets on the worker, one directory per (environment, target) key: made whole in a
    temporary directory and renamed into place; the least recently used beyond `max_kept` go."""

    def __init__(self, root: Path, python: str = sys.executable, max_kept: int = WHEELS_MAX_KEPT) -> None:
        self.root, self.python, self.max_kept = root, python, max_kept

    def wheels(self, key: str, env: SuiteEnv, target: Target,
               projects: Sequence[LocalProject] = ()) -> tuple[Path, bool]:
        """The directory of wheels for `key` (fetched now if missing) and whether it was fetched."""
        final = self.root / key
        if (final / "done").exists():
            os.utime(final / "done")
            return final, False
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=self.root))
        try:
            argv, made = download_argv(self.python, target, env, str(tmp), projects)
            for path, text in made.requirement_files:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_text(text, encoding="utf-8")
            self._download(argv, tmp, target)
            shutil.rmtree(tmp / "farm-requirements", ignore_errors=True)
            (tmp / "done").write_text(json.dumps({"target": target.identity()}))
            try:
                tmp.rename(final)
            except OSError:  # fetched meanwhile by another process
                if not (final / "done").exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._evict(key)
        return final, True

    def _download(self, argv: list[str], dest: Path, target: Target) -> None:
        """Run `pip download` until it succeeds, each requirement it finds no wheel for built from
        its sdist into `dest` (pure Python only: workers/sdist_wheels.py); EnvBuildError otherwise."""
        built: list[str] = []
        where = f"{target.abi} {target.machine}"
        while True:
            try:
                proc = subprocess.run(argv, cwd=dest, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise EnvBuildError(f"cannot fetch wheels for {where}: pip download ran longer than "
                                    f"{BUILD_TIMEOUT_S:.0f}s") from None
            if proc.returncode == 0:
                if built:
                    log.info("built from sdists for %s: %s", where, ", ".join(built))
                return
            said = proc.stdout + proc.stderr
            fetch_failed = failure(f"cannot fetch wheels for {where}: pip download exit {proc.returncode}", said)
            requirement = sdist_wheels.to_build(said, built)
            if requirement is None:
                raise fetch_failed
            verdict, why, output = sdist_wheels.build_pure(self.python, requirement, dest, where)
            if verdict == sdist_wheels.NO_SDIST:
                raise fetch_failed
            if verdict != sdist_wheels.BUILT:
                raise failure(why, output) if verdict == "failed" else EnvBuildError(why)
            built.append(requirement)

    def _evict(self, keep: str) -> None:
        """The local cache's choice (suite_envs.evictions: least recently used past the bound, never
        `keep`), each set's `done` file its last use."""
        entries = stamped(self.root.iterdir(), lambda p: p / "done")  # sets being fetched have none yet
        for name in evictions(entries, self.max_kept, keep):
            shutil.rmtree(self.root / name, ignore_errors=True)


def _builder(client: paramiko.SSHClient, python: str, args: list[str], timeout: float) -> dict[str, Any]:
    """Run workers/remote_env_build.py on the remote with `args`; its JSON line."""
    command = " ".join(shlex.quote(a) for a in [python, "-c", BUILDER.read_text(encoding="utf-8"), *args])
    _, stdout, stderr = client.exec_command(command, timeout=timeout)
    out = stdout.read().decode(errors="replace")
    err = stderr.read().decode(errors="replace")
    try:
        answer: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        return answer
    except (ValueError, IndexError):
        raise failure(f"the environment builder did not run under {python}", out + err) from None


#: The target each remote interpreter was last found to be, by (where, python): its key is guessed
#: from it, so reusing an environment takes one command.
_TARGETS: dict[tuple[str, str], Target] = {}


@dataclass(frozen=True)
class RemoteEnv:
    """A suite's environment on a remote, as its runs use it."""

    python: str  # the environment's interpreter there
    paths: tuple[str, ...] = ()  # absolute PYTHONPATH entries there: the plain installs of the bundle's projects


def ensure(client: paramiko.SSHClient, python: str, env: SuiteEnv, cache: WheelCache, *, envs: str,
           scratch: str, max_kept: int, node: str, where: str, bundle: Path | None = None) -> RemoteEnv:
    """The suite's environment on the remote `client` reaches, built there first if it lacks it
    (with the dependencies of the projects its local specs name in the archive `bundle`, and in
    plain mode their wheels unpacked beside it); InfrastructureError with the installer's last
    lines if it cannot be built. `where` names the remote's interpreter across runs (an SSH
    host's name, a VM image's)."""
    started = time.monotonic()
    try:
        projects = remote_project.read(bundle, env) if bundle is not None else ()
        if env_plan.local_projects(env) and bundle is None:
            raise EnvBuildError("the bundle's own project needs the bundle")
        remote_project.check(projects)
        known = _TARGETS.get((where, python))
        probe = _builder(client, python, ["probe", envs, env_key(env, known, projects) if known else ""], 60.0)
        target = _TARGETS[(where, python)] = Target.from_probe(probe)
        key = env_key(env, target, projects)
        resolved = probe_envs(probe, envs)
        reused = key in probe.get("ready", [])
        have = set(probe.get("plain", {}).get(key, [])) if reused else set()
        names = [remote_project.plain_name(bundle, p) for p in projects] \
            if env.install_mode == PLAIN and bundle is not None else []
        used = [n for n in names if n in have]  # the plain installs this run reuses: marked used too
        if reused and (probe.get("touched") != key or used) and \
                not _builder(client, python, ["touch", envs, key, *used], 60.0).get("ok"):
            # Removed since the probe by another run's eviction: the environment, or a plain install.
            have = set()
            reused = bool(used) and bool(_builder(client, python, ["touch", envs, key], 60.0).get("ok"))
        if reused:
            log.info("%s: suite environment %s present (%s): reused in %.2fs", node, key, env.describe(),
                     time.monotonic() - started)
        else:
            _build(client, python, env, cache, target, key, projects, resolved=resolved, scratch=scratch,
                   max_kept=max_kept, node=node)
        paths: list[str] = []
        for project, name in zip(projects, names, strict=False):
            assert bundle is not None  # names only with a bundle
            if name not in have:
                _plain(client, python, cache, bundle, project, resolved=resolved, key=key, scratch=scratch)
            paths.append(f"{resolved}/{key}/{PLAIN_DIR}/{name}")
    except (paramiko.SSHException, OSError) as exc:
        raise EnvBuildError(f"{node}: could not build the suite's environment ({env.describe()}): {exc}") from None
    except EnvBuildError as exc:
        raise EnvBuildError(f"{node}: could not build the suite's environment ({env.describe()}): {exc.summary}",
                            exc.tail) from None
    return RemoteEnv(f"{resolved}/{key}/bin/python", tuple(paths))


def _build(client: paramiko.SSHClient, python: str, env: SuiteEnv, cache: WheelCache, target: Target, key: str,
           projects: Sequence[LocalProject], *, resolved: str, scratch: str, max_kept: int, node: str) -> None:
    """Fetch (or take from `cache`) the environment's wheels, ship them, and build it on the remote."""
    fetch_started = time.monotonic()
    wheels, fetched = cache.wheels(key, env, target, projects)
    fetch_s = time.monotonic() - fetch_started
    ship_started = time.monotonic()
    remote = _mkdir(client, f"{scratch.rstrip('/')}/wheels-{uuid.uuid4().hex[:8]}")
    shipped = 0
    with client.open_sftp() as sftp:
        for path in sorted(wheels.iterdir()):
            if path.name != "done":
                sftp.put(str(path), f"{remote}/{path.name}")
                shipped += path.stat().st_size
    ship_s = time.monotonic() - ship_started
    build_started = time.monotonic()
    pip_wheel = next((p.name for p in sorted(wheels.glob("pip-*.whl"))), "")
    if not pip_wheel:
        raise EnvBuildError("no pip wheel among the fetched wheels")
    env_dir = f"{resolved}/.{key[:24]}-{uuid.uuid4().hex[:8]}"
    made = remote_plan(env, target, env_dir=env_dir, wheels=remote, pip_wheel=pip_wheel, projects=projects)
    spec = json.dumps({"env_dir": env_dir, "create": made.create,
                       "requirement_files": made.requirement_files, "install": made.install})
    answer = _builder(client, python, ["build", resolved, key, remote, str(max_kept), spec], BUILD_TIMEOUT_S)
    if not answer.get("ok"):
        raise failure("pip install failed there", str(answer.get("tail", "")))
    log.info("%s: suite environment %s (%s) built: wheels %s in %.2fs, shipped %.1f MB in %.2fs, "
             "built remotely in %.2fs", node, key, env.describe(), "fetched" if fetched else "cached", fetch_s,
             shipped / 1e6, ship_s, time.monotonic() - build_started)


def _plain(client: paramiko.SSHClient, python: str, cache: WheelCache, bundle: Path, project: LocalProject, *,
           resolved: str, key: str, scratch: str) -> None:
    """The project's wheel (built on the worker) shipped and unpacked into ENVS/KEY/PLAIN_DIR/NAME."""
    wheel = remote_project.ProjectWheels(cache.root / "projects", cache.python).wheel(bundle, project)
    remote = _mkdir(client, f"{scratch.rstrip('/')}/project-{uuid.uuid4().hex[:8]}")
    with client.open_sftp() as sftp:
        sftp.put(str(wheel), f"{remote}/{wheel.name}")
    answer = _builder(client, python, ["plain", resolved, key, remote_project.plain_name(bundle, project),
                                       f"{remote}/{wheel.name}"], 120.0)
    if not answer.get("ok"):
        raise failure(f"--install {project.spec}: the project's wheel could not be installed there",
                      str(answer.get("tail", "")))


def _mkdir(client: paramiko.SSHClient, path: str) -> str:
    _, stdout, stderr = client.exec_command(f"mkdir -p {shlex.quote(path)}", timeout=60.0)
    if stdout.channel.recv_exit_status() != 0:
        raise EnvBuildError(f"cannot make {path}: {stderr.read().decode(errors='replace').strip()}")
    return path


def probe_envs(probe: dict[str, Any], envs: str) -> str:
    """ENVS as the remote resolved it (`~` expanded): from the probe's answer when it says, else as given."""
    return str(probe.get("envs") or envs)

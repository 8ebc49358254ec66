"""Suite environments on SSH hosts and in VM guests, which reach no package index: the worker learns
the remote interpreter (one command over the run's SSH session), fetches wheels for it from the
index its own host is configured for (cached here per environment key), ships them over SFTP only
when the remote lacks that environment, and has workers/remote_env_build.py build it there.

`Target`, `env_key`, `remote_plan` and `download_argv` are pure (the plans are workers/env_plan.py's);
`WheelCache` and `ensure` are the edges (pip on this host, paramiko to the remote).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import paramiko

from farm.suite_env import SuiteEnv
from workers import env_plan
from workers.suite_envs import CachedEntry, EnvBuildError, PreparedEnv, evictions

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


def env_key(env: SuiteEnv, target: Target) -> str:
    """The environment's key on a remote (workers/env_plan.py's, the interpreter named by its
    target): the same for a suite and for `farm image build` given the same requirements and the
    image's python3. Requirement files count by their file names, not the paths typed (`-r
    requirements.txt` in one directory and `-r /src/requirements.txt` are the same file)."""
    return env_plan.env_key(named(env), (), target.identity())


def named(env: SuiteEnv) -> SuiteEnv:
    """`env` with its requirement files named by their file names only (what the remote key counts)."""
    return replace(env, requirements=tuple((posixpath.basename(name), text) for name, text in env.requirements))


def prepared(env: SuiteEnv) -> PreparedEnv:
    """What the worker prepares of a suite's environment for the ssh and libvirt backends: nothing
    but its name (each run builds or reuses it on the remote, `ensure`); the key, the requirement
    set's, is what the collection cache counts (the remote's interpreter is the backend's)."""
    check_remote(env)
    return PreparedEnv(key=named(env).digest(), python="")


def check_remote(env: SuiteEnv) -> None:
    """EnvBuildError (one line) for what remote environments cannot hold yet: the bundle's own project."""
    local = env_plan.local_projects(env)
    if local:
        raise EnvBuildError(f"--install {local[0][0]}: the bundle's own project cannot be installed on SSH "
                            "hosts or in VMs yet (only packages and requirement files)")


def remote_plan(env: SuiteEnv, target: Target, *, env_dir: str, wheels: str, pip_wheel: str) -> env_plan.EnvPlan:
    """The plan building `env` at `env_dir` on the remote from the wheels shipped to `wheels`, pip
    run from its own wheel there (`python WHEEL/pip`), offline."""
    check_remote(env)
    installer = env_plan.Installer(env_plan.PIP, (target.executable, f"{wheels}/{pip_wheel}/pip"))
    made = env_plan.plan(env, (), target.identity(), base_python=target.executable, env_dir=env_dir,
                         bundle_root="", installer=installer)
    return replace(made, install=(*made.install, "--no-index", "--find-links", wheels, "--no-cache-dir",
                                  "--no-warn-script-location", "--quiet"))


def package_args(made: env_plan.EnvPlan) -> tuple[str, ...]:
    """What a plan's pip install installs (pytest, `-r` files, packages), without the options before it."""
    return made.install[made.install.index("--no-input") + 1:]


def download_argv(python: str, target: Target, env: SuiteEnv, dest: str) -> tuple[list[str], env_plan.EnvPlan]:
    """`pip download` of the environment's wheels (and pip's own) for `target` into `dest`, and the
    plan whose requirement files (under `dest`) it reads: write them first."""
    check_remote(env)
    made = env_plan.plan(env, (), target.identity(), base_python=python, env_dir=dest, bundle_root="",
                         installer=env_plan.Installer(env_plan.PIP, (python, "-m", "pip")))
    argv = [python, "-m", "pip", "download", "--only-binary=:all:", "--dest", dest, "--disable-pip-version-check",
            "--no-input", "--python-version", target.version, "--implementation", target.implementation,
            "--abi", target.abi]
    for platform in target.platforms():
        argv += ["--platform", platform]
    return argv + list(package_args(made)) + ["pip"], made


class WheelCache:
    """Wheel sets on the worker, one directory per (environment, target) key: made whole in a
    temporary directory and renamed into place; the least recently used beyond `max_kept` go."""

    def __init__(self, root: Path, python: str = sys.executable, max_kept: int = WHEELS_MAX_KEPT) -> None:
        self.root, self.python, self.max_kept = root, python, max_kept

    def wheels(self, key: str, env: SuiteEnv, target: Target) -> tuple[Path, bool]:
        """The directory of wheels for `key` (fetched now if missing) and whether it was fetched."""
        final = self.root / key
        if (final / "done").exists():
            os.utime(final / "done")
            return final, False
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=self.root))
        try:
            argv, made = download_argv(self.python, target, env, str(tmp))
            for path, text in made.requirement_files:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_text(text, encoding="utf-8")
            proc = subprocess.run(argv, cwd=tmp, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
            if proc.returncode != 0:
                raise failure(f"cannot fetch wheels for {target.abi} {target.machine}: pip download exit "
                              f"{proc.returncode}", proc.stdout + proc.stderr)
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

    def _evict(self, keep: str) -> None:
        """The local cache's choice (suite_envs.evictions: least recently used past the bound, never
        `keep`), each set's `done` file its last use."""
        entries = [CachedEntry(p.name, (p / "done").stat().st_mtime) for p in self.root.iterdir()
                   if (p / "done").exists()]
        for name in evictions(entries, self.max_kept, keep):
            shutil.rmtree(self.root / name, ignore_errors=True)


#: pip's lines that say nothing about why it failed (progress bars, index locations it skipped).
_NOISE = ("━", "Looking in ", "WARNING: Location ", "Downloading ", "Collecting ")


def tail(text: str, lines: int = 15) -> str:
    """The installer's last lines, its noise left out."""
    kept = [line for line in text.strip().splitlines() if not line.strip().startswith(_NOISE)]
    return "\n".join(kept[-lines:])


def failure(what: str, output: str) -> EnvBuildError:
    """The error of an installer that failed: `what` and its last error line, then its last lines."""
    last = tail(output)
    said = [line.strip() for line in last.splitlines() if line.strip()]
    why = next((line for line in reversed(said) if "error" in line.lower()), said[-1] if said else "")
    return EnvBuildError(what + (f": {why[:300]}" if why else ""), last)


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


def ensure(client: paramiko.SSHClient, python: str, env: SuiteEnv, cache: WheelCache, *, envs: str,
           scratch: str, max_kept: int, node: str, where: str) -> str:
    """The python of the suite's environment on the remote `client` reaches, built there first if it
    lacks it; InfrastructureError with the installer's last lines if it cannot be built. `where`
    names the remote's interpreter across runs (an SSH host's name, a VM image's)."""
    started = time.monotonic()
    try:
        known = _TARGETS.get((where, python))
        probe = _builder(client, python, ["probe", envs, env_key(env, known) if known else ""], 60.0)
        target = _TARGETS[(where, python)] = Target.from_probe(probe)
        key = env_key(env, target)
        if key in probe.get("ready", []):
            if probe.get("touched") != key:
                _builder(client, python, ["touch", envs, key], 60.0)
            log.info("%s: suite environment %s present (%s): reused in %.2fs", node, key, env.describe(),
                     time.monotonic() - started)
            return f"{probe_envs(probe, envs)}/{key}/bin/python"
        fetch_started = time.monotonic()
        wheels, fetched = cache.wheels(key, env, target)
        fetch_s = time.monotonic() - fetch_started
        ship_started = time.monotonic()
        remote = f"{scratch.rstrip('/')}/wheels-{uuid.uuid4().hex[:8]}"
        _, stdout, stderr = client.exec_command(f"mkdir -p {shlex.quote(remote)}", timeout=60.0)
        if stdout.channel.recv_exit_status() != 0:
            raise EnvBuildError(f"cannot make {remote}: {stderr.read().decode(errors='replace').strip()}")
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
        resolved = probe_envs(probe, envs)
        env_dir = f"{resolved}/.{key[:24]}-{uuid.uuid4().hex[:8]}"
        made = remote_plan(env, target, env_dir=env_dir, wheels=remote, pip_wheel=pip_wheel)
        spec = json.dumps({"env_dir": env_dir, "create": made.create,
                           "requirement_files": made.requirement_files, "install": made.install})
        answer = _builder(client, python, ["build", resolved, key, remote, str(max_kept), spec], BUILD_TIMEOUT_S)
    except (paramiko.SSHException, OSError) as exc:
        raise EnvBuildError(f"{node}: could not build the suite's environment ({env.describe()}): {exc}") from None
    except EnvBuildError as exc:
        raise EnvBuildError(f"{node}: could not build the suite's environment ({env.describe()}): {exc.summary}",
                            exc.tail) from None
    if not answer.get("ok"):
        raise failure(f"{node}: could not build the suite's environment ({env.describe()}): pip install failed "
                      "there", str(answer.get("tail", "")))
    log.info("%s: suite environment %s (%s) built: wheels %s in %.2fs, shipped %.1f MB in %.2fs, "
             "built remotely in %.2fs", node, key, env.describe(), "fetched" if fetched else "cached", fetch_s,
             shipped / 1e6, ship_s, time.monotonic() - build_started)
    return str(answer["python"])


def probe_envs(probe: dict[str, Any], envs: str) -> str:
    """ENVS as the remote resolved it (`~` expanded): from the probe's answer when it says, else as given."""
    return str(probe.get("envs") or envs)

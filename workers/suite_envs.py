"""The worker's cache of suite environments: one virtualenv per environment key (workers/env_plan.py),
built once under a lock shared by the worker's slots and processes, into a temporary directory
renamed into place whole, the least recently used evicted past a bound; and per bundle, the plain
install of its own project beside them."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from farm.errors import InfrastructureError
from farm.processes import die_with_parent
from farm.suite_env import SuiteEnv
from workers.env_plan import METADATA_FILES, PIP, UV, EnvPlan, Installer, LocalProject, local_projects, plain_argv, plan
from workers.env_plan import uninstall_argv as _uninstall_argv

log = logging.getLogger("farm.worker")

#: How many of the installer's last output lines a failed build's message carries.
TAIL_LINES = 20
#: The longest one installer command may run.
INSTALL_TIMEOUT_S = 1800.0
#: How long a key whose build failed fails again at once, without running the installer (every
#: slot and assignment of the suite would otherwise try again, each for as long as the install takes).
FAILED_TTL_S = 300.0
#: A half-made environment this old in the cache was left by a killed build.
LEFTOVER_S = 3600.0
#: The file in a built environment that says what built it and how long it took (reuse leaves it alone).
BUILT_FILE = "farm-env.json"
#: Plain installs of bundles' projects kept, per environment kept.
PLAIN_PER_ENV = 4


class EnvBuildError(InfrastructureError):
    """A suite's environment could not be built: the installer failed, or there is none. Its text
    is `summary` (one line, the suite ends with it) then the installer's last lines, if any."""

    def __init__(self, summary: str, tail: str = "") -> None:
        super().__init__(summary + (f"\n{tail}" if tail else ""))
        self.summary = summary
        self.tail = tail


@dataclass(frozen=True)
class PreparedEnv:
    """A built environment, as a run uses it."""

    key: str
    python: str  # its interpreter: runners run `python -m pytest` under it
    paths: tuple[str, ...] = ()  # PYTHONPATH entries (relative: to the run's project directory)


def find_installer(choice: str = "auto") -> Installer:
    """uv when it is on PATH or importable (choice `auto` or `uv`), else the worker's own pip
    (`auto` or `pip`); EnvBuildError when the chosen one is not there."""
    if choice in ("auto", UV):
        uv = shutil.which("uv")
        if uv is None and importlib.util.find_spec("uv") is not None:
            try:
                import uv as uv_module

                uv = str(uv_module.find_uv_bin())
            except (ImportError, FileNotFoundError, AttributeError):
                uv = None
        if uv is not None:
            return Installer(UV, (uv,))
        if choice == UV:
            raise EnvBuildError("FARM_ENV_INSTALLER is uv, but no uv is on PATH or importable")
    if importlib.util.find_spec("pip") is not None:
        return Installer(PIP, (sys.executable, "-m", "pip"))
    raise EnvBuildError(f"cannot build suite environments: neither uv nor pip is available to {sys.executable}")


def read_projects(root: Path, env: SuiteEnv) -> list[LocalProject]:
    """The local specs of `env` resolved in the bundle unpacked at `root`, with their metadata files."""
    out = []
    for spec, path, extras in local_projects(env):
        where = (root / path).resolve()
        if not where.is_relative_to(root.resolve()) or not where.is_dir():
            raise EnvBuildError(f"--install {spec}: no such directory in the bundle")
        files = tuple((name, (where / name).read_text(encoding="utf-8", errors="replace"))
                      for name in METADATA_FILES if (where / name).is_file())
        if not files:
            raise EnvBuildError(f"--install {spec}: no pyproject.toml, setup.cfg or setup.py in {path}")
        out.append(LocalProject(spec, path, extras, files, (where / "src").is_dir()))
    return out


@dataclass(frozen=True)
class CachedEntry:
    """One entry of a cache directory: its name and when it was last used (its mtime)."""

    name: str
    used_at: float


def stamped(paths: Iterable[Path], stamp: Callable[[Path], Path] = lambda p: p) -> list[CachedEntry]:
    """Each path as a CachedEntry, last used when `stamp(path)` was modified; one another process
    removed meanwhile is left out (caches are shared by a worker's processes)."""
    out = []
    for path in paths:
        try:
            out.append(CachedEntry(path.name, stamp(path).stat().st_mtime))
        except OSError:
            continue
    return out


def evictions(entries: Sequence[CachedEntry], bound: int, keep: str = "",
              busy: Collection[str] = ()) -> list[str]:
    """The entries to remove, least recently used first, until at most `bound` are left; never
    `keep`, nor one `busy` (in use): then more than `bound` may be left."""
    ordered = sorted(entries, key=lambda e: e.used_at)
    excess = len(ordered) - bound
    return [e.name for e in ordered if e.name != keep and e.name not in busy][:max(0, excess)]


class EnvCache:
    """Suite environments under `root` (`root/KEY`: a venv), at most `max_envs` of them; plain
    installs under `root/plain`. Safe across slots and processes: each key is built under an
    exclusive lock (`root/locks/KEY`), so a second slot waits and then reuses it."""

    def __init__(self, root: Path, max_envs: int = 8, installer: str | Installer = "auto") -> None:
        self.root = root
        self.max_envs = max_envs
        self.installer = installer  # FARM_ENV_INSTALLER's choice (find_installer), or the one to use
        self.builds = 0  # environments this object built (tests; the log says each)
        # key -> this process's uses of it, each its holds on `locks/KEY.use` (and `locks/plain-NAME.use`)
        self._uses: dict[str, list[list[IO[str]]]] = {}
        self._uses_lock = threading.Lock()  # slots are processes, but a thread may prepare too

    def prepare(self, env: SuiteEnv, tree: Path, bundle_digest: str, base_python: str,
                interpreter: str) -> PreparedEnv:
        """The environment of `env` for the bundle unpacked at `tree`, built if it is not cached."""
        projects = read_projects(tree, env)
        installer = self.installer if isinstance(self.installer, Installer) else find_installer(self.installer)
        probe = plan(env, projects, interpreter, base_python=base_python, env_dir="", bundle_root=str(tree),
                     installer=installer)
        final = self.root / probe.key
        holds = [self._use(probe.key)]  # before it is looked for: an eviction under way finishes first
        try:
            with self._locked(probe.key):
                if not (final / BUILT_FILE).is_file():
                    self._check_failed(probe.key)
                    self._build(env, projects, interpreter, base_python, tree, installer, final)
                else:
                    _touch(final)
                paths = probe.source_paths
                if probe.plain:
                    paths = (*paths, *self._plain(probe, installer, final, tree, bundle_digest, holds))
        except BaseException:
            for fh in holds:
                fh.close()
            raise
        with self._uses_lock:
            self._uses.setdefault(probe.key, []).append(holds)
        return PreparedEnv(probe.key, str(final / "bin" / "python"), paths)

    def release(self, key: str) -> None:
        """The run that `prepare` returned `key` for has ended: the environment (and its plain
        installs) may be evicted again, once no other run of any process uses them."""
        with self._uses_lock:
            held = self._uses.get(key)
            holds = held.pop() if held else []
            if held == []:
                del self._uses[key]
        for fh in holds:
            fh.close()  # closing the file drops its shared lock

    def _use(self, name: str) -> IO[str]:
        """A shared lock on `locks/NAME.use`, held while a run uses the environment (or plain
        install) NAME: eviction, which takes it exclusively, passes it over."""
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        fh = open(locks / f"{name}.use", "a")  # noqa: SIM115 (held past this call: release() closes it)
        try:
            fcntl.flock(fh, fcntl.LOCK_SH)
        except BaseException:
            fh.close()
            raise
        return fh

    def _build(self, env: SuiteEnv, projects: list[LocalProject], interpreter: str, base_python: str, tree: Path,
               installer: Installer, final: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_leftovers()
        incoming = Path(tempfile.mkdtemp(dir=self.root, prefix=".incoming-"))
        started = time.monotonic()
        try:
            with tempfile.TemporaryDirectory(prefix="farm-env-src-") as copies:
                # Builds write into a project's tree (build/, *.egg-info): they get a copy, not the cached tree.
                bundle_root = Path(copies) / "project"
                if projects:
                    shutil.copytree(tree, bundle_root, symlinks=True)
                p = plan(env, projects, interpreter, base_python=base_python, env_dir=str(incoming / "env"),
                         bundle_root=str(bundle_root), installer=installer)
                log_path = incoming / "install.log"
                _run(p.create, log_path, "making the virtualenv", installer)
                for path, text in p.requirement_files:
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                    Path(path).write_text(text, encoding="utf-8")
                _run(_no_compile(p.install, installer), log_path, "installing", installer)
                if p.strip:
                    names = installed_from(Path(p.python), p.strip)
                    if names:
                        _run(_uninstall_argv(installer, p.python, names), log_path, "removing the project",
                             installer)
            seconds = time.monotonic() - started
            _relocate(incoming / "env", final)
            (incoming / "env" / BUILT_FILE).write_text(json.dumps(
                {"key": p.key, "installer": installer.kind, "built_at": time.time(), "build_s": round(seconds, 3),
                 "spec": env.describe()}), encoding="utf-8")
            os.rename(incoming / "env", final)
        except EnvBuildError as exc:
            self._remember_failed(final.name, str(exc))
            raise
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
        _compile(final, final / "bin" / "python")
        self.builds += 1
        log.warning("built the suite environment %s (%s) with %s in %.1fs", final.name[:12], env.describe(),
                    installer.kind, time.monotonic() - started)
        self._evict(keep=final.name)

    def _plain(self, probe: EnvPlan, installer: Installer, final: Path, tree: Path, bundle_digest: str,
               holds: list[IO[str]]) -> list[str]:
        """This bundle's projects installed plainly (no dependencies) into a directory of their own,
        each held in use (`holds`) for the run."""
        out = []
        plain_root = self.root / "plain"
        for path in probe.plain:
            target = plain_root / f"{bundle_digest[:16]}-{probe.key[:16]}-{slug(path)}"
            holds.append(self._use(f"plain-{target.name}"))
            if not target.is_dir():
                plain_root.mkdir(parents=True, exist_ok=True)
                incoming = Path(tempfile.mkdtemp(dir=plain_root, prefix=".incoming-"))
                try:
                    with tempfile.TemporaryDirectory(prefix="farm-env-src-") as copy:
                        source = Path(copy) / "project"
                        shutil.copytree(tree / path, source, symlinks=True)
                        argv = plain_argv(installer, str(final / "bin" / "python"), str(source), str(incoming / "site"))
                        _run(_no_compile(argv, installer), incoming / "install.log", "installing the project",
                             installer)
                    os.rename(incoming / "site", target)
                finally:
                    shutil.rmtree(incoming, ignore_errors=True)
                _compile(target, final / "bin" / "python")
                self._evict_plain(keep=target.name)
            else:
                _touch(target)
            out.append(str(target))
        return out

    @contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        locks = self.root / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        with open(locks / key, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _check_failed(self, key: str) -> None:
        failed = self.root / "failed" / key
        try:
            age = time.time() - failed.stat().st_mtime
            if age < FAILED_TTL_S:
                summary, _, tail = failed.read_text(encoding="utf-8").partition("\n")
                raise EnvBuildError(summary, tail)
        except FileNotFoundError:
            return
        failed.unlink(missing_ok=True)

    def _remember_failed(self, key: str, message: str) -> None:
        (self.root / "failed").mkdir(parents=True, exist_ok=True)
        (self.root / "failed" / key).write_text(message, encoding="utf-8")

    def _evict(self, keep: str) -> None:
        with self._locked(".evict"):
            entries = [CachedEntry(e.name, e.stat(follow_symlinks=False).st_mtime) for e in os.scandir(self.root)
                       if len(e.name) == 64 and e.is_dir(follow_symlinks=False)]
            for name in self._idle_evictions(entries, self.max_envs, keep, ""):
                _remove(self.root, name)
                (self.root / "locks" / name).unlink(missing_ok=True)
                log.warning("evicted the suite environment %s (more than %d kept)", name[:12], self.max_envs)

    def _evict_plain(self, keep: str) -> None:
        root = self.root / "plain"
        with self._locked(".evict"):
            entries = [CachedEntry(e.name, e.stat(follow_symlinks=False).st_mtime) for e in os.scandir(root)
                       if not e.name.startswith(".")]
            for name in self._idle_evictions(entries, self.max_envs * PLAIN_PER_ENV, keep, "plain-"):
                _remove(root, name)

    @contextmanager
    def _idle(self, entries: Sequence[CachedEntry], prefix: str) -> Iterator[tuple[set[str], dict[str, IO[str]]]]:
        """The entries in use (a run holds `locks/PREFIX+NAME.use` shared), and the others' lock
        files, each locked exclusively (no run can start using it) until the block ends."""
        busy: set[str] = set()
        idle: dict[str, IO[str]] = {}
        try:
            for entry in entries:
                fh = open(self.root / "locks" / f"{prefix}{entry.name}.use", "a")  # noqa: SIM115 (closed below)
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    fh.close()
                    busy.add(entry.name)
                    continue
                idle[entry.name] = fh
            yield busy, idle
        finally:
            for held in idle.values():
                held.close()

    def _idle_evictions(self, entries: Sequence[CachedEntry], bound: int, keep: str, prefix: str) -> Iterator[str]:
        """`evictions` of the entries no run uses, each yielded while it stays locked (removed
        then); the idle ones not chosen are unlocked first, so no prepare waits on the removals."""
        (self.root / "locks").mkdir(parents=True, exist_ok=True)
        with self._idle(entries, prefix) as (busy, idle):
            chosen = evictions(entries, bound, keep, busy)
            for name in [n for n in idle if n not in chosen]:
                idle.pop(name).close()
            yield from chosen
            if len(entries) - len(chosen) > bound:
                log.warning("%d suite environments kept under %s, past the bound of %d: the others are in use",
                            len(entries) - len(chosen), self.root, bound)

    def _remove_leftovers(self) -> None:
        now = time.time()
        for entry in os.scandir(self.root):
            if entry.name.startswith((".incoming-", ".evicted-")):
                try:
                    old = now - entry.stat(follow_symlinks=False).st_mtime > LEFTOVER_S
                except OSError:
                    continue
                if old:
                    shutil.rmtree(entry.path, ignore_errors=True)


def installed_from(python: Path, directories: Sequence[str]) -> list[str]:
    """The distributions in the environment of `python` installed from one of `directories`
    (their PEP 610 direct_url.json names it)."""
    wanted = {Path(d).resolve().as_uri() for d in directories}
    names = []
    for direct in python.parent.parent.glob("lib/python*/site-packages/*.dist-info/direct_url.json"):
        try:
            url = json.loads(direct.read_text(encoding="utf-8")).get("url", "")
            meta = (direct.parent / "METADATA").read_text(encoding="utf-8", errors="replace")
        except (OSError, ValueError):
            continue
        name = next((line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Name:")), "")
        if url.rstrip("/") in wanted and name:
            names.append(name)
    return names


def _no_compile(argv: tuple[str, ...], installer: Installer) -> tuple[str, ...]:
    """pip compiles what it installs, naming the temporary directory in the bytecode (then in every
    traceback, and pytest would not know its own frames): it is compiled after the rename instead."""
    if installer.kind != PIP or "install" not in argv:
        return argv
    at = argv.index("install") + 1
    return (*argv[:at], "--no-compile", *argv[at:])


def installer_env(kind: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment an installer of `kind` runs in: `environ`, and for uv the host's own
    certificate store (UV_SYSTEM_CERTS, UV_NATIVE_TLS, its older name), as pip uses it, unless the
    host says otherwise: uv's built-in roots do not know a CA the host added (a proxy's), and a
    host whose pip reaches the index must not fail with uv."""
    env = dict(environ)
    if kind == UV and not any(k in env for k in ("UV_SYSTEM_CERTS", "UV_NATIVE_TLS", "SSL_CERT_FILE")):
        env["UV_SYSTEM_CERTS"] = env["UV_NATIVE_TLS"] = "1"
    return env


def _run(argv: Sequence[str], log_path: Path, what: str, installer: Installer | None = None) -> None:
    """Run an installer command, its output appended to `log_path`; EnvBuildError with its last lines."""
    with open(log_path, "ab") as out:
        out.write(("$ " + " ".join(argv) + "\n").encode())
        out.flush()
        try:
            code = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  env=installer_env(installer.kind if installer else PIP, os.environ),
                                  timeout=INSTALL_TIMEOUT_S, preexec_fn=die_with_parent, check=False).returncode
        except subprocess.TimeoutExpired:
            code = -1
        except OSError as exc:
            raise EnvBuildError(f"could not build the suite's environment: {what}: {exc}") from None
    if code != 0:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-TAIL_LINES:]
        tail = "\n".join(lines)
        said = [line.strip() for line in lines if line.strip()]
        why = next((line for line in reversed(said) if "error" in line.lower()), said[-1] if said else "")
        ran = Path(argv[0]).name if argv[0] != sys.executable else "pip"
        raise EnvBuildError(f"could not build the suite's environment ({what}: {ran} exit {code})"
                            + (f": {why[:300]}" if why else ""), tail)


def _relocate(env: Path, final: Path) -> None:
    """Point the scripts the installer wrote (their `#!` lines, activate) at where the environment
    will be: they name the directory it was built in."""
    old, new = str(env).encode(), str(final).encode()
    for script in (env / "bin").iterdir():
        if script.is_symlink() or not script.is_file():
            continue
        data = script.read_bytes()
        if old in data[:65536]:
            script.write_bytes(data.replace(old, new))


def _compile(where: Path, python: Path) -> None:
    """Byte-compile the modules under `where` in their final place, with the environment's `python` (best effort)."""
    try:
        subprocess.run([str(python), "-m", "compileall", "-q", "-j", "0", str(where)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=INSTALL_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        pass


def _remove(root: Path, name: str) -> None:
    gone = root / f".evicted-{name}-{os.getpid()}"
    try:
        os.rename(root / name, gone)
    except OSError:
        return
    shutil.rmtree(gone, ignore_errors=True)


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass


def slug(path: str) -> str:
    """A project directory of the bundle as part of a file name (`.` -> `root`, `a/b` -> `a_b`)."""
    return "root" if path in (".", "") else path.replace("/", "_")

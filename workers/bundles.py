"""The worker's cache of bundle archives, by digest, filled from the state store on first use, and
of their unpacked, byte-compiled trees (ProjectTrees)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

from farm import keys
from farm.bundle import check_unpacked_size, extract_bundle
from farm.config import Settings
from farm.errors import InfrastructureError
from farm.processes import die_with_parent
from workers.pytest_rewrites import REWRITTEN

#: The longest a worker compiles a bundle's modules before it gives up (the runs then compile what they import).
COMPILE_TIMEOUT_S = 300.0
#: A kept tree (TreeBounds) used this recently is never evicted: another embedded farm may be copying it.
IN_USE_S = 600.0
#: A half-made or half-removed tree this old in a kept trees directory was left by a killed worker.
LEFTOVER_S = 3600.0
#: The file beside a tree's `project` that says how many bytes its files take.
_SIZE_FILE = "bytes"


class BundleCache:
    """Bundles on local disk, named by their sha256 digest."""

    def __init__(self, root: Path, store: redis.Redis, max_unpacked_bytes: int = Settings.max_unpacked_bytes) -> None:
        self.root = root / "bundles"
        self.store = store
        self.max_unpacked_bytes = max_unpacked_bytes

    def path(self, digest: str) -> Path:
        """The local archive for `digest`, fetched and verified if it is not cached yet."""
        if not digest.isalnum() or len(digest) != 64:
            raise InfrastructureError(f"malformed bundle digest {digest!r}")
        local = self.root / f"{digest}.tar.gz"
        if local.exists():
            return local
        data: bytes | None = self.store.get(keys.bundle(digest))  # type: ignore[assignment]
        if data is None:
            raise InfrastructureError(f"bundle {digest[:12]} is not in the state store (expired?)")
        if hashlib.sha256(data).hexdigest() != digest:
            raise InfrastructureError(f"bundle {digest[:12]} does not match its digest")
        # Before it is cached: a bundle that would unpack to gigabytes goes to no backend.
        check_unpacked_size(data, self.max_unpacked_bytes)
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, local)  # atomic: concurrent slots never see half a file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return local


#: Writes those rewritten modules into a tree, as pytest caches them (run under the runners' interpreter).
_REWRITES_SCRIPT = Path(__file__).with_name("pytest_rewrites.py")
#: What that script writes, in each `__pycache__` (e.g. `test_x.cpython-311-pytest-9.2.0.pyc`).
_REWRITTEN_PYC = re.compile(r"\.[^.]+-pytest-[^/]*\.pyc$")


@dataclass(frozen=True)
class TreeBounds:
    """How many kept trees, and how many bytes of them, a trees directory shared across farms
    (the embedded farm's, in the user's cache) holds at most."""

    trees: int = 16
    bytes: int = 256 * 1024 * 1024


@dataclass(frozen=True)
class KeptTree:
    """One tree of a trees directory: its name, when it was last used (its directory's mtime), its size."""

    name: str
    used_at: float
    size: int


def evictions(trees: list[KeptTree], bounds: TreeBounds, now: float, keep: str = "") -> list[str]:
    """The trees to remove, least recently used first, until the rest fit `bounds`; never `keep`
    (the one just made) nor one used within IN_USE_S (it may be being copied), so a directory may
    stay over its bounds while its trees are in use."""
    ordered = sorted(trees, key=lambda t: t.used_at, reverse=True)
    count, size = len(ordered), sum(t.size for t in ordered)
    out = []
    for t in reversed(ordered):
        if count <= bounds.trees and size <= bounds.bytes:
            break
        if t.name == keep or now - t.used_at < IN_USE_S:
            continue
        out.append(t.name)
        count, size = count - 1, size - t.size
    return out


class ProjectTrees:
    """Bundles unpacked once per digest and interpreter, with the interpreter's bytecode compiled
    beside the sources: each run copies its tree (never links it), so what a test writes into its
    project directory stays in its own run.

    A tree is only ever written by the worker (unpacking, then `compileall` under the runner's
    interpreter, which runs no project code), then renamed into place whole: a slot that finds
    it sees it complete, and two slots preparing the same digest at once keep the first.

    With `bounds` (the embedded farm: a directory in the user's cache, kept between its runs and
    shared by the farms of concurrent commands), each use marks its tree as used (its mtime) and
    each new tree evicts the least recently used ones beyond the bounds. Without, trees are
    never evicted (a worker's own cache directory)."""

    def __init__(self, root: Path, python: str, max_unpacked_bytes: int = Settings.max_unpacked_bytes,
                 bounds: TreeBounds | None = None) -> None:
        self.root = root
        self.python = python
        self.max_unpacked_bytes = max_unpacked_bytes
        self.bounds = bounds
        self.key = hashlib.sha256(os.path.abspath(python).encode()).hexdigest()[:12]

    def tree(self, archive: Path) -> Path:
        """The unpacked and compiled project of `archive` (a cached `DIGEST.tar.gz`)."""
        final = self.root / f"{_digest_of(archive)}-{self.key}"
        if final.is_dir():
            if self.bounds is not None:
                _touch(final)
            return final / "project"
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        incoming = Path(tempfile.mkdtemp(dir=self.root, prefix=".incoming-"))
        try:
            extract_bundle(archive.read_bytes(), incoming / "project", self.max_unpacked_bytes)
            compile_tree(self.python, incoming / "project")
            if self.bounds is not None:
                (incoming / _SIZE_FILE).write_text(str(_size_of(incoming / "project")))
            try:
                os.rename(incoming, final)
            except OSError:
                if not final.is_dir():  # not another slot that finished first
                    raise
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
        if self.bounds is not None:
            self._evict(final.name)
        return final / "project"

    def _evict(self, keep: str) -> None:
        """Remove the trees `evictions` names (renamed away first: a slot never finds half a tree)."""
        assert self.bounds is not None
        now = time.time()
        for name in evictions(_kept_trees(self.root), self.bounds, now, keep):
            gone = self.root / f".evicted-{name}-{os.getpid()}"
            try:
                os.rename(self.root / name, gone)
            except OSError:  # another farm evicted it first
                continue
            shutil.rmtree(gone, ignore_errors=True)
        for entry in os.scandir(self.root):  # what a killed worker left half made or half removed
            if entry.name.startswith((".incoming-", ".evicted-")) and _older(entry, now, LEFTOVER_S):
                shutil.rmtree(entry.path, ignore_errors=True)

    def copy(self, archive: Path, dest: Path, rewritten: bool = True) -> None:
        """A run's own copy of the tree of `archive` at `dest` (times kept: the bytecode stays valid);
        without pytest's rewritten test modules when not `rewritten` (a run that turns on
        `enable_assertion_pass_hook`, which those were written without)."""
        shutil.copytree(self.tree(archive), dest, symlinks=True, ignore=None if rewritten else _rewritten_pycs)


def _rewritten_pycs(top: str, names: list[str]) -> set[str]:
    if os.path.basename(top) != "__pycache__":
        return set()
    return {name for name in names if _REWRITTEN_PYC.search(name)}


def _touch(tree: Path) -> None:
    try:
        os.utime(tree)
    except OSError:  # evicted meanwhile by another farm: this run's copy fails and says so
        pass


def _older(entry: os.DirEntry[str], now: float, age: float) -> bool:
    try:
        return now - entry.stat(follow_symlinks=False).st_mtime > age
    except OSError:
        return False


def _size_of(tree: Path) -> int:
    return sum(p.lstat().st_size for p in tree.rglob("*"))


def _kept_trees(root: Path) -> list[KeptTree]:
    """The finished trees of `root` (not those being made or removed), as `evictions` takes them."""
    out = []
    for entry in os.scandir(root):
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            size = int((Path(entry.path) / _SIZE_FILE).read_text())
        except (OSError, ValueError):
            size = 0
        try:
            out.append(KeptTree(entry.name, entry.stat(follow_symlinks=False).st_mtime, size))
        except OSError:
            continue
    return out


def _digest_of(archive: Path) -> str:
    """The digest a cached archive is named by, else (an archive named otherwise) its content's."""
    stem = archive.name.split(".", 1)[0]
    if len(stem) == 64 and all(c in "0123456789abcdef" for c in stem):
        return stem
    return hashlib.sha256(archive.read_bytes()).hexdigest()


def compile_tree(python: str, tree: Path) -> None:
    """Byte-compile the modules under `tree` with `python` (isolated, no site: no project code
    runs), and beside it write pytest's rewritten test modules as pytest caches them
    (workers/pytest_rewrites.py: isolated, pytest imported, the modules parsed, never run).
    Best effort: a module that does not compile is compiled, and fails, in the run."""
    commands = [[python, "-I", "-S", "-m", "compileall", "-q", "-x", REWRITTEN.pattern, str(tree)],
                [python, "-I", str(_REWRITES_SCRIPT), str(tree)]]
    procs = []
    try:
        for command in commands:  # side by side: two cores, and neither needs the other
            try:
                procs.append(subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.DEVNULL, preexec_fn=die_with_parent))
            except OSError:
                pass
        deadline = time.monotonic() + COMPILE_TIMEOUT_S
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

"""The worker's cache of bundle archives, by digest, filled from the state store on first use, and
of their unpacked, byte-compiled trees (ProjectTrees)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import redis

from farm import keys
from farm.bundle import check_unpacked_size, extract_bundle
from farm.config import Settings
from farm.errors import InfrastructureError
from farm.processes import die_with_parent

#: The longest a worker compiles a bundle's modules before it gives up (the runs then compile what they import).
COMPILE_TIMEOUT_S = 300.0


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


#: pytest rewrites these itself (assertion rewriting), so the interpreter's own bytecode of them is never used.
_PYTEST_REWRITES = r"(^|/)(test_[^/]*|[^/]*_test|conftest)\.py$"


class ProjectTrees:
    """Bundles unpacked once per digest and interpreter, with the interpreter's bytecode compiled
    beside the sources: each run copies its tree (never links it), so what a test writes into its
    project directory stays in its own run.

    A tree is only ever written by the worker (unpacking, then `compileall` under the runner's
    interpreter, which runs no project code), then renamed into place whole: a slot that finds
    it sees it complete, and two slots preparing the same digest at once keep the first."""

    def __init__(self, root: Path, python: str, max_unpacked_bytes: int = Settings.max_unpacked_bytes) -> None:
        self.root = root
        self.python = python
        self.max_unpacked_bytes = max_unpacked_bytes
        self.key = hashlib.sha256(os.path.abspath(python).encode()).hexdigest()[:12]

    def tree(self, archive: Path) -> Path:
        """The unpacked and compiled project of `archive` (a cached `DIGEST.tar.gz`)."""
        final = self.root / f"{_digest_of(archive)}-{self.key}"
        if not final.is_dir():
            self.root.mkdir(parents=True, exist_ok=True)
            incoming = Path(tempfile.mkdtemp(dir=self.root, prefix=".incoming-"))
            try:
                extract_bundle(archive.read_bytes(), incoming / "project", self.max_unpacked_bytes)
                compile_tree(self.python, incoming / "project")
                try:
                    os.rename(incoming, final)
                except OSError:
                    if not final.is_dir():  # not another slot that finished first
                        raise
            finally:
                shutil.rmtree(incoming, ignore_errors=True)
        return final / "project"

    def copy(self, archive: Path, dest: Path) -> None:
        """A run's own copy of the tree of `archive` at `dest` (times kept: the bytecode stays valid)."""
        shutil.copytree(self.tree(archive), dest, symlinks=True)


def _digest_of(archive: Path) -> str:
    """The digest a cached archive is named by, else (an archive named otherwise) its content's."""
    stem = archive.name.split(".", 1)[0]
    if len(stem) == 64 and all(c in "0123456789abcdef" for c in stem):
        return stem
    return hashlib.sha256(archive.read_bytes()).hexdigest()


def compile_tree(python: str, tree: Path) -> None:
    """Byte-compile the modules under `tree` with `python` (isolated, no site: no project code
    runs). Best effort: a module that does not compile is compiled, and fails, in the run."""
    try:
        subprocess.run([python, "-I", "-S", "-m", "compileall", "-q", "-x", _PYTEST_REWRITES, str(tree)],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=COMPILE_TIMEOUT_S, check=False, preexec_fn=die_with_parent)
    except (OSError, subprocess.TimeoutExpired):
        pass

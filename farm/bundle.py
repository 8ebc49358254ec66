"""Content-addressed project bundles: a deterministic tar.gz of the project, named by its sha256.

The same tree always gives the same bytes (sorted entries, zeroed times and owners), so workers
cache bundles by digest and a resubmitted project uploads nothing new.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from farm.errors import BundleError

#: Directory names never bundled: VCS data, caches, build outputs, dependency trees.
EXCLUDED_DIRS = frozenset({
    ".git", ".hg", ".svn", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
    ".tox", ".nox", ".eggs", "build", "dist", "node_modules", ".venv", "venv", ".farm",
})
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".egg-info")


@dataclass(frozen=True)
class Bundle:
    """A bundled project: its archive bytes, their digest and what went in."""

    digest: str
    data: bytes
    files: int


def is_excluded(path: Path) -> bool:
    """Whether a directory entry is left out of bundles."""
    name = path.name
    if name in EXCLUDED_DIRS or name.endswith(EXCLUDED_SUFFIXES):
        return True
    # Any virtualenv, whatever its name.
    return path.is_dir() and (path / "pyvenv.cfg").is_file()


def make_bundle(root: Path, max_bytes: int) -> Bundle:
    """Bundle the project at `root`; raise BundleError if it is missing or over `max_bytes`."""
    if not root.exists():
        raise BundleError(f"no such project directory: {root}")
    if not root.is_dir():
        raise BundleError(f"not a directory: {root}")
    buffer = io.BytesIO()
    files = 0
    # mtime=0 and no file name in the gzip header: the same tree gives the same bytes.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=6) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for path in _walk(root):
                rel = path.relative_to(root).as_posix()
                try:
                    info = tar.gettarinfo(str(path), arcname=rel)
                except OSError as exc:
                    raise BundleError(f"cannot read {path}: {exc.strerror}") from None
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mode = 0o755 if info.isdir() or info.mode & 0o111 else 0o644
                if info.isreg():
                    try:
                        with open(path, "rb") as fh:
                            tar.addfile(info, fh)
                    except OSError as exc:
                        raise BundleError(f"cannot read {path}: {exc.strerror}") from None
                    files += 1
                elif info.isdir() or info.issym():
                    tar.addfile(info)
                if buffer.tell() > max_bytes:
                    raise _too_large(root, max_bytes)
    data = buffer.getvalue()
    if len(data) > max_bytes:
        raise _too_large(root, max_bytes)
    return Bundle(digest=hashlib.sha256(data).hexdigest(), data=data, files=files)


def extract_bundle(data: bytes, dest: Path) -> None:
    """Unpack a bundle into `dest`, refusing members that would land outside it."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")


def _walk(root: Path) -> list[Path]:
    """Every entry under root that goes into the bundle, sorted, excluded trees pruned."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not is_excluded(base / d))
        for d in dirnames:
            out.append(base / d)
        for f in sorted(filenames):
            p = base / f
            if is_excluded(p):
                continue
            try:
                mode = p.lstat().st_mode
            except OSError:
                continue
            if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
                out.append(p)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def _too_large(root: Path, max_bytes: int) -> BundleError:
    return BundleError(
        f"project {root} bundles to more than {max_bytes // (1024 * 1024)} MiB "
        "(raise FARM_MAX_BUNDLE_MB or leave large files out of the project)"
    )

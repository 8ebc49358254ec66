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
from typing import Any

from farm.config import Settings
from farm.errors import BundleError, BundleRefused, InfrastructureError
from farm.unpack import UnsafeMember, unpack_safely

__all__ = ["Bundle", "UnsafeMember", "extract_bundle", "make_bundle", "unpack_safely"]

#: Directory names never bundled, wherever they are: VCS data, caches, dependency trees.
EXCLUDED_DIRS = frozenset({
    ".git", ".hg", ".svn", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
    ".tox", ".nox", ".eggs", "node_modules", ".venv", "venv", ".farm",
})
#: Build outputs: left out only at the top of the project (a test package may be named build).
EXCLUDED_TOP_DIRS = frozenset({"build", "dist"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".egg-info")


@dataclass(frozen=True)
class Bundle:
    """A bundled project: its archive bytes, their digest and what went in."""

    digest: str
    data: bytes
    files: int


def is_excluded(path: Path, *, top: bool = False) -> bool:
    """Whether a directory entry is left out of bundles (`top`: it sits at the project's root)."""
    name = path.name
    if name.endswith(EXCLUDED_SUFFIXES):
        return True
    if not path.is_dir() or path.is_symlink():
        return False
    if name in EXCLUDED_DIRS or (top and name in EXCLUDED_TOP_DIRS):
        return True
    # Any virtualenv, whatever its name.
    return (path / "pyvenv.cfg").is_file()


def make_bundle(root: Path, max_bytes: int, max_unpacked_bytes: int = Settings.max_unpacked_bytes) -> Bundle:
    """Bundle the project at `root`; raise BundleError if it is missing, over `max_bytes`
    compressed, or over `max_unpacked_bytes` unpacked (see `check_unpacked_size`)."""
    if not root.exists():
        raise BundleError(f"no such project directory: {root}")
    if not root.is_dir():
        raise BundleError(f"not a directory: {root}")
    buffer = io.BytesIO()
    files = 0
    # mtime=0 and no file name in the gzip header: the same tree gives the same bytes.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=6) as gz:
        unpacked = _CountingWriter(gz)
        with tarfile.open(fileobj=unpacked, mode="w", format=tarfile.PAX_FORMAT) as tar:
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
                    _check_room(root, rel, info.size, unpacked.count, max_unpacked_bytes)
                    try:
                        with open(path, "rb") as fh:
                            tar.addfile(info, fh)
                    except OSError as exc:
                        raise BundleError(f"cannot read {path}: {exc.strerror}") from None
                    files += 1
                elif info.isdir():
                    tar.addfile(info)
                elif info.issym():
                    _check_link(root, path)
                    tar.addfile(info)
                if buffer.tell() > max_bytes:
                    raise _too_large(root, max_bytes)
        _check_room(root, "", 0, unpacked.count, max_unpacked_bytes)  # tar's end blocks included
    data = buffer.getvalue()
    if len(data) > max_bytes:
        raise _too_large(root, max_bytes)
    return Bundle(digest=hashlib.sha256(data).hexdigest(), data=data, files=files)


def extract_bundle(data: bytes, dest: Path, max_unpacked_bytes: int = Settings.max_unpacked_bytes) -> None:
    """Unpack a bundle into `dest`, refusing members that would land outside it, and a bundle
    that unpacks to more than `max_unpacked_bytes` (before anything is written)."""
    check_unpacked_size(data, max_unpacked_bytes)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            unpack_safely(tar, dest)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InfrastructureError(f"bundle cannot be unpacked: {exc}") from None


# --- the unpacked-size cap -------------------------------------------------------------------
#
# A bundle's unpacked size is the size of its tar archive: what unpacking reads and at most what
# it writes (file contents at their apparent size, so a sparse file counts with its holes, plus
# tar's 512-byte headers). make_bundle counts it as it writes the archive; a worker counts it
# again, reading the archive through before it extracts anything.


class _CountingWriter(io.RawIOBase):
    """A file object for tarfile that counts the bytes written through it (the unpacked size)."""

    def __init__(self, inner: gzip.GzipFile) -> None:
        self.inner = inner
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        n = self.inner.write(data)
        self.count += n
        return n

    def tell(self) -> int:
        return self.count


class _CountingReader(io.RawIOBase):
    """The decompressed archive, counted as it is read; _OverCap past `limit` bytes."""

    def __init__(self, inner: gzip.GzipFile, limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.inner.readinto(buffer)
        self.count += n
        if self.count > self.limit:
            raise _OverCap(self.count)
        return n


class _OverCap(Exception):
    pass


def check_unpacked_size(data: bytes, max_bytes: int) -> None:
    """Raise InfrastructureError if the bundle unpacks to more than `max_bytes`.

    Reads the whole archive without writing anything: the members' sizes (a header announcing
    more than is left stops it there), and the bytes actually decompressed (headers can lie)."""
    total = 0
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
            with tarfile.open(fileobj=_CountingReader(gz, max_bytes), mode="r|") as tar:
                for member in tar:
                    total += member.size
                    if total > max_bytes:
                        raise _OverCap(total)
    except _OverCap:
        raise BundleRefused(f"the bundle unpacks to more than {_size(max_bytes)}, over this worker's "
                                  "cap (FARM_MAX_UNPACKED_MB): not unpacked") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InfrastructureError(f"bundle cannot be unpacked: {exc}") from None


def _check_room(root: Path, rel: str, size: int, so_far: int, max_bytes: int) -> None:
    """Refuse a member of `size` bytes (plus its headers) that would take the archive past the cap."""
    if so_far + size + (3 * tarfile.BLOCKSIZE if rel else 0) <= max_bytes:
        return
    big = f" ({rel} alone is {_size(size)})" if size > max_bytes // 4 else ""
    raise BundleError(f"project {root} unpacks to more than {_size(max_bytes)}{big} "
                      "(raise FARM_MAX_UNPACKED_MB or leave large files out of the project)")


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} bytes"


def _check_link(root: Path, link: Path) -> None:
    """Refuse a symlink that points out of the project: workers could not unpack it."""
    target = os.readlink(link)
    resolved = Path(os.path.normpath(link.parent.resolve() / target))
    if os.path.isabs(target) or not resolved.is_relative_to(root.resolve()):
        raise BundleError(f"symlink {link} points out of the project ({target}): replace it with a copy")


def _walk(root: Path) -> list[Path]:
    """Every entry under root that goes into the bundle, sorted, excluded trees pruned."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not is_excluded(base / d, top=base == root))
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
    size = f"{max_bytes / 2**20:g} MiB" if max_bytes >= 2**20 else f"{max_bytes / 1024:g} KiB"
    return BundleError(
        f"project {root} bundles to more than {size} "
        "(raise FARM_MAX_BUNDLE_MB or leave large files out of the project)"
    )

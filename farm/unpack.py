"""Unpacking an archive as safely as tarfile's "data" filter, on every Python (3.11.2 has none).

Standard library only, and no farm import: besides farm's own extraction (farm.bundle), it is
uploaded next to workers/remote_runner.py, which unpacks bundles on SSH hosts and in VMs under
their own python3 (Debian 12's 3.11.2 in farm's VM image).
"""

from __future__ import annotations

import copy
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path


class UnsafeMember(tarfile.TarError):
    """A bundle member that would land outside the target, link out of it, or is not plain data."""


def unpack_safely(tar: tarfile.TarFile, dest: Path, *, native: bool | None = None) -> None:
    """Extract every member of `tar` into `dest` as tarfile's "data" filter does, on every Python.

    The filter argument exists from Python 3.11.4 on (`native`, the default where it exists);
    before that each member goes through `_as_data`, which makes the same decisions: leading
    slashes stripped, nothing outside `dest` (`..`, absolute links, links out, writing through
    a link), no device files or fifos, no setuid/setgid/sticky or group/other-write bits, no
    owners from the archive.
    """
    if native is None:
        native = hasattr(tarfile, "data_filter")
    if native:
        tar.extractall(dest, filter="data")
    else:
        # Lazily, member by member: each check sees the links extracted before it on disk. Where
        # tarfile has filters (tests of this path), none on top: only these checks decide.
        members = _data_members(tar, os.path.realpath(dest))
        if hasattr(tarfile, "fully_trusted_filter"):
            tar.extractall(dest, members=members, filter="fully_trusted")  # noqa: S202 (checked)
        else:
            tar.extractall(dest, members=members)  # noqa: S202 (checked)


def _data_members(tar: tarfile.TarFile, dest: str) -> Iterator[tarfile.TarInfo]:
    for member in tar:
        yield _as_data(member, dest)


def _as_data(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
    """`member` as tarfile.data_filter (Python 3.12) would return it for `dest` (a real path), or raise."""
    name = member.name.lstrip("/" + os.sep)
    if os.path.isabs(name):
        raise UnsafeMember(f"{member.name!r} is an absolute path")
    target = os.path.realpath(os.path.join(dest, name))
    if os.path.commonpath([target, dest]) != dest:
        raise UnsafeMember(f"{member.name!r} would be extracted outside the destination")
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        raise UnsafeMember(f"{member.name!r} is a special file (device or fifo)")
    if member.issym() or member.islnk():
        if os.path.isabs(member.linkname):
            raise UnsafeMember(f"{member.name!r} is a link to an absolute path ({member.linkname!r})")
        # A symlink's target is relative to its directory; a hard link's to the archive's root.
        base = os.path.join(dest, os.path.dirname(name)) if member.issym() else dest
        linked = os.path.realpath(os.path.join(base, member.linkname))
        if os.path.commonpath([linked, dest]) != dest:
            raise UnsafeMember(f"{member.name!r} links outside the destination ({member.linkname!r})")
    safe = copy.copy(member)
    safe.name = name
    mode = member.mode & 0o755  # no setuid/setgid/sticky, no group/other write
    if member.isreg() or member.islnk():
        if not mode & 0o100:
            mode &= ~0o111  # executable only if the owner may execute it
        mode |= 0o600
    elif member.isdir():
        mode = 0o755  # tarfile's filter leaves directories' modes alone; 3.11.2 needs one
    safe.mode = mode
    # Owners from the archive are never applied (tarfile chowns only as root, to these).
    safe.uid, safe.gid, safe.uname, safe.gname = os.getuid(), os.getgid(), "", ""
    return safe

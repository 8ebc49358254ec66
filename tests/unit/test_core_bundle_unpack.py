"""Unpacking a bundle is as safe on Pythons without tarfile's "data" filter (< 3.11.4) as with it."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from farm.bundle import extract_bundle, make_bundle, unpack_safely

HAS_FILTER = hasattr(tarfile, "data_filter")
#: Both ways of unpacking: tarfile's own filter (3.11.4+) and farm's checks (any Python).
PATHS = [
    pytest.param(True, id="tarfile-filter",
                 marks=pytest.mark.skipif(not HAS_FILTER, reason="this Python's tarfile has no filter")),
    pytest.param(False, id="farm-checks"),
]


def archive(*members: tuple[tarfile.TarInfo, bytes | None]) -> tarfile.TarFile:
    """An open tar (read mode) holding the given members, as a hostile bundle would."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for info, content in members:
            if content is not None:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
            else:
                tar.addfile(info)
    raw.seek(0)
    return tarfile.open(fileobj=raw, mode="r")


def file(name: str, content: bytes = b"pwned", mode: int = 0o644, uid: int = 0) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode, info.uid = mode, uid
    return info, content


def link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def special(name: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.devmajor, info.devminor = 1, 3  # /dev/null's numbers
    return info, None


HOSTILE = {
    "dotdot": [file("../evil.py")],
    "nested-dotdot": [file("sub/../../evil.py")],
    "symlink-out": [link("link", "../")],
    "absolute-symlink": [link("link", "/etc")],
    # Each link alone points inside; the second resolves through the first to the parent.
    "symlink-through-symlink": [link("a", "."), link("a/b", "..")],
    "write-through-symlink": [link("a", "."), link("a/b", ".."), file("a/b/evil.py")],
    "hardlink-out": [link("hard", "../evil.py", tarfile.LNKTYPE)],
    "absolute-hardlink": [link("hard", "/etc/passwd", tarfile.LNKTYPE)],
    "char-device": [special("null", tarfile.CHRTYPE)],
    "block-device": [special("disk", tarfile.BLKTYPE)],
    "fifo": [special("pipe", tarfile.FIFOTYPE)],
}


@pytest.mark.parametrize("native", PATHS)
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_unpack_refuses_what_the_data_filter_refuses(tmp_path: Path, native: bool, case: str) -> None:
    dest = tmp_path / "box" / "dest"
    dest.mkdir(parents=True)
    with archive(*HOSTILE[case]) as tar, pytest.raises(tarfile.TarError):
        unpack_safely(tar, dest, native=native)
    assert not (tmp_path / "box" / "evil.py").exists() and not (tmp_path / "evil.py").exists()
    for name in ("link", "hard", "null", "disk", "pipe"):
        assert not (dest / name).exists() and not (dest / name).is_symlink()
    assert not (dest / "a" / "b").is_symlink()


@pytest.mark.parametrize("native", PATHS)
def test_unpack_strips_setuid_and_group_or_other_write_bits(tmp_path: Path, native: bool) -> None:
    with archive(file("suid", mode=0o6755), file("shared", mode=0o666), file("sticky", mode=0o1777)) as tar:
        unpack_safely(tar, tmp_path, native=native)
    assert stat.S_IMODE((tmp_path / "suid").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "sticky").stat().st_mode) == 0o755


@pytest.mark.parametrize("native", PATHS)
def test_unpack_puts_absolute_names_inside_the_target(tmp_path: Path, native: bool) -> None:
    target = tmp_path / "outside" / "evil.py"
    dest = tmp_path / "dest"
    dest.mkdir()
    with archive(file(str(target))) as tar:
        unpack_safely(tar, dest, native=native)
    assert not target.exists()
    assert (dest / str(target).lstrip("/")).read_bytes() == b"pwned"


@pytest.mark.parametrize("native", PATHS)
def test_unpack_never_applies_the_archives_owners(tmp_path: Path, native: bool) -> None:
    with archive(file("owned", uid=4242)) as tar:
        unpack_safely(tar, tmp_path, native=native)
    assert (tmp_path / "owned").stat().st_uid == os.getuid()


@pytest.mark.parametrize("native", PATHS)
def test_unpack_keeps_links_inside_the_project(tmp_path: Path, native: bool) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    with archive(file("pkg/data.txt", b"data"), link("pkg/alias.txt", "data.txt"),
                 link("top.txt", "pkg/data.txt", tarfile.LNKTYPE)) as tar:
        unpack_safely(tar, dest, native=native)
    assert (dest / "pkg" / "alias.txt").read_bytes() == b"data"
    assert os.readlink(dest / "pkg" / "alias.txt") == "data.txt"
    assert (dest / "top.txt").read_bytes() == b"data"


@pytest.mark.parametrize("native", PATHS)
def test_a_project_unpacks_to_the_same_tree_either_way(tmp_path: Path, native: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "p"
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test_a.py").write_text("def test_a():\n    pass\n")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / "alias.py").symlink_to("tests/test_a.py")
    bundle = make_bundle(root, 2**20)
    if not native:  # extract_bundle as it runs on Python 3.11.2
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    extract_bundle(bundle.data, tmp_path / "out")
    assert make_bundle(tmp_path / "out", 2**20).digest == bundle.digest
    assert os.access(tmp_path / "out" / "run.sh", os.X_OK)

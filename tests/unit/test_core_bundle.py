"""Bundles are deterministic, leave out caches and environments, and extract only inside their target."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from farm.bundle import extract_bundle, is_excluded, make_bundle
from farm.errors import BundleError, InfrastructureError, UsageError

BIG = 64 * 1024 * 1024


def write(root: Path, rel: str, text: str = "x = 1\n") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def project(root: Path) -> Path:
    write(root, "pyproject.toml", "[project]\nname = 'p'\n")
    write(root, "src/pkg/__init__.py", "")
    write(root, "src/pkg/mod.py", "def f():\n    return 'ü'\n")
    write(root, "tests/test_a.py", "def test_a():\n    assert True\n")
    write(root, "tests/data/some file [1].txt", "data\n")
    return root


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def tree(root: Path) -> dict[str, bytes | str]:
    """Every entry under root: file contents, symlink targets ('->'), directories ('/')."""
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            out[rel] = "/"
        else:
            out[rel] = path.read_bytes()
    return out


# --- determinism --------------------------------------------------------------------------------


def test_the_same_tree_gives_the_same_digest_and_bytes(tmp_path: Path) -> None:
    a = make_bundle(project(tmp_path / "a"), BIG)
    b = make_bundle(project(tmp_path / "b"), BIG)  # same content, another place, another time
    assert a.digest == b.digest
    assert a.data == b.data
    assert a.files == 5
    assert len(a.digest) == 64 and int(a.digest, 16) >= 0


def test_touching_mtimes_and_group_bits_keeps_the_digest(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    before = make_bundle(root, BIG).digest
    for path in [root, *root.rglob("*")]:
        os.utime(path, (1_000_000, 1_000_000))
    (root / "tests/test_a.py").chmod(0o664)
    assert make_bundle(root, BIG).digest == before


def test_the_same_tree_built_in_another_order_gives_the_same_digest(tmp_path: Path) -> None:
    files = {"b/z.py": "1", "a/y.py": "2", "c.py": "3", "a/x.py": "4"}
    for rel, text in files.items():
        write(tmp_path / "one", rel, text)
    for rel, text in reversed(list(files.items())):
        write(tmp_path / "two", rel, text)
    assert make_bundle(tmp_path / "one", BIG).digest == make_bundle(tmp_path / "two", BIG).digest


@pytest.mark.parametrize(
    "change",
    [
        lambda r: write(r, "src/pkg/mod.py", "def f():\n    return 'u'\n"),
        lambda r: write(r, "tests/test_b.py", ""),
        lambda r: (r / "tests/data/some file [1].txt").unlink(),
        lambda r: (r / "tests/data").mkdir(exist_ok=True) or (r / "empty").mkdir(),
        lambda r: (r / "tests/test_a.py").rename(r / "tests/test_c.py"),
        lambda r: (r / "tests/test_a.py").chmod(0o755),
    ],
    ids=["content", "new-file", "removed-file", "new-empty-dir", "renamed", "made-executable"],
)
def test_any_change_to_the_tree_gives_a_new_digest(tmp_path: Path, change: Callable[[Path], object]) -> None:
    root = project(tmp_path / "p")
    before = make_bundle(root, BIG).digest
    change(root)
    assert make_bundle(root, BIG).digest != before


def test_archive_entries_carry_no_times_or_owners(tmp_path: Path) -> None:
    for info in members(make_bundle(project(tmp_path), BIG).data).values():
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
        assert info.mode in (0o644, 0o755)


# --- exclusions ---------------------------------------------------------------------------------


EXCLUDED = [
    ".git/config", ".hg/store", ".svn/entries", "__pycache__/m.cpython-311.pyc", "tests/__pycache__/t.pyc",
    ".venv/lib/site.py", "venv/bin/python", ".tox/py311/x", ".nox/x", "build/lib/pkg.py", "dist/p-1.tar.gz",
    "src/p.egg-info/PKG-INFO", ".pytest_cache/v/cache", ".mypy_cache/x", ".ruff_cache/x",
    "node_modules/a/i.js", ".eggs/x", ".farm/x", "src/pkg/mod.pyc", "src/pkg/mod.pyo",
]


def test_caches_vcs_data_build_outputs_and_environments_are_left_out(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    for rel in EXCLUDED:
        write(root, rel)
    write(root, "myenv/pyvenv.cfg", "home = /usr/bin\n")  # a virtualenv, whatever its name
    write(root, "myenv/lib/site.py")
    write(root, "nested/deeper/env2/pyvenv.cfg", "")
    names = set(members(make_bundle(root, BIG).data))
    clean = set(members(make_bundle(project(tmp_path / "clean"), BIG).data))
    assert names == clean | {"nested", "nested/deeper"}
    assert not [n for n in names if "myenv" in n or "env2" in n]


def test_excluded_content_does_not_change_the_digest(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    before = make_bundle(root, BIG).digest
    write(root, "tests/__pycache__/test_a.cpython-311.pyc", "changed bytecode")
    write(root, ".pytest_cache/v/cache/lastfailed", "{}")
    assert make_bundle(root, BIG).digest == before


@pytest.mark.parametrize(
    ("rel", "excluded"),
    [
        (".git", True), ("__pycache__", True), (".venv", True), ("p.egg-info", True), (".pytest_cache", True),
        ("src", False), ("tests", False), ("building", False), ("dist_utils", False), ("git", False),
    ],
)
def test_directories_are_excluded_by_name(tmp_path: Path, rel: str, excluded: bool) -> None:
    (tmp_path / rel).mkdir()
    assert is_excluded(tmp_path / rel) is excluded


@pytest.mark.parametrize(("rel", "excluded"), [("m.pyc", True), ("m.pyo", True), ("m.py", False),
                                               ("egg-info.py", False), ("build", False), ("venv", False)])
def test_files_are_excluded_by_suffix_only(tmp_path: Path, rel: str, excluded: bool) -> None:
    (tmp_path / rel).write_text("x")
    assert is_excluded(tmp_path / rel) is excluded


def test_build_outputs_are_excluded_at_the_top_only(tmp_path: Path) -> None:
    for rel in ("build", "dist", "tests/build", "tests/dist"):
        (tmp_path / rel).mkdir(parents=True)
    assert is_excluded(tmp_path / "build", top=True) and is_excluded(tmp_path / "dist", top=True)
    assert not is_excluded(tmp_path / "tests" / "build") and not is_excluded(tmp_path / "tests" / "dist")


def test_is_excluded_finds_a_virtualenv_by_its_pyvenv_cfg(tmp_path: Path) -> None:
    write(tmp_path, "anything/pyvenv.cfg", "")
    write(tmp_path, "plain/pyvenv.txt", "")
    assert is_excluded(tmp_path / "anything")
    assert not is_excluded(tmp_path / "plain")
    assert not is_excluded(tmp_path / "anything" / "pyvenv.cfg"), "the file itself is not a directory"


# --- modes and links ----------------------------------------------------------------------------


def test_the_executable_bit_survives_bundle_and_extract(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    script = write(root, "bin/run.sh", "#!/bin/sh\necho hi\n")
    script.chmod(0o700)
    info = members(make_bundle(root, BIG).data)
    assert info["bin/run.sh"].mode == 0o755
    assert info["tests/test_a.py"].mode == 0o644
    extract_bundle(make_bundle(root, BIG).data, tmp_path / "out")
    assert os.access(tmp_path / "out/bin/run.sh", os.X_OK)
    assert not os.access(tmp_path / "out/tests/test_a.py", os.X_OK)


def test_symlinks_inside_the_project_are_kept_as_links(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    (root / "tests/link.py").symlink_to("test_a.py")
    (root / "srclink").symlink_to("src", target_is_directory=True)
    info = members(make_bundle(root, BIG).data)
    assert info["tests/link.py"].issym() and info["tests/link.py"].linkname == "test_a.py"
    assert info["srclink"].issym() and info["srclink"].linkname == "src"
    assert not [n for n in info if n.startswith("srclink/")], "a linked directory is not walked twice"
    extract_bundle(make_bundle(root, BIG).data, tmp_path / "out")
    assert os.readlink(tmp_path / "out/tests/link.py") == "test_a.py"
    assert (tmp_path / "out/srclink/pkg/mod.py").read_text(encoding="utf-8") == "def f():\n    return 'ü'\n"


def test_a_dangling_symlink_is_kept(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    (root / "dangling").symlink_to("nowhere")
    assert members(make_bundle(root, BIG).data)["dangling"].linkname == "nowhere"


# --- refusals -----------------------------------------------------------------------------------


def test_a_missing_path_is_a_bundle_error(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="no such project directory") as info:
        make_bundle(tmp_path / "absent", BIG)
    assert isinstance(info.value, UsageError)


def test_a_file_path_is_a_bundle_error(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not a directory"):
        make_bundle(write(tmp_path, "file.py"), BIG)


def test_a_project_over_the_size_cap_is_a_bundle_error_saying_what_to_do(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    (root / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024))  # incompressible
    with pytest.raises(BundleError, match="more than 2 MiB.*FARM_MAX_BUNDLE_MB"):
        make_bundle(root, 2 * 1024 * 1024)
    assert make_bundle(root, 4 * 1024 * 1024).files == 6


def test_the_size_cap_applies_to_the_compressed_archive(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    (root / "zeros.bin").write_bytes(bytes(2 * 1024 * 1024))  # compresses to a few KiB
    bundle = make_bundle(root, 1024 * 1024)
    assert len(bundle.data) < 1024 * 1024


def test_the_size_cap_message_is_clear_for_caps_under_a_mib(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    (root / "blob.bin").write_bytes(os.urandom(64 * 1024))
    with pytest.raises(BundleError) as info:
        make_bundle(root, 16 * 1024)
    assert "0 MiB" not in str(info.value)


# --- extraction ---------------------------------------------------------------------------------


def test_extract_gives_back_the_same_tree(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    (root / "tests/data/empty_dir").mkdir()
    write(root, "tests/__pycache__/skip.pyc")
    extract_bundle(make_bundle(root, BIG).data, tmp_path / "out" / "deeper")
    expected = {k: v for k, v in tree(root).items() if "__pycache__" not in k}
    assert tree(tmp_path / "out" / "deeper") == expected


def test_bundling_an_extracted_bundle_gives_the_same_digest(tmp_path: Path) -> None:
    first = make_bundle(project(tmp_path / "p"), BIG)
    extract_bundle(first.data, tmp_path / "out")
    assert make_bundle(tmp_path / "out", BIG).digest == first.digest


Member = tuple[str, bytes | None, str | None]  # name, file content, link target


def hand_made_bundle(*entries: Member) -> bytes:
    """A tar.gz with the given (name, file content or None, link target or None) members."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, content, link in entries:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = link
                tar.addfile(info)
            else:
                assert content is not None
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue())


@pytest.mark.parametrize(
    "evil",
    [
        ("../evil.py", b"pwned", None),
        ("sub/../../evil.py", b"pwned", None),
        ("link", None, "../"),
        ("abs-link", None, "/etc"),
    ],
    ids=["dotdot", "nested-dotdot", "link-out", "absolute-link"],
)
def test_extract_refuses_members_that_land_outside_the_target(tmp_path: Path, evil: Member) -> None:
    dest = tmp_path / "box" / "dest"
    data = hand_made_bundle(evil)
    with pytest.raises(Exception) as info:
        extract_bundle(data, dest)
    assert isinstance(info.value, InfrastructureError)
    assert "bundle cannot be unpacked" in str(info.value)
    assert not (tmp_path / "box" / "evil.py").exists()
    assert not (tmp_path / "evil.py").exists()
    assert not (dest / "link").is_symlink() and not (dest / "abs-link").is_symlink()


def test_extract_puts_an_absolute_member_inside_the_target(tmp_path: Path) -> None:
    target = tmp_path / "outside" / "evil.py"
    dest = tmp_path / "dest"
    extract_bundle(hand_made_bundle((str(target), b"pwned", None)), dest)
    assert not target.exists()
    assert (dest / str(target).lstrip("/")).read_bytes() == b"pwned"


def test_extract_refuses_writing_through_a_link_that_points_outside(tmp_path: Path) -> None:
    dest = tmp_path / "box" / "dest"
    data = hand_made_bundle(("out", None, ".."), ("out/evil.py", b"pwned", None))
    with pytest.raises(InfrastructureError, match="bundle cannot be unpacked"):
        extract_bundle(data, dest)
    assert not (tmp_path / "box" / "evil.py").exists()


def test_extract_refuses_data_that_is_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(InfrastructureError, match="bundle cannot be unpacked"):
        extract_bundle(b"definitely not gzip", tmp_path / "out")


@pytest.mark.parametrize("target", ["/etc", "../shared"], ids=["absolute", "sibling"])
def test_a_link_out_of_the_project_is_refused_at_submit_not_on_the_worker(tmp_path: Path, target: str) -> None:
    # A worker would refuse to unpack it (a tarfile FilterError, later, far from the user): the
    # submitter says so at once, in one line naming the link.
    root = project(tmp_path / "p")
    (root / "data").symlink_to(target)
    with pytest.raises(BundleError, match=r"symlink .*data points out of the project"):
        make_bundle(root, BIG)


def test_a_link_inside_the_project_is_bundled_and_extracted_as_a_link(tmp_path: Path) -> None:
    root = project(tmp_path / "p")
    (root / "tests" / "data-link").symlink_to("data")
    extract_bundle(make_bundle(root, BIG).data, tmp_path / "out")
    assert os.readlink(tmp_path / "out" / "tests" / "data-link") == "data"
    assert (tmp_path / "out" / "tests" / "data-link" / "some file [1].txt").read_text() == "data\n"

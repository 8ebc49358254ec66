"""The unpacked-size cap of bundles: at bundling, and again before a worker unpacks anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from farm.bundle import check_unpacked_size, extract_bundle, make_bundle
from farm.config import Settings
from farm.errors import BundleError, InfrastructureError

MiB = 1024 * 1024
BIG = 64 * MiB


def _project(root: Path) -> Path:
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test_a.py").write_text("def test_a():\n    pass\n")
    return root


def test_the_default_cap_is_one_gib_and_the_environment_sets_it() -> None:
    assert Settings().max_unpacked_bytes == 1024 * MiB
    assert Settings.from_env({"FARM_MAX_UNPACKED_MB": "10"}).max_unpacked_bytes == 10 * MiB


def test_a_sparse_file_counts_at_its_apparent_size_and_is_refused_before_it_is_read(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    with open(root / "sparse.img", "wb") as fh:
        fh.truncate(2 * 1024 * MiB)  # 2 GiB of holes: no disk, compresses to about 2 MiB
    with pytest.raises(BundleError, match=r"unpacks to more than 1 GiB \(sparse.img alone is 2 GiB\).*"
                                          "FARM_MAX_UNPACKED_MB"):
        make_bundle(root, BIG)


def test_a_project_just_under_the_cap_is_bundled_and_unpacked(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    (root / "data.bin").write_bytes(bytes(900 * 1024))
    bundle = make_bundle(root, BIG, max_unpacked_bytes=MiB)
    extract_bundle(bundle.data, tmp_path / "out", MiB)
    assert (tmp_path / "out" / "data.bin").stat().st_size == 900 * 1024


def test_a_worker_refuses_a_bundle_over_its_cap_before_writing_anything(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    (root / "zeros.bin").write_bytes(bytes(4 * MiB))
    bundle = make_bundle(root, BIG, max_unpacked_bytes=8 * MiB)  # a submitter with a larger cap
    dest = tmp_path / "out"
    with pytest.raises(InfrastructureError, match=r"unpacks to more than 1 MiB.*FARM_MAX_UNPACKED_MB"):
        extract_bundle(bundle.data, dest, MiB)
    assert not dest.exists(), "something was unpacked"


def test_the_bytes_are_counted_not_only_the_sizes_the_headers_announce(tmp_path: Path) -> None:
    """3,000 empty files: their headers announce 0 bytes, the archive is 1.5 MiB of headers."""
    root = _project(tmp_path / "p")
    for i in range(3000):
        (root / f"empty_{i:04d}.txt").write_bytes(b"")
    with pytest.raises(BundleError, match="unpacks to more than 1 MiB"):
        make_bundle(root, BIG, max_unpacked_bytes=MiB)
    bundle = make_bundle(root, BIG, max_unpacked_bytes=4 * MiB)
    with pytest.raises(InfrastructureError, match="unpacks to more than 1 MiB"):
        check_unpacked_size(bundle.data, MiB)
    check_unpacked_size(bundle.data, 4 * MiB)


def test_a_bundle_that_is_not_an_archive_is_still_told_as_such(tmp_path: Path) -> None:
    with pytest.raises(InfrastructureError, match="cannot be unpacked"):
        check_unpacked_size(os.urandom(1000), MiB)

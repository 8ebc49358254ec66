"""Where the embedded farm keeps its unpacked projects (farm.cluster.kept_trees_dir) and what it
does when that place cannot be used (usable_kept_trees): an absolute path, and a warning instead
of a failed run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from farm.cluster import kept_trees_dir, usable_kept_trees


def test_a_relative_farm_trees_dir_is_made_absolute_against_the_callers_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    got = kept_trees_dir({"FARM_TREES_DIR": "cache/trees"})
    assert got == tmp_path / "cache" / "trees"
    assert got.is_absolute()


def test_without_farm_trees_dir_it_is_in_the_users_cache(tmp_path: Path) -> None:
    assert kept_trees_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "farm" / "embedded-trees"


def test_a_missing_directory_is_made(tmp_path: Path) -> None:
    said: list[str] = []
    target = tmp_path / "a" / "b"
    assert usable_kept_trees(target, said.append) == target
    assert target.is_dir()
    assert said == []


def test_a_path_that_is_a_file_gives_one_warning_and_no_kept_trees(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    said: list[str] = []
    assert usable_kept_trees(tmp_path / "f", said.append) is None
    assert len(said) == 1
    assert str(tmp_path / "f") in said[0]
    assert "every run unpacks afresh" in said[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_directory_that_cannot_be_written_gives_a_warning(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    said: list[str] = []
    try:
        assert usable_kept_trees(ro, said.append) is None
        assert len(said) == 1
    finally:
        ro.chmod(0o700)

"""The embedded farm's saved history: file format, bounds, a corrupt file ignored with one warning."""

from __future__ import annotations

import os
from pathlib import Path

import msgpack
import pytest

from farm.history_cache import CachedFile, HistoryCache, evictions, file_name, history_dir
from farm.saved_history import HistoryFormatError, ProjectHistory, SavedKey, decode, encode, trimmed


def _history(project: str = "demo", n: int = 3) -> ProjectHistory:
    durations = {f"tests/test_x.py::test_{i}".encode(): repr(0.1 * i).encode() for i in range(n)}
    durations[b"\0assignment-overhead"] = b"0.4"
    return ProjectHistory(project, 1000.0, (
        SavedKey("", "hash", durations, expires_at=2000.0),
        SavedKey(":runs", "list", [b"\x81\xa1a\x01", b"r2"]),
        SavedKey(":flaky", "zset", [(b"t1", 1.5), (b"t2", 2.5)]),
        SavedKey(":tags", "set", [b"x"]),
        SavedKey(":last", "string", b"\xff\x00binary"),
    ))


def test_encode_decode_round_trips_every_kind_binary_safe() -> None:
    h = _history()
    assert decode(encode(h)) == h
    assert h.durations() == 3  # the overhead entry is not a test


@pytest.mark.parametrize("data", [
    b"", b"garbage", b"\x00\x01\x02", msgpack.packb([1, 2, 3]), msgpack.packb({"format": "other"}),
    msgpack.packb({"format": "farm-history", "version": 99, "project": "p", "saved_at": 0, "keys": []}),
    msgpack.packb({"format": "farm-history", "version": 1, "project": "p", "saved_at": 0,
                   "keys": [{"suffix": "", "kind": "hash", "value": "not pairs"}]}),
    msgpack.packb({"format": "farm-history", "version": 1, "project": "p", "saved_at": 0,
                   "keys": [{"suffix": "", "kind": "stream", "value": []}]}),
])
def test_anything_but_a_farm_history_file_is_a_format_error(data: bytes) -> None:
    with pytest.raises(HistoryFormatError):
        decode(data)


def test_a_corrupt_file_is_ignored_with_one_warning_and_replaced_by_the_next_save(tmp_path: Path) -> None:
    warnings: list[str] = []
    cache = HistoryCache(tmp_path, warn=warnings.append)
    cache.path_of("demo").write_bytes(b"\x93not a history")
    assert cache.load("demo") is None
    assert len(warnings) == 1 and "ignoring the history file" in warnings[0] and "demo-" in warnings[0]
    cache.save(_history())
    assert cache.load("demo") == _history() and len(warnings) == 1


def test_an_unreadable_file_is_a_warning_too(tmp_path: Path) -> None:
    warnings: list[str] = []
    cache = HistoryCache(tmp_path, warn=warnings.append)
    cache.path_of("demo").mkdir(parents=True)  # reading a directory fails with an OSError
    assert cache.load("demo") is None
    assert len(warnings) == 1 and "cannot read" in warnings[0]


def test_a_save_that_cannot_write_warns_and_leaves_no_temp_file(tmp_path: Path) -> None:
    warnings: list[str] = []
    blocker = tmp_path / "file"
    blocker.write_text("")
    HistoryCache(blocker / "history", warn=warnings.append).save(_history())
    assert len(warnings) == 1 and "cannot save" in warnings[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_save_is_atomic_replace_and_leaves_only_the_file(tmp_path: Path) -> None:
    cache = HistoryCache(tmp_path / "h", warn=pytest.fail)
    cache.save(_history(n=1))
    cache.save(_history(n=5))
    assert [p.name for p in (tmp_path / "h").iterdir()] == [file_name("demo")]
    loaded = cache.load("demo")
    assert loaded is not None and loaded.durations() == 5


def test_file_names_are_readable_and_distinct_for_unsafe_names() -> None:
    assert file_name("demo").startswith("demo-") and file_name("demo").endswith(".msgpack")
    assert file_name("a/b") != file_name("a_b")
    assert "/" not in file_name("../../etc/passwd") and not file_name("..").startswith(".")


def test_a_file_of_another_project_is_not_taken(tmp_path: Path) -> None:
    warnings: list[str] = []
    cache = HistoryCache(tmp_path, warn=warnings.append)
    cache.path_of("mine").write_bytes(encode(_history("theirs")))
    assert cache.load("mine") is None and len(warnings) == 1


def test_eviction_keeps_the_most_recently_used_within_both_bounds() -> None:
    files = [CachedFile(Path(f"p{i}"), 10, used_at=float(i)) for i in range(6)]
    # At most 3 projects: the three oldest go, least recent first.
    assert evictions(files, keep=Path("p5"), max_projects=3, max_bytes=1000) == [Path("p2"), Path("p1"), Path("p0")]
    # 25 bytes: two files fit.
    assert evictions(files, keep=Path("p5"), max_projects=10, max_bytes=25) == [
        Path("p3"), Path("p2"), Path("p1"), Path("p0")]
    # The one just saved stays even when it is the oldest and alone over the budget.
    big = [CachedFile(Path("new"), 100, used_at=0.0), CachedFile(Path("old"), 10, used_at=5.0)]
    assert evictions(big, keep=Path("new"), max_projects=10, max_bytes=50) == [Path("old")]


def test_saving_past_the_project_bound_removes_the_least_recently_used(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import farm.history_cache as hc

    monkeypatch.setattr(hc, "MAX_PROJECTS", 2)
    cache = HistoryCache(tmp_path, warn=pytest.fail)
    for i, name in enumerate(["a", "b"]):
        cache.save(_history(name))
        os.utime(cache.path_of(name), (1000.0 + i, 1000.0 + i))
    assert cache.load("a") is not None  # a is used again: b is now the least recently used
    cache.save(_history("c"))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([file_name("a"), file_name("c")])


def test_trimming_keeps_what_this_run_wrote_first() -> None:
    before = ProjectHistory("p", 0.0, (SavedKey("", "hash", {b"old1": b"1", b"old2": b"2", b"same": b"3"}),))
    after = ProjectHistory("p", 1.0, (
        SavedKey("", "hash", {b"old1": b"1", b"old2": b"9", b"same": b"3", b"new": b"4"}),
        SavedKey(":runs", "list", [b"r1", b"r2", b"r3"]),
        SavedKey(":z", "zset", [(b"x", 3.0), (b"y", 1.0), (b"w", 2.0)]),
    ))
    out = trimmed(after, before, max_entries=2)
    assert out.keys[0].value == {b"old2": b"9", b"new": b"4"}  # changed and new beat unchanged
    assert out.keys[1].value == [b"r2", b"r3"]  # a list keeps its newest (last) items
    assert sorted(out.keys[2].value) == [(b"w", 2.0), (b"x", 3.0)]  # a zset its highest scores
    assert trimmed(after, before, max_entries=10) == after


def test_clear_removes_one_project_or_all(tmp_path: Path) -> None:
    cache = HistoryCache(tmp_path, warn=pytest.fail)
    for name in ("a", "b", "c"):
        cache.save(_history(name))
    assert cache.clear("a") == [cache.path_of("a")]
    assert cache.clear("a") == []
    assert sorted(cache.clear()) == sorted([cache.path_of("b"), cache.path_of("c")])
    assert list(tmp_path.iterdir()) == []


def test_history_dir_follows_farm_history_dir_then_xdg_then_home() -> None:
    assert history_dir({"FARM_HISTORY_DIR": "/x/h", "XDG_CACHE_HOME": "/c"}) == Path("/x/h")
    assert history_dir({"XDG_CACHE_HOME": "/c"}) == Path("/c/farm/history")
    assert history_dir({"XDG_CACHE_HOME": "relative"}) == Path.home() / ".cache" / "farm" / "history"
    assert history_dir({}) == Path.home() / ".cache" / "farm" / "history"


def test_the_embedded_collection_environment_ignores_what_differs_per_terminal() -> None:
    """A new terminal, ssh login or editor window must not miss the embedded collection cache;
    a variable a collection could read must."""
    from farm.history_cache import environment_digest

    base = {"PATH": "/usr/bin", "HOME": "/home/u", "MODE": "fast"}
    other_terminal = dict(base, SSH_CONNECTION="::1 5 ::1 22", TMUX_PANE="%3", VSCODE_PID="42", SHLVL="3")
    assert environment_digest(other_terminal) == environment_digest(base)
    assert environment_digest(dict(base, MODE="slow")) != environment_digest(base)

"""coordinator.history_memo: a suite's durations read once, dropped when it finishes, bounded."""

from __future__ import annotations

import pytest

from coordinator.history_memo import DurationsMemo


def _memo(keep: int = 8) -> tuple[DurationsMemo, list[str]]:
    reads: list[str] = []

    def read(project: str) -> dict[str, float]:
        reads.append(project)
        return {f"{project}::t": float(len(reads))}

    return DurationsMemo(read, keep=keep), reads


def test_a_suite_reads_its_projects_history_once() -> None:
    memo, reads = _memo()
    first = memo.get("s1", "proj")
    assert memo.get("s1", "proj") is first and reads == ["proj"]
    assert memo.get("s2", "proj") == {"proj::t": 2.0}  # another suite of the project reads it as it is now
    assert reads == ["proj", "proj"]


def test_what_it_hands_out_cannot_be_changed() -> None:
    memo, _ = _memo()
    with pytest.raises(TypeError):
        memo.get("s1", "proj")["proj::t"] = 0.0  # type: ignore[index]


def test_a_finished_suite_is_forgotten() -> None:
    memo, reads = _memo()
    memo.get("s1", "proj")
    memo.forget("s1")
    memo.forget("never")  # one it never held: nothing
    assert len(memo) == 0
    assert memo.get("s1", "proj") == {"proj::t": 2.0} and len(reads) == 2


def test_it_holds_at_most_keep_suites_the_least_recently_used_going_first() -> None:
    memo, reads = _memo(keep=2)
    memo.get("s1", "p")
    memo.get("s2", "p")
    memo.get("s1", "p")  # used again: s2 is now the oldest
    memo.get("s3", "p")
    assert len(memo) == 2 and len(reads) == 3
    memo.get("s1", "p")
    assert len(reads) == 3  # kept
    memo.get("s2", "p")
    assert len(reads) == 4  # dropped, read again

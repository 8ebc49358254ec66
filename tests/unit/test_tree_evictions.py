"""Which kept trees a bounded trees directory evicts (workers.bundles.evictions, pure)."""

from __future__ import annotations

from workers.bundles import IN_USE_S, KeptTree, TreeBounds, evictions

NOW = 10_000.0
OLD = NOW - IN_USE_S - 1


def test_within_the_bounds_nothing_goes() -> None:
    trees = [KeptTree("a", OLD, 10), KeptTree("b", OLD - 5, 10)]
    assert evictions(trees, TreeBounds(trees=2, bytes=20), NOW) == []


def test_beyond_the_count_the_least_recently_used_go_first() -> None:
    trees = [KeptTree("new", OLD, 1), KeptTree("oldest", OLD - 20, 1), KeptTree("older", OLD - 10, 1)]
    assert evictions(trees, TreeBounds(trees=1, bytes=100), NOW) == ["oldest", "older"]


def test_beyond_the_bytes_as_many_go_as_needed() -> None:
    trees = [KeptTree("a", OLD, 50), KeptTree("b", OLD - 1, 30), KeptTree("c", OLD - 2, 30)]
    assert evictions(trees, TreeBounds(trees=10, bytes=80), NOW) == ["c"]


def test_the_tree_just_made_and_trees_in_use_stay_even_over_the_bounds() -> None:
    trees = [KeptTree("busy", NOW - 1, 1), KeptTree("made", OLD - 50, 1), KeptTree("idle", OLD - 10, 1)]
    assert evictions(trees, TreeBounds(trees=1, bytes=100), NOW, keep="made") == ["idle"]

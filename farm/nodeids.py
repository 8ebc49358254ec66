"""pytest node ids: a test's function and parameter parts, and its position among its siblings (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat


def split_params(nodeid: str) -> tuple[str, str | None]:
    """(function id, parameter id) of a node id: `t.py::C::f[1-a]` -> (`t.py::C::f`, `1-a`).

    The path ends at the first `::` (a path may hold `[`); the parameter id is None when the
    test has none. workers/pytest_plugin/renamed_params.py has the same rule (it cannot import farm)."""
    path, sep, tail = nodeid.partition("::")
    names, bracket, params = tail.partition("[")
    if not sep or not bracket:
        return nodeid, None
    return f"{path}::{names}", params[:-1] if params.endswith("]") else params


def function_ids(order: Sequence[str]) -> list[str | None]:
    """`split_params(t)[0]` of each parametrized node id, None for the others; in C-level passes
    (a collection may hold a million ids): the first `[` after the first `::` starts the parameters."""
    seps = list(map(str.find, order, repeat("::")))
    brackets = map(str.find, order, repeat("["), seps)
    return [t[:b] if c >= 0 and b >= 0 else None for t, c, b in zip(order, seps, brackets, strict=True)]


def param_positions(order: Sequence[str]) -> dict[str, tuple[int, int]]:
    """For each parametrized test of a collection, in collection order: (its index among the
    parametrized items of its function, how many there are)."""
    by_function: dict[str, list[str]] = {}
    for test_id, function in zip(order, function_ids(order), strict=True):
        if function is not None:
            by_function.setdefault(function, []).append(test_id)
    positions: dict[str, tuple[int, int]] = {}
    for ids in by_function.values():
        positions.update(zip(ids, zip(range(len(ids)), repeat(len(ids))), strict=True))
    return positions

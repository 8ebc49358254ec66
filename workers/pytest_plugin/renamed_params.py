"""Renamed parametrized tests: which collected item runs in place of a planned id that was not collected."""

from __future__ import annotations


def split_params(nodeid: str) -> tuple[str, str | None]:
    """(function id, parameter id) of a node id: `t.py::C::f[1-a]` -> (`t.py::C::f`, `1-a`).

    The path ends at the first `::` (a path may hold `[`); None when it has no parameters. The
    same rule as farm.nodeids.split_params (this module cannot import farm)."""
    path, sep, tail = nodeid.partition("::")
    names, bracket, params = tail.partition("[")
    if not sep or not bracket:
        return nodeid, None
    return f"{path}::{names}", params[:-1] if params.endswith("]") else params


def match_renamed(missing: list[str], positions: dict[str, tuple[int, int]], collected: list[str],
                  wanted: set[str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Match planned ids that were not collected to what was: ({collected id: planned id},
    {planned id without a sound match: the ids collected for its function, or its module}).

    A match is sound when the planned id has parameters, the runner collected its function with
    as many parametrized items as the plan had, the planned ids of that function that it did
    collect sit where the plan had them, and the item at the planned position is not itself a
    planned id of this run. Pure, for the tests."""
    by_function: dict[str, list[str]] = {}
    for test_id in collected:
        function, params = split_params(test_id)
        if params is not None:
            by_function.setdefault(function, []).append(test_id)
    moved = set()  # functions whose items moved: a planned id collected at another position
    for test_id in wanted.intersection(collected):
        function, params = split_params(test_id)
        if params is not None and test_id in positions:
            items = by_function[function]
            index, count = positions[test_id]
            if count != len(items) or items[index] != test_id:
                moved.add(function)
    ran_as: dict[str, str] = {}
    unmatched: dict[str, list[str]] = {}
    for test_id in missing:
        function, params = split_params(test_id)
        items = by_function.get(function, [])
        index, count = positions.get(test_id, (-1, 0))
        if params is not None and function not in moved and 0 <= index < count == len(items):
            candidate = items[index]
            if candidate not in wanted and candidate not in ran_as:
                ran_as[candidate] = test_id
                continue
        module = function.split("::", 1)[0]
        unmatched[test_id] = items or [t for t in collected if t.split("::", 1)[0] == module]
    return ran_as, unmatched

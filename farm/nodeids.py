"""pytest node ids: a test's function and parameter parts, and its position among its siblings (pure)."""

from __future__ import annotations

from collections.abc import Iterable


def split_params(nodeid: str) -> tuple[str, str | None]:
    """(function id, parameter id) of a node id: `t.py::C::f[1-a]` -> (`t.py::C::f`, `1-a`).

    The path ends at the first `::` (a path may hold `[`); the parameter id is None when the
    test has none. workers/pytest_plugin/renamed_params.py has the same rule (it cannot import farm)."""
    path, sep, tail = nodeid.partition("::")
    names, bracket, params = tail.partition("[")
    if not sep or not bracket:
        return nodeid, None
    return f"{path}::{names}", params[:-1] if params.endswith("]") else params


def param_positions(order: Iterable[str]) -> dict[str, tuple[int, int]]:
    """For each parametrized test of a collection, in collection order: (its index among the
    parametrized items of its function, how many there are)."""
    by_function: dict[str, list[str]] = {}
    for test_id in order:
        function, params = split_params(test_id)
        if params is not None:
            by_function.setdefault(function, []).append(test_id)
    return {t: (i, len(ids)) for ids in by_function.values() for i, t in enumerate(ids)}

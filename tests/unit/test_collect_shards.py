"""A collection split by file, put back together (workers/collect_shards.py): one collection's order, or None."""

from __future__ import annotations

from typing import Any

from workers.collect_shards import merge

FILES = ["a/test_one.py", "a/test_two.py", "b/test_three.py"]


def session(deselected: int = 0) -> dict[str, Any]:
    return {"k": "session", "id": "", "maxfail": 0, "deselected": deselected, "pytest": "9.2.0"}


def item(test_id: str, f: int) -> dict[str, Any]:
    return {"k": "item", "id": test_id, "f": f}


def files(**extra: Any) -> dict[str, Any]:
    return {"k": "files", "id": "", "files": list(FILES), "modules": {}, "plugins": ["_pytest.main"], **extra}


def shards() -> list[list[dict[str, Any]]]:
    return [
        [item("a/test_one.py::t[1]", 0), item("a/test_one.py::t[0]", 0), item("b/test_three.py::t", 2),
         files(), session(1)],
        [item("a/test_two.py::t", 1), files(), session(2)],
    ]


def test_items_come_back_in_the_walk_order_of_their_files_each_file_in_its_own_order() -> None:
    merged = merge(shards(), [0, 0])
    assert merged is not None
    assert [o["id"] for o in merged.lines if o["k"] == "item"] == [
        "a/test_one.py::t[1]", "a/test_one.py::t[0]", "a/test_two.py::t", "b/test_three.py::t"]
    assert merged.exit_code == 0
    (info,) = [o for o in merged.lines if o["k"] == "session"]
    assert info["deselected"] == 3  # every shard's deselected items
    assert not [o for o in merged.lines if o["k"] == "files"]


def test_a_directory_record_every_shard_reports_is_kept_once_a_module_skip_once() -> None:
    parts = shards()
    skip = {"k": "collect", "id": "b", "cat": "skipped", "msg": "no b here", "longrepr": ""}
    module = {"k": "collect", "id": "a/test_two.py", "cat": "skipped", "msg": "not today", "longrepr": ""}
    parts[0].insert(0, dict(skip))
    parts[1][:0] = [dict(skip), module]
    merged = merge(parts, [0, 0])
    assert merged is not None
    assert [o["id"] for o in merged.lines if o["k"] == "collect"] == ["b", "a/test_two.py"]


def test_no_items_in_any_shard_is_pytest_s_no_tests_collected_and_some_is_zero() -> None:
    empty = [[files(), session()], [files(), session()]]
    merged = merge(empty, [5, 5])
    assert merged is not None and merged.exit_code == 5
    one = [[item("a/test_one.py::t", 0), files(), session()], [files(), session()]]
    merged = merge(one, [0, 5])
    assert merged is not None and merged.exit_code == 0


def test_shards_that_do_not_add_up_to_one_collection_are_collected_again() -> None:
    # A failed shard (collection errors, an internal error): collected again in one runner, so the
    # report is what one collection gives.
    assert merge(shards(), [0, 2]) is None
    # The shards met other files (a module changed the walk by its import).
    other = shards()
    other[1][1] = {"k": "files", "id": "", "files": FILES[:2]}
    assert merge(other, [0, 0]) is None
    # A conftest below the rootdir brought a hook that sees every item.
    late = shards()
    late[1][1] = files(unsafe="pytest_collection_modifyitems of conftest")
    assert merge(late, [0, 0]) is None
    # An item from no file (a plugin's collector), or from another shard's file.
    stray = shards()
    stray[1][0] = item("x::y", -1)
    assert merge(stray, [0, 0]) is None
    crossed = shards()
    crossed[1][0] = item("a/test_one.py::t[2]", 0)
    assert merge(crossed, [0, 0]) is None
    # A shard that never said what it walked (killed, an old plugin).
    silent = shards()
    del silent[1][1]
    assert merge(silent, [0, 0]) is None


def test_unsafe_before_the_walk_takes_shard_zero_s_whole_collection_as_it_is() -> None:
    whole = [item("a/test_one.py::t", 0), item("a/test_two.py::t", 1),
             {"k": "files", "id": "", "files": FILES, "whole": "pytest_collection_modifyitems of conftest"},
             session()]
    out = [{"k": "files", "id": "", "files": [], "stepped_out": "pytest_collection_modifyitems of conftest"},
           session()]
    merged = merge([whole, out], [0, 5])
    assert merged is not None and merged.whole
    assert [o["id"] for o in merged.lines if o["k"] == "item"] == ["a/test_one.py::t", "a/test_two.py::t"]
    # Even a failed whole collection: it is the one collection, as without the split.
    failed = merge([whole, out], [2, 5])
    assert failed is not None and failed.exit_code == 2
    # A shard that did not step out while shard 0 took it all: collected again.
    assert merge([whole, shards()[1]], [0, 0]) is None


def test_one_module_name_imported_from_two_files_in_two_shards_is_collected_again() -> None:
    # plain/test_c.py and other/test_c.py without __init__.py: one process imports the second as
    # test_c again and reports an "import file mismatch"; split, each shard imports its own alone.
    clash = shards()
    clash[0][3] = files(modules={"test_c": "plain/test_c.py"})
    clash[1][1] = files(modules={"test_c": "other/test_c.py"})
    assert merge(clash, [0, 0]) is None
    same = shards()
    same[0][3] = files(modules={"test_c": "plain/test_c.py", "a.test_one": "a/test_one.py"})
    same[1][1] = files(modules={"test_c": "plain/test_c.py"})
    assert merge(same, [0, 0]) is not None
    silent = shards()
    del silent[1][1]["modules"]
    assert merge(silent, [0, 0]) is None


def test_shards_that_ended_with_other_plugins_are_collected_again() -> None:
    # A test module's pytest_plugins registered a plugin in one shard: in one process it would act
    # on the files collected after that module (its pytest_generate_tests, say).
    more = shards()
    more[1][1] = files(plugins=["_pytest.main", "helper_plugin"])
    assert merge(more, [0, 0]) is None
    silent = shards()
    del silent[0][3]["plugins"]
    assert merge(silent, [0, 0]) is None

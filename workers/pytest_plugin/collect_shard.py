"""Collect mode, one shard of K: walk the whole tree, collect only every K-th file (docs/how-it-works.md,
"pcollect (round 4)").

FARM_COLLECT_SHARD="i/K": every collector runs the same walk, so each meets the same files in the same
order; file number n (counted as the walk meets them) is collected by shard n % K and left empty (not
imported) by the others. Each shard says which files it met ({"k": "files", "files": [...]}) and the
file number of each item it collected ("f" on its item lines), so the worker can check that every
shard met the same files and put the items back in one collection's order.

Splitting is unsafe when the args name node ids (`::`) or packages (--pyargs), or when a plugin or
conftest outside the known per-item ones implements `pytest_collection_modifyitems` (it could reorder or
deselect across files) or `pytest_collection` / `pytest_make_collect_report`. Seen before the walk,
shard 0 collects everything alone and the others step out at once ("whole" / "stepped_out" in the
files line); seen only after it (a conftest below the rootdir), the files line says "unsafe" and the
worker collects again in one process. So it does for an item parametrized by a session- or
package-scoped parameter (`_pytest.fixtures` groups such items across files). The files line also
names the test modules the shard imported ("modules": module name -> file) and every plugin module
registered at its end ("plugins"), so the worker can see a name two shards imported from different
files (one process reports "import file mismatch") or a plugin a test module registered
(`pytest_plugins`, which changes the collection of the files after it in one process).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

#: Plugins whose pytest_collection_modifyitems works per item (marks, -k/-m, --deselect, fixture order).
PER_ITEM = frozenset({"_pytest.mark", "_pytest.main", "_pytest.fixtures", "_hypothesis_pytestplugin",
                      "farm_runner_plugin.collect_shard"})


def read_shard(text: str) -> tuple[int, int]:
    """FARM_COLLECT_SHARD ("i/K") as (i, K); (0, 1) when unset or malformed."""
    index, _, count = text.partition("/")
    try:
        i, k = int(index), int(count)
    except ValueError:
        return 0, 1
    return (i, k) if 0 <= i < k else (0, 1)


def _module_of(plugin: Any) -> str:
    name = getattr(plugin, "__name__", None)
    return name if isinstance(name, str) else type(plugin).__module__


def unsafe_hooks(config: Any) -> str:
    """Why splitting this session's collection by file could change it ("" when it cannot)."""
    hook = config.pluginmanager.hook
    for impl in hook.pytest_collection_modifyitems.get_hookimpls():
        module = _module_of(impl.plugin)
        if module not in PER_ITEM:
            return f"pytest_collection_modifyitems of {module}"
    for name in ("pytest_collection", "pytest_make_collect_report"):
        for impl in getattr(hook, name).get_hookimpls():
            module = _module_of(impl.plugin)
            if not module.startswith(("_pytest.", "farm_runner_plugin.")):
                return f"{name} of {module}"
    return ""


def unsafe_args(config: Any) -> str:
    """Why the session's arguments keep it whole ("" when they do not)."""
    if getattr(config.option, "pyargs", False):
        return "--pyargs"
    if any("::" in str(a) for a in config.args):
        return "node ids in the arguments"
    return ""


class CollectShard:
    """Leaves every file but this shard's uncollected, and numbers the files the walk met."""

    def __init__(self, config: Any, emitter: Any, index: int, count: int) -> None:
        self.config = config
        self.emitter = emitter
        self.index = index
        self.count = count
        self.files: dict[str, int] = {}  # file node id -> its number in the walk
        self.whole = ""  # why shard 0 collects everything ("": it collects its share)
        self.mine: dict[str, str] = {}  # the files this shard collects: absolute path -> node id

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session: Any) -> Any:
        why = unsafe_args(self.config) or unsafe_hooks(self.config)
        if not why:
            return None
        if self.index == 0:
            self.whole = why
            return None
        session.items = []
        session.testscollected = 0
        self.emitter.emit({"k": "files", "id": "", "files": [], "stepped_out": why})
        return True  # no collection here: shard 0 collects it all

    @pytest.hookimpl(tryfirst=True)
    def pytest_make_collect_report(self, collector: Any) -> Any:
        if self.whole or not _is_file(collector):
            return None
        number = self.files.setdefault(collector.nodeid, len(self.files))
        if number % self.count == self.index:
            self.mine[os.path.abspath(str(getattr(collector, "path", None) or collector.fspath))] = collector.nodeid
            return None
        return pytest.CollectReport(collector.nodeid, "passed", None, [])

    def file_of(self, item: Any) -> int:
        """The walk number of the file an item came from (-1: none known)."""
        node = item.getparent(pytest.File)
        return -1 if node is None else self.files.get(node.nodeid, -1)

    def files_line(self, items: Any = ()) -> dict[str, Any]:
        line: dict[str, Any] = {"k": "files", "id": "", "files": list(self.files)}
        if self.whole:
            line["whole"] = self.whole
            return line
        # A conftest below the rootdir (loaded by the walk), or items ordered across files.
        late = unsafe_hooks(self.config) or wide_parameter(items)
        if late:
            line["unsafe"] = late
        line["modules"] = imported_modules(self.mine)
        line["plugins"] = plugin_modules(self.config)
        return line


#: Parameter scopes whose items `_pytest.fixtures` groups across files (its reorder_items).
WIDE_SCOPES = frozenset({"session", "package"})


def wide_parameter(items: Any) -> str:
    """Why an item's parameters make one collection's order cross files ("" when none does)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or not getattr(callspec, "params", None):
            continue
        scopes: Any = getattr(callspec, "_arg2scope", None)  # pytest 7.2 and 9: name -> _pytest.scope.Scope
        if not hasattr(scopes, "items"):  # not known: conservatively, it may cross files
            return f"parameters of unknown scope in {item.nodeid}"
        for name, scope in scopes.items():
            value = str(getattr(scope, "value", scope))
            if value in WIDE_SCOPES:
                return f"a {value}-scoped parameter {name} in {item.nodeid}"
    return ""


def imported_modules(files: dict[str, str]) -> dict[str, str]:
    """The names under which the modules of `files` (absolute path -> node id) were imported: name ->
    node id (rootdir-relative: the shards' work directories differ)."""
    found: dict[str, str] = {}
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if isinstance(file, str):
            nodeid = files.get(os.path.abspath(file))
            if nodeid is not None:
                found[name] = nodeid
    return found


def plugin_modules(config: Any) -> list[str]:
    """The modules of every plugin registered now, sorted (a name, not an id: the same in every shard)."""
    return sorted({_module_of(plugin) for plugin in config.pluginmanager.get_plugins()})


def _is_file(collector: Any) -> bool:
    """A file's collector (a module, a doctest file, a plugin's file), not a package or directory."""
    return isinstance(collector, pytest.File) and not isinstance(collector, pytest.Package)

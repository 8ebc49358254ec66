"""Put a collection split by file back together: the shards' lines in, one collection's lines out (pure).

Each of K collectors walked the same tree and collected every K-th file (workers/pytest_plugin/
collect_shard.py). Their items go back in the order one collection has them: by the file's number
in the walk, each file's items in its shard's order. Anything that says the shards did not see one
and the same collection (another file list, an item from no file or from another shard's file, a
hook that made the split unsafe, a run that failed, one module name imported from two files, other
plugins registered at the end) makes `merge` return None: the worker then
collects again in one process, and the suite gets exactly the collection it had before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Line = dict[str, Any]


@dataclass(frozen=True)
class Merged:
    """One collection's lines (items in order, collector records, one session line) and its exit code."""

    lines: list[Line]
    exit_code: int
    whole: bool = False  # shard 0 collected everything alone (the split was unsafe)


def _files_line(lines: list[Line]) -> Line | None:
    found = [obj for obj in lines if obj.get("k") == "files"]
    return found[0] if len(found) == 1 else None


def _one_import_each(heads: list[Line | None]) -> bool:
    """No module name imported from one file in a shard and from another in another (one process
    reports the second as an "import file mismatch" error: rootdir-relative names, no __init__.py)."""
    seen: dict[str, object] = {}
    for head in heads:
        modules = None if head is None else head.get("modules")
        if not isinstance(modules, dict):
            return False  # a shard that did not say: not known to be safe
        for name, file in modules.items():
            if seen.setdefault(name, file) != file:
                return False
    return True


def _same_plugins(heads: list[Line | None]) -> bool:
    """Every shard ended with the same plugins (a test module's `pytest_plugins` registers one while
    it is collected, and in one process it then acts on the files collected after it)."""
    plugins = [None if head is None else head.get("plugins") for head in heads]
    return isinstance(plugins[0], list) and all(p == plugins[0] for p in plugins)


def merge(shards: list[list[Line]], codes: list[int]) -> Merged | None:
    """The one collection `shards` (each shard's lines, in shard order) add up to, or None."""
    count = len(shards)
    if count == 0 or len(codes) != count:
        return None
    heads = [_files_line(lines) for lines in shards]
    first = heads[0]
    if first is not None and first.get("whole"):
        # Unsafe to split before the walk: shard 0 collected everything, the others stepped out.
        if all(h is not None and h.get("stepped_out") for h in heads[1:]):
            return Merged([obj for obj in shards[0] if obj.get("k") != "files"], codes[0], whole=True)
        return None
    if any(code not in (0, 5) for code in codes):
        return None
    if any(h is None or h.get("unsafe") or h.get("stepped_out") or h.get("whole") for h in heads):
        return None
    files = heads[0]["files"] if heads[0] is not None else []
    if not isinstance(files, list) or any(h is not None and h.get("files") != files for h in heads):
        return None
    if not _one_import_each(heads) or not _same_plugins(heads):
        return None
    number = {str(f): n for n, f in enumerate(files)}
    items: list[tuple[int, Line]] = []
    collectors: dict[str, tuple[int, Line]] = {}
    deselected = 0
    for index, lines in enumerate(shards):
        for obj in lines:
            kind = obj.get("k")
            if kind == "item":
                f = obj.get("f")
                if not isinstance(f, int) or f < 0 or f >= len(files) or f % count != index:
                    return None
                items.append((f, {"k": "item", "id": obj["id"]}))
            elif kind == "collect":
                # A directory's (conftest's) record comes from every shard: once is enough.
                collectors.setdefault(str(obj.get("id")), (number.get(str(obj.get("id")).split("::", 1)[0], -1), obj))
            elif kind == "session":
                deselected += int(obj.get("deselected", 0) or 0)
    session = next((obj for obj in shards[0] if obj.get("k") == "session"), None)
    if session is None:
        return None
    items.sort(key=lambda pair: pair[0])  # stable: each file's items stay in their order
    decided = sorted(collectors.values(), key=lambda pair: pair[0])
    merged = [obj for _, obj in items] + [obj for _, obj in decided] + [{**session, "deselected": deselected}]
    return Merged(merged, min(codes))

"""A project's saved history: its Redis keys as saved, their file format (versioned msgpack), the per-key bound."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import msgpack

FORMAT = "farm-history"
VERSION = 1
#: Entries kept per key (hash fields, list items, set members): 100,000 test durations is ~8 MB.
MAX_ENTRIES = 100_000
#: Kinds of Redis value saved; anything else under the prefix is skipped.
KINDS = ("hash", "string", "list", "set", "zset")


class HistoryFormatError(ValueError):
    """A history file that is not one this farm can read."""


@dataclass(frozen=True)
class SavedKey:
    """One Redis key of a project's history: its name after the project's prefix, kind, value, expiry."""

    suffix: str  # "" for farm:history:PROJECT itself, ":NAME" for farm:history:PROJECT:NAME
    kind: str  # one of KINDS
    value: Any  # hash: dict[bytes, bytes]; list/set: list[bytes]; zset: list[(bytes, float)]; string: bytes
    expires_at: float | None = None  # wall-clock time the key expires, None for never

    def size(self) -> int:
        return 1 if self.kind == "string" else len(self.value)


@dataclass(frozen=True)
class ProjectHistory:
    """Everything a project's history holds, as saved."""

    project: str
    saved_at: float
    keys: tuple[SavedKey, ...] = ()

    def durations(self) -> int:
        """How many tests have a recorded duration (the assignment-overhead entry left out)."""
        for k in self.keys:
            if k.suffix == "" and k.kind == "hash":
                return sum(1 for f in k.value if not f.startswith(b"\0"))
        return 0


def encode(history: ProjectHistory) -> bytes:
    """The file's bytes: a msgpack map, binary-safe for whatever values later features keep."""
    rows = []
    for k in history.keys:
        value = k.value
        if k.kind == "hash":
            value = [[f, v] for f, v in value.items()]
        elif k.kind == "zset":
            value = [[m, float(s)] for m, s in value]
        rows.append({"suffix": k.suffix, "kind": k.kind, "expires_at": k.expires_at, "value": value})
    data: bytes = msgpack.packb({"format": FORMAT, "version": VERSION, "project": history.project,
                                 "saved_at": history.saved_at, "keys": rows}, use_bin_type=True)
    return data


def decode(data: bytes) -> ProjectHistory:
    """A ProjectHistory from a file's bytes, or HistoryFormatError saying what is wrong."""
    try:
        doc = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise HistoryFormatError(f"not a farm history file ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise HistoryFormatError("not a farm history file")
    if doc.get("version") != VERSION:
        raise HistoryFormatError(f"format version {doc.get('version')!r}, this farm reads {VERSION}")
    try:
        saved = [_decode_key(row) for row in doc["keys"]]
        return ProjectHistory(str(doc["project"]), float(doc["saved_at"]), tuple(saved))
    except (KeyError, TypeError, ValueError) as exc:
        raise HistoryFormatError(f"malformed farm history file ({type(exc).__name__}: {exc})") from None


def _decode_key(row: dict[str, Any]) -> SavedKey:
    kind, raw = row["kind"], row["value"]
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}")
    value: Any
    if kind == "hash":
        value = {_bytes(f): _bytes(v) for f, v in raw}
    elif kind == "zset":
        value = [(_bytes(m), float(s)) for m, s in raw]
    elif kind == "string":
        value = _bytes(raw)
    else:
        value = [_bytes(m) for m in raw]
    expires = row.get("expires_at")
    return SavedKey(str(row["suffix"]), kind, value, None if expires is None else float(expires))


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    raise TypeError(f"expected bytes, got {type(value).__name__}")


def trimmed(history: ProjectHistory, before: ProjectHistory | None = None,
            max_entries: int = MAX_ENTRIES) -> ProjectHistory:
    """The history with at most `max_entries` entries per key.

    A hash keeps first the fields this run wrote or changed (not in `before`, or with another
    value), then the older ones; a list keeps its last items (appended last = newest); a sorted
    set its highest scores (scores are times); a set its members in the order Redis gave them."""
    old = {k.suffix: k for k in (before.keys if before else ())}
    out = []
    for k in history.keys:
        if k.size() <= max_entries:
            out.append(k)
            continue
        value: Any
        if k.kind == "hash":
            prev = old[k.suffix].value if k.suffix in old and old[k.suffix].kind == "hash" else {}
            fresh = [f for f, v in k.value.items() if prev.get(f) != v]
            stale = [f for f in k.value if prev.get(f) == k.value[f]]
            value = {f: k.value[f] for f in (fresh + stale)[:max_entries]}
        elif k.kind == "list":
            value = k.value[-max_entries:]
        elif k.kind == "zset":
            value = sorted(k.value, key=lambda ms: ms[1])[-max_entries:]
        else:
            value = k.value[:max_entries]
        out.append(replace(k, value=value))
    return replace(history, keys=tuple(out))

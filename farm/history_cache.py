"""The embedded farm's history, kept between runs: one versioned file per project in the user's cache.

The embedded farm's Redis lives for one suite. Before the suite is submitted, the project's
saved history is written into that Redis; after the suite ends, every history key of the project
(its durations hash `farm:history:PROJECT`, and any key later features keep under
`farm:history:PROJECT:NAME`) is read back and saved. So the second run of a suite is split by
the durations the first measured.

Where: `$FARM_HISTORY_DIR`, else `$XDG_CACHE_HOME/farm/history`, else `~/.cache/farm/history`;
one file per project, `NAME-DIGEST.msgpack`. Bounds: at most `MAX_PROJECTS` files and
`MAX_TOTAL_BYTES` in all (the least recently used go first), at most `MAX_ENTRIES` entries per
key. A file that cannot be read or decoded is ignored with one warning line (and replaced at the
next save); a save that fails warns and never fails the run.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import msgpack
import redis

from farm import keys

FORMAT = "farm-history"
VERSION = 1
#: Projects kept (files); the least recently used (loaded or saved) is removed first.
MAX_PROJECTS = 32
#: All history files together; past it, the least recently used go (never the one just saved).
MAX_TOTAL_BYTES = 64 * 1024 * 1024
#: Entries kept per key (hash fields, list items, set members): 100,000 test durations is ~8 MB.
MAX_ENTRIES = 100_000
SUFFIX = ".msgpack"
#: Kinds of Redis value saved; anything else under the prefix is skipped.
KINDS = ("hash", "string", "list", "set", "zset")

Warn = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"farm: warning: {message}", file=sys.stderr, flush=True)


def history_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the embedded farm's history is kept (see the module docstring)."""
    env = os.environ if env is None else env
    if env.get("FARM_HISTORY_DIR"):
        return Path(env["FARM_HISTORY_DIR"]).expanduser()
    xdg = env.get("XDG_CACHE_HOME")
    # XDG: a relative path is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "farm" / "history"


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


# --- the file format (pure) ------------------------------------------------------------------


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


# --- bounds (pure) ---------------------------------------------------------------------------


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


@dataclass(frozen=True)
class CachedFile:
    path: Path
    size: int
    used_at: float  # mtime: set by every save and load


def evictions(files: Iterable[CachedFile], keep: Path | None, max_projects: int = MAX_PROJECTS,
              max_bytes: int = MAX_TOTAL_BYTES) -> list[Path]:
    """The files to remove, least recently used first, so that at most `max_projects` files and
    `max_bytes` remain; `keep` (the one just saved) is never among them."""
    ordered = sorted(files, key=lambda f: f.used_at, reverse=True)  # most recent first
    ordered.sort(key=lambda f: f.path != keep)  # stable: the kept one leads
    kept, total, gone = 0, 0, []
    for f in ordered:
        if f.path == keep or (kept < max_projects and total + f.size <= max_bytes):
            kept, total = kept + 1, total + f.size
        else:
            gone.append(f.path)
    return gone


# --- the directory ---------------------------------------------------------------------------


def file_name(project: str) -> str:
    """`NAME-DIGEST.msgpack`: readable, and distinct for names that differ only in unsafe characters."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", project).strip("._")[:40] or "project"
    return f"{slug}-{hashlib.sha256(project.encode()).hexdigest()[:12]}{SUFFIX}"


class HistoryCache:
    """The directory of saved project histories."""

    def __init__(self, root: Path | None = None, warn: Warn = _stderr) -> None:
        self.root = root if root is not None else history_dir()
        self.warn = warn

    def path_of(self, project: str) -> Path:
        return self.root / file_name(project)

    def load(self, project: str) -> ProjectHistory | None:
        """The project's saved history; None if there is none or it cannot be read (one warning)."""
        path = self.path_of(project)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self.warn(f"cannot read the history file {path}: {exc.strerror or exc}; running without it")
            return None
        try:
            history = decode(data)
        except HistoryFormatError as exc:
            self.warn(f"ignoring the history file {path}: {exc}; it is replaced after this run")
            return None
        if history.project != project:  # a digest collision, or a file copied by hand
            self.warn(f"ignoring the history file {path}: it is project {history.project!r}'s")
            return None
        try:
            os.utime(path)  # used: the last to be evicted
        except OSError:
            pass
        return history

    def save(self, history: ProjectHistory) -> None:
        """Write atomically (a temp file renamed over the old one), then evict past the bounds."""
        path = self.path_of(history.project)
        tmp: str | None = None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=self.root)
            with os.fdopen(fd, "wb") as out:
                out.write(encode(history))
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
            tmp = None
            self._evict(keep=path)
        except OSError as exc:
            self.warn(f"cannot save the history of {history.project!r} in {self.root}: {exc.strerror or exc}")
        finally:
            if tmp is not None:
                _unlink(Path(tmp))

    def files(self) -> list[CachedFile]:
        found = []
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return []
        for entry in entries:
            if entry.name.endswith(SUFFIX) and not entry.name.startswith("."):
                try:
                    st = entry.stat()
                except OSError:
                    continue
                found.append(CachedFile(Path(entry.path), st.st_size, st.st_mtime))
        return found

    def projects(self) -> list[tuple[Path, ProjectHistory | None]]:
        """Every saved file, with its history (None where unreadable), most recently used first."""
        out: list[tuple[Path, ProjectHistory | None]] = []
        for f in sorted(self.files(), key=lambda f: f.used_at, reverse=True):
            try:
                out.append((f.path, decode(f.path.read_bytes())))
            except (OSError, HistoryFormatError):
                out.append((f.path, None))
        return out

    def clear(self, project: str | None = None) -> list[Path]:
        """Remove one project's file, or every file (and left-over temp files); returns what went."""
        if project is not None:
            targets = [self.path_of(project)]
        else:
            try:
                targets = [Path(e.path) for e in os.scandir(self.root)
                           if e.name.endswith(SUFFIX) or e.name.endswith(".tmp")]
            except OSError:
                targets = []
        return [p for p in targets if _unlink(p)]

    def _evict(self, keep: Path) -> None:
        for path in evictions(self.files(), keep, MAX_PROJECTS, MAX_TOTAL_BYTES):
            _unlink(path)
        stale = time.time() - 3600  # temp files of saves that died midway
        try:
            for e in os.scandir(self.root):
                if e.name.endswith(".tmp") and e.stat().st_mtime < stale:
                    _unlink(Path(e.path))
        except OSError:
            pass


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except OSError:
        return False


# --- Redis: a project's history keys, out and in --------------------------------------------


def export(r: redis.Redis, project: str, now: float | None = None) -> ProjectHistory:
    """Every history key of the project in this Redis, with its expiry."""
    now = time.time() if now is None else now
    base = keys.history(project)
    names = sorted({keys.text(n) for pattern in keys.history_patterns(project)
                    for n in r.scan_iter(match=pattern, count=1000)})
    saved = []
    for name in names:
        kind = keys.text(r.type(name))
        value: Any
        if kind == "hash":
            value = dict(r.hscan_iter(name, count=5000))
        elif kind == "string":
            value = r.get(name)
        elif kind == "list":
            value = r.lrange(name, 0, -1)
        elif kind == "set":
            value = list(r.sscan_iter(name, count=5000))
        elif kind == "zset":
            value = list(r.zscan_iter(name, count=5000))
        else:
            continue
        if value is None:  # expired between SCAN and the read
            continue
        pttl = int(r.pttl(name))
        saved.append(SavedKey(name[len(base):], kind, value, now + pttl / 1000 if pttl > 0 else None))
    return ProjectHistory(project, now, tuple(saved))


def restore(r: redis.Redis, history: ProjectHistory, now: float | None = None) -> None:
    """Write a saved history into this Redis (keys already expired by now are left out)."""
    now = time.time() if now is None else now
    base = keys.history(history.project)
    with r.pipeline(transaction=False) as pipe:
        for k in history.keys:
            if k.expires_at is not None and k.expires_at <= now:
                continue
            name = base + k.suffix
            pipe.delete(name)
            if k.kind == "hash":
                items = list(k.value.items())
                for i in range(0, len(items), 5000):
                    pipe.hset(name, mapping=dict(items[i:i + 5000]))
            elif k.kind == "string":
                pipe.set(name, k.value)
            elif k.kind in ("list", "set"):
                add = pipe.rpush if k.kind == "list" else pipe.sadd
                for i in range(0, len(k.value), 5000):
                    add(name, *k.value[i:i + 5000])
            else:
                for i in range(0, len(k.value), 5000):
                    pipe.zadd(name, dict(k.value[i:i + 5000]))
            if k.expires_at is not None:
                pipe.pexpireat(name, int(k.expires_at * 1000))
        pipe.execute()


class EmbeddedHistory:
    """The load/save hook around one embedded farm: `restore(url, project)` before the suite,
    `.save()` after it. Neither ever raises for the user's sake: problems are one warning line."""

    def __init__(self, broker_url: str, project: str, cache: HistoryCache, before: ProjectHistory | None) -> None:
        self.broker_url, self.project, self.cache, self.before = broker_url, project, cache, before

    @classmethod
    def restore(cls, broker_url: str, project: str, cache: HistoryCache | None = None) -> EmbeddedHistory:
        cache = cache or HistoryCache()
        before = cache.load(project)
        if before is not None:
            try:
                with redis.Redis.from_url(broker_url) as r:
                    restore(r, before)
            except redis.RedisError as exc:
                cache.warn(f"cannot load the history of {project!r} into the embedded farm: {exc}")
        return cls(broker_url, project, cache, before)

    def save(self) -> None:
        try:
            with redis.Redis.from_url(self.broker_url) as r:
                now = export(r, self.project)
        except redis.RedisError as exc:
            self.cache.warn(f"cannot read the history of {self.project!r} from the embedded farm: {exc}")
            return
        if now.keys:
            self.cache.save(trimmed(now, self.before, MAX_ENTRIES))

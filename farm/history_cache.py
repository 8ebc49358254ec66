"""The embedded farm's history, kept between runs: one versioned file per project in the user's cache.

The embedded farm's Redis lives for one suite. Before the suite is submitted, the project's
saved history is written into that Redis; after the suite ends, every history key of the project
(its durations hash `farm:history:PROJECT`, and any key later features keep under
`farm:history:PROJECT:NAME`) is read back and saved. So the second run of a suite is split by
the durations the first measured.

Where: `$FARM_HISTORY_DIR`, else `$XDG_CACHE_HOME/farm/history`, else `~/.cache/farm/history`;
one file per project, `NAME-DIGEST.msgpack`. Bounds: at most `MAX_PROJECTS` files and
`MAX_TOTAL_BYTES` in all (the least recently used go first), at most `MAX_ENTRIES` entries per
key (farm/saved_history.py: the file format; farm/history_redis.py: the keys out of and into
Redis). A file that cannot be read or decoded is ignored with one warning line (and replaced at the
next save); a save that fails warns and never fails the run.

The collection cache (workers/collection_cache.py: what the planning collection found, by bundle,
pytest arguments and interpreter) lives in the same Redis, so it is kept the same way: its keys
(`farm:collection:*`; the embedded farm runs one suite, so all of them are this project's) go
to `$FARM_COLLECTIONS_DIR`, else `$XDG_CACHE_HOME/farm/collections` (`~/.cache/farm/collections`),
one file per project and submitting environment (`environment_digest`) in the same format and
bounds, and come back before the next submission.
Then a second run of an unchanged suite is planned without a collection session; the runners'
own check (collect_check) still drops an entry that no longer holds, and a run that left no
entry removes the project's file.
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

import redis

from farm import keys
from farm.history_redis import export, export_keys, restore, restore_keys
from farm.saved_history import MAX_ENTRIES, HistoryFormatError, ProjectHistory, decode, encode, trimmed

#: Projects kept (files); the least recently used (loaded or saved) is removed first.
MAX_PROJECTS = 32
#: All history files together; past it, the least recently used go (never the one just saved).
MAX_TOTAL_BYTES = 64 * 1024 * 1024
SUFFIX = ".msgpack"
#: The collection cache's keys in Redis: `COLLECTIONS + KEY` and `COLLECTIONS + KEY + ":files"`.
COLLECTIONS = keys.collection_cache("")

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


def collections_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the embedded farm's collection cache is kept: `$FARM_COLLECTIONS_DIR`, else
    `collections` next to the default history directory (its own: `farm history` lists and clears
    durations, not this)."""
    env = os.environ if env is None else env
    if env.get("FARM_COLLECTIONS_DIR"):
        return Path(env["FARM_COLLECTIONS_DIR"]).expanduser()
    return history_dir({k: v for k, v in env.items() if k != "FARM_HISTORY_DIR"}).parent / "collections"


# --- the directory's bounds (pure) ----------------------------------------------------------


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

    def __init__(self, root: Path | None = None, warn: Warn = _stderr, noun: str = "history") -> None:
        self.root = root if root is not None else history_dir()
        self.warn = warn
        self.noun = noun  # what the files hold, in warnings: "history", "collection cache"

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
            self.warn(f"cannot read the {self.noun} file {path}: {exc.strerror or exc}; running without it")
            return None
        try:
            history = decode(data)
        except HistoryFormatError as exc:
            self.warn(f"ignoring the {self.noun} file {path}: {exc}; it is replaced after this run")
            return None
        if history.project != project:  # a digest collision, or a file copied by hand
            self.warn(f"ignoring the {self.noun} file {path}: it is project {history.project!r}'s")
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
            self.warn(f"cannot save the {self.noun} of {history.project!r} in {self.root}: {exc.strerror or exc}")
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


#: Variables of the submitting shell that differ between runs or terminals without reaching a
#: test's collection (the cluster sets TMPDIR itself), left out of `environment_digest`: each new
#: terminal, ssh login or tmux pane would otherwise miss the cache.
VOLATILE = frozenset({"_", "PWD", "OLDPWD", "SHLVL", "COLUMNS", "LINES", "TMPDIR", "SSH_CONNECTION", "SSH_CLIENT",
                      "SSH_TTY", "SSH_AUTH_SOCK", "TERM_SESSION_ID", "WINDOWID", "TMUX", "TMUX_PANE", "GPG_TTY",
                      "XDG_SESSION_ID", "XDG_VTNR", "DBUS_SESSION_BUS_ADDRESS", "KITTY_WINDOW_ID",
                      "WEZTERM_PANE", "ITERM_SESSION_ID", "STY", "WINDOW", "INVOCATION_ID", "JOURNAL_STREAM"})
#: Prefixes of such variables (an editor's terminal sets several per window).
VOLATILE_PREFIXES = ("VSCODE_", "TERM_PROGRAM", "GNOME_TERMINAL_", "KONSOLE_")


def environment_digest(env: Mapping[str, str] | None = None) -> str:
    """The submitting environment, hashed: the embedded farm's processes and runners inherit it,
    and a collection may read it (parameters from a variable), which the collection cache's key
    does not name. A saved collection is restored only under the same environment."""
    env = os.environ if env is None else env
    items = sorted((k, v) for k, v in env.items() if k not in VOLATILE and not k.startswith(VOLATILE_PREFIXES))
    return hashlib.sha256(repr(items).encode()).hexdigest()[:16]


class EmbeddedHistory:
    """The load/save hook around one embedded farm: `restore(url, project)` before the suite,
    `.save()` after it; with `collections`, the collection cache too (kept per project and
    submitting environment). Neither ever raises for the user's sake: problems are one warning line."""

    def __init__(self, broker_url: str, project: str, cache: HistoryCache, before: ProjectHistory | None,
                 collections: HistoryCache | None = None, saved: ProjectHistory | None = None,
                 environment: str = "") -> None:
        self.broker_url, self.project, self.cache, self.before = broker_url, project, cache, before
        self.collections, self.saved = collections, saved
        self.collections_name = f"{project}@{environment}" if environment else project

    @classmethod
    def restore(cls, broker_url: str, project: str, cache: HistoryCache | None = None,
                collections: HistoryCache | None = None, environment: str = "") -> EmbeddedHistory:
        cache = cache or HistoryCache()
        hook = cls(broker_url, project, cache, cache.load(project), collections, environment=environment)
        if collections is not None:
            hook.saved = collections.load(hook.collections_name)
        if hook.before is not None or hook.saved is not None:
            try:
                with redis.Redis.from_url(broker_url) as r:
                    if hook.before is not None:
                        restore(r, hook.before)
                    if hook.saved is not None:
                        restore_keys(r, hook.saved, COLLECTIONS)
            except redis.RedisError as exc:
                cache.warn(f"cannot load the history of {project!r} into the embedded farm: {exc}")
        return hook

    def save(self) -> None:
        try:
            with redis.Redis.from_url(self.broker_url) as r:
                now = export(r, self.project)
                found = (export_keys(r, self.collections_name, COLLECTIONS, (COLLECTIONS + "*",))
                         if self.collections is not None else None)
        except redis.RedisError as exc:
            self.cache.warn(f"cannot read the history of {self.project!r} from the embedded farm: {exc}")
            return
        if now.keys:
            self.cache.save(trimmed(now, self.before, MAX_ENTRIES))
        if self.collections is not None and found is not None:
            self._save_collections(self.collections, found)

    def _save_collections(self, collections: HistoryCache, found: ProjectHistory) -> None:
        """Keep what this run collected; else what it restored and still holds. An entry restored
        and gone without a new one was dropped by a runner's check: said once, and not kept."""
        now = time.time()  # an entry that expired (before its restore, or since) was not dropped by a runner
        restored = {k.suffix for k in (self.saved.keys if self.saved is not None else ())
                    if k.expires_at is None or k.expires_at > now}
        new = tuple(k for k in found.keys if k.suffix not in restored)
        kept = new or found.keys  # entries of older bundles go once a new one is collected
        if restored - {k.suffix for k in found.keys} and not new:
            collections.warn(f"the saved collection of {self.project!r} no longer matched what the runners "
                             "collected (each attempt's message in the JSON report says how); it is dropped, "
                             "and the next run collects afresh")
        if kept:
            collections.save(replace(found, keys=kept))
        else:  # nothing cacheable this run: nothing kept either
            collections.clear(self.collections_name)

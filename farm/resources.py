"""What a runner's process tree used and left behind: sizes, the memory limit's words, leak attribution (pure)."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable

#: --max-memory's units: binary multiples, as `ulimit` and Docker read them (300M is 300 MiB).
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)
#: How a memory-limit crash's message starts: the coordinator does not retry such a crash elsewhere
#: (the test would only exceed the same limit there).
MEMORY_LIMIT = "memory limit "
#: psutil's create_time counts in clock ticks (Linux's USER_HZ: 100 a second): a process began
#: within this long after the start it gives (farm.processes.created_at).
TICK_S = 0.01
#: Sizes from here on are refused (msgpack's signed integers end at 2^63).
MAX_SIZE = 2**63


def parse_size(text: str) -> int:
    """Bytes from a size as a user writes it: `300M`, `2G`, `1.5g`, `512K`, `300MiB`, or plain bytes;
    ValueError saying what is accepted."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a size (e.g. 300M, 2G: K, M, G, T are powers of 1024)")
    scaled = float(match.group(1)) * _UNITS[match.group(2).upper()]
    if not scaled < MAX_SIZE:  # also inf (400 nines): the wire's integers stop at 2^63
        raise ValueError(f"{text[:40]!r} is too large a size (below {MAX_SIZE // _UNITS['T']}T)")
    size = int(scaled)
    if size <= 0:
        raise ValueError(f"{text!r} is not a size above zero")
    return size


def format_size(size: int) -> str:
    """A byte count as parse_size reads it, short: 209715200 → 200M, 2147483648 → 2G, 318767104 → 304M."""
    for unit in ("T", "G"):
        if size >= _UNITS[unit] and size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    if size >= 10 * _UNITS["G"]:
        return f"{size / _UNITS['G']:.1f}G"
    if size >= _UNITS["M"]:
        return f"{round(size / _UNITS['M'])}M"
    return f"{max(1, round(size / _UNITS['K']))}K"


def memory_limit_message(limit: int, peak: int) -> str:
    """The crashed test's message when its runner's tree went past --max-memory."""
    return f"{MEMORY_LIMIT}{format_size(limit)} exceeded (peak {format_size(peak)})"


def is_memory_limit(message: str) -> bool:
    """Whether a crashed test's message says its runner was stopped at the memory limit."""
    return message.startswith(MEMORY_LIMIT)


def attribute(created_at: float, starts: Iterable[tuple[float, str]]) -> str:
    """The test that made a process created at `created_at` (its start as psutil tells it: the
    clock tick it began in, so truly within TICK_S after), from the tests' (start, id), any order,
    on the same clock (the runner's host): the one that started last at or before the end of that
    tick. Exact when the test went on for a tick after it made the process; of several tests that
    started within that one tick, the last is blamed (a test that forks and returns within 10 ms
    may hand the blame to the next). "" if it predates every test (the session's own: a conftest,
    the collection)."""
    ordered = sorted(s for s in starts if s[0] > 0)  # a record without a start (not run) started nothing
    i = bisect.bisect_right(ordered, (created_at + TICK_S, "\U0010ffff"))
    return ordered[i - 1][1] if i else ""

"""Hashes of a million fields in and out of Redis without a Python call per field.

redis-py encodes every argument and parses every reply element in Python (about 1-2 µs each):
planning 1,000,000 tests spent most of its time there (docs/how-it-works.md, "Planning cost").
`write_hashes` sends HSETs as RESP it formats in a few C-level passes over the fields, on one
pooled connection (`Connection.send_packed_command`); `read_hash` pages through a hash with a
small Lua script that returns each HSCAN page as one msgpack string (unpacked in C).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import chain, repeat
from typing import Any

import msgpack

#: Fields per HSET command (and per page read).
CHUNK = 10_000
_PAGE = "local r = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2]) return {r[1], cmsgpack.pack(r[2])}"


_BULK = b"$%d\r\n%s\r\n".__mod__


def _bulk(data: bytes) -> bytes:
    return _BULK((len(data), data))


def _bulks(texts: Sequence[str]) -> list[bytes]:
    """RESP bulk strings of `texts`, in C-level passes (no Python call per text)."""
    encoded = list(map(str.encode, texts))
    return list(map(_BULK, zip(map(len, encoded), encoded, strict=True)))


def write_hashes(r: Any, fields: Sequence[str], hashes: Mapping[str, str | Sequence[tuple[str, int]]], *,
                 ttl_s: int) -> None:
    """HSET the same `fields` in several hashes, each expiring in `ttl_s`: key -> one value for
    every field, or runs of (value, how many fields take it) in field order. The fields are
    encoded once for all the hashes (planning writes a million into two)."""
    if not fields:
        return
    heads = _bulks(fields)
    out: list[bytes] = []
    names = []
    for key, values in hashes.items():
        name = _bulk(key.encode())
        names.append(name)
        runs = [(values, len(heads))] if isinstance(values, str) else values
        if sum(n for _, n in runs) != len(heads):
            raise ValueError(f"{key}: the runs of values do not cover the {len(heads)} fields")
        tails = list(chain.from_iterable(repeat(_bulk(v.encode()), n) for v, n in runs))
        for i in range(0, len(heads), CHUNK):
            part = heads[i:i + CHUNK]
            out.append(b"*%d\r\n$4\r\nHSET\r\n%s" % (2 + 2 * len(part), name))
            out.append(b"".join(chain.from_iterable(zip(part, tails[i:i + CHUNK], strict=True))))
    _send(r, out, names, len(names) * -(-len(heads) // CHUNK), ttl_s)


def _send(r: Any, out: list[bytes], names: list[bytes], hsets: int, ttl_s: int) -> None:
    """Send `out` (`hsets` HSET commands) and an EXPIRE of each of `names` on one pooled
    connection, pipelined; every reply read (an error reply raises)."""
    ttl = _bulk(str(int(ttl_s)).encode())
    out.extend(b"*3\r\n$6\r\nEXPIRE\r\n%s%s" % (name, ttl) for name in names)
    replies = hsets + len(names)
    pool = r.connection_pool
    try:
        conn = pool.get_connection()
    except TypeError:  # redis-py before 5.3 wants a command name
        conn = pool.get_connection("HSET")
    try:
        conn.send_packed_command(out)
        for _ in range(replies):
            conn.read_response()  # an error reply raises
    except BaseException:
        conn.disconnect()  # replies may be left unread on it
        raise
    finally:
        pool.release(conn)


def read_hash(r: Any, key: str) -> tuple[list[str], list[str]]:
    """The fields of the hash `key` and their values (in the same order), read a page of about
    CHUNK fields at a time."""
    flat: list[str] = []
    cursor: bytes | int = 0
    while True:
        cursor, page = r.eval(_PAGE, 1, key, cursor, CHUNK)
        items = msgpack.unpackb(page, raw=False)
        if isinstance(items, list):  # cmsgpack packs an empty table as a map
            flat.extend(items)
        if int(cursor) == 0:
            return flat[::2], flat[1::2]

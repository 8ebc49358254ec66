"""The wire schema: every message between submitter, coordinator and workers, encoded as msgpack.

Each message is a map `{"v": VERSION, "t": TYPE, ...fields}`. Decoding checks the version, the
type and every field's type, and unpacks under explicit size limits, so a malformed or hostile
payload becomes a `ProtocolError`, never a crash. Only msgpack (and Celery's JSON envelope
around it) is used: never pickle.

Version 2 sends a RecordBatch's records as arrays, not maps (`record_row`): a plain pass as
`[test_id, duration_s, started_at, setup_s, call_s, teardown_s]`, any other record as all its
fields in TestRecord's order. Decoding reads versions 1 and 2, and records as maps or arrays.
A Completion's `peak_rss_bytes`, `cpu_s` and `leaks`, and an Assignment's and a SuiteSpec's
`max_memory_bytes`, are optional the same way: without them, unmeasured and unlimited.
A RecordBatch carries `seq` (its number in its attempt) when it has one: it is optional in both
directions (an older coordinator ignores it; a batch without it decodes with 0, not numbered).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any, TypeVar, cast

import msgpack

from farm.errors import ProtocolError
from farm.gates import Gates
from farm.model import (
    Assignment,
    Collection,
    Completion,
    Leak,
    RecordBatch,
    SessionInfo,
    Split,
    Stage,
    SuiteSpec,
    TestRecord,
    WorkerInfo,
)
from farm.outcomes import Outcome
from farm.suite_env import INSTALL_MODES, SuiteEnv

VERSION = 2
#: The versions `decode` reads (1: records as maps only).
READS = (1, 2)

#: Unpacking limits. A message bigger than MAX_MESSAGE_BYTES is refused before it is parsed.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_STR = 16 * 1024 * 1024
MAX_ITEMS = 1_000_000
MAX_MAP = 64
MAX_DEPTH = 5  # the deepest our schema nests: message → records → record → sections → pair

T = TypeVar("T")

_TYPES: dict[str, type] = {
    "suite": SuiteSpec,
    "collection": Collection,
    "assignment": Assignment,
    "records": RecordBatch,
    "completion": Completion,
    "split": Split,
    "worker": WorkerInfo,
}
_NAMES = {cls: name for name, cls in _TYPES.items()}


def encode(message: Any) -> bytes:
    """Encode one of the model's messages as versioned msgpack."""
    name = _NAMES.get(type(message))
    if name is None:
        raise ProtocolError(f"cannot encode {type(message).__name__}")
    if isinstance(message, RecordBatch):
        body = {f: getattr(message, f) for f in ("suite_id", "assignment_id", "attempt", "worker", "node")}
        body["records"] = [record_row(r) for r in message.records]
        if message.seq:  # an older coordinator ignores it; 0 (not numbered) is not sent
            body["seq"] = message.seq
    else:
        body = _to_plain(message)
    body["v"] = VERSION
    body["t"] = name
    data: bytes = msgpack.packb(body, use_bin_type=True)
    return data


def decode(data: bytes, expected: type[T]) -> T:
    """Decode and validate a message of the `expected` type; raise ProtocolError otherwise."""
    if not isinstance(data, (bytes, bytearray)):
        raise ProtocolError(f"payload is {type(data).__name__}, not bytes")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"payload of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        body = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=False,
            max_str_len=MAX_STR,
            max_bin_len=0,
            max_array_len=MAX_ITEMS,
            max_map_len=MAX_MAP,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise ProtocolError(f"not valid msgpack: {exc}") from None
    if _depth(body) > MAX_DEPTH:
        raise ProtocolError("payload nests deeper than the schema allows")
    if not isinstance(body, dict):
        raise ProtocolError("payload is not a map")
    if type(body.get("v")) is not int or body.get("v") not in READS:
        raise ProtocolError(f"unsupported schema version {body.get('v')!r}")
    name = _NAMES.get(expected)
    if body.get("t") != name:
        raise ProtocolError(f"expected a {name!r} message, got {body.get('t')!r}")
    message: T = _build(expected, body)
    return message


#: Element types of a list packed (and checked) as a whole; exact types (bool is not int here).
_SCALARS = frozenset({str, int, float, bool, type(None)})
_STR = frozenset({str})
_INT = frozenset({int})

#: TestRecord's fields in order: a full record row.
_ROW = tuple(f.name for f in fields(TestRecord))
_PASS_ROW = ("test_id", "duration_s", "started_at", "setup_s", "call_s", "teardown_s")


def record_row(r: TestRecord) -> list[Any]:
    """A record as a msgpack array: a plain pass in 6 fields (_PASS_ROW), any other in all 12 (_ROW)."""
    if r.outcome is Outcome.PASSED and r.phase == "call" and not (r.message or r.longrepr or r.sections or r.ran_as):
        return [r.test_id, r.duration_s, r.started_at, r.setup_s, r.call_s, r.teardown_s]
    return [r.test_id, r.outcome.value, r.duration_s, r.phase, r.message, r.longrepr, [list(x) for x in r.sections],
            r.started_at, r.setup_s, r.call_s, r.teardown_s, r.ran_as]


def _row_record(row: Any) -> TestRecord:
    """The inverse of `record_row`, checked field by field."""
    if len(row) == 6 and type(row[0]) is str and type(row[1]) is float and type(row[2]) is float \
            and type(row[3]) is float and type(row[4]) is float and type(row[5]) is float:
        # A plain pass whose numbers are floats (what `record_row` sends): the checks below would
        # all pass and change nothing; this is most records of a large suite (issue 10, (d)).
        return TestRecord(row[0], Outcome.PASSED, row[1], "call", "", "", (), row[2], row[3], row[4], row[5], "")
    names = _PASS_ROW if len(row) == len(_PASS_ROW) else _ROW if len(row) == len(_ROW) else None
    if names is None:
        raise ProtocolError(f"a record row has {len(row)} fields, not {len(_PASS_ROW)} or {len(_ROW)}")
    values: dict[str, Any] = {}
    for name, value in zip(names, row, strict=True):
        check: Callable[[Any], Any] = _FIELD.get(name, _str)
        try:
            values[name] = check(value)
        except TypeError as exc:
            raise ProtocolError(f"TestRecord.{name} must be {exc}") from None
    if names is _PASS_ROW:
        values["outcome"] = Outcome.PASSED
    return TestRecord(**values)


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, Outcome):
        return obj.value
    if hasattr(obj, "__dataclass_fields__"):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (tuple, list)):
        if _SCALARS.issuperset(map(type, obj)):  # test ids, positions: msgpack packs them as they are
            return obj
        return [_to_plain(x) for x in obj]
    return obj


def _depth(obj: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(obj, dict):
        return max([_depth(v, level + 1) for v in obj.values()], default=level + 1)
    if isinstance(obj, (list, tuple)):
        if _SCALARS.issuperset(map(type, obj)):  # a list of strings or numbers (a collection's ids)
            return level + 1
        return max([_depth(v, level + 1) for v in obj], default=level + 1)
    return level


# --- field validators -------------------------------------------------------------------


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError("a string")
    return v


def _int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError("an integer")
    return v


def _float(v: Any) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        raise TypeError("a number")
    return float(v)


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def read(v: Any) -> Any:
        return None if v is None else check(v)
    return read


def _install_mode(v: Any) -> str:
    if v not in INSTALL_MODES:
        raise TypeError(" or ".join(INSTALL_MODES))
    return str(v)


def _stages(v: Any) -> tuple[Stage, ...]:
    if not isinstance(v, (list, tuple)):
        raise TypeError("a list of stages")
    return tuple(_build(Stage, x) for x in v)


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise TypeError("a boolean")
    return v


def _strs(v: Any) -> tuple[str, ...]:
    if not isinstance(v, (list, tuple)):
        raise TypeError("a list of strings")
    if _STR.issuperset(map(type, v)):  # checked in C: a collection has a million of them
        return tuple(v)
    return tuple(_str(x) for x in v)


def _ints(v: Any) -> tuple[int, ...]:
    if not isinstance(v, (list, tuple)):
        raise TypeError("a list of integers")
    if _INT.issuperset(map(type, v)):
        return tuple(v)
    return tuple(_int(x) for x in v)


def _outcome(v: Any) -> Outcome:
    try:
        return Outcome(_str(v))
    except ValueError:
        raise TypeError("a known outcome") from None


def _sections(v: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(v, (list, tuple)):
        raise TypeError("a list of [name, text] pairs")
    out = []
    for pair in v:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise TypeError("a list of [name, text] pairs")
        out.append((_str(pair[0]), _str(pair[1])))
    return tuple(out)


def _records(v: Any) -> tuple[TestRecord, ...]:
    if not isinstance(v, (list, tuple)):
        raise TypeError("a list of records")
    return tuple(_row_record(r) if isinstance(r, (list, tuple)) else _build(TestRecord, r) for r in v)


_FIELD: dict[str, Callable[[Any], Any]] = {
    "outcome": _outcome,
    "sections": _sections,
    "records": _records,
    "decided": _records,
    "pytest_args": _strs,
    "test_ids": _strs,
    "duration_s": _float,
    "started_at": _float,
    "finished_at": _float,
    "submitted_at": _float,
    "expected_s": _float,
    "attempt": _int,
    "exit_code": _int,
    "reported": _int,
    "priority": _int,
    "start_after": _float,
    "test_timeout_s": _float,
    "deadline_s": _float,
    "deadline_at": _float,
    "rerun_failures": _int,
    "strict_flaky": _bool,
    "slots": _int,
    "budget_s": _float,
    "avoid": _strs,
    "bounces": _int,
    "param_index": _ints,
    "param_count": _ints,
    "seen_at": _float,
    "infrastructure": _bool,
    "setup_s": _float,
    "call_s": _float,
    "teardown_s": _float,
    "session": lambda v: _build(SessionInfo, v),
    "maxfail": _int,
    "verbose": _int,
    "durations": _int,
    "durations_min": _float,
    "deselected": _int,
    "split_off": _strs,
    "split_seqs": _ints,
    "startup_s": _float,
    "seq": _int,
    "max_memory_bytes": _int,
    "peak_rss_bytes": _int,
    "cpu_s": _float,
    "leaks": lambda v: _leaks(v),
    "env": lambda v: _build(SuiteEnv, v),
    "requirements": _sections,  # (name, text) pairs
    "install": _strs,
    "install_mode": _install_mode,
    "gates": lambda v: _build(Gates, v),
    "min_pass_rate": _optional(_float),
    "max_failures": _optional(_int),
    "max_duration_regression": _optional(_float),
    "max_flaky": _optional(_int),
    "stages": _stages,
    "stage_of": _ints,
    "quarantine": _strs,
    "quarantine_flake_rate": _float,
}


def _leaks(v: Any) -> tuple[Leak, ...]:
    if not isinstance(v, (list, tuple)):
        raise TypeError("a list of leaks")
    return tuple(_build(Leak, x) for x in v)


def _build(cls: Any, body: Any) -> Any:
    if not isinstance(body, dict):
        raise ProtocolError(f"{cls.__name__} is not a map")
    kwargs = {}
    for f in fields(cls):
        if f.name not in body:
            if f.default is not MISSING or f.default_factory is not MISSING:
                continue
            raise ProtocolError(f"{cls.__name__} lacks field {f.name!r}")
        check: Callable[[Any], Any] = _FIELD.get(f.name, _str)
        try:
            kwargs[f.name] = check(body[f.name])
        except TypeError as exc:
            raise ProtocolError(f"{cls.__name__}.{f.name} must be {exc}") from None
        except ProtocolError:
            raise
    built: Any = cast(Callable[..., Any], cls)(**kwargs)
    return built

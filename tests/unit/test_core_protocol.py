"""Every message survives the wire unchanged; anything malformed or hostile becomes a ProtocolError."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from farm import protocol
from farm.errors import ProtocolError
from farm.gates import Gates
from farm.model import (
    Assignment,
    Collection,
    Completion,
    Leak,
    RecordBatch,
    SessionInfo,
    Stage,
    SuiteSpec,
    WorkerInfo,
    record_to_plain,
)
from farm.model import TestRecord as Record
from farm.outcomes import Outcome
from farm.protocol import decode, encode
from farm.suite_env import SuiteEnv

ODD_IDS = [
    "tests/test_ü.py::test_naïve[caf\u00e9-\u6f22\u5b57]",
    "tests/dir with space/test_a.py::TestK::test_x[a b-[nested]-::colons]",
    "tests/test_a.py::test_emoji[\U0001f600]",
    "",
]

RECORDS = (
    Record(ODD_IDS[0], Outcome.FAILED, 1.25, "call", "assert 1 == 2", "E  assert 1 == 2\n" * 3,
           (("Captured stdout call", "héllo [wörld]\n"), ("Captured log teardown", "")), 1700000000.5),
    Record(ODD_IDS[1], Outcome.SKIPPED, 0.0, "setup", "no db", "", (), 0.0),
    Record(ODD_IDS[2], Outcome.NOT_RUN),
    Record(ODD_IDS[0], Outcome.PASSED, 0.5, setup_s=0.25, call_s=0.2, teardown_s=0.05),
)

MESSAGES: list[Any] = [
    SuiteSpec("s-1", "proj", "ab" * 32, "default", "loadfile", ("-k", "not slow", "--tb=short"), 1.7e9),
    SuiteSpec("s-2", "p", "d", "gpu", "load", (), 0.0),
    Collection("s-1", "w@h", 1, tuple(ODD_IDS), RECORDS[:2], "ERROR collecting ü", 0.75),
    Collection("s-1", "w@h", 5, ()),
    Assignment("s-1", "s-1/a3", 2, "ab" * 32, ("-x",), tuple(ODD_IDS[:3]), 12.5),
    Assignment("s-1", "a", 1, "d", (), ()),
    RecordBatch("s-1", "s-1/a3", 2, "w@h", "vm-1", RECORDS),
    RecordBatch("s-1", "a", 1, "w", "n"),
    Completion("s-1", "a", 1, "w", "n", "failed", 1.0, 2.5, -9, 3, "runner exited with code -9\nü"),
    Completion("s-1", "a", 1, "w", "n", "done", 1.0, 2.0, 0, 0),
    Completion("s-1", "a", 1, "w", "n", "done", 1.0, 2.0, 0, 4, startup_s=0.42),  # the measured start-up
    Completion("s-1", "a", 1, "w", "n", "done", 1.0, 2.0, 0, 4, peak_rss_bytes=330 << 20, cpu_s=1.25,
               leaks=(Leak("t.py::test_x", "process", "sleep 1000"), Leak("", "process", "sh -c ü"))),
    SuiteSpec("s-3", "p", "d", "default", "load", (), 0.0, max_memory_bytes=200 << 20),
    Assignment("s-1", "a", 1, "d", (), (), max_memory_bytes=2 << 30),
    SuiteSpec("s-4", "p", "d", "default", "load", (), 0.0,
              env=SuiteEnv((("req/ü.txt", "pytest>=9\nattrs==25.1.0\n"),), (".[test]",), "plain"),
              gates=Gates(min_pass_rate=95.0, max_failures=0, max_flaky=2), stages=(Stage("smoke", ("-m", "smoke")),
                                                                                       Stage("rest", ())),
              quarantine=("t.py::test_x",), quarantine_flake_rate=20.0),
    Assignment("s-4", "a", 1, "d", (), ("t.py::test_x",), env=SuiteEnv((), ("attrs",)), stage="smoke"),
    WorkerInfo("farm-default-1@host", "host", 8, "default", "local"),
    Collection("s-1", "w@h", 0, ("a",), session=SessionInfo(maxfail=2, verbose=-1, reportchars="a", tbstyle="line",
                                                             durations=0, deselected=3, python="3.11.2")),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_type_round_trips_unchanged(message: Any) -> None:
    data = encode(message)
    assert isinstance(data, bytes)
    assert decode(data, type(message)) == message
    assert decode(bytearray(data), type(message)) == message  # type: ignore[arg-type]


def test_encoding_is_deterministic() -> None:
    assert all(encode(m) == encode(dataclasses.replace(m)) for m in MESSAGES)


text = st.text(max_size=40)
records = st.builds(
    Record,
    test_id=text,
    outcome=st.sampled_from(list(Outcome)),
    duration_s=st.floats(allow_nan=False, min_value=0, max_value=1e6),
    phase=st.sampled_from(["setup", "call", "teardown", "collect"]),
    message=text,
    longrepr=text,
    sections=st.lists(st.tuples(text, text), max_size=3).map(tuple),
    started_at=st.floats(allow_nan=False, allow_infinity=False),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(records, max_size=4))
def test_test_records_with_any_text_round_trip(recs: list[Record]) -> None:
    batch = RecordBatch("s", "a", 1, "w", "n", tuple(recs))
    assert decode(encode(batch), RecordBatch) == batch
    collection = Collection("s", "w", 0, tuple(r.test_id for r in recs), tuple(recs))
    assert decode(encode(collection), Collection) == collection


@pytest.mark.parametrize("obj", [Record("t", Outcome.PASSED), {"v": 1}, "worker", None])
def test_encode_refuses_anything_but_a_message(obj: Any) -> None:
    with pytest.raises(ProtocolError, match="cannot encode"):
        encode(obj)


# --- rejection --------------------------------------------------------------------------------


def plain(message: Any) -> dict[str, Any]:
    body: dict[str, Any] = msgpack.unpackb(encode(message), raw=False)
    return body


def pack(body: Any) -> bytes:
    data: bytes = msgpack.packb(body, use_bin_type=True)
    return data


WORKER: WorkerInfo = MESSAGES[-2]
BATCH: RecordBatch = MESSAGES[6]


@pytest.mark.parametrize("data", ["a string", None, 42, [1, 2], memoryview(b"\x80")], ids=repr)
def test_non_bytes_payloads_are_refused(data: Any) -> None:
    with pytest.raises(ProtocolError, match="not bytes"):
        decode(data, WorkerInfo)


@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"\xff\xff\xff", b"\x85\xa1v", encode(WORKER)[:-3], encode(WORKER) + b"\x00", pack([1, 2]),
     pack("worker"), pack(None)],
    ids=["empty", "reserved", "garbage", "truncated-map", "truncated", "trailing", "array", "string", "nil"],
)
def test_garbage_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode(data, WorkerInfo)


@pytest.mark.parametrize("version", [0, 3, "1", "2", None, -1, 2**63])
def test_other_schema_versions_are_refused(version: Any) -> None:
    body = plain(WORKER)
    body["v"] = version
    with pytest.raises(ProtocolError, match="version"):
        decode(pack(body), WorkerInfo)


def test_a_message_without_version_is_refused() -> None:
    body = plain(WORKER)
    del body["v"]
    with pytest.raises(ProtocolError, match="version"):
        decode(pack(body), WorkerInfo)


@pytest.mark.parametrize("tag", ["assignment", "bogus", "", None, 1])
def test_a_wrong_type_tag_is_refused(tag: Any) -> None:
    body = plain(WORKER)
    body["t"] = tag
    with pytest.raises(ProtocolError, match="expected a 'worker' message"):
        decode(pack(body), WorkerInfo)


@pytest.mark.parametrize("message", MESSAGES[::2], ids=lambda m: type(m).__name__)
def test_decoding_as_another_type_is_refused(message: Any) -> None:
    other = Assignment if not isinstance(message, Assignment) else Completion
    with pytest.raises(ProtocolError, match="expected a"):
        decode(encode(message), other)


REQUIRED = [
    (m, f.name)
    for m in (MESSAGES[0], MESSAGES[2], MESSAGES[4], MESSAGES[6], MESSAGES[8], WORKER)
    for f in dataclasses.fields(m)
    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
]


@pytest.mark.parametrize(("message", "name"), REQUIRED, ids=[f"{type(m).__name__}.{n}" for m, n in REQUIRED])
def test_a_missing_required_field_is_refused(message: Any, name: str) -> None:
    body = plain(message)
    del body[name]
    with pytest.raises(ProtocolError, match=f"lacks field '{name}'"):
        decode(pack(body), type(message))


def test_missing_optional_fields_take_their_defaults() -> None:
    body = plain(Collection("s", "w", 0, ("a",), RECORDS[:1], "out", 1.0))
    for name in ("decided", "output", "duration_s"):
        del body[name]
    assert decode(pack(body), Collection) == Collection("s", "w", 0, ("a",))


def test_a_completion_from_a_worker_that_does_not_measure_decodes_as_unmeasured() -> None:
    body = plain(Completion("s", "a", 1, "w", "n", "done", 1.0, 2.0, 0, 4, peak_rss_bytes=1, cpu_s=1.0,
                            leaks=(Leak("t", "process", "x"),)))
    for name in ("peak_rss_bytes", "cpu_s", "leaks"):
        del body[name]
    assert decode(pack(body), Completion) == Completion("s", "a", 1, "w", "n", "done", 1.0, 2.0, 0, 4)


def test_a_leak_that_is_not_a_map_of_strings_is_refused() -> None:
    body = plain(Completion("s", "a", 1, "w", "n", "done", 1.0, 2.0, 0, 4))
    for bad in ([["t", "process", "x"]], [{"test": "t", "kind": "process", "detail": 3}], "leaks"):
        body["leaks"] = bad
        with pytest.raises(ProtocolError):
            decode(pack(body), Completion)


def test_unknown_extra_fields_are_ignored() -> None:
    body = plain(WORKER)
    body["added_in_a_later_version"] = [1, 2]
    assert decode(pack(body), WorkerInfo) == WORKER


@pytest.mark.parametrize(
    ("message", "name", "value"),
    [
        (WORKER, "slots", "8"),
        (WORKER, "slots", True),
        (WORKER, "slots", 8.0),
        (WORKER, "slots", None),
        (WORKER, "name", 1),
        (WORKER, "name", None),
        (WORKER, "name", ["a"]),
        (WORKER, "pool", {"a": "b"}),
        (MESSAGES[4], "attempt", "2"),
        (MESSAGES[4], "attempt", False),
        (MESSAGES[4], "expected_s", "1.5"),
        (MESSAGES[4], "expected_s", True),
        (MESSAGES[4], "test_ids", "tests/test_a.py::t"),
        (MESSAGES[4], "test_ids", ["ok", 1]),
        (MESSAGES[4], "pytest_args", {"-x": True}),
        (MESSAGES[0], "submitted_at", None),
        (MESSAGES[2], "exit_code", 1.0),
        (MESSAGES[2], "decided", "none"),
        (MESSAGES[2], "decided", [1]),
        (MESSAGES[8], "reported", "3"),
        (MESSAGES[8], "finished_at", [2.5]),
        (BATCH, "records", {"test_id": "x"}),
    ],
    ids=lambda v: repr(v)[:30] if not dataclasses.is_dataclass(v) else type(v).__name__,
)
def test_a_field_of_the_wrong_type_is_refused(message: Any, name: str, value: Any) -> None:
    body = plain(message)
    body[name] = value
    with pytest.raises(ProtocolError, match=rf"{type(message).__name__}\.{name} must be|is not a map"):
        decode(pack(body), type(message))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("outcome", "exploded"),
        ("outcome", "PASSED"),
        ("outcome", 1),
        ("outcome", None),
        ("duration_s", "0.5"),
        ("sections", "stdout"),
        ("sections", [["only the name"]]),
        ("sections", [["a", "b", "c"]]),
        ("sections", [["name", 1]]),
        ("sections", ["ab"]),
        ("test_id", 7),
    ],
)
def test_a_record_field_of_the_wrong_type_is_refused(name: str, value: Any) -> None:
    body = plain_maps(BATCH)
    body["records"][0][name] = value
    with pytest.raises(ProtocolError, match=rf"TestRecord\.{name} must be"):
        decode(pack(body), RecordBatch)


def plain_maps(batch: RecordBatch) -> dict[str, Any]:
    """A batch as version 1 sent it: its records as maps (still read)."""
    body = plain(batch)
    body["records"] = [record_to_plain(r) for r in batch.records]
    return body


def test_a_record_without_outcome_is_refused() -> None:
    body = plain_maps(BATCH)
    del body["records"][1]["outcome"]
    with pytest.raises(ProtocolError, match="TestRecord lacks field 'outcome'"):
        decode(pack(body), RecordBatch)


def test_an_oversized_payload_is_refused_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    data = encode(BATCH)
    monkeypatch.setattr(protocol, "MAX_MESSAGE_BYTES", len(data) - 1)
    with pytest.raises(ProtocolError, match="exceeds"):
        decode(data, RecordBatch)
    monkeypatch.setattr(protocol, "MAX_MESSAGE_BYTES", len(data))
    assert decode(data, RecordBatch) == BATCH


def test_an_oversized_string_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "MAX_STR", 100)
    with pytest.raises(ProtocolError, match="not valid msgpack"):
        decode(encode(dataclasses.replace(WORKER, host="h" * 101)), WorkerInfo)


def test_an_oversized_array_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol, "MAX_ITEMS", 10)
    with pytest.raises(ProtocolError, match="not valid msgpack"):
        decode(encode(Assignment("s", "a", 1, "d", (), tuple(f"t{i}" for i in range(11)))), Assignment)


@pytest.mark.parametrize("depth", [6, 50, 200_000])
def test_deeply_nested_payloads_are_refused(depth: int) -> None:
    body = plain(WORKER)
    if depth < 1000:
        value: Any = "x"
        for _ in range(depth):
            value = [value]
        body["name"] = value
        data = pack(body)
    else:  # deeper than msgpack itself will pack: build the bytes by hand
        data = b"\x91" * depth + b"\xc0"
    with pytest.raises(ProtocolError):
        decode(data, WorkerInfo)


def test_the_deepest_schema_nesting_is_accepted() -> None:
    # message → records → record → sections → pair → str: exactly MAX_DEPTH.
    assert decode(encode(BATCH), RecordBatch).records[0].sections == RECORDS[0].sections


@pytest.mark.parametrize(
    "value",
    [msgpack.ExtType(1, b"payload"), msgpack.ExtType(127, b"x" * 300), msgpack.Timestamp(1, 0),
     msgpack.ExtType(7, b"")],
    ids=["ext", "long-ext", "timestamp", "empty-ext"],
)
def test_msgpack_ext_types_are_refused(value: Any) -> None:
    body = plain(WORKER)
    body["host"] = value
    with pytest.raises(ProtocolError):
        decode(pack(body), WorkerInfo)


@pytest.mark.parametrize("value", [b"host", b"", bytearray(b"x" * 300)], ids=["short", "empty", "long"])
def test_bin_fields_are_refused(value: bytes) -> None:
    body = plain(WORKER)
    body["host"] = value
    with pytest.raises(ProtocolError):
        decode(pack(body), WorkerInfo)


def test_maps_with_non_string_keys_are_refused() -> None:
    body: dict[Any, Any] = plain(WORKER)
    body[1] = "x"
    with pytest.raises(ProtocolError, match="not valid msgpack"):
        decode(pack(body), WorkerInfo)
    nested = plain_maps(BATCH)
    nested["records"][0][2] = "x"
    with pytest.raises(ProtocolError, match="not valid msgpack"):
        decode(pack(nested), RecordBatch)


@pytest.mark.parametrize(("record", "why"), [(["test_id", "passed"], "a record row has 2 fields"),
                                             ("test_id", "TestRecord is not a map")])
def test_a_batch_with_a_record_neither_map_nor_row_names_the_record_type(record: Any, why: str) -> None:
    body = plain(BATCH)
    body["records"][1] = record
    with pytest.raises(ProtocolError, match=why):
        decode(pack(body), RecordBatch)


# --- fuzzing: only ProtocolError, or a well-typed message -----------------------------------------

FIELD_TYPES = {
    "outcome": Outcome, "duration_s": float, "started_at": float, "finished_at": float, "submitted_at": float,
    "expected_s": float, "attempt": int, "exit_code": int, "reported": int, "slots": int, "priority": int,
    "test_timeout_s": float, "deadline_s": float, "deadline_at": float, "rerun_failures": int, "strict_flaky": bool,
    "budget_s": float, "bounces": int, "seen_at": float, "infrastructure": bool,
    "setup_s": float, "call_s": float, "teardown_s": float, "maxfail": int, "verbose": int, "durations": int,
    "durations_min": float, "deselected": int, "seq": int, "startup_s": float, "start_after": float,
    "max_memory_bytes": int, "peak_rss_bytes": int, "cpu_s": float, "quarantine_flake_rate": float,
}
#: Fields that hold a nested message: checked field by field.
NESTED = {"env": SuiteEnv, "gates": Gates}
OPTIONAL_NUMBERS = {"min_pass_rate": float, "max_failures": int, "max_duration_regression": float, "max_flaky": int}


def assert_well_typed(obj: Any) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name in ("records", "decided"):
            assert isinstance(value, tuple)
            for r in value:
                assert isinstance(r, Record)
                assert_well_typed(r)
        elif f.name == "leaks":
            assert isinstance(value, tuple)
            for leak in value:
                assert isinstance(leak, Leak)
                assert_well_typed(leak)
        elif f.name == "session":
            assert isinstance(value, SessionInfo)
            assert_well_typed(value)
        elif f.name in NESTED:
            assert isinstance(value, NESTED[f.name])
            assert_well_typed(value)
        elif f.name in OPTIONAL_NUMBERS:
            assert value is None or (type(value) is OPTIONAL_NUMBERS[f.name]), (f.name, value)
        elif f.name == "stages":
            assert isinstance(value, tuple)
            for stage in value:
                assert isinstance(stage, Stage)
                assert_well_typed(stage)
        elif f.name == "install_mode":
            assert value in ("editable", "plain")
        elif f.name in ("test_ids", "pytest_args", "avoid", "split_off", "install", "quarantine"):
            assert isinstance(value, tuple) and all(isinstance(x, str) for x in value)
        elif f.name in ("param_index", "param_count", "split_seqs", "stage_of"):
            assert isinstance(value, tuple) and all(type(x) is int for x in value)
        elif f.name in ("sections", "requirements"):
            assert isinstance(value, tuple)
            for pair in value:
                assert isinstance(pair, tuple) and len(pair) == 2
                assert all(isinstance(x, str) for x in pair)
        else:
            kind = FIELD_TYPES.get(f.name, str)
            assert isinstance(value, kind) and (kind is bool or not isinstance(value, bool)), (f.name, value)


def decodes_safely(data: Any, expected: type) -> None:
    try:
        message: Any = decode(data, expected)
    except ProtocolError:
        return
    assert type(message) is expected
    assert_well_typed(message)


leaves = (
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.floats()
    | st.text(max_size=10) | st.binary(max_size=10)
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=4))
)
objects = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
TYPES = [type(m) for m in MESSAGES[::2]] + [WorkerInfo]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(TYPES))
def test_random_bytes_only_ever_raise_protocol_error(data: bytes, expected: type) -> None:
    decodes_safely(data, expected)


@settings(max_examples=120, deadline=None)
@given(objects, st.sampled_from(TYPES))
def test_random_msgpack_objects_only_ever_raise_protocol_error(obj: Any, expected: type) -> None:
    decodes_safely(pack(obj), expected)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(MESSAGES), st.data())
def test_a_mangled_field_decodes_well_typed_or_raises(message: Any, data: st.DataObject) -> None:
    body = plain_maps(message) if isinstance(message, RecordBatch) and data.draw(st.booleans()) else plain(message)
    target: Any = body
    if isinstance(message, RecordBatch) and body["records"] and data.draw(st.booleans()):
        target = body["records"][data.draw(st.integers(0, len(body["records"]) - 1))]
    name = data.draw(st.sampled_from(sorted(target) if isinstance(target, dict) else range(len(target))))
    if data.draw(st.booleans()):
        target[name] = data.draw(objects)
    else:
        del target[name]
    decodes_safely(pack(body), type(message))


@settings(max_examples=120, deadline=None)
@given(st.sampled_from(MESSAGES), st.data())
def test_flipped_bytes_never_escape_protocol_error(message: Any, data: st.DataObject) -> None:
    raw = bytearray(encode(message))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    decodes_safely(bytes(raw), type(message))


def test_a_batch_without_a_number_decodes_as_not_numbered_and_an_older_reader_ignores_one() -> None:
    """`seq` is optional both ways: a round-4 worker's batch has none (0), and a decoder that knows
    no `seq` field (an older coordinator) builds its RecordBatch from the fields it knows."""
    numbered = RecordBatch("s", "a", 1, "w", "n", RECORDS, seq=3)
    assert decode(encode(numbered), RecordBatch) == numbered
    body = msgpack.unpackb(encode(RecordBatch("s", "a", 1, "w", "n", seq=3)), raw=False)
    assert body["seq"] == 3
    del body["seq"]
    assert decode(msgpack.packb(body), RecordBatch).seq == 0

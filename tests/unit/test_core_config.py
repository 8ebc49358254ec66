"""Settings come from defaults overridden by FARM_* variables; bad values are one clear UsageError."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.config import Settings
from farm.errors import UsageError

MiB = 1024 * 1024


def test_defaults_with_an_empty_environment() -> None:
    s = Settings.from_env({})
    assert s == Settings()
    assert s.broker_url is None and s.state_url is None
    assert s.pool == "default"
    assert s.cache_dir == Path.home() / ".cache" / "farm"
    assert s.max_bundle_bytes == 64 * MiB
    assert s.output_cap_bytes == 64 * 1024
    assert s.longrepr_cap_bytes == 256 * 1024


def test_from_env_reads_os_environ_when_no_mapping_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FARM_POOL", "from-os-environ")
    assert Settings.from_env().pool == "from-os-environ"


def test_from_env_ignores_variables_outside_its_prefix() -> None:
    assert Settings.from_env({"BROKER_URL": "redis://x", "POOL": "p", "farm_pool": "p"}) == Settings()


@pytest.mark.parametrize(
    ("name", "value", "attribute", "expected"),
    [
        ("FARM_BROKER_URL", "redis://broker:6379/0", "broker_url", "redis://broker:6379/0"),
        ("FARM_STATE_URL", "redis://state:6379/1", "state_url", "redis://state:6379/1"),
        ("FARM_POOL", "gpu", "pool", "gpu"),
        ("FARM_CACHE_DIR", "/var/cache/farm", "cache_dir", Path("/var/cache/farm")),
        ("FARM_MAX_BUNDLE_MB", "8", "max_bundle_bytes", 8 * MiB),
        ("FARM_MAX_BUNDLE_MB", "0.5", "max_bundle_bytes", MiB // 2),
        ("FARM_OUTPUT_CAP_KB", "1", "output_cap_bytes", 1024),
        ("FARM_OUTPUT_CAP_KB", " 2 ", "output_cap_bytes", 2048),
        ("FARM_LONGREPR_CAP_KB", "1e3", "longrepr_cap_bytes", 1000 * 1024),
        ("FARM_COORDINATOR_VISIBILITY_S", "2m", "coordinator_visibility_s", 120),
        ("FARM_ASSIGNMENT_DEADLINE_FACTOR", "2.5", "assignment_deadline_factor", 2.5),
        ("FARM_ASSIGNMENT_DEADLINE_MIN_S", "90s", "assignment_deadline_min_s", 90.0),
    ],
)
def test_each_variable_overrides_its_default(name: str, value: str, attribute: str, expected: object) -> None:
    s = Settings.from_env({name: value})
    assert getattr(s, attribute) == expected
    others = {a: v for a, v in vars(Settings()).items() if a != attribute}
    assert {a: v for a, v in vars(s).items() if a != attribute} == others, "nothing else changes"


@pytest.mark.parametrize(
    "name",
    ["FARM_BROKER_URL", "FARM_STATE_URL", "FARM_CACHE_DIR", "FARM_MAX_BUNDLE_MB", "FARM_OUTPUT_CAP_KB"],
)
def test_an_empty_variable_counts_as_unset(name: str) -> None:
    assert Settings.from_env({name: ""}) == Settings()


def test_an_empty_pool_variable_counts_as_unset() -> None:
    assert Settings.from_env({"FARM_POOL": ""}).pool == "default"


@pytest.mark.parametrize("name", ["FARM_MAX_BUNDLE_MB", "FARM_OUTPUT_CAP_KB", "FARM_LONGREPR_CAP_KB",
                                  "FARM_ASSIGNMENT_DEADLINE_FACTOR"])
@pytest.mark.parametrize("value", ["ten", "10MB", "1,5", "0", "-1", "-0.5", "0x10"])
def test_a_bad_number_is_a_usage_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(UsageError, match=name) as info:
        Settings.from_env({name: value})
    assert repr(value) in str(info.value), "the message shows the value given"
    assert info.value.exit_code == 4


@pytest.mark.parametrize("value", ["inf", "nan", "1e400", "-nan"])
def test_non_finite_numbers_are_a_usage_error_naming_the_variable(value: str) -> None:
    with pytest.raises(UsageError, match="FARM_MAX_BUNDLE_MB"):
        Settings.from_env({"FARM_MAX_BUNDLE_MB": value})


def test_a_tiny_positive_size_does_not_become_zero() -> None:
    assert Settings.from_env({"FARM_OUTPUT_CAP_KB": "0.0001"}).output_cap_bytes > 0


def test_state_is_the_state_url_when_set() -> None:
    s = Settings.from_env({"FARM_BROKER_URL": "redis://b/0", "FARM_STATE_URL": "redis://s/1"})
    assert s.state == "redis://s/1"


def test_state_falls_back_to_the_broker_url() -> None:
    assert Settings.from_env({"FARM_BROKER_URL": "redis://b/0"}).state == "redis://b/0"


def test_state_without_any_broker_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no broker configured.*FARM_BROKER_URL"):
        _ = Settings.from_env({}).state


def test_state_url_alone_is_enough_for_state() -> None:
    assert Settings.from_env({"FARM_STATE_URL": "redis://s/1"}).state == "redis://s/1"


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        Settings().pool = "other"  # type: ignore[misc]


@pytest.mark.parametrize(("text", "seconds"), [("90", 90.0), ("90s", 90.0), ("1.5m", 90.0), ("2h", 7200.0),
                                               (" 3S ", 3.0), ("0.25", 0.25)])
def test_parse_duration_accepts_seconds_minutes_hours(text: str, seconds: float) -> None:
    from farm.config import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "5d", "-1", "0", "0s", "inf", "nan", "1e400", "m"])
def test_parse_duration_refuses_anything_else(text: str) -> None:
    from farm.config import parse_duration

    with pytest.raises(ValueError):
        parse_duration(text)

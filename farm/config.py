"""Configuration: one frozen dataclass, defaults in one place, read from the environment.

Command-line options override these (the CLI builds a Settings with `dataclasses.replace`);
environment variables override the defaults. Celery's own setting names appear only in
`farm.celery_app`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from farm.errors import UsageError


@dataclass(frozen=True)
class Settings:
    """Every tunable of farm, with its default (and the environment variable, where one sets it)."""

    # FARM_BROKER_URL: the Redis broker. None means: run an embedded farm for this one suite.
    broker_url: str | None = None
    # FARM_STATE_URL: where suite state, bundles and history live; defaults to the broker.
    state_url: str | None = None
    # FARM_POOL: the pool a suite targets and a worker serves.
    pool: str = "default"
    # FARM_CACHE_DIR: worker-side cache of bundles by digest, and scratch space for runs.
    cache_dir: Path = Path.home() / ".cache" / "farm"
    # FARM_MAX_BUNDLE_MB: the largest compressed bundle submit-suite accepts.
    max_bundle_bytes: int = 64 * 1024 * 1024
    # FARM_MAX_UNPACKED_MB: the largest a bundle may be unpacked (its tar archive: file contents at
    # their apparent size, a sparse file's holes included, plus tar's headers). Every run directory
    # unpacks it again; submit-suite refuses more (exit 4), and so does a worker that unpacks it.
    max_unpacked_bytes: int = 1024 * 1024 * 1024
    # FARM_OUTPUT_CAP_KB: captured stdout/stderr/log kept per test and section (pytest keeps all).
    output_cap_bytes: int = 64 * 1024
    # FARM_LONGREPR_CAP_KB: the longest failure report kept per test.
    longrepr_cap_bytes: int = 256 * 1024
    # Records sent per batch, and the longest a record waits in the worker before it is sent.
    batch_records: int = 500
    batch_interval_s: float = 0.25
    # Splitting: at most this many assignments per slot (more than one balances the end of the
    # run), and no assignment expected to take less than this when durations are known (each
    # assignment costs a pytest start-up, ~0.3 s here).
    assignments_per_slot: int = 4
    min_assignment_s: float = 3.0
    # Without recorded durations: no assignment smaller than this many tests.
    min_assignment_tests: int = 20
    # A suite of fewer tests runs one assignment per slot without durations, and as one assignment
    # when its recorded durations add up to less than 2 × min_assignment_s / 10 (two runner start-ups).
    small_suite_tests: int = 500
    # How long bundles, finished suites and duration history are kept in the state store.
    bundle_ttl_s: int = 7 * 24 * 3600
    # FARM_COLLECTION_CACHE: 0 turns off the collection cache (workers/collection_cache.py): a
    # second submission of the same bundle and arguments is planned from the first's collection,
    # kept as long as a bundle.
    collection_cache: bool = True
    # FARM_PARALLEL_COLLECTION: 0 collects a suite in one runner; on, a local worker with several
    # slots collects every K-th file in each of K runners at once (workers/collect_shards.py).
    parallel_collection: bool = True
    # FARM_LOCAL_STANDBY: 0 turns off the local backend's pre-started runners (workers/backends/local.py,
    # `farm worker --no-standby`): every assignment then starts a fresh `python -m pytest`.
    local_standby: bool = True
    # FARM_ENVS_DIR: where a worker keeps suite environments (workers/suite_envs.py), one virtualenv
    # per requirement set, project metadata and interpreter; None: CACHE/envs. The embedded farm and
    # `farm up` give their workers one in the user's cache, kept between runs (farm/cluster.py).
    envs_dir: Path | None = None
    # FARM_MAX_ENVS: suite environments kept; past it the least recently used is removed.
    max_envs: int = 8
    # FARM_ENV_INSTALLER: auto (uv when it is on PATH or importable, else pip), uv or pip.
    env_installer: str = "auto"
    suite_ttl_s: int = 7 * 24 * 3600
    history_ttl_s: int = 90 * 24 * 3600
    # FARM_HISTORY_RUNS: runs of a project its run history keeps (`farm history`): the last K run
    # entries, and each test's last K durations; the oldest are dropped (farm/run_history.py).
    history_runs: int = 50
    # FARM_LEASE_S: a running attempt whose worker has not renewed its lease for this long is
    # taken as lost, and its tests without an outcome run again as a new attempt.
    lease_s: float = 10.0
    # Every broker connection of every farm process gives up on a command after this many seconds
    # without an answer, and checks a connection idle this long before using it. Without them, a
    # cut link (packets dropped, no reset) is never noticed: a publish waits forever on the dead
    # socket (a worker's pool child blocked while sending, its runner running on). Above kombu's
    # BRPOP timeout (1 s), under the lease period, so a worker notices a cut before its lease ends.
    broker_socket_timeout_s: float = 5.0
    broker_health_check_s: int = 5
    # How many attempts an assignment gets before its remaining tests are reported not_run.
    max_attempts: int = 3
    # Redis visibility timeout: a task unacknowledged this long is redelivered. It must exceed
    # the longest assignment, or Redis runs long assignments twice (a known Celery/Redis trap).
    visibility_timeout_s: int = 12 * 3600
    # FARM_COORDINATOR_VISIBILITY_S: the same for the coordinator's queue, whose messages take
    # milliseconds to handle: what a killed coordinator had fetched comes back this soon.
    coordinator_visibility_s: int = 60
    # --deadline gives each assignment its own deadline too: this many times its tests'
    # recorded durations, and never less than the floor (FARM_ASSIGNMENT_DEADLINE_FACTOR,
    # FARM_ASSIGNMENT_DEADLINE_MIN_S). Without recorded durations only the suite's applies.
    assignment_deadline_factor: float = 3.0
    assignment_deadline_min_s: float = 30.0
    # How long a worker's announcement counts without a heartbeat (a killed worker's slots stop
    # counting for the split after this).
    worker_stale_s: float = 30.0
    # FARM_METRICS_PORT: the coordinator serves Prometheus /metrics on this loopback port
    # (coordinator/metrics.py); None: off, as a port is a thing an operator chooses (several
    # coordinators on one host would fight over any default).
    metrics_port: int | None = None

    @property
    def task_hard_limit_s(self) -> int:
        """Celery's hard time limit on a worker task: the pool child is killed past it. Half an
        hour under the visibility timeout, so Redis never redelivers a task that may still run."""
        return max(60, self.visibility_timeout_s - 1800)

    @property
    def envs_root(self) -> Path:
        """Where a worker keeps suite environments."""
        return self.envs_dir if self.envs_dir is not None else self.cache_dir / "envs"

    @property
    def state(self) -> str:
        """The state store URL (the broker's unless set apart)."""
        url = self.state_url or self.broker_url
        if url is None:
            raise UsageError("no broker configured: pass --broker URL or set FARM_BROKER_URL")
        return url

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Defaults overridden by FARM_* environment variables."""
        env = os.environ if env is None else env
        base = cls()
        try:
            return cls(
                broker_url=env.get("FARM_BROKER_URL") or None,
                state_url=env.get("FARM_STATE_URL") or None,
                pool=env.get("FARM_POOL") or base.pool,
                cache_dir=Path(env["FARM_CACHE_DIR"]) if env.get("FARM_CACHE_DIR") else base.cache_dir,
                max_bundle_bytes=_mb(env, "FARM_MAX_BUNDLE_MB", base.max_bundle_bytes),
                max_unpacked_bytes=_mb(env, "FARM_MAX_UNPACKED_MB", base.max_unpacked_bytes),
                output_cap_bytes=_kb(env, "FARM_OUTPUT_CAP_KB", base.output_cap_bytes),
                longrepr_cap_bytes=_kb(env, "FARM_LONGREPR_CAP_KB", base.longrepr_cap_bytes),
                collection_cache=_flag(env, "FARM_COLLECTION_CACHE", base.collection_cache),
                parallel_collection=_flag(env, "FARM_PARALLEL_COLLECTION", base.parallel_collection),
                local_standby=_flag(env, "FARM_LOCAL_STANDBY", base.local_standby),
                lease_s=parse_duration(env["FARM_LEASE_S"]) if env.get("FARM_LEASE_S") else base.lease_s,
                coordinator_visibility_s=max(1, round(parse_duration(env["FARM_COORDINATOR_VISIBILITY_S"])))
                if env.get("FARM_COORDINATOR_VISIBILITY_S") else base.coordinator_visibility_s,
                assignment_deadline_factor=_number(env, "FARM_ASSIGNMENT_DEADLINE_FACTOR",
                                                   base.assignment_deadline_factor),
                history_runs=_count(env, "FARM_HISTORY_RUNS", base.history_runs),
                envs_dir=Path(os.path.abspath(env["FARM_ENVS_DIR"])) if env.get("FARM_ENVS_DIR") else None,
                max_envs=_count(env, "FARM_MAX_ENVS", base.max_envs),
                env_installer=_choice(env, "FARM_ENV_INSTALLER", ("auto", "uv", "pip"), base.env_installer),
                metrics_port=_port(env, "FARM_METRICS_PORT"),
                assignment_deadline_min_s=parse_duration(env["FARM_ASSIGNMENT_DEADLINE_MIN_S"])
                if env.get("FARM_ASSIGNMENT_DEADLINE_MIN_S") else base.assignment_deadline_min_s,
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None


_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in '90', '90s', '1.5m' or '2h'; ValueError for anything else or a non-positive value."""
    raw = text.strip().lower()
    unit = raw[-1:] if raw[-1:] in ("s", "m", "h") else ""
    try:
        value = float(raw[: len(raw) - len(unit)]) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90, 90s, 1.5m, 2h)") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"a duration must be positive: {text!r}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be 0 or 1, not {raw!r}")


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {raw!r}")
    return raw


def _mb(env: Mapping[str, str], name: str, default: int) -> int:
    return _scaled(env, name, default, 1024 * 1024)


def _kb(env: Mapping[str, str], name: str, default: int) -> int:
    return _scaled(env, name, default, 1024)


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {raw!r}")
    return value


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {raw!r}")
    return int(raw)


def _port(env: Mapping[str, str], name: str) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ValueError(f"{name} must be a port between 1 and 65535, got {raw!r}")
    return int(raw)


def _scaled(env: Mapping[str, str], name: str, default: int, unit: int) -> int:
    if not env.get(name):
        return default
    return max(1, int(_number(env, name, default) * unit))

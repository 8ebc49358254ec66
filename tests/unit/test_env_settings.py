"""Suite environments' settings and the places they touch outside the cache: where environments are
kept, the collection cache's key, and a collection that could not build its environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.machine import collected
from farm.cluster import kept_envs_dir
from farm.config import Settings
from farm.errors import UsageError
from farm.model import Collection
from farm.states import SuiteStatus
from workers.tasks import WorkerContext


def test_environments_are_kept_under_the_cache_dir_unless_farm_envs_dir_says(tmp_path: Path) -> None:
    assert Settings.from_env({}).envs_root == Settings().cache_dir / "envs"
    assert Settings.from_env({"FARM_CACHE_DIR": "/var/cache/farm"}).envs_root == Path("/var/cache/farm/envs")
    assert Settings.from_env({"FARM_ENVS_DIR": str(tmp_path)}).envs_root == tmp_path


def test_the_bound_and_the_installer_are_read_and_checked() -> None:
    s = Settings.from_env({"FARM_MAX_ENVS": "3", "FARM_ENV_INSTALLER": "uv"})
    assert (s.max_envs, s.env_installer) == (3, "uv")
    assert (Settings().max_envs, Settings().env_installer) == (8, "auto")
    for env in ({"FARM_MAX_ENVS": "0"}, {"FARM_MAX_ENVS": "many"}, {"FARM_ENV_INSTALLER": "conda"}):
        with pytest.raises(UsageError, match=next(iter(env))) as info:
            Settings.from_env(env)
        assert info.value.exit_code == 4


def test_the_embedded_farms_environments_outlive_it_in_the_users_cache(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    assert kept_envs_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "farm" / "envs"
    monkeypatch.chdir(tmp_path)
    assert kept_envs_dir({"FARM_ENVS_DIR": "here/envs"}) == tmp_path / "here" / "envs"


class _Backend:
    name = "stub"

    def environment(self) -> str:
        return "interpreter"


def test_the_collection_key_names_the_suite_environment() -> None:
    ctx = WorkerContext(None, Settings(), _Backend(), None)  # type: ignore[arg-type]
    bare = ctx.collection_key("d" * 64, ("-q",))
    one = ctx.collection_key("d" * 64, ("-q",), "e" * 64)
    assert len({bare, one, ctx.collection_key("d" * 64, ("-q",), "f" * 64)}) == 3
    assert one == ctx.collection_key("d" * 64, ("-q",), "e" * 64)


def test_a_collection_without_its_environment_ends_the_suite_with_its_line() -> None:
    line = "could not build the suite's environment (installing: pip exit 1): ERROR: no (on w@h)"
    finish = collected(Collection("s", "w@h", 3, (), (), "the installer's last lines", infrastructure_error=line),
                       canceled=False)
    assert finish is not None
    assert (finish.status, finish.exit_code, finish.message) == (SuiteStatus.ERROR, 3, line)

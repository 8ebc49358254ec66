"""A worker that refuses a bundle (over its unpacked-size cap) fails the attempt with that line:
its tests would meet the same refusal again, so they are not handed back to bounce."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import redis

from farm import keys, signing
from farm.bundle import make_bundle
from farm.celery_app import RUN_ASSIGNMENT, make_app
from farm.config import Settings
from farm.model import Assignment, Completion
from farm.protocol import encode
from workers.backends import make_backend
from workers.tasks import WorkerContext, register


@dataclasses.dataclass
class _Recording(WorkerContext):
    """The real context (store, bundle cache, leases), with its completions kept instead of sent."""

    sent: list[Completion] = dataclasses.field(default_factory=list)

    def send_completion(self, completion: Completion) -> None:
        self.sent.append(completion)


def test_a_bundle_over_the_workers_cap_fails_the_attempt_instead_of_handing_it_back(
        redis_url: str, tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_a.py").write_text("def test_a():\n    pass\n" + "# padding\n" * 400)
    bundle = make_bundle(project, 64 * 2**20)
    settings = Settings(broker_url=redis_url, cache_dir=tmp_path / "cache", max_unpacked_bytes=4096)
    store = redis.Redis.from_url(redis_url)
    try:
        store.set(keys.bundle(bundle.digest), bundle.data)
        ctx = _Recording(make_app(settings, pools=("default",)), settings,
                         make_backend("local", scratch=tmp_path / "runs", python=None),
                         signing.Keyring(signing.Keys((signing.generate_secret().encode(),))), "w1@h")
        register(ctx)
        a = Assignment("s1", "s1-a000", 1, bundle.digest, (), ("tests/test_a.py::test_a",), 0.0)
        ctx.app.tasks[RUN_ASSIGNMENT].run(ctx.keyring.seal(RUN_ASSIGNMENT, encode(a)))
    finally:
        store.close()
    assert [c.state for c in ctx.sent] == ["failed"], ctx.sent
    assert "over this worker's cap (FARM_MAX_UNPACKED_MB)" in ctx.sent[0].message

"""farm.celery_app: the settings long tasks and restarts rely on (see docs/how-it-works.md)."""

from __future__ import annotations

from farm.celery_app import make_app
from farm.config import Settings

SETTINGS = Settings(broker_url="redis://127.0.0.1:1/0")


def test_workers_redeliver_only_after_the_hard_limit_and_the_coordinator_soon() -> None:
    pool = make_app(SETTINGS, pools=("default",)).conf.broker_transport_options
    coordinator = make_app(SETTINGS, coordinator=True).conf.broker_transport_options
    assert pool["visibility_timeout"] > SETTINGS.task_hard_limit_s
    assert coordinator["visibility_timeout"] == SETTINGS.coordinator_visibility_s < pool["visibility_timeout"]
    # Its own bookkeeping: a short timeout there must not redeliver the pools' running assignments.
    assert coordinator["unacked_index_key"] != pool.get("unacked_index_key", "unacked_index")
    assert coordinator["unacked_key"] != pool.get("unacked_key", "unacked")


def test_the_wire_never_carries_pickle_and_tasks_survive_lost_workers() -> None:
    conf = make_app(SETTINGS).conf
    assert "pickle" not in conf.accept_content and conf.task_serializer == "msgpack"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.worker_cancel_long_running_tasks_on_connection_loss
    assert conf.task_publish_retry and conf.task_publish_retry_policy["max_retries"] >= 30


def test_every_broker_socket_gives_up_on_a_dead_link_before_a_lease_ends() -> None:
    for app in (make_app(SETTINGS, pools=("default",)), make_app(SETTINGS, coordinator=True)):
        options = app.conf.broker_transport_options
        # Above kombu's BRPOP timeout (1 s), which a live broker always answers within; under the
        # lease, so a cut-off worker's publish fails before its attempt is taken as lost.
        assert 1 < options["socket_timeout"] < SETTINGS.lease_s
        assert 0 < options["socket_connect_timeout"] < SETTINGS.lease_s
        assert options["socket_keepalive"] and 0 < options["health_check_interval"] < SETTINGS.lease_s

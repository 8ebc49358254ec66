"""A service waiting for its broker: what it says while it waits, and what it does not wait for."""

from __future__ import annotations

import io

import pytest
import redis

from farm.cluster import free_port
from farm.errors import BrokerUnreachable
from farm.service_main import run_service, wait_for_broker


class _Gave(Exception):
    pass


def test_an_unreachable_broker_is_said_once_then_every_30s_without_a_traceback() -> None:
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"
    out = io.StringIO()
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if now[0] > 65:
            raise _Gave()

    with pytest.raises(_Gave):
        wait_for_broker(url, "coordinator", out=out, clock=lambda: now[0], sleep=sleep)
    lines = out.getvalue().splitlines()
    shown = url.replace(":secret@", ":***@")
    assert lines[0] == f"farm coordinator: waiting for the broker at {shown} (Connection refused); retrying"
    assert lines[1:] == [f"farm coordinator: still waiting for the broker at {shown} after {t}s (Connection refused)"
                         for t in (30, 60)]
    assert "secret" not in out.getvalue()


def test_a_broker_that_answers_is_not_waited_for_and_one_that_refuses_us_is_an_error(redis_url: str) -> None:
    out = io.StringIO()
    wait_for_broker(redis_url, "worker", out=out)
    assert out.getvalue() == "", "a broker that answers at once needs no word"
    with pytest.raises(BrokerUnreachable, match="DB index"):
        wait_for_broker(redis_url.rsplit("/", 1)[0] + "/99", "worker", out=out)
    redis.Redis.from_url(redis_url).config_set("requirepass", "right")  # this test's own server
    with pytest.raises(BrokerUnreachable, match="refused the connection"):
        wait_for_broker(redis_url.replace("redis://", "redis://:wrong@"), "worker", out=out)
    with pytest.raises(BrokerUnreachable, match="refused the connection"):
        wait_for_broker(redis_url, "worker", out=out)  # no password at all
    wait_for_broker(redis_url.replace("redis://", "redis://:right@"), "worker", out=out)
    assert out.getvalue() == ""


def test_a_service_that_fails_unexpectedly_says_so_in_one_line(capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FARM_DEBUG", raising=False)

    def broken() -> int:
        raise RuntimeError("boom")

    assert run_service(broken, "worker") == 3
    err = capsys.readouterr().err
    assert err == "farm worker: internal error: RuntimeError: boom (FARM_DEBUG=1 shows the traceback)\n"

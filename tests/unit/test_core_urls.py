"""farm.urls.redact, the one redaction of broker URLs that the client and the services show."""

from __future__ import annotations

import pytest

from farm import client, service_main
from farm.errors import UsageError
from farm.urls import redact


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
    ("redis://user:s3cret@host:6379/0", "redis://user:***@host:6379/0"),
    ("rediss://:p%40ss@host/1", "rediss://:***@host/1"),
    ("redis://host:6379/0", "redis://host:6379/0"),
    ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ("redis://[::1:s3cret@host/0", "***"),  # unparsable: nothing of it is shown
])
def test_the_password_is_never_shown(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_the_client_and_the_services_share_it() -> None:
    assert client.redact is redact
    assert service_main.redact is redact


def test_a_refused_url_is_shown_without_its_password() -> None:
    with pytest.raises(UsageError, match=r"unsupported broker URL 'http://:\*\*\*@host/0'") as info:
        client.check_broker_url("http://:s3cret@host/0")
    assert "s3cret" not in str(info.value)

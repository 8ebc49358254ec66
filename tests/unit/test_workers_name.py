"""The one name of a worker, whatever the user typed after --name."""

from __future__ import annotations

import re
import socket

from workers.service import worker_name


def test_a_bare_name_gets_this_host_as_celery_would_never_give_it() -> None:
    assert worker_name("wA", "default", "h1") == "wA@h1"


def test_a_full_name_is_kept_and_celery_abbreviations_are_expanded_before_anyone_sees_them() -> None:
    assert worker_name("wA@build-3", "default", "h1") == "wA@build-3"
    assert worker_name("wA@%h", "default", "h1") == f"wA@{socket.gethostname()}"


def test_without_a_name_the_worker_gets_a_unique_one_of_its_pool() -> None:
    assert re.fullmatch(r"farm-gpu-[0-9a-f]{6}@h1", worker_name(None, "gpu", "h1"))
    assert worker_name(None, "gpu", "h1") != worker_name(None, "gpu", "h1")

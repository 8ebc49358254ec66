"""workers.backends.ssh.remote_usage: what a remote runner's exit line says its tree used, and nothing
(unmeasured) from an older runner or a malformed line."""

from __future__ import annotations

from typing import Any

import pytest

from workers.backends.base import Usage
from workers.backends.ssh import remote_usage


def test_the_exit_line_gives_cpu_peak_and_what_was_left() -> None:
    frame = {"k": "exit", "code": 0, "cpu_s": 1.5, "peak_rss_bytes": 350 << 20, "left": [[1.8e9, "sleep 1013"]]}
    assert remote_usage(frame) == Usage(350 << 20, 1.5, ((1.8e9, "sleep 1013"),))


@pytest.mark.parametrize("frame", [
    {"k": "exit", "code": 0},  # a runner of an older farm, or a VM's
    {"k": "exit", "code": 0, "cpu_s": "lots"},
    {"k": "exit", "code": 0, "peak_rss_bytes": [1]},
    {"k": "exit", "code": 0, "left": [[1.0]]},
    {"k": "exit", "code": 0, "left": 3},
])
def test_an_exit_line_without_usable_figures_is_unmeasured(frame: dict[str, Any]) -> None:
    assert remote_usage(frame) == Usage()

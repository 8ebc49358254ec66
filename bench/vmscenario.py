"""Scenario `vm`, target (f): a one-test suite on `farm up --backend libvirt --warm 1` against
`farm up` with a local worker, submission to report, K runs each (median compared).

Needs root, libvirtd (`bash .ci/libvirt-setup`) and farm's libvirt extra; the image is built on
first use into ~/.cache/farm/images (docs/backends.md). QEMU runs under TCG here: CPU-heavy.
"""

from __future__ import annotations

import statistics
import subprocess
from pathlib import Path
from typing import Any

from bench import suites
from bench.core import Bench, target, wall

IMAGE = Path.home() / ".cache" / "farm" / "images" / "debian-bookworm"
LIMIT_S = 2.5
SYSTEM_PYTHON = "/usr/bin/python3"
VM_STARTUP_S = 900.0  # the first `farm up --backend libvirt` may build the image, then boots a VM


def vm(bench: Bench) -> dict[str, Any]:
    suite = bench.tmp / "vm"
    suites.trivial(suite, n=1)
    info: dict[str, Any] = {"tests": 1, "slots": 1, "suite": str(suite), "scale": bench.scale,
                            "image": str(IMAGE), "timings": [], "targets": []}
    info["warm_up"] = bench.warm_up("vm", suite, 1)
    startup = bench.startup_timeout_s
    # The VM runs its image's python3 (Debian's, pytest 7.2): the local worker gets the host's
    # Debian python3 when it has pytest, so both run the same pytest.
    local_python = SYSTEM_PYTHON if _has_pytest(SYSTEM_PYTHON) else bench.python
    info["local_python"] = local_python
    for farm in bench.farms:
        local = bench.cluster_runs("vm", farm, suite, 1, info, name=f"{farm.label} local", python=local_python)
        bench.startup_timeout_s = max(startup, VM_STARTUP_S)
        try:
            libvirt = bench.cluster_runs("vm", farm, suite, 1, info, name=f"{farm.label} libvirt",
                                         up_args=["--backend", "libvirt", "--warm", "1", "--image", str(IMAGE)],
                                         python="")
        finally:
            bench.startup_timeout_s = startup
        info["timings"] += local + libvirt
        local_s = [w for w in map(wall, local) if w is not None]
        vm_s = [w for w in map(wall, libvirt) if w is not None]
        measured = bool(local_s and vm_s) and len(local_s) == len(local) and len(vm_s) == len(libvirt)
        extra = statistics.median(vm_s) - statistics.median(local_s) if measured else None
        for row in libvirt:
            mine = wall(row)
            row["vs"]["local median"] = mine - statistics.median(local_s) if local_s and mine is not None else None
        info["targets"].append(target(f"(f) libvirt warm 1 median ≤ local median + {LIMIT_S:g} s", LIMIT_S,
                                      extra, farm.label, "s more"))
    info["about"] = ("one-test suite, submission to report; libvirt rows: `vs local median` = seconds more "
                     "than the local worker's median")
    return info


def _has_pytest(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", "import pytest"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False

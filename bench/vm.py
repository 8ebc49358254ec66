"""Benchmark the libvirt backend here: cold boot to ready, warm-pool acquire, and the cost of an
assignment of one trivial test in a VM (cold and warm) against the local backend.

    .venv/bin/python bench/vm.py [--image DIR] [--runs N] [--out FILE.json]

Needs libvirtd (bash .ci/libvirt-setup) and a built image (farm image build).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from workers.backends.libvirt import LibvirtBackend  # noqa: E402
from workers.backends.local import LocalBackend  # noqa: E402
from workers.image import DEFAULT_DIR, Image  # noqa: E402
from workers.image_check import run_one_test  # noqa: E402


def one_assignment(backend: Any, root: Path) -> float:
    started = time.monotonic()
    outcomes, message = run_one_test(backend, root)
    assert outcomes == ["passed"], (outcomes, message)
    return time.monotonic() - started


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--image", type=Path, default=DEFAULT_DIR)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    image = Image.load(args.image)
    with tempfile.TemporaryDirectory(prefix="farm-bench-vm-") as tmp:
        root = Path(tmp)
        local = [one_assignment(LocalBackend(scratch=root / "local"), root) for _ in range(args.runs)]
        cold_backend = LibvirtBackend(image, scratch=root / "cold")
        cold = [one_assignment(cold_backend, root) for _ in range(args.runs)]
        boots = list(cold_backend.boot_times)
        warm_backend = LibvirtBackend(image, scratch=root / "warm", warm=1)
        warm_backend.warm_up()
        acquire, warm = [], []
        for _ in range(args.runs):
            deadline = time.monotonic() + 120
            while not warm_backend._warm and time.monotonic() < deadline:  # a VM is ready in the pool
                time.sleep(0.1)
            vm, waited = warm_backend.acquire()
            acquire.append(waited)
            warm_backend._warm.insert(0, vm)  # put it back for the assignment to take
            warm.append(one_assignment(warm_backend, root))
        warm_backend.close()
        for b in (cold_backend, warm_backend):
            b.cleanup()
            b.disconnect()
    result = {
        "image": image.name, "runs": args.runs,
        "cold_boot_to_ready_s": boots, "warm_acquire_s": acquire,
        "assignment_local_s": local, "assignment_vm_cold_s": cold, "assignment_vm_warm_s": warm,
    }
    med = {k: round(statistics.median(v), 3) for k, v in result.items() if isinstance(v, list)}
    print(json.dumps({"median": med, **result}, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

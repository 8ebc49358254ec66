"""The health check of a backend: one trivial test run through it as a worker runs it (a libvirt
worker's start-up check, `farm image check`, the VM benchmarks). It sits above the backends and
the runner it drives, so their imports run one way."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from farm.bundle import make_bundle
from farm.config import Settings
from farm.errors import InfrastructureError
from farm.model import Assignment
from workers import runner
from workers.backends.base import ExecutionBackend
from workers.backends.libvirt import LibvirtBackend
from workers.image import Image


def check_backend(backend: ExecutionBackend) -> float:
    """Run a trivial test through `backend`; the seconds it took, or InfrastructureError."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="farm-check-") as tmp:
        outcomes, message = run_one_test(backend, Path(tmp))
    if outcomes != ["passed"]:
        raise InfrastructureError(f"the test in the image did not pass: {outcomes} ({message})")
    return time.monotonic() - started


def check_image(image: Image, uri: str) -> float:
    """Boot the image once and run a trivial test in it; the seconds it took."""
    with tempfile.TemporaryDirectory(prefix="farm-image-check-") as tmp:
        backend = LibvirtBackend(image, uri=uri, scratch=Path(tmp) / "runs")
        try:
            return check_backend(backend)
        finally:
            backend.disconnect()


def run_one_test(backend: ExecutionBackend, root: Path) -> tuple[list[str], str]:
    """Run an assignment of one trivial test through `backend`, as a worker does: its outcomes
    and its completion's message."""
    project = root / "one-test"
    project.mkdir(parents=True, exist_ok=True)
    (project / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    bundle = make_bundle(project, 1 << 20)
    archive = root / f"{bundle.digest}.tar.gz"
    archive.write_bytes(bundle.data)
    sink = runner.KeptRecords()
    a = Assignment("check", "check-a000", 1, bundle.digest, ("-q", "-p", "no:cacheprovider"),
                   ("test_one.py::test_one",))
    runner.run_assignment(a, backend=backend, bundle=lambda d: archive, sink=sink, worker="farm-image-check",
                          settings=Settings(), is_canceled=lambda: False)
    outcomes = [r.outcome.value for b in sink.batches for r in b.records]
    return outcomes, sink.completions[-1].message if sink.completions else "no completion"



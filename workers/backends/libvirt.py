"""The libvirt backend: each assignment runs in a VM of its own, booted from a clean overlay of
the base image, and destroyed (overlay deleted) when the run closes. No VM serves two suites.

Once a VM is ready (the worker logged in as root with the image's key, the guest's host key,
made when the image was built, checked with RejectPolicy), it is primed: a runner is started in
it that has imported pytest and the plugin and waits for its request (workers/backends/vm_run.py,
workers/vm_runner.py). With `warm`, each pool process keeps VMs booted and primed in the
background, so an assignment waits for neither a boot, a login nor Python. The one exception to
one run per VM: the VM that collected a suite is kept (HOLD_S) for that suite's first assignment
on this pool process, same bundle and arguments; the run gets a fresh directory and process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from farm import counters
from farm.errors import InfrastructureError
from farm.suite_env import SuiteEnv
from workers import remote_env
from workers.backends.base import HealthCheck, RunRequest
from workers.backends.local import plugin_digest
from workers.backends.ssh import SSHRun, upload_and_start
from workers.backends.vm import VM, boot, destroy, destroy_owned, open_connection, wait_ready
from workers.backends.vm_run import PYTHON, RUNNER_DIR, VM_RUNNER, VMRun, prime, send
from workers.image import Image
from workers.suite_envs import PreparedEnv

#: How long the VM that collected a suite waits for the suite's first assignment.
HOLD_S = 30.0
#: Failed boots in a row after which a worker stops consuming (and says why).
HEALTH_LIMIT = 3
#: Boots in a row that may fail the start-up health check of a libvirt worker.
HEALTH_TRIES = 3

log = logging.getLogger("farm.worker")


class LibvirtBackend:
    name = "libvirt"

    def prepare_env(self, env: SuiteEnv, archive: Path, bundle_digest: str) -> PreparedEnv:
        """Nothing on the worker: each run builds or reuses the suite's environment in its guest
        (workers/remote_env.py), from wheels the worker fetched."""
        return remote_env.prepared(env, archive)

    def __init__(self, image: Image, *, uri: str = "qemu:///system", scratch: Path | None = None,
                 owner: str | None = None, memory_mb: int = 512, vcpus: int = 1, warm: int = 0,
                 slots: int = 1) -> None:
        self.image = image
        self.uri = uri
        self.vms = (scratch or Path.home() / ".cache" / "farm" / "runs") / "vms"
        self.wheels = remote_env.WheelCache(self.vms.parent.parent / "wheels")
        self.owner = owner or str(self.vms.resolve())
        self.memory_mb, self.vcpus = memory_mb, vcpus
        self.warm_per_process = math.ceil(warm / max(1, slots)) if warm > 0 else 0
        self._conn: Any = None
        self._pid = 0
        self._warm: list[VM] = []
        self._warming = 0
        self._held: tuple[tuple[str, str, tuple[str, ...]], VM] | None = None  # (bundle, args), VM
        self._lock = threading.Lock()
        self._teardowns: list[threading.Thread] = []  # VMs being destroyed after their run
        self.boot_times: list[float] = []  # seconds from create to SSH ready, for the benchmarks
        self.failed_boots = 0  # in a row, in this process
        # Counts boots and failed boots where every coordinator reads them (farm.counters; the
        # worker sets it to the state store's): /metrics' farm_vm_boots and farm_vm_boot_failures.
        self.count: Callable[[str], None] = lambda name: None
        # From create to sshd, and again to the runner waiting in the guest. Under TCG on a loaded
        # 2-core machine a boot was seen to take 240-340 s (10 s when idle).
        self.boot_timeout_s = 300.0
        # Written after HEALTH_LIMIT failed boots in a row: the worker then stops consuming.
        self.health_file = self.vms.parent / "unhealthy"

    def conn(self) -> Any:
        """One libvirt connection per process (pool processes do not share the parent's)."""
        if self._conn is None or self._pid != os.getpid():
            self._conn, self._pid = open_connection(self.uri), os.getpid()
            self._warm, self._warming, self._held = [], 0, None
        return self._conn

    def prepare(self, check: HealthCheck, tries: int = HEALTH_TRIES) -> None:
        """Before consuming: destroy the VMs a killed predecessor left, then boot one VM and run a
        trivial test in it; after `tries` failures in a row the worker does not start, and says why."""
        gone = self.cleanup()
        self.disconnect()  # the pool forks next
        self.health_file.unlink(missing_ok=True)  # a new start, a new count
        if gone:
            log.warning("destroyed %d VMs left by an earlier run of this worker: %s", len(gone), ", ".join(gone))
        # The image hashed once for the collection cache, while the check boots: the pool's
        # processes inherit the digest (a second or more for the disk, hidden behind the boot).
        hashing = threading.Thread(target=self.environment, name="farm-image-digest", daemon=True)
        hashing.start()
        errors = []
        for _ in range(tries):
            with tempfile.TemporaryDirectory(prefix="farm-image-check-") as tmp:
                probe = LibvirtBackend(self.image, uri=self.uri, scratch=Path(tmp) / "runs")
                try:
                    seconds = check(probe)
                    log.info("health check: a VM booted and ran a test in %.1fs", seconds)
                    hashing.join()
                    return
                except InfrastructureError as exc:
                    errors.append(str(exc).splitlines()[0])
                finally:
                    probe.disconnect()
        raise InfrastructureError(f"health check failed {tries} times in a row, not consuming: {errors[-1]}")

    def environment(self) -> str:
        """The fingerprint of the guest's interpreter for the collection cache
        (workers/collection_cache.py): the image's content digest names the guest's Python and its
        installed distributions, as every VM boots a copy-on-write overlay of the same read-only
        disk; "" when the image cannot be read (then nothing is cached)."""
        try:
            image = self.image.digest()
        except OSError as exc:
            log.warning("not caching collections: cannot read the image %s: %s", self.image.root, exc)
            return ""
        return vm_fingerprint(image, PYTHON, self.vcpus, self.memory_mb, runner_digest())

    def process_started(self) -> None:
        self.warm_up()

    def shutdown(self) -> None:
        """Warm VMs live in libvirtd, not under the worker: destroy what it owns."""
        self.cleanup()

    def cleanup(self) -> list[str]:
        """Destroy what this worker had started before it was killed; the domains' names."""
        return destroy_owned(self.conn(), self.owner, self.vms)

    def disconnect(self) -> None:
        """Close this process's connection. Before the pool forks: a child that inherited it would
        close it for everyone when it exits (libvirt's connection is one socket)."""
        self.wait_teardowns()
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn, self._pid = None, 0

    def warm_up(self) -> None:
        """In a new pool process: start booting its warm VMs before the first assignment comes."""
        self.conn()
        self._refill()

    def _known_hosts(self, vm: VM) -> Path:
        return self.vms / f"{vm.name}.known_hosts"

    def _boot_ready(self) -> VM:
        try:
            vm = boot(self.conn(), self.image, self.vms, owner=self.owner, memory_mb=self.memory_mb,
                      vcpus=self.vcpus)
            try:
                wait_ready(vm, self._known_hosts(vm), timeout=self.boot_timeout_s)
                prime(vm, timeout=self.boot_timeout_s)
            except BaseException:
                self._discard(vm)
                raise
        except InfrastructureError as exc:
            self.count(counters.VM_BOOT_FAILURES)
            self._boot_failed(str(exc).splitlines()[0])
            raise
        self.count(counters.VM_BOOTS)
        self.failed_boots = 0
        self.boot_times.append(vm.ready_s)
        return vm

    def _boot_failed(self, why: str) -> None:
        self.failed_boots += 1
        if self.failed_boots >= HEALTH_LIMIT:
            self.health_file.parent.mkdir(parents=True, exist_ok=True)
            self.health_file.write_text(f"{self.failed_boots} VM boots failed in a row: {why}")

    def health(self) -> str:
        """Why this worker should stop consuming ("" while its VMs boot)."""
        try:
            return self.health_file.read_text().strip()
        except OSError:
            return ""

    def _discard(self, vm: VM) -> None:
        destroy(vm)
        self._known_hosts(vm).unlink(missing_ok=True)

    def _refill(self) -> None:
        """Boot VMs in the background until `warm` are ready or booting."""
        with self._lock:
            missing = self.warm_per_process - len(self._warm) - self._warming
            self._warming += max(0, missing)
        for _ in range(max(0, missing)):
            threading.Thread(target=self._warm_one, name="farm-warm-vm", daemon=True).start()

    def _warm_one(self) -> None:
        try:
            vm = self._boot_ready()
        except InfrastructureError:
            vm = None
        with self._lock:
            self._warming -= 1
            if vm is not None:
                self._warm.append(vm)

    def acquire(self) -> tuple[VM, float]:
        """A ready VM (a warm one if there is one) and the seconds the caller waited for it."""
        started = time.monotonic()
        self.conn()
        while True:
            with self._lock:
                vm = self._warm.pop(0) if self._warm else None
            if vm is None:
                break
            if not _usable(vm):
                self._discard(vm)
                continue
            return vm, time.monotonic() - started
        return self._boot_ready(), time.monotonic() - started

    def start(self, request: RunRequest) -> SSHRun:
        key = (_suite_of(request), str(request.bundle), request.pytest_args)
        vm = self._take_held(key) if request.mode == "run" else None
        if vm is None:
            vm, _ = self.acquire()
        if request.mode == "run":
            self._refill()  # the next VM boots while this one runs (a collection's VM may serve a run next)

        def diagnose() -> str:
            excerpt = vm.panic_excerpt()
            return f"kernel panic or oops on the VM's console:\n{excerpt}" if excerpt else ""

        node = f"vm:{vm.name} ({self.image.name})"
        if request.env:
            return self._start_in_env(vm, request, node, key, diagnose)
        try:
            workdir = send(vm, request)
        except (OSError, EOFError, ConnectionError) as exc:
            self._discard(vm)
            self._refill()
            raise InfrastructureError(f"{node}: could not start the runner: {exc} {diagnose()}".strip()) from None
        run = VMRun(vm, node, workdir, on_close=lambda: self._release(vm, run, request.mode, key),
                    diagnose=diagnose)
        return run

    def _start_in_env(self, vm: VM, request: RunRequest, node: str, key: tuple[str, str, tuple[str, ...]],
                      diagnose: Callable[[], str]) -> SSHRun:
        """A run of a suite with an environment: the environment built in the guest unless it has it
        (baked into the image, or built by this VM's collection), then a runner of its own under
        the environment's python (the primed one runs the image's pytest)."""
        try:
            ready = remote_env.ensure(vm.client, PYTHON, request.env, self.wheels, envs=remote_env.VM_ENVS,
                                      scratch=RUNNER_DIR, max_kept=remote_env.HOST_MAX_KEPT, node=node,
                                      where=f"image:{self.image.root}", bundle=request.bundle)
            python, request = ready.python, replace(request, paths=(*request.paths, *ready.paths))
        except InfrastructureError:
            self._discard(vm)
            self._refill()
            raise
        started: list[SSHRun] = []  # the run, once it exists: closing it hands the VM back

        def hand_back() -> None:
            if started:
                self._release(vm, started[0], request.mode, key)

        try:
            run = upload_and_start(vm.client, PYTHON, python, RUNNER_DIR, request, node=node, on_close=hand_back,
                                   diagnose=diagnose, close_client=False)
        except InfrastructureError:
            self._discard(vm)
            self._refill()
            raise
        started.append(run)
        return run

    def _release(self, vm: VM, run: SSHRun, mode: str, key: tuple[str, str, tuple[str, ...]]) -> None:
        """A run closed: keep the VM of a collection for the suite's first run, else destroy it."""
        if mode == "collect" and run.reusable() and _usable(vm):
            with self._lock:
                old, self._held = self._held, (key, vm)
            if old is not None:
                self._discard(old[1])
            timer = threading.Timer(HOLD_S, self._expire, (vm,))
            timer.daemon = True
            timer.start()
            return
        # Destroyed in the background: libvirtd takes a while (seconds on a loaded machine), and
        # nothing of the run is left in the guest (the runner killed what the tests started), so
        # the attempt's completion need not wait for it.
        teardown = threading.Thread(target=self._discard, args=(vm,), name="farm-vm-teardown", daemon=True)
        teardown.start()
        with self._lock:
            self._teardowns = [t for t in self._teardowns if t.is_alive()] + [teardown]
        if mode == "collect":
            self._refill()

    def wait_teardowns(self, timeout: float = 60.0) -> None:
        """Until the VMs of finished runs are destroyed and their overlays deleted."""
        with self._lock:
            pending, self._teardowns = self._teardowns, []
        for thread in pending:
            thread.join(timeout)

    def _take_held(self, key: tuple[str, str, tuple[str, ...]]) -> VM | None:
        with self._lock:
            if self._held is None or self._held[0] != key:
                return None
            vm, self._held = self._held[1], None
        if _usable(vm):
            return vm
        self._discard(vm)
        return None

    def _expire(self, vm: VM) -> None:
        """The suite's first run did not come to this process in time: the VM goes."""
        with self._lock:
            if self._held is None or self._held[1] is not vm:
                return
            self._held = None
        self._discard(vm)
        self._refill()

    def close(self) -> None:
        """Destroy the warm VMs and a kept one (a stopping worker)."""
        self.wait_teardowns()
        with self._lock:
            warm, self._warm = self._warm, []
            held, self._held = self._held, None
        for vm in warm + ([held[1]] if held else []):
            self._discard(vm)


def vm_fingerprint(image_digest: str, python: str, vcpus: int, memory_mb: int, runner: str) -> str:
    """What a collection in a VM depends on besides the bundle and the arguments (pure): the
    image's content, the guest interpreter the runner starts, the machine the guest sees (a
    suite may parametrize by CPU count) and the runner's own source (plugin and vm_runner)."""
    return json.dumps(["libvirt", image_digest, python, vcpus, memory_mb, runner])


def runner_digest() -> str:
    """The sha256 of what runs in the guest besides the image: the plugin and workers/vm_runner.py."""
    return hashlib.sha256(plugin_digest().encode() + VM_RUNNER.read_bytes()).hexdigest()


def _suite_of(request: RunRequest) -> str:
    """The suite a request belongs to, from its label: `SUITE-collect` for a collection, and
    `SUITE-aNNN-runnerN` (workers.runner.runner_label of the coordinator's `SUITE-aNNN`) for a run."""
    label = request.label
    if request.mode == "collect":
        return label.removesuffix("-collect")
    return label.rsplit("-", 2)[0] if label.count("-") >= 2 else label


def _usable(vm: VM) -> bool:
    """Whether a waiting VM can still take a run: no panic, still running, its runner waiting."""
    if vm.panic_excerpt() or not vm.domain.isActive():
        return False
    return vm.channel is not None and not vm.channel.closed and not vm.channel.exit_status_ready()

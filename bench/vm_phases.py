"""Where a libvirt assignment's time goes: the phases of a collection and a run on a warm VM,
timed from the worker's side, with the CPU the VM's QEMU process used in each (under TCG the
guest's work is QEMU's CPU time, a figure a loaded machine does not inflate as it does wall time).

    .venv/bin/python bench/vm_phases.py [--image DIR] [--path old|new] [--out FILE.json]

`--path old`: the steps of a run before the pre-started runner (workers.backends.ssh.start_on:
login, mkdir, SFTP of each file, python3 remote_runner.py starting pytest, rm -rf, destroy).
`--path new`: the backend as it runs now (the warm VM primed: logged in, runner waiting with pytest
imported; the collection's VM kept for the run). Also times, inside the guest, `python3 -c pass`
and `import pytest`, with `-X importtime`'s heaviest imports. Needs libvirtd and a built image.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from farm.bundle import make_bundle  # noqa: E402
from workers.backends.base import RunRequest, tests_file_text  # noqa: E402
from workers.backends.libvirt import LibvirtBackend  # noqa: E402
from workers.backends.local import PLUGIN_MODULE, plugin_files, runner_argv  # noqa: E402
from workers.backends.ssh import REMOTE_RUNNER, UNPACK_SOURCE, _cleanup, _run, connect  # noqa: E402
from workers.backends.ssh_hosts import SSHHost  # noqa: E402
from workers.backends.vm import VM, boot, wait_ready  # noqa: E402
from workers.image import DEFAULT_DIR, Image  # noqa: E402


def qemu_cpu(vm: VM) -> float:
    """CPU seconds (user + system) of the VM's QEMU process so far."""
    try:
        pid = int(Path(f"/var/run/libvirt/qemu/{vm.name}.pid").read_text())
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / 100.0
    except (OSError, ValueError):
        return 0.0


class Marks:
    def __init__(self, vm: VM) -> None:
        self.vm, self.rows = vm, []
        self.t0, self.c0, self.w0 = time.monotonic(), qemu_cpu(vm), _self_cpu()

    def __call__(self, name: str) -> None:
        self.rows.append({"phase": name, "wall_s": round(time.monotonic() - self.t0, 3),
                          "qemu_cpu_s": round(qemu_cpu(self.vm) - self.c0, 2),
                          "worker_cpu_s": round(_self_cpu() - self.w0, 3)})


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


#: As the worker labels them: the backend keeps a collection's VM for a run of the same suite.
LABELS = {"collect": "bench-collect", "run": "bench-a000-runner1"}


def request(mode: str, archive: Path) -> RunRequest:
    return RunRequest(mode=mode, bundle=archive, pytest_args=("-q", "-p", "no:cacheprovider"),
                      test_ids=("test_one.py::test_one",) if mode == "run" else (), label=LABELS[mode])


def old_path(backend: LibvirtBackend, vm: VM, req: RunRequest) -> list[dict[str, Any]]:
    """The steps of workers.backends.ssh.start_on and SSHRun.close, one by one."""
    mark = Marks(vm)
    host = SSHHost(vm.name, "127.0.0.1", vm.ssh_port, "root", python="python3", workdir="/tmp/farm-runs",
                   key=backend.image.client_key)
    client = connect(host, backend._known_hosts(vm))
    mark("ssh connect + login")
    wd = f"/tmp/farm-runs/{req.label}-{uuid.uuid4().hex[:8]}"
    _run(client, f"mkdir -p {wd}/plugin/{PLUGIN_MODULE}")
    mark("mkdir (an exec channel)")
    with client.open_sftp() as sftp:
        sftp.put(str(req.bundle), f"{wd}/bundle.tar.gz")
        for source, relative in plugin_files():
            sftp.put(str(source), f"{wd}/plugin/{relative}")
        sftp.put(str(REMOTE_RUNNER), f"{wd}/remote_runner.py")
        sftp.put(str(UNPACK_SOURCE), f"{wd}/farm_unpack.py")
        with sftp.open(f"{wd}/tests.json", "w") as fh:
            fh.write(tests_file_text(req))
        with sftp.open(f"{wd}/request.json", "w") as fh:
            fh.write(json.dumps({"argv": runner_argv("python3", req), "env": {
                "PYTHONPATH": f"{wd}/plugin", "PYTHONDONTWRITEBYTECODE": "1", "FARM_MODE": req.mode,
                "FARM_TESTS_FILE": f"{wd}/tests.json", "FARM_STACK_FILE": f"{wd}/stacks.txt"}, "niceness": 0}))
    mark(f"sftp session + upload ({len(plugin_files()) + 5} files)")
    channel = client.get_transport().open_session()  # type: ignore[union-attr]
    channel.exec_command(f"python3 {wd}/remote_runner.py {wd}")
    _frames(channel, mark, b"")
    _cleanup(client, wd)
    mark("rm -rf (an exec channel) + close")
    backend._discard(vm)
    mark("domain destroyed")
    return mark.rows


def _frames(channel: Any, mark: Marks, buffered: bytes) -> None:
    data, first = buffered, True
    while True:
        chunk = channel.recv(1 << 16)
        if not chunk:
            mark("channel closed")
            return
        data += chunk
        *lines, data = data.split(b"\n")
        for line in lines:
            if line.startswith(b'{"k": "pid"'):
                mark("runner started pytest (python start, unpack)")
            elif line.startswith(b'{"k": "exit"'):
                mark("exit frame (pytest ended)")
                return
            elif line.strip() and first:
                first = False
                mark("first record (pytest start + collection)")


def new_path(backend: LibvirtBackend, vm: VM, req: RunRequest) -> list[dict[str, Any]]:
    """One request through the backend as the worker makes it (start, read, close) on `vm`, the
    VM it will take (primed in the warm pool, or kept from the collection)."""
    mark = Marks(vm)
    run = backend.start(req)
    assert run.channel is vm.channel, "the backend took another VM"
    mark("request + bundle sent")
    first = True
    while run.poll() is None:
        for _ in run.read_lines(0.05):
            if first:
                first = False
                mark("first record (fork, pytest main, collection)")
    mark("exit frame (pytest ended)")
    run.close()
    mark("closed (VM kept for the run)" if backend._held else "closed (domain destroyed)")
    return mark.rows


def guest_figures(vm: VM) -> dict[str, str]:
    def sh(cmd: str) -> str:
        _, out, err = vm.client.exec_command(cmd)
        return (out.read() + err.read()).decode(errors="replace").strip()

    def timed(cmd: str) -> str:
        return sh(f"bash -c 'TIMEFORMAT=\"%R s real, %U s user, %S s sys\"; time {cmd} >/dev/null' 2>&1")

    return {
        "python3 -c pass": timed("python3 -c pass"),
        "python3 -c 'import pytest'": timed("python3 -c \"import pytest\""),
        "importtime top": sh("python3 -X importtime -c 'import pytest' 2>&1 | sort -t'|' -k2 -n | tail -6"),
        "modules without bytecode": sh(
            "python3 -c \"import pathlib, importlib.util as u; fs = [f for d in ('/usr/lib/python3.11', "
            "'/usr/lib/python3/dist-packages') for f in pathlib.Path(d).rglob('*.py')]; "
            "print(sum(not pathlib.Path(u.cache_from_source(str(f))).exists() for f in fs), 'of', len(fs))\""),
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--image", type=Path, default=DEFAULT_DIR)
    p.add_argument("--path", choices=("old", "new"), default="new")
    p.add_argument("--modes", default="collect,run", help="which requests, in order")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    image = Image.load(args.image)
    result: dict[str, Any] = {"image": image.name, "path": args.path}
    with tempfile.TemporaryDirectory(prefix="farm-bench-phases-") as tmp:
        root = Path(tmp)
        (root / "p").mkdir()
        (root / "p" / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
        bundle = make_bundle(root / "p", 1 << 20)
        archive = root / f"{bundle.digest}.tar.gz"
        archive.write_bytes(bundle.data)
        backend = LibvirtBackend(image, scratch=root / "runs")
        backend.boot_timeout_s = 900.0  # a loaded machine
        try:
            for mode in args.modes.split(","):
                started = time.monotonic()
                vm = None
                if args.path == "old":  # booted and logged in, as main's warm pool had it
                    vm = boot(backend.conn(), image, backend.vms, owner=backend.owner)
                    wait_ready(vm, backend._known_hosts(vm), timeout=900)
                elif mode == "collect":
                    vm = backend._boot_ready()
                if vm is not None:
                    result[f"{mode}: boot to ready s"] = round(time.monotonic() - started, 2)
                    result[f"{mode}: boot qemu CPU s"] = qemu_cpu(vm)
                if args.path == "old":
                    assert vm is not None
                    result[f"{mode}: guest"] = guest_figures(vm) if mode == "run" else {}
                    result[mode] = old_path(backend, vm, request(mode, archive))
                    backend.wait_teardowns()
                else:
                    if vm is not None:
                        result[f"{mode}: standby runner ready, qemu CPU s"] = qemu_cpu(vm)
                        backend._warm.append(vm)  # as the warm pool holds it
                    else:
                        assert backend._held is not None
                        vm = backend._held[1]
                    result[mode] = new_path(backend, vm, request(mode, archive))
                print(json.dumps({mode: result[mode]}), file=sys.stderr, flush=True)
        finally:
            backend.close()
            backend.cleanup()
            backend.disconnect()
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Hosts of our own on this machine, for the system tier: network namespaces joined to this one by
veth pairs, a password-protected redis-server on their links, and a farm with one `farm worker`
per namespace, as an operator runs one across hosts.

Only addresses of our own are used (10.213.X.Y/30 pairs, checked unused on this machine), only
inside namespaces we create; the namespaces and links go at teardown, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import msgpack
import psutil
import redis

from farm import keys, registry, signing
from farm.cluster import free_port
from farm.stored import run_from_row
from support.helpers import FARM, LEAN, runner_mode
from support.services import wait_for

IP = shutil.which("ip") or "/usr/sbin/ip"


@dataclass(frozen=True)
class Host:
    """A network namespace with one veth link to this machine: `gateway` is our side's address."""

    label: str
    netns: str
    outer: str  # the link's device on our side
    inner: str  # its device inside the namespace
    gateway: str
    address: str

    def exec(self, *argv: str) -> list[str]:
        """`argv` run inside the namespace."""
        return [IP, "netns", "exec", self.netns, *argv]

    def cut(self, how: str = "down") -> None:
        """Take the host off the network, nothing reset: `down`, its link goes down inside the
        namespace (it is told at once that the network is unreachable); `silent`, our end of the
        link goes down (the host sends on, into nothing: its connections just stop answering)."""
        subprocess.run(self._link(how, "down"), check=True)

    def mend(self, how: str = "down") -> None:
        subprocess.run(self._link(how, "up"), check=True)

    def _link(self, how: str, state: str) -> list[str]:
        if how == "down":
            return self.exec(IP, "link", "set", self.inner, state)
        assert how == "silent", how
        return [IP, "link", "set", self.outer, state]

    def reaches(self, port: int) -> bool:
        code = f"import socket; socket.create_connection(('{self.gateway}', {port}), 1)"
        probe = self.exec(sys.executable, "-c", code)
        return subprocess.run(probe, capture_output=True).returncode == 0


def _used_subnets() -> set[str]:
    out = subprocess.run([IP, "-o", "-4", "addr", "show"], capture_output=True, text=True, check=True).stdout
    return {word.rsplit(".", 1)[0] for word in out.split() if word.startswith("10.213.")}


@contextlib.contextmanager
def hosts(count: int) -> Iterator[list[Host]]:
    """`count` hosts, each a namespace with its own /30 link to this machine; deleted afterwards."""
    tag = uuid.uuid4().hex[:6]
    used = _used_subnets()
    free = [f"10.213.{n}" for n in random.sample(range(256), 256) if f"10.213.{n}" not in used]
    made: list[Host] = []
    try:
        for i in range(count):
            net = free[i]
            host = Host(f"host{i + 1}", f"farmhost-{tag}-{i + 1}", f"fh{tag}{i}o", f"fh{tag}{i}i",
                        f"{net}.1", f"{net}.2")
            subprocess.run([IP, "netns", "add", host.netns], check=True)
            made.append(host)
            subprocess.run([IP, "link", "add", host.outer, "type", "veth", "peer", "name", host.inner], check=True)
            subprocess.run([IP, "link", "set", host.inner, "netns", host.netns], check=True)
            subprocess.run([IP, "addr", "add", f"{host.gateway}/30", "dev", host.outer], check=True)
            subprocess.run([IP, "link", "set", host.outer, "up"], check=True)
            for argv in (["addr", "add", f"{host.address}/30", "dev", host.inner], ["link", "set", host.inner, "up"],
                         ["link", "set", "lo", "up"]):
                subprocess.run(host.exec(IP, *argv), check=True)
        yield made
    finally:
        for host in made:
            subprocess.run([IP, "netns", "del", host.netns], check=False)  # takes its end of the pair along
            subprocess.run([IP, "link", "del", host.outer], check=False, capture_output=True)


class HostFarm:
    """redis-server (with a password, on 127.0.0.1 and every host's gateway), a coordinator here,
    and a `farm worker` inside each host; every process logs to ROOT/LABEL.log."""

    def __init__(self, root: Path, hosts: list[Host], lease_s: str = "3") -> None:
        self.root, self.hosts, self.lease_s = root, hosts, lease_s
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        root.mkdir(parents=True, exist_ok=True)
        self.key_file = signing.write_key_file(root / "signing.key")  # the farm's, as farm up makes one

    def url(self, address: str = "127.0.0.1") -> str:
        return f"redis://:{self.password}@{address}:{self.port}/0"

    def store(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=self.password)

    def start(self, slots: dict[str, int]) -> None:
        """Redis, the coordinator, and a worker named after its host, with its slots, in each host."""
        data = self.root / "redis"
        data.mkdir(parents=True)
        binds = " ".join(["127.0.0.1", *(h.gateway for h in self.hosts)])
        self._spawn("redis", ["redis-server", "--port", str(self.port), "--bind", binds, "--dir", str(data),
                              "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
                              "--requirepass", self.password])
        wait_for(self._pings, 20, "redis-server did not start")
        for host in self.hosts:
            wait_for(lambda host=host: host.reaches(self.port), 20, f"{host.label} does not reach redis")
        self._spawn("coordinator", [FARM, "coordinator", "--loglevel", "INFO"], self.url())
        for host in self.hosts:
            self._spawn(host.label, host.exec(FARM, "worker", "--name", host.label, "--slots", str(slots[host.label]),
                                              "--cache-dir", str(self.root / f"cache-{host.label}"),
                                              "--loglevel", "INFO"), self.url(host.gateway))
        store = self.store()
        wait_for(lambda: {w.name.split("@")[0] for w in registry.alive(store, 30)} >= set(slots), 60,
                 "the workers did not all register")

    def worker(self, label: str) -> psutil.Process:
        return psutil.Process(self.procs[label].pid)

    def runners(self, label: str) -> list[psutil.Process]:
        """The pytest runners (not collections) below a host's worker: told by their run directory
        (`runner_mode`), as a pre-started runner keeps its standby's command line."""
        return [proc for proc in self.worker(label).children(recursive=True) if runner_mode(proc) == "run"]

    def submit(self, project: Path, *pytest_args: str) -> str:
        done = self.farm("submit-suite", str(project), "--no-wait", "--", *LEAN, *(pytest_args or ("tests",)))
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def farm(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """The farm command as a user runs it, the broker (with its password) in FARM_BROKER_URL."""
        return subprocess.run([FARM, *args], env=self._env(self.url()), capture_output=True, text=True,
                              timeout=timeout, cwd=self.root)

    def test_runs(self, suite_id: str) -> list[dict[str, object]]:
        """Every test run stored for the suite (the report's `attempts` entries, fenced ones too)."""
        stored = self.store().hvals(keys.attempts(suite_id))
        return [asdict(run_from_row(msgpack.unpackb(v, raw=False))) for v in stored]

    def output(self, label: str) -> str:
        return (self.root / f"{label}.log").read_text(errors="replace")

    def signal_tree(self, label: str, sig: signal.Signals) -> list[psutil.Process]:
        """Send `sig` to a host's worker and every process below it (runners have sessions of their own)."""
        tree = [self.worker(label), *self.worker(label).children(recursive=True)]
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)
        return tree

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            tree = []
            with contextlib.suppress(psutil.Error):
                tree = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
            for p in tree:
                with contextlib.suppress(psutil.Error):
                    p.send_signal(signal.SIGCONT)
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for p in tree:
                with contextlib.suppress(psutil.Error):
                    p.kill()
            psutil.wait_procs(tree, timeout=10)
        self.procs.clear()

    def _pings(self) -> bool:
        try:
            return bool(self.store().ping())
        except redis.ConnectionError:
            return False

    def _env(self, broker: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
        env["FARM_LEASE_S"] = self.lease_s
        env["FARM_SIGNING_KEY_FILE"] = str(self.key_file)
        if broker:
            env["FARM_BROKER_URL"] = broker  # not on the command line, where ps would show the password
        return env

    def _spawn(self, label: str, argv: list[str], broker: str | None = None) -> None:
        with open(self.root / f"{label}.log", "ab") as log:
            self.procs[label] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                                 env=self._env(broker), start_new_session=True, cwd=self.root)


@contextlib.contextmanager
def host_farm(root: Path, count: int, slots: dict[str, int]) -> Iterator[HostFarm]:
    """A HostFarm on `count` new hosts, started; stopped and its hosts deleted afterwards."""
    with hosts(count) as made:
        farm = HostFarm(root, made)
        try:
            farm.start(slots)
            yield farm
        finally:
            farm.stop()

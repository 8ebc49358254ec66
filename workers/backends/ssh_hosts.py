"""The hosts file of the SSH backend (TOML, read with the standard library's tomllib). Pure.

    known_hosts = "/etc/farm/known_hosts"      # required: host keys are checked, never learned
    key = "/etc/farm/id_ed25519"               # default private key for every host

    [[host]]
    name = "build-1"                           # how reports name it (node "ssh:build-1")
    address = "build-1.example.org"
    port = 22                                  # optional, default 22
    user = "farm"                              # optional, default "root"
    slots = 2                                  # assignments at once on this host, default 1
    python = "python3"                         # the interpreter with pytest, default python3
    workdir = "/tmp/farm-runs"                 # where runs are unpacked, default /tmp/farm-runs
    envs = "~/.cache/farm/envs"                # where suite environments are kept on the host (default)
    key = "/etc/farm/build-1.key"              # optional, overrides the default key
    proxy = "ssh -W %h:%p bastion"             # optional ProxyCommand (%h, %p substituted)

Relative paths are taken from the file's directory.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from farm.errors import UsageError


@dataclass(frozen=True)
class SSHHost:
    name: str
    address: str
    port: int = 22
    user: str = "root"
    slots: int = 1
    python: str = "python3"
    workdir: str = "/tmp/farm-runs"
    envs: str = "~/.cache/farm/envs"  # suite environments on the host (`~`: the remote user's home)
    key: Path | None = None
    proxy: str = ""


@dataclass(frozen=True)
class HostsFile:
    known_hosts: Path
    hosts: tuple[SSHHost, ...]

    @property
    def slots(self) -> int:
        return sum(h.slots for h in self.hosts)


_FIELDS = {"name": str, "address": str, "port": int, "user": str, "slots": int, "python": str, "workdir": str,
           "envs": str, "key": str, "proxy": str}


def load_hosts(path: Path) -> HostsFile:
    """Read and check a hosts file; UsageError (one line) for anything wrong with it."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read the hosts file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"the hosts file {path} is not valid TOML: {exc}") from None
    return parse_hosts(data, base=path.parent, source=str(path))


def parse_hosts(data: dict[str, Any], *, base: Path, source: str = "the hosts file") -> HostsFile:
    known = data.get("known_hosts")
    if not isinstance(known, str) or not known:
        raise UsageError(f"{source}: known_hosts = PATH is required (host keys are checked, never learned)")
    default_key = data.get("key")
    if default_key is not None and not isinstance(default_key, str):
        raise UsageError(f"{source}: key must be a path")
    entries = data.get("host")
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"{source}: no [[host]] entries")
    hosts = []
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise UsageError(f"{source}: host {i} is not a table")
        unknown = set(entry) - set(_FIELDS)
        if unknown:
            raise UsageError(f"{source}: host {i} has unknown field {sorted(unknown)[0]!r}")
        for name, kind in _FIELDS.items():
            if name in entry and (not isinstance(entry[name], kind) or isinstance(entry[name], bool)):
                raise UsageError(f"{source}: host {i}: {name} must be {'a number' if kind is int else 'a string'}")
        if not entry.get("name") or not entry.get("address"):
            raise UsageError(f"{source}: host {i} needs a name and an address")
        if entry.get("slots", 1) < 1 or not 0 < entry.get("port", 22) < 65536:
            raise UsageError(f"{source}: host {entry['name']}: slots must be at least 1 and port in 1..65535")
        key = entry.get("key", default_key)
        hosts.append(SSHHost(**{**entry, "key": _path(base, key) if key else None}))
    names = [h.name for h in hosts]
    if len(set(names)) != len(names):
        raise UsageError(f"{source}: host names must be unique")
    return HostsFile(_path(base, known), tuple(hosts))


def _path(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p

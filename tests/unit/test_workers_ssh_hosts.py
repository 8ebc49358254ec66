"""workers.backends.ssh_hosts: the hosts file is checked, every mistake a one-line UsageError."""

from __future__ import annotations

from pathlib import Path

import pytest

from farm.errors import UsageError
from workers.backends.ssh_hosts import SSHHost, load_hosts, parse_hosts

BASE = Path("/etc/farm")


def test_a_full_file_with_defaults_and_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "hosts.toml"
    path.write_text('''
known_hosts = "known_hosts"
key = "/keys/id"
[[host]]
name = "a"
address = "10.0.0.1"
[[host]]
name = "b"
address = "b.example.org"
port = 2222
user = "farm"
slots = 3
python = "/opt/py/bin/python3"
key = "b.key"
proxy = "ssh -W %h:%p bastion"
''')
    hosts = load_hosts(path)
    assert hosts.known_hosts == tmp_path / "known_hosts"
    assert hosts.hosts[0] == SSHHost("a", "10.0.0.1", key=Path("/keys/id"))
    b = hosts.hosts[1]
    assert (b.port, b.user, b.slots, b.python, b.key, b.proxy) == (
        2222, "farm", 3, "/opt/py/bin/python3", tmp_path / "b.key", "ssh -W %h:%p bastion")
    assert hosts.slots == 4


@pytest.mark.parametrize(("data", "message"), [
    ({"host": [{"name": "a", "address": "x"}]}, "known_hosts = PATH is required"),
    ({"known_hosts": "k"}, "no \\[\\[host\\]\\] entries"),
    ({"known_hosts": "k", "host": [{"name": "a"}]}, "needs a name and an address"),
    ({"known_hosts": "k", "host": [{"name": "a", "address": "x", "slots": 0}]}, "slots must be at least 1"),
    ({"known_hosts": "k", "host": [{"name": "a", "address": "x", "port": 70000}]}, "port in 1..65535"),
    ({"known_hosts": "k", "host": [{"name": "a", "address": "x", "port": "22"}]}, "port must be a number"),
    ({"known_hosts": "k", "host": [{"name": "a", "address": "x", "slots": True}]}, "slots must be a number"),
    ({"known_hosts": "k", "host": [{"name": "a", "address": "x", "passwd": "x"}]}, "unknown field 'passwd'"),
    ({"known_hosts": "k", "host": [{"name": "a", "address": "x"}, {"name": "a", "address": "y"}]}, "unique"),
])
def test_mistakes_are_usage_errors(data: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        parse_hosts(data, base=BASE)
    assert "\n" not in str(info.value) and info.value.exit_code == 4


def test_an_unreadable_or_invalid_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read the hosts file"):
        load_hosts(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[host]\nname = ")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_hosts(bad)

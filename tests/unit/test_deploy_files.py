"""Deploy files (ansible/, compose/): they parse, validate, and keep Redis and Flower off the network."""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = ROOT / "ansible"
COMPOSE = ROOT / "compose"
COMPOSE_FILE = COMPOSE / "docker-compose.yml"
YAML_FILES = sorted(p for d in (ANSIBLE, COMPOSE) for p in d.rglob("*") if p.suffix in {".yml", ".yaml"})
PLAYBOOKS = ("site.yml", "local.yml", "preflight.yml")
# Files that may start Flower, checked line by line; compose is checked as structure instead.
FLOWER_TEXT_FILES = sorted(
    [p for p in ANSIBLE.rglob("*") if p.is_file()] + [COMPOSE / "README.md", ROOT / "docs" / "operations.md"]
)
A_REDIS_PASSWORD = "0123456789abcdef0123"


def missing_tool(message: str) -> NoReturn:
    """A tool a test needs is absent: a failure under CI, a skip elsewhere."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{message}; under CI a missing tool is a failure", pytrace=False)
    pytest.skip(message)


def is_loopback(address: str) -> bool:
    address = address.strip("[]")
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def load_compose(text: str) -> dict[str, Any]:
    document = yaml.safe_load(text)
    assert isinstance(document, dict) and isinstance(document.get("services"), dict)
    return document


def command_words(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    words = shlex.split(command) if isinstance(command, str) else [str(w) for w in command]
    # `sh -c "exec farm ..."`: the words of the shell command line count too.
    return [part for word in words for part in ([word] if " " not in word else [word, *shlex.split(word)])]


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return {k: (v if sep else None) for k, sep, v in (item.partition("=") for item in env)}
    return {str(k): (None if v is None else str(v)) for k, v in env.items()}


def published(service: dict[str, Any]) -> list[str]:
    """The host address of every port the service publishes ("" means every interface)."""
    addresses = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):  # long syntax, and `docker compose config` output
            addresses.append(str(port.get("host_ip") or ""))
        else:  # "C", "H:C", "IP:H:C", "[::1]:H:C", each maybe with "/proto"
            parts = str(port).split("/")[0].rsplit(":", 2)
            addresses.append(parts[0] if len(parts) == 3 else "")
    return addresses


def has_basic_auth(service: dict[str, Any]) -> bool:
    in_command = any(w.startswith("--basic-auth") for w in command_words(service))
    return in_command or bool(environment(service).get("FLOWER_BASIC_AUTH"))


def runs_flower(service: dict[str, Any]) -> bool:
    return "flower" in command_words(service)


def check_compose_exposure(document: dict[str, Any]) -> None:
    services = document["services"]
    for name, service in services.items():
        assert service.get("network_mode") != "host", f"{name}: host networking publishes every port"
        for address in published(service):
            assert is_loopback(address), f"{name} publishes a port on {address or 'every interface'}"
    flowers = [s for s in services.values() if runs_flower(s)]
    assert flowers, "no service runs flower"
    for service in flowers:
        assert has_basic_auth(service) or all(is_loopback(a) for a in published(service))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def ansible_defaults() -> dict[str, Any]:
    defaults = yaml.safe_load((ANSIBLE / "group_vars" / "all.yml").read_text())
    assert isinstance(defaults, dict)
    return defaults


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_deploy_yaml_file_parses(path: Path) -> None:
    assert yaml.safe_load(path.read_text()) is not None


def test_the_deploy_files_exist() -> None:
    names = {str(p.relative_to(ROOT)) for p in YAML_FILES}
    assert {"compose/docker-compose.yml", "ansible/group_vars/all.yml"} <= names
    assert {f"ansible/{p}" for p in PLAYBOOKS} <= names


def test_compose_publishes_ports_on_loopback_only_and_flower_only_that_way(compose: dict[str, Any]) -> None:
    check_compose_exposure(compose)


@pytest.mark.parametrize(
    "ports",
    [["5555:5555"], ["5555"], ["0.0.0.0:5555:5555"], [{"target": 5555, "published": 5555}]],
    ids=["host:container", "container only", "all interfaces", "long syntax"],
)
def test_compose_exposure_check_refuses_a_port_beyond_loopback(
    compose: dict[str, Any], ports: list[Any]
) -> None:
    flower = {**compose["services"]["flower"], "ports": ports}
    document = {"services": {**compose["services"], "flower": flower}}
    with pytest.raises(AssertionError):
        check_compose_exposure(document)


def test_compose_redis_is_unpublished_or_has_a_password_and_keeps_an_append_only_file(
    compose: dict[str, Any],
) -> None:
    redis = [s for s in compose["services"].values() if str(s.get("image", "")).startswith("redis")]
    assert redis, "no redis service"
    for service in redis:
        words = command_words(service)
        assert not published(service) or "--requirepass" in words
        assert words[words.index("--appendonly") + 1] == "yes"


def test_compose_worker_scales_and_takes_broker_and_slots_from_the_environment(
    compose: dict[str, Any],
) -> None:
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and not worker.get("ports"), "--scale needs no fixed name or port"
    assert {"FARM_BROKER_URL", "FARM_SLOTS"} <= environment(worker).keys()
    assert "$$FARM_SLOTS" in " ".join(command_words(worker))
    assert worker["build"] == {"context": "..", "dockerfile": "compose/Dockerfile"}


def test_ansible_defaults_keep_redis_and_flower_on_loopback_and_hold_no_secret(
    ansible_defaults: dict[str, Any],
) -> None:
    assert is_loopback(ansible_defaults["farm_flower_address"])
    assert ansible_defaults["farm_flower_basic_auth"] == ""
    assert ansible_defaults["farm_redis_password"] == ""


def test_every_flower_command_line_binds_loopback_or_requires_basic_auth(
    ansible_defaults: dict[str, Any],
) -> None:
    found = []
    for path in FLOWER_TEXT_FILES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not re.search(r"\bflower\s+--", line):
                continue
            where = f"{path.relative_to(ROOT)}:{number}"
            found.append(where)
            if "--basic-auth" in line:
                continue
            # Flower's own default address is every interface: the address must be given.
            match = re.search(r"--address[= ](\{\{\s*(\w+)\s*\}\}|[^\s`'\"]+)", line)
            assert match, f"{where}: flower without --address listens on every interface"
            address = str(ansible_defaults[match[2]]) if match[2] else match[1]
            assert is_loopback(address), f"{where}: flower on {address} without --basic-auth"
    assert any(w.startswith("ansible/") for w in found), "no flower command line in ansible/"


# --- With the real tools: ansible-playbook and docker-compose -----------------------------


def ansible_playbook() -> str:
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    exe = shutil.which("ansible-playbook", path=search)
    if exe is None:
        missing_tool("ansible-playbook not found (pip install ansible-core)")
    return exe


def run_playbook(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(tmp_path)}
    command = [ansible_playbook(), *args]
    return subprocess.run(command, check=False, cwd=ANSIBLE, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_passes_ansible_syntax_check(tmp_path: Path, playbook: str) -> None:
    result = run_playbook(tmp_path, "-i", "inventory.example.ini", "--syntax-check", playbook)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("inventory", "extra", "accepted"),
    [
        ("localhost,", {}, True),
        ("inventory.example.ini", {}, False),
        ("inventory.example.ini", {"farm_redis_password": A_REDIS_PASSWORD}, True),
        ("localhost,", {"farm_redis_password": "short"}, False),
        ("localhost,", {"farm_flower_address": "0.0.0.0"}, False),
        ("localhost,", {"farm_flower_address": "0.0.0.0", "farm_flower_basic_auth": "admin:secret"}, True),
    ],
    ids=[
        "one machine, loopback",
        "several hosts, no Redis password",
        "several hosts, Redis password",
        "short Redis password",
        "flower on every interface",
        "flower on every interface with basic auth",
    ],
)
def test_preflight_refuses_redis_or_flower_beyond_loopback_without_a_password(
    tmp_path: Path, inventory: str, extra: dict[str, str], accepted: bool
) -> None:
    extra_args = [arg for name, value in extra.items() for arg in ("-e", f"{name}={value}")]
    result = run_playbook(tmp_path, "-i", inventory, "-c", "local", *extra_args, "preflight.yml")
    assert (result.returncode == 0) is accepted, result.stdout + result.stderr


def compose_command() -> list[str]:
    exe = shutil.which("docker-compose")
    if exe is not None:
        return [exe]
    docker = shutil.which("docker")
    if docker is not None:
        plugin = subprocess.run([docker, "compose", "version"], check=False, capture_output=True, timeout=60)
        if plugin.returncode == 0:
            return [docker, "compose"]
    missing_tool("neither docker-compose nor the docker compose plugin found (apt-get install docker-compose)")


def test_compose_file_passes_compose_config_and_its_rendering_exposes_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FARM_", "FLOWER_"))}
    result = subprocess.run(
        [*compose_command(), "-f", str(COMPOSE_FILE), "config"],
        check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    check_compose_exposure(load_compose(result.stdout))

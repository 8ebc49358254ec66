"""Wheels built on the worker for a remote target from packages the index has only as an sdist:
`pip download --only-binary=:all:` for the target's tags names the first such requirement it
could not satisfy; the worker builds it with `pip wheel --no-deps` and keeps the result only if
it is pure Python (`-none-any`), which any target installs. A package that builds a compiled
wheel could only run on the worker's own platform: it is refused, naming it.

`to_build`, `is_pure` and `judge` are pure; `build_pure` runs pip on the worker.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Collection
from pathlib import Path

#: The longest one `pip wheel` of an sdist may take.
BUILD_TIMEOUT_S = 900.0
_MISSING = re.compile(r"No matching distribution found for (\S+)")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def to_build(pip_output: str, tried: Collection[str]) -> str | None:
    """The requirement a failed `pip download --only-binary=:all:` found no wheel for
    (`docopt>=0.6`), to build from its sdist; None when pip failed otherwise, or for a
    requirement already built (its wheel did not satisfy pip: building again would not either)."""
    found = _MISSING.findall(pip_output)
    if not found or found[-1] in tried or not _NAME.match(found[-1]):
        return None
    return str(found[-1])


def project_name(requirement: str) -> str:
    """`docopt>=0.6` -> `docopt`."""
    match = _NAME.match(requirement)
    return match.group(0) if match else requirement


def _canonical(name: str) -> str:
    """A project name as the index compares them (PEP 503: `Foo_Bar` is `foo-bar`)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_pure(wheel: str) -> bool:
    """Whether a wheel file name's ABI and platform tags are `none` and `any` (`x-1-py3-none-any.whl`)."""
    parts = wheel.removesuffix(".whl").split("-")
    return wheel.endswith(".whl") and len(parts) >= 5 and parts[-2:] == ["none", "any"]


NO_SDIST = "no sdist"
BUILT = "built"


def judge(requirement: str, target: str, returncode: int, output: str, wheels: list[str]) -> tuple[str, str]:
    """What a `pip wheel` of `requirement`'s sdist came to: (BUILT, ""), (NO_SDIST, "") when the
    index has no sdist of it either, or ("failed" / "compiled", the one line saying why)."""
    if returncode != 0:
        wanted = _canonical(project_name(requirement))
        if any(_canonical(project_name(m)) == wanted for m in _MISSING.findall(output)):
            return NO_SDIST, ""  # (not a build dependency of it missing: that is its build failing)
        return "failed", (f"{requirement}: no wheel for {target} on the index, and its sdist did not build on "
                          f"the worker: pip wheel exit {returncode}")
    if not wheels:
        return "failed", f"{requirement}: no wheel for {target} on the index, and pip wheel made none from its sdist"
    compiled = [w for w in wheels if not is_pure(w)]
    if compiled:
        return "compiled", (f"{requirement}: no wheel for {target} on the index, and its sdist builds a compiled "
                            f"wheel ({compiled[0]}) that the worker cannot build for the remote")
    return BUILT, ""


def build_pure(python: str, requirement: str, dest: Path, target: str) -> tuple[str, str, str]:
    """Build `requirement` from its sdist on the index (`pip wheel --no-deps --no-binary NAME`)
    and, if `judge` finds it BUILT, put its wheels into `dest`: judge's verdict and pip's output."""
    with tempfile.TemporaryDirectory(prefix="farm-sdist-") as out:
        argv = [python, "-m", "pip", "wheel", "--no-deps", "--no-binary", project_name(requirement),
                "--disable-pip-version-check", "--no-input", "--wheel-dir", out, requirement]
        try:
            proc = subprocess.run(argv, cwd=out, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL)
            code, output = proc.returncode, proc.stdout + proc.stderr
        except subprocess.TimeoutExpired:
            code, output = -1, f"pip wheel ran longer than {BUILD_TIMEOUT_S:.0f}s"
        built = sorted(p.name for p in Path(out).glob("*.whl"))
        verdict, why = judge(requirement, target, code, output, built)
        if verdict == BUILT:
            for wheel in built:
                shutil.move(str(Path(out) / wheel), str(dest / wheel))
    return verdict, why, output

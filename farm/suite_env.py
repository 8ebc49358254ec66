"""A suite's environment: the packages its tests need, which each worker installs into a virtualenv
of its own (cached per requirement set and interpreter), and how the bundle's own project goes in.

Pure: what the submitter asked for, and its digest. Building the environment is the worker's
business (workers/suite_envs.py).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass

#: How the bundle's own project (an --install spec naming a path in the bundle: `.`, `.[test]`,
#: `./sub[extra]`) goes into the environment: its dependencies are installed into the cached
#: environment either way; its code is the bundle's tree on the path (editable) or a plain,
#: non-editable install of this bundle's copy beside the environment (plain).
EDITABLE = "editable"
PLAIN = "plain"
INSTALL_MODES = (EDITABLE, PLAIN)


@dataclass(frozen=True)
class SuiteEnv:
    """What a suite's environment holds (empty: the suite runs under the worker's interpreter)."""

    # Requirement files as (the name given, their text): read where the suite was submitted, so a
    # worker needs nothing but the index its host is configured for.
    requirements: tuple[tuple[str, str], ...] = ()
    # Install specs as pip takes them: `pytest-timeout==2.3.1`, or a path in the bundle with extras (`.[test]`).
    install: tuple[str, ...] = ()
    install_mode: str = EDITABLE

    def __bool__(self) -> bool:
        return bool(self.requirements or self.install)

    def digest(self) -> str:
        """sha256 of what decides the environment's contents (not of the bundle: its project's own
        metadata is added by the worker, which reads it from the unpacked bundle). Requirement
        files count by their file names and texts, not the paths typed: the same files in another
        checkout (a CI job's new directory) make the same environment."""
        files = [[posixpath.basename(name), text] for name, text in self.requirements]
        text = json.dumps({"requirements": files, "install": list(self.install),
                           "install_mode": self.install_mode}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def describe(self) -> str:
        """One line for a summary: `requirements.txt, .[test] (editable)`."""
        parts = [name for name, _ in self.requirements] + list(self.install)
        local = any(is_local_spec(s) for s in self.install)
        return ", ".join(parts) + (f" ({self.install_mode})" if local else "")


def is_local_spec(spec: str) -> bool:
    """Whether an install spec names a path in the bundle (the project itself) rather than a package."""
    return spec == "." or spec.startswith(("./", ".[", "../")) or spec.startswith("/")

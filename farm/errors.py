"""The exception tree every farm component raises, with the exit code each maps to.

FarmError
├── UsageError            bad input from the user (exit 4)
│   ├── BundleError       project path missing, unreadable or over the size cap
│   └── BrokerUnreachable the broker / state store does not answer
├── ProtocolError         a message on the wire is malformed, oversized or of an unknown version
│   └── SignatureError    a message is unsigned, mis-signed, or signed with a key not in the keyring
├── InfrastructureError   a worker, runner or service failed (exit 3)
│   └── BundleRefused     a worker will not unpack a bundle (over its FARM_MAX_UNPACKED_MB): final
├── SuiteNotFound         a suite id that the state store does not know (exit 4)
├── ProjectNotFound       `farm history PROJECT` for a project with no run history there (exit 4)
└── LogIncomplete         a suite's event log cannot give its report: trimmed, or not finished (exit 3)

Interrupts that must never be swallowed derive from BaseException (see `Interrupted`).
"""

from __future__ import annotations

#: Exit codes, as pytest's: every farm command and service (README, docs/configuration.md). Here,
#: not in farm.cli_common, so that the services (farm.service_main, farm.supervision) name them
#: without importing click.
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INTERNAL, EXIT_USAGE, EXIT_NO_TESTS = 0, 1, 2, 3, 4, 5


class FarmError(Exception):
    """Root of every error farm raises on purpose."""

    exit_code = EXIT_INTERNAL


class UsageError(FarmError):
    """The user asked for something that cannot be done as asked."""

    exit_code = EXIT_USAGE


class BundleError(UsageError):
    """The project directory cannot be bundled (missing, unreadable, too large)."""


class BrokerUnreachable(UsageError):
    """The broker or the state store did not answer."""


class SuiteNotFound(UsageError):
    """No suite with that id is known to the state store."""


class ProjectNotFound(UsageError):
    """`farm history PROJECT`: the farm (or the embedded farm's saved history) has no run of it."""


class ProtocolError(FarmError):
    """A wire message is malformed, oversized, or of an unknown schema version."""


class LogIncomplete(FarmError):
    """A suite's event log cannot give its report: its oldest entries were trimmed, or it has no
    `finished` event yet (`farm results --from-events`)."""

    exit_code = 3


class SignatureError(ProtocolError):
    """A message is not signed by a key of this farm's keyring (farm.signing): it is dropped."""


class InfrastructureError(FarmError):
    """Something in the farm itself failed (worker, runner, service)."""

    exit_code = 3


class BundleRefused(InfrastructureError):
    """A worker refuses to unpack a bundle (it unpacks to more than the worker's cap): running the
    tests again would meet the same refusal, so the attempt fails instead of handing them back."""


class Interrupted(BaseException):
    """Raised to stop work now (shutdown, cancel); never caught by `except Exception`."""

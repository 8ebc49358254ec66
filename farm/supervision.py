"""When a process of a local farm that died is started again: back-off, restart counts, giving up (pure).

The policy of systemd's `Restart=always` with `RestartSec`, exponential back-off and a start
limit (`StartLimitBurst` within `StartLimitIntervalSec`): fed "this process exited at `now`", it
answers "start it again at T" or "give up"; asked "what is due at `now`", it names the processes
to start. The clock is passed in; `farm.cluster` does the I/O.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

from farm.errors import EXIT_USAGE


@dataclass(frozen=True)
class RestartPolicy:
    """How eagerly a dead process is started again."""

    #: Delay before the first restart; each further restart within `window_s` doubles it.
    first_delay_s: float = 1.0
    #: The back-off never waits longer than this.
    max_delay_s: float = 30.0
    #: Restarts of one process allowed within `window_s`; one more exit and the farm gives up
    #: (a process that dies this often is misconfigured, not unlucky).
    burst: int = 5
    #: The window over which restarts are counted; a process that stays up this long starts over
    #: at `first_delay_s`.
    window_s: float = 120.0


@dataclass(frozen=True)
class Restart:
    """Start `name` again at `at` (after `delay_s`); it is its `count`-th restart in the window."""

    name: str
    at: float
    delay_s: float
    count: int


@dataclass(frozen=True)
class GiveUp:
    """Do not start `name` again: `why`."""

    name: str
    why: str


def describe_exit(returncode: int) -> str:
    """How a process ended, from its return code (negative: the signal that killed it)."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"code {returncode}"


@dataclass
class Supervisor:
    """Restart decisions for a set of named processes."""

    policy: RestartPolicy = field(default_factory=RestartPolicy)
    #: Processes that must never be started again (their death ends the farm).
    fatal: frozenset[str] = frozenset()
    _restarts: dict[str, list[float]] = field(default_factory=dict, init=False)
    _pending: dict[str, Restart] = field(default_factory=dict, init=False)

    def exited(self, name: str, now: float, code: int = 1) -> Restart | GiveUp:
        """`name` was found dead at `now`, with exit code `code`: when to start it again, or why
        not. A usage error (EXIT_USAGE: a bad option or setting, a broker that refuses its
        password; started again, it would meet the same refusal) is given up on at once; any other exit (3: an
        unrecoverable error, which may be the broker's and pass) is restarted, up to the burst."""
        if name in self.fatal:
            return GiveUp(name, "it is not restarted")
        if code == EXIT_USAGE:
            return GiveUp(name, f"exit {EXIT_USAGE} is a usage error, which a restart would meet again")
        recent = [t for t in self._restarts.get(name, []) if now - t < self.policy.window_s]
        self._restarts[name] = recent
        if len(recent) >= self.policy.burst:
            return GiveUp(name, f"it was restarted {len(recent)} times within {self.policy.window_s:.0f}s")
        delay = min(self.policy.max_delay_s, self.policy.first_delay_s * 2 ** len(recent))
        decision = Restart(name, now + delay, delay, len(recent) + 1)
        recent.append(now)
        self._pending[name] = decision
        return decision

    def due(self, now: float) -> list[str]:
        """The processes whose restart time has come, in the order they died; each is named once."""
        ready = [name for name, r in self._pending.items() if r.at <= now]
        for name in ready:
            del self._pending[name]
        return ready

    def waiting(self, name: str) -> bool:
        """Whether `name` is dead and waiting for its restart."""
        return name in self._pending

    def clear(self) -> None:
        """Forget every pending restart (the farm stops)."""
        self._pending.clear()

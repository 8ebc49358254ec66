"""A project's run history in Redis (farm.run_history): a finished suite's entry and its tests' duration
rings, written on the finish's own transaction.

The rings are appended by a Lua script, a page of tests per call (their ids one msgpack string, their
new durations one string of 2-byte items), so that neither redis-py nor the coordinator handles a
Python object per test and ring: at 100,000 tests the finish reads no ring back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack
import redis

from farm import keys
from farm.run_history import RING_ITEM, RunEntry, encode_run, ring_page

#: Tests per script call (one EVALSHA in the finish's MULTI).
PAGE = 5000
# KEYS[1]: the rings' hash; ARGV[1]: the most bytes a ring keeps; ARGV[2]: the page's test ids
# (msgpack array); ARGV[3]: their new durations, RING_ITEM bytes each, in the same order.
RING_APPEND = """
local keep = tonumber(ARGV[1])
local ids = cmsgpack.unpack(ARGV[2])
local items = ARGV[3]
local n = string.len(items) / #ids
for i, id in ipairs(ids) do
  local item = string.sub(items, (i - 1) * n + 1, i * n)
  local ring = redis.call('HGET', KEYS[1], id)
  if ring then ring = ring .. item else ring = item end
  if string.len(ring) > keep then ring = string.sub(ring, -keep) end
  redis.call('HSET', KEYS[1], id, ring)
end
return #ids
"""


class RunHistoryWriter:
    """Appends a run to its project's history: the entry to the list of the last `keep`, each
    timed test's duration to its ring of the last `keep`; both keys expire `ttl_s` after the last run."""

    def __init__(self, r: redis.Redis, keep: int, ttl_s: int) -> None:
        self.keep, self.ttl_s = keep, ttl_s
        # EVALSHA; in a MULTI, redis-py loads a script Redis lost (a restart) before the MULTI.
        self._append = r.register_script(RING_APPEND)

    def write(self, pipe: Any, project: str, run: RunEntry, durations: Mapping[str, float]) -> None:
        runs, times = keys.history_runs(project), keys.history_times(project)
        pipe.rpush(runs, encode_run(run))
        pipe.ltrim(runs, -self.keep, -1)
        pipe.expire(runs, self.ttl_s)
        ids = [t for t in durations if t != keys.HISTORY_OVERHEAD_FIELD]
        if not ids:
            return
        for i in range(0, len(ids), PAGE):
            page = ids[i:i + PAGE]
            self._append(keys=[times], args=[self.keep * RING_ITEM, msgpack.packb(page),
                                             ring_page([durations[t] for t in page])], client=pipe)
        pipe.expire(times, self.ttl_s)

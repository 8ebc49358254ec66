"""A reference for farm's correctness tests: what plain pytest itself reports, per node id.

Loaded into a plain pytest run with `-p farm_reference_plugin`; at the end of the session it
writes {node id: [categories]} from pytest's own terminal reporter statistics (the same data
pytest's summary line is made of) to the file named by FARM_REFERENCE_OUT.
"""

import json
import os

STANDARD = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    out = os.environ.get("FARM_REFERENCE_OUT")
    if not out:
        return
    by_id = {}
    for category in STANDARD:
        for report in terminalreporter.stats.get(category, []):
            nodeid = getattr(report, "nodeid", None)
            if nodeid is None:
                continue
            by_id.setdefault(nodeid, set()).add(category)
    with open(out, "w", encoding="utf-8") as fh:
        json.dump({"exitstatus": int(exitstatus), "tests": {k: sorted(v) for k, v in by_id.items()}}, fh)

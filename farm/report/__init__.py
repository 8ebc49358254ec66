"""Renderers of the JSON suite report: terminal summary, JUnit XML, report files, live progress.

Every renderer is a pure function over the report dict documented in docs/report-schema.md,
except `jsonfile` (writes files) and `live` (draws progress while the client waits).
"""

"""Broker URLs as shown to people: without their password."""

from __future__ import annotations

from urllib.parse import urlparse


def redact(url: str) -> str:
    """The URL with its password (if any) shown as `***`."""
    try:
        password = urlparse(url).password
    except ValueError:  # a malformed port: whatever it is, show no secret from it
        return "***"
    return url.replace(f":{password}@", ":***@") if password else url

"""Headless Chromium for the HTML report's tests: a page's DOM after its scripts ran, a screenshot,
and what a PNG's pixels hold (decoded with zlib: no imaging library needed)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import zlib
from collections import Counter
from pathlib import Path

from support.helpers import need

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--mute-audio")


def need_chromium() -> str:
    need(CHROMIUM is not None, "chromium is not installed (apt-get install chromium)")
    assert CHROMIUM is not None
    return CHROMIUM


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """Chromium with a profile of its own, removed after (its processes exit with it; on a
    timeout its whole process group is killed, helpers included, before the profile goes)."""
    with tempfile.TemporaryDirectory(prefix="farm-chromium-") as profile:
        proc = subprocess.Popen([need_chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL, env={**os.environ, "HOME": profile},
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        finally:
            with contextlib.suppress(ProcessLookupError):  # a helper of its that outlived it
                os.killpg(proc.pid, signal.SIGKILL)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def dump_dom(page: Path) -> str:
    """The page's DOM once it has loaded (its scripts have run)."""
    done = _run("--virtual-time-budget=3000", "--dump-dom", page.resolve().as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(page: Path, out: Path, size: str = "1400,900") -> Path:
    done = _run("--hide-scrollbars", f"--window-size={size}", f"--screenshot={out}", page.resolve().as_uri())
    assert done.returncode == 0 and out.exists(), done.stderr[-2000:]
    return out


def png_colours(png: bytes) -> Counter[tuple[int, ...]]:
    """How many pixels of each colour an 8-bit RGB or RGBA PNG (not interlaced) has."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width = 8, b"", 0
    height = channels = 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride = zlib.decompress(idat), width * channels
    prev, counts = bytearray(stride), Counter[tuple[int, ...]]()
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):  # PNG's five filters
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        counts.update(tuple(line[i:i + 3]) for i in range(0, stride, channels))
        prev = line
    return counts

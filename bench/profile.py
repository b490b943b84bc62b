"""Sample a server with py-spy and summarise where its CPU went."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.results import Profile

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
_RATE = 100


def py_spy() -> str | None:
    """Return the py-spy executable next to this Python, or on the PATH."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def record(pid: int, seconds: int, out: Path) -> Path:
    """Sample a process's threads (not idle) for `seconds`, as collapsed stacks."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed: `uv pip install py-spy`")
    command = [exe, "record", "-p", str(pid), "-d", str(seconds), "-r", str(_RATE)]
    command += ["--threads", "--format", "raw", "-o", str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=seconds + 60)
    return out


def _name(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    return f"{match['func']} ({match['file']})"


def summarise(path: Path, seconds: int, *, label: str, top: int = 15) -> Profile:
    """Count own-time (top of stack), inclusive omnicanal time and per-thread samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        thread, *frames = stack.split(";")
        total += count
        threads[thread.partition(": ")[2] or thread] += count
        if frames:
            own[_name(frames[-1])] += count
        for name in {_name(f) for f in frames if "omnicanal/" in f and "omnicanal/cli/" not in f}:
            inclusive[name] += count
    return Profile(
        label=label,
        seconds=seconds,
        samples=total,
        rate=_RATE,
        own=own.most_common(top),
        inclusive=inclusive.most_common(top),
        threads=threads.most_common(),
    )

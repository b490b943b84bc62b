"""The machine a benchmark ran on, how busy it was meanwhile, and where its results go."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"


def markdown_table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table."""
    return [
        "| " + " | ".join(head) + " |",
        "| " + " | ".join("---" for _ in head) + " |",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def append_to_docs(lines: Iterable[str], log: Callable[[str], None]) -> None:
    """Append a run's section to docs/benchmarks.md."""
    with DOCS.open("a") as out:
        out.write("\n".join(lines) + "\n")
    log(f"Appended to {DOCS}")


@dataclass(frozen=True)
class Machine:
    """What the report says about where and what was measured."""

    cpu: str
    cores: int
    ram_gib: float
    python: str
    date: str
    commit: str
    dirty: str  # files of src/ changed but not committed, which the run measured too


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.rstrip()  # not strip(): porcelain lines may start with a space


def machine() -> Machine:
    """Describe this machine and the code under test."""
    dirty = [line[3:] for line in _git("status", "--porcelain", "--", "src").splitlines()]
    return Machine(
        cpu=_cpu_model(),
        cores=os.cpu_count() or 0,
        ram_gib=_ram_gib(),
        python=platform.python_version(),
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        commit=_git("rev-parse", "--short=12", "HEAD"),
        dirty=", ".join(dirty),
    )


def busy_cpu_seconds() -> tuple[float, float]:
    """Return the CPU time used since boot on every core: all of it, and interrupts' share.

    Interrupts (mostly loopback networking in softirq) are charged to no process.
    """
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait; steal (fields[7]) is not ours either
    return (sum(fields[:7]) - idle) / _CLK_TCK, (fields[5] + fields[6]) / _CLK_TCK


def background_load(seconds: float = 2.0) -> float:
    """Return how many cores' worth of CPU the machine uses while we do nothing."""
    before = busy_cpu_seconds()[0]
    time.sleep(seconds)
    return (busy_cpu_seconds()[0] - before) / seconds


def wait_quiet(limit: int, log: Callable[[str], None]) -> float:
    """Wait (up to `limit` s) until other processes leave the CPU; return their load."""
    deadline = time.monotonic() + limit
    load = background_load()
    while load > 0.2 and time.monotonic() < deadline:
        log(f"the machine is busy ({load:.2f} cores used by others); waiting…")
        time.sleep(10)
        load = background_load()
    return load


def renice(nice: int, log: Callable[[str], None]) -> int:
    """Set our niceness, inherited by every process we start; return the one in force."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError:
        log(f"cannot set niceness {nice} (not root); keeping the current one")
    return os.getpriority(os.PRIO_PROCESS, 0)

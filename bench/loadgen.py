"""Run a load generator (wrk, or the open-loop client) as a child process, with progress."""

from __future__ import annotations

import resource
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

LUA_SCRIPT = Path(__file__).with_name("batch.lua")
_MARK = "WRKJSON "

Tick = Callable[[float], None]


@dataclass(frozen=True)
class Load:
    """What a load generator reported, plus the CPU time it used."""

    report: dict[str, Any]
    client_cpu_s: float
    command: list[str]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_child(command: list[str], *, seconds: float, tick: Tick, mark: str) -> Load:
    """Run a load generator, call tick(elapsed) while it runs, parse its `mark` JSON line."""
    cpu_before = _children_cpu()
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while process.poll() is None:
        tick(min(time.monotonic() - started, seconds))
        time.sleep(0.25)
    out, err = process.communicate()
    cpu = _children_cpu() - cpu_before
    for line in out.decode(errors="replace").splitlines():
        if line.startswith(mark):
            return Load(orjson.loads(line[len(mark) :]), cpu, command)
    raise RuntimeError(f"{command[0]} gave no result ({process.returncode}): {err.decode()}")


def wrk(
    url: str,
    *,
    template: Path,
    nonce: int,
    authorization: str | None,
    seconds: int,
    connections: int,
    tick: Tick,
    threads: int = 2,
) -> Load:
    """Drive a URL with wrk and bench/batch.lua, closed loop, for `seconds`."""
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "30s",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        str(template),
        f"{nonce:04x}",
        authorization or "-",
    ]
    return run_child(command, seconds=seconds, tick=tick, mark=_MARK)

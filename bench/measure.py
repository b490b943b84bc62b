"""Measurements taken around a load run: CPU by party, stored events over time."""

from __future__ import annotations

import itertools
import resource
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console

from bench import loadgen
from bench.results import Cpu
from bench.servers import DurableCluster, EventProbe, Server
from bench.system import busy_cpu_seconds


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuWindow:
    """CPU used by the server, PostgreSQL, ourselves and everyone, over one run."""

    def __init__(self, server: Server, cluster: DurableCluster | None) -> None:
        self.server, self.cluster = server, cluster
        self.start = self._sample()

    def _sample(self) -> tuple[float, ...]:
        pg = self.cluster.cpu_seconds() if self.cluster else 0.0
        busy, irq = busy_cpu_seconds()
        return (time.monotonic(), busy, irq, self.server.cpu_seconds(), pg, _own_cpu())

    def close(self, client_cpu: float) -> Cpu:
        """Return the cores' worth each party used since the window opened."""
        end = self._sample()
        wall, busy, irq, srv, pg, own = (b - a for a, b in zip(self.start, end, strict=True))
        other = max(busy - irq - srv - pg - own - client_cpu, 0.0)
        return Cpu(srv / wall, client_cpu / wall, pg / wall, irq / wall, other / wall)


class Sampler:
    """Reads the store's event count every few seconds of a run, for per-window rates."""

    def __init__(self, probe: EventProbe | None, every: float = 5.0) -> None:
        self.probe, self.every = probe, every
        self.samples: list[tuple[float, int]] = []

    def wrap(self, tick: loadgen.Tick) -> loadgen.Tick:
        """Return a tick that also samples the store on schedule."""

        def sample(elapsed: float) -> None:
            tick(elapsed)
            if self.probe is not None and elapsed >= len(self.samples) * self.every:
                self.samples.append((time.monotonic(), self.probe()))

        return sample

    def rates(self) -> tuple[float, ...]:
        """Return events stored per second in each whole window."""
        pairs = itertools.pairwise(self.samples)
        return tuple((b[1] - a[1]) / (b[0] - a[0]) for a, b in pairs)


@contextmanager
def background(command: list[str]) -> Iterator[None]:
    """Run a command (py-spy) while the block runs; wait for it after."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        _, err = process.communicate(timeout=120)
        if process.returncode != 0:
            Console(stderr=True).print(f"[yellow]{command[0]} failed[/yellow]: {err.decode()}")

"""What a collection benchmark measured, independent of how it is printed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Latency:
    """Latency percentiles in milliseconds."""

    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def from_us(cls, report: dict[str, Any]) -> Latency:
        """Read percentiles given in microseconds (wrk and the open-loop client)."""
        return cls(*(float(report[k]) / 1000 for k in ("p50", "p90", "p99", "max")))


@dataclass(frozen=True)
class Cpu:
    """Cores' worth of CPU used during a measured window, by whom."""

    server: float
    client: float
    postgres: float
    interrupts: float  # the kernel's network work, charged to no process
    other: float  # everything else: other processes on the machine


@dataclass(frozen=True)
class Run:
    """One measured load run against one server."""

    seconds: float
    ok: int  # 2xx answers
    failed: int  # non-2xx answers, socket errors, timeouts, lost requests
    latency: Latency
    cpu: Cpu
    extra: dict[str, Latency] = field(default_factory=dict)
    windows: tuple[float, ...] = ()  # events stored per second, window by window


@dataclass(frozen=True)
class Check:
    """Stored against acknowledged events, over every run against one server."""

    sent: int
    acknowledged: int
    stored: int | None  # None where nothing is stored (the hello app)
    rejected: int = 0

    @property
    def verdict(self) -> str:
        """Say whether the store holds what was acknowledged, and no more than was sent."""
        if self.stored is None:
            return "nothing stored (no storage)"
        if self.rejected:
            return f"FAIL: {self.rejected} rejected"
        if self.stored == self.acknowledged:
            return "OK: stored = acknowledged"
        if self.acknowledged < self.stored <= self.sent:
            extra = self.stored - self.acknowledged
            return (
                f"OK: stored = acknowledged + {extra:,} sent but unanswered when the load stopped"
            )
        return "FAIL: stored does not match acknowledged"


@dataclass(frozen=True)
class HttpFigure:
    """A server driven over HTTP: the measured run and the storage check."""

    name: str  # e.g. "omnicanal, SQLite"
    key: str  # "omnicanal" | "hello" | "naive"
    db: str  # "sqlite" | "postgresql" | ""
    endpoint: str  # "/v1/batch" | "/v1/track"
    events_per_request: int
    run: Run
    check: Check
    peak_mib: float

    @property
    def requests_per_s(self) -> float:
        """Return 2xx answers per second."""
        return self.run.ok / self.run.seconds

    @property
    def events_per_s(self) -> float:
        """Return acknowledged events per second."""
        return self.requests_per_s * self.events_per_request


@dataclass(frozen=True)
class StorageFigure:
    """The executemany ceiling, with one kind of unique key."""

    key: str  # "random" | "time-ordered"
    rows: int
    rows_per_s: float
    db_seconds: float
    wall_seconds: float
    rows_in_table: int
    rows_per_transaction: int


@dataclass(frozen=True)
class Profile:
    """Where the server spent its CPU under load, from py-spy."""

    label: str
    seconds: int
    samples: int
    rate: int
    own: list[tuple[str, int]]  # function, samples with it on top of the stack
    inclusive: list[tuple[str, int]]  # omnicanal function, samples with it anywhere
    threads: list[tuple[str, int]]


@dataclass
class Results:
    """Everything one invocation measured."""

    http: list[HttpFigure] = field(default_factory=list)
    storage: list[StorageFigure] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def find(self, key: str, endpoint: str, db: str = "") -> HttpFigure | None:
        """Return the figure of a server, endpoint and database, if it was measured."""
        for figure in self.http:
            if (figure.key, figure.endpoint, figure.db) == (key, endpoint, db):
                return figure
        return None

"""The demo retailer: a synthetic French fashion retailer, with its ground truth.

`generate()` simulates Maison Lumière — an e-shop, an app, three stores with tills, a
newsletter, SMS, push, ads on Google, Instagram, Facebook and TikTok, press insertions,
a street-marketing operation, store workshops, a call centre, surveys and a loyalty card
— and writes its offline files and its ground truth under `out`. The returned `Dataset`
streams the online messages for the collection API, in time order, chunk by chunk.

Everything is deterministic for a seed (and an end date).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from omnicanal.core.clock import utcnow
from omnicanal.demo import files, messages, shop_files, truth, world
from omnicanal.demo.activity import COLLECT, IN_STORE
from omnicanal.demo.chunk import Chunk, simulate
from omnicanal.demo.people import CHUNK_CUSTOMERS, chunks
from omnicanal.demo.records import Identifiers
from omnicanal.demo.world import World

SOURCES = messages.SOURCES
_STATS = (
    "persons",
    "customers",
    "prospects",
    "orders",
    "online_orders",
    "store_orders",
    "click_and_collect",
    "messages",
)
FILE_KINDS = ("catalogue", "stock", "customers", "till", "attendance", "calls", "survey", "costs")


@dataclass(slots=True)
class Dataset:
    """A generated world: its sources, files, counts, and its messages on demand."""

    world: World
    out: Path
    sources: list[tuple[str, str]]
    files: dict[str, Path]
    stats: dict[str, int]
    chunk_size: int = CHUNK_CUSTOMERS
    seconds: float = 0.0
    renamed: dict[int, dict[str, str]] = field(default_factory=dict)  # per chunk, see people.py
    _cached: Chunk | None = None
    truth_dir: Path | None = None

    @property
    def truth(self) -> Path:
        """Return the folder of the ground-truth files."""
        return self.truth_dir or self.out / "ground-truth"

    def chunk(self, number: int, size: int) -> Chunk:
        """Return a simulated chunk (the one kept from generation, or simulated again)."""
        if self._cached is not None and self._cached.number == number:
            return self._cached
        return simulate(self.world, number, size, self.renamed.get(number))

    def messages(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield (source name, message) for every source, in time order within each chunk."""
        names = [name for name, _ in SOURCES]
        for number, size in chunks(self.world.customers, self.chunk_size):
            for source, message in messages.stream(self.world, self.chunk(number, size)):
                yield names[source], message

    def messages_of(self, source: str) -> Iterator[dict[str, Any]]:
        """Yield the messages of one source, in time order within each chunk."""
        for name, message in self.messages():
            if name == source:
                yield message


def _unique_emails(ch: Chunk, taken: set[str]) -> dict[str, str]:
    """Rename the chunk's addresses already used by earlier chunks; return the renames."""
    pp = ch.people
    own = {*pp.email, *(e for e in pp.email2 if e)}
    renamed: dict[str, str] = {}
    for address in sorted(own & taken):
        local, _, domain = address.partition("@")
        n = 1
        while f"{local}.{n}@{domain}" in taken or f"{local}.{n}@{domain}" in own:
            n += 1
        renamed[address] = f"{local}.{n}@{domain}"
        taken.add(renamed[address])
    taken.update(own - renamed.keys())
    return renamed


def generate(
    *,
    customers: int = 20_000,
    months: int = 24,
    seed: int = 0,
    holdout_months: int = 6,
    end: date | None = None,
    out: Path,
    chunk_size: int = CHUNK_CUSTOMERS,
    truth_dir: Path | None = None,
) -> Dataset:
    """Simulate the retailer; write its files and ground truth under `out`.

    Args:
        customers: customers in the world (prospects who never buy come on top).
        months: length of the loaded period, ending the day before `end`.
        seed: the same seed (and end) gives the same world, files and messages.
        holdout_months: months after `end` simulated for the ground truth only.
        end: first day after the loaded period; today by default.
        out: folder for the files, and `ground-truth/` inside it.
        chunk_size: customers simulated at once (memory); part of what makes a world.
        truth_dir: folder of the ground truth, `out/ground-truth` by default.
    """
    started = time.perf_counter()
    if customers < 1 or months < 1 or holdout_months < 0:
        raise ValueError("customers and months must be at least 1, holdout_months at least 0")
    the_world = world.build(
        customers=customers,
        months=months,
        seed=seed,
        holdout_months=holdout_months,
        end=end or utcnow().date(),
    )
    out.mkdir(parents=True, exist_ok=True)
    fmt = "xlsx" if customers <= 1_000_000 else "csv"  # a sheet holds 1,048,576 rows
    writer = files.Writer(the_world, out, customers_format=fmt)
    facts = truth.TruthWriter(truth_dir or out / "ground-truth")
    dataset = Dataset(the_world, out, list(SOURCES), writer.paths, {}, chunk_size)
    dataset.truth_dir = truth_dir
    effects, tally = _write_chunks(dataset, writer, facts)
    writer.close()
    shop_files.catalogue(writer)
    shop_files.stock(writer)
    spend = shop_files.costs(writer, tally)
    facts.close(the_world, effects, spend)
    dataset.stats |= {f"{kind}_rows": n for kind, n in writer.rows.items()}
    dataset.stats |= {f"truth_{name}": n for name, n in facts.rows.items()}
    dataset.seconds = time.perf_counter() - started
    return dataset


def _write_chunks(
    dataset: Dataset, writer: files.Writer, facts: truth.TruthWriter
) -> tuple[truth.Effects, shop_files.Tally]:
    """Simulate the world chunk by chunk, writing each one's files and ground truth.

    Counts what the world-level files need, and sets the dataset's stats.
    """
    the_world = dataset.world
    effects, tally = truth.Effects(), shop_files.Tally.empty(the_world)
    taken: set[str] = set()
    stats = dict.fromkeys(_STATS, 0)
    parts = chunks(the_world.customers, dataset.chunk_size)
    for number, size in parts:
        ch = _chunk(dataset, number, size, taken)
        ids = Identifiers()
        files.write_chunk(writer, ch, ids)
        facts.add(the_world, ch, ids)
        truth.effects(the_world, ch, effects)
        tally.add(ch)
        _count(the_world, ch, stats)
        dataset._cached = ch
    if len(parts) > 1:
        dataset._cached = None  # keep memory flat: chunks are simulated again when streamed
    dataset.stats = stats
    return effects, tally


def _chunk(dataset: Dataset, number: int, size: int, taken: set[str]) -> Chunk:
    """Simulate a chunk, again with its renamed addresses if earlier chunks used some."""
    ch = simulate(dataset.world, number, size)
    renamed = _unique_emails(ch, taken)
    if renamed:
        dataset.renamed[number] = renamed
        ch = simulate(dataset.world, number, size, renamed)
    return ch


def _count(the_world: World, ch: Chunk, stats: dict[str, int]) -> None:
    """Add a chunk's people, orders and messages to the stats."""
    o, pp = ch.orders, ch.people
    loaded = ch.loaded(o.t)
    stats["persons"] += len(pp)
    stats["customers"] += int(pp.customer.sum())
    stats["prospects"] += int((~pp.customer).sum())
    stats["orders"] += int(loaded.sum())
    stats["store_orders"] += int((loaded & (o.channel == IN_STORE)).sum())
    stats["online_orders"] += int((loaded & (o.channel != IN_STORE)).sum())
    stats["click_and_collect"] += int((loaded & (o.channel == COLLECT)).sum())
    stats["messages"] += messages.count(the_world, ch)

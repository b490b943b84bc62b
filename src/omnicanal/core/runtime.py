"""Settings of the interpreter itself, for the processes that work through many events."""

from __future__ import annotations

import atexit
import gc


def tune_gc() -> None:
    """Keep the cycle collector from stalling request handling and batch processing.

    Parsed events are acyclic and freed by reference counting, yet each batch allocates
    thousands of containers, which with the default thresholds starts a collection every
    few hundred and regularly a full one over every object of the process. Freezing what
    start-up built and raising the thresholds doubles collection throughput (see
    docs/benchmarks.md) while cycles are still collected.

    At exit the frozen objects are handed back to the collector: left frozen, the
    interpreter's shutdown would not free them, and DuckDB's bindings print a page of
    "leaked instance" warnings about its own types.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    atexit.unregister(gc.unfreeze)  # once, however often this is called
    atexit.register(gc.unfreeze)

"""Taking turns on the warehouse file, within this process and with others.

DuckDB lets one process open a file for writing, or any number of processes open it
read-only, never both. Within one process, DuckDB hands out one instance per file: the
`Registry` keeps it, gives each unit of work its own connection to it (`cursor()`), and
closes it when the last one leaves, so the file is never held between units of work.
Writers take turns within the process (`thread_turn`) and between processes
(`process_turn`, an exclusive flock on `<file>.lock`). Whoever finds the file held waits
(`Wait`), tells once who holds it, and gives up with `WarehouseBusyError` when the time
is up.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import duckdb

from omnicanal.warehouse.errors import WarehouseBusyError, WarehouseError

_RETRY_SECONDS: Final = 0.2
_HOLDER = re.compile(r"held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")

#: Run on a newly opened writable instance before anyone uses it (creates the tables).
Prepare = Callable[[duckdb.DuckDBPyConnection], None]


def holder_of(exc: BaseException) -> str | None:
    """Return the process named by DuckDB's lock error, None for another error."""
    match = _HOLDER.search(str(exc))
    if match is None:
        return None
    return f"process {match['pid']} ({match['exe']})"


@dataclass
class Instance:
    """One DuckDB instance of a file in this process, and how many use it."""

    root: duckdb.DuckDBPyConnection
    writable: bool
    users: int = 0


@dataclass
class Wait:
    """A bounded wait, telling once whom we wait for."""

    path: Path
    seconds: float
    on_wait: Callable[[str], None]
    started: float = 0.0
    told: bool = False

    def __post_init__(self) -> None:
        self.started = time.monotonic()

    @property
    def remaining(self) -> float:
        return max(0.0, self.started + self.seconds - time.monotonic())

    def blocked(self, holder: str) -> None:
        """Note that `holder` is in the way; raise once the time is up."""
        if self.remaining <= 0:
            raise WarehouseBusyError(self.path, holder=holder, waited=self.seconds)
        if not self.told:
            self.told = True
            self.on_wait(
                f"the warehouse {self.path} is in use by {holder}; waiting up to {self.seconds:g} s"
            )


class Registry:
    """The DuckDB instances this process has open, one per file, shared by its threads."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._open: dict[Path, Instance] = {}
        self._opening: set[Path] = set()
        self._writers: dict[Path, int] = {}
        # Instances of a file since replaced by a rebuilt one: DuckDB hands out the open
        # instance of a path, so the new file opens once these are closed.
        self._retired: dict[Path, list[Instance]] = {}

    def connect(
        self, wait: Wait, *, write: bool, prepare: Prepare | None = None
    ) -> tuple[Instance, duckdb.DuckDBPyConnection]:
        """Return a new connection to the file's instance, opening it if needed.

        `prepare` runs on a newly opened writable instance before anyone can use it.
        """
        path = wait.path
        with self._cond:
            if write:
                self._writers[path] = self._writers.get(path, 0) + 1
            try:
                while (found := self._join(path, write)) is None:
                    if self._may_open(path):
                        self._opening.add(path)
                        break
                    wait.blocked("another unit of work of this process")
                    self._cond.wait(min(wait.remaining, 1.0))
                else:
                    return found
            except BaseException:
                self._left_writer(path, write)
                raise
        return self._open_new(wait, write=write, prepare=prepare if write else None)

    def _may_open(self, path: Path) -> bool:
        return path not in self._open and path not in self._opening and not self._retired.get(path)

    def _join(self, path: Path, write: bool) -> tuple[Instance, duckdb.DuckDBPyConnection] | None:
        instance = self._open.get(path)
        if instance is None:
            return None
        if instance.writable or (not write and not self._writers.get(path)):
            instance.users += 1
            return instance, instance.root.cursor()
        return None  # a writer needs the read-only instance gone, or is about to replace it

    def _open_new(
        self, wait: Wait, *, write: bool, prepare: Prepare | None
    ) -> tuple[Instance, duckdb.DuckDBPyConnection]:
        path = wait.path
        try:
            root = open_file(wait, read_only=not write)
            if prepare is not None:  # before anyone else can use it
                _prepared(root, prepare)
        except BaseException:
            with self._cond:
                self._opening.discard(path)
                self._left_writer(path, write)
                self._cond.notify_all()
            raise
        with self._cond:
            self._opening.discard(path)
            instance = self._open[path] = Instance(root, writable=write, users=1)
            self._cond.notify_all()
            return instance, root.cursor()

    def release(
        self, path: Path, instance: Instance, con: duckdb.DuckDBPyConnection, *, write: bool
    ) -> None:
        """Give a connection back; close the file when its last user leaves."""
        con.close()
        with self._cond:
            self._left_writer(path, write)
            instance.users -= 1
            if instance.users == 0:
                if self._open.get(path) is instance:
                    del self._open[path]
                retired = self._retired.get(path, [])
                if instance in retired:
                    retired.remove(instance)
                instance.root.close()
            self._cond.notify_all()

    def retire(self, path: Path) -> None:
        """The file at `path` was replaced: users of the open instance finish on the old one."""
        with self._cond:
            instance = self._open.pop(path, None)
            if instance is not None:
                self._retired.setdefault(path, []).append(instance)

    def _left_writer(self, path: Path, write: bool) -> None:
        if write:
            self._writers[path] -= 1
            if not self._writers[path]:
                del self._writers[path]

    def is_open(self, path: Path) -> bool:
        """Tell whether this process has the file open."""
        with self._cond:
            return path in self._open or path in self._opening


REGISTRY = Registry()
_WRITER_LOCKS: dict[Path, threading.Lock] = {}
_WRITER_LOCKS_GUARD = threading.Lock()


def _prepared(root: duckdb.DuckDBPyConnection, prepare: Prepare) -> None:
    try:
        prepare(root)
    except BaseException:
        root.close()
        raise


def open_file(wait: Wait, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open the file, retrying while another process holds it."""
    while True:
        try:
            return duckdb.connect(str(wait.path), read_only=read_only)
        except duckdb.IOException as exc:
            holder = holder_of(exc)
            if holder is None:
                raise WarehouseError(f"cannot open the warehouse {wait.path}: {exc}") from exc
            try:
                wait.blocked(holder)
            except WarehouseBusyError as busy:
                raise busy from exc
            time.sleep(min(_RETRY_SECONDS, wait.remaining) or _RETRY_SECONDS)
        except duckdb.Error as exc:
            raise WarehouseError(f"cannot open the warehouse {wait.path}: {exc}") from exc


@contextmanager
def thread_turn(wait: Wait) -> Iterator[None]:
    """Let one writer of this process at a time work on the file."""
    with _WRITER_LOCKS_GUARD:
        lock = _WRITER_LOCKS.setdefault(wait.path, threading.Lock())
    while not lock.acquire(timeout=min(max(wait.remaining, 0.01), 1.0)):
        wait.blocked(f"another writer of this process (PID {os.getpid()})")
    try:
        yield
    finally:
        lock.release()


@contextmanager
def process_turn(wait: Wait) -> Iterator[None]:
    """Let one writing process at a time work on the file (flock on `<file>.lock`)."""
    lock_path = wait.path.with_name(wait.path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
                wait.blocked(f"a sync in process {holder}")
                time.sleep(min(_RETRY_SECONDS, wait.remaining) or _RETRY_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

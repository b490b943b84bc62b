"""Reading ahead: a second process reads and parses the next batch while this one writes.

Working off a backlog, the processor is bound to one core, and a fifth of its time per
event goes to reading the log: fetching the payload, decoding the JSON, normalising the
identifiers, deriving the channel (`parse`). That work depends on nothing the processor
writes, so a helper process does it for batch n + 1 while the processor resolves and
writes batch n, and sends back the parsed events (about 90 bytes each), not the payloads.

The helper only reads: the event log (append-only; readers by id never skip an event,
see `omnicanal.profiles.processor`) and the sources' channels. The processor takes what
it sent only for the batch it asked for: the same checkpoint, graph generation and size,
and it checks them inside its own transaction. Anything else (another worker moved the
checkpoint, a failed batch, a helper that died or does not answer) and the processor
reads the batch itself, as without a helper, and gives up the helper if it is broken.

The helper is `python -m omnicanal.profiles.processing.ahead`, given one end of a socket
pair: it imports what reading needs (about 60 MiB). Spawned by `multiprocessing`, it
would also import the program that started it, all of `omnicanal`'s command line when
that is `omnicanal demo` or `omnicanal process` (about 360 MiB).
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import socket
import subprocess
import sys
from collections.abc import Sequence
from multiprocessing.connection import Connection as Pipe
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from omnicanal.core.channel_rules import Rule
from omnicanal.core.runtime import tune_gc
from omnicanal.profiles.processing.parse import Event, Parser

log = logging.getLogger(__name__)

READ = text(
    "SELECT id, source_id, timestamp_ms, received_ms, type, event, payload "
    "FROM collect_event WHERE id > :after ORDER BY id LIMIT :n"
)
# A helper that takes longer than this to answer is given up (it reads at least ten
# thousand events a second: a batch takes it well under a second).
ANSWER_SECONDS = 60.0


def read_events(
    conn: Any,
    parser: Parser,
    after: int,
    n: int,
    *,
    until_unreadable: bool = False,
) -> list[Event]:
    """Read and parse the (at most n) events of the log after id `after`.

    An event that cannot be parsed raises; with `until_unreadable`, the events before it
    are returned instead, and the processor meets it when it reads the log itself.
    """
    rows = conn.execute(READ, {"after": after, "n": n}).all()
    sources = parser.sources
    if any(row[1] not in sources for row in rows):  # sources never change channel
        for sid, value in conn.execute(text("SELECT id, channel FROM collect_source")):
            sources[int(sid)] = str(value)
    if not until_unreadable:
        return [parser.parse(row, sources.get(row[1], "server")) for row in rows]
    events = []
    for row in rows:
        try:
            events.append(parser.parse(row, sources.get(row[1], "server")))
        except Exception:  # the processor sets it aside, with its error
            break
    return events


def _helper(pipe: Pipe) -> None:
    """The helper process: answer each (after, n) with the pickled parsed events."""
    try:
        url, rules = pipe.recv()
    except (EOFError, OSError):  # the processor is gone before it said anything
        return
    tune_gc()
    engine = create_engine(url, poolclass=NullPool)
    parser = Parser(rules)
    try:
        while True:
            try:
                asked = pipe.recv()
            except (EOFError, OSError):  # the processor is gone
                return
            if asked is None:
                return
            after, n = asked
            # Each read in its own transaction: a snapshot held open would keep SQLite
            # from recycling its write-ahead log.
            try:
                with engine.connect() as conn:
                    events = read_events(conn, parser, after, n, until_unreadable=True)
                    conn.rollback()
            except Exception:  # the store is unavailable: the processor reads, and retries
                log.warning("The read-ahead helper could not read the log.", exc_info=True)
                events = []
            try:
                pipe.send_bytes(pickle.dumps(events, protocol=pickle.HIGHEST_PROTOCOL))
            except OSError:  # the processor is gone
                return
    finally:
        engine.dispose()


class ReadAhead:
    """The processor's side of the helper: ask for a batch, take it when it is needed."""

    def __init__(self, url: str, rules: Sequence[Rule]) -> None:
        ours, theirs = socket.socketpair()
        self._pipe = Pipe(ours.detach())
        with theirs:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
            )
        self._asked: tuple[int, int, int] | None = None  # (after, n, generation)
        self._answered = False  # has the helper answered once (is it up)?
        self.broken = False
        try:
            self._pipe.send((url, tuple(rules)))
        except OSError as exc:
            self._give_up(exc)

    def ask(self, after: int, n: int, generation: int) -> None:
        """Ask for the n events after `after` (while the caller works on earlier ones).

        One question at a time: while one is unanswered, asking again does nothing.
        """
        if self.broken or self._asked is not None:
            return
        try:
            self._pipe.send((after, n))
        except (OSError, ValueError) as exc:
            self._give_up(exc)
            return
        self._asked = (after, n, generation)

    @property
    def up(self) -> bool:
        """Has the helper answered at least once (it has started)?"""
        return self._answered

    def wait(self, seconds: float) -> bool:
        """Wait up to `seconds` for the answer to the question asked; True once it is in."""
        return self._asked is not None and not self.broken and self._pipe.poll(seconds)

    def take(self, after: int, n: int, generation: int) -> list[Event] | None:
        """The events asked for, if they are those of (after, n, generation); else None.

        Waits for the answer only when it is the one needed and the helper is up: while it
        starts (a second or so of imports), or when the question was another, the caller
        reads the batch itself and the answer, when it comes, is dropped.
        """
        if self._asked is None or self.broken:
            return None
        wanted = self._asked == (after, n, generation)
        try:
            if not self._pipe.poll(ANSWER_SECONDS if wanted and self._answered else 0):
                if wanted and self._answered:
                    raise TimeoutError(f"no answer in {ANSWER_SECONDS:.0f} s")
                return None
            answer = self._pipe.recv_bytes()
        except (OSError, EOFError, TimeoutError) as exc:
            self._give_up(exc)
            return None
        self._asked, self._answered = None, True
        if not wanted:
            return None
        events: list[Event] = pickle.loads(answer)  # our own helper's answer
        return events

    def _give_up(self, exc: BaseException) -> None:
        log.warning("The processor reads the log itself from now on: its helper failed (%s).", exc)
        self.broken = True
        self.close()

    def close(self) -> None:
        """Stop the helper."""
        with contextlib.suppress(OSError, ValueError):
            self._pipe.send(None)
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._pipe.close()


if __name__ == "__main__":
    _helper(Pipe(int(sys.argv[1])))

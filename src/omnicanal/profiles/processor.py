"""The processor: reads the durable event log in order and derives everything else.

For each batch of events, in one transaction: resolve identity (identity.graph),
attach the event to its profile with its channel (core.channel_rules), keep the
profile's traits, consents, orders, refunds and survey answers, and move the
checkpoint. A crash loses nothing and repeats nothing: the checkpoint commits with
the rows it covers, so a restart resumes after the last committed batch.

Several processes may run the processor against one PostgreSQL database: the
checkpoint row is locked for the length of a batch, so they take turns and any of
them carries on when another stops. (The event log's writers take turns between id
allocation and commit, so reading by id never skips an event.)

This module runs the loop: checkpoints, retries and quarantine. One batch's work lives in
`omnicanal.profiles.processing`: `parse` (read an event), `ahead` (read the next batch in
a helper process while this one writes), `batch` (resolve and derive), `traits`,
`orders`, `statements` (surveys, consents), `write` and `common`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import orjson
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from omnicanal.core.channel_rules import configured_rules
from omnicanal.core.settings import IdentitySettings, Settings
from omnicanal.identity.graph import Graph, IdentityRules
from omnicanal.identity.service import GRAPH_GENERATION
from omnicanal.profiles.processing.ahead import ReadAhead, read_events
from omnicanal.profiles.processing.batch import Batch
from omnicanal.profiles.processing.common import BatchResult, clock_ms
from omnicanal.profiles.processing.parse import Event, Parser
from omnicanal.profiles.processing.traits import EVENT, IDENTIFY, searchable
from omnicanal.store.engine import Database

__all__ = [
    "EVENT",
    "IDENTIFY",
    "MAIN",
    "QUARANTINE_AFTER",
    "QUARANTINE_CODE",
    "QUARANTINE_LIMIT",
    "SQLITE_TURN_SECONDS",
    "BatchResult",
    "Processor",
    "searchable",
]

MAIN = "main"
# An event whose processing fails this many times in a row, alone in its batch, is set
# aside among the rejected events; more than QUARANTINE_LIMIT set aside with no success in
# between means the fault is not in the events, and the processor stops setting aside.
QUARANTINE_AFTER = 3
QUARANTINE_LIMIT = 20
QUARANTINE_CODE = "process.failed"
SQLITE_TURN_SECONDS = 0.02
# The read-ahead helper stops after this many answers in a row short of a whole batch.
SHORT_ANSWERS = 3
HELPER_REST_SECONDS = 30.0


class Processor:
    """Reads the log batch by batch; `run` loops until stopped."""

    def __init__(
        self,
        database: Database,
        *,
        identity: IdentitySettings | None = None,
        batch_size: int = 2_000,
        name: str = MAIN,
        on_batch: Callable[[BatchResult], None] | None = None,
        read_ahead: bool = False,
    ) -> None:
        self.database = database
        self.batch_size = batch_size
        self.name = name
        self.graph = Graph(IdentityRules.from_settings(identity or IdentitySettings()))
        self.on_batch = on_batch
        self._memo: tuple[int, int] | None = None
        self.parser = Parser(configured_rules())
        self.households: set[tuple[str, int]] = set()  # (address, profile) already linked
        # A helper process reading the next batch ahead (`processing.ahead`), started
        # when a whole batch was waiting: only a backlog is worth a second process.
        self.read_ahead = read_ahead
        self._ahead: ReadAhead | None = None
        self.batches_read_ahead = 0
        self._short = 0  # answers of the helper in a row short of a whole batch
        # A helper stopped for short answers is not started again before this: backlogs
        # that come and go, or workers taking turns, would start one every few batches.
        self.helper_rest_seconds = HELPER_REST_SECONDS
        self._rest_until = 0.0
        self._postgres = database.dialect == "postgresql"
        self._careful = 0  # events left to take one at a time after a failed batch
        self._failures = 0  # consecutive failures of the event taken alone
        self._set_aside = 0  # events set aside since the last success
        self.quarantined = 0

    @classmethod
    def configured(
        cls,
        database: Database,
        settings: Settings,
        *,
        batch_size: int | None = None,
        on_batch: Callable[[BatchResult], None] | None = None,
    ) -> Processor:
        """A processor as the settings have it: identity rules, batch size, read-ahead."""
        return cls(
            database,
            identity=settings.identity,
            batch_size=batch_size or settings.processor.batch_size,
            on_batch=on_batch,
            read_ahead=settings.processor.read_ahead,
        )

    def close(self) -> None:
        """Stop the read-ahead helper, if one was started."""
        if self._ahead is not None:
            self._ahead.close()
            self._ahead = None
        self._short = 0

    def forget(self) -> None:
        """Drop every cache that mirrors the store (after a failed batch)."""
        self.graph.invalidate()
        self.households.clear()
        self._memo = None

    # -- loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, idle_seconds: float = 0.2) -> None:
        """Process until `stop` is set, sleeping briefly whenever the log is drained."""
        try:
            while not stop.is_set():
                try:
                    done = self.step()
                except Exception:  # the next round retries; the checkpoint did not move
                    stop.wait(1.0)
                    continue
                if done.events == 0:
                    stop.wait(idle_seconds)
                elif not self._postgres:
                    # SQLite has one write lock and its waiters poll for it: a pause
                    # between batches lets collection's writer in while a backlog is
                    # worked off.
                    stop.wait(SQLITE_TURN_SECONDS)
        finally:
            self.close()

    def drain(self) -> int:
        """Process everything in the log now; return the number of events processed.

        An event that cannot be processed is retried, then set aside (see `step`); a
        database that stays unavailable, or a fault that fails every event, raises.
        """
        total = 0
        while True:
            try:
                done = self.step()
            except OperationalError:
                raise
            except Exception:
                if self._careful == 0:  # step() gave up setting events aside
                    raise
                continue
            if not done.events:
                return total
            total += done.events

    def step(self) -> BatchResult:
        """Process the next batch; find and set aside an event that keeps failing.

        When a batch fails, the processor rolls it back and takes the same events one at
        a time. An event that fails QUARANTINE_AFTER times in a row on its own (not a
        database outage: those are only retried) is recorded among the rejected events
        with the error, and the checkpoint moves past it, so one malformed or unforeseen
        event cannot stop every profile from updating. It stays in the event log.
        """
        single = self._careful > 0
        try:
            result = self.process_batch(limit=1 if single else None)
        except OperationalError:
            self.forget()
            raise
        except Exception as exc:
            self.forget()
            if not single:
                self._careful, self._failures = self.batch_size, 0
                raise
            self._failures += 1
            if self._failures < QUARANTINE_AFTER:
                raise
            if self._set_aside >= QUARANTINE_LIMIT:
                self._careful = 0  # the fault is general: stop here, keep retrying
                raise
            result = self._quarantine(exc)
            self._failures = 0
            self._set_aside += 1
            self._careful -= 1
            return result
        if result.events:
            self._failures = 0
            self._set_aside = 0
            if single:
                self._careful -= 1
        else:
            self._careful = 0
        return result

    def _quarantine(self, exc: Exception) -> BatchResult:
        """Record the next event as rejected by processing and move the checkpoint past it."""
        reason = f"{type(exc).__name__}: {exc}"[:1000]
        with self.database.engine.connect() as conn, conn.begin():
            checkpoint, generation = self._checkpoint(conn)
            row = conn.execute(
                text(
                    "SELECT id, source_id, received_ms, payload FROM collect_event "
                    "WHERE id > :after ORDER BY id LIMIT 1"
                ),
                {"after": checkpoint},
            ).first()
            if row is None:
                return BatchResult(0, checkpoint, 0, [])
            errors = [{"field": "(event)", "reason": reason, "event_id": int(row.id)}]
            conn.execute(
                text(
                    "INSERT INTO collect_rejected_event (source_id, received_at, endpoint, "
                    "batch_index, status, code, errors, payload, payload_truncated) VALUES "
                    "(:source, :received, 'process', NULL, 422, :code, :errors, :payload, :cut)"
                ),
                {
                    "source": row.source_id,
                    "received": datetime.fromtimestamp(row.received_ms / 1000, UTC),
                    "code": QUARANTINE_CODE,
                    "errors": orjson.dumps(errors).decode(),
                    "payload": row.payload,
                    "cut": False,
                },
            )
            conn.execute(
                text(
                    "INSERT INTO collect_counter (source_id, name, count) "
                    "VALUES (:source, 'rejected', 1) ON CONFLICT (source_id, name) "
                    "DO UPDATE SET count = collect_counter.count + 1"
                ),
                {"source": row.source_id},
            )
            conn.execute(
                text(
                    "UPDATE processor_checkpoint SET last_event_id = :last, updated_ms = :now "
                    "WHERE name = :name"
                ),
                {"last": int(row.id), "now": clock_ms(), "name": self.name},
            )
        self.quarantined += 1
        self._memo = (int(row.id), generation)
        return BatchResult(1, int(row.id), 0, [])

    # -- one batch -------------------------------------------------------------------

    def process_batch(self, *, limit: int | None = None) -> BatchResult:
        """Process the next events of the log (at most `limit`) in one transaction."""
        n = limit or self.batch_size
        with self.database.engine.connect() as conn, conn.begin():
            checkpoint, generation = self._checkpoint(conn)
            if self._memo != (checkpoint, generation):
                self.graph.invalidate()
            events = self._read(conn, checkpoint, n, generation)
            if not events:
                self._memo = (checkpoint, generation)
                return BatchResult(0, checkpoint, 0, [])
            if self._ahead is not None and limit is None:
                self._ahead.ask(events[-1].id, n, generation)
            try:
                result = Batch(self, conn, events).run()
            except BaseException:  # rolled back: what the caches learnt is not in the store
                self.forget()
                raise
            conn.execute(
                text(
                    "UPDATE processor_checkpoint SET last_event_id = :last, updated_ms = :now "
                    "WHERE name = :name"
                ),
                {"last": result.last_event_id, "now": clock_ms(), "name": self.name},
            )
        self._memo = (result.last_event_id, generation)
        if self.on_batch is not None:
            self.on_batch(result)
        return result

    def _read(self, conn: Connection, checkpoint: int, n: int, generation: int) -> list[Event]:
        """The next n events: as read ahead by the helper when it read these, else now."""
        if self._ahead is not None:
            events = self._ahead.take(checkpoint, n, generation)
            if self._ahead.broken:
                self.close()
                self.read_ahead = False  # read alone from now on
            # Answers short of a batch, or none to take once the helper is up: the backlog
            # is worked off (what came in since the helper read would wait a batch more;
            # live events, a few at a time, are read here), or another worker takes turns.
            if events is not None and len(events) == n:
                self._short = 0
            elif self._ahead is not None and self._ahead.up:
                self._short += 1
            if self._short >= SHORT_ANSWERS:
                self.close()
                self._rest_until = time.monotonic() + self.helper_rest_seconds
            if events:
                self.batches_read_ahead += 1
                return events
        events = read_events(conn, self.parser, checkpoint, n)
        if (
            self.read_ahead
            and self._ahead is None
            and len(events) == n == self.batch_size
            and time.monotonic() >= self._rest_until
        ):
            self._ahead = ReadAhead(
                self.database.engine.url.render_as_string(hide_password=False),
                self.parser.rules,
            )
        return events

    def _checkpoint(self, conn: Connection) -> tuple[int, int]:
        lock = " FOR UPDATE" if self._postgres else ""
        for name in (self.name, GRAPH_GENERATION):
            conn.execute(
                text(
                    "INSERT INTO processor_checkpoint (name, last_event_id, updated_ms) "
                    "VALUES (:name, 0, :now) ON CONFLICT (name) DO NOTHING"
                ),
                {"name": name, "now": clock_ms()},
            )
        found: dict[str, int] = dict(
            conn.execute(
                text(
                    "SELECT name, last_event_id FROM processor_checkpoint "
                    f"WHERE name IN (:a, :b) ORDER BY name{lock}"
                ),
                {"a": self.name, "b": GRAPH_GENERATION},
            ).all()
        )
        return int(found[self.name]), int(found[GRAPH_GENERATION])

"""Load a generated demo retailer through the product's real HTTP APIs.

Messages go to `/v1/import` (Segment's endpoint for historical data: timestamps are
kept as sent) in batches of 250, authenticated with each source's write key, over
several connections at once. Files go to the importers, `POST /api/v1/imports/{kind}`,
as the multipart upload a person would make, with the admin token. A Rich progress bar
shows both. Nothing is written to the database directly: the demo exercises the same
paths as a real retailer's data.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from omnicanal.demo.retailer import FILE_KINDS, Dataset

# 250 messages of about 1 KB stay well under the 500 KB a batch may carry. With 16
# connections in flight the server parses one batch while its writer commits the others:
# 4 connections of 100 left both processes half idle, waiting on each other (events in
# 35 s; 28 s now, and no faster with 32).
BATCH = 250
CONNECTIONS = 16
RETRIES = 6
_MEDIA_TYPES = {
    ".csv": "text/csv",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".parquet": "application/vnd.apache.parquet",
}


class LoadError(Exception):
    """The API refused part of the demo data; the message says what and why."""


@dataclass(slots=True)
class LoadReport:
    """What was sent, how long it took, and the importers' answers per file kind."""

    messages: int = 0
    batches: int = 0
    seconds: float = 0.0
    imports: dict[str, dict[str, Any]] = field(default_factory=dict)


def _problem(answer: httpx.Response) -> str:
    """Summarise an error answer: its problem detail and first errors, or its text."""
    try:
        body = answer.json()
    except ValueError:
        return f"HTTP {answer.status_code}: {answer.text[:300]}"
    if not isinstance(body, dict):
        return f"HTTP {answer.status_code}: {str(body)[:300]}"
    detail = body.get("detail") or body.get("title") or ""
    errors = body.get("errors") or []
    shown = "; ".join(
        ", ".join(f"{k}={v}" for k, v in e.items()) if isinstance(e, dict) else str(e)
        for e in errors[:5]
    )
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return f"HTTP {answer.status_code}: {detail} {shown}{more}".strip()


def _retry_after(answer: httpx.Response, attempt: int) -> float:
    try:
        return min(float(str(answer.headers.get("Retry-After", ""))), 30.0)
    except ValueError:
        return min(0.5 * (1 << attempt), 10.0)


def _post(client: httpx.Client, send: Any, what: str) -> httpx.Response:
    """Send a request, again after a transport error, a 429 or a 503; raise LoadError otherwise."""
    for attempt in range(RETRIES):
        try:
            answer: httpx.Response = send(client)
        except httpx.TransportError as exc:
            if attempt == RETRIES - 1:
                raise LoadError(f"{what}: the server did not answer ({exc})") from exc
            time.sleep(min(0.5 * (1 << attempt), 10.0))
            continue
        if answer.status_code in (429, 503) and attempt < RETRIES - 1:
            time.sleep(_retry_after(answer, attempt))
            continue
        if answer.is_success:
            return answer
        raise LoadError(f"{what} was refused: {_problem(answer)}")
    raise LoadError(f"{what}: no answer after {RETRIES} attempts")


class _Sender:
    """Worker threads posting batches, each over its own connection."""

    def __init__(
        self, url: str, keys: Mapping[str, str], connections: int, progress: Progress, task: TaskID
    ) -> None:
        self.url, self.keys, self.progress, self.task = url, keys, progress, task
        self.queue: queue.Queue[tuple[str, bytes, int] | None] = queue.Queue(
            maxsize=connections * 8
        )
        self.errors: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._run, name=f"demo-sender-{i}", daemon=True)
            for i in range(connections)
        ]
        for thread in self.threads:
            thread.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while (item := self.queue.get()) is not None:
                source, body, count = item
                if self.errors:
                    continue  # drain without sending once something failed
                try:
                    _post(
                        client,
                        lambda c, s=source, b=body: c.post(
                            "/v1/import",
                            content=b,
                            auth=(self.keys[s], ""),
                            headers={"Content-Type": "application/json"},
                        ),
                        f"A batch of {count} messages of source {source!r}",
                    )
                except BaseException as exc:  # reported by finish() in the caller's thread
                    self.errors.append(exc)
                self.progress.advance(self.task, count)

    def put(self, source: str, batch: list[dict[str, Any]]) -> None:
        """Queue a batch (blocks while every connection is busy)."""
        self.queue.put((source, orjson.dumps({"batch": batch}), len(batch)))

    def finish(self) -> None:
        """Wait for the queued batches; raise the first error met."""
        self._close()
        if self.errors:
            raise self.errors[0]

    def abandon(self, reason: BaseException) -> None:
        """Drop the batches still queued (an interruption) and stop the threads."""
        self.errors.append(reason)
        self._close()

    def _close(self) -> None:
        for _ in self.threads:
            self.queue.put(None)
        for thread in self.threads:
            thread.join()


def send_messages(
    dataset: Dataset,
    url: str,
    keys: Mapping[str, str],
    *,
    progress: Progress,
    connections: int = CONNECTIONS,
) -> tuple[int, int]:
    """Send every message through /v1/import; return (messages, batches)."""
    missing = sorted({name for name, _ in dataset.sources} - set(keys))
    if missing:
        raise LoadError(f"No write key for the source(s) {', '.join(missing)}.")
    task = progress.add_task("Événements (API de collecte)", total=dataset.stats.get("messages"))
    sender = _Sender(url, keys, connections, progress, task)
    buffers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    sent = batches = 0
    try:
        for source, message in dataset.messages():
            buffer = buffers[source]
            buffer.append(message)
            if len(buffer) == BATCH:
                sender.put(source, buffer)
                buffers[source] = []
                sent, batches = sent + BATCH, batches + 1
                if sender.errors:
                    break
        for source, buffer in buffers.items():
            if buffer and not sender.errors:
                sender.put(source, buffer)
                sent, batches = sent + len(buffer), batches + 1
    except BaseException as exc:  # Ctrl-C or a generation error: send nothing more
        sender.abandon(exc)
        raise
    sender.finish()
    return sent, batches


def upload_files(
    dataset: Dataset, url: str, admin_token: str, *, progress: Progress
) -> dict[str, dict[str, Any]]:
    """Upload each file to its importer; return the importers' answers per kind."""
    kinds = [kind for kind in FILE_KINDS if kind in dataset.files]
    task = progress.add_task("Fichiers (imports)", total=len(kinds))
    answers: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=url, timeout=600) as client:
        for kind in kinds:
            path = dataset.files[kind]
            progress.update(task, description=f"Fichiers (imports) : {path.name}")
            media = _MEDIA_TYPES.get(path.suffix, "application/octet-stream")

            def send(
                c: httpx.Client, path: Any = path, kind: str = kind, media: str = media
            ) -> httpx.Response:
                with path.open("rb") as handle:
                    return c.post(
                        f"/api/v1/imports/{kind}",
                        files={"file": (path.name, handle, media)},
                        headers={"Authorization": f"Bearer {admin_token}"},
                    )

            answer = _post(client, send, f"The import of {path.name} ({kind})")
            body = answer.json() if answer.content else {}
            answers[kind] = body if isinstance(body, dict) else {"answer": body}
            progress.advance(task)
    progress.update(task, description="Fichiers (imports)")
    return answers


def load(
    dataset: Dataset,
    base_url: str,
    write_keys: Mapping[str, str],
    admin_token: str,
    *,
    connections: int = CONNECTIONS,
    files: bool = True,
    console: Console | None = None,
) -> LoadReport:
    """Send the dataset's messages, then upload its files, showing progress.

    Raises LoadError naming the batch or file refused and the API's reasons.
    """
    started = time.perf_counter()
    report = LoadReport()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    url = base_url.rstrip("/")
    with Progress(*columns, console=console or Console(stderr=True)) as progress:
        report.messages, report.batches = send_messages(
            dataset, url, write_keys, progress=progress, connections=connections
        )
        if files:
            report.imports = upload_files(dataset, url, admin_token, progress=progress)
    report.seconds = time.perf_counter() - started
    return report

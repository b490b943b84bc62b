"""An open-loop HTTP client: requests leave at fixed times, whatever the answers do.

    python -m bench.openloop --port 8000 --path /v1/track --rate 1000 --seconds 60 \\
        --template body.json --nonce 1 --authorization "Basic ..."

wrk is closed loop: a slow answer delays the next request, so its percentiles hide
stalls (coordinated omission). Here request i is due at t0 + i/rate; it goes out on an
idle keep-alive connection, or waits for one (more are opened as needed), and its
latency runs from the time it was due. The latency from the time it actually left and
the client's own lateness are reported too, so the client's share can be told apart.
The first `--warmup` seconds are sent and counted as acknowledged but not measured.
Prints one line: "OPENLOOP {...}", latencies in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import cast

import orjson
import uvloop

from bench.events import Template

_HEAD_END = b"\r\n\r\n"


@dataclass(slots=True)
class _Request:
    index: int
    due: float
    sent: float = 0.0


def _parse_response(buf: bytearray) -> tuple[int, int] | None:
    """Return (status, bytes used) of the first complete response in buf, if any."""
    end = buf.find(_HEAD_END)
    if end < 0:
        return None
    head = bytes(buf[:end]).lower()
    status = int(head[9:12])
    start = head.find(b"content-length:")
    length = int(head[start + 15 : head.find(b"\r\n", start)]) if start >= 0 else 0
    used = end + len(_HEAD_END) + length
    return (status, used) if len(buf) >= used else None


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self, client: OpenLoopClient) -> None:
        self.client = client
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.current: _Request | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        now = perf_counter()
        self.buf += data
        parsed = _parse_response(self.buf)
        if parsed is None or self.current is None:
            return
        status, used = parsed
        del self.buf[:used]
        request, self.current = self.current, None
        self.client.completed(self, request, status, now)

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.lost(self)


class OpenLoopClient:
    """Sends `rate` requests per second for a while and records their latencies."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.template = Template(args.template.read_text(), events=1)
        head = (
            f"POST {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
            "Content-Type: application/json\r\n"
        )
        if args.authorization:
            head += f"Authorization: {args.authorization}\r\n"
        self.head = head.encode()
        self.total = round((args.warmup + args.seconds) * args.rate)
        self.measured_from = round(args.warmup * args.rate)
        self.idle: list[_Connection] = []
        self.pending: deque[_Request] = deque()
        self.opened = self.opening = 0
        self.in_flight = 0
        self.ok = self.responses = self.lost_requests = 0
        self.from_due: list[float] = []
        self.from_sent: list[float] = []
        self.lag: list[float] = []
        self.drained = asyncio.Event()
        self.sent_for = 0.0

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(
            lambda: _Connection(self), "127.0.0.1", self.args.port
        )
        self.opening -= 1
        self.opened += 1
        self._free(conn)

    def _free(self, conn: _Connection) -> None:
        if self.pending:
            self._send(conn, self.pending.popleft())
        else:
            self.idle.append(conn)

    def _send(self, conn: _Connection, request: _Request) -> None:
        body = self.template.render(request.index, nonce=self.args.nonce)
        request.sent = perf_counter()
        conn.current = request
        assert conn.transport is not None
        conn.transport.write(b"%sContent-Length: %d\r\n\r\n%s" % (self.head, len(body), body))

    def _dispatch(self, request: _Request) -> None:
        self.in_flight += 1
        if self.idle:
            self._send(self.idle.pop(), request)
            return
        self.pending.append(request)
        if self.opened + self.opening < self.args.max_connections:
            self.opening += 1
            asyncio.get_running_loop().create_task(self._open())

    def completed(self, conn: _Connection, request: _Request, status: int, now: float) -> None:
        """Record one answer, then give the connection the next waiting request."""
        self.responses += 1
        self.ok += 200 <= status < 300
        if request.index >= self.measured_from:
            self.from_due.append(now - request.due)
            self.from_sent.append(now - request.sent)
            self.lag.append(request.sent - request.due)
        self._done_one()
        self._free(conn)

    def lost(self, conn: _Connection) -> None:
        """Count a request lost with its connection."""
        if conn in self.idle:
            self.idle.remove(conn)
        self.opened -= 1
        if conn.current is not None:
            self.lost_requests += 1
            self._done_one()

    def _done_one(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self.drained.set()

    async def run(self) -> None:
        """Open the first connections, send on schedule, wait for the last answers."""
        self.opening = self.args.connections
        await asyncio.gather(*(self._open() for _ in range(self.args.connections)))
        interval = 1.0 / self.args.rate
        t0 = perf_counter() + 0.05
        for index in range(self.total):
            due = t0 + index * interval
            delay = due - perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self._dispatch(_Request(index, due))
        self.sent_for = perf_counter() - t0
        if self.in_flight:
            self.drained.clear()
            await asyncio.wait_for(self.drained.wait(), timeout=30)


def percentiles(values: list[float]) -> dict[str, float]:
    """Return p50/p90/p99/p99.9/max/mean of seconds, in microseconds."""
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]

    scaled = {f"p{q:g}".replace(".", ""): at(q) for q in (50, 90, 99, 99.9)}
    scaled |= {"max": ordered[-1], "mean": sum(ordered) / len(ordered)}
    return {k: round(v * 1e6, 1) for k, v in scaled.items()}


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/v1/track")
    parser.add_argument("--rate", type=float, default=1000.0, help="Requests per second.")
    parser.add_argument("--seconds", type=float, default=60.0, help="Measured seconds.")
    parser.add_argument("--warmup", type=float, default=5.0, help="Unmeasured first seconds.")
    parser.add_argument("--template", type=Path, required=True)
    parser.add_argument("--nonce", type=int, default=0)
    parser.add_argument("--authorization", default="")
    parser.add_argument("--connections", type=int, default=16, help="Opened up front.")
    parser.add_argument("--max-connections", type=int, default=512)
    return parser.parse_args()


def main() -> None:
    """Run the client and print its report."""
    args = _arguments()
    client = OpenLoopClient(args)
    uvloop.run(client.run())
    report = {
        "sent": client.total,
        "responses": client.responses,
        "ok": client.ok,
        "lost": client.lost_requests,
        "unanswered": client.in_flight,
        "measured": len(client.from_due),
        "rate": args.rate,
        "achieved_rate": round((client.total - 1) / client.sent_for, 1),
        "connections": client.opened,
        "latency_us": percentiles(client.from_due),
        "service_us": percentiles(client.from_sent),
        "send_lag_us": percentiles(client.lag),
    }
    print("OPENLOOP " + orjson.dumps(report).decode(), flush=True)


if __name__ == "__main__":
    main()

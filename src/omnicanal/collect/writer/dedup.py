"""The window of recent messageIds that catches a message resent under a new client time."""

from __future__ import annotations

from collections import deque


class RecentMessages:
    """The digests and client times of the last messages written, oldest evicted first.

    The log's unique key holds the client's timestamp, which an SDK retry resends as
    it was. A message sent again with the same messageId but a new timestamp (a webhook
    or till that re-sends a sale) is caught here, within this window.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._times: dict[int, int] = {}
        self._order: deque[int] = deque()

    def time_of(self, key: int) -> int | None:
        """Return the client time stored with a digest, if it is in the window."""
        return self._times.get(key)

    def add(self, key: int, dedup_time: int) -> None:
        """Remember a written message, evicting the oldest beyond capacity."""
        if key not in self._times:
            self._order.append(key)
        self._times[key] = dedup_time
        while len(self._order) > self.capacity:
            self._times.pop(self._order.popleft(), None)

    def add_many(self, keys: list[int], times: list[int]) -> None:
        """Remember many written messages at once."""
        fresh = [k for k in keys if k not in self._times]
        self._times.update(zip(keys, times, strict=True))
        self._order.extend(fresh)
        for _ in range(len(self._order) - self.capacity):
            self._times.pop(self._order.popleft(), None)

    def known(self, keys: set[int]) -> bool:
        """Tell if any of these digests is in the window."""
        return not self._times.keys().isdisjoint(keys)

    def __len__(self) -> int:
        return len(self._times)

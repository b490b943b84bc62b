"""Order and receipt numbers: unique in the world, in no visible order.

The e-shop's and the app's order numbers start with ML; a till receipt's (a store sale,
a click & collect pick-up, a return at the till) starts with its store's till number.
"""

from __future__ import annotations

import numpy as np

from omnicanal.demo.activity import IN_STORE
from omnicanal.demo.days import IntArray
from omnicanal.demo.personal import scramble

_NUMBERS_PER_CHUNK = 10_000_000


def _numbers(chunk: int, count: int, key: int) -> list[str]:
    """Return order or receipt numbers: unique in the world, in no visible order."""
    serial = chunk * _NUMBERS_PER_CHUNK + np.arange(count, dtype=np.int64)
    return [f"{d:010d}" for d in scramble(serial, 10**5, key)]


def receipt_prefix(store: int) -> str:
    """Return the till number that starts every receipt number of a store."""
    return f"{store + 1:02d}"


def order_numbers(
    chunk: int, channel: IntArray, store: IntArray, return_store: IntArray
) -> tuple[list[str], list[str], list[str]]:
    """Return each order's number, pick-up receipt and return receipt ("" if none).

    A store sale's number is its till receipt; the e-shop's and the app's start with ML.
    """
    n = len(channel)
    serial = _numbers(chunk, 3 * n, 11)
    number = [
        f"{receipt_prefix(int(s))}{x}" if c == IN_STORE else f"ML{x}"
        for x, c, s in zip(serial[:n], channel, store, strict=True)
    ]
    pickup = [
        f"{receipt_prefix(int(s))}{x}" if s >= 0 else ""
        for x, s in zip(serial[n : 2 * n], store, strict=True)
    ]
    back = [
        f"{receipt_prefix(int(s))}{x}" if s >= 0 else ""
        for x, s in zip(serial[2 * n :], return_store, strict=True)
    ]
    return number, pickup, back

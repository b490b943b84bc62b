"""One chunk of the demo world, simulated from its number alone.

The world is simulated a block of customers at a time so that a million customers fit
in memory; each chunk draws from its own random streams, so it comes out the same
whether it is simulated to write the files and the ground truth, or again to stream its
messages to the API.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from omnicanal.demo import activity, orders, people, sessions
from omnicanal.demo.activity import IN_STORE, Demand, Draws
from omnicanal.demo.days import BoolArray, FloatArray
from omnicanal.demo.orders import Orders
from omnicanal.demo.people import People
from omnicanal.demo.sessions import Sessions
from omnicanal.demo.world import World


@dataclass(slots=True)
class Chunk:
    """The simulated people of one chunk and everything they did."""

    number: int
    people: People
    draws: Draws
    demand: Demand
    orders: Orders
    sessions: Sessions
    card_t: FloatArray  # when each person got a loyalty card (inf: never)
    days: int  # loaded days

    def loaded(self, t: FloatArray) -> BoolArray:
        """Return which times fall in the loaded period."""
        result: BoolArray = (t >= 0) & (t < self.days)
        return result


def simulate(world: World, number: int, size: int, renamed: dict[str, str] | None = None) -> Chunk:
    """Simulate chunk `number` holding `size` customers (and their prospects)."""
    folk = people.build(world, number, size, renamed)
    draws = activity.draw(world, folk)
    demand = activity.demand(world, folk, draws)
    placed = orders.build(world, folk, demand)
    visits = sessions.build(world, folk, demand, placed)
    card_t = np.full(len(folk), np.inf)
    shop = (placed.channel == IN_STORE) & folk.wants_card[placed.person]
    np.minimum.at(card_t, placed.person[shop], placed.t[shop])
    return Chunk(number, folk, draws, demand, placed, visits, card_t, world.calendar.days)

"""Built-in segments: groups of people a report can be limited to (`Scope.persons`).

Each is computed on the scope's period only (its channel, store and segment filters do
not apply) and returns one column, `person_id`, one row per person:

- `new`: first order ever placed in the period;
- `returning`: bought in the period and before it;
- `online_only`, `store_only`, `omnichannel`: by where they bought in the period.
  An order placed on the e-shop, the app or any online channel is an online purchase;
  a till sale a store purchase; **click & collect** (ordered online, picked up in a
  store) counts as both, since the customer used both. Omnichannel customers made both
  kinds of purchase;
- `lapsed`: bought before, but not in the `lapsed_days` (90) days before the period's end.

Use: `replace(scope, persons=segment(tables, scope, "omnichannel"))`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

import ibis
import ibis.expr.types as ir

from omnicanal.analytics.scope import Scope, Tables, in_period
from omnicanal.core.errors import InvalidError
from omnicanal.warehouse.schema import ORDERS

NAMES: Final = ("new", "returning", "online_only", "store_only", "omnichannel", "lapsed")
LAPSED_DAYS: Final = 90
ONLINE_ONLY: Final = "online_only"
STORE_ONLY: Final = "store_only"
OMNICHANNEL: Final = "omnichannel"
CLICK_AND_COLLECT: Final = "click_and_collect"


def segment(tables: Tables, scope: Scope, name: str, *, lapsed_days: int = LAPSED_DAYS) -> ir.Table:
    """Return the members of a built-in segment (one column, person_id)."""
    if name not in NAMES:
        raise InvalidError(
            f"unknown segment {name!r}",
            errors=[{"field": "segment", "reason": f"must be one of {', '.join(NAMES)}"}],
        )
    if name == "lapsed":
        return lapsed(tables, scope, days=lapsed_days)
    if name in ("new", "returning"):
        return _by_history(tables, scope, new=name == "new")
    places = purchase_places(tables, scope)
    members = places.filter(places.group == name)
    return members.select("person_id")


def purchase_places(tables: Tables, scope: Scope) -> ir.Table:
    """One row per buyer of the period with `group`: online_only, store_only or omnichannel.

    Columns: person_id, online (bought online), store (bought or collected in a store),
    group. Only the scope's period applies.
    """
    orders = in_period(tables[ORDERS], scope)
    in_store = ~orders.online | (orders.fulfilment == CLICK_AND_COLLECT)
    places = orders.group_by("person_id").aggregate(
        online=orders.count(where=orders.online) > 0,
        store=orders.count(where=in_store) > 0,
    )
    group = ibis.cases(
        (places.online & places.store, OMNICHANNEL),
        (places.online, ONLINE_ONLY),
        else_=STORE_ONLY,
    )
    return places.mutate(group=group)


def _by_history(tables: Tables, scope: Scope, *, new: bool) -> ir.Table:
    orders = tables[ORDERS].filter(tables[ORDERS].day < ibis.literal(scope.end))
    people = orders.group_by("person_id").aggregate(
        first_day=orders.day.min(),
        in_period=orders.count(where=orders.day >= ibis.literal(scope.start)) > 0,
    )
    before = people.first_day < ibis.literal(scope.start)
    keep = ~before if new else (before & people.in_period)
    return people.filter(keep & people.in_period).select("person_id")


def lapsed(tables: Tables, scope: Scope, *, days: int = LAPSED_DAYS) -> ir.Table:
    """People who bought before, and not in the `days` days before the period's end."""
    if days < 1:
        raise InvalidError(
            "the lapse must last at least a day",
            errors=[{"field": "lapsed_days", "reason": "must be 1 or more"}],
        )
    orders = tables[ORDERS].filter(tables[ORDERS].day < ibis.literal(scope.end))
    last = orders.group_by("person_id").aggregate(last_day=orders.day.max())
    since = ibis.literal(scope.end - timedelta(days=days))
    return last.filter(last.last_day < since).select("person_id")

"""A synthetic warehouse of any size, written straight into DuckDB tables (numpy, no loop per row).

    python -m bench.warehouse_data --events 10000000 --customers 1000000 --out wh.duckdb

The shapes of a mid-size retailer over one year: visits to the e-shop and the app
(1-10 events each, 30-second to 5-minute gaps) entering by a direct visit, search,
ads on four networks, social networks, e-mail, SMS or push; some visits end in an order
(delivered or click & collect); till sales in six stores, some by people who browsed
first; repeat buyers (a few people are much more active than most); refunds; NPS and
CSAT answers; e-mail, SMS and push events (delivered, opened, clicked, unsubscribed);
costs per day and channel, media and hors-média. Exactly `events` events, every table
of `omnicanal.warehouse.schema` with its columns and types.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from omnicanal.core.channels import KINDS
from omnicanal.warehouse.schema import SCHEMAS

START = date(2025, 1, 1)
DAYS = 365
STORES = ("paris-01", "paris-02", "lyon-01", "marseille-01", "lille-01", "bordeaux-01")
WEB, APP, EMAIL, SMS, PUSH, TILL = 1, 2, 3, 4, 5, 6
SOURCES = [(WEB, "eshop", "web"), (APP, "app", "app"), (EMAIL, "newsletter", "email"),
           (SMS, "sms", "sms"), (PUSH, "push", "push"), (TILL, "till", "import")]  # fmt: skip
#: Entry channels of visits, their share, and the conversion rate of their visits.
ENTRIES = (
    ("web", 0.26, 0.070),
    ("app", 0.12, 0.120),
    ("search:google", 0.17, 0.080),
    ("search:bing", 0.02, 0.080),
    ("ads:google", 0.10, 0.060),
    ("ads:instagram", 0.06, 0.030),
    ("ads:facebook", 0.04, 0.030),
    ("ads:tiktok", 0.02, 0.020),
    ("social:instagram", 0.04, 0.040),
    ("social:facebook", 0.02, 0.040),
    ("email", 0.09, 0.100),
    ("sms", 0.02, 0.120),
    ("push", 0.02, 0.100),
    ("referral", 0.02, 0.060),
)
#: Message events: channel, event name, share of the message events.
MESSAGES = (
    ("email", "Email Delivered", 0.46),
    ("email", "Email Opened", 0.13),
    ("email", "Email Link Clicked", 0.025),
    ("email", "Unsubscribed", 0.003),
    ("sms", "SMS Delivered", 0.11),
    ("sms", "SMS Link Clicked", 0.012),
    ("push", "Push Notification Received", 0.23),
    ("push", "Push Notification Tapped", 0.03),
)
SITE_SHARE = 0.62  # of the events: visits; till sales and messages share the rest


@dataclass(frozen=True)
class Shape:
    """What was generated, for the benchmark's report."""

    events: int
    customers: int
    orders: int
    store_orders: int
    seconds: float


def _media(channel: np.ndarray) -> np.ndarray:
    kinds = np.array([c.split(":")[0] for c in channel], dtype=object)
    return np.array([KINDS[k].media_class.value for k in kinds], dtype=object)


def _activity(rng: np.random.Generator, customers: int) -> np.ndarray:
    """Chance of each person being the one: a few people are far more active."""
    weight = rng.lognormal(0.0, 1.1, customers)
    return weight / weight.sum()


def _pick(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    cumulative = np.cumsum(weights)
    return np.minimum(np.searchsorted(cumulative, rng.random(n) * cumulative[-1]), len(weights) - 1)


def _day_seconds(rng: np.random.Generator, n: int, first: int, last: int) -> np.ndarray:
    """Seconds since START: a day (busier at weekends), a local hour between first and last."""
    weekday = (np.arange(DAYS) + START.weekday()) % 7
    weight = np.where(weekday >= 5, 1.4, 1.0) * (1 + 0.3 * np.sin(np.arange(DAYS) / 58.0))
    day = _pick(rng, weight, n)
    return day * 86_400 + rng.integers(first * 3600, last * 3600, n)


def _visits(rng: np.random.Generator, n_visits: int, people: np.ndarray) -> dict[str, np.ndarray]:
    """Visits and their events, before ids: one row per event."""
    who = _pick(rng, people, n_visits)
    names = np.array([e[0] for e in ENTRIES], dtype=object)
    entry = _pick(rng, np.array([e[1] for e in ENTRIES]), n_visits)
    converts = rng.random(n_visits) < np.array([e[2] for e in ENTRIES])[entry]
    length = 1 + np.minimum(rng.poisson(3.0, n_visits), 9)
    length = np.where(converts, np.maximum(length, 3), length)
    visit = np.repeat(np.arange(n_visits), length)
    first = np.r_[0, np.cumsum(length)[:-1]]
    position = np.arange(len(visit)) - first[visit]
    gap = rng.integers(30, 300, len(visit))
    gap[first] = 0
    offset = np.cumsum(gap) - np.repeat(np.cumsum(gap)[first], length)
    start = _day_seconds(rng, n_visits, 7, 23)
    is_app = np.isin(names[entry], ["app", "push"])
    last = position == length[visit] - 1
    kind = rng.random(len(visit))
    event = np.where(kind < 0.45, None, np.where(kind < 0.85, "Product Viewed", "Product Added"))
    event = np.where(position == 0, None, event).astype(object)
    ordered = last & converts[visit]
    event[ordered] = "Order Completed"
    app = is_app[visit]
    return {
        "person": who[visit],
        "ts": start[visit] + offset,
        "source": np.where(app, APP, WEB),
        "type": np.where(event == None, np.where(app, "screen", "page"), "track"),  # noqa: E711
        "event": event,
        "channel": np.where(position == 0, names[entry][visit], np.where(app, "app", "web")),
        "ordered": ordered,
    }


def _orders(
    rng: np.random.Generator, visits: dict[str, np.ndarray], people: np.ndarray
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Online orders from the converting visits, and till sales with their events."""
    online = np.flatnonzero(visits["ordered"])
    n_store = int(len(online) * 1.2)
    store_who = _pick(rng, people, n_store)
    store_ts = _day_seconds(rng, n_store, 9, 19)
    store_at = rng.integers(0, len(STORES), n_store)
    web = visits["source"][online] == WEB
    collect = web & (rng.random(len(online)) < 0.12)
    n = len(online) + n_store
    channel = np.r_[np.where(web, "web", "app"), [f"store:{STORES[s]}" for s in store_at]]
    store = np.r_[
        np.where(collect, np.array(STORES, dtype=object)[rng.integers(0, 6, len(online))], None),
        np.array(STORES, dtype=object)[store_at],
    ]
    total = np.round(rng.lognormal(4.2, 0.55, n) * 100).astype(np.int64) + 500
    refunded = np.where(rng.random(n) < 0.08, np.where(rng.random(n) < 0.5, total, total // 2), 0)
    orders = pd.DataFrame(
        {
            "person_id": np.r_[visits["person"][online], store_who] + 1,
            "ts": np.r_[visits["ts"][online], store_ts],
            "channel": channel,
            "online": np.r_[np.ones(len(online), bool), np.zeros(n_store, bool)],
            "store": store,
            "fulfilment": np.r_[
                np.where(collect, "click_and_collect", "delivery"), np.full(n_store, "in_store")
            ],
            "total_cents": total,
            "refunded_cents": refunded,
            "visit_event": np.r_[online, np.full(n_store, -1)],
        }
    )
    till = {
        "person": store_who,
        "ts": store_ts,
        "source": np.full(n_store, TILL),
        "type": np.full(n_store, "track", dtype=object),
        "event": np.full(n_store, "Order Completed", dtype=object),
        "channel": np.array(channel[len(online) :], dtype=object),
        "ordered": np.ones(n_store, bool),
    }
    return orders, till


def _messages(rng: np.random.Generator, n: int, customers: int) -> dict[str, np.ndarray]:
    kind = _pick(rng, np.array([m[2] for m in MESSAGES]), n)
    subscribers = max(1, int(customers * 0.6))
    # campaigns go out on Tuesdays and Thursdays at 10:00; reactions follow within hours
    weeks = DAYS // 7
    week = rng.integers(0, weeks, n)
    day = week * 7 + np.where(rng.random(n) < 0.5, 1, 3) - START.weekday() % 7
    day = np.clip(day, 0, DAYS - 1)
    reaction = np.where(np.isin(kind, [0, 4, 6]), 0, rng.integers(60, 6 * 3600, n))
    return {
        "person": rng.integers(0, subscribers, n),
        "ts": day * 86_400 + 9 * 3600 + rng.integers(0, 600, n) + reaction,
        "source": np.array([{"email": EMAIL, "sms": SMS, "push": PUSH}[m[0]] for m in MESSAGES])[
            kind
        ],
        "type": np.full(n, "track", dtype=object),
        "event": np.array([m[1] for m in MESSAGES], dtype=object)[kind],
        "channel": np.array([m[0] for m in MESSAGES], dtype=object)[kind],
        "ordered": np.zeros(n, bool),
        "campaign": np.array([f"w{w:02d}" for w in range(weeks)], dtype=object)[week],
    }


def _clock(seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Naive UTC timestamps and local days (Paris, one hour ahead: close enough here)."""
    base = np.datetime64(START.isoformat(), "s")
    local = base + seconds.astype("timedelta64[s]")
    return (local - np.timedelta64(3600, "s")).astype("datetime64[us]"), local.astype(
        "datetime64[D]"
    )


def _events(parts: list[dict[str, np.ndarray]], orders: pd.DataFrame) -> pd.DataFrame:
    """Stack the events in time order, number them, and link the orders to theirs."""
    columns = ("person", "ts", "source", "type", "event", "channel", "ordered")
    data = {c: np.concatenate([p[c] for p in parts]) for c in columns}
    campaign = np.concatenate([p.get("campaign", np.full(len(p["ts"]), None)) for p in parts])
    # the order each order event placed: online ones by visit event, till ones in turn
    order_of = np.full(len(data["ts"]), -1)
    online = orders["visit_event"].to_numpy()
    n_online = int((online >= 0).sum())
    order_of[online[:n_online]] = np.arange(n_online)
    till_start = len(parts[0]["ts"])
    order_of[till_start : till_start + len(orders) - n_online] = np.arange(n_online, len(orders))
    sequence = np.argsort(data["ts"], kind="stable")
    ts, day = _clock(data["ts"][sequence])
    order = order_of[sequence]
    channel = data["channel"][sequence]
    revenue = orders["total_cents"].to_numpy()
    frame = pd.DataFrame(
        {
            "event_id": np.arange(1, len(ts) + 1, dtype=np.int64),
            "profile_id": data["person"][sequence] + 1,
            "person_id": data["person"][sequence] + 1,
            "source_id": data["source"][sequence].astype(np.int32),
            "ts": ts,
            "day": day,
            "type": data["type"][sequence],
            "event": data["event"][sequence],
            "channel": channel,
            "media_class": _media(channel),
            "online": data["source"][sequence] != TILL,
            "campaign": campaign[sequence],
            "order_id": np.where(order >= 0, order + 1, None),
            "revenue_cents": np.where(order >= 0, revenue[np.maximum(order, 0)], None),
        }
    )
    placed = np.empty(len(orders), dtype=np.int64)
    placed[order[order >= 0]] = frame["event_id"].to_numpy()[order >= 0]
    orders["event_id"] = placed
    return frame


def _finish_orders(orders: pd.DataFrame) -> pd.DataFrame:
    ts, day = _clock(orders["ts"].to_numpy())
    refunded, total = orders["refunded_cents"], orders["total_cents"]
    partly = np.where(refunded == total, "refunded", "partially_refunded")
    status = np.where(refunded == 0, "completed", partly)
    n = len(orders)
    return pd.DataFrame(
        {
            "order_id": np.arange(1, n + 1, dtype=np.int64),
            "profile_id": orders["person_id"],
            "person_id": orders["person_id"],
            "source_id": np.where(orders["online"], WEB, TILL).astype(np.int32),
            "event_id": orders["event_id"],
            "order_key": [f"O{i:09d}" for i in range(1, n + 1)],
            "ts": ts,
            "day": day,
            "channel": orders["channel"],
            "online": orders["online"],
            "store": orders["store"],
            "fulfilment": orders["fulfilment"],
            "status": status,
            "currency": "EUR",
            "total_cents": total,
            "discount_cents": 0,
            "shipping_cents": np.where(orders["online"], 490, 0),
            "tax_cents": total // 6,
            "refunded_cents": refunded,
        }
    )


def _refunds(rng: np.random.Generator, orders: pd.DataFrame) -> pd.DataFrame:
    back = orders[orders["refunded_cents"] > 0]
    later = rng.integers(2, 20, len(back)).astype("timedelta64[D]")
    ts = back["ts"].to_numpy() + later
    return pd.DataFrame(
        {
            "refund_id": np.arange(1, len(back) + 1, dtype=np.int64),
            "order_id": back["order_id"],
            "profile_id": back["person_id"],
            "person_id": back["person_id"],
            "ts": ts,
            "day": ts.astype("datetime64[D]"),
            "channel": back["channel"],
            "amount_cents": back["refunded_cents"],
        }
    )


def _feedback(rng: np.random.Generator, orders: pd.DataFrame, first_id: int) -> pd.DataFrame:
    asked = orders.sample(frac=0.15, random_state=int(rng.integers(1 << 31)))
    nps = rng.random(len(asked)) < 0.6
    score = np.where(
        nps,
        np.clip(np.round(rng.normal(7.8, 2.0, len(asked))), 0, 10),
        np.clip(np.round(rng.normal(4.0, 0.9, len(asked))), 1, 5),
    )
    ts = asked["ts"].to_numpy() + np.timedelta64(2, "D")
    return pd.DataFrame(
        {
            "event_id": np.arange(first_id, first_id + len(asked), dtype=np.int64),
            "profile_id": asked["person_id"],
            "person_id": asked["person_id"],
            "kind": np.where(nps, "nps", "csat"),
            "score": score.astype(np.int32),
            "channel": asked["channel"],
            "ts": ts,
            "day": ts.astype("datetime64[D]"),
        }
    )


#: Daily spend (euros) with impressions and clicks per euro, or spend on given days.
_DAILY = (
    ("ads:google", 420, 25, 1.2),
    ("ads:instagram", 260, 180, 0.9),
    ("ads:facebook", 180, 160, 0.8),
    ("ads:tiktok", 90, 300, 1.1),
)
_DATED = (
    ("email", "owned", "sending", 7, 350),
    ("sms", "owned", "sending", 14, 500),
    ("event:workshop", "hors_media", "event", 30, 1800),
    ("direct_mail", "hors_media", "direct_mail", 91, 9000),
    ("press:elle", "earned", "press", 120, 14000),
    ("street", "hors_media", "event", 180, 7500),
    ("influencer:lea", "hors_media", "fee", 60, 2500),
)


def _costs(rng: np.random.Generator, scale: float) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for d in range(DAYS):
        day = START + timedelta(days=d)
        for channel, euros, per_euro, clicks in _DAILY:
            spent = round(euros * scale * rng.uniform(0.7, 1.3) * 100)
            shown = int(spent / 100 * per_euro)
            rows.append({"day": day, "channel": channel, "media_class": "paid", "kind": "ad_spend",
                         "amount_cents": spent, "impressions": shown,
                         "clicks": int(shown * clicks / 100)})  # fmt: skip
        for channel, media, kind, every, euros in _DATED:
            if d % every == every // 2:
                rows.append({"day": day, "channel": channel, "media_class": media, "kind": kind,
                             "amount_cents": round(euros * scale * 100)})  # fmt: skip
    frame = pd.DataFrame(rows)
    frame.insert(0, "cost_id", np.arange(1, len(frame) + 1, dtype=np.int64))
    frame["campaign"] = ""
    return frame


def generate(events: int, customers: int, *, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Return the warehouse tables (columns of SCHEMAS) of a synthetic year."""
    rng = np.random.default_rng(seed)
    people = _activity(rng, customers)
    visits = _visits(rng, max(1, int(events * SITE_SHARE / 4.2)), people)
    site = len(visits["ts"])
    orders, till = _orders(rng, visits, people)
    rest = events - site - len(till["ts"])
    if rest < 0:
        raise ValueError(f"{events} events are too few for {customers} customers")
    messages = _messages(rng, rest, customers)
    table = _events([visits, till, messages], orders)
    orders = _finish_orders(orders)
    return {
        "events": table,
        "orders": orders,
        "refunds": _refunds(rng, orders),
        "feedback": _feedback(rng, orders, events + 1),
        "costs": _costs(rng, max(customers / 100_000, 0.01)),
        "sources": pd.DataFrame(SOURCES, columns=["source_id", "name", "channel"]),
        "profiles": pd.DataFrame(
            {"profile_id": np.arange(1, customers + 1), "person_id": np.arange(1, customers + 1)}
        ),
    }


def to_arrow(name: str, frame: pd.DataFrame) -> pa.Table:
    """Return a frame as an Arrow table with exactly the schema of warehouse table `name`."""
    schema = SCHEMAS[name].to_pyarrow()
    given = pa.Table.from_pandas(frame, preserve_index=False)
    empty = len(frame)
    columns = [
        given.column(f.name).cast(f.type)
        if f.name in given.column_names
        else pa.nulls(empty, f.type)
        for f in schema
    ]
    return pa.table(columns, schema=schema)


def write(frames: dict[str, pd.DataFrame], path: Path) -> None:
    """Write every warehouse table into a new DuckDB file (empty tables for those not given)."""
    path.unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    con.execute("SET enable_progress_bar = false")
    try:
        for name in SCHEMAS:
            data = to_arrow(name, frames.get(name, pd.DataFrame()))  # noqa: F841 (read by DuckDB)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM data")
    finally:
        con.close()


def cached(
    events: int, customers: int, *, seed: int = 0, folder: Path | None = None
) -> tuple[Path, Shape | None]:
    """Return the DuckDB file of this size and seed, generating it unless it exists."""
    folder = folder or Path.home() / ".cache" / "omnicanal-bench"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"warehouse-{events}-{customers}-{seed}.duckdb"
    if path.exists():
        return path, None
    started = time.perf_counter()
    frames = generate(events, customers, seed=seed)
    partial = path.with_suffix(".partial")
    write(frames, partial)
    partial.rename(path)
    orders = frames["orders"]
    shape = Shape(
        events=len(frames["events"]),
        customers=customers,
        orders=len(orders),
        store_orders=int((~orders["online"]).sum()),
        seconds=time.perf_counter() - started,
    )
    return path, shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    frames = generate(args.events, args.customers, seed=args.seed)
    write(frames, args.out)
    sizes = ", ".join(f"{name} {len(f):,}" for name, f in frames.items())
    print(f"{args.out}: {sizes} in {time.perf_counter() - started:.1f} s ({datetime.now():%H:%M})")


if __name__ == "__main__":
    main()

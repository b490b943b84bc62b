"""Customer journeys: where people are, how they move on, and where the journey breaks.

The reports read the warehouse tables through Ibis, so they run on any engine (DuckDB
by default, Spark for scale), and use the shared vocabulary of
`omnicanal.analytics.touchpoints` (visits, touchpoints, conversions):

- `stages`: touchpoints, shopping events and orders placed in discovery, consideration,
  purchase and loyalty, with the people moving on to the next stage;
- `funnel`: people and visits reaching ordered steps within a window, drop-offs and the
  breaking point, overall and per channel; `research_online_buy_offline` follows
  online research to a store purchase;
- `paths`: the most frequent channel sequences before a (first or repeat) purchase;
- `time_to_convert`: days from first touch to first purchase, and between purchases;
- `switches`: transitions from channel to channel, and into purchase.

Every report takes `(tables, scope, ...)` and returns pandas DataFrames (or a frozen
dataclass of them) with documented columns: counts as integers, rates as fractions from
0 to 1, money in euros rounded to the cent, durations in days or hours. See
docs/concepts/journeys.md.
"""

from __future__ import annotations

from omnicanal.analytics.journeys_common import (
    ACQUISITION_KINDS,
    ALL,
    ARROW,
    HISTORY_START,
    LEVELS,
    NONE,
    UNKNOWN,
)
from omnicanal.analytics.journeys_funnel import (
    BREAK_COLUMNS,
    DEFAULT_STEPS,
    FUNNEL_BY,
    ORDER,
    ROPO_STEPS,
    STEP_COLUMNS,
    VISIT,
    Funnel,
    Step,
    funnel,
    parse_step,
    parse_steps,
    research_online_buy_offline,
)
from omnicanal.analytics.journeys_paths import (
    BEFORE,
    MEASURES,
    PATH_COLUMNS,
    TIME_COLUMNS,
    paths,
    time_to_convert,
)
from omnicanal.analytics.journeys_stages import (
    CONSIDERATION_EVENTS,
    LOYALTY_EVENTS,
    STAGE_BY,
    STAGE_COLUMNS,
    STAGES,
    stages,
)
from omnicanal.analytics.journeys_switches import (
    PURCHASE,
    SWITCH_COLUMNS,
    TOUCH,
    switches,
)

__all__ = [
    "ACQUISITION_KINDS",
    "ALL",
    "ARROW",
    "BEFORE",
    "BREAK_COLUMNS",
    "CONSIDERATION_EVENTS",
    "DEFAULT_STEPS",
    "FUNNEL_BY",
    "HISTORY_START",
    "LEVELS",
    "LOYALTY_EVENTS",
    "MEASURES",
    "NONE",
    "ORDER",
    "PATH_COLUMNS",
    "PURCHASE",
    "ROPO_STEPS",
    "STAGES",
    "STAGE_BY",
    "STAGE_COLUMNS",
    "STEP_COLUMNS",
    "SWITCH_COLUMNS",
    "TIME_COLUMNS",
    "TOUCH",
    "UNKNOWN",
    "VISIT",
    "Funnel",
    "Step",
    "funnel",
    "parse_step",
    "parse_steps",
    "paths",
    "research_online_buy_offline",
    "stages",
    "switches",
    "time_to_convert",
]

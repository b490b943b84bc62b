"""The reports omnicanal offers, registered with their parameters.

Importing this module fills `analytics.reports.REGISTRY`; the API and the CLI are
generated from it. Each entry is a thin adapter: parameters in, one table out, with the
computation in kpis*, journeys*, attribution_data and value_data.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal

import pandas as pd
from pydantic import Field

from omnicanal.analytics import attribution_data, journeys, kpis, value_data
from omnicanal.analytics.attribution import MODELS
from omnicanal.analytics.kpis_base import comparison
from omnicanal.analytics.reports import CompareParams, ReportResult, ScopeParams, report
from omnicanal.analytics.scope import Scope, Tables
from omnicanal.core.errors import InvalidError

AttributionModel = Literal[
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "time_decay",
    "position_based",
    "markov",
    "shapley",
]
assert set(AttributionModel.__args__) <= set(MODELS)  # type: ignore[attr-defined]
Level = Literal["channel", "kind", "media_class"]


def _compare(params: CompareParams) -> str | None:
    return None if params.compare == "none" else params.compare


def _margin_field() -> float | None:
    return Field(
        None,
        ge=0,
        le=1,
        description="Gross margin (0-1) for ROI; without it ROI is (net revenue - cost) / cost.",
    )


# -- KPIs ------------------------------------------------------------------------------


class KpiParams(CompareParams):
    margin: float | None = _margin_field()


@report("kpis", KpiParams, summary="Overview KPIs of the period, compared with another")
def _kpis(tables: Tables, scope: Scope, params: KpiParams) -> pd.DataFrame:
    found = kpis.overview(tables, scope, compare=_compare(params), margin=params.margin)
    return pd.DataFrame([asdict(k) for k in found])


class TimeseriesParams(ScopeParams):
    metric: list[str] = Field(
        default_factory=lambda: ["revenue", "orders", "visits", "marketing_cost"],
        description="KPIs to chart (names as in the kpis report).",
    )
    grain: Literal["day", "week", "month", "quarter", "year"] = "day"
    margin: float | None = _margin_field()


@report("timeseries", TimeseriesParams, summary="KPIs per day, week or month, for charts")
def _timeseries(tables: Tables, scope: Scope, params: TimeseriesParams) -> pd.DataFrame:
    return kpis.timeseries(
        tables, scope, metrics=tuple(params.metric), grain=params.grain, margin=params.margin
    )


class ChannelParams(CompareParams):
    by: Literal["channel", "channel_kind", "media_class", "store", "fulfilment"] = "channel"
    model: AttributionModel | Literal["visit"] = Field(
        "last_non_direct",
        description="Attribution model crediting marketing channels with orders, revenue and "
        "new customers (for ROAS and CAC); `visit`: the channel of the visit that converted.",
    )
    lookback_days: int = Field(30, ge=1, le=365, description="Attribution lookback window.")
    margin: float | None = _margin_field()


@report(
    "channels",
    ChannelParams,
    summary="What each channel brings and costs: visits, orders, revenue, cost, ROAS, CAC, ROI",
)
def _channels(tables: Tables, scope: Scope, params: ChannelParams) -> ReportResult:
    compare = _compare(params)
    credit = previous = None
    notes = []
    if params.model != "visit":
        before = comparison(scope, compare)
        periods = [scope] if before is None else [scope, before]
        credits = attribution_data.credit_periods(
            tables, periods, params.model, lookback_days=params.lookback_days
        )
        credit, previous = credits[0], credits[1] if before is not None else None
        notes.append(
            f"Marketing channels credited by the {params.model} model "
            f"({params.lookback_days}-day lookback)."
        )
    frame = kpis.breakdown(
        tables,
        scope,
        by=params.by,
        compare=compare,
        credit=credit,
        previous_credit=previous,
        margin=params.margin,
    )
    return ReportResult(frame, notes)


class EngagementParams(CompareParams):
    network: Literal["messages", "social"] = Field(
        "messages", description="messages: e-mail, SMS, push; social: social networks."
    )


@report(
    "engagement",
    EngagementParams,
    summary="E-mail, SMS and push engagement (delivered, opened, clicked, unsubscribed), "
    "or social engagement",
)
def _engagement(tables: Tables, scope: Scope, params: EngagementParams) -> pd.DataFrame:
    if params.network == "social":
        return kpis.social_engagement(tables, scope, compare=_compare(params))
    return kpis.engagement(tables, scope, compare=_compare(params))


class SatisfactionParams(ScopeParams):
    by: Literal["channel", "none"] = "channel"


@report("satisfaction", SatisfactionParams, summary="NPS and CSAT, with their answer counts")
def _satisfaction(tables: Tables, scope: Scope, params: SatisfactionParams) -> pd.DataFrame:
    return kpis.satisfaction(tables, scope, by=None if params.by == "none" else params.by)


class OmnichannelParams(ScopeParams):
    retention_days: int = Field(
        90, ge=1, le=730, description="Bought again within this many days after the period."
    )


@report(
    "omnichannel",
    OmnichannelParams,
    summary="Omnichannel vs online-only vs store-only customers: spend, frequency, retention",
)
def _omnichannel(tables: Tables, scope: Scope, params: OmnichannelParams) -> pd.DataFrame:
    return kpis.omnichannel(tables, scope, retention_days=params.retention_days)


@report(
    "click-and-collect",
    ScopeParams,
    summary="Share of online orders collected in store, per store",
)
def _click_and_collect(tables: Tables, scope: Scope, params: ScopeParams) -> pd.DataFrame:
    return kpis.click_and_collect(tables, scope)


class RopoParams(ScopeParams):
    lookback_days: int = Field(30, ge=1, le=365, description="Online research this far back.")


@report(
    "ropo",
    RopoParams,
    summary="Research online, purchase offline: store orders preceded by online research",
)
def _ropo(tables: Tables, scope: Scope, params: RopoParams) -> pd.DataFrame:
    return kpis.ropo(tables, scope, lookback_days=params.lookback_days)


# -- journeys --------------------------------------------------------------------------


class StageParams(ScopeParams):
    by: Literal["channel", "none"] = "none"


@report(
    "stages",
    StageParams,
    summary="Discovery, consideration, purchase, loyalty: people at each stage and moving on",
)
def _stages(tables: Tables, scope: Scope, params: StageParams) -> pd.DataFrame:
    return journeys.stages(tables, scope, by=None if params.by == "none" else params.by)


class FunnelParams(ScopeParams):
    step: list[str] = Field(
        default_factory=lambda: [str(s) for s in journeys.DEFAULT_STEPS],
        description="Steps in order: `visit`, `order` or event names (Product Viewed...).",
    )
    window_days: int = Field(30, ge=1, le=365, description="Time allowed from the first step.")
    by: Literal["channel", "none"] = "none"


def _funnel(tables: Tables, scope: Scope, params: FunnelParams) -> journeys.Funnel:
    return journeys.funnel(
        tables,
        scope,
        tuple(params.step),
        window_days=params.window_days,
        by=None if params.by == "none" else params.by,
    )


@report(
    "funnel",
    FunnelParams,
    summary="People reaching each step of the funnel, with the drop-off and the breaking point",
)
def _funnel_steps(tables: Tables, scope: Scope, params: FunnelParams) -> ReportResult:
    found = _funnel(tables, scope, params)
    notes = []
    for row in found.breaking_points.to_dict("records"):
        if row.get("step") is None or pd.isna(row.get("drop_off")):
            continue
        group = next(
            (str(row[c]) for c in found.breaking_points.columns[:1] if c != "step_index"), ""
        )
        notes.append(
            f"Breaking point{' (' + group + ')' if found.by else ''}: "
            f"{row['from_step']} → {row['step']} loses {row['drop_off']:,} people."
        )
    return ReportResult(found.steps, notes)


@report(
    "breaking-points",
    FunnelParams,
    summary="Where the journey breaks: the step losing the largest share, overall and per channel",
)
def _breaking_points(tables: Tables, scope: Scope, params: FunnelParams) -> pd.DataFrame:
    return _funnel(tables, scope, params).breaking_points


class PathParams(ScopeParams):
    before: Literal["first_purchase", "purchase"] = "first_purchase"
    top: int = Field(20, ge=1, le=500)
    max_steps: int = Field(6, ge=1, le=20)
    level: Level = "channel"
    lookback_days: int | None = Field(None, ge=1, le=730)


@report(
    "paths",
    PathParams,
    summary="The most frequent cross-channel paths before a first purchase or between purchases",
)
def _paths(tables: Tables, scope: Scope, params: PathParams) -> pd.DataFrame:
    return journeys.paths(
        tables,
        scope,
        before=params.before,
        top=params.top,
        max_steps=params.max_steps,
        level=params.level,
        lookback_days=params.lookback_days,
    )


class LevelParams(ScopeParams):
    level: Level = "channel"


@report(
    "time-to-convert",
    LevelParams,
    summary="Days from first touch to first purchase, and between purchases",
)
def _time_to_convert(tables: Tables, scope: Scope, params: LevelParams) -> pd.DataFrame:
    return journeys.time_to_convert(tables, scope, level=params.level)


class SwitchParams(ScopeParams):
    level: Level = "channel"
    into_purchase: bool = Field(False, description="Only switches that end in a purchase.")
    top: int | None = Field(None, ge=1, le=1000)


@report("switches", SwitchParams, summary="Where customers switch channel, from and to")
def _switches(tables: Tables, scope: Scope, params: SwitchParams) -> pd.DataFrame:
    return journeys.switches(
        tables, scope, level=params.level, into_purchase=params.into_purchase, top=params.top
    )


# -- attribution and customer value ----------------------------------------------------


class AttributionParams(ScopeParams):
    model: list[AttributionModel] = Field(
        default_factory=list, description="Models to compare (default: all)."
    )
    lookback_days: int = Field(30, ge=1, le=365)
    conversion: str = Field(
        "order", description="order, first_order, or a track event name (Signed Up...)."
    )


@report(
    "attribution",
    AttributionParams,
    summary="Credit per channel under each attribution model, data-driven ones included",
)
def _attribution(tables: Tables, scope: Scope, params: AttributionParams) -> pd.DataFrame:
    return attribution_data.compare_models(
        tables,
        scope,
        models=params.model or None,
        lookback_days=params.lookback_days,
        conversion=params.conversion,
    )


class ClvParams(ScopeParams):
    horizon_days: int = Field(365, ge=1, le=3650)
    model: Literal["bgnbd", "nbd"] = "bgnbd"
    view: Literal["summary", "first_order_channel", "first_touch_channel", "customers"] = (
        "first_order_channel"
    )
    limit: int = Field(100, ge=1, le=100_000, description="Customers shown (view customers).")


@report(
    "clv",
    ClvParams,
    summary="Customer value: historic and predicted (BG/NBD + Gamma-Gamma), churn risk",
)
def _clv(tables: Tables, scope: Scope, params: ClvParams) -> ReportResult:
    try:
        found = value_data.clv(tables, scope, horizon_days=params.horizon_days, model=params.model)
    except InvalidError as exc:  # too little data to fit: say so beside an empty table
        return ReportResult(pd.DataFrame(), [exc.detail])
    frame = {
        "summary": found.summary,
        "first_order_channel": found.by_first_order_channel,
        "first_touch_channel": found.by_first_touch_channel,
        "customers": found.customers.sort_values("predicted_value_eur", ascending=False).head(
            params.limit
        ),
    }[params.view]
    notes = [
        f"{found.model} fitted on purchases up to {found.observation_end.isoformat()}; "
        f"predictions over {found.horizon_days} days."
    ]
    return ReportResult(frame.reset_index(drop=True), notes)


class RfmParams(ScopeParams):
    view: Literal["segments", "customers"] = "segments"
    limit: int = Field(100, ge=1, le=100_000, description="Customers shown (view customers).")


@report("rfm", RfmParams, summary="RFM scores and segments of the customers who bought")
def _rfm(tables: Tables, scope: Scope, params: RfmParams) -> pd.DataFrame:
    scores = value_data.rfm(tables, scope)
    if params.view == "customers":
        return scores.sort_values("monetary_eur", ascending=False).head(params.limit)
    grouped = scores.groupby(["segment", "segment_fr"], as_index=False).agg(
        customers=("person_id", "count"),
        recency_days=("recency_days", "median"),
        frequency=("frequency", "mean"),
        monetary_eur=("monetary_eur", "sum"),
    )
    grouped["share"] = grouped["customers"] / max(1, int(grouped["customers"].sum()))
    grouped["monetary_eur"] = grouped["monetary_eur"].round(2)
    grouped["frequency"] = grouped["frequency"].round(2)
    return grouped.sort_values("monetary_eur", ascending=False).reset_index(drop=True)


class CohortParams(ScopeParams):
    grain: Literal["week", "month", "quarter"] = "month"


@report("cohorts", CohortParams, summary="Retention of customers by month of first purchase")
def _cohorts(tables: Tables, scope: Scope, params: CohortParams) -> pd.DataFrame:
    return value_data.cohorts(tables, scope, grain=params.grain)

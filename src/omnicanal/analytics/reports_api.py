"""The reports through the management API: one GET route per registered report.

The routes are generated from `analytics.reports.REGISTRY`, each with its own query
parameters, so the OpenAPI document lists every report and what it accepts.
"""

# No `from __future__ import annotations`: FastAPI reads each generated route's
# parameter model from the annotations at run time.

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from omnicanal.analytics import reports
from omnicanal.auth.api import AdminDep
from omnicanal.warehouse.connect import Warehouse


class Column(BaseModel):
    """One column of a report: its name and JSON type."""

    name: str
    type: str = Field(description="integer, number, string, boolean, date or datetime")


class ReportScope(BaseModel):
    """What the report covers, defaults filled in."""

    from_: str = Field(alias="from")
    to: str
    channel: list[str]
    media_class: list[str]
    store: list[str]
    segment: str | None
    compare: str | None


class ReportOut(BaseModel):
    """A report: its scope, columns and rows (one object per row), and notes."""

    report: str
    scope: ReportScope
    columns: list[Column]
    rows: list[dict[str, Any]]
    notes: list[str]


def _route(router: APIRouter, spec: reports.ReportSpec) -> None:
    params_model = spec.params

    def endpoint(
        _admin: AdminDep,
        request: Request,
        params: Annotated[params_model, Query()],  # type: ignore[valid-type]
    ) -> dict[str, Any]:
        warehouse = Warehouse.from_settings(request.app.state.settings)
        with warehouse.reader() as tables:
            return reports.run(spec.name, tables, params)

    router.add_api_route(
        f"/{spec.name}",
        endpoint,
        methods=["GET"],
        response_model=ReportOut,
        response_model_by_alias=True,
        summary=spec.summary,
        name=f"report_{spec.name}",
    )


def build_router() -> APIRouter:
    """A router holding one route per registered report."""
    router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
    for name in reports.names():
        _route(router, reports.spec(name))
    return router

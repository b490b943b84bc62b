"""`omnicanal report <name>`: every report of the API, as a table, CSV or JSON.

The commands are generated from the report registry (analytics.reports), so each has
the options its API route has (`--from`, `--to`, `--channel`, `--store`, `--segment`,
`--compare` and its own), validated the same way.
"""

from __future__ import annotations

import csv
import inspect
import sys
import types
import typing
from datetime import date
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import orjson
import typer
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from rich.table import Table

from omnicanal.analytics import catalogue, reports  # noqa: F401  (catalogue registers reports)
from omnicanal.cli.context import (
    DataOption,
    console,
    err_console,
    reported_errors,
    settings_for,
)
from omnicanal.warehouse.connect import Warehouse

Format = Literal["table", "csv", "json"]
report_app = typer.Typer(
    help="Reports: KPIs, channels, funnels, paths, attribution, customer value...",
    no_args_is_help=True,
)
_RATIO_HINTS = ("rate", "share", "conversion", "retention", "churn", "roi", "change")


def register(app: typer.Typer) -> None:
    """Attach `report <name>` for every registered report."""
    for name in reports.names():
        report_app.command(name, help=reports.spec(name).summary)(_command(reports.spec(name)))
    app.add_typer(report_app, name="report")


def _option_type(annotation: Any) -> tuple[Any, bool]:
    """The type Typer should parse an option as, and whether it repeats."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _option_type(args[0])
    if origin is list:
        return list[str], True
    if origin is Literal or (inspect.isclass(annotation) and issubclass(annotation, Enum)):
        return str, False
    if annotation in (int, float, bool):
        return annotation, False
    if annotation is date:
        return str, False
    return str, False


def _choices(annotation: Any) -> str:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return _choices(args[0])
    if typing.get_origin(annotation) is list and args:
        return _choices(args[0])
    if typing.get_origin(annotation) is Literal:
        return " (" + ", ".join(str(a) for a in typing.get_args(annotation)) + ")"
    if inspect.isclass(annotation) and issubclass(annotation, Enum):
        return " (" + ", ".join(str(m.value) for m in annotation) + ")"
    return ""


def _parameter(name: str, info: FieldInfo) -> inspect.Parameter:
    flag = "--" + (info.alias or name).replace("_", "-")
    kind, repeated = _option_type(info.annotation)
    default: Any = [] if repeated else None
    if not repeated and info.default is not None and info.default is not ...:
        default = info.default.value if isinstance(info.default, Enum) else info.default
    if kind is bool:
        option = typer.Option(default, f"{flag}/--no-{flag[2:]}", help=info.description)
    else:
        help_text = (info.description or "") + _choices(info.annotation)
        option = typer.Option(default, flag, help=help_text, show_default=default not in ([], None))
    annotation = kind if repeated or default is not None else kind | None
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation
    )


def _command(spec: reports.ReportSpec) -> Any:
    fields = spec.params.model_fields

    def command(**kwargs: Any) -> None:
        fmt = kwargs.pop("format_")
        data = kwargs.pop("data")
        values = {(fields[k].alias or k): v for k, v in kwargs.items() if v is not None and v != []}
        try:
            params = spec.params.model_validate(values)
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(p) for p in error["loc"] if isinstance(p, str))
                err_console.print(f"[red]--{where.replace('_', '-')}[/red]: {error['msg']}")
            raise typer.Exit(2) from None
        settings = settings_for(data)
        warehouse = Warehouse.from_settings(
            settings, on_wait=lambda message: err_console.print(f"[yellow]{message}[/yellow]")
        )
        with reported_errors(), warehouse.reader() as tables:
            result = reports.run(spec.name, tables, params)
        show(result, fmt)

    parameters = [_parameter(name, info) for name, info in fields.items()]
    parameters += [
        inspect.Parameter(
            "format_",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option("table", "--format", help="table, csv or json."),
            annotation=str,
        ),
        inspect.Parameter(
            "data", inspect.Parameter.KEYWORD_ONLY, default=DataOption, annotation=Path | None
        ),
    ]
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__doc__ = spec.summary
    return command


_UNIT_COLUMNS = ("value", "previous")


def _cell(value: Any, column: dict[str, str], row: dict[str, Any]) -> str:
    if value is None:
        return "—"
    name = column["name"]
    unit = row.get("unit") if name in _UNIT_COLUMNS else None
    if unit == "ratio":
        return f"{value * 100:.1f} %" if abs(value) <= 1 else f"{value:,.2f}".replace(",", " ")
    if unit == "count":
        return f"{round(value):,}".replace(",", " ")
    if unit == "eur":
        return f"{value:,.2f} €".replace(",", " ")
    if column["type"] == "number":
        if any(hint in name for hint in _RATIO_HINTS) and abs(value) <= 100:
            return f"{value * 100:.1f} %"
        return f"{value:,.2f}".replace(",", " ")
    if column["type"] == "integer":
        return f"{value:,}".replace(",", " ")
    return str(value)


def _fitting(columns: list[dict[str, str]], cells: list[list[str]], width: int) -> list[int]:
    """The columns that fit the terminal, in order, the first one always."""
    used, shown = 1, list[int]()
    for i, column in enumerate(columns):
        need = max([len(column["name"]), *(len(line[i]) for line in cells[:200])]) + 3
        if shown and used + need > width:
            break
        used += need
        shown.append(i)
    return shown


def show(result: dict[str, Any], fmt: str) -> None:
    """Print a report envelope as a Rich table, CSV or JSON."""
    if fmt == "json":
        typer.echo(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
        return
    columns = result["columns"]
    if fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow([c["name"] for c in columns])
        for row in result["rows"]:
            writer.writerow(["" if row[c["name"]] is None else row[c["name"]] for c in columns])
        return
    if fmt != "table":
        err_console.print(f"[red]--format[/red]: must be table, csv or json, not {fmt!r}")
        raise typer.Exit(2)
    scope = result["scope"]
    filters = [
        f"{key} {', '.join(value) if isinstance(value, list) else value}"
        for key, value in scope.items()
        if key not in ("from", "to") and value not in (None, [], "none")
    ]
    title = f"{result['report']} — {scope['from']} → {scope['to']}"
    if filters:
        title += " — " + "; ".join(filters)
    cells = [[_cell(row[c["name"]], c, row) for c in columns] for row in result["rows"]]
    shown = _fitting(columns, cells, console.width)
    table = Table(title=title, title_justify="left")
    for i in shown:
        numeric = columns[i]["type"] in ("number", "integer")
        table.add_column(columns[i]["name"], justify="right" if numeric else "left")
    for line in cells:
        table.add_row(*(line[i] for i in shown))
    console.print(table)
    hidden = [c["name"] for i, c in enumerate(columns) if i not in shown]
    if hidden:
        console.print(
            f"[dim]{len(hidden)} more columns ({', '.join(hidden)}): "
            "widen the terminal or use --format csv or json.[/dim]"
        )
    for note in result["notes"]:
        console.print(f"[dim]{note}[/dim]")

"""The catalogue, stock and costs import kinds, added to collect's import registry."""

from __future__ import annotations

from omnicanal.collect.importers.registry import ImportKind, register_kind
from omnicanal.profiles.imports.catalogue import CATALOGUE_COLUMNS, load_catalogue
from omnicanal.profiles.imports.cost import COST_COLUMNS, load_costs
from omnicanal.profiles.imports.stock import STOCK_COLUMNS, load_stock


def register() -> None:
    """Add catalogue, stock and costs to the import kinds."""
    for kind in (
        ImportKind(
            "catalogue",
            "Products: sku, name, price, category, brand.",
            CATALOGUE_COLUMNS,
            load_catalogue,
        ),
        ImportKind(
            "stock",
            "Stock levels per product and location (online or a store).",
            STOCK_COLUMNS,
            load_stock,
        ),
        ImportKind(
            "costs",
            "Costs per channel per day: ad spend, events, mail drops, press.",
            COST_COLUMNS,
            load_costs,
        ),
    ):
        register_kind(kind.name, kind)

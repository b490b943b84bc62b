"""The catalogue and stock through the management API, kept current between imports.

`PUT /api/v1/products` and `PUT /api/v1/stock` take the same data as the catalogue and
stock imports, with the same rules: a price or a level that changes appends to its
history (what later triggers on price drops, low stock and back-in-stock read), an
older stock reading never overwrites a newer one, and a request is all or nothing.
"""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import text

from omnicanal.auth.api import AdminDep
from omnicanal.core.errors import InvalidError, NotFoundError
from omnicanal.profiles.imports import (
    StockLevelRow,
    stock_location,
    write_catalogue,
    write_stock,
)
from omnicanal.store.session import SessionDep

router = APIRouter(prefix="/api/v1", tags=["catalogue"])


class ProductIn(BaseModel):
    """A product as the e-shop or the ERP knows it; prices in euros."""

    sku: str = Field(min_length=1, max_length=120)
    name: str = Field(min_length=1, max_length=255)
    category: str | None = Field(None, max_length=255)
    brand: str | None = Field(None, max_length=120)
    price: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    image_url: str | None = Field(None, max_length=1024)
    url: str | None = Field(None, max_length=1024)
    active: bool = True


class StockIn(BaseModel):
    """A stock reading: units of a product at a location, at a time (now by default)."""

    sku: str = Field(min_length=1, max_length=120)
    location: str = Field(min_length=1, max_length=80, description="`online` or `store:<id>`")
    quantity: int = Field(ge=0)
    at: datetime | None = None


class Written(BaseModel):
    received: int
    changed: int


def _now() -> int:
    return int(time.time() * 1000)


@router.put("/products", response_model=Written)
def put_products(_admin: AdminDep, session: SessionDep, products: list[ProductIn]) -> Written:
    """Create or update products; a changed price is kept in the price history."""
    seen: dict[str, int] = {}
    errors = []
    for index, product in enumerate(products):
        if product.sku in seen:
            reason = f"{product.sku} is already at index {seen[product.sku]}"
            errors.append({"index": index, "field": "sku", "reason": reason})
        seen[product.sku] = index
    if errors:
        raise InvalidError("The request repeats products.", errors=errors)
    rows = {
        p.sku: {
            "sku": p.sku,
            "name": p.name,
            "category": p.category,
            "brand": p.brand,
            "price_cents": int(p.price * 100),
            "currency": "EUR",
            "image_url": p.image_url,
            "url": p.url,
            "active": p.active,
        }
        for p in products
    }
    changed = write_catalogue(session.connection(), rows, _now())
    return Written(received=len(products), changed=changed)


@router.put("/stock", response_model=Written)
def put_stock(_admin: AdminDep, session: SessionDep, levels: list[StockIn]) -> Written:
    """Record stock readings; each change is kept in the stock history."""
    rows, errors = [], []
    now = _now()
    for index, level in enumerate(levels):
        location = stock_location(level.location)
        if location is None:
            reason = f"{level.location[:30]!r} names no store or online"
            errors.append({"index": index, "field": "location", "reason": reason})
            continue
        at = int(level.at.timestamp() * 1000) if level.at else now
        rows.append(StockLevelRow(level.sku, location, level.quantity, at, index))
    if errors:
        raise InvalidError("Some stock readings name no location.", errors=errors)
    rows.sort(key=lambda r: (r.sku, r.location, r.ms))
    changed = write_stock(session.connection(), rows)
    return Written(received=len(levels), changed=changed)


@router.get("/products")
def list_products(
    _admin: AdminDep,
    session: SessionDep,
    q: Annotated[str | None, Query(description="Part of the SKU or the name.")] = None,
    category: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Products, with their total stock."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    if q:
        where.append("(LOWER(p.sku) LIKE :like OR LOWER(p.name) LIKE :like)")
        params["like"] = f"%{q.lower()}%"
    if category:
        where.append("p.category = :category")
        params["category"] = category
    rows = session.execute(
        text(
            "SELECT p.sku, p.name, p.category, p.brand, p.price_cents, p.active, "
            "COALESCE(SUM(s.quantity), 0) AS stock FROM product p "
            "LEFT JOIN stock_level s ON s.sku = p.sku "
            + (f"WHERE {' AND '.join(where)} " if where else "")
            + "GROUP BY p.sku, p.name, p.category, p.brand, p.price_cents, p.active "
            "ORDER BY p.sku LIMIT :limit"
        ),
        params,
    )
    return [
        {**dict(r._mapping), "stock": int(r.stock), "price_eur": r.price_cents / 100} for r in rows
    ]


@router.get("/products/{sku}")
def get_product(_admin: AdminDep, session: SessionDep, sku: str) -> dict[str, Any]:
    """One product: its stock per location, and its price and stock history."""
    row = session.execute(text("SELECT * FROM product WHERE sku = :sku"), {"sku": sku}).first()
    if row is None:
        raise NotFoundError(f"no product {sku!r}")
    product = dict(row._mapping)
    product["price_eur"] = product["price_cents"] / 100
    params = {"sku": sku}
    product["stock"] = [
        dict(r._mapping)
        for r in session.execute(
            text(
                "SELECT location, quantity, updated_ms FROM stock_level WHERE sku = :sku "
                "ORDER BY location"
            ),
            params,
        )
    ]
    product["price_history"] = [
        dict(r._mapping)
        for r in session.execute(
            text(
                "SELECT price_cents, previous_cents, changed_ms FROM product_price_history "
                "WHERE sku = :sku ORDER BY changed_ms, id"
            ),
            params,
        )
    ]
    product["stock_history"] = [
        dict(r._mapping)
        for r in session.execute(
            text(
                "SELECT location, quantity, previous, changed_ms FROM stock_history "
                "WHERE sku = :sku ORDER BY changed_ms, id"
            ),
            params,
        )
    ]
    return product
